//! Several workers on one store: `jam mirror` processes sharing a SeaweedFS bucket and one simulated
//! controller, killed, frozen, cut off from the store and run with a wrong clock; a store that ignores
//! conditional writes; a duplicate worker id; two processes on one local directory. Every test is
//! bounded in time (leases of 2 s; each waits with a deadline).

use std::{
    net::SocketAddr,
    path::{Path as FsPath, PathBuf},
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use jam::{
    format::layout::{JobPath, Layout},
    mirror::Mirror,
    store::{Backend, Store},
};
use jenkins_sim::{ArtifactSpec, BuildResult, BuildSpec, Fault, FaultAction, ItemSpec, Sim};
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult, memory::InMemory, path::Path,
};
use tokio_util::sync::CancellationToken;

use crate::{
    harness::{self, KillOnDrop, Target},
    support,
};

/// The lease every worker here runs with.
const LEASE: Duration = Duration::from_secs(2);

fn big(n: u64, size: u64) -> BuildSpec {
    BuildSpec::finished(n, BuildResult::Success)
        .with_artifact(ArtifactSpec::sized("big.bin", size))
        .with_artifact(ArtifactSpec::sized("notes.txt", 700))
}

fn small(n: u64) -> BuildSpec {
    BuildSpec::finished(n, BuildResult::Success)
        .with_artifact(ArtifactSpec::sized("app.jar", 64 << 10))
        .with_artifact(ArtifactSpec::sized("notes.txt", 700))
}

/// Build `n`'s `big.bin` download stalls once after 12 MiB (for `ms`, or forever).
fn stall_once(n: u64, ms: Option<u64>) -> Fault {
    Fault::new(FaultAction::Stall {
        after_bytes: 12 << 20,
        ms,
    })
    .path_prefix(&format!("/job/app/{n}/artifact/big.bin"))
    .times(1)
}

/// A simulator with one build whose 40 MiB download stalls once for 4 s after 12 MiB (long enough to
/// catch its worker mid-transfer), and the layout of its source.
fn one_stalling_build() -> (Sim, Layout) {
    let sim = Sim::start(
        harness::scenario().with_item(ItemSpec::freestyle("app").with_build(big(1, 40 << 20))),
    );
    sim.add_fault(stall_once(1, Some(4000))).unwrap();
    let layout = source(&sim);
    (sim, layout)
}

fn source(sim: &Sim) -> Layout {
    Layout::new(jam::config::default_source_name(
        &url::Url::parse(&sim.url()).unwrap(),
    ))
}

fn app() -> JobPath {
    JobPath::new(["app"])
}

/// A `jam mirror` process with its own id, metrics endpoint and log file.
struct Worker {
    id: String,
    child: KillOnDrop,
    listen: SocketAddr,
    log: PathBuf,
}

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A scratch directory with the workers' config and logs.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("jam.toml"),
            format!(
                "[mirror]\nlease = \"{}s\"\nretry_backoff = \"1s\"\nmax_attempts = 20\npart_size = \"8 MiB\"\n",
                LEASE.as_secs()
            ),
        )
        .unwrap();
        Scratch { dir }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("jam.toml")
    }

    /// Starts worker `id`; `clock` is a `faketime -f` offset (`+10m`) to run it under, or none.
    fn start(&self, sim: &Sim, target: &Target, id: &str, clock: Option<&str>) -> Worker {
        self.start_on(sim, &target.env, id, clock)
    }

    fn start_on(
        &self,
        sim: &Sim,
        store_env: &[(String, String)],
        id: &str,
        clock: Option<&str>,
    ) -> Worker {
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin!("jam"));
        let listen = free_addr();
        let log = self.dir.path().join(format!("{id}.log"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("JENKINS_URL", sim.url())
            .env("JENKINS_USER", harness::USER)
            .env("JENKINS_API_TOKEN", harness::TOKEN)
            .env("JAM_CONFIG", self.config())
            .current_dir(self.dir.path())
            .args(["--log-format", "json", "mirror", "--worker-id", id])
            .args(["--poll-interval", "300ms", "--listen", &listen.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in store_env {
            cmd.env(k, v);
        }
        if let Some(offset) = clock {
            // libfaketime preloaded into jam itself (the faketime wrapper would take the signals).
            cmd.env("LD_PRELOAD", libfaketime().expect("libfaketime"))
                .env("FAKETIME", offset);
        }
        Worker {
            id: id.to_string(),
            child: KillOnDrop(cmd.spawn().unwrap()),
            listen,
            log,
        }
    }
}

impl Worker {
    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    fn signal(&self, sig: &str) {
        assert!(
            Command::new("kill")
                .args([sig, &self.pid()])
                .status()
                .unwrap()
                .success()
        );
    }

    /// The worker's `/metrics`, or an empty text while it does not answer.
    fn metrics(&self) -> String {
        http_get(self.listen, "/metrics")
    }

    /// One unlabelled sample of the worker's metrics (0 when absent).
    fn metric(&self, name: &str) -> u64 {
        metric_in(&self.metrics(), name)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, and waits (at most 20 s) for a clean exit.
    fn stop(mut self) -> String {
        self.signal("-TERM");
        let t = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "{}: {status:?}\n{}", self.id, self.log());
                return self.log();
            }
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "{} ignored SIGTERM",
                self.id
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL.
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Debian's libfaketime for multi-threaded programs (package `faketime`).
fn libfaketime() -> Option<PathBuf> {
    std::fs::read_dir("/usr/lib")
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path().join("faketime/libfaketimeMT.so.1"))
        .find(|p| p.exists())
}

/// `GET path` on a worker's endpoint: the whole answer, head included (empty when nothing answers).
fn http_get(addr: SocketAddr, path: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
    let _ = s.write_all(format!("GET {path} HTTP/1.0\r\nHost: jam\r\n\r\n").as_bytes());
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn metric_in(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0)
}

/// Polls `cond` every 100 ms until it holds, for at most `limit`; panics with `what` otherwise.
async fn until<F, Fut>(limit: Duration, what: &str, mut cond: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let t = Instant::now();
    while !cond().await {
        assert!(t.elapsed() < limit, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    t.elapsed()
}

/// Waits until build `n` is claimed (by `holder`, if given) and an upload is open: mid-transfer.
async fn claimed_mid_transfer(target: &Target, layout: &Layout, n: u64, holder: Option<&str>) {
    until(Duration::from_secs(60), "claimed mid-transfer", || async {
        let h = claim_holder(&target.store, layout, n).await;
        h.is_some()
            && (holder.is_none() || h.as_deref() == holder)
            && !open_uploads(target).is_empty()
    })
    .await;
}

/// The holder of a build's claim, if claimed.
async fn claim_holder(store: &Store, layout: &Layout, n: u64) -> Option<String> {
    let key = Store::path(&format!(
        "{}/{}",
        jam::fleet::CLAIMS,
        layout.build_prefix(&app(), n)
    ))
    .unwrap();
    let (bytes, _) = store.get(&key).await.ok()??;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    Some(v["holder"].as_str()?.to_string())
}

async fn committed(store: &Store, layout: &Layout, n: u64) -> bool {
    let key = jam::format::layout::path(&layout.manifest_key(&app(), n));
    store.head(&key).await.ok().flatten().is_some()
}

/// The job's index.
async fn index_of(store: &Store, layout: &Layout) -> Option<jam::format::manifest::JobIndex> {
    let key = jam::format::layout::path(&layout.index_key(&app()));
    let (b, _) = store.get(&key).await.ok()??;
    jam::format::manifest::JobIndex::parse(&b, "index").ok()
}

/// Downloads of one artifact of `app` the simulator answered.
fn downloads(sim: &Sim, n: u64, path: &str) -> usize {
    let want = format!("/job/app/{n}/artifact/{path}");
    sim.requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.starts_with(&want))
        .count()
}

/// The keys (and ETags) of a build's objects.
async fn build_objects(store: &Store, layout: &Layout, n: u64) -> Vec<(String, Option<String>)> {
    let prefix = Store::path(&layout.build_prefix(&app(), n)).unwrap();
    let mut v: Vec<_> = store
        .list_all(&prefix)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.location.to_string(), m.e_tag))
        .collect();
    v.sort();
    v
}

/// Every object under a committed build is one its manifest names (artifacts, `SHA256SUMS`, itself).
async fn assert_nothing_unreferenced(store: &Store, layout: &Layout, n: u64) {
    let m = harness_manifest(store, layout, n).await;
    for (key, _) in build_objects(store, layout, n).await {
        let known = key == layout.manifest_key(&app(), n)
            || key == layout.sums_key(&app(), n)
            || m.artifacts.iter().any(|a| a.key == key);
        assert!(
            known,
            "build {n}: object {key} is not referenced by the manifest"
        );
    }
}

async fn harness_manifest(
    store: &Store,
    layout: &Layout,
    n: u64,
) -> jam::format::manifest::Manifest {
    let key = jam::format::layout::path(&layout.manifest_key(&app(), n));
    let (bytes, _) = store.get(&key).await.unwrap().expect("manifest");
    serde_json::from_slice(&bytes).unwrap()
}

/// `jam verify --deep` on the target: exits 0.
fn assert_verify_deep_clean(store_env: &[(String, String)]) {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin!("jam"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(std::env::temp_dir())
        .args(["verify", "--deep"]);
    for (k, v) in store_env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "jam verify --deep: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The keys of the multipart uploads open under the target's prefix (aws CLI).
fn open_uploads(target: &Target) -> Vec<String> {
    let (env, prefix) = target.s3.as_ref().expect("an S3 target");
    support::pending_multipart_uploads(env, &format!("{prefix}/")).unwrap_or_default()
}

fn seaweed() -> Option<Target> {
    Target::seaweed()
}

// ----------------------------------------------------------------------------------------------------------

/// Three workers, 60 builds (every tenth with a 24 MiB artifact): each build is committed exactly once,
/// each artifact downloaded once (more only for a build whose claim was taken over), and `jam verify
/// --deep` is clean; a clean stop leaves no heartbeat, claim or open upload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_mirror_every_build_once() {
    let Some(target) = seaweed() else { return };
    let mut job = ItemSpec::freestyle("app");
    for n in 1..=60u64 {
        job = job.with_build(if n.is_multiple_of(10) {
            big(n, 24 << 20)
        } else {
            small(n)
        });
    }
    let sim = Sim::start(harness::scenario().with_item(job));
    let layout = source(&sim);
    let scratch = Scratch::new();
    let started = Instant::now();
    let workers: Vec<Worker> = ["w1", "w2", "w3"]
        .iter()
        .map(|id| scratch.start(&sim, &target, id, None))
        .collect();
    let store = target.store.clone();
    until(Duration::from_secs(180), "60 builds committed", || async {
        index_of(&store, &layout)
            .await
            .is_some_and(|ix| ix.builds.len() == 60)
    })
    .await;
    let secs = started.elapsed().as_secs_f64();
    let sum = |name: &str| workers.iter().map(|w| w.metric(name)).sum::<u64>();
    // The index lists a build a moment before its worker counts it.
    until(Duration::from_secs(10), "60 builds counted", || async {
        sum("jam_builds_mirrored_total") >= 60
    })
    .await;
    let per: Vec<u64> = workers
        .iter()
        .map(|w| w.metric("jam_builds_mirrored_total"))
        .collect();
    let (mirrored, lost, taken) = (
        sum("jam_builds_mirrored_total"),
        sum("jam_commits_lost_total"),
        sum("jam_claims_taken_over_total"),
    );
    let live = workers[0].metric("jam_workers_live");
    eprintln!(
        "60 builds in {secs:.1}s; committed per worker {per:?}; commits lost {lost}; takeovers {taken}; \
         live workers seen by w1 {live}"
    );
    assert_eq!(mirrored, 60, "each build committed by exactly one worker");
    assert_eq!(
        lost, 0,
        "no worker lost a commit race: the claims kept them apart"
    );
    let mut extra = 0;
    for n in 1..=60u64 {
        assert!(committed(&store, &layout, n).await, "build {n}");
        let paths: &[&str] = if n.is_multiple_of(10) {
            &["big.bin", "notes.txt"]
        } else {
            &["app.jar", "notes.txt"]
        };
        for p in paths {
            let d = downloads(&sim, n, p);
            assert!(d >= 1, "build {n} {p} downloaded");
            extra += d - 1;
        }
    }
    assert!(
        extra as u64 <= taken * 2,
        "{extra} duplicate downloads with {taken} takeovers"
    );
    for w in workers {
        w.stop();
    }
    for dir in [jam::fleet::WORKERS, jam::fleet::CLAIMS] {
        let left = store.list_all(&Store::path(dir).unwrap()).await.unwrap();
        assert!(left.is_empty(), "a clean stop removes {dir}: {left:?}");
    }
    assert_verify_deep_clean(&target.env);
    assert!(
        open_uploads(&target).is_empty(),
        "{:?}",
        open_uploads(&target)
    );
}

/// A worker holding a large build mid-transfer (its download stalls) is killed with SIGKILL: another
/// worker takes the build over within about two leases and commits it; the dead worker's open upload is
/// aborted by the clean-up, so none is left open (aws CLI).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_holder_hands_its_build_to_another_worker() {
    let Some(target) = seaweed() else { return };
    let mut job = ItemSpec::freestyle("app");
    for n in 1..=3 {
        job = job.with_build(small(n));
    }
    let sim = Sim::start(harness::scenario().with_item(job.with_build(big(4, 40 << 20))));
    sim.add_fault(
        Fault::stall_after(12 << 20)
            .path_prefix("/job/app/4/artifact/big.bin")
            .times(1),
    )
    .unwrap();
    let layout = source(&sim);
    let scratch = Scratch::new();
    let mut workers: Vec<Worker> = ["k1", "k2", "k3"]
        .iter()
        .map(|id| scratch.start(&sim, &target, id, None))
        .collect();
    let store = target.store.clone();
    claimed_mid_transfer(&target, &layout, 4, None).await;
    let holder = claim_holder(&store, &layout, 4).await.unwrap();
    let i = workers.iter().position(|w| w.id == holder).unwrap();
    workers.remove(i).kill();
    let killed = Instant::now();
    until(Duration::from_secs(30), "the claim taken over", || async {
        claim_holder(&store, &layout, 4)
            .await
            .is_none_or(|h| h != holder)
    })
    .await;
    let takeover = killed.elapsed();
    until(Duration::from_secs(60), "build 4 committed", || {
        committed(&store, &layout, 4)
    })
    .await;
    let commit = killed.elapsed();
    eprintln!("takeover {takeover:?} after the kill, commit {commit:?}");
    assert!(
        takeover <= 2 * LEASE + Duration::from_millis(1500),
        "taken over within about two leases: {takeover:?}"
    );
    // The dead worker's upload is aborted by the clean-up after its heartbeat stood still.
    until(
        Duration::from_secs(40),
        "no multipart upload open",
        || async { open_uploads(&target).is_empty() },
    )
    .await;
    assert!(
        downloads(&sim, 4, "big.bin") <= 2,
        "one re-download for the takeover"
    );
    for n in 1..=3 {
        assert_eq!(downloads(&sim, n, "app.jar"), 1, "build {n}");
    }
    let cleaned: u64 = workers
        .iter()
        .map(|w| w.metric("jam_dead_workers_cleaned_total"))
        .sum();
    assert_eq!(cleaned, 1, "the dead worker was cleaned up once");
    for w in workers {
        w.stop();
    }
    let heartbeats = store
        .list_all(&Store::path(jam::fleet::WORKERS).unwrap())
        .await
        .unwrap();
    assert!(heartbeats.is_empty(), "{heartbeats:?}");
    assert_nothing_unreferenced(&store, &layout, 4).await;
    assert_verify_deep_clean(&target.env);
}

/// A worker frozen with SIGSTOP mid-transfer for longer than its lease: another takes its build over
/// and commits it; resumed with SIGCONT, the frozen one finds its claim gone, commits nothing, and leaves
/// no object the manifest does not reference and no open upload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_worker_wakes_to_find_its_build_taken_and_commits_nothing() {
    let Some(target) = seaweed() else { return };
    let (sim, layout) = one_stalling_build();
    let scratch = Scratch::new();
    let first = scratch.start(&sim, &target, "frozen", None);
    let store = target.store.clone();
    claimed_mid_transfer(&target, &layout, 1, Some("frozen")).await;
    first.signal("-STOP");
    let other = scratch.start(&sim, &target, "awake", None);
    until(
        Duration::from_secs(60),
        "build 1 committed by the other",
        || committed(&store, &layout, 1),
    )
    .await;
    let objects = build_objects(&store, &layout, 1).await;
    first.signal("-CONT");
    until(
        Duration::from_secs(20),
        "the frozen worker notices",
        || async { first.metric("jam_claims_revoked_total") >= 1 },
    )
    .await;
    tokio::time::sleep(LEASE).await;
    assert_eq!(
        first.metric("jam_commits_lost_total"),
        0,
        "it attempted no commit"
    );
    assert_eq!(other.metric("jam_builds_mirrored_total"), 1);
    assert_eq!(first.metric("jam_builds_mirrored_total"), 0);
    until(Duration::from_secs(20), "its upload aborted", || async {
        open_uploads(&target).is_empty()
    })
    .await;
    let log = first.stop();
    other.stop();
    assert!(log.contains("abandoning the build"), "{log}");
    assert_eq!(
        build_objects(&store, &layout, 1).await,
        objects,
        "the woken worker changed nothing of the committed build"
    );
    assert_nothing_unreferenced(&store, &layout, 1).await;
    let ix = index_of(&store, &layout).await.expect("index");
    assert_eq!(ix.builds.len(), 1);
    assert_verify_deep_clean(&target.env);
}

/// A loopback TCP proxy to `upstream` that can stop forwarding (bytes wait, connections hang) and go on.
async fn pausable_proxy(upstream: SocketAddr) -> (String, tokio::sync::watch::Sender<bool>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::watch::channel(true);
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let rx = rx.clone();
            tokio::spawn(async move {
                let Ok(up) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                let (cr, cw) = sock.into_split();
                let (ur, uw) = up.into_split();
                tokio::join!(pipe(rx.clone(), cr, uw), pipe(rx, ur, cw));
            });
        }
    });
    (url, tx)
}

/// Copies `from` to `to`, holding each chunk while `on` is false.
async fn pipe(
    mut on: tokio::sync::watch::Receiver<bool>,
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let Ok(n) = from.read(&mut buf).await else {
            return;
        };
        if n == 0 {
            let _ = to.shutdown().await;
            return;
        }
        if on.wait_for(|on| *on).await.is_err() || to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// A worker whose store traffic stops (a proxy that no longer forwards) for longer than its lease while
/// it still reaches Jenkins: its claim is taken over and the build committed by another; when the proxy
/// forwards again it commits nothing a second time and deletes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_cut_off_from_the_store_loses_its_claim_and_deletes_nothing() {
    let Some(target) = seaweed() else { return };
    let (sim, layout) = one_stalling_build();
    let (env, _) = target.s3.clone().unwrap();
    let upstream: SocketAddr = env.endpoint.trim_start_matches("http://").parse().unwrap();
    let (proxy, forward) = pausable_proxy(upstream).await;
    let cut_env: Vec<(String, String)> = target
        .env
        .iter()
        .map(|(k, v)| {
            if k == "AWS_ENDPOINT_URL" {
                (k.clone(), proxy.clone())
            } else {
                (k.clone(), v.clone())
            }
        })
        .collect();
    let scratch = Scratch::new();
    let cut = scratch.start_on(&sim, &cut_env, "cut", None);
    let store = target.store.clone();
    claimed_mid_transfer(&target, &layout, 1, Some("cut")).await;
    forward.send(false).unwrap();
    let cut_at = Instant::now();
    let other = scratch.start(&sim, &target, "connected", None);
    // Past its lease without a renewal, the cut-off worker reports itself not ready.
    let ready = {
        let addr = cut.listen;
        tokio::task::spawn_blocking(move || {
            std::thread::sleep(LEASE * 3 / 2);
            http_get(addr, "/readyz")
        })
    };
    until(
        Duration::from_secs(60),
        "build 1 committed by the other",
        || committed(&store, &layout, 1),
    )
    .await;
    let objects = build_objects(&store, &layout, 1).await;
    // Cut off for three leases at least, then forwarding again.
    let rest = (3 * LEASE).saturating_sub(cut_at.elapsed());
    tokio::time::sleep(rest).await;
    forward.send(true).unwrap();
    let ready = ready.await.unwrap();
    assert!(
        ready.contains(" 503 ") && ready.contains("FAIL heartbeat"),
        "{ready}"
    );
    until(
        Duration::from_secs(30),
        "the cut-off worker notices",
        || async { cut.metric("jam_claims_revoked_total") >= 1 },
    )
    .await;
    tokio::time::sleep(2 * LEASE).await;
    assert_eq!(cut.metric("jam_commits_lost_total"), 0, "no second commit");
    assert_eq!(cut.metric("jam_builds_mirrored_total"), 0);
    assert_eq!(
        build_objects(&store, &layout, 1).await,
        objects,
        "nothing of the committed build was deleted or replaced"
    );
    until(Duration::from_secs(20), "its upload aborted", || async {
        open_uploads(&target).is_empty()
    })
    .await;
    cut.stop();
    other.stop();
    assert_nothing_unreferenced(&store, &layout, 1).await;
    assert_verify_deep_clean(&target.env);
}

/// Workers whose wall clocks are 10 minutes ahead and behind (`faketime`) beside a worker with the right
/// time: neither steals the right worker's live claim, and the claim of the one ahead, once it is
/// killed, is taken over within about two leases (not kept alive by its clock).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_wall_clock_neither_steals_live_claims_nor_keeps_dead_ones() {
    let Some(target) = seaweed() else { return };
    if libfaketime().is_none() {
        return support::skip_or_fail(
            "libfaketime is not installed (tests/run.sh installs faketime)",
        );
    }
    let sim = Sim::start(
        harness::scenario().with_item(ItemSpec::freestyle("app").with_build(big(1, 24 << 20))),
    );
    sim.add_fault(stall_once(1, Some(4 * LEASE.as_millis() as u64)))
        .unwrap();
    let layout = source(&sim);
    let scratch = Scratch::new();
    let right = scratch.start(&sim, &target, "right", None);
    let store = target.store.clone();
    until(
        Duration::from_secs(60),
        "build 1 claimed by the right clock",
        || async { claim_holder(&store, &layout, 1).await.as_deref() == Some("right") },
    )
    .await;
    let ahead = scratch.start(&sim, &target, "ahead", Some("+10m"));
    let behind = scratch.start(&sim, &target, "behind", Some("-10m"));
    // Their clocks are off indeed: the heartbeat of the one ahead says so.
    let key = jam::fleet::worker_key("ahead").unwrap();
    until(
        Duration::from_secs(30),
        "the worker ahead announced",
        || async { store.head(&key).await.ok().flatten().is_some() },
    )
    .await;
    let (bytes, _) = store.get(&key).await.unwrap().unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let written = time::OffsetDateTime::parse(
        doc["written_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let ahead_by = written - time::OffsetDateTime::now_utc();
    assert!(
        ahead_by > time::Duration::minutes(9),
        "its clock runs ahead: {ahead_by}"
    );
    // While the right worker renews, the claim stays its own until it commits.
    until(Duration::from_secs(60), "build 1 committed", || async {
        let holder = claim_holder(&store, &layout, 1).await;
        assert!(
            holder.is_none() || holder.as_deref() == Some("right"),
            "a skewed worker took a live claim: {holder:?}"
        );
        committed(&store, &layout, 1).await
    })
    .await;
    assert_eq!(downloads(&sim, 1, "big.bin"), 1);
    for w in [&ahead, &behind] {
        assert_eq!(w.metric("jam_claims_taken_over_total"), 0, "{}", w.id);
    }
    assert!(
        ahead.log().contains("joined the workers of the store"),
        "the worker ahead runs: {}",
        ahead.log()
    );
    // Now only the worker ahead runs; it claims build 2, whose download stalls, and is killed.
    right.stop();
    behind.stop();
    sim.add_fault(stall_once(2, None)).unwrap();
    sim.add_build("app", big(2, 24 << 20)).unwrap();
    until(
        Duration::from_secs(60),
        "build 2 claimed by the worker ahead",
        || async { claim_holder(&store, &layout, 2).await.as_deref() == Some("ahead") },
    )
    .await;
    let behind = scratch.start(&sim, &target, "behind", Some("-10m"));
    // The worker behind has found the claim held (it watches it from now on); then the one ahead dies.
    until(
        Duration::from_secs(30),
        "the worker behind sees the claim",
        || async { behind.metric("jam_claims_lost_total") >= 1 },
    )
    .await;
    ahead.kill();
    let killed = Instant::now();
    until(
        Duration::from_secs(30),
        "build 2's claim taken over",
        || async {
            claim_holder(&store, &layout, 2)
                .await
                .is_none_or(|h| h != "ahead")
        },
    )
    .await;
    let takeover = killed.elapsed();
    eprintln!("claim of the worker 10 minutes ahead taken over {takeover:?} after its kill");
    assert!(
        takeover <= 2 * LEASE + Duration::from_millis(1500),
        "{takeover:?}"
    );
    until(Duration::from_secs(60), "build 2 committed", || {
        committed(&store, &layout, 2)
    })
    .await;
    behind.stop();
    assert_verify_deep_clean(&target.env);
}

/// Two workers into a real SeaweedFS cluster (master, three volume servers, filer, S3 gateway;
/// replication 001) that `tests/run.sh` starts for this test; one volume server is killed with `kill -9`
/// mid-run: jam retries through it, every build is committed, `jam verify --deep` is clean, and the
/// volume server is started again afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the SeaweedFS cluster: bash tests/run.sh runs it in its own section"]
async fn two_workers_ride_out_a_volume_server_killed_in_a_cluster() {
    let Some(cluster) = Cluster::from_env() else {
        return;
    };
    let env = cluster.s3.clone();
    let prefix = support::random_prefix();
    let url = format!("s3://{}/{prefix}", env.bucket);
    let target_env: Vec<(String, String)> = vec![
        ("JAM_STORE".into(), url.clone()),
        ("AWS_ENDPOINT_URL".into(), env.endpoint.clone()),
        ("AWS_ACCESS_KEY_ID".into(), env.access_key.clone()),
        ("AWS_SECRET_ACCESS_KEY".into(), env.secret_key.clone()),
        ("AWS_REGION".into(), "us-east-1".into()),
        ("AWS_ALLOW_HTTP".into(), "true".into()),
    ];
    let store = Store::open(&support::s3_config(&env, &url)).unwrap();
    let mut job = ItemSpec::freestyle("app");
    for n in 1..=20 {
        job = job.with_build(big(n, 12 << 20));
    }
    let sim = Sim::start(harness::scenario().with_item(job));
    let layout = source(&sim);
    let scratch = Scratch::new();
    let workers: Vec<Worker> = ["c1", "c2"]
        .iter()
        .map(|id| scratch.start_on(&sim, &target_env, id, None))
        .collect();
    let count = |store: Store, layout: Layout| async move {
        index_of(&store, &layout)
            .await
            .map_or(0, |ix| ix.builds.len())
    };
    until(Duration::from_secs(120), "a few builds committed", || {
        let (s, l) = (store.clone(), layout.clone());
        async move { count(s, l).await >= 4 }
    })
    .await;
    cluster.kill_volume(2);
    until(Duration::from_secs(240), "20 builds committed", || {
        let (s, l) = (store.clone(), layout.clone());
        async move { count(s, l).await == 20 }
    })
    .await;
    for w in workers {
        w.stop();
    }
    assert_verify_deep_clean(&target_env);
    cluster.restart_volume(2);
}

/// The cluster `tests/run.sh` starts for the cluster section (`JAM_TEST_CLUSTER_*`).
struct Cluster {
    s3: support::S3Env,
    dir: PathBuf,
}

impl Cluster {
    fn from_env() -> Option<Cluster> {
        let var = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
        let (Some(endpoint), Some(dir)) = (
            var("JAM_TEST_CLUSTER_ENDPOINT"),
            var("JAM_TEST_CLUSTER_DIR"),
        ) else {
            support::skip_or_fail(
                "the SeaweedFS cluster is not running: JAM_TEST_CLUSTER_ENDPOINT is not set",
            );
            return None;
        };
        Some(Cluster {
            s3: support::S3Env {
                kind: support::S3Kind::Seaweed,
                endpoint,
                bucket: var("JAM_TEST_CLUSTER_BUCKET")?,
                access_key: var("JAM_TEST_CLUSTER_ACCESS_KEY")?,
                secret_key: var("JAM_TEST_CLUSTER_SECRET_KEY")?,
            },
            dir: PathBuf::from(dir),
        })
    }

    fn pidfile(&self, i: u32) -> PathBuf {
        self.dir.join(format!("volume{i}.pid"))
    }

    fn kill_volume(&self, i: u32) {
        let pid = std::fs::read_to_string(self.pidfile(i)).unwrap();
        assert!(
            Command::new("kill")
                .args(["-9", pid.trim()])
                .status()
                .unwrap()
                .success()
        );
        eprintln!("killed volume server {i} (pid {})", pid.trim());
    }

    /// Starts volume server `i` again with its command line (`volume<i>.cmd`), its pid in its pid file.
    fn restart_volume(&self, i: u32) {
        let cmd = std::fs::read_to_string(self.dir.join(format!("volume{i}.cmd"))).unwrap();
        let log = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(self.dir.join(format!("volume{i}.log")))
            .unwrap();
        let child = Command::new("bash")
            .args(["-c", &format!("exec {cmd}")])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        std::fs::write(self.pidfile(i), child.id().to_string()).unwrap();
        std::mem::forget(child); // tests/run.sh stops it by its pid file
    }
}

// ----------------------------------------------------------------------------------------------------------
// In-process: a store that ignores conditional writes, a duplicate id, one writer per directory.

/// A test double of Garage: an in-memory store that ignores `If-None-Match` and `If-Match`.
#[derive(Debug)]
struct IgnoresConditions(InMemory);

impl std::fmt::Display for IgnoresConditions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IgnoresConditions")
    }
}

#[async_trait]
impl ObjectStore for IgnoresConditions {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let opts = PutOptions {
            mode: PutMode::Overwrite,
            ..opts
        };
        self.0.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.0.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.0.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[std::ops::Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        self.0.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.0.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.0.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.0.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.0.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.0.copy_opts(from, to, options).await
    }
}

fn lease_config(sim: &Sim, id: &str) -> jam::config::Config {
    let mut cfg = harness::config(
        sim,
        "memory://",
        &format!("[mirror]\nworker_id = \"{id}\"\nlease = \"1s\"\npoll_interval = \"200ms\"\n"),
    );
    cfg.mirror.lease = Duration::from_secs(1);
    cfg
}

/// A store that ignores conditional writes (as Garage does) takes one worker; a second is refused with
/// an error that names the store and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_ignores_conditional_writes_refuses_a_second_worker() {
    let sim =
        Sim::start(harness::scenario().with_item(ItemSpec::freestyle("app").with_build(small(1))));
    let store = Store::new(
        Arc::new(IgnoresConditions(InMemory::new())),
        Backend::S3,
        "s3://garage-like".into(),
    );
    let stop = CancellationToken::new();
    let first = tokio::spawn(
        Mirror::new(&lease_config(&sim, "only"), store.clone())
            .unwrap()
            .run(false, stop.clone()),
    );
    harness::wait_for(|| async { harness::manifest(&store, &app(), 1).await.is_some() }).await;
    let err = Mirror::new(&lease_config(&sim, "second"), store.clone())
        .unwrap()
        .run(true, CancellationToken::new())
        .await
        .expect_err("a second worker on a store that cannot coordinate");
    let msg = jam::Error::from(err).to_string();
    assert!(msg.contains("s3://garage-like"), "names the store: {msg}");
    assert!(msg.contains("does not honour conditional writes"), "{msg}");
    assert!(
        msg.contains("'only'") || msg.contains("only"),
        "names the live worker: {msg}"
    );
    stop.cancel();
    let summary = first.await.unwrap().expect("the first worker runs");
    assert_eq!(summary.mirrored, 1);
}

/// Two live workers with one id: the second refuses to start, naming the id; once the first stops
/// cleanly (its heartbeat deleted), a worker with that id starts at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_live_worker_with_the_same_id_refuses_to_start() {
    let Some(target) = seaweed() else { return };
    let sim =
        Sim::start(harness::scenario().with_item(ItemSpec::freestyle("app").with_build(small(1))));
    let layout = source(&sim);
    let scratch = Scratch::new();
    let first = scratch.start(&sim, &target, "twin", None);
    let store = target.store.clone();
    until(
        Duration::from_secs(30),
        "the first worker announced",
        || async { committed(&store, &layout, 1).await },
    )
    .await;
    let jam = assert_cmd::cargo::cargo_bin!("jam");
    let run_twin = || {
        let mut cmd = Command::new(jam);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("JENKINS_URL", sim.url())
            .env("JENKINS_USER", harness::USER)
            .env("JENKINS_API_TOKEN", harness::TOKEN)
            .env("JAM_CONFIG", scratch.config())
            .env("JAM_WORKER_ID", "twin")
            .args(["mirror", "--once"]);
        for (k, v) in &target.env {
            cmd.env(k, v);
        }
        let t = Instant::now();
        (cmd.output().unwrap(), t.elapsed())
    };
    // `jam ls --workers` shows it, with what it holds.
    let ls = |args: &[&str]| {
        let mut cmd = Command::new(jam);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .arg("ls")
            .args(args);
        for (k, v) in &target.env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let rows: serde_json::Value = serde_json::from_str(&ls(&["--workers", "--json"])).unwrap();
    let twin = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "twin")
        .unwrap_or_else(|| panic!("{rows}"));
    assert_eq!(twin["state"], "worker", "{twin}");
    assert_eq!(twin["pid"], first.child.id(), "{twin}");
    let text = ls(&["--workers"]);
    assert!(
        text.starts_with("WORKER") && text.contains("twin"),
        "{text}"
    );
    let (out, took) = run_twin();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("another jam worker with id 'twin' is running"),
        "{err}"
    );
    assert!(took < 3 * LEASE, "refused within a lease or so: {took:?}");
    first.stop();
    let (out, took) = run_twin();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(took < LEASE * 2, "no wait after a clean stop: {took:?}");
}

/// Two `jam mirror` processes on one local directory: the second fails at once, naming the lock.
#[test]
fn a_second_jam_mirror_on_one_directory_fails_at_once() {
    let sim =
        Sim::start(harness::scenario().with_item(ItemSpec::freestyle("app").with_build(small(1))));
    let target = Target::local();
    let first = KillOnDrop(
        harness::jam_mirror(&sim, &target, &["--poll-interval", "200ms"], &[])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let lock = PathBuf::from(&target.env[0].1).join(".jam/mirror.lock");
    let t = Instant::now();
    while !lock_held(&lock) {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the first never locked"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = harness::jam_mirror(&sim, &target, &["--once"], &[])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("another jam mirror"), "{err}");
    assert!(err.contains(&format!("pid {}", first.id())), "{err}");
    drop(first);
}

/// Whether the lock file holds a pid (the first process took the lock and wrote it).
fn lock_held(path: &FsPath) -> bool {
    std::fs::read_to_string(path).is_ok_and(|s| !s.trim().is_empty())
}
