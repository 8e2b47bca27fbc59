//! The lease: a small JSON object that one holder keeps alive by rewriting it with `If-Match` on the
//! version it last wrote, and that another worker may take over with `If-Match` on the version it
//! *observed*, once it has seen that same version unchanged for longer than the lease on its own
//! monotonic clock. Heartbeats, build claims and singletons are all leases.
//!
//! No clock of another host is ever compared with this one's: a lease document carries the holder's wall
//! time for people to read (`written_at`), and nothing decides by it. The holder measures its own safety
//! from the moment it *sent* its last successful write: nobody can have started to observe that version
//! earlier, so until [`SAFE_FRACTION`] of the lease has passed since, no one can have taken it over.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use object_store::path::Path;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::store::{
    Store, StoreError,
    versioned::{Version, Versioned},
};

/// How much of its lease a holder treats as certainly its own after a write was sent: the rest is the
/// margin for the write's own latency and for clocks running at slightly different rates.
pub const SAFE_FRACTION: f64 = 0.75;

/// The body of every lease object (heartbeats, claims, singletons).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LeaseDoc {
    /// Always 1.
    pub format: u32,
    /// `worker`, `claim` or `singleton`.
    pub kind: String,
    /// The worker id of the holder.
    pub holder: String,
    /// The holder's process: random per `jam mirror` process.
    pub instance: String,
    /// Random per acquisition: tells this holding from an earlier one by the same process.
    pub token: String,
    /// Counts the holder's writes (every write differs, so its ETag does).
    pub seq: u64,
    /// The lease the holder promises to renew within, in milliseconds.
    pub lease_ms: u64,
    /// The holder's host name.
    pub host: String,
    /// The holder's process id.
    pub pid: u32,
    /// The holder's jam version.
    pub version: String,
    /// When the holder wrote this, by the holder's own clock (for people; never compared).
    pub written_at: String,
    /// When the holder first took the lease, by its own clock (for people; never compared).
    pub since: String,
    /// For a worker's heartbeat: what identifies its process on its host (a same-host restart tells a
    /// dead predecessor at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<super::identity::ProcessId>,
}

impl LeaseDoc {
    /// The document as stored.
    pub fn to_json(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).expect("lease serializes"))
    }

    /// Parses a stored document; `None` when it is not one.
    pub fn parse(bytes: &[u8]) -> Option<LeaseDoc> {
        serde_json::from_slice(bytes).ok()
    }

    /// The lease the holder promised.
    pub fn lease(&self) -> Duration {
        Duration::from_millis(self.lease_ms)
    }

    /// "host pid N, since T (its clock)", for messages.
    pub fn describe(&self) -> String {
        format!(
            "host '{}', pid {}, jam {}, holding since {} by its clock",
            self.host, self.pid, self.version, self.since
        )
    }
}

/// A lease this worker holds: where, the version it last wrote, and when it sent that write.
#[derive(Debug, Clone)]
pub struct Held {
    /// The lease object.
    pub key: Path,
    /// The version of the holder's last write.
    pub version: Version,
    /// The document last written.
    pub doc: LeaseDoc,
    /// When the last successful write was sent.
    pub sent: Instant,
}

impl Held {
    /// Whether nobody can have taken the lease over yet (see the module documentation).
    pub fn safe(&self, lease: Duration) -> bool {
        self.sent.elapsed() < lease.mul_f64(SAFE_FRACTION)
    }
}

/// How an attempt to take a lease ended.
#[derive(Debug)]
pub enum Acquired {
    /// It was free: created.
    Won(Held),
    /// Its holder had stopped renewing: taken over (the previous document, when it parsed).
    TakenOver(Held, Option<Box<LeaseDoc>>),
    /// Someone holds it (their document, when it parsed).
    Busy(Option<Box<LeaseDoc>>),
}

/// How a renewal ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Renewed {
    /// Renewed.
    Yes,
    /// Someone else wrote the lease, or it is gone: it is no longer this holder's.
    Lost,
}

/// What this worker has seen of other holders' leases: per key, the version and since when (monotonic)
/// it has been the same.
#[derive(Debug, Default)]
pub struct Observer {
    seen: Mutex<HashMap<String, (Version, Instant, Instant)>>,
}

impl Observer {
    /// Records a sighting of `version` at `key`; returns for how long this same version has been seen
    /// (zero the first time, or when it changed).
    pub fn sight(&self, key: &str, version: &Version) -> Duration {
        let now = Instant::now();
        let mut seen = self.seen.lock().expect("observer lock");
        if seen.len() > 4096 {
            // Keys not sighted for an hour are for builds long settled.
            seen.retain(|_, (_, _, last)| now.duration_since(*last) < Duration::from_secs(3600));
        }
        match seen.get_mut(key) {
            Some((v, since, last)) if v == version => {
                *last = now;
                now.duration_since(*since)
            }
            _ => {
                seen.insert(key.to_string(), (version.clone(), now, now));
                Duration::ZERO
            }
        }
    }

    /// Forgets a key (its lease was taken or removed).
    pub fn forget(&self, key: &str) {
        self.seen.lock().expect("observer lock").remove(key);
    }
}

/// The writes of a lease: what a holder and its contenders do, each store request counted.
#[derive(Debug, Clone)]
pub struct Leases {
    /// The store.
    pub store: Store,
    /// This worker's lease.
    pub lease: Duration,
    /// Store requests made through these leases.
    pub requests: Arc<AtomicU64>,
    /// This worker (id, instance): a lease its own predecessor left (same id, another instance) is taken
    /// over at once, since no other live worker has this id.
    pub owner: Option<(String, String)>,
}

impl Leases {
    /// Leases in `store` of length `lease`, counting their requests in `requests`.
    pub fn new(store: Store, lease: Duration, requests: Arc<AtomicU64>) -> Leases {
        Leases {
            store,
            lease,
            requests,
            owner: None,
        }
    }

    /// The same leases, held by `id` in process `instance`.
    pub fn owned_by(self, id: &str, instance: &str) -> Leases {
        Leases {
            owner: Some((id.to_string(), instance.to_string())),
            ..self
        }
    }

    fn count(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Reads a lease object with its version (one counted request).
    pub async fn read(&self, key: &Path) -> Result<Option<(Bytes, Version)>, StoreError> {
        self.count();
        self.store.get_versioned(key).await
    }

    /// Deletes a lease object (one counted request).
    pub async fn delete(&self, key: &Path) -> Result<(), StoreError> {
        self.count();
        self.store.delete(key).await
    }

    async fn create(&self, key: &Path, doc: &LeaseDoc) -> Result<Versioned, StoreError> {
        self.count();
        self.store.create_versioned(key, doc.to_json()).await
    }

    async fn replace(
        &self,
        key: &Path,
        doc: &LeaseDoc,
        version: &Version,
    ) -> Result<Versioned, StoreError> {
        self.count();
        self.store.replace_if(key, doc.to_json(), version).await
    }

    /// Takes the lease at `key` with `doc`: creates it, or takes it over from a holder whose version this
    /// worker has seen unchanged for longer than the lease (the longer of the holder's and its own).
    pub async fn acquire(
        &self,
        key: &Path,
        doc: LeaseDoc,
        observer: &Observer,
    ) -> Result<Acquired, StoreError> {
        let sent = Instant::now();
        if let Versioned::Written(version) = self.create(key, &doc).await? {
            observer.forget(key.as_ref());
            return Ok(Acquired::Won(Held {
                key: key.clone(),
                version,
                doc,
                sent,
            }));
        }
        let Some((bytes, version)) = self.read(key).await? else {
            // Released between the two requests: free on the next attempt.
            return Ok(Acquired::Busy(None));
        };
        let current = LeaseDoc::parse(&bytes);
        self.take_if_stale(key, doc, observer, version, current)
            .await
    }

    /// Takes the lease from the holder of `version` (just read, with its document `current`) if this
    /// worker has seen that version for longer than the lease.
    pub async fn take_if_stale(
        &self,
        key: &Path,
        doc: LeaseDoc,
        observer: &Observer,
        version: Version,
        current: Option<LeaseDoc>,
    ) -> Result<Acquired, StoreError> {
        let lease = current
            .as_ref()
            .map_or(self.lease, |c| c.lease().max(self.lease));
        let predecessor = match (&self.owner, &current) {
            (Some((id, instance)), Some(c)) => &c.holder == id && &c.instance != instance,
            _ => false,
        };
        let current = current.map(Box::new);
        if !predecessor && observer.sight(key.as_ref(), &version) <= lease {
            return Ok(Acquired::Busy(current));
        }
        let sent = Instant::now();
        match self.replace(key, &doc, &version).await? {
            Versioned::Written(v) => {
                observer.forget(key.as_ref());
                Ok(Acquired::TakenOver(
                    Held {
                        key: key.clone(),
                        version: v,
                        doc,
                        sent,
                    },
                    current,
                ))
            }
            Versioned::Conflict => Ok(Acquired::Busy(current)),
        }
    }

    /// Rewrites a held lease (`If-Match` on the version last written). A conflict whose object turns out
    /// to hold this very holding (a write whose answer was lost) is adopted and written again.
    pub async fn renew(&self, held: &mut Held) -> Result<Renewed, StoreError> {
        for _ in 0..2 {
            let mut doc = held.doc.clone();
            doc.seq += 1;
            doc.written_at = crate::format::manifest::now_rfc3339();
            let sent = Instant::now();
            match self.replace(&held.key, &doc, &held.version).await? {
                Versioned::Written(v) => {
                    *held = Held {
                        key: held.key.clone(),
                        version: v,
                        doc,
                        sent,
                    };
                    return Ok(Renewed::Yes);
                }
                Versioned::Conflict => {
                    let Some((bytes, version)) = self.read(&held.key).await? else {
                        return Ok(Renewed::Lost);
                    };
                    match LeaseDoc::parse(&bytes) {
                        // Only a write of this very holding (a clean-up's "dead" mark keeps the
                        // instance and token, and is not this holder's).
                        Some(d)
                            if d.instance == held.doc.instance
                                && d.token == held.doc.token
                                && d.kind == held.doc.kind =>
                        {
                            held.version = version;
                            held.doc = d;
                        }
                        _ => return Ok(Renewed::Lost),
                    }
                }
            }
        }
        Ok(Renewed::Lost)
    }

    /// Makes sure the lease is still this holder's: at once while it is [`Held::safe`], else by
    /// renewing it.
    pub async fn ensure(&self, held: &mut Held) -> Result<Renewed, StoreError> {
        if held.safe(self.lease) {
            return Ok(Renewed::Yes);
        }
        self.renew(held).await
    }

    /// Deletes a held lease, if it is still this holder's (renewed first when it is no longer certainly
    /// so; S3 has no conditional delete, so a delete happens only inside the safe window).
    pub async fn release(&self, mut held: Held) -> Result<Renewed, StoreError> {
        if self.ensure(&mut held).await? == Renewed::Lost {
            return Ok(Renewed::Lost);
        }
        self.delete(&held.key).await?;
        Ok(Renewed::Yes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StoreConfig;

    pub(crate) fn doc(holder: &str, lease: Duration) -> LeaseDoc {
        LeaseDoc {
            format: 1,
            kind: "claim".into(),
            holder: holder.into(),
            instance: format!("{holder}-instance"),
            token: format!("{:032x}", rand::random::<u128>()),
            seq: 0,
            lease_ms: lease.as_millis() as u64,
            host: "h".into(),
            pid: 1,
            version: "test".into(),
            written_at: String::new(),
            since: String::new(),
            process: None,
        }
    }

    fn in_memory() -> (Store, Duration, Leases) {
        let store = Store::open(&StoreConfig::new("memory://")).unwrap();
        let lease = Duration::from_secs(10);
        (
            store.clone(),
            lease,
            Leases::new(store, lease, Arc::default()),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_lease_is_taken_over_only_after_its_version_stood_still_for_a_lease() {
        let (store, lease, leases) = in_memory();
        let key = Path::from(".jam/claims/ci/job/app/1");
        let (a_seen, b_seen) = (Observer::default(), Observer::default());
        let Acquired::Won(mut a) = leases
            .acquire(&key, doc("a", lease), &a_seen)
            .await
            .unwrap()
        else {
            panic!("free lease is won");
        };
        // B sees it, and keeps seeing it change while A renews.
        for _ in 0..5 {
            assert!(matches!(
                leases.acquire(&key, doc("b", lease), &b_seen).await.unwrap(),
                Acquired::Busy(Some(d)) if d.holder == "a"
            ));
            tokio::time::advance(Duration::from_secs(4)).await;
            assert_eq!(leases.renew(&mut a).await.unwrap(), Renewed::Yes);
        }
        assert!(a.safe(lease));
        // A stops renewing: B takes over once it has seen the same version for longer than the lease.
        assert!(matches!(
            leases
                .acquire(&key, doc("b", lease), &b_seen)
                .await
                .unwrap(),
            Acquired::Busy(_)
        ));
        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(!a.safe(lease), "A no longer counts on it");
        assert!(matches!(
            leases
                .acquire(&key, doc("b", lease), &b_seen)
                .await
                .unwrap(),
            Acquired::Busy(_)
        ));
        tokio::time::advance(Duration::from_secs(2)).await;
        let Acquired::TakenOver(b, Some(prev)) = leases
            .acquire(&key, doc("b", lease), &b_seen)
            .await
            .unwrap()
        else {
            panic!("stale lease is taken over");
        };
        assert_eq!(prev.holder, "a");
        // A wakes: its renewal, its check and its release all see that the lease is gone; nothing of B's is
        // deleted.
        assert_eq!(leases.ensure(&mut a).await.unwrap(), Renewed::Lost);
        assert_eq!(leases.release(a).await.unwrap(), Renewed::Lost);
        let (bytes, _) = store.get_versioned(&key).await.unwrap().unwrap();
        assert_eq!(LeaseDoc::parse(&bytes).unwrap().holder, "b");
        assert_eq!(leases.release(b).await.unwrap(), Renewed::Yes);
        assert!(store.head(&key).await.unwrap().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_renewal_whose_answer_was_lost_is_adopted() {
        let (_, lease, leases) = in_memory();
        let key = Path::from(".jam/leases/x");
        let Acquired::Won(mut a) = leases
            .acquire(&key, doc("a", lease), &Observer::default())
            .await
            .unwrap()
        else {
            panic!("won");
        };
        // The store applied a renewal whose answer never arrived: A's version is behind its own write.
        let mut lost = a.clone();
        assert_eq!(leases.renew(&mut lost).await.unwrap(), Renewed::Yes);
        assert_eq!(leases.renew(&mut a).await.unwrap(), Renewed::Yes);
        assert_eq!(a.doc.seq, lost.doc.seq + 1);
        // A clean-up's mark keeps the holder's instance and token but is not the holder's write.
        let mut mark = a.doc.clone();
        mark.kind = "dead".into();
        mark.seq += 1;
        assert!(matches!(
            leases
                .store
                .replace_if(&key, mark.to_json(), &a.version)
                .await
                .unwrap(),
            Versioned::Written(_)
        ));
        assert_eq!(leases.renew(&mut a).await.unwrap(), Renewed::Lost);
    }
}
