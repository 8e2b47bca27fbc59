//! Several workers on one store: heartbeats, build claims and singletons, all leases on the store's own
//! conditional writes ([`lease`]); no other system takes part.
//!
//! - **Heartbeat.** Each worker keeps `.jam/workers/<id>` alive, renewing it every third of its lease
//!   (`mirror.lease`). At start a worker that finds a heartbeat for its own id watches it: if it changes,
//!   another live worker has that id and this one refuses to start ([`FleetError::DuplicateWorker`]);
//!   if it stands still for a lease (or names a process of this host that is certainly gone, or this
//!   worker holds the local directory's lock), it was a predecessor's and is taken over. A clean stop
//!   deletes the heartbeat.
//! - **Claims.** Before a build is downloaded its claim `.jam/claims/<build prefix>` is created; it is
//!   renewed while the build transfers and deleted after the commit or a failure. A claim held by a live
//!   worker means "skip"; one whose version stood still for a lease is taken over. A claim that another
//!   worker took over cancels the build's transfers, and every upload asks the claim before it completes
//!   ([`Claim`] is the store's [`Fence`]). The manifest's conditional create stays the arbiter.
//! - **Singletons.** Work done once per store (retention passes, the clean-up after dead workers) runs
//!   under `.jam/leases/<name>`, kept by one worker and taken over when it stops renewing.
//! - **Dead workers.** A heartbeat unchanged for [`DEAD_AFTER_LEASES`] leases, as the clean-up's holder
//!   observes it, is a dead worker's: its journaled uploads are aborted, its claims, journal and heartbeat
//!   removed ([`cleanup`]).
//!
//! Staleness is only ever judged by observation: the same version seen for longer than the lease on this
//! worker's monotonic clock. Timestamps in the documents are for people (`jam ls --workers`).
//!
//! At start the store is probed for conditional create and replace; a store that ignores them (Garage)
//! takes one worker, and a second is refused ([`FleetError::CannotCoordinate`]).

pub mod cleanup;
mod heartbeat;
pub mod identity;
pub mod lease;
mod stats;
pub mod survey;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, atomic::Ordering},
    time::Duration,
};

use object_store::path::Path;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::{
    format::layout,
    store::{Store, StoreError, write::Fence},
};
use lease::{Acquired, Held, LeaseDoc, Leases, Observer, Renewed};

pub use stats::FleetStats;

/// Where heartbeats live.
pub const WORKERS: &str = ".jam/workers";
/// Where build claims live.
pub const CLAIMS: &str = ".jam/claims";
/// Where singleton leases live.
pub const LEASES: &str = ".jam/leases";
/// After how many leases of standing still a heartbeat counts as a dead worker's, for the clean-up.
pub const DEAD_AFTER_LEASES: u32 = 5;
/// The singleton of the dead-worker clean-up.
pub const CLEANUP: &str = "cleanup";
/// The singleton of the retention passes.
pub const RETENTION: &str = "retention";

/// Why a worker cannot join the store's fleet.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FleetError {
    /// Another live worker has the same id.
    #[error(
        "another jam worker with id '{id}' is running on {store} ({holder}): its heartbeat {key} changed while \
         this one watched; give each worker its own id (--worker-id, JAM_WORKER_ID or mirror.worker_id; the \
         default is the host name, and on Kubernetes the pod name serves)"
    )]
    DuplicateWorker {
        /// The id.
        id: String,
        /// The store.
        store: String,
        /// The heartbeat's key.
        key: String,
        /// Who holds it, as its heartbeat says.
        holder: String,
    },
    /// The store ignores conditional writes and another worker is live on it.
    #[error(
        "{store} does not honour conditional writes ({what}), so workers cannot coordinate through it, and \
         another worker is live on it ({others}); run a single worker on this store, or use one that honours \
         If-None-Match and If-Match (AWS S3, SeaweedFS, MinIO, Ceph; Garage does not)"
    )]
    CannotCoordinate {
        /// The store.
        store: String,
        /// What the probe found ignored.
        what: String,
        /// The live workers seen.
        others: String,
    },
    /// Another process took over this worker's id while it ran (it had stopped renewing its heartbeat
    /// for longer than a lease, and the other watched it stand still).
    #[error(
        "another process took over worker id '{id}' while this one ran (this one had not renewed its heartbeat \
         within its lease); this one stopped. Give each worker its own id"
    )]
    Displaced {
        /// The id.
        id: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How a worker joins.
#[derive(Debug, Clone)]
pub struct FleetSettings {
    /// The worker's id.
    pub worker_id: String,
    /// Its lease.
    pub lease: Duration,
    /// The singletons it is willing to run ([`CLEANUP`], [`RETENTION`]).
    pub singletons: Vec<&'static str>,
}

/// This worker as a member of the store's fleet (cheap to clone).
#[derive(Clone)]
pub struct Fleet {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("worker_id", &self.inner.id)
            .field("store", &self.inner.store.describe())
            .finish_non_exhaustive()
    }
}

struct Inner {
    store: Store,
    id: String,
    instance: String,
    lease: Duration,
    /// Whether the store honours conditional writes.
    coordinated: bool,
    stats: Arc<FleetStats>,
    observer: Observer,
    claims: Leases,
    heartbeats: Leases,
    singletons: Leases,
    heartbeat: tokio::sync::Mutex<Option<Held>>,
    health: Mutex<Health>,
    wanted: Vec<&'static str>,
    held: Mutex<HashMap<&'static str, (Held, CancellationToken)>>,
    stop: CancellationToken,
    /// Cancelled when this worker must stop: another process took its id.
    fatal: CancellationToken,
    upkeep: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

#[derive(Debug, Default)]
struct Health {
    renewed: Option<Instant>,
    problem: Option<String>,
}

impl Fleet {
    /// Joins the store's fleet: probes the store's conditional writes, announces this worker (refusing a
    /// duplicate id), and starts the upkeep (heartbeat renewals, singletons, the look at other workers).
    pub async fn join(
        store: Store,
        settings: FleetSettings,
        stats: Arc<FleetStats>,
    ) -> Result<Fleet, FleetError> {
        let lease = settings.lease;
        let probe = Store::path(&format!(
            ".jam/probe/{}-{:016x}",
            layout::raw_encode(&settings.worker_id),
            rand::random::<u64>()
        ))?;
        let conditional = store.probe_conditional_writes(&probe).await?;
        stats.requests_heartbeat.fetch_add(4, Ordering::Relaxed);
        if !conditional.honoured() {
            tracing::warn!(
                store = %store.describe(),
                create = conditional.create,
                update = conditional.update,
                "the store ignores conditional writes: this worker must be the only one on it"
            );
        }
        let instance = format!("{:032x}", rand::random::<u128>());
        let id = settings.worker_id;
        let leases =
            |requests| Leases::new(store.clone(), lease, requests).owned_by(&id, &instance);
        let inner = Arc::new(Inner {
            claims: leases(stats.requests_claims.clone()),
            heartbeats: leases(stats.requests_heartbeat.clone()),
            singletons: leases(stats.requests_singletons.clone()),
            store,
            id,
            instance,
            lease,
            coordinated: conditional.honoured(),
            stats,
            observer: Observer::default(),
            heartbeat: tokio::sync::Mutex::new(None),
            health: Mutex::new(Health::default()),
            wanted: settings.singletons,
            held: Mutex::new(HashMap::new()),
            stop: CancellationToken::new(),
            fatal: CancellationToken::new(),
            upkeep: Mutex::new(None),
        });
        let held = heartbeat::register(&inner).await?;
        inner.health.lock().expect("health").renewed = Some(held.sent);
        inner.stats.heartbeat_ok.store(1, Ordering::Relaxed);
        *inner.heartbeat.lock().await = Some(held);
        if !conditional.honoured()
            && let Err(e) = heartbeat::refuse_company(&inner, &conditional).await
        {
            heartbeat::unregister(&inner).await;
            return Err(e);
        }
        let task = tokio::spawn(heartbeat::upkeep(inner.clone()));
        *inner.upkeep.lock().expect("upkeep") = Some(task);
        Ok(Fleet { inner })
    }

    /// The worker's id.
    pub fn worker_id(&self) -> &str {
        &self.inner.id
    }

    /// The lease.
    pub fn lease(&self) -> Duration {
        self.inner.lease
    }

    /// The counters (metrics).
    pub fn stats(&self) -> Arc<FleetStats> {
        self.inner.stats.clone()
    }

    /// Whether the store honours conditional writes (several workers can share it).
    pub fn coordinated(&self) -> bool {
        self.inner.coordinated
    }

    /// Cancelled when this worker must stop because another process took over its id.
    pub fn must_stop(&self) -> CancellationToken {
        self.inner.fatal.clone()
    }

    /// Readiness: `Ok` with a description while the heartbeat was renewed within the lease.
    pub fn health(&self) -> Result<String, String> {
        let h = self.inner.health.lock().expect("health");
        if let Some(p) = &h.problem {
            return Err(p.clone());
        }
        match h.renewed {
            Some(t) if t.elapsed() < self.inner.lease => Ok(format!(
                "worker '{}' renewed its heartbeat {:.1}s ago (lease {}s)",
                self.inner.id,
                t.elapsed().as_secs_f64(),
                self.inner.lease.as_secs_f64()
            )),
            Some(t) => Err(format!(
                "worker '{}' has not renewed its heartbeat for {:.0}s (lease {}s): the store does not take its \
                 writes; other workers will take its claims over",
                self.inner.id,
                t.elapsed().as_secs_f64(),
                self.inner.lease.as_secs_f64()
            )),
            None => Err("the heartbeat was never written".into()),
        }
    }

    /// Whether this worker holds the singleton `name` now, and a token cancelled when it loses it.
    pub fn singleton(&self, name: &str) -> Option<CancellationToken> {
        self.inner
            .held
            .lock()
            .expect("singletons")
            .get(name)
            .map(|(_, t)| t.clone())
    }

    /// The singleton `name`: a token cancelled when this worker loses it, if it holds it now or takes it
    /// now (free, or its holder stopped renewing); `None` while another worker holds it.
    pub async fn take_singleton(&self, name: &'static str) -> Option<CancellationToken> {
        if let Some(t) = self.singleton(name) {
            return Some(t);
        }
        heartbeat::try_singleton(&self.inner, name).await
    }

    /// Claims a build (its key prefix, as [`layout::Layout::build_prefix`] makes it) before anything of it
    /// is downloaded.
    pub async fn claim(&self, build_prefix: &str) -> Result<ClaimOutcome, StoreError> {
        let inner = &self.inner;
        let key = Store::path(&format!("{CLAIMS}/{build_prefix}"))?;
        let doc = inner.doc("claim", format!("{:032x}", rand::random::<u128>()));
        let (held, taken_over) = match inner.claims.acquire(&key, doc, &inner.observer).await? {
            Acquired::Won(h) => {
                inner.stats.claims_won.fetch_add(1, Ordering::Relaxed);
                (h, false)
            }
            Acquired::TakenOver(h, previous) => {
                inner
                    .stats
                    .claims_taken_over
                    .fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    claim = %key,
                    previous = previous.as_ref().map(|d| d.holder.as_str()).unwrap_or("?"),
                    "took over a build claim whose holder stopped renewing it"
                );
                (h, true)
            }
            Acquired::Busy(doc) => {
                inner.stats.claims_lost.fetch_add(1, Ordering::Relaxed);
                return Ok(ClaimOutcome::Busy {
                    holder: doc.map(|d| d.holder),
                });
            }
        };
        Ok(ClaimOutcome::Held(Claim::start(
            inner.clone(),
            held,
            taken_over,
        )))
    }

    /// Counts a commit another worker made first.
    pub fn commit_lost(&self) {
        self.inner
            .stats
            .commits_lost
            .fetch_add(1, Ordering::Relaxed);
    }

    /// The guard for the uploads S3 lists for a journaled key (see [`cleanup::Guard`]).
    pub async fn upload_guard(&self) -> Result<cleanup::Guard, StoreError> {
        cleanup::Guard::new(&self.inner.store, &self.inner.id).await
    }

    /// Leaves the fleet: stops the upkeep, releases the singletons and deletes the heartbeat (if it is
    /// still this worker's), so a restart need not wait. Call after every build task has ended.
    pub async fn leave(&self) {
        self.inner.stop.cancel();
        let task = self.inner.upkeep.lock().expect("upkeep").take();
        if let Some(task) = task {
            let _ = task.await;
        }
        let held: Vec<_> = self
            .inner
            .held
            .lock()
            .expect("singletons")
            .drain()
            .collect();
        for (_, (h, token)) in held {
            token.cancel();
            let _ = self.inner.singletons.release(h).await;
        }
        heartbeat::unregister(&self.inner).await;
    }
}

impl Inner {
    /// A fresh lease document of this worker.
    fn doc(&self, kind: &str, token: String) -> LeaseDoc {
        let now = crate::format::manifest::now_rfc3339();
        LeaseDoc {
            format: 1,
            kind: kind.into(),
            holder: self.id.clone(),
            instance: self.instance.clone(),
            token,
            seq: 0,
            lease_ms: self.lease.as_millis() as u64,
            host: identity::host_name(),
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").into(),
            written_at: now.clone(),
            since: now,
            process: None,
        }
    }

    /// Bounds one lease request so a store that stopped answering cannot hold the upkeep.
    fn timeout(&self) -> Duration {
        self.lease / 3
    }
}

/// How a claim attempt ended.
#[derive(Debug)]
pub enum ClaimOutcome {
    /// This worker holds the build's claim now.
    Held(Claim),
    /// Another live worker holds it (its id, when its claim parsed).
    Busy {
        /// The holder's worker id.
        holder: Option<String>,
    },
}

/// A build claim this worker holds, renewed in the background until released. It is the [`Fence`] of the
/// build's uploads: a claim that was taken over refuses their completion.
#[derive(Clone)]
pub struct Claim {
    state: Arc<ClaimState>,
}

impl std::fmt::Debug for Claim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claim")
            .field("lost", &self.is_lost())
            .finish_non_exhaustive()
    }
}

struct ClaimState {
    inner: Arc<Inner>,
    held: tokio::sync::Mutex<Option<Held>>,
    lost: CancellationToken,
    stop: CancellationToken,
    taken_over: bool,
}

impl Drop for ClaimState {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Claim {
    fn start(inner: Arc<Inner>, held: Held, taken_over: bool) -> Claim {
        let state = Arc::new(ClaimState {
            inner,
            held: tokio::sync::Mutex::new(Some(held)),
            lost: CancellationToken::new(),
            stop: CancellationToken::new(),
            taken_over,
        });
        let weak = Arc::downgrade(&state);
        let stop = state.stop.clone();
        let every = state.inner.lease / 3;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(every) => {}
                }
                let Some(state) = weak.upgrade() else { return };
                if state.renew().await.is_err() {
                    return;
                }
            }
        });
        Claim { state }
    }

    /// Whether the claim was taken from a worker that had stopped renewing it.
    pub fn taken_over(&self) -> bool {
        self.state.taken_over
    }

    /// Cancelled when another worker takes the claim over.
    pub fn lost_token(&self) -> CancellationToken {
        self.state.lost.clone()
    }

    /// Whether another worker took the claim over.
    pub fn is_lost(&self) -> bool {
        self.state.lost.is_cancelled()
    }

    /// Makes sure the claim is still this worker's (at once inside its safe window, else by renewing).
    pub async fn ensure(&self) -> Result<(), String> {
        let s = &self.state;
        let mut guard = s.held.lock().await;
        let Some(held) = guard.as_mut() else {
            return Err("the build's claim was taken over by another worker".into());
        };
        match tokio::time::timeout(s.inner.timeout(), s.inner.claims.ensure(held)).await {
            Ok(Ok(Renewed::Yes)) => Ok(()),
            Ok(Ok(Renewed::Lost)) => {
                s.lost_now(&mut guard);
                Err("the build's claim was taken over by another worker".into())
            }
            Ok(Err(e)) => Err(format!("the build's claim could not be confirmed: {e}")),
            Err(_) => {
                Err("the build's claim could not be confirmed: the store did not answer".into())
            }
        }
    }

    /// Releases the claim: deletes it if it is still this worker's. Returns `false` when it turns out that
    /// another worker took it over (counted as a revoked claim).
    pub async fn release(self) -> bool {
        let s = &self.state;
        s.stop.cancel();
        if self.ensure().await.is_err() && self.is_lost() {
            return false;
        }
        let held = s.held.lock().await.take();
        if let Some(h) = held {
            let key = h.key.clone();
            if let Err(e) = s.inner.claims.release(h).await {
                tracing::warn!(claim = %key, error = %e, "could not release a build claim; it expires after its lease");
            }
        }
        !self.is_lost()
    }
}

impl ClaimState {
    /// One renewal; `Err` when the claim is gone (the renewals end).
    async fn renew(&self) -> Result<(), ()> {
        let mut guard = self.held.lock().await;
        let Some(held) = guard.as_mut() else {
            return Err(());
        };
        match tokio::time::timeout(self.inner.timeout(), self.inner.claims.renew(held)).await {
            Ok(Ok(Renewed::Yes)) => Ok(()),
            Ok(Ok(Renewed::Lost)) => {
                self.lost_now(&mut guard);
                Err(())
            }
            Ok(Err(e)) => {
                tracing::warn!(claim = %held.key, error = %e, "could not renew a build claim; trying again");
                Ok(())
            }
            Err(_) => {
                tracing::warn!(claim = %held.key, "renewing a build claim timed out; trying again");
                Ok(())
            }
        }
    }

    fn lost_now(&self, held: &mut Option<Held>) {
        if let Some(h) = held.take() {
            self.inner
                .stats
                .claims_revoked
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(claim = %h.key, "another worker took over this worker's build claim; abandoning the build");
        }
        self.lost.cancel();
    }
}

#[async_trait::async_trait]
impl Fence for Claim {
    async fn check(&self) -> Result<(), String> {
        self.ensure().await
    }
}

/// The heartbeat key of a worker id.
pub fn worker_key(id: &str) -> Result<Path, StoreError> {
    Store::path(&format!("{WORKERS}/{}", layout::raw_encode(id)))
}
