//! The clean-up after a dead worker (one whose heartbeat stood still for
//! [`super::DEAD_AFTER_LEASES`] leases, as the holder of the clean-up singleton observed it): its
//! heartbeat is marked dead with `If-Match` on the version observed (so a worker that comes back to life
//! and renews in between wins, and nothing is touched), then the uploads in its journal are aborted, its
//! claims taken and deleted, its journal and heartbeat removed. Its id may never come back (a pod name),
//! so nobody else would.
//!
//! The uploads S3 lists for a journaled key whose upload id was never recorded may be another worker's
//! (the one that took the build over): [`Guard`] leaves them alone while the build is claimed, and never
//! aborts an upload another journal records.

use object_store::path::Path;

use super::{CLAIMS, Inner, lease::LeaseDoc};
use crate::{
    format::layout,
    store::{
        Store, StoreError,
        journal::{ListedUploads, UploadJournal},
        versioned::{Version, Versioned},
    },
};

/// Decides which listed uploads of a journaled key may be aborted: none while the key's build is claimed
/// by another worker than the journal's (that holder may be uploading that very key), and never one that
/// another worker's journal records.
pub struct Guard {
    store: Store,
    whose: String,
    protected: Vec<String>,
}

impl Guard {
    /// A guard for cleaning up the journal of `whose` (the ids every other journal records are protected).
    pub async fn new(store: &Store, whose: &str) -> Result<Guard, StoreError> {
        Ok(Guard {
            store: store.clone(),
            whose: whose.to_string(),
            protected: UploadJournal::recorded_ids(store, whose).await?,
        })
    }
}

#[async_trait::async_trait]
impl ListedUploads for Guard {
    async fn abortable(&self, key: &Path, listed: Vec<String>) -> Option<Vec<String>> {
        let prefix = layout::build_prefix_of(key.as_ref())?;
        let claim = Store::path(&format!("{CLAIMS}/{prefix}")).ok()?;
        let free = match self.store.get(&claim).await {
            Ok(None) => true,
            // Claimed by the journal's own worker (a predecessor, or the dead one): nobody else uploads.
            Ok(Some((bytes, _))) => LeaseDoc::parse(&bytes).is_some_and(|d| d.holder == self.whose),
            Err(_) => false,
        };
        free.then(|| {
            listed
                .into_iter()
                .filter(|id| !self.protected.contains(id))
                .collect()
        })
    }
}

/// Cleans up after the worker whose heartbeat at `key` stood still at `version`; returns whether it
/// is all gone (`false`: it came back to life, or some of its uploads must wait for a later pass).
pub(super) async fn clean_dead(
    inner: &Inner,
    key: &Path,
    version: &Version,
) -> Result<bool, StoreError> {
    let leases = &inner.singletons;
    let Some((bytes, current)) = leases.read(key).await? else {
        return Ok(false);
    };
    if &current != version {
        return Ok(false);
    }
    let dead = match LeaseDoc::parse(&bytes) {
        Some(d) => d,
        None => {
            tracing::warn!(heartbeat = %key, "a heartbeat that does not parse stood still; removing it");
            leases.delete(key).await?;
            return Ok(true);
        }
    };
    let mut mark = dead.clone();
    mark.kind = "dead".into();
    mark.seq += 1;
    mark.written_at = crate::format::manifest::now_rfc3339();
    leases
        .requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let Versioned::Written(_) = inner.store.replace_if(key, mark.to_json(), version).await? else {
        return Ok(false);
    };
    tracing::warn!(
        worker = %dead.holder,
        holder = %dead.describe(),
        "a worker's heartbeat stood still for several leases: cleaning up after it"
    );
    let journal = UploadJournal::new(inner.store.clone(), &dead.holder);
    let guard = Guard::new(&inner.store, &dead.holder).await?;
    let aborted = journal.abort_leftovers(&guard).await?;
    let mut claims = 0;
    for meta in inner.store.list_all(&Store::path(CLAIMS)?).await? {
        let Some((bytes, v)) = leases.read(&meta.location).await? else {
            continue;
        };
        if LeaseDoc::parse(&bytes).is_none_or(|d| d.holder != dead.holder) {
            continue;
        }
        let doc = inner.doc("claim", format!("{:032x}", rand::random::<u128>()));
        leases
            .requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Versioned::Written(_) = inner
            .store
            .replace_if(&meta.location, doc.to_json(), &v)
            .await?
        {
            leases.delete(&meta.location).await?;
            claims += 1;
        }
    }
    let left = inner
        .store
        .list_all(&Store::path(&format!(
            "{}/{}",
            crate::store::journal::JOURNALS,
            layout::raw_encode(&dead.holder)
        ))?)
        .await?;
    tracing::info!(
        worker = %dead.holder,
        uploads_aborted = aborted,
        claims_removed = claims,
        uploads_waiting = left.len(),
        "cleaned up after a dead worker"
    );
    if !left.is_empty() {
        return Ok(false);
    }
    leases.delete(key).await?;
    Ok(true)
}
