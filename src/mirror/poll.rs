//! The poll cycle: one change-detection request per controller, then for each job that changed its index
//! (the first time) and build list, and a build task for every finished build that is not settled yet.
//!
//! A fresh process (a `--once` run from cron) has seen no job yet, so every job counts as changed; it
//! reads each job's index from the store, and asks Jenkins for the job's build list only when the tree
//! query shows something the index has not settled ([`settled_through`]): a build running, or a build
//! above the index's floor that is neither mirrored nor given up on nor missed. Over a controller where
//! nothing changed, such a run costs the one tree query.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet},
    sync::Arc,
    time::{Duration, Instant},
};

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;

use crate::{
    config::{Backfill, JenkinsConfig, JobFilter},
    format::{
        layout::{JobPath, Layout},
        manifest::JobIndex,
    },
    jenkins::{JenkinsClient, JenkinsError},
};

use super::{BuildError, Mirror, Outcome, Report, Shared, Summary, build::BuildTask};

/// One controller and what the loop remembers about its jobs.
pub(super) struct Source {
    pub(super) client: JenkinsClient,
    pub(super) layout: Layout,
    pub(super) filter: JobFilter,
    pub(super) folder_depth: usize,
    pub(super) jobs: HashMap<JobPath, JobState>,
    /// After a 401: when to try again.
    pub(super) locked_until: Option<Instant>,
    pub(super) lockouts: u32,
    pub(super) warned_deep: HashSet<JobPath>,
    /// The controller record as last written or read ([`super::controller`]).
    pub(super) recorded: super::controller::Recorded,
}

#[derive(Default)]
pub(super) struct JobState {
    /// (lastBuild, lastCompletedBuild) at the last successful look.
    pub(super) seen: Option<(Option<u64>, Option<u64>)>,
    /// The job's index, once read from the store.
    pub(super) index: Option<JobIndex>,
    /// Builds seen running; the job is looked at again until they finish.
    pub(super) running: BTreeSet<u64>,
    /// Builds that failed, with attempts so far and when to try again.
    pub(super) retry: BTreeMap<u64, (u32, Instant, String)>,
    /// Builds handed to a task and not yet reported back.
    pub(super) in_flight: BTreeSet<u64>,
    /// Builds another worker claims, and when to look at them again (is the claim renewed? committed?).
    pub(super) elsewhere: BTreeMap<u64, Instant>,
    /// Jenkins' newest finished build at the last poll.
    pub(super) last_completed: Option<u64>,
    /// The newest finished build skipped by policy (`results`), which counts as settled for lag.
    pub(super) skipped_top: u64,
    /// Since when the job has had a finished build newer than anything settled (lag in seconds).
    pub(super) behind_since: Option<Instant>,
}

impl JobState {
    pub(super) fn needs_look(&self, now: Instant) -> bool {
        !self.running.is_empty() || self.retry.values().any(|(_, at, _)| *at <= now)
    }

    /// Jenkins' newest finished build minus the newest build jam settled (0 when caught up or unknown).
    pub(super) fn lag_builds(&self) -> u64 {
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

impl Source {
    pub(super) fn new(cfg: &JenkinsConfig) -> Result<Source, JenkinsError> {
        Ok(Source::from_client(cfg, JenkinsClient::new(cfg)?))
    }

    pub(super) fn from_client(cfg: &JenkinsConfig, client: JenkinsClient) -> Source {
        Source {
            client,
            layout: Layout::new(cfg.name.clone()),
            filter: cfg.jobs.clone(),
            folder_depth: cfg.folder_depth,
            jobs: HashMap::new(),
            locked_until: None,
            lockouts: 0,
            warned_deep: HashSet::new(),
            recorded: Default::default(),
        }
    }
}

impl Mirror {
    /// Publishes one controller's lag and pending builds to the metrics board.
    pub(super) fn publish_status(&self, i: usize) {
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
    pub(super) fn refresh_lag(&mut self, i: usize) {
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

    /// One poll of every controller; returns how many build tasks it started.
    pub(super) async fn cycle(
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
                Err(e) if summary.refuse_if_newer(&e) => return started,
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

    pub(super) async fn poll_source(
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
        let of = super::controller::Polled {
            layout: &src.layout,
            client: &src.client,
            filter: &src.filter,
        };
        src.recorded.note(&self.shared, of, &polled).await;
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
                    let r =
                        fetch_job(shared, client, layout, &path, (need_index, Some(current))).await;
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
                Err(e @ BuildError::NewerFormat(_)) => return Err(e),
                Err(e) => {
                    *job_errors += 1;
                    tracing::warn!(controller = %src.client.name(), job = %path, error = %e, "cannot look at job; trying again next cycle");
                }
            }
        }
        Ok(started)
    }
}

/// Starts a build task; it reports its outcome on the channel.
fn spawn_build(
    shared: &Arc<Shared>,
    (client, layout): (&JenkinsClient, &Layout),
    job: &JobPath,
    number: u64,
    (tx, tracker, source_ix): (&mpsc::UnboundedSender<Report>, &TaskTracker, usize),
) {
    let ctx = BuildTask {
        shared: shared.clone(),
        client: client.clone(),
        layout: layout.clone(),
        job: job.clone(),
        number,
        cancel: shared.abort.child_token(),
        claim: std::sync::OnceLock::new(),
    };
    let tx = tx.clone();
    tracker.spawn(async move {
        let job = ctx.job.clone();
        let outcome = ctx.run().await;
        let _ = tx.send(Report {
            source: source_ix,
            job,
            number,
            outcome,
        });
    });
}

impl Mirror {
    /// Starts a task for every build another worker claimed whose time to look again has come (without
    /// asking Jenkins: the task reads the manifest and the claim); returns how many.
    pub(super) fn recheck_elsewhere(
        &mut self,
        tx: &mpsc::UnboundedSender<Report>,
        tracker: &TaskTracker,
    ) -> usize {
        let now = Instant::now();
        let mut started = 0;
        for (i, src) in self.sources.iter_mut().enumerate() {
            let mut due: Vec<(JobPath, u64)> = Vec::new();
            for (job, st) in src.jobs.iter_mut() {
                let ready: Vec<u64> = st
                    .elsewhere
                    .iter()
                    .filter(|(n, at)| **at <= now && !st.in_flight.contains(*n))
                    .map(|(n, _)| *n)
                    .collect();
                for n in ready {
                    st.elsewhere.remove(&n);
                    st.in_flight.insert(n);
                    due.push((job.clone(), n));
                }
            }
            for (job, n) in due {
                started += 1;
                let source = (&src.client, &src.layout);
                spawn_build(&self.shared, source, &job, n, (tx, tracker, i));
            }
        }
        started
    }
}

/// How many changed jobs one poll reads at once (the client's `max_requests` still bounds the requests).
const LOOKS_AT_ONCE: usize = 32;

/// What a look at a changed job reads: its index from the store (the first time), and its build list.
pub(super) struct Fetched {
    /// `Some` when the index was read: `Some(None)` means the job has none yet (first sight).
    index: Option<Option<JobIndex>>,
    /// `None` when the index just read settles the job through its newest build: Jenkins was not asked.
    pub(super) listing: Option<crate::jenkins::model::JobBuilds>,
}

/// The newest build and newest finished build of a job, as the tree query shows them.
type Newest = (Option<u64>, Option<u64>);

/// Reads a changed job's index (when `need_index`) and, unless that index settles the job through the
/// newest builds the tree query showed (`newest`; `None`, as for a build notice, always asks), its build
/// list; touches no worker state, so many run at once.
pub(super) async fn fetch_job(
    shared: &Shared,
    client: &JenkinsClient,
    layout: &Layout,
    job: &JobPath,
    (need_index, newest): (bool, Option<Newest>),
) -> Result<Fetched, BuildError> {
    let index = if need_index {
        Some(shared.archive.read_index(layout, job).await?)
    } else {
        None
    };
    if let (Some(ix), Some(newest)) = (&index, newest)
        && settled_through(ix.as_ref(), newest)
    {
        return Ok(Fetched {
            index,
            listing: None,
        });
    }
    let listing = client.job_builds(job).await?;
    Ok(Fetched {
        index,
        listing: Some(listing),
    })
}

/// Whether a job needs no look at its build list, judged from the tree query's `(lastBuild,
/// lastCompletedBuild)` and the job's index alone: the job has no build at all, or none is running (its
/// newest build is its newest finished one) and every build number above the index's floor up to it is
/// settled (mirrored, given up on, or missed). A build that failed an attempt and waits for another, one
/// another worker is mirroring right now, a build that finished out of order below a running one (the
/// newest build is then not the newest finished, or a number is unsettled): each leaves a number
/// unsettled, so the job is looked at. So is a job without an index (first sight, unless it has no build)
/// and a job whose build numbers have gaps the index does not explain, which costs a look but never a
/// wrong skip.
fn settled_through(index: Option<&JobIndex>, (last_build, last_completed): Newest) -> bool {
    let Some(top) = last_build else {
        return true;
    };
    let Some(ix) = index else {
        return false;
    };
    if last_completed != Some(top) {
        return false;
    }
    if top <= ix.floor {
        return true;
    }
    let known = (ix.builds.len() + ix.failed.len() + ix.missed.len()) as u64;
    top - ix.floor <= known && (ix.floor + 1..=top).all(|n| ix.settled(n))
}

/// Applies what [`fetch_job`] read about a changed job: sets its index (the first time), pages through
/// older builds when more are new than the build list shows, and starts a task for each finished build
/// that is not settled yet.
pub(super) async fn look_at_job(
    shared: &Arc<Shared>,
    src: &mut Source,
    job: &JobPath,
    fetched: Fetched,
    tx: &mpsc::UnboundedSender<Report>,
    tracker: &TaskTracker,
    source_ix: usize,
) -> Result<usize, BuildError> {
    let state = src.jobs.get_mut(job).expect("state exists");
    let Some(listing) = fetched.listing else {
        // The index settles the job through its newest build (see `settled_through`): nothing to start.
        // A job with no build and no index gets the index a first sight of no builds makes (floor 0).
        state.index = Some(match fetched.index {
            Some(Some(ix)) => ix,
            _ => JobIndex::new(job.clone()),
        });
        return Ok(0);
    };
    let mut first_sight = false;
    match fetched.index {
        Some(Some(ix)) => state.index = Some(ix),
        Some(None) => first_sight = state.index.is_none(),
        None => {}
    }
    let mut builds = listing.builds;

    if first_sight {
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
        // The policy's cut is remembered (a conditional create) so a restart does not move it; an index
        // another worker wrote meanwhile wins.
        state.index = Some(shared.archive.first_sight(&src.layout, job, floor).await?);
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
        if state.elsewhere.get(&b.number).is_some_and(|at| *at > now) {
            continue;
        }
        state.elsewhere.remove(&b.number);
        state.in_flight.insert(b.number);
        started += 1;
        let source = (&src.client, &src.layout);
        spawn_build(shared, source, job, b.number, (tx, tracker, source_ix));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::manifest::{BuildSummary, Failure};

    fn index(floor: u64, mirrored: &[u64], failed: &[u64], missed: &[u64]) -> JobIndex {
        let mut ix = JobIndex::new(JobPath::new(["app"]));
        ix.floor = floor;
        for &n in mirrored {
            let summary = BuildSummary {
                result: "SUCCESS".into(),
                timestamp: 1,
                artifacts: 0,
                size: 0,
            };
            ix.builds.insert(n, summary);
        }
        for &n in failed {
            let failure = Failure {
                attempts: 5,
                error: "boom".into(),
                at: "2024-01-01T00:00:00Z".into(),
            };
            ix.failed.insert(n, failure);
        }
        ix.missed.extend(missed);
        ix
    }

    #[test]
    fn a_job_is_settled_only_when_every_number_up_to_its_newest_build_is() {
        let ix = index(2, &[3, 5], &[4], &[6]);
        assert!(settled_through(Some(&ix), (Some(6), Some(6))));
        assert!(
            settled_through(Some(&ix), (Some(2), Some(2))),
            "at the floor"
        );
        assert!(
            !settled_through(Some(&ix), (Some(7), Some(7))),
            "a new build"
        );
        assert!(
            !settled_through(Some(&ix), (Some(7), Some(6))),
            "a running build"
        );
        let hole = index(0, &[1, 3], &[], &[]);
        assert!(
            !settled_through(Some(&hole), (Some(3), Some(3))),
            "build 2 waits for another attempt, or finished late"
        );
        assert!(
            !settled_through(None, (Some(1), Some(1))),
            "first sight of a job with builds"
        );
        assert!(
            settled_through(None, (None, None)),
            "a job without builds needs no look"
        );
        assert!(settled_through(Some(&ix), (None, None)));
    }
}
