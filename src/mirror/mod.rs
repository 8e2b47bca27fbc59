//! `jam mirror`: the worker that finds finished Jenkins builds and streams them into the store.
//!
//! **Cycle.** Every `poll_interval`, one change-detection request per controller lists every job with its
//! newest and newest-finished build numbers. Only jobs whose numbers moved (or that have running builds or
//! builds awaiting a retry) cost more requests: their build list, then one request per new build.
//!
//! **Build.** A build is mirrored by one task: its artifacts are streamed concurrently (bounded by
//! `transfers` and `small_transfers` over the whole worker, and by the bytes of `buffer_budget`) through
//! the store's artifact write, checked against `Content-Length` and the build's MD5 fingerprints, then
//! `SHA256SUMS` is written, then the manifest with a conditional create (the commit marker), then the
//! job's pointers (forward-only compare-and-swap), then the job's index.
//! A build that fails is not committed; it is retried on later cycles with backoff and, after
//! `max_attempts`, recorded as failed in the job's index.
//!
//! **Notices.** With `--listen` and a notice secret, Jenkins' build notices ask the worker to look at one
//! job at once (one request), so a build is mirrored seconds after it finishes; polling stays the safety net.
//!
//! **State** lives in the store: a restarted worker reads each job's `index.json` once and skips what is
//! committed. In memory the loop keeps only what it saw last poll, the running builds it waits for, and
//! retry timers. Build tasks report back to the loop over a channel, so the loop owns all state.
//!
//! **Several workers.** The worker joins the store's fleet ([`crate::fleet`]) before anything else: its
//! heartbeat announces it, and each build is claimed before anything of it is downloaded. A build another
//! live worker claims is left to it and looked at again every half lease (without asking Jenkins), so a
//! claim whose holder died is taken over within about two leases; the manifest's conditional create
//! still decides which commit stands. Retention passes and the clean-up after dead workers run on the
//! worker that holds their singleton.
//!
//! **Shutdown.** Cancelling the `shutdown` token stops new work; in-flight builds get `shutdown_grace` to
//! finish, then the `abort` token cancels their transfers (multipart uploads are aborted). The worker then
//! leaves the fleet: its claims and heartbeat are deleted, so a restart does not wait.
//!
//! The module's files follow that story: [`poll`] (the cycle: which jobs changed, which builds to start),
//! [`build`] (one build's transfers), [`commit`] (the commit step), [`schedule`] (what the loop does with a
//! build task's outcome: retries, give-ups, missed builds), [`notices`] (build notices: a look at one job
//! at once, between polls) and [`stats`] (counters, metrics). Every write
//! of metadata (manifest, `SHA256SUMS`, pointers, index) is the archive's ([`crate::archive::Archive`]).

mod build;
mod commit;
mod controller;
mod notices;
mod poll;
mod schedule;
mod stats;

use std::{
    sync::{Arc, OnceLock, atomic::Ordering},
    time::Instant,
};

use tokio::sync::{Semaphore, mpsc};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    archive::{Archive, ArchiveError},
    config::{Config, ConfigError, MirrorConfig, RetentionRule},
    fleet::{Fleet, FleetError, FleetSettings, FleetStats},
    format::{
        layout::{self, JobPath},
        manifest::Manifest,
        version::DocumentError,
    },
    integrity::IntegrityError,
    jenkins::{JenkinsClient, JenkinsError},
    metrics::Registry,
    store::{
        Store, StoreError,
        counting::StoreStats,
        journal::UploadJournal,
        write::{ByteBudget, TransferError, TransferLimits},
    },
};

pub use notices::{NoticeRefused, NoticeStats, Notices, Rejection, Submitted};
use poll::Source;
pub use stats::{
    ControllerBoard, ControllerStatus, InFlight, Progress, Stats, Transfer, TransferGuard,
    Transfers,
};

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
        source: TransferError<JenkinsError>,
    },
    /// An artifact's bytes failed a check (length, or MD5 against the build's fingerprints).
    #[error(transparent)]
    Integrity(#[from] IntegrityError),
    /// An artifact path is unsafe; retrying cannot help.
    #[error(transparent)]
    UnsafePath(#[from] layout::UnsafePath),
    /// A document in the store was written by a newer jam: the worker stops.
    #[error(transparent)]
    NewerFormat(DocumentError),
    /// Shutdown interrupted the build.
    #[error("interrupted by shutdown")]
    Cancelled,
    /// The build's claim could not be confirmed before an upload or the commit.
    #[error("{0}")]
    Claim(String),
}

impl From<ArchiveError> for BuildError {
    fn from(e: ArchiveError) -> BuildError {
        match e {
            ArchiveError::Store(s) => BuildError::Store(s),
            ArchiveError::NewerFormat(d) => BuildError::NewerFormat(d),
        }
    }
}

impl BuildError {
    /// Whether Jenkins refused jam's credentials.
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, BuildError::Jenkins(e) if e.is_unauthorized())
    }

    /// Whether another attempt could succeed.
    pub fn retryable(&self) -> bool {
        !matches!(
            self,
            BuildError::UnsafePath(_) | BuildError::Cancelled | BuildError::NewerFormat(_)
        )
    }
}

/// Why a worker cannot be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// The configuration names no controller.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A controller's client cannot be built.
    #[error(transparent)]
    Jenkins(#[from] JenkinsError),
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
    /// Set when the store holds a document in a newer format than this jam's: the worker stopped at once,
    /// aborting its transfers, and wrote nothing over it.
    pub refused: Option<DocumentError>,
}

impl Summary {
    /// Whether the run met every goal (for `--once`'s exit code).
    pub fn ok(&self) -> bool {
        self.failed_attempts == 0
            && self.given_up == 0
            && self.unauthorized.is_empty()
            && self.poll_errors == 0
            && self.refused.is_none()
    }

    /// Records `e` as the reason to stop when it is a newer-format refusal; says whether it was.
    fn refuse_if_newer(&mut self, e: &BuildError) -> bool {
        let BuildError::NewerFormat(d) = e else {
            return false;
        };
        if self.refused.is_none() {
            tracing::error!(error = %d, "refusing the store: stopping the worker");
            self.refused = Some(d.clone());
        }
        true
    }
}

/// Everything a build task needs, shared.
struct Shared {
    cfg: MirrorConfig,
    store: Store,
    /// The writer of the mirror's metadata (manifests, pointers, indexes) in `store`.
    archive: Archive,
    limits: TransferLimits,
    /// Slots of transfers larger than one part (`mirror.transfers`), and of those that fit one part
    /// (`mirror.small_transfers`); see `build::Slot`.
    transfers: Arc<Semaphore>,
    small_transfers: Arc<Semaphore>,
    builds: Arc<Semaphore>,
    stats: Arc<Stats>,
    abort: CancellationToken,
    /// Records open multipart uploads so a restarted worker can abort what a killed one left open.
    journal: UploadJournal,
    /// Per-controller gauges (lag, pending builds, up) for metrics.
    board: Arc<ControllerBoard>,
    /// The retention policy (empty: keep everything).
    retention: Vec<RetentionRule>,
    /// This worker in the store's fleet, once it joined (at the start of [`Mirror::run`]).
    fleet: OnceLock<Fleet>,
    /// The fleet's counters (they exist before the worker joins, for the metrics registry).
    fleet_stats: Arc<FleetStats>,
    /// The store as the fleet uses it: its requests counted apart from the mirror's own.
    fleet_store: Store,
}

impl Shared {
    /// The fleet; set before any build task starts.
    fn fleet(&self) -> &Fleet {
        self.fleet.get().expect("the worker joined the fleet first")
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
    /// Another worker holds the build's claim (or took it over): looked at again later.
    Elsewhere,
    Failed(BuildError),
}

/// The worker.
pub struct Mirror {
    shared: Arc<Shared>,
    sources: Vec<Source>,
    /// The build-notice endpoint's handle, and the worker's side of it (taken when it runs).
    notices: notices::Notices,
    inbox: Option<notices::Inbox>,
}

impl Mirror {
    /// Builds a worker for a validated configuration and an opened store.
    pub fn new(cfg: &Config, store: Store) -> Result<Mirror, SetupError> {
        if cfg.jenkins.is_empty() {
            return Err(SetupError::Config(ConfigError::Invalid {
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
        let fleet_store = store.counted_apart(Arc::new(StoreStats::apart(
            "jam_coordination_store_requests_total",
            "Requests to the store made to coordinate with other workers (heartbeats, claims, singletons, \
             the clean-up after dead workers), by operation and outcome.",
        )));
        let shared = Arc::new(Shared {
            journal,
            transfers: Arc::new(Semaphore::new(cfg.transfers)),
            small_transfers: Arc::new(Semaphore::new(cfg.small_transfers)),
            builds: Arc::new(Semaphore::new(cfg.transfers.max(2))),
            cfg,
            archive: Archive::new(store.clone()),
            store,
            limits,
            stats: Arc::new(Stats::default()),
            abort: CancellationToken::new(),
            board: Arc::new(ControllerBoard::default()),
            retention: config.retention.clone(),
            fleet: OnceLock::new(),
            fleet_stats: Arc::new(FleetStats::default()),
            fleet_store,
        });
        let (notices, inbox) = notices::channel(&sources);
        Mirror {
            shared,
            sources,
            notices,
            inbox: Some(inbox),
        }
    }

    /// What `/metrics` reports on: the worker's counters and gauges, the store's and the controllers'.
    pub fn metrics(&self) -> Registry {
        let registry = Registry::default();
        registry.register(Arc::new(stats::WorkerMetrics {
            stats: self.shared.stats.clone(),
            budget: self.shared.limits.budget.clone(),
            budget_bytes: self.shared.cfg.buffer_budget,
        }));
        for c in self.clients() {
            registry.register(Arc::new(c));
        }
        registry.register(self.shared.store.stats().clone());
        registry.register(self.shared.fleet_stats.clone());
        registry.register(self.shared.fleet_store.stats().clone());
        registry.register(self.notices.stats.clone());
        registry.register(Arc::new(stats::BoardMetrics {
            board: self.shared.board.clone(),
            controllers: self
                .clients()
                .iter()
                .map(|c| c.name().to_string())
                .collect(),
        }));
        registry
    }

    /// The controllers' clients (readiness checks use them; they share the worker's request counters).
    pub fn clients(&self) -> Vec<JenkinsClient> {
        self.sources.iter().map(|s| s.client.clone()).collect()
    }

    /// The worker's counters.
    pub fn stats(&self) -> Arc<Stats> {
        self.shared.stats.clone()
    }

    /// The readiness check of the worker's heartbeat: `Ok` while it is renewed within its lease (before
    /// the worker joined, `Err`).
    pub fn heartbeat_check(&self) -> impl Fn() -> Result<String, String> + Send + Sync + 'static {
        let shared = self.shared.clone();
        move || match shared.fleet.get() {
            Some(f) => f.health(),
            None => Err("the worker has not joined the store's workers yet".into()),
        }
    }

    /// The per-controller gauges (pending builds, lag; the live display reads them with the stats).
    pub fn board(&self) -> Arc<ControllerBoard> {
        self.shared.board.clone()
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
    /// transfer it started). Fails at start when the worker cannot join the store's fleet (another live
    /// worker has its id; the store cannot coordinate and another worker is live), and when another
    /// process takes over its id while it runs.
    pub async fn run(
        mut self,
        once: bool,
        shutdown: CancellationToken,
    ) -> Result<Summary, FleetError> {
        let fleet = self.join().await?;
        let mut inbox = self.inbox.take().expect("a worker runs once");
        let (tx, mut rx) = mpsc::unbounded_channel::<Report>();
        let tracker = TaskTracker::new();
        let mut summary = Summary::default();
        let mut in_flight = 0usize;
        self.abort_leftovers(&fleet).await;
        let displaced = fleet.must_stop();
        let mut last_prune: Option<Instant> = None;
        let mut tick = tokio::time::interval(self.shared.cfg.poll_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut recheck = tokio::time::interval(fleet.lease() / 2);
        recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = displaced.cancelled() => break,
                Some(report) = rx.recv() => {
                    in_flight -= 1;
                    let source = report.source;
                    self.handle(report, &mut summary).await;
                    self.refresh_lag(source);
                    if summary.refused.is_some() || (once && in_flight == 0) {
                        break;
                    }
                }
                look = inbox.next(), if !once => {
                    in_flight += self.look_now(look, &mut inbox, &tx, &tracker, &mut summary).await;
                    if summary.refused.is_some() {
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
                    if summary.refused.is_some() {
                        break;
                    }
                    if !once {
                        self.maybe_prune(&tracker, &shutdown, &mut last_prune);
                    }
                    if once && in_flight == 0 {
                        break;
                    }
                }
                _ = recheck.tick() => {
                    in_flight += self.recheck_elsewhere(&tx, &tracker);
                }
            }
        }
        // No more looks: notices from now on are refused (503), not queued for a loop that has ended.
        drop(inbox);
        if summary.refused.is_some() || displaced.is_cancelled() {
            // Nothing more may be written into a store a newer jam owns, nor by a worker another has
            // displaced: no grace period.
            self.shared.abort.cancel();
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
        if once
            && !self.shared.retention.is_empty()
            && !shutdown.is_cancelled()
            && summary.refused.is_none()
        {
            // A --once run (cron) applies the policy after its builds are committed.
            prune_pass(self.shared.clone(), shutdown.clone()).await;
        }
        fleet.leave().await;
        if displaced.is_cancelled() {
            return Err(FleetError::Displaced {
                id: fleet.worker_id().to_string(),
            });
        }
        Ok(summary)
    }

    /// Joins the store's fleet (see [`crate::fleet`]).
    async fn join(&self) -> Result<Fleet, FleetError> {
        let cfg = &self.shared.cfg;
        let mut singletons = vec![crate::fleet::CLEANUP];
        if !self.shared.retention.is_empty() {
            singletons.push(crate::fleet::RETENTION);
        }
        let settings = FleetSettings {
            worker_id: cfg.worker_id.clone(),
            lease: cfg.lease,
            singletons,
        };
        let fleet = Fleet::join(
            self.shared.fleet_store.clone(),
            settings,
            self.shared.fleet_stats.clone(),
        )
        .await?;
        tracing::info!(
            worker = %fleet.worker_id(),
            lease_s = fleet.lease().as_secs_f64(),
            coordinated = fleet.coordinated(),
            "joined the workers of the store"
        );
        let _ = self.shared.fleet.set(fleet.clone());
        Ok(fleet)
    }

    /// Aborts the uploads this worker's killed predecessor left open (not those another worker now
    /// uploads to the same keys).
    async fn abort_leftovers(&self, fleet: &Fleet) {
        let aborted = match fleet.upload_guard().await {
            Ok(guard) => self.shared.journal.abort_leftovers(&guard).await,
            Err(e) => Err(e),
        };
        match aborted {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                uploads = n,
                "aborted multipart uploads a previous run left open"
            ),
            Err(e) => tracing::warn!(error = %e, "could not read the upload journal"),
        }
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
}

/// One pass of the retention policy over the store, logged; the worker runs it every
/// `retention_interval`, and once at the end of a `--once` run, when it holds the retention singleton
/// (one worker of the store prunes).
async fn prune_pass(shared: Arc<Shared>, shutdown: CancellationToken) {
    let Some(lost) = shared.fleet().take_singleton(crate::fleet::RETENTION).await else {
        tracing::debug!("another worker runs the retention passes");
        return;
    };
    let cancel = either(&shutdown, &lost);
    let opts = crate::audit::retention::PruneOptions {
        dry_run: false,
        cancel: Some(cancel.clone()),
    };
    let _stop = cancel.drop_guard();
    match crate::audit::retention::prune(&shared.store, &shared.retention, &opts).await {
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

/// A token cancelled when either `a` or `b` is (or when it is cancelled itself, which ends its watch).
fn either(a: &CancellationToken, b: &CancellationToken) -> CancellationToken {
    let both = a.child_token();
    let (b, watch) = (b.clone(), both.clone());
    tokio::spawn(async move {
        tokio::select! {
            _ = b.cancelled() => watch.cancel(),
            _ = watch.cancelled() => {}
        }
    });
    both
}
