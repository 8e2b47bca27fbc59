//! This worker's heartbeat: announced at start (refusing a live duplicate of its id), renewed by the
//! upkeep task every third of the lease, deleted at a clean stop. The upkeep task also keeps the
//! singletons and looks at the other workers' heartbeats once a lease (the live-workers gauge, and the
//! clean-up after dead workers when this worker holds that singleton).

use std::{sync::Arc, sync::atomic::Ordering, time::Duration};

use tokio::time::Instant;

use super::{
    CLEANUP, DEAD_AFTER_LEASES, FleetError, Inner, WORKERS, cleanup,
    identity::ProcessId,
    lease::{Acquired, Held, LeaseDoc, Renewed},
    worker_key,
};
use crate::store::{
    Backend, Store,
    versioned::{Conditional, Versioned},
};

/// Announces this worker: creates its heartbeat, or takes over one that is certainly a predecessor's.
pub(super) async fn register(inner: &Inner) -> Result<Held, FleetError> {
    let key = worker_key(&inner.id)?;
    let mut doc = inner.doc("worker", inner.instance.clone());
    doc.process = ProcessId::current();
    let leases = &inner.heartbeats;
    // A local directory or memory store has one writing process (jam mirror holds the directory's lock):
    // any heartbeat there is a predecessor's.
    let exclusive = inner.store.backend() != Backend::S3;
    for _ in 0..5 {
        let sent = Instant::now();
        let Some((bytes, version)) = leases.read(&key).await? else {
            match leases.store.create_versioned(&key, doc.to_json()).await? {
                Versioned::Written(version) => {
                    leases.requests.fetch_add(1, Ordering::Relaxed);
                    return Ok(Held {
                        key,
                        version,
                        doc,
                        sent,
                    });
                }
                Versioned::Conflict => continue,
            }
        };
        let current = LeaseDoc::parse(&bytes);
        let gone = exclusive
            || current.as_ref().is_none_or(|d| {
                d.kind == "dead" || d.process.as_ref().is_some_and(ProcessId::certainly_gone)
            });
        let version = if gone {
            version
        } else {
            let current = current.expect("parsed");
            let lease = current.lease().max(inner.lease);
            tracing::info!(
                worker = %inner.id,
                holder = %current.describe(),
                wait_s = lease.as_secs_f64(),
                "a heartbeat with this worker's id exists; watching it to tell whether that worker is alive"
            );
            match watch(inner, &key, &version, lease).await? {
                Watched::StoodStill => version,
                Watched::Vanished => continue,
                Watched::Changed => {
                    return Err(FleetError::DuplicateWorker {
                        id: inner.id.clone(),
                        store: inner.store.describe().to_string(),
                        key: key.to_string(),
                        holder: current.describe(),
                    });
                }
            }
        };
        let sent = Instant::now();
        leases.requests.fetch_add(1, Ordering::Relaxed);
        if let Versioned::Written(version) = leases
            .store
            .replace_if(&key, doc.to_json(), &version)
            .await?
        {
            tracing::info!(worker = %inner.id, "took over the heartbeat a previous run of this worker left");
            return Ok(Held {
                key,
                version,
                doc,
                sent,
            });
        }
    }
    Err(FleetError::DuplicateWorker {
        id: inner.id.clone(),
        store: inner.store.describe().to_string(),
        key: key.to_string(),
        holder: "another process keeps rewriting it".into(),
    })
}

enum Watched {
    StoodStill,
    Changed,
    Vanished,
}

/// Watches a heartbeat for up to `lease`: whether it changes, vanishes, or stands still throughout.
async fn watch(
    inner: &Inner,
    key: &object_store::path::Path,
    version: &crate::store::versioned::Version,
    lease: Duration,
) -> Result<Watched, FleetError> {
    let started = Instant::now();
    let every = (lease / 10).clamp(Duration::from_millis(100), Duration::from_secs(2));
    loop {
        tokio::time::sleep(every).await;
        inner.heartbeats.requests.fetch_add(1, Ordering::Relaxed);
        let Some(meta) = inner.store.head(key).await? else {
            return Ok(Watched::Vanished);
        };
        if meta.e_tag != version.e_tag || meta.version != version.version {
            return Ok(Watched::Changed);
        }
        if started.elapsed() > lease {
            return Ok(Watched::StoodStill);
        }
    }
}

/// On a store that ignores conditional writes: refuses to run beside another live worker (one whose
/// heartbeat changes within a lease).
pub(super) async fn refuse_company(inner: &Inner, found: &Conditional) -> Result<(), FleetError> {
    let mine = worker_key(&inner.id)?;
    let others = |metas: Vec<object_store::ObjectMeta>| -> Vec<object_store::ObjectMeta> {
        metas.into_iter().filter(|m| m.location != mine).collect()
    };
    let before = others(inner.store.list_all(&Store::path(WORKERS)?).await?);
    if before.is_empty() {
        return Ok(());
    }
    tokio::time::sleep(inner.lease).await;
    let after = others(inner.store.list_all(&Store::path(WORKERS)?).await?);
    let live: Vec<String> = after
        .iter()
        .filter(|m| {
            before
                .iter()
                .find(|b| b.location == m.location)
                .is_none_or(|b| b.e_tag != m.e_tag)
        })
        .map(|m| m.location.filename().unwrap_or_default().to_string())
        .collect();
    if live.is_empty() {
        return Ok(());
    }
    let mut what = Vec::new();
    if !found.create {
        what.push("a create over an existing object succeeded");
    }
    if !found.update {
        what.push("a replace with a stale ETag succeeded");
    }
    Err(FleetError::CannotCoordinate {
        store: inner.store.describe().to_string(),
        what: what.join(", "),
        others: live.join(", "),
    })
}

/// Deletes the heartbeat if it is still this worker's.
pub(super) async fn unregister(inner: &Inner) {
    let held = inner.heartbeat.lock().await.take();
    if let Some(h) = held {
        inner.stats.heartbeat_ok.store(0, Ordering::Relaxed);
        if let Err(e) = inner.heartbeats.release(h).await {
            tracing::warn!(error = %e, "could not delete this worker's heartbeat; it goes stale and is cleaned up");
        }
    }
}

/// The upkeep task: heartbeat renewals, singletons, and a look at the other workers once a lease.
pub(super) async fn upkeep(inner: Arc<Inner>) {
    let every = inner.lease / 3;
    let mut last_look: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = inner.stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        renew_heartbeat(&inner).await;
        if inner.fatal.is_cancelled() {
            return;
        }
        let look = last_look.is_none_or(|t| t.elapsed() >= inner.lease);
        keep_singletons(&inner, look).await;
        if look {
            last_look = Some(Instant::now());
            if let Err(e) = look_at_workers(&inner).await {
                tracing::warn!(error = %e, "could not look at the other workers' heartbeats");
            }
        }
    }
}

async fn renew_heartbeat(inner: &Inner) {
    let mut guard = inner.heartbeat.lock().await;
    let Some(held) = guard.as_mut() else {
        return;
    };
    let renewed = tokio::time::timeout(inner.timeout(), inner.heartbeats.renew(held)).await;
    match renewed {
        Ok(Ok(Renewed::Yes)) => {
            let mut h = inner.health.lock().expect("health");
            h.renewed = Some(held.sent);
            h.problem = None;
            inner.stats.heartbeat_ok.store(1, Ordering::Relaxed);
            return;
        }
        Ok(Ok(Renewed::Lost)) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "could not renew this worker's heartbeat; trying again");
            mark_stale(inner);
            return;
        }
        Err(_) => {
            tracing::warn!("renewing this worker's heartbeat timed out; trying again");
            mark_stale(inner);
            return;
        }
    }
    // Lost: removed by a live worker's clean-up (this one looked dead), or taken by another process.
    let key = held.key.clone();
    let current = match inner.heartbeats.read(&key).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "could not read this worker's heartbeat");
            mark_stale(inner);
            return;
        }
    };
    let doc = current.as_ref().and_then(|(b, _)| LeaseDoc::parse(b));
    match doc {
        Some(d) if d.instance != inner.instance && d.kind == "worker" => {
            let msg = format!(
                "another process took over worker id '{}' ({}); stopping this one",
                inner.id,
                d.describe()
            );
            tracing::error!("{msg}");
            inner.health.lock().expect("health").problem = Some(msg);
            inner.stats.heartbeat_ok.store(0, Ordering::Relaxed);
            *guard = None;
            inner.fatal.cancel();
        }
        _ => {
            // Declared dead (the clean-up's mark, or already removed): announce again once it is gone.
            tracing::warn!(
                worker = %inner.id,
                "this worker's heartbeat was removed by another worker's clean-up (it looked dead); announcing it again"
            );
            mark_stale(inner);
            if current.is_none() {
                let mut doc = held.doc.clone();
                doc.seq += 1;
                let sent = Instant::now();
                inner.heartbeats.requests.fetch_add(1, Ordering::Relaxed);
                if let Ok(Versioned::Written(version)) =
                    inner.store.create_versioned(&key, doc.to_json()).await
                {
                    *held = Held {
                        key,
                        version,
                        doc,
                        sent,
                    };
                    inner.health.lock().expect("health").renewed = Some(sent);
                    inner.stats.heartbeat_ok.store(1, Ordering::Relaxed);
                }
            }
        }
    }
}

fn mark_stale(inner: &Inner) {
    let h = inner.health.lock().expect("health");
    if h.renewed.is_none_or(|t| t.elapsed() >= inner.lease) {
        inner.stats.heartbeat_ok.store(0, Ordering::Relaxed);
    }
}

/// Renews the singletons held; tries to take the others (when `attempt`: once a lease).
async fn keep_singletons(inner: &Inner, attempt: bool) {
    for &name in &inner.wanted {
        let held = inner.held.lock().expect("singletons").remove(name);
        match held {
            Some((mut h, token)) => {
                match tokio::time::timeout(inner.timeout(), inner.singletons.renew(&mut h)).await {
                    Ok(Ok(Renewed::Lost)) => {
                        tracing::warn!(singleton = name, "another worker took over this singleton");
                        token.cancel();
                    }
                    _ => {
                        inner
                            .held
                            .lock()
                            .expect("singletons")
                            .insert(name, (h, token));
                    }
                }
            }
            None if attempt => {
                try_singleton(inner, name).await;
            }
            None => {}
        }
    }
}

/// Tries to take the singleton `name` (free, or stood still for a lease); the token of the holding.
pub(super) async fn try_singleton(
    inner: &Inner,
    name: &'static str,
) -> Option<tokio_util::sync::CancellationToken> {
    let key = crate::store::Store::path(&format!("{}/{name}", super::LEASES)).ok()?;
    let doc = inner.doc("singleton", format!("{:032x}", rand::random::<u128>()));
    let got = tokio::time::timeout(
        inner.timeout(),
        inner.singletons.acquire(&key, doc, &inner.observer),
    )
    .await;
    let Ok(Ok(Acquired::Won(h) | Acquired::TakenOver(h, _))) = got else {
        return None;
    };
    tracing::info!(singleton = name, "this worker now runs this singleton");
    let token = tokio_util::sync::CancellationToken::new();
    inner
        .held
        .lock()
        .expect("singletons")
        .insert(name, (h, token.clone()));
    Some(token)
}

/// Lists the heartbeats: counts the live ones, and, holding the clean-up singleton, cleans up after the
/// workers whose heartbeat stood still for [`DEAD_AFTER_LEASES`] leases.
async fn look_at_workers(inner: &Inner) -> Result<(), crate::store::StoreError> {
    inner.heartbeats.requests.fetch_add(1, Ordering::Relaxed);
    let metas = inner.store.list_all(&Store::path(WORKERS)?).await?;
    let cleaning = inner.held.lock().expect("singletons").contains_key(CLEANUP);
    let mine = worker_key(&inner.id)?;
    let mut live = 0;
    for m in metas {
        let version = crate::store::versioned::Version {
            e_tag: m.e_tag.clone(),
            version: m.version.clone(),
        };
        let still = inner.observer.sight(m.location.as_ref(), &version);
        if m.location == mine || still <= inner.lease {
            live += 1;
            continue;
        }
        if cleaning && still > inner.lease * DEAD_AFTER_LEASES {
            match cleanup::clean_dead(inner, &m.location, &version).await {
                Ok(true) => {
                    inner.observer.forget(m.location.as_ref());
                    inner
                        .stats
                        .dead_workers_cleaned
                        .fetch_add(1, Ordering::Relaxed);
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(heartbeat = %m.location, error = %e, "could not clean up after a dead worker; trying again")
                }
            }
        }
    }
    inner.stats.workers_live.store(live, Ordering::Relaxed);
    Ok(())
}
