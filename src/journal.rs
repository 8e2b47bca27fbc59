//! The journal of open multipart uploads, so that none is left orphaned.
//!
//! jam aborts its multipart uploads on every error and at shutdown, but a worker killed with SIGKILL (or a
//! machine that dies) cannot, and S3 keeps the parts of an open upload, invisible and billed, until someone
//! aborts it. So before the first part goes up, jam records the upload's key and id under
//! `.jam/uploads/<worker>/` in the store, and removes the record once the upload is completed or aborted.
//! When a worker starts, it aborts every upload still recorded under its own worker id: the previous
//! incarnation of that worker is gone, so those uploads can never complete. Workers sharing a bucket must
//! therefore have distinct `worker_id`s (the default is the host name).

use object_store::{MultipartId, path::Path};
use serde::{Deserialize, Serialize};

use crate::store::{Store, StoreError};

/// One open upload, as recorded.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    key: String,
    upload_id: String,
    started: String,
}

/// The journal of one worker's open multipart uploads.
#[derive(Debug, Clone)]
pub struct UploadJournal {
    store: Store,
    dir: String,
}

impl UploadJournal {
    /// The journal of `worker_id` in `store`.
    pub fn new(store: Store, worker_id: &str) -> UploadJournal {
        UploadJournal {
            store,
            dir: format!(".jam/uploads/{}", crate::layout::raw_encode(worker_id)),
        }
    }

    /// Records an upload that has just been created; returns the record's key, for [`Self::forget`].
    pub async fn record(&self, key: &Path, id: &MultipartId) -> Result<Path, StoreError> {
        let name = crate::transfer::sha256_hex(format!("{key}\n{id}").as_bytes());
        let entry_key = Store::path(&format!("{}/{}.json", self.dir, &name[..32]))?;
        let entry = Entry {
            key: key.to_string(),
            upload_id: id.clone(),
            started: crate::manifest::now_rfc3339(),
        };
        let body = serde_json::to_vec(&entry).expect("entry serializes");
        self.store.put(&entry_key, body.into()).await?;
        Ok(entry_key)
    }

    /// Removes a record once its upload is completed or aborted.
    pub async fn forget(&self, entry_key: &Path) {
        if let Err(e) = self.store.delete(entry_key).await {
            tracing::warn!(entry = %entry_key, error = %e, "could not remove the upload journal entry");
        }
    }

    /// Aborts every upload this worker recorded and did not finish (its previous run was killed); returns
    /// how many were aborted.
    pub async fn abort_leftovers(&self) -> Result<usize, StoreError> {
        let Some(mp) = self.store.multipart() else {
            return Ok(0);
        };
        let dir = Store::path(&self.dir)?;
        let mut aborted = 0;
        for meta in self.store.list_all(&dir).await? {
            let Some((bytes, _)) = self.store.get(&meta.location).await? else {
                continue;
            };
            let Ok(entry) = serde_json::from_slice::<Entry>(&bytes) else {
                tracing::warn!(entry = %meta.location, "unreadable upload journal entry; removing it");
                self.forget(&meta.location).await;
                continue;
            };
            let key = Store::path(&entry.key)?;
            match mp.abort_multipart(&key, &entry.upload_id).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                    tracing::info!(key = %entry.key, started = %entry.started, "aborted a multipart upload left open by a previous run");
                    aborted += 1;
                    self.forget(&meta.location).await;
                }
                Err(e) => {
                    tracing::warn!(key = %entry.key, error = %e, "could not abort a multipart upload left open by a previous run; will try again at the next start");
                }
            }
        }
        Ok(aborted)
    }
}
