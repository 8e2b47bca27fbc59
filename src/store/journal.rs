//! The journal of open multipart uploads, so that none is left orphaned.
//!
//! jam aborts its multipart uploads on every error and at shutdown, but a worker killed with SIGKILL (or a
//! machine that dies) cannot, and S3 keeps the parts of an open upload, invisible and billed, until someone
//! aborts it. So before an upload is created, jam records its key under `.jam/uploads/<worker>/` in the
//! store, adds the upload id once S3 has assigned it, and removes the record once the upload is completed
//! or aborted. When a worker starts, it aborts every upload still recorded under its own worker id: by its
//! recorded id, and, on S3, every upload S3 lists as open for the recorded key (which covers a kill
//! between the upload's creation and the recording of its id). The previous incarnation of that worker is
//! gone, so those uploads can never complete. Workers sharing a bucket must therefore have distinct
//! `worker_id`s (the default is the host name).

use object_store::{MultipartId, path::Path};
use serde::{Deserialize, Serialize};

use crate::store::{Store, StoreError};

/// One open upload, as recorded.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    upload_id: Option<String>,
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
            dir: format!(
                ".jam/uploads/{}",
                crate::format::layout::raw_encode(worker_id)
            ),
        }
    }

    /// Records that an upload of `key` is about to be created; returns the record's key, for
    /// [`Self::created`] and [`Self::forget`].
    pub async fn intend(&self, key: &Path) -> Result<Path, StoreError> {
        // A random name: two uploads of one key (a retry) never share a record.
        let name = format!("{:032x}", rand::random::<u128>());
        let entry_key = Store::path(&format!("{}/{name}.json", self.dir))?;
        self.write(&entry_key, key, None).await?;
        Ok(entry_key)
    }

    /// Adds the id S3 assigned to the upload recorded at `entry_key`.
    pub async fn created(
        &self,
        entry_key: &Path,
        key: &Path,
        id: &MultipartId,
    ) -> Result<(), StoreError> {
        self.write(entry_key, key, Some(id)).await
    }

    /// Records an upload that exists already (intent and id at once); returns the record's key.
    pub async fn record(&self, key: &Path, id: &MultipartId) -> Result<Path, StoreError> {
        let entry_key = self.intend(key).await?;
        self.created(&entry_key, key, id).await?;
        Ok(entry_key)
    }

    async fn write(
        &self,
        entry_key: &Path,
        key: &Path,
        id: Option<&MultipartId>,
    ) -> Result<(), StoreError> {
        let entry = Entry {
            key: key.to_string(),
            upload_id: id.cloned(),
            started: crate::format::manifest::now_rfc3339(),
        };
        let body = serde_json::to_vec(&entry).expect("entry serializes");
        self.store.put(entry_key, body.into()).await
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
            let mut ids: Vec<String> = entry.upload_id.into_iter().collect();
            if let Some(lister) = self.store.open_uploads() {
                match lister.open_uploads(&key).await {
                    Ok(open) => ids.extend(
                        open.into_iter()
                            .filter(|id| !ids.contains(id))
                            .collect::<Vec<_>>(),
                    ),
                    Err(e) => {
                        tracing::warn!(key = %entry.key, error = %e, "could not list the open uploads of a journaled key; will try again at the next start");
                        continue;
                    }
                }
            }
            let mut all_aborted = true;
            for id in &ids {
                match mp.abort_multipart(&key, id).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                        tracing::info!(key = %entry.key, started = %entry.started, "aborted a multipart upload left open by a previous run");
                        aborted += 1;
                    }
                    Err(e) => {
                        all_aborted = false;
                        tracing::warn!(key = %entry.key, error = %e, "could not abort a multipart upload left open by a previous run; will try again at the next start");
                    }
                }
            }
            if all_aborted {
                self.forget(&meta.location).await;
            }
        }
        Ok(aborted)
    }
}
