//! Counting the store's requests: the backend is wrapped in [`InstrumentedStore`] (and its multipart API in
//! [`InstrumentedMultipart`]), so every request jam makes, whichever module makes it, is counted once by
//! operation and outcome in [`StoreStats`], which reports itself as `jam_store_requests_total`.

use std::{
    fmt,
    ops::Range,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, stream::BoxStream};
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartId, MultipartUpload, ObjectMeta,
    ObjectStore, PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult,
    multipart::{MultipartStore, PartId},
    path::Path,
};

use crate::metrics::{Collect, Exposition};

/// A store operation, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOp {
    /// Read an object (or a range of one).
    Get,
    /// Read an object's metadata.
    Head,
    /// Unconditional write.
    Put,
    /// Write only if absent (`If-None-Match: *`).
    Create,
    /// Write only if unchanged (`If-Match`).
    Update,
    /// Delete.
    Delete,
    /// List (recursive or one level).
    List,
    /// Server-side copy.
    Copy,
    /// Start a multipart upload.
    MultipartCreate,
    /// Upload one part.
    MultipartPart,
    /// Complete a multipart upload.
    MultipartComplete,
    /// Abort a multipart upload.
    MultipartAbort,
}

const STORE_OPS: [StoreOp; 12] = [
    StoreOp::Get,
    StoreOp::Head,
    StoreOp::Put,
    StoreOp::Create,
    StoreOp::Update,
    StoreOp::Delete,
    StoreOp::List,
    StoreOp::Copy,
    StoreOp::MultipartCreate,
    StoreOp::MultipartPart,
    StoreOp::MultipartComplete,
    StoreOp::MultipartAbort,
];

impl StoreOp {
    /// The label value.
    pub fn name(self) -> &'static str {
        match self {
            StoreOp::Get => "get",
            StoreOp::Head => "head",
            StoreOp::Put => "put",
            StoreOp::Create => "create",
            StoreOp::Update => "update",
            StoreOp::Delete => "delete",
            StoreOp::List => "list",
            StoreOp::Copy => "copy",
            StoreOp::MultipartCreate => "multipart_create",
            StoreOp::MultipartPart => "multipart_part",
            StoreOp::MultipartComplete => "multipart_complete",
            StoreOp::MultipartAbort => "multipart_abort",
        }
    }
}

/// How a store request ended, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOutcome {
    /// It succeeded.
    Ok,
    /// The object does not exist.
    NotFound,
    /// A conditional request's condition failed (the object exists, or changed): expected under
    /// concurrency.
    Conflict,
    /// Any other failure (after the backend's own retries).
    Error,
}

const STORE_OUTCOMES: [StoreOutcome; 4] = [
    StoreOutcome::Ok,
    StoreOutcome::NotFound,
    StoreOutcome::Conflict,
    StoreOutcome::Error,
];

impl StoreOutcome {
    /// The label value.
    pub fn name(self) -> &'static str {
        match self {
            StoreOutcome::Ok => "ok",
            StoreOutcome::NotFound => "not_found",
            StoreOutcome::Conflict => "conflict",
            StoreOutcome::Error => "error",
        }
    }

    fn of<T>(r: &object_store::Result<T>) -> StoreOutcome {
        match r {
            Ok(_) => StoreOutcome::Ok,
            Err(object_store::Error::NotFound { .. }) => StoreOutcome::NotFound,
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. }
                | object_store::Error::NotModified { .. },
            ) => StoreOutcome::Conflict,
            Err(_) => StoreOutcome::Error,
        }
    }
}

/// Store requests by operation and outcome.
#[derive(Debug, Default)]
pub struct StoreStats {
    counts: [[AtomicU64; 4]; 12],
    /// The requests of one purpose, counted apart (see [`StoreStats::apart`]); `None`: the store's own.
    purpose: Option<(&'static str, &'static str)>,
}

impl StoreStats {
    /// Counters for the requests of one purpose, reported as the family `metric` with `help`.
    pub fn apart(metric: &'static str, help: &'static str) -> StoreStats {
        StoreStats {
            purpose: Some((metric, help)),
            ..StoreStats::default()
        }
    }

    /// Counts one request.
    pub fn record(&self, op: StoreOp, outcome: StoreOutcome) {
        let o = STORE_OPS.iter().position(|x| *x == op).expect("known op");
        let r = STORE_OUTCOMES
            .iter()
            .position(|x| *x == outcome)
            .expect("known outcome");
        self.counts[o][r].fetch_add(1, Ordering::Relaxed);
    }

    /// Requests counted for an operation and outcome.
    pub fn get(&self, op: StoreOp, outcome: StoreOutcome) -> u64 {
        let o = STORE_OPS.iter().position(|x| *x == op).expect("known op");
        let r = STORE_OUTCOMES
            .iter()
            .position(|x| *x == outcome)
            .expect("known outcome");
        self.counts[o][r].load(Ordering::Relaxed)
    }

    fn record_result<T>(&self, op: StoreOp, r: &object_store::Result<T>) {
        self.record(op, StoreOutcome::of(r));
    }
}

impl Collect for StoreStats {
    fn collect(&self, out: &mut Exposition) {
        let (metric, help) = self.purpose.unwrap_or((
            "jam_store_requests_total",
            "Requests to the store, by operation and outcome (ok, not_found, conflict, error).",
        ));
        let family = out.family(metric, "counter", help);
        for op in STORE_OPS {
            for outcome in STORE_OUTCOMES {
                let n = self.get(op, outcome);
                if n > 0 || outcome == StoreOutcome::Ok {
                    family.sample(
                        "",
                        &[("operation", op.name()), ("outcome", outcome.name())],
                        n,
                    );
                }
            }
        }
    }
}

/// An [`ObjectStore`] that counts every request of the backend it wraps in a [`StoreStats`].
#[derive(Debug)]
pub struct InstrumentedStore {
    inner: Arc<dyn ObjectStore>,
    stats: Arc<StoreStats>,
}

impl InstrumentedStore {
    /// Wraps a backend.
    pub fn new(inner: Arc<dyn ObjectStore>, stats: Arc<StoreStats>) -> InstrumentedStore {
        InstrumentedStore { inner, stats }
    }
}

impl fmt::Display for InstrumentedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner, f)
    }
}

fn counted_list(
    stream: BoxStream<'static, object_store::Result<ObjectMeta>>,
    stats: Arc<StoreStats>,
) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
    let failed = Arc::new(AtomicBool::new(false));
    let f2 = failed.clone();
    let s2 = stats.clone();
    stream
        .inspect(move |r| {
            if let Err(e) = r
                && !failed.swap(true, Ordering::Relaxed)
            {
                stats.record(StoreOp::List, StoreOutcome::of::<()>(&Err(clone_err(e))));
            }
        })
        .chain(
            futures::stream::once(async move {
                if !f2.load(Ordering::Relaxed) {
                    s2.record(StoreOp::List, StoreOutcome::Ok);
                }
            })
            .filter_map(|_| async { None }),
        )
        .boxed()
}

/// Enough of an error to classify it (object_store errors are not `Clone`).
fn clone_err(e: &object_store::Error) -> object_store::Error {
    match e {
        object_store::Error::NotFound { path, .. } => object_store::Error::NotFound {
            path: path.clone(),
            source: "not found".into(),
        },
        _ => object_store::Error::Generic {
            store: "jam",
            source: "error".into(),
        },
    }
}

#[async_trait]
impl ObjectStore for InstrumentedStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let op = match opts.mode {
            PutMode::Overwrite => StoreOp::Put,
            PutMode::Create => StoreOp::Create,
            PutMode::Update(_) => StoreOp::Update,
        };
        let r = self.inner.put_opts(location, payload, opts).await;
        self.stats.record_result(op, &r);
        r
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let r = self.inner.put_multipart_opts(location, opts).await;
        self.stats.record_result(StoreOp::MultipartCreate, &r);
        r
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let op = if options.head {
            StoreOp::Head
        } else {
            StoreOp::Get
        };
        let r = self.inner.get_opts(location, options).await;
        self.stats.record_result(op, &r);
        r
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        let r = self.inner.get_ranges(location, ranges).await;
        self.stats.record_result(StoreOp::Get, &r);
        r
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let stats = self.stats.clone();
        self.inner
            .delete_stream(locations)
            .inspect(move |r| match r {
                Ok(_) => stats.record(StoreOp::Delete, StoreOutcome::Ok),
                Err(e) => stats.record(StoreOp::Delete, StoreOutcome::of::<()>(&Err(clone_err(e)))),
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        counted_list(self.inner.list(prefix), self.stats.clone())
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        counted_list(
            self.inner.list_with_offset(prefix, offset),
            self.stats.clone(),
        )
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let r = self.inner.list_with_delimiter(prefix).await;
        self.stats.record_result(StoreOp::List, &r);
        r
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        let r = self.inner.copy_opts(from, to, options).await;
        self.stats.record_result(StoreOp::Copy, &r);
        r
    }
}

/// A [`MultipartStore`] that counts every request of the backend it wraps.
pub struct InstrumentedMultipart {
    inner: Arc<dyn MultipartStore>,
    stats: Arc<StoreStats>,
}

impl InstrumentedMultipart {
    /// Wraps a backend's multipart API.
    pub fn new(inner: Arc<dyn MultipartStore>, stats: Arc<StoreStats>) -> InstrumentedMultipart {
        InstrumentedMultipart { inner, stats }
    }
}

#[async_trait]
impl MultipartStore for InstrumentedMultipart {
    async fn create_multipart(&self, path: &Path) -> object_store::Result<MultipartId> {
        let r = self.inner.create_multipart(path).await;
        self.stats.record_result(StoreOp::MultipartCreate, &r);
        r
    }

    async fn put_part(
        &self,
        path: &Path,
        id: &MultipartId,
        part_idx: usize,
        data: PutPayload,
    ) -> object_store::Result<PartId> {
        let r = self.inner.put_part(path, id, part_idx, data).await;
        self.stats.record_result(StoreOp::MultipartPart, &r);
        r
    }

    async fn complete_multipart(
        &self,
        path: &Path,
        id: &MultipartId,
        parts: Vec<PartId>,
    ) -> object_store::Result<PutResult> {
        let r = self.inner.complete_multipart(path, id, parts).await;
        self.stats.record_result(StoreOp::MultipartComplete, &r);
        r
    }

    async fn abort_multipart(&self, path: &Path, id: &MultipartId) -> object_store::Result<()> {
        let r = self.inner.abort_multipart(path, id).await;
        self.stats.record_result(StoreOp::MultipartAbort, &r);
        r
    }
}
