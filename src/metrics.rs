//! Metrics: jam's own counters rendered in the Prometheus text format, without a metrics framework.
//!
//! The worker already counts what it does in atomics ([`crate::mirror::Stats`], the Jenkins client's
//! [`RequestStats`](crate::jenkins::RequestStats), the store's [`StoreStats`]); this module adds the two shapes those lack, a fixed-bucket
//! [`Histogram`] and the per-controller [`ControllerBoard`], and renders everything on demand
//! ([`render`]). Every value is read at scrape time, so there is no upkeep task and no global registry: two
//! workers in one process (tests) never share a counter.
//!
//! Store requests are counted by wrapping the backend in [`InstrumentedStore`] (and its multipart API in
//! [`InstrumentedMultipart`]), so every request jam makes, whichever module makes it, is counted once by
//! operation and outcome. The metric names are a public contract, listed in the README ("Operations").

use std::{
    collections::BTreeMap,
    fmt::{self, Write as _},
    ops::Range,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
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

use crate::{jenkins::JenkinsClient, mirror::Stats, store::Store, transfer::ByteBudget};

// ---------------------------------------------------------------------------------------------------------
// Histogram.

/// Upper bounds (seconds) of the artifact transfer duration buckets: from a small file on a LAN to an
/// hour-long multi-GiB artifact.
pub const TRANSFER_SECONDS_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

/// A Prometheus histogram with fixed buckets, updated with atomics.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Non-cumulative counts, one per bound, plus one for `+Inf`.
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    /// Sum of observations, in microseconds (exact enough, and atomic).
    sum_micros: AtomicU64,
}

impl Histogram {
    /// A histogram over `bounds` (ascending upper bounds, in seconds).
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = self
            .bounds
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(self.bounds.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(
            d.as_micros().min(u64::MAX as u128) as u64,
            Ordering::Relaxed,
        );
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Sum of the observations, in seconds.
    pub fn sum_seconds(&self) -> f64 {
        self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new(TRANSFER_SECONDS_BUCKETS)
    }
}

// ---------------------------------------------------------------------------------------------------------
// Per-controller gauges the worker publishes.

/// What the worker knows about one controller, published after every poll and every finished build.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ControllerStatus {
    /// The largest, over the controller's jobs, of Jenkins' newest finished build number minus the newest
    /// build number jam has settled (mirrored, given up on, missed, or skipped by policy).
    pub lag_builds: u64,
    /// Since when the most-behind job has been behind (`None` when every job is caught up).
    pub behind_since: Option<Instant>,
    /// Finished builds jam means to mirror and has not committed yet (in flight or awaiting a retry).
    pub pending: u64,
    /// Whether the last poll of the controller succeeded.
    pub up: bool,
}

impl ControllerStatus {
    /// How long the most-behind job has been behind, in seconds (0 when caught up).
    pub fn lag_seconds(&self) -> f64 {
        self.behind_since.map_or(0.0, |t| t.elapsed().as_secs_f64())
    }
}

/// The worker's per-controller gauges, by source name.
#[derive(Debug, Default)]
pub struct ControllerBoard {
    map: Mutex<BTreeMap<String, ControllerStatus>>,
}

impl ControllerBoard {
    /// Replaces one controller's status.
    pub fn set(&self, controller: &str, status: ControllerStatus) {
        self.map
            .lock()
            .expect("board lock")
            .insert(controller.to_string(), status);
    }

    /// Changes one controller's status in place.
    pub fn update(&self, controller: &str, f: impl FnOnce(&mut ControllerStatus)) {
        let mut map = self.map.lock().expect("board lock");
        f(map.entry(controller.to_string()).or_default());
    }

    /// A copy of every controller's status.
    pub fn snapshot(&self) -> BTreeMap<String, ControllerStatus> {
        self.map.lock().expect("board lock").clone()
    }
}

// ---------------------------------------------------------------------------------------------------------
// Store request counting.

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
}

impl StoreStats {
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

// ---------------------------------------------------------------------------------------------------------
// Rendering.

/// Everything `/metrics` reports on, gathered from a running worker ([`crate::mirror::Mirror::metrics`]).
#[derive(Debug, Clone)]
pub struct Sources {
    /// The worker's counters.
    pub stats: Arc<Stats>,
    /// The store (its request counters).
    pub store: Store,
    /// The controllers' clients (their request counters).
    pub controllers: Vec<JenkinsClient>,
    /// The worker's per-controller gauges.
    pub board: Arc<ControllerBoard>,
    /// The shared byte budget of transfers.
    pub budget: ByteBudget,
    /// The byte budget's size.
    pub budget_bytes: u64,
}

/// Writes Prometheus text exposition format (version 0.0.4).
#[derive(Default)]
struct Text(String);

impl Text {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl fmt::Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", escape_label(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    fn single(&mut self, name: &str, kind: &str, help: &str, value: impl fmt::Display) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn float(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "+Inf".into()
    }
}

/// The content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Renders every metric in the Prometheus text format.
pub fn render(s: &Sources) -> String {
    let mut t = Text::default();
    let st = &s.stats;
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    t.family(
        "jam_build_info",
        "gauge",
        "Always 1; the version label says which jam runs.",
    );
    t.sample(
        "jam_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1,
    );
    t.single(
        "jam_poll_cycles_total",
        "counter",
        "Poll cycles completed.",
        load(&st.cycles),
    );
    t.single(
        "jam_builds_mirrored_total",
        "counter",
        "Builds committed (manifest written).",
        load(&st.builds_mirrored),
    );
    t.single(
        "jam_builds_failed_total",
        "counter",
        "Builds given up on after max_attempts (recorded as failed in the job's index).",
        load(&st.builds_failed),
    );
    t.single(
        "jam_build_attempts_failed_total",
        "counter",
        "Build attempts that failed (each is retried until max_attempts).",
        load(&st.build_failures),
    );
    t.single(
        "jam_builds_missed_total",
        "counter",
        "Builds Jenkins deleted before jam could mirror them.",
        load(&st.builds_missed),
    );
    t.single(
        "jam_builds_already_committed_total",
        "counter",
        "Builds found already committed in the store (repaired or skipped, nothing downloaded).",
        load(&st.builds_already_committed),
    );
    t.single(
        "jam_artifacts_transferred_total",
        "counter",
        "Artifacts stored.",
        load(&st.artifacts),
    );
    t.single(
        "jam_artifact_bytes_total",
        "counter",
        "Artifact bytes received from Jenkins and written to the store.",
        load(&st.bytes),
    );
    t.single(
        "jam_artifact_retries_total",
        "counter",
        "Artifact transfers retried (broken, short or corrupt downloads, store write errors).",
        load(&st.artifact_retries),
    );
    let h = &st.transfer_seconds;
    t.family(
        "jam_artifact_transfer_seconds",
        "histogram",
        "Duration of successful artifact transfers (Jenkins to store, one attempt).",
    );
    let mut cumulative = 0;
    for (i, b) in h.buckets.iter().enumerate() {
        cumulative += load(b);
        let le = h.bounds.get(i).map_or("+Inf".to_string(), |v| float(*v));
        t.sample(
            "jam_artifact_transfer_seconds_bucket",
            &[("le", &le)],
            cumulative,
        );
    }
    t.sample("jam_artifact_transfer_seconds_sum", &[], h.sum_seconds());
    t.sample("jam_artifact_transfer_seconds_count", &[], h.count());
    t.single(
        "jam_transfers_in_flight",
        "gauge",
        "Artifact transfers running now.",
        load(&st.transfers_in_flight),
    );
    t.single(
        "jam_buffered_bytes",
        "gauge",
        "Artifact bytes reserved from the buffer budget now.",
        s.budget.in_use(),
    );
    t.single(
        "jam_buffer_budget_bytes",
        "gauge",
        "The buffer budget (mirror.buffer_budget).",
        s.budget_bytes,
    );
    t.single(
        "jam_retention_builds_deleted_total",
        "counter",
        "Builds deleted from the store by the retention policy.",
        load(&st.retention_deleted),
    );

    t.family(
        "jam_jenkins_requests_total",
        "counter",
        "Requests sent to Jenkins (each attempt), by controller and HTTP status (\"error\": no answer).",
    );
    for c in &s.controllers {
        for (status, n) in c.stats().by_status() {
            let status = if status == 0 {
                "error".to_string()
            } else {
                status.to_string()
            };
            t.sample(
                "jam_jenkins_requests_total",
                &[("controller", c.name()), ("status", &status)],
                n,
            );
        }
    }
    t.family(
        "jam_jenkins_retries_total",
        "counter",
        "Jenkins requests retried after a 5xx, 429, timeout or connection error, by controller.",
    );
    for c in &s.controllers {
        t.sample(
            "jam_jenkins_retries_total",
            &[("controller", c.name())],
            c.stats().retries.load(Ordering::Relaxed),
        );
    }

    t.family(
        "jam_store_requests_total",
        "counter",
        "Requests to the store, by operation and outcome (ok, not_found, conflict, error).",
    );
    let ss = s.store.stats();
    for op in STORE_OPS {
        for outcome in STORE_OUTCOMES {
            let n = ss.get(op, outcome);
            if n > 0 || outcome == StoreOutcome::Ok {
                t.sample(
                    "jam_store_requests_total",
                    &[("operation", op.name()), ("outcome", outcome.name())],
                    n,
                );
            }
        }
    }

    let board = s.board.snapshot();
    let names: Vec<&str> = s.controllers.iter().map(|c| c.name()).collect();
    let status = |n: &str| board.get(n).cloned().unwrap_or_default();
    t.family(
        "jam_controller_up",
        "gauge",
        "1 when the last poll of the controller succeeded.",
    );
    for n in &names {
        t.sample(
            "jam_controller_up",
            &[("controller", n)],
            u8::from(status(n).up),
        );
    }
    t.family(
        "jam_controller_lag_builds",
        "gauge",
        "Largest over the controller's jobs of Jenkins' newest finished build number minus the newest build jam has settled.",
    );
    for n in &names {
        t.sample(
            "jam_controller_lag_builds",
            &[("controller", n)],
            status(n).lag_builds,
        );
    }
    t.family(
        "jam_controller_lag_seconds",
        "gauge",
        "How long the controller's most-behind job has had a finished build newer than anything jam settled (0: caught up).",
    );
    for n in &names {
        t.sample(
            "jam_controller_lag_seconds",
            &[("controller", n)],
            float((status(n).lag_seconds() * 1000.0).round() / 1000.0),
        );
    }
    t.family(
        "jam_builds_pending",
        "gauge",
        "Finished builds jam means to mirror and has not committed yet (in flight or awaiting a retry).",
    );
    for n in &names {
        t.sample(
            "jam_builds_pending",
            &[("controller", n)],
            status(n).pending,
        );
    }
    t.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_in_text() {
        let h = Histogram::new(&[0.1, 1.0]);
        h.observe(Duration::from_millis(50));
        h.observe(Duration::from_millis(500));
        h.observe(Duration::from_secs(5));
        assert_eq!(h.count(), 3);
        assert!((h.sum_seconds() - 5.55).abs() < 1e-6);
        let counts: Vec<u64> = h
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        assert_eq!(counts, vec![1, 1, 1]);
    }

    #[test]
    fn labels_are_escaped() {
        let mut t = Text::default();
        t.sample("m", &[("a", "x\"y\\z\n")], 1);
        assert_eq!(t.0, "m{a=\"x\\\"y\\\\z\\n\"} 1\n");
    }
}
