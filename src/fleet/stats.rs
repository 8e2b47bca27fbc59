//! The coordination's counters and gauges, reported on `/metrics` (the names are in the README's
//! Operations table).

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use crate::metrics::{Collect, Exposition};

/// What coordinating with other workers costs and how its races end.
#[derive(Debug, Default)]
pub struct FleetStats {
    /// Build claims created (the build was free).
    pub claims_won: AtomicU64,
    /// Build claims found held by another live worker (the build was skipped).
    pub claims_lost: AtomicU64,
    /// Build claims taken over from a worker that had stopped renewing them.
    pub claims_taken_over: AtomicU64,
    /// Claims of this worker that another worker took over (this worker had stopped renewing in time).
    pub claims_revoked: AtomicU64,
    /// Builds whose commit another worker made first (the manifest existed).
    pub commits_lost: AtomicU64,
    /// Heartbeats of other workers seen changing within a lease at the last look (this worker included).
    pub workers_live: AtomicU64,
    /// 1 while this worker's last heartbeat renewal succeeded within its lease.
    pub heartbeat_ok: AtomicU64,
    /// Dead workers whose leftovers this worker removed.
    pub dead_workers_cleaned: AtomicU64,
    /// Store requests for claims (create, read, take over, renew, release).
    pub requests_claims: Arc<AtomicU64>,
    /// Store requests for this worker's heartbeat and the look at the others'.
    pub requests_heartbeat: Arc<AtomicU64>,
    /// Store requests for singletons and the dead-worker clean-up.
    pub requests_singletons: Arc<AtomicU64>,
}

impl FleetStats {
    /// Every store request coordination made.
    pub fn coordination_requests(&self) -> u64 {
        self.requests_claims.load(Ordering::Relaxed)
            + self.requests_heartbeat.load(Ordering::Relaxed)
            + self.requests_singletons.load(Ordering::Relaxed)
    }
}

impl Collect for FleetStats {
    fn collect(&self, out: &mut Exposition) {
        out.counter(
            "jam_claims_won_total",
            "Build claims created: the build was free and this worker mirrors it.",
            &self.claims_won,
        );
        out.counter(
            "jam_claims_lost_total",
            "Build claims held by another live worker: the build was left to it.",
            &self.claims_lost,
        );
        out.counter(
            "jam_claims_taken_over_total",
            "Build claims taken over from a worker that stopped renewing them.",
            &self.claims_taken_over,
        );
        out.counter(
            "jam_claims_revoked_total",
            "Claims of this worker that another worker took over after this one stopped renewing in time.",
            &self.claims_revoked,
        );
        out.counter(
            "jam_commits_lost_total",
            "Builds another worker committed first (this worker's manifest create found one).",
            &self.commits_lost,
        );
        out.single(
            "jam_workers_live",
            "gauge",
            "Workers on the store whose heartbeat changed within a lease at this worker's last look.",
            self.workers_live.load(Ordering::Relaxed),
        );
        out.single(
            "jam_heartbeat_ok",
            "gauge",
            "1 while this worker renews its heartbeat within its lease.",
            self.heartbeat_ok.load(Ordering::Relaxed),
        );
        out.counter(
            "jam_dead_workers_cleaned_total",
            "Dead workers whose uploads, claims, journal and heartbeat this worker removed.",
            &self.dead_workers_cleaned,
        );
        let family = out.family(
            "jam_coordination_requests_total",
            "counter",
            "Store requests made to coordinate with other workers, by purpose.",
        );
        for (kind, c) in [
            ("claims", &self.requests_claims),
            ("heartbeat", &self.requests_heartbeat),
            ("singletons", &self.requests_singletons),
        ] {
            family.sample("", &[("kind", kind)], c.load(Ordering::Relaxed));
        }
    }
}
