//! Writing an artifact's bytes: a byte stream (from Jenkins, for the mirror), hashed on the way, into one
//! object.
//!
//! There is no temp file and no whole-artifact buffer. An artifact whose `Content-Length` fits in one part
//! is gathered (as the chunks that arrived, not copied) and written with one PUT; anything larger, or of
//! unknown length, goes up as a multipart upload whose parts are cut at `part_size`, with at most
//! `part_uploads` parts in flight. Every transfer first reserves the bytes it may hold from a
//! [`ByteBudget`] shared by all transfers, so peak memory is set by configuration, not by artifact size or
//! count. A multipart upload is aborted on any error or cancellation, so none is left orphaned.

use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, stream::BoxStream};
use object_store::{
    ObjectStoreExt, PutPayload, WriteMultipart,
    multipart::{MultipartStore, PartId},
    path::Path,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::{
    integrity::{Digests, Hasher},
    store::{Store, journal::UploadJournal},
};

/// An artifact's bytes on their way into the store: the announced length, where they come from (for
/// messages) and the byte stream, whose errors are the source's own `E`.
pub struct Incoming<E> {
    /// The length the source announced (`Content-Length`), when it did.
    pub content_length: Option<u64>,
    /// Where the bytes come from, for messages (no credentials, no query).
    pub url: String,
    /// The bytes.
    pub body: BoxStream<'static, Result<Bytes, E>>,
}

/// Why a transfer failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransferError<E> {
    /// Reading from the source failed.
    #[error(transparent)]
    Source(E),
    /// Writing to the store failed.
    #[error(
        "store write of '{key}' failed: {}{}",
        crate::chain::error_chain(source),
        crate::store::hint(source)
    )]
    Store {
        /// The key.
        key: String,
        /// The backend's error.
        source: object_store::Error,
    },
    /// Fewer or more bytes arrived than `Content-Length` promised.
    #[error("{url}: Content-Length was {expected} but {received} bytes arrived")]
    Length {
        /// Where from.
        url: String,
        /// Promised.
        expected: u64,
        /// Received.
        received: u64,
    },
    /// The upload journal could not be written, so the upload was not started.
    #[error("cannot record the upload in the journal: {0}")]
    Journal(String),
    /// The transfer was cancelled (shutdown).
    #[error("cancelled")]
    Cancelled,
}

/// A byte budget shared by all transfers, counted in KiB.
#[derive(Clone, Debug)]
pub struct ByteBudget {
    sem: Arc<Semaphore>,
    total_kib: u32,
}

impl ByteBudget {
    /// A budget of `bytes`.
    pub fn new(bytes: u64) -> ByteBudget {
        let kib = u32::try_from(bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .max(1);
        ByteBudget {
            sem: Arc::new(Semaphore::new(kib as usize)),
            total_kib: kib,
        }
    }

    /// Waits until `bytes` (capped at the whole budget) can be held; the reservation ends when the permit
    /// is dropped.
    pub async fn reserve(&self, bytes: u64) -> OwnedSemaphorePermit {
        let kib = u32::try_from(bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, self.total_kib);
        self.sem
            .clone()
            .acquire_many_owned(kib)
            .await
            .expect("budget semaphore is never closed")
    }

    /// Bytes reserved right now.
    pub fn in_use(&self) -> u64 {
        (self.total_kib as u64 - self.sem.available_permits() as u64) * 1024
    }
}

/// How transfers cut and bound their uploads.
#[derive(Clone, Debug)]
pub struct TransferLimits {
    /// Multipart part size; artifacts up to this size go up in one PUT.
    pub part_size: usize,
    /// Parts of one artifact uploading at once.
    pub part_uploads: usize,
    /// The shared byte budget.
    pub budget: ByteBudget,
}

/// Streams a download into `key`, hashing every byte. On error or cancellation nothing is left behind but
/// (for single PUTs) nothing at all, and (for multipart) an aborted upload.
#[allow(clippy::too_many_arguments)] // each argument is a separate concern of the caller
pub async fn upload<E>(
    store: &Store,
    key: &Path,
    mut download: Incoming<E>,
    limits: &TransferLimits,
    md5: bool,
    journal: Option<&UploadJournal>,
    cancel: &CancellationToken,
    on_bytes: &(dyn Fn(u64) + Send + Sync),
) -> Result<Digests, TransferError<E>>
where
    E: std::error::Error + Send + Sync + 'static,
{
    let mut hasher = Hasher::new(md5);
    let store_err = &store_error(key);
    let single = download
        .content_length
        .filter(|l| *l <= limits.part_size as u64);
    // Reserve what this transfer may hold: the whole artifact, or the parts in flight plus one filling.
    let _held = match single {
        Some(len) => limits.budget.reserve(len).await,
        None => {
            limits
                .budget
                .reserve(limits.part_size as u64 * (limits.part_uploads as u64 + 1))
                .await
        }
    };
    let mut source = Source {
        download: &mut download,
        hasher: &mut hasher,
        cancel,
        on_bytes,
    };

    if single.is_some() {
        // Gathered as the chunks that arrived (no copy), then one PUT.
        let mut chunks: Vec<Bytes> = Vec::new();
        while let Some(chunk) = source.next().await? {
            chunks.push(chunk);
        }
        let payload: PutPayload = chunks.into_iter().collect();
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return Err(TransferError::Cancelled),
            r = store.object_store().put(key, payload) => { r.map_err(store_err)?; }
        }
    } else if let (Some(mp), Some(journal)) = (store.multipart(), journal) {
        upload_journaled(mp, journal, key, &mut source, limits, cancel).await?;
    } else {
        upload_multipart(store, key, &mut source, limits, cancel).await?;
    }
    Ok(hasher.finish())
}

/// A multipart upload through `object_store`'s `WriteMultipart`, for backends without the multipart API
/// (the local directory, whose staging file is removed on abort).
async fn upload_multipart<E>(
    store: &Store,
    key: &Path,
    source: &mut Source<'_, E>,
    limits: &TransferLimits,
    cancel: &CancellationToken,
) -> Result<(), TransferError<E>> {
    let store_err = &store_error(key);
    let upload = store
        .object_store()
        .put_multipart(key)
        .await
        .map_err(store_err)?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, limits.part_size);
    let outcome: Result<(), TransferError<E>> = async {
        while let Some(chunk) = source.next().await? {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return Err(TransferError::Cancelled),
                r = writer.wait_for_capacity(limits.part_uploads) => r.map_err(store_err)?,
            }
            writer.put(chunk);
        }
        Ok(())
    }
    .await;
    match outcome {
        // Not cancellable: finish sends the last part and completes (or aborts) the upload, and a
        // dropped finish would leave the upload open.
        Ok(()) => writer.finish().await.map(|_| ()).map_err(store_err),
        Err(e) => {
            if let Err(abort) = writer.abort().await {
                tracing::warn!(key = %key, error = %abort, "could not abort multipart upload");
            }
            Err(e)
        }
    }
}

/// Wraps a backend error as a write failure of `key`.
fn store_error<E>(key: &Path) -> impl Fn(object_store::Error) -> TransferError<E> + '_ {
    move |source| TransferError::Store {
        key: key.to_string(),
        source,
    }
}

/// The incoming side of a transfer: the download, hashed and counted as it is read.
struct Source<'a, E> {
    download: &'a mut Incoming<E>,
    hasher: &'a mut Hasher,
    cancel: &'a CancellationToken,
    on_bytes: &'a (dyn Fn(u64) + Send + Sync),
}

impl<E> Source<'_, E> {
    /// The next chunk, hashed; `None` at the end (after checking `Content-Length`).
    async fn next(&mut self) -> Result<Option<Bytes>, TransferError<E>> {
        let next = tokio::select! {
            biased;
            _ = self.cancel.cancelled() => return Err(TransferError::Cancelled),
            n = self.download.body.next() => n,
        };
        let expected = self.download.content_length;
        let Some(chunk) = next else {
            return match expected {
                Some(e) if e != self.hasher.size() => Err(self.length_error(e)),
                _ => Ok(None),
            };
        };
        let chunk = chunk.map_err(TransferError::Source)?;
        self.hasher.update(&chunk);
        (self.on_bytes)(chunk.len() as u64);
        match expected {
            Some(e) if self.hasher.size() > e => Err(self.length_error(e)),
            _ => Ok(Some(chunk)),
        }
    }

    fn length_error(&self, expected: u64) -> TransferError<E> {
        TransferError::Length {
            url: self.download.url.clone(),
            expected,
            received: self.hasher.size(),
        }
    }
}

/// A multipart upload jam drives itself, so its id can be journaled: parts are cut at exactly `part_size`
/// (zero-copy splits of the arriving chunks), at most `part_uploads` upload at once, and any error or
/// cancellation aborts the upload. The journal entry is removed once the upload is completed or aborted.
async fn upload_journaled<E>(
    mp: &Arc<dyn MultipartStore>,
    journal: &UploadJournal,
    key: &Path,
    source: &mut Source<'_, E>,
    limits: &TransferLimits,
    cancel: &CancellationToken,
) -> Result<(), TransferError<E>> {
    let store_err = &store_error(key);
    // Recorded before it exists, so a kill at any point leaves a record the next start can act on.
    let entry = journal
        .intend(key)
        .await
        .map_err(|e| TransferError::Journal(e.to_string()))?;
    let id = match mp.create_multipart(key).await {
        Ok(id) => id,
        Err(e) => {
            journal.forget(&entry).await;
            return Err(store_err(e));
        }
    };
    if let Err(e) = journal.created(&entry, key, &id).await {
        if mp.abort_multipart(key, &id).await.is_ok() {
            journal.forget(&entry).await;
        }
        return Err(TransferError::Journal(e.to_string()));
    }
    let mut parts: Vec<Option<PartId>> = Vec::new();
    let mut uploads: tokio::task::JoinSet<(usize, object_store::Result<PartId>)> =
        tokio::task::JoinSet::new();
    let result: Result<(), TransferError<E>> = async {
        let mut pending: Vec<Bytes> = Vec::new();
        let mut pending_len = 0usize;
        let mut done = false;
        while !done {
            match source.next().await? {
                Some(mut chunk) => {
                    while pending_len + chunk.len() >= limits.part_size {
                        let head = chunk.split_to(limits.part_size - pending_len);
                        pending.push(head);
                        let part: PutPayload = std::mem::take(&mut pending).into_iter().collect();
                        pending_len = 0;
                        start_part(
                            mp,
                            key,
                            &id,
                            part,
                            &mut parts,
                            &mut uploads,
                            limits.part_uploads,
                            cancel,
                        )
                        .await?;
                    }
                    if !chunk.is_empty() {
                        pending_len += chunk.len();
                        pending.push(chunk);
                    }
                }
                None => done = true,
            }
        }
        if pending_len > 0 || parts.is_empty() {
            let part: PutPayload = pending.into_iter().collect();
            start_part(mp, key, &id, part, &mut parts, &mut uploads, 1, cancel).await?;
        }
        while let Some(joined) = uploads.join_next().await {
            record_part(joined, &mut parts).map_err(store_err)?;
        }
        let parts: Vec<PartId> = parts
            .into_iter()
            .map(|p| p.expect("every part uploaded"))
            .collect();
        // Not cancellable: completing is quick, and a dropped completion would leave the upload open.
        mp.complete_multipart(key, &id, parts)
            .await
            .map_err(store_err)?;
        Ok(())
    }
    .await;
    match result {
        Ok(()) => {
            journal.forget(&entry).await;
            Ok(())
        }
        Err(e) => {
            uploads.abort_all();
            match mp.abort_multipart(key, &id).await {
                Ok(()) => journal.forget(&entry).await,
                Err(abort) => {
                    tracing::warn!(key = %key, error = %abort, "could not abort multipart upload; the next start retries")
                }
            }
            Err(e)
        }
    }
}

/// Waits for a slot (at most `in_flight` parts uploading), then starts uploading one part.
#[allow(clippy::too_many_arguments)]
async fn start_part<E>(
    mp: &Arc<dyn MultipartStore>,
    key: &Path,
    id: &str,
    part: PutPayload,
    parts: &mut Vec<Option<PartId>>,
    uploads: &mut tokio::task::JoinSet<(usize, object_store::Result<PartId>)>,
    in_flight: usize,
    cancel: &CancellationToken,
) -> Result<(), TransferError<E>> {
    while uploads.len() >= in_flight.max(1) {
        let joined = tokio::select! {
            biased;
            _ = cancel.cancelled() => return Err(TransferError::Cancelled),
            j = uploads.join_next() => j.expect("uploads is not empty"),
        };
        record_part(joined, parts).map_err(store_error(key))?;
    }
    let idx = parts.len();
    parts.push(None);
    let (mp, key, id) = (mp.clone(), key.clone(), id.to_string());
    uploads.spawn(async move { (idx, mp.put_part(&key, &id, idx, part).await) });
    Ok(())
}

fn record_part(
    joined: Result<(usize, object_store::Result<PartId>), tokio::task::JoinError>,
    parts: &mut [Option<PartId>],
) -> object_store::Result<()> {
    let (idx, res) = joined.map_err(|e| object_store::Error::Generic {
        store: "jam",
        source: Box::new(e),
    })?;
    parts[idx] = Some(res?);
    Ok(())
}
