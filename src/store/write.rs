//! Writing a byte stream into one object: [`Store::put_stream`], the one way artifact bytes enter the
//! store, on every backend.
//!
//! There is no temp file and no whole-artifact buffer. The stream is cut into parts of exactly
//! `part_size` bytes by zero-copy splits of the arriving chunks. A stream that ends within its first part
//! goes up as one PUT; a longer one as a multipart upload with at most `part_uploads` parts in flight,
//! through one engine with two backends behind a thin seam (`Upload`):
//!
//! - the backend's `MultipartStore` (S3, memory): jam holds the upload id, so it can record it in the
//!   [`UploadJournal`] before the first byte goes up, and a restarted worker can abort what a killed one
//!   left open;
//! - object_store's `MultipartUpload` from `put_multipart` (the local directory, which has no
//!   `MultipartStore`): its `put_part` fixes a part's offset when it is called, so parts are started in
//!   order (they may still finish in any order).
//!
//! Any error, from the stream or the store, and any cancellation aborts the upload, so none is left open
//! and nothing appears at the key. The upload becomes an object at one place only, after the stream has
//! ended (a [`crate::integrity::VerifiedStream`] ends only when its checks pass): `Writer::commit`. There,
//! right before the single PUT or the multipart completion, the write's [`Fence`] is asked whether the
//! upload is still wanted (the worker still holds the build's claim); if not, the upload is aborted and
//! nothing appears at the key.
//!
//! Every write first reserves the bytes it may hold from a [`ByteBudget`] shared by all writes: its parts
//! (the one filling and those uploading) and what its source may hold besides ([`SOURCE_HELD`]: the HTTP
//! read buffer, the verified stream's hashing backlog). So peak memory is set by configuration, not by
//! artifact size or count.

use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt, future::BoxFuture};
use object_store::{
    MultipartId, MultipartUpload, ObjectStoreExt, PutPayload,
    multipart::{MultipartStore, PartId},
    path::Path,
};
use tokio::{
    sync::{OwnedSemaphorePermit, Semaphore},
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;

use crate::store::{Store, StoreError, journal::UploadJournal};

/// Why a stream write failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransferError<E> {
    /// The stream failed (a broken download, a failed integrity check): its own error.
    #[error(transparent)]
    Source(E),
    /// Writing to the store failed (after the backend's own retries).
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
    /// The upload journal could not be written, so the upload was not started.
    #[error("cannot record the upload in the journal: {0}")]
    Journal(StoreError),
    /// The write was cancelled (shutdown).
    #[error("cancelled")]
    Cancelled,
    /// The write's [`Fence`] refused the completion: the upload was aborted.
    #[error("'{key}' was not completed: {reason}")]
    Fenced {
        /// The key.
        key: String,
        /// What the fence said.
        reason: String,
    },
}

/// The last check before a write becomes an object: whether the writer is still entitled to write it.
/// An error aborts the upload (nothing appears at the key).
#[async_trait::async_trait]
pub trait Fence: Send + Sync {
    /// `Ok` to complete the write; `Err` with the reason to abort it.
    async fn check(&self) -> Result<(), String>;
}

/// What the source of one stream may hold in memory besides the write's parts, reserved with them (at
/// most the stream's length): the HTTP client's read buffer (hyper's grows to 408 KiB per connection) and a
/// verified stream's hashing backlog (`integrity::MAX_HELD`: bytes the write has already sent that a
/// hashing thread has not hashed yet). The store layer cannot name the integrity layer, so a test above
/// both (`tests/it/memory.rs`) checks that this covers them.
pub const SOURCE_HELD: u64 = 5 << 20;

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

/// How writes cut and bound their uploads.
#[derive(Clone, Debug)]
pub struct TransferLimits {
    /// Multipart part size; a stream that ends within one part goes up in one PUT.
    pub part_size: usize,
    /// Parts of one upload in flight at once.
    pub part_uploads: usize,
    /// The shared byte budget.
    pub budget: ByteBudget,
}

impl TransferLimits {
    /// What one multipart upload may hold: the parts in flight, the one filling, and its source's buffers.
    fn multipart_bytes(&self) -> u64 {
        self.part_size as u64 * (self.part_uploads as u64 + 1) + SOURCE_HELD
    }

    /// What a stream announced to fit one part may hold: its bytes, and its source's buffers (at most as
    /// many again).
    fn single_bytes(length: u64) -> u64 {
        length + length.min(SOURCE_HELD)
    }
}

/// How [`Store::put_stream`] writes one stream.
#[derive(Clone, Copy)]
pub struct StreamWrite<'a> {
    /// The length the source announced, when it did. A stream announced to fit one part reserves only
    /// its length (and at most as much again for its source, [`SOURCE_HELD`]) from the budget (the stream is trusted to keep its word, as a
    /// [`crate::integrity::VerifiedStream`] does; if it does not, the write reserves the rest when it must
    /// go multipart).
    pub length: Option<u64>,
    /// Part size, parts in flight, the byte budget.
    pub limits: &'a TransferLimits,
    /// Where multipart upload ids are recorded on backends that have them; `None`: not recorded.
    pub journal: Option<&'a UploadJournal>,
    /// Cancels the write; the upload is aborted.
    pub cancel: &'a CancellationToken,
    /// Asked right before the write completes; `None`: always complete.
    pub fence: Option<&'a dyn Fence>,
}

impl Store {
    /// Streams `body` into the object at `key` (see the module documentation); returns the bytes written.
    /// On error or cancellation nothing is left at `key` and no upload stays open.
    pub async fn put_stream<S, E>(
        &self,
        key: &Path,
        mut body: S,
        w: StreamWrite<'_>,
    ) -> Result<u64, TransferError<E>>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
    {
        let limits = w.limits;
        let small = w.length.filter(|l| *l <= limits.part_size as u64);
        let _held = tokio::select! {
            biased;
            _ = w.cancel.cancelled() => return Err(TransferError::Cancelled),
            p = limits.budget.reserve(small.map_or_else(|| limits.multipart_bytes(), TransferLimits::single_bytes)) => p,
        };
        let mut writer = Writer {
            store: self,
            key,
            w,
            pending: Vec::new(),
            pending_len: 0,
            written: 0,
            upload: None,
            topped_up: small.is_some().then_some(None),
        };
        let result: Result<(), TransferError<E>> = async {
            loop {
                let next = tokio::select! {
                    biased;
                    _ = w.cancel.cancelled() => return Err(TransferError::Cancelled),
                    n = body.next() => n,
                };
                match next {
                    Some(Ok(chunk)) => writer.push(chunk).await.map_err(|f| f.into_error(key))?,
                    Some(Err(e)) => return Err(TransferError::Source(e)),
                    None => break,
                }
            }
            writer.commit().await.map_err(|f| f.into_error(key))
        }
        .await;
        match result {
            Ok(()) => Ok(writer.written),
            Err(e) => {
                writer.abort().await;
                Err(e)
            }
        }
    }
}

/// Why a step of the engine failed (the stream's own errors are kept apart, in [`TransferError::Source`]).
enum Failure {
    Store(object_store::Error),
    Journal(StoreError),
    Cancelled,
    Fenced(String),
}

impl Failure {
    fn into_error<E>(self, key: &Path) -> TransferError<E> {
        match self {
            Failure::Store(source) => TransferError::Store {
                key: key.to_string(),
                source,
            },
            Failure::Journal(e) => TransferError::Journal(e),
            Failure::Cancelled => TransferError::Cancelled,
            Failure::Fenced(reason) => TransferError::Fenced {
                key: key.to_string(),
                reason,
            },
        }
    }
}

/// One stream write under way: the part being filled and, once a first part is full, the upload.
struct Writer<'a> {
    store: &'a Store,
    key: &'a Path,
    w: StreamWrite<'a>,
    /// The chunks of the part being filled (never more than `part_size` bytes).
    pending: Vec<Bytes>,
    pending_len: usize,
    written: u64,
    upload: Option<Upload<'a>>,
    /// For a write that reserved only its announced length: the rest of a multipart reservation, taken if
    /// the stream outgrows one part anyway. `None` (the outer option) when the whole was reserved.
    topped_up: Option<Option<OwnedSemaphorePermit>>,
}

impl Writer<'_> {
    /// Adds a chunk; every part that is full, with more bytes after it, goes up.
    async fn push(&mut self, mut chunk: Bytes) -> Result<(), Failure> {
        let part_size = self.w.limits.part_size.max(1);
        self.written += chunk.len() as u64;
        // Strictly more than a part: a stream of exactly one part stays a single PUT.
        while self.pending_len + chunk.len() > part_size {
            let head = chunk.split_to(part_size - self.pending_len);
            self.pending.push(head);
            let part = self.take_pending();
            self.send(part).await?;
        }
        if !chunk.is_empty() {
            self.pending_len += chunk.len();
            self.pending.push(chunk);
        }
        Ok(())
    }

    fn take_pending(&mut self) -> PutPayload {
        self.pending_len = 0;
        std::mem::take(&mut self.pending).into_iter().collect()
    }

    /// Starts uploading a full part, opening the upload first if this is the first.
    async fn send(&mut self, part: PutPayload) -> Result<(), Failure> {
        if self.upload.is_none() {
            if let Some(slot @ None) = &mut self.topped_up {
                let limits = self.w.limits;
                let held = TransferLimits::single_bytes(self.w.length.unwrap_or(0));
                let rest = limits.multipart_bytes().saturating_sub(held);
                *slot = Some(limits.budget.reserve(rest).await);
            }
            self.upload = Some(Upload::open(self.store, self.key, self.w.journal).await?);
        }
        let upload = self.upload.as_mut().expect("opened above");
        upload
            .start_part(part, self.w.limits.part_uploads, self.w.cancel)
            .await
    }

    /// The stream has ended and passed its checks: the one place where the bytes become an object, with
    /// one PUT or by completing the upload, each after the fence allowed it.
    async fn commit(&mut self) -> Result<(), Failure> {
        let rest = self.take_pending();
        let Some(upload) = &mut self.upload else {
            fence(self.w.fence).await?;
            return tokio::select! {
                biased;
                _ = self.w.cancel.cancelled() => Err(Failure::Cancelled),
                r = self.store.inner.put(self.key, rest) => r.map(|_| ()).map_err(Failure::Store),
            };
        };
        upload
            .start_part(rest, self.w.limits.part_uploads, self.w.cancel)
            .await?;
        upload.finish(self.w.cancel, self.w.fence).await
    }

    async fn abort(&mut self) {
        if let Some(upload) = self.upload.take() {
            upload.abort(self.key).await;
        }
    }
}

/// Asks the write's fence, if it has one.
async fn fence(fence: Option<&dyn Fence>) -> Result<(), Failure> {
    match fence {
        Some(f) => f.check().await.map_err(Failure::Fenced),
        None => Ok(()),
    }
}

/// A multipart upload, whichever API the backend has (the seam of the module documentation).
struct Upload<'a> {
    target: Target<'a>,
    /// Part uploads in flight: (part index, the part's id where the backend gives one).
    tasks: JoinSet<(usize, object_store::Result<Option<PartId>>)>,
    /// One entry per part started so far; with a `MultipartStore`, its id once it is uploaded.
    parts: Vec<Option<PartId>>,
}

enum Target<'a> {
    /// Through the backend's `MultipartStore`: the id is jam's, journaled when a journal is given.
    WithId {
        mp: Arc<dyn MultipartStore>,
        key: Path,
        id: MultipartId,
        journal: Option<(&'a UploadJournal, Path)>,
    },
    /// Through object_store's `MultipartUpload`: each part's offset is fixed when it is started.
    InOrder(Box<dyn MultipartUpload>),
}

impl<'a> Upload<'a> {
    async fn open(
        store: &Store,
        key: &Path,
        journal: Option<&'a UploadJournal>,
    ) -> Result<Upload<'a>, Failure> {
        let target = match store.multipart() {
            Some(mp) => {
                // Recorded before it exists, so a kill at any point leaves a record the next start can act on.
                let journal = match journal {
                    Some(j) => Some((j, j.intend(key).await.map_err(Failure::Journal)?)),
                    None => None,
                };
                let id = match mp.create_multipart(key).await {
                    Ok(id) => id,
                    Err(e) => {
                        if let Some((j, entry)) = &journal {
                            j.forget(entry).await;
                        }
                        return Err(Failure::Store(e));
                    }
                };
                if let Some((j, entry)) = &journal
                    && let Err(e) = j.created(entry, key, &id).await
                {
                    if mp.abort_multipart(key, &id).await.is_ok() {
                        j.forget(entry).await;
                    }
                    return Err(Failure::Journal(e));
                }
                Target::WithId {
                    mp: mp.clone(),
                    key: key.clone(),
                    id,
                    journal,
                }
            }
            None => Target::InOrder(
                store
                    .inner
                    .put_multipart(key)
                    .await
                    .map_err(Failure::Store)?,
            ),
        };
        Ok(Upload {
            target,
            tasks: JoinSet::new(),
            parts: Vec::new(),
        })
    }

    /// Waits for a slot (at most `in_flight` parts uploading), then starts uploading the next part.
    async fn start_part(
        &mut self,
        data: PutPayload,
        in_flight: usize,
        cancel: &CancellationToken,
    ) -> Result<(), Failure> {
        while self.tasks.len() >= in_flight.max(1) {
            self.join_one(cancel).await?;
        }
        let idx = self.parts.len();
        self.parts.push(None);
        let put: BoxFuture<'static, object_store::Result<Option<PartId>>> = match &mut self.target {
            Target::WithId { mp, key, id, .. } => {
                let (mp, key, id) = (mp.clone(), key.clone(), id.clone());
                Box::pin(async move { mp.put_part(&key, &id, idx, data).await.map(Some) })
            }
            Target::InOrder(upload) => {
                let put = upload.put_part(data);
                Box::pin(async move { put.await.map(|()| None) })
            }
        };
        self.tasks.spawn(async move { (idx, put.await) });
        Ok(())
    }

    /// Waits for one part upload to finish and records it.
    async fn join_one(&mut self, cancel: &CancellationToken) -> Result<(), Failure> {
        let joined = tokio::select! {
            biased;
            _ = cancel.cancelled() => return Err(Failure::Cancelled),
            j = self.tasks.join_next() => j.expect("a part is uploading"),
        };
        let (idx, res) = joined.map_err(|e| {
            Failure::Store(object_store::Error::Generic {
                store: "jam",
                source: Box::new(e),
            })
        })?;
        if let Some(part) = res.map_err(Failure::Store)? {
            self.parts[idx] = Some(part);
        }
        Ok(())
    }

    /// Waits for every part, asks the fence, then completes the upload and forgets its journal record.
    /// Completing is not cancellable: it is quick, and a dropped completion would leave the upload open.
    async fn finish(
        &mut self,
        cancel: &CancellationToken,
        check: Option<&dyn Fence>,
    ) -> Result<(), Failure> {
        while !self.tasks.is_empty() {
            self.join_one(cancel).await?;
        }
        fence(check).await?;
        let parts = std::mem::take(&mut self.parts);
        match &mut self.target {
            Target::WithId {
                mp,
                key,
                id,
                journal,
            } => {
                let parts = parts.into_iter().map(|p| p.expect("every part uploaded"));
                mp.complete_multipart(key, id, parts.collect())
                    .await
                    .map_err(Failure::Store)?;
                if let Some((j, entry)) = journal.take() {
                    j.forget(&entry).await;
                }
            }
            Target::InOrder(upload) => {
                upload.complete().await.map_err(Failure::Store)?;
            }
        }
        Ok(())
    }

    /// Stops the part uploads and aborts the upload; its journal record is forgotten once the abort
    /// succeeded (otherwise the next start retries it).
    async fn abort(mut self, key: &Path) {
        self.tasks.shutdown().await;
        let (aborted, journal) = match &mut self.target {
            Target::WithId {
                mp,
                key,
                id,
                journal,
            } => (mp.abort_multipart(key, id).await, journal.take()),
            Target::InOrder(upload) => (upload.abort().await, None),
        };
        match aborted {
            Ok(()) => {
                if let Some((j, entry)) = journal {
                    j.forget(&entry).await;
                }
            }
            Err(e) => {
                tracing::warn!(key = %key, error = %e, "could not abort multipart upload; the next start retries")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::{Arc, Mutex},
        task::Poll,
    };

    use super::*;
    use crate::config::StoreConfig;

    const MIB: u64 = 1 << 20;

    /// `chunks` chunks of `size` bytes; records the budget in use at the first poll.
    fn body(
        chunks: usize,
        size: usize,
        budget: ByteBudget,
        in_use: Arc<Mutex<Option<u64>>>,
    ) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Unpin {
        let mut n = 0;
        futures::stream::poll_fn(move |_| {
            in_use.lock().unwrap().get_or_insert(budget.in_use());
            if n == chunks {
                return Poll::Ready(None);
            }
            n += 1;
            Poll::Ready(Some(Ok(Bytes::from(vec![n as u8; size]))))
        })
    }

    async fn write(length: Option<u64>, chunks: usize, size: usize) -> u64 {
        let store = Store::open(&StoreConfig::new("memory://")).unwrap();
        let limits = TransferLimits {
            part_size: 5 << 20,
            part_uploads: 2,
            budget: ByteBudget::new(64 * MIB),
        };
        let in_use = Arc::default();
        let b = body(chunks, size, limits.budget.clone(), Arc::clone(&in_use));
        let cancel = CancellationToken::new();
        let w = StreamWrite {
            length,
            limits: &limits,
            journal: None,
            cancel: &cancel,
            fence: None,
        };
        let key = Path::from("a/b.bin");
        let n = store.put_stream(&key, b, w).await.unwrap();
        assert_eq!(n, (chunks * size) as u64);
        let (stored, _) = store.get(&key).await.unwrap().expect("written");
        assert_eq!(stored.len(), chunks * size);
        assert_eq!(
            limits.budget.in_use(),
            0,
            "the reservation ends with the write"
        );
        in_use.lock().unwrap().expect("polled")
    }

    #[tokio::test]
    async fn a_write_reserves_its_buffers_and_what_its_source_holds() {
        // One PUT: its length, and as much again (at most SOURCE_HELD) for the source.
        let held = write(Some(MIB), 16, (MIB / 16) as usize).await;
        assert_eq!(held, 2 * MIB);
        let held = write(Some(5 * MIB), 5, MIB as usize).await;
        assert_eq!(held, 5 * MIB + SOURCE_HELD);
        // Multipart: the part filling, the parts uploading, and the source.
        let held = write(Some(20 * MIB), 20, MIB as usize).await;
        assert_eq!(held, 3 * 5 * MIB + SOURCE_HELD);
        let held = write(None, 20, MIB as usize).await;
        assert_eq!(held, 3 * 5 * MIB + SOURCE_HELD);
    }
}
