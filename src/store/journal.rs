//! The journal of open multipart uploads, so that none is left orphaned.
//!
//! jam aborts its multipart uploads on every error and at shutdown, but a worker killed with SIGKILL (or a
//! machine that dies) cannot, and S3 keeps the parts of an open upload, invisible and billed, until someone
//! aborts it. So before an upload is created, jam records its key under `.jam/uploads/<worker>/` in the
//! store, adds the upload id once S3 has assigned it, and removes the record once the upload is completed
//! or aborted. When a worker starts, it aborts every upload still recorded under its own worker id: by its
//! recorded id, and, on S3, the uploads S3 lists as open for the recorded key (which covers a kill
//! between the upload's creation and the recording of its id). The previous incarnation of that worker is
//! gone, so those uploads can never complete. Workers sharing a bucket must therefore have distinct
//! `worker_id`s (the default is the host name; [`crate::fleet`] refuses a second live worker with the same
//! id), and a live worker cleans up the journal of a worker that died for good the same way.
//!
//! Several workers upload the same keys when one takes over another's build, so the uploads S3 lists
//! for a key are not all the dead worker's: a [`ListedUploads`] guard decides which of them may be
//! aborted (none while another worker holds the build; never one another worker's journal records).

use object_store::{MultipartId, path::Path};
use serde::{Deserialize, Serialize};

use crate::store::{Store, StoreError};

/// Where the journals live: one folder per worker id.
pub const JOURNALS: &str = ".jam/uploads";

/// One open upload, as recorded.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    upload_id: Option<String>,
    started: String,
}

/// Decides, for a record whose upload id was never written, which of the uploads S3 lists as open for its
/// key may be aborted: `None` to leave the record for a later pass (another writer may own them now).
#[async_trait::async_trait]
pub trait ListedUploads: Send + Sync {
    /// The ids among `listed` that belong to nobody alive, or `None` to decide later.
    async fn abortable(&self, key: &Path, listed: Vec<String>) -> Option<Vec<String>>;
}

/// The guard of a worker alone on its store: every listed upload of a journaled key was its own.
pub struct AloneOnTheStore;

#[async_trait::async_trait]
impl ListedUploads for AloneOnTheStore {
    async fn abortable(&self, _key: &Path, listed: Vec<String>) -> Option<Vec<String>> {
        Some(listed)
    }
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
                "{JOURNALS}/{}",
                crate::format::layout::raw_encode(worker_id)
            ),
        }
    }

    /// The upload ids recorded in every worker's journal but `except`'s (a worker's uploads that another
    /// worker must not abort).
    pub async fn recorded_ids(store: &Store, except: &str) -> Result<Vec<String>, StoreError> {
        let mine = format!("{JOURNALS}/{}/", crate::format::layout::raw_encode(except));
        let mut ids = Vec::new();
        for meta in store.list_all(&Store::path(JOURNALS)?).await? {
            if meta.location.as_ref().starts_with(&mine) {
                continue;
            }
            if let Some((bytes, _)) = store.get(&meta.location).await?
                && let Ok(Entry {
                    upload_id: Some(id),
                    ..
                }) = serde_json::from_slice::<Entry>(&bytes)
            {
                ids.push(id);
            }
        }
        Ok(ids)
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

    /// Aborts every upload this journal recorded and its writer did not finish (that run was killed), with
    /// `listed` deciding about the uploads S3 lists for a record without an id; returns how many were
    /// aborted. A record is removed once its uploads are aborted.
    pub async fn abort_leftovers(&self, listed: &dyn ListedUploads) -> Result<usize, StoreError> {
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
            let mut ids: Vec<String> = entry.upload_id.iter().cloned().collect();
            if let Some(lister) = self.store.open_uploads()
                && entry.upload_id.is_none()
            {
                match lister.open_uploads(&key).await {
                    Ok(open) => match listed.abortable(&key, open).await {
                        Some(open) => ids.extend(open),
                        None => continue,
                    },
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
