//! The worker's counters and gauges, and the collectors that report them on `/metrics`; the transfers
//! running now ([`Transfers`]) and a [`Progress`] snapshot of all of it, which the live display of
//! `jam mirror` at a terminal reads (the display itself belongs to the CLI).

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use crate::{
    metrics::{Collect, Exposition, Histogram, float},
    store::write::ByteBudget,
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
    /// The artifact transfers running now: what, and how far along.
    pub transfers: Transfers,
}

/// The artifact transfers running now, each registered for as long as its bytes flow.
#[derive(Debug, Default)]
pub struct Transfers {
    next: AtomicU64,
    map: Mutex<BTreeMap<u64, Arc<Transfer>>>,
}

/// One artifact transfer under way.
#[derive(Debug)]
pub struct Transfer {
    /// The job's full name.
    pub job: String,
    /// The build number.
    pub build: u64,
    /// The artifact's `relativePath`.
    pub path: String,
    /// Its length, when Jenkins announced it.
    pub size: Option<u64>,
    /// Bytes through so far.
    pub done: AtomicU64,
    /// When it started.
    pub started: Instant,
}

impl Transfers {
    /// Registers a transfer until the returned guard is dropped.
    pub fn start(
        &self,
        job: String,
        build: u64,
        path: &str,
        size: Option<u64>,
    ) -> TransferGuard<'_> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let t = Arc::new(Transfer {
            job,
            build,
            path: path.to_string(),
            size,
            done: AtomicU64::new(0),
            started: Instant::now(),
        });
        self.map
            .lock()
            .expect("transfers lock")
            .insert(id, t.clone());
        TransferGuard {
            transfers: self,
            id,
            transfer: t,
        }
    }

    /// The transfers running now, oldest first.
    pub fn snapshot(&self) -> Vec<Arc<Transfer>> {
        self.map
            .lock()
            .expect("transfers lock")
            .values()
            .cloned()
            .collect()
    }
}

/// A registered transfer; dropping it ends the registration.
#[derive(Debug)]
pub struct TransferGuard<'a> {
    transfers: &'a Transfers,
    id: u64,
    transfer: Arc<Transfer>,
}

impl TransferGuard<'_> {
    /// `n` more bytes went through.
    pub fn advance(&self, n: u64) {
        self.transfer.done.fetch_add(n, Ordering::Relaxed);
    }
}

impl Drop for TransferGuard<'_> {
    fn drop(&mut self) {
        self.transfers
            .map
            .lock()
            .expect("transfers lock")
            .remove(&self.id);
    }
}

/// What the worker has done and is doing, at one moment: what a live display shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// Builds committed, or found committed already.
    pub builds_done: u64,
    /// Builds given up on after `max_attempts`, or deleted from Jenkins before jam got them.
    pub builds_failed: u64,
    /// Builds jam means to mirror and has not settled yet (in flight or awaiting a retry), as of the
    /// last poll or finished build.
    pub builds_pending: u64,
    /// Artifacts stored.
    pub artifacts: u64,
    /// Artifact bytes moved (counted as they pass, so a transfer under way counts what it moved so far).
    pub bytes: u64,
    /// The transfers under way, oldest first.
    pub in_flight: Vec<InFlight>,
}

/// One transfer under way, in a [`Progress`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFlight {
    /// The job's full name.
    pub job: String,
    /// The build number.
    pub build: u64,
    /// The artifact's path.
    pub path: String,
    /// Its length, when known.
    pub size: Option<u64>,
    /// Bytes through so far.
    pub done: u64,
    /// How long it has been running.
    pub running: Duration,
}

impl Progress {
    /// Reads the worker's counters, its board (pending builds per controller) and its transfers now.
    pub fn read(stats: &Stats, board: &ControllerBoard) -> Progress {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Progress {
            builds_done: n(&stats.builds_mirrored) + n(&stats.builds_already_committed),
            builds_failed: n(&stats.builds_failed) + n(&stats.builds_missed),
            builds_pending: board.snapshot().values().map(|s| s.pending).sum(),
            artifacts: n(&stats.artifacts),
            bytes: n(&stats.bytes),
            in_flight: stats
                .transfers
                .snapshot()
                .iter()
                .map(|t| InFlight {
                    job: t.job.clone(),
                    build: t.build,
                    path: t.path.clone(),
                    size: t.size,
                    done: n(&t.done),
                    running: t.started.elapsed(),
                })
                .collect(),
        }
    }

    /// Builds settled or to settle: done, failed and pending.
    pub fn builds_total(&self) -> u64 {
        self.builds_done + self.builds_failed + self.builds_pending
    }
}

/// What the worker knows about one controller, published after every poll and every finished build.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ControllerStatus {
    /// The largest, over the controller's jobs, of Jenkins' newest finished build number minus the newest
    /// build number jam has settled (mirrored, given up on, missed, or skipped by policy).
    pub lag_builds: u64,
    /// Since when the most-behind job has been behind (`None` when every job is caught up).
    pub behind_since: Option<Instant>,
    /// Finished builds jam means to mirror and has not committed yet (in flight or awaiting a retry).
    pub pending: u64,
    /// Whether the last poll of the controller succeeded.
    pub up: bool,
}

impl ControllerStatus {
    /// How long the most-behind job has been behind, in seconds (0 when caught up).
    pub fn lag_seconds(&self) -> f64 {
        self.behind_since.map_or(0.0, |t| t.elapsed().as_secs_f64())
    }
}

/// The worker's per-controller gauges, by source name.
#[derive(Debug, Default)]
pub struct ControllerBoard {
    map: Mutex<BTreeMap<String, ControllerStatus>>,
}

impl ControllerBoard {
    /// Replaces one controller's status.
    pub fn set(&self, controller: &str, status: ControllerStatus) {
        self.map
            .lock()
            .expect("board lock")
            .insert(controller.to_string(), status);
    }

    /// Changes one controller's status in place.
    pub fn update(&self, controller: &str, f: impl FnOnce(&mut ControllerStatus)) {
        let mut map = self.map.lock().expect("board lock");
        f(map.entry(controller.to_string()).or_default());
    }

    /// A copy of every controller's status.
    pub fn snapshot(&self) -> BTreeMap<String, ControllerStatus> {
        self.map.lock().expect("board lock").clone()
    }
}

/// Reports the worker's counters, its transfers and its byte budget.
pub(super) struct WorkerMetrics {
    pub(super) stats: std::sync::Arc<Stats>,
    pub(super) budget: ByteBudget,
    pub(super) budget_bytes: u64,
}

impl Collect for WorkerMetrics {
    fn collect(&self, out: &mut Exposition) {
        let st = &self.stats;
        out.counter(
            "jam_poll_cycles_total",
            "Poll cycles completed.",
            &st.cycles,
        );
        out.counter(
            "jam_builds_mirrored_total",
            "Builds committed (manifest written).",
            &st.builds_mirrored,
        );
        out.counter(
            "jam_builds_failed_total",
            "Builds given up on after max_attempts (recorded as failed in the job's index).",
            &st.builds_failed,
        );
        out.counter(
            "jam_build_attempts_failed_total",
            "Build attempts that failed (each is retried until max_attempts).",
            &st.build_failures,
        );
        out.counter(
            "jam_builds_missed_total",
            "Builds Jenkins deleted before jam could mirror them.",
            &st.builds_missed,
        );
        out.counter(
            "jam_builds_already_committed_total",
            "Builds found already committed in the store (repaired or skipped, nothing downloaded).",
            &st.builds_already_committed,
        );
        out.counter(
            "jam_artifacts_transferred_total",
            "Artifacts stored.",
            &st.artifacts,
        );
        out.counter(
            "jam_artifact_bytes_total",
            "Artifact bytes received from Jenkins and written to the store.",
            &st.bytes,
        );
        out.counter(
            "jam_artifact_retries_total",
            "Artifact transfers retried (broken, short or corrupt downloads, store write errors).",
            &st.artifact_retries,
        );
        st.transfer_seconds.write(
            out,
            "jam_artifact_transfer_seconds",
            "Duration of successful artifact transfers (Jenkins to store, one attempt).",
        );
        out.single(
            "jam_transfers_in_flight",
            "gauge",
            "Artifact transfers running now.",
            st.transfers_in_flight.load(Ordering::Relaxed),
        );
        out.single(
            "jam_buffered_bytes",
            "gauge",
            "Artifact bytes reserved from the buffer budget now.",
            self.budget.in_use(),
        );
        out.single(
            "jam_buffer_budget_bytes",
            "gauge",
            "The buffer budget (mirror.buffer_budget).",
            self.budget_bytes,
        );
        out.counter(
            "jam_retention_builds_deleted_total",
            "Builds deleted from the store by the retention policy.",
            &st.retention_deleted,
        );
    }
}

/// How one per-controller gauge reads a controller's status.
type Gauge = dyn Fn(&ControllerStatus) -> String;

/// Reports the per-controller gauges of the worker's board, for every configured controller.
pub(super) struct BoardMetrics {
    pub(super) board: std::sync::Arc<ControllerBoard>,
    pub(super) controllers: Vec<String>,
}

impl Collect for BoardMetrics {
    fn collect(&self, out: &mut Exposition) {
        let board = self.board.snapshot();
        let status = |n: &str| board.get(n).cloned().unwrap_or_default();
        let gauges: [(&str, &str, &Gauge); 4] = [
            (
                "jam_controller_up",
                "1 when the last poll of the controller succeeded.",
                &|s| u8::from(s.up).to_string(),
            ),
            (
                "jam_controller_lag_builds",
                "Largest over the controller's jobs of Jenkins' newest finished build number minus the newest build jam has settled.",
                &|s| s.lag_builds.to_string(),
            ),
            (
                "jam_controller_lag_seconds",
                "How long the controller's most-behind job has had a finished build newer than anything jam settled (0: caught up).",
                &|s| float((s.lag_seconds() * 1000.0).round() / 1000.0),
            ),
            (
                "jam_builds_pending",
                "Finished builds jam means to mirror and has not committed yet (in flight or awaiting a retry).",
                &|s| s.pending.to_string(),
            ),
        ];
        for (name, help, value) in gauges {
            let family = out.family(name, "gauge", help);
            for n in &self.controllers {
                family.sample("", &[("controller", n)], value(&status(n)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_reads_the_counters_the_board_and_the_transfers_under_way() {
        let stats = Stats::default();
        let board = ControllerBoard::default();
        stats.builds_mirrored.store(3, Ordering::Relaxed);
        stats.builds_already_committed.store(1, Ordering::Relaxed);
        stats.builds_failed.store(1, Ordering::Relaxed);
        stats.artifacts.store(40, Ordering::Relaxed);
        stats.bytes.store(5 << 20, Ordering::Relaxed);
        board.update("a", |s| s.pending = 2);
        board.update("b", |s| s.pending = 4);
        let first = stats
            .transfers
            .start("team/app".into(), 7, "dist/app.bin", Some(100));
        first.advance(30);
        let second = stats.transfers.start("lib".into(), 2, "x.jar", None);
        let p = Progress::read(&stats, &board);
        assert_eq!(
            (p.builds_done, p.builds_failed, p.builds_pending),
            (4, 1, 6)
        );
        assert_eq!(p.builds_total(), 11);
        assert_eq!((p.artifacts, p.bytes), (40, 5 << 20));
        let seen: Vec<_> = p
            .in_flight
            .iter()
            .map(|t| (t.job.as_str(), t.build, t.path.as_str(), t.size, t.done))
            .collect();
        assert_eq!(
            seen,
            [
                ("team/app", 7, "dist/app.bin", Some(100), 30),
                ("lib", 2, "x.jar", None, 0)
            ]
        );
        drop(first);
        let p = Progress::read(&stats, &board);
        assert_eq!(p.in_flight.len(), 1, "a finished transfer leaves the list");
        drop(second);
        assert!(Progress::read(&stats, &board).in_flight.is_empty());
    }
}
