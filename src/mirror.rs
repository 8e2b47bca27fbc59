//! `jam mirror`: the worker that finds finished Jenkins builds and streams them into the store.
//!
//! **Cycle.** Every `poll_interval`, one change-detection request per controller lists every job with its
//! newest and newest-finished build numbers. Only jobs whose numbers moved (or that have running builds or
//! builds awaiting a retry) cost more requests: their build list, then one request per new build.
//!
//! **Build.** A build is mirrored by one task: its artifacts are streamed concurrently (bounded by
//! `transfers` over the whole worker) through [`transfer::upload`], checked against `Content-Length` and
//! the build's MD5 fingerprints, then `SHA256SUMS` is written, then the manifest with a conditional create
//! (the commit marker), then the job's pointers (forward-only compare-and-swap), then the job's index.
//! A build that fails is not committed; it is retried on later cycles with backoff and, after
//! `max_attempts`, recorded as failed in the job's index.
//!
//! **State** lives in the store: a restarted worker reads each job's `index.json` once and skips what is
//! committed. In memory the loop keeps only what it saw last poll, the running builds it waits for, and
//! retry timers. Build tasks report back to the loop over a channel, so the loop owns all state.
//!
//! **Shutdown.** Cancelling the `shutdown` token stops new work; in-flight builds get `shutdown_grace` to
//! finish, then the `abort` token cancels their transfers (multipart uploads are aborted).

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use futures::{StreamExt, stream::FuturesUnordered};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    config::{Backfill, Config, JenkinsConfig, JobFilter, MirrorConfig, RetentionRule},
    jenkins::{JenkinsClient, JenkinsError, model::BuildDetails},
    journal::UploadJournal,
    layout::{self, JobPath, Layout, PERMALINKS},
    manifest::{
        ArtifactEntry, BuildSummary, Failure, JobIndex, Manifest, Pointer, Scm, now_rfc3339,
    },
    metrics::{ControllerBoard, Histogram},
    store::{Created, Store, StoreError},
    transfer::{self, ByteBudget, TransferError, TransferLimits},
};

/// Counters the worker keeps (logs, `--once` summaries, metrics and tests read them).
#[derive(Debug, Default)]
pub struct Stats {
    /// Poll cycles completed.
    pub cycles: AtomicU64,
    /// Builds committed.
    pub builds_mirrored: AtomicU64,
    /// Build attempts that failed.
    pub build_failures: AtomicU64,
    /// Builds given up on after `max_attempts`.
    pub builds_failed: AtomicU64,
    /// Builds deleted from Jenkins before they were mirrored.
    pub builds_missed: AtomicU64,
    /// Artifacts stored.
    pub artifacts: AtomicU64,
    /// Artifact bytes stored.
    pub bytes: AtomicU64,
    /// Artifact transfers retried.
    pub artifact_retries: AtomicU64,
    /// Builds found already committed in the store (repaired or skipped).
    pub builds_already_committed: AtomicU64,
    /// Artifact transfers running now.
    pub transfers_in_flight: AtomicU64,
    /// Durations of successful artifact transfers.
    pub transfer_seconds: Histogram,
    /// Builds the retention policy deleted.
    pub retention_deleted: AtomicU64,
}

/// Why a build could not be mirrored this time.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// Jenkins failed.
    #[error(transparent)]
    Jenkins(#[from] JenkinsError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An artifact transfer failed.
    #[error("artifact '{path}': {source}")]
    Transfer {
        /// The artifact.
        path: String,
        /// Why.
        source: TransferError,
    },
    /// An artifact's bytes do not match the build's fingerprint.
    #[error(
        "artifact '{path}': MD5 {md5} does not match the Jenkins fingerprint recorded for '{path}' ({expected}); the download was corrupted"
    )]
    Fingerprint {
        /// The artifact.
        path: String,
        /// What arrived.
        md5: String,
        /// What Jenkins recorded.
        expected: String,
    },
    /// An artifact path is unsafe; retrying cannot help.
    #[error(transparent)]
    UnsafePath(#[from] layout::UnsafePath),
    /// Shutdown interrupted the build.
    #[error("interrupted by shutdown")]
    Cancelled,
}

impl BuildError {
    /// Whether Jenkins refused jam's credentials.
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, BuildError::Jenkins(e) if e.is_unauthorized())
    }

    /// Whether another attempt could succeed.
    pub fn retryable(&self) -> bool {
        !matches!(self, BuildError::UnsafePath(_) | BuildError::Cancelled)
    }
}

/// What one run of the worker did (returned by [`Mirror::run`]).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Builds committed.
    pub mirrored: u64,
    /// Build attempts that failed.
    pub failed_attempts: u64,
    /// Builds given up on.
    pub given_up: u64,
    /// Builds missed.
    pub missed: u64,
    /// Controllers whose credentials were refused.
    pub unauthorized: Vec<String>,
    /// Poll failures, and jobs that could not be looked at (Jenkins or store errors).
    pub poll_errors: u64,
}

impl Summary {
    /// Whether the run met every goal (for `--once`'s exit code).
    pub fn ok(&self) -> bool {
        self.failed_attempts == 0
            && self.given_up == 0
            && self.unauthorized.is_empty()
            && self.poll_errors == 0
    }
}

/// Everything a build task needs, shared.
struct Shared {
    cfg: MirrorConfig,
    store: Store,
    limits: TransferLimits,
    transfers: Arc<Semaphore>,
    builds: Arc<Semaphore>,
    stats: Arc<Stats>,
    abort: CancellationToken,
    /// Records open multipart uploads so a restarted worker can abort what a killed one left open.
    journal: UploadJournal,
    /// Per-controller gauges (lag, pending builds, up) for metrics.
    board: Arc<ControllerBoard>,
    /// The retention policy (empty: keep everything).
    retention: Vec<RetentionRule>,
}

/// One controller and what the loop remembers about its jobs.
struct Source {
    client: JenkinsClient,
    layout: Layout,
    filter: JobFilter,
    folder_depth: usize,
    jobs: HashMap<JobPath, JobState>,
    /// After a 401: when to try again.
    locked_until: Option<Instant>,
    lockouts: u32,
    warned_deep: HashSet<JobPath>,
}

#[derive(Default)]
struct JobState {
    /// (lastBuild, lastCompletedBuild) at the last successful look.
    seen: Option<(Option<u64>, Option<u64>)>,
    /// The job's index, once read from the store.
    index: Option<JobIndex>,
    /// Builds seen running; the job is looked at again until they finish.
    running: BTreeSet<u64>,
    /// Builds that failed, with attempts so far and when to try again.
    retry: BTreeMap<u64, (u32, Instant, String)>,
    /// Builds handed to a task and not yet reported back.
    in_flight: BTreeSet<u64>,
    /// Jenkins' newest finished build at the last poll.
    last_completed: Option<u64>,
    /// The newest finished build skipped by policy (`results`), which counts as settled for lag.
    skipped_top: u64,
    /// Since when the job has had a finished build newer than anything settled (lag in seconds).
    behind_since: Option<Instant>,
}

impl JobState {
    fn needs_look(&self, now: Instant) -> bool {
        !self.running.is_empty() || self.retry.values().any(|(_, at, _)| *at <= now)
    }

    /// Jenkins' newest finished build minus the newest build jam settled (0 when caught up or unknown).
    fn lag_builds(&self) -> u64 {
        let (Some(top), Some(ix)) = (self.last_completed, &self.index) else {
            return 0;
        };
        let settled = [
            ix.builds.keys().next_back().copied(),
            ix.failed.keys().next_back().copied(),
            ix.missed.iter().next_back().copied(),
            Some(ix.floor),
            Some(self.skipped_top),
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(0);
        top.saturating_sub(settled)
    }
}

/// A build task's report.
struct Report {
    source: usize,
    job: JobPath,
    number: u64,
    outcome: Outcome,
}

enum Outcome {
    Committed(Box<Manifest>),
    AlreadyCommitted(Box<Manifest>),
    StillRunning,
    Missed,
    Failed(BuildError),
}

/// The worker.
pub struct Mirror {
    shared: Arc<Shared>,
    sources: Vec<Source>,
}

impl Mirror {
    /// Builds a worker for a validated configuration and an opened store.
    pub fn new(cfg: &Config, store: Store) -> crate::Result<Mirror> {
        if cfg.jenkins.is_empty() {
            return Err(crate::Error::Config(crate::config::ConfigError::Invalid {
                key: "jenkins".into(),
                message: "no controller configured: add a [[jenkins]] table to the config, or set JENKINS_URL, \
                          JENKINS_USER and JENKINS_API_TOKEN"
                    .into(),
            }));
        }
        let sources = cfg
            .jenkins
            .iter()
            .map(Source::new)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Mirror::with_sources(cfg, store, sources))
    }

    /// Builds a worker from ready clients (tests use this to shorten backoffs).
    pub fn with_clients(cfg: &Config, store: Store, clients: Vec<JenkinsClient>) -> Mirror {
        let sources = cfg
            .jenkins
            .iter()
            .zip(clients)
            .map(|(j, client)| Source::from_client(j, client))
            .collect();
        Mirror::with_sources(cfg, store, sources)
    }

    fn with_sources(config: &Config, store: Store, sources: Vec<Source>) -> Mirror {
        let cfg: MirrorConfig = config.mirror.clone();
        let limits = TransferLimits {
            part_size: cfg.part_size as usize,
            part_uploads: cfg.part_uploads,
            budget: ByteBudget::new(cfg.buffer_budget),
        };
        let journal = UploadJournal::new(store.clone(), &cfg.worker_id);
        let shared = Arc::new(Shared {
            journal,
            transfers: Arc::new(Semaphore::new(cfg.transfers)),
            builds: Arc::new(Semaphore::new(cfg.transfers.max(2))),
            cfg,
            store,
            limits,
            stats: Arc::new(Stats::default()),
            abort: CancellationToken::new(),
            board: Arc::new(ControllerBoard::default()),
            retention: config.retention.clone(),
        });
        Mirror { shared, sources }
    }

    /// What `/metrics` reports on: the worker's counters and gauges, the store's and the controllers'.
    pub fn metrics(&self) -> crate::metrics::Sources {
        crate::metrics::Sources {
            stats: self.shared.stats.clone(),
            store: self.shared.store.clone(),
            controllers: self.clients(),
            board: self.shared.board.clone(),
            budget: self.shared.limits.budget.clone(),
            budget_bytes: self.shared.cfg.buffer_budget,
        }
    }

    /// The controllers' clients (readiness checks use them; they share the worker's request counters).
    pub fn clients(&self) -> Vec<JenkinsClient> {
        self.sources.iter().map(|s| s.client.clone()).collect()
    }

    /// Publishes one controller's lag and pending builds to the metrics board.
    fn publish_status(&self, i: usize) {
        let src = &self.sources[i];
        let mut lag_builds = 0;
        let mut behind_since: Option<Instant> = None;
        let mut pending = 0;
        for st in src.jobs.values() {
            lag_builds = lag_builds.max(st.lag_builds());
            if let Some(t) = st.behind_since {
                behind_since = Some(behind_since.map_or(t, |b: Instant| b.min(t)));
            }
            pending += st.in_flight.len() as u64 + st.retry.len() as u64;
        }
        self.shared.board.update(src.client.name(), |s| {
            s.lag_builds = lag_builds;
            s.behind_since = behind_since;
            s.pending = pending;
        });
    }

    /// Updates each job's `behind_since` from its lag, then publishes the controller's status.
    fn refresh_lag(&mut self, i: usize) {
        let now = Instant::now();
        for st in self.sources[i].jobs.values_mut() {
            if st.lag_builds() == 0 {
                st.behind_since = None;
            } else if st.behind_since.is_none() {
                st.behind_since = Some(now);
            }
        }
        self.publish_status(i);
    }

    /// The worker's counters.
    pub fn stats(&self) -> Arc<Stats> {
        self.shared.stats.clone()
    }

    /// The byte budget (its use is a metric).
    pub fn budget(&self) -> ByteBudget {
        self.shared.limits.budget.clone()
    }

    /// The token that aborts in-flight transfers at once (a second signal cancels it).
    pub fn abort_token(&self) -> CancellationToken {
        self.shared.abort.clone()
    }

    /// Runs until `shutdown` is cancelled, or for one full cycle when `once` is set (waiting for every
    /// transfer it started).
    pub async fn run(mut self, once: bool, shutdown: CancellationToken) -> Summary {
        let (tx, mut rx) = mpsc::unbounded_channel::<Report>();
        let tracker = TaskTracker::new();
        let mut summary = Summary::default();
        let mut in_flight = 0usize;
        match self.shared.journal.abort_leftovers().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                uploads = n,
                "aborted multipart uploads a previous run left open"
            ),
            Err(e) => tracing::warn!(error = %e, "could not read the upload journal"),
        }
        let mut last_prune: Option<Instant> = None;
        let mut tick = tokio::time::interval(self.shared.cfg.poll_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                Some(report) = rx.recv() => {
                    in_flight -= 1;
                    let source = report.source;
                    self.handle(report, &mut summary).await;
                    self.refresh_lag(source);
                    if once && in_flight == 0 {
                        break;
                    }
                }
                _ = tick.tick() => {
                    let started = self.cycle(&tx, &tracker, &mut summary).await;
                    in_flight += started;
                    self.shared.stats.cycles.fetch_add(1, Ordering::Relaxed);
                    for i in 0..self.sources.len() {
                        self.refresh_lag(i);
                    }
                    if !once {
                        self.maybe_prune(&tracker, &shutdown, &mut last_prune);
                    }
                    if once && in_flight == 0 {
                        break;
                    }
                }
            }
        }
        // Shutdown: no new work; give in-flight builds the grace period, then abort their transfers.
        tracker.close();
        if in_flight > 0 && !once {
            tracing::info!(
                builds = in_flight,
                grace_s = self.shared.cfg.shutdown_grace.as_secs(),
                "shutting down: waiting for in-flight builds"
            );
        }
        let grace = tokio::time::sleep(self.shared.cfg.shutdown_grace);
        tokio::pin!(grace);
        while in_flight > 0 {
            tokio::select! {
                Some(report) = rx.recv() => {
                    in_flight -= 1;
                    self.handle(report, &mut summary).await;
                }
                _ = &mut grace, if !self.shared.abort.is_cancelled() => {
                    tracing::warn!(builds = in_flight, "grace period over: aborting in-flight transfers");
                    self.shared.abort.cancel();
                }
            }
        }
        tracker.wait().await;
        if once && !self.shared.retention.is_empty() && !shutdown.is_cancelled() {
            // A --once run (cron) applies the policy after its builds are committed.
            prune_pass(self.shared.clone(), shutdown.clone()).await;
        }
        summary
    }

    /// Starts a pass of the retention policy in the background when one is due and none is running.
    fn maybe_prune(
        &self,
        tracker: &TaskTracker,
        shutdown: &CancellationToken,
        last: &mut Option<Instant>,
    ) {
        if self.shared.retention.is_empty()
            || last.is_some_and(|t| t.elapsed() < self.shared.cfg.retention_interval)
        {
            return;
        }
        *last = Some(Instant::now());
        tracker.spawn(prune_pass(self.shared.clone(), shutdown.clone()));
    }

    /// One poll of every controller; returns how many build tasks it started.
    async fn cycle(
        &mut self,
        tx: &mpsc::UnboundedSender<Report>,
        tracker: &TaskTracker,
        summary: &mut Summary,
    ) -> usize {
        let mut started = 0;
        for i in 0..self.sources.len() {
            let polled = self
                .poll_source(i, tx, tracker, &mut summary.poll_errors)
                .await;
            let up = polled.is_ok();
            self.shared
                .board
                .update(self.sources[i].client.name(), |s| s.up = up);
            match polled {
                Ok(n) => started += n,
                Err(e) => {
                    let src = &mut self.sources[i];
                    if e.is_unauthorized() {
                        src.lockouts += 1;
                        let wait = Duration::from_secs(300)
                            .saturating_mul(1 << src.lockouts.min(4).saturating_sub(1));
                        src.locked_until =
                            Some(Instant::now() + wait.min(Duration::from_secs(3600)));
                        tracing::error!(
                            controller = %src.client.name(),
                            retry_in_s = wait.as_secs(),
                            error = %e,
                            "controller refused jam's credentials; not polling it until then"
                        );
                        if !summary
                            .unauthorized
                            .contains(&src.client.name().to_string())
                        {
                            summary.unauthorized.push(src.client.name().to_string());
                        }
                    } else {
                        summary.poll_errors += 1;
                        tracing::error!(controller = %src.client.name(), error = %e, "poll failed");
                    }
                }
            }
        }
        started
    }

    async fn poll_source(
        &mut self,
        i: usize,
        tx: &mpsc::UnboundedSender<Report>,
        tracker: &TaskTracker,
        job_errors: &mut u64,
    ) -> Result<usize, BuildError> {
        let now = Instant::now();
        if self.sources[i].locked_until.is_some_and(|t| t > now) {
            return Ok(0);
        }
        let src = &mut self.sources[i];
        let polled = src.client.poll(src.folder_depth).await?;
        src.locked_until = None;
        src.lockouts = 0;
        for deep in polled.too_deep {
            if src.warned_deep.insert(deep.clone()) {
                tracing::warn!(
                    controller = %src.client.name(),
                    folder = %deep,
                    depth = src.folder_depth,
                    "folder is deeper than folder_depth; its jobs are not mirrored (raise folder_depth)"
                );
            }
        }
        // The jobs that changed (or wait for running builds or retries).
        let mut changed = Vec::new();
        for job in polled.jobs {
            if !src.filter.matches(&job.path.full_name()) {
                continue;
            }
            let state = src.jobs.entry(job.path.clone()).or_default();
            state.last_completed = job.last_completed;
            let current = (job.last_build, job.last_completed);
            if state.seen == Some(current) && !state.needs_look(now) {
                continue;
            }
            if job.last_build.is_none() && state.index.is_some() {
                state.seen = Some(current);
                continue;
            }
            changed.push((job.path, current, state.index.is_none()));
        }
        // Their indexes and build lists are read concurrently (the client bounds requests per
        // controller), so a first cycle over thousands of jobs is not one round trip after another; the
        // results are then applied one job at a time.
        let fetched: Vec<_> = futures::stream::iter(changed)
            .map(|(path, current, need_index)| {
                let (shared, client, layout) = (&self.shared, &src.client, &src.layout);
                async move {
                    let r = fetch_job(shared, client, layout, &path, need_index).await;
                    (path, current, r)
                }
            })
            .buffer_unordered(LOOKS_AT_ONCE)
            .collect()
            .await;
        let mut started = 0;
        for (path, current, fetched) in fetched {
            let result = match fetched {
                Ok(f) => look_at_job(&self.shared, src, &path, f, tx, tracker, i).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(n) => {
                    started += n;
                    if let Some(st) = src.jobs.get_mut(&path) {
                        st.seen = Some(current);
                    }
                }
                Err(BuildError::Jenkins(e)) if e.is_unauthorized() => return Err(e.into()),
                Err(e) => {
                    *job_errors += 1;
                    tracing::warn!(controller = %src.client.name(), job = %path, error = %e, "cannot look at job; trying again next cycle");
                }
            }
        }
        Ok(started)
    }

    async fn handle(&mut self, r: Report, summary: &mut Summary) {
        let shared = self.shared.clone();
        let src = &mut self.sources[r.source];
        let name = src.client.name().to_string();
        let state = src.jobs.entry(r.job.clone()).or_default();
        state.in_flight.remove(&r.number);
        match r.outcome {
            Outcome::Committed(m) | Outcome::AlreadyCommitted(m) => {
                state.retry.remove(&r.number);
                state.running.remove(&r.number);
                if let Some(ix) = &mut state.index {
                    ix.builds.insert(r.number, summary_of(&m));
                    ix.failed.remove(&r.number);
                }
                summary.mirrored += 1;
            }
            Outcome::StillRunning => {
                state.running.insert(r.number);
            }
            Outcome::Missed => {
                state.running.remove(&r.number);
                state.retry.remove(&r.number);
                summary.missed += 1;
                shared.stats.builds_missed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(controller = %name, job = %r.job, build = r.number, "build was deleted from Jenkins before it was mirrored");
                let key = layout::path(&src.layout.index_key(&r.job));
                let job = r.job.clone();
                let res = shared
                    .store
                    .update(&key, |cur| {
                        let mut ix = parse_index(cur, &job);
                        ix.missed.insert(r.number).then(|| ix.to_json())
                    })
                    .await;
                if let Err(e) = res {
                    tracing::warn!(job = %r.job, error = %e, "could not record missed build in the index");
                }
                if let Some(ix) = &mut state.index {
                    ix.missed.insert(r.number);
                }
            }
            Outcome::Failed(BuildError::Cancelled) => {
                // Shutdown interrupted it: not an attempt; the next run starts it again.
            }
            Outcome::Failed(err) => {
                summary.failed_attempts += 1;
                shared.stats.build_failures.fetch_add(1, Ordering::Relaxed);
                let attempts = state.retry.get(&r.number).map_or(0, |(a, _, _)| *a) + 1;
                let give_up = !err.retryable() || attempts >= shared.cfg.max_attempts;
                if give_up {
                    summary.given_up += 1;
                    shared.stats.builds_failed.fetch_add(1, Ordering::Relaxed);
                    state.retry.remove(&r.number);
                    tracing::error!(
                        controller = %name, job = %r.job, build = r.number, attempts, error = %err,
                        "giving up on build; recorded as failed in the job's index (it will not be retried)"
                    );
                    let failure = Failure {
                        attempts,
                        error: err.to_string(),
                        at: now_rfc3339(),
                    };
                    let key = layout::path(&src.layout.index_key(&r.job));
                    let job = r.job.clone();
                    let f2 = failure.clone();
                    let res = shared
                        .store
                        .update(&key, |cur| {
                            let mut ix = parse_index(cur, &job);
                            ix.failed.insert(r.number, f2.clone());
                            Some(ix.to_json())
                        })
                        .await;
                    if let Err(e) = res {
                        tracing::warn!(job = %r.job, error = %e, "could not record failed build in the index");
                    }
                    if let Some(ix) = &mut state.index {
                        ix.failed.insert(r.number, failure);
                    }
                } else {
                    let base = shared
                        .cfg
                        .retry_backoff
                        .saturating_mul(1 << (attempts - 1).min(10));
                    let delay = base
                        .mul_f64(rand::random_range(0.75..=1.25))
                        .min(Duration::from_secs(6 * 3600));
                    tracing::warn!(
                        controller = %name, job = %r.job, build = r.number, attempt = attempts,
                        max_attempts = shared.cfg.max_attempts, retry_in_s = delay.as_secs(), error = %err,
                        "build not mirrored; will retry"
                    );
                    state.retry.insert(
                        r.number,
                        (attempts, Instant::now() + delay, err.to_string()),
                    );
                }
            }
        }
    }
}

impl Source {
    fn new(cfg: &JenkinsConfig) -> Result<Source, JenkinsError> {
        Ok(Source::from_client(cfg, JenkinsClient::new(cfg)?))
    }

    fn from_client(cfg: &JenkinsConfig, client: JenkinsClient) -> Source {
        Source {
            client,
            layout: Layout::new(cfg.name.clone()),
            filter: cfg.jobs.clone(),
            folder_depth: cfg.folder_depth,
            jobs: HashMap::new(),
            locked_until: None,
            lockouts: 0,
            warned_deep: HashSet::new(),
        }
    }
}

fn parse_index(cur: Option<&[u8]>, job: &JobPath) -> JobIndex {
    cur.and_then(|b| JobIndex::parse(b, "index").ok())
        .unwrap_or_else(|| JobIndex::new(job.clone()))
}

fn summary_of(m: &Manifest) -> BuildSummary {
    BuildSummary {
        result: m.result.clone(),
        timestamp: m.timestamp,
        artifacts: m.artifacts.len(),
        size: m.total_size(),
    }
}

/// How many changed jobs one poll reads at once (the client's `max_requests` still bounds the requests).
const LOOKS_AT_ONCE: usize = 32;

/// What a look at a changed job reads: its index from the store (the first time), and its build list.
struct Fetched {
    /// `Some` when the index was read: `Some(None)` means the job has none yet (first sight).
    index: Option<Option<JobIndex>>,
    listing: crate::jenkins::model::JobBuilds,
}

/// Reads a changed job's index (when `need_index`) and build list; touches no worker state, so many run
/// at once.
async fn fetch_job(
    shared: &Shared,
    client: &JenkinsClient,
    layout: &Layout,
    job: &JobPath,
    need_index: bool,
) -> Result<Fetched, BuildError> {
    let index = if need_index {
        let key = layout::path(&layout.index_key(job));
        Some(match shared.store.get(&key).await? {
            Some((bytes, _)) => Some(JobIndex::parse(&bytes, key.as_ref()).map_err(|m| {
                BuildError::Store(StoreError::BadKey {
                    key: key.to_string(),
                    message: m,
                })
            })?),
            None => None,
        })
    } else {
        None
    };
    let listing = client.job_builds(job).await?;
    Ok(Fetched { index, listing })
}

/// Applies what [`fetch_job`] read about a changed job: sets its index (the first time), pages through
/// older builds when more are new than the build list shows, and starts a task for each finished build
/// that is not settled yet.
async fn look_at_job(
    shared: &Arc<Shared>,
    src: &mut Source,
    job: &JobPath,
    fetched: Fetched,
    tx: &mpsc::UnboundedSender<Report>,
    tracker: &TaskTracker,
    source_ix: usize,
) -> Result<usize, BuildError> {
    let index_key = layout::path(&src.layout.index_key(job));
    let state = src.jobs.get_mut(job).expect("state exists");
    let mut first_sight = false;
    match fetched.index {
        Some(Some(ix)) => state.index = Some(ix),
        Some(None) => first_sight = state.index.is_none(),
        None => {}
    }
    let listing = fetched.listing;
    let mut builds = listing.builds;

    if first_sight {
        let mut ix = JobIndex::new(job.clone());
        let finished: Vec<u64> = builds
            .iter()
            .filter(|b| b.finished())
            .map(|b| b.number)
            .collect();
        let floor = match shared.cfg.backfill {
            Backfill::All => 0,
            Backfill::None => builds.iter().map(|b| b.number).max().unwrap_or(0),
            Backfill::Newest(n) => {
                if (finished.len() as u64) > n {
                    finished[n as usize] // newest first: everything at or below the (n+1)th newest is skipped
                } else {
                    0
                }
            }
        };
        ix.floor = floor;
        if floor > 0 {
            // Remember the policy's cut so a restart does not move it.
            shared.store.put(&index_key, ix.to_json()).await?;
        }
        state.index = Some(ix);
    }
    let index = state.index.as_ref().expect("index loaded");
    let floor = index.floor;

    // More new builds than `builds` shows: page through allBuilds until reaching known ground.
    let known_top = index
        .builds
        .keys()
        .chain(index.failed.keys())
        .chain(index.missed.iter())
        .max()
        .copied();
    let lowest_listed = builds.iter().map(|b| b.number).min();
    let first = listing.first_build.map(|b| b.number);
    if let (Some(low), Some(first)) = (lowest_listed, first) {
        let target = known_top.unwrap_or(0).max(floor);
        if builds.len() >= 100 && low > first && low > target + 1 {
            let mut from = builds.len();
            loop {
                let page = src.client.older_builds(job, from, from + 500).await?;
                let n = page.len();
                let reached = page.iter().any(|b| b.number <= target);
                builds.extend(page);
                from += n;
                if n < 500 || reached {
                    break;
                }
            }
        }
    }

    let now = Instant::now();
    let mut started = 0;
    let mut running = BTreeSet::new();
    // Oldest first, so pointers move forward in order and a backlog drains from the start.
    builds.sort_by_key(|b| b.number);
    builds.dedup_by_key(|b| b.number);
    for b in &builds {
        if b.number <= floor || index.settled(b.number) || state.in_flight.contains(&b.number) {
            continue;
        }
        if !b.finished() {
            running.insert(b.number);
            continue;
        }
        if let Some(result) = &b.result
            && !shared.cfg.results.is_empty()
            && !shared.cfg.results.iter().any(|r| r == result)
        {
            state.skipped_top = state.skipped_top.max(b.number);
            continue;
        }
        if let Some((_, at, _)) = state.retry.get(&b.number)
            && *at > now
        {
            continue;
        }
        state.in_flight.insert(b.number);
        started += 1;
        let ctx = BuildTask {
            shared: shared.clone(),
            client: src.client.clone(),
            layout: src.layout.clone(),
            job: job.clone(),
            number: b.number,
        };
        let tx = tx.clone();
        tracker.spawn(async move {
            let job = ctx.job.clone();
            let number = ctx.number;
            let outcome = ctx.run().await;
            let _ = tx.send(Report {
                source: source_ix,
                job,
                number,
                outcome,
            });
        });
    }
    // Running builds that vanished from the listing were deleted before they finished.
    let listed: BTreeSet<u64> = builds.iter().map(|b| b.number).collect();
    for &gone in state.running.difference(&listed) {
        // Reported like a task's outcome, so the loop records it in one place.
        started += 1;
        let _ = tx.send(Report {
            source: source_ix,
            job: job.clone(),
            number: gone,
            outcome: Outcome::Missed,
        });
    }
    state.running = running;
    Ok(started)
}

/// One build's mirroring, as a task.
struct BuildTask {
    shared: Arc<Shared>,
    client: JenkinsClient,
    layout: Layout,
    job: JobPath,
    number: u64,
}

impl BuildTask {
    async fn run(self) -> Outcome {
        let _slot = tokio::select! {
            p = self.shared.builds.clone().acquire_owned() => p.expect("open"),
            _ = self.shared.abort.cancelled() => return Outcome::Failed(BuildError::Cancelled),
        };
        match self.mirror().await {
            Ok(o) => o,
            Err(BuildError::Jenkins(e)) if e.is_not_found() => Outcome::Missed,
            Err(e) => Outcome::Failed(e),
        }
    }

    async fn mirror(&self) -> Result<Outcome, BuildError> {
        let store = &self.shared.store;
        let manifest_key = layout::path(&self.layout.manifest_key(&self.job, self.number));
        // Committed by an earlier run that stopped before updating pointers and index: repair, don't redo.
        if let Some((bytes, _)) = store.get(&manifest_key).await?
            && let Ok(m) = serde_json::from_slice::<Manifest>(&bytes)
        {
            self.shared
                .stats
                .builds_already_committed
                .fetch_add(1, Ordering::Relaxed);
            self.publish(&m).await?;
            return Ok(Outcome::AlreadyCommitted(Box::new(m)));
        }
        let details = self.client.build(&self.job, self.number).await?;
        if !details.finished() {
            return Ok(Outcome::StillRunning);
        }
        let started = Instant::now();
        // Refuse the whole build before writing anything if any path is unsafe.
        let mut keys = Vec::with_capacity(details.artifacts.len());
        for a in &details.artifacts {
            keys.push(
                self.layout
                    .artifact_key(&self.job, self.number, &a.relative_path)?,
            );
        }
        let fingerprints: HashMap<String, Option<String>> = details
            .fingerprint
            .iter()
            .map(|f| (f.hash.to_ascii_lowercase(), f.file_name.clone()))
            .collect();
        let want_md5 = self.shared.cfg.verify_fingerprints && !fingerprints.is_empty();

        let mut entries: Vec<Option<ArtifactEntry>> = vec![None; details.artifacts.len()];
        let mut todo: Vec<usize> = (0..details.artifacts.len()).collect();
        let mut round = 0;
        while !todo.is_empty() {
            round += 1;
            let mut tasks: FuturesUnordered<_> = todo
                .iter()
                .map(|&i| {
                    let path = details.artifacts[i].relative_path.clone();
                    let key = keys[i].clone();
                    async move { (i, self.transfer_artifact(&path, &key, want_md5).await) }
                })
                .collect();
            while let Some((i, r)) = tasks.next().await {
                entries[i] = Some(r?);
            }
            drop(tasks);
            // Fingerprint rule: an artifact is corrupt when its MD5 matches none of the build's fingerprints
            // while a fingerprint recorded under the artifact's own file name matches no artifact at all.
            // Anything else (fingerprints of other files, artifacts not fingerprinted) is not evidence.
            todo = Vec::new();
            let mut corrupt = None;
            if want_md5 {
                let got: HashSet<String> = entries
                    .iter()
                    .flatten()
                    .filter_map(|e| e.md5.clone())
                    .collect();
                for (i, e) in entries.iter_mut().enumerate() {
                    let e = e.as_mut().expect("all transferred");
                    let md5 = e.md5.clone().unwrap_or_default();
                    e.fingerprint = fingerprints.contains_key(&md5);
                    if e.fingerprint {
                        continue;
                    }
                    let name = details.artifacts[i].file_name.clone().unwrap_or_else(|| {
                        e.path.rsplit('/').next().unwrap_or(&e.path).to_string()
                    });
                    if let Some((hash, _)) = fingerprints
                        .iter()
                        .find(|(h, f)| f.as_deref() == Some(name.as_str()) && !got.contains(*h))
                    {
                        tracing::warn!(job = %self.job, build = self.number, artifact = %e.path, md5 = %md5, expected = %hash, "fingerprint mismatch; downloading again");
                        corrupt = Some(BuildError::Fingerprint {
                            path: e.path.clone(),
                            md5,
                            expected: hash.clone(),
                        });
                        todo.push(i);
                    }
                }
            }
            if let Some(err) = corrupt {
                if round >= 3 {
                    return Err(err);
                }
                self.shared
                    .stats
                    .artifact_retries
                    .fetch_add(todo.len() as u64, Ordering::Relaxed);
            }
        }
        let artifacts: Vec<ArtifactEntry> = entries
            .into_iter()
            .map(|e| e.expect("all transferred"))
            .collect();
        let manifest = self.manifest(&details, artifacts);

        // Commit: SHA256SUMS, then the manifest (conditional create), then pointers and index.
        let sums_key = layout::path(&self.layout.sums_key(&self.job, self.number));
        store.put(&sums_key, manifest.sha256sums().into()).await?;
        if store.create(&manifest_key, manifest.to_json()).await? == Created::Existed {
            tracing::info!(job = %self.job, build = self.number, "another worker committed this build first");
        }
        self.publish(&manifest).await?;
        let bytes = manifest.total_size();
        let secs = started.elapsed().as_secs_f64();
        self.shared
            .stats
            .builds_mirrored
            .fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            controller = %self.layout.source(),
            job = %self.job,
            build = self.number,
            result = %manifest.result,
            artifacts = manifest.artifacts.len(),
            bytes,
            duration_s = (secs * 1000.0).round() / 1000.0,
            mb_per_s = ((bytes as f64 / 1e6 / secs.max(1e-6)) * 10.0).round() / 10.0,
            "mirrored build"
        );
        Ok(Outcome::Committed(Box::new(manifest)))
    }

    /// Transfers one artifact, retrying broken or short downloads a few times.
    async fn transfer_artifact(
        &self,
        path: &str,
        key: &str,
        md5: bool,
    ) -> Result<ArtifactEntry, BuildError> {
        let url = self
            .client
            .artifact_url(&self.job, &self.number.to_string(), path);
        let obj = layout::path(key);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let _permit = tokio::select! {
                p = self.shared.transfers.clone().acquire_owned() => p.expect("open"),
                _ = self.shared.abort.cancelled() => return Err(BuildError::Cancelled),
            };
            self.shared
                .stats
                .transfers_in_flight
                .fetch_add(1, Ordering::Relaxed);
            let began = Instant::now();
            let result = async {
                let dl = self
                    .client
                    .download(&url)
                    .await
                    .map_err(TransferError::Source)?;
                let stats = &self.shared.stats;
                transfer::upload(
                    &self.shared.store,
                    &obj,
                    dl,
                    &self.shared.limits,
                    md5,
                    Some(&self.shared.journal),
                    &self.shared.abort,
                    &|n| {
                        stats.bytes.fetch_add(n, Ordering::Relaxed);
                    },
                )
                .await
            }
            .await;
            self.shared
                .stats
                .transfers_in_flight
                .fetch_sub(1, Ordering::Relaxed);
            match result {
                Ok(t) => {
                    self.shared.stats.transfer_seconds.observe(began.elapsed());
                    self.shared.stats.artifacts.fetch_add(1, Ordering::Relaxed);
                    return Ok(ArtifactEntry {
                        path: path.to_string(),
                        key: key.to_string(),
                        size: t.size,
                        sha256: t.sha256,
                        md5: t.md5,
                        fingerprint: false,
                    });
                }
                Err(TransferError::Cancelled) => return Err(BuildError::Cancelled),
                Err(TransferError::Source(e)) if e.is_not_found() || e.is_unauthorized() => {
                    return Err(BuildError::Jenkins(e));
                }
                Err(e) if attempt < 3 => {
                    self.shared
                        .stats
                        .artifact_retries
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(job = %self.job, build = self.number, artifact = %path, attempt, error = %e, "artifact transfer failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200 * (1 << attempt))).await;
                }
                Err(e) => {
                    return Err(BuildError::Transfer {
                        path: path.to_string(),
                        source: e,
                    });
                }
            }
        }
    }

    fn manifest(&self, d: &BuildDetails, artifacts: Vec<ArtifactEntry>) -> Manifest {
        Manifest {
            format: layout::FORMAT_VERSION,
            source: self.layout.source().to_string(),
            jenkins: self.client.base().to_string(),
            job: self.job.clone(),
            full_name: self.job.full_name(),
            number: self.number,
            result: d.result.clone().unwrap_or_else(|| "NOT_BUILT".into()),
            timestamp: d.timestamp,
            duration: d.duration,
            url: self
                .client
                .build_url(&self.job, &self.number.to_string())
                .to_string(),
            display_name: d.display_name.clone(),
            description: d.description.clone().filter(|s| !s.is_empty()),
            scm: d.git().map(|(revision, branches, remotes)| Scm {
                revision,
                branches,
                remotes,
            }),
            parameters: d.parameters(),
            causes: d.causes(),
            artifacts,
            mirrored_at: now_rfc3339(),
            mirrored_by: concat!("jam ", env!("CARGO_PKG_VERSION")).to_string(),
        }
    }

    /// Moves the job's pointers forward to this build where its result qualifies, and adds it to the
    /// job's index. Both are compare-and-swap updates that never move backwards.
    async fn publish(&self, m: &Manifest) -> Result<(), BuildError> {
        let store = &self.shared.store;
        let manifest_key = self.layout.manifest_key(&self.job, m.number);
        let pointer = m.pointer(manifest_key);
        for link in PERMALINKS {
            if !link.accepts(&m.result) {
                continue;
            }
            let key = layout::path(&self.layout.pointer_key(&self.job, link));
            store
                .update(&key, |cur| {
                    let older = cur
                        .and_then(|b| serde_json::from_slice::<Pointer>(b).ok())
                        .is_none_or(|p| p.number < pointer.number);
                    older.then(|| pointer.to_json())
                })
                .await?;
        }
        let key = layout::path(&self.layout.index_key(&self.job));
        let summary = summary_of(m);
        store
            .update(&key, |cur| {
                let mut ix = parse_index(cur, &self.job);
                if ix.builds.get(&m.number) == Some(&summary) && !ix.failed.contains_key(&m.number)
                {
                    return None;
                }
                ix.failed.remove(&m.number);
                ix.builds.insert(m.number, summary.clone());
                Some(ix.to_json())
            })
            .await?;
        Ok(())
    }
}

/// One pass of the retention policy over the store, logged; the worker runs it every
/// `retention_interval`, and once at the end of a `--once` run.
async fn prune_pass(shared: Arc<Shared>, shutdown: CancellationToken) {
    let opts = crate::retention::PruneOptions {
        dry_run: false,
        cancel: Some(shutdown),
    };
    match crate::retention::prune(&shared.store, &shared.retention, &opts).await {
        Ok(report) => {
            shared
                .stats
                .retention_deleted
                .fetch_add(report.builds_deleted(), Ordering::Relaxed);
            for e in &report.errors {
                tracing::warn!(error = %e, "retention: could not prune a job; trying again next pass");
            }
        }
        Err(e) => tracing::warn!(error = %e, "retention pass failed; trying again next pass"),
    }
}
