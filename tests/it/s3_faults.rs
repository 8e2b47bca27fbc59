//! Fault injection on the store side. Each test names what it injects and what it asserts afterwards:
//! every eligible build mirrored, verified and committed once, nothing incomplete committed, and no
//! multipart upload left open on the server.
//!
//! The S3 server is SeaweedFS: the shared one from `tests/run.sh` behind a fault-injecting TCP proxy, or a
//! private instance this file starts, stops and restarts (the shared one serves other tests meanwhile).

use std::{
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use jam::{format::layout::JobPath, mirror::Mirror, store::Store};
use jenkins_sim::{ArtifactSpec, BuildResult, BuildSpec, ItemSpec, Sim};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::{
    harness::{self, assert_build_mirrored, config, index, mirror_once, wait_for},
    support::{self, S3Env, S3Kind},
};

fn app(builds: std::ops::RangeInclusive<u64>, size: u64) -> ItemSpec {
    let mut app = ItemSpec::freestyle("app");
    for n in builds {
        app = app.with_build(build(n, size));
    }
    app
}

fn build(n: u64, size: u64) -> BuildSpec {
    BuildSpec::finished(n, BuildResult::Success)
        .with_artifact(ArtifactSpec::sized("dist/app.bin", size))
        .with_artifact(ArtifactSpec::sized("notes.txt", 500).without_fingerprint())
}

async fn assert_complete(store: &Store, sim: &Sim, builds: std::ops::RangeInclusive<u64>) {
    let job = JobPath::new(["app"]);
    let n = builds.clone().count();
    for b in builds {
        assert_build_mirrored(store, sim, &job, "app", b).await;
    }
    let ix = index(store, &job).await.unwrap();
    assert_eq!(ix.builds.len(), n, "each build committed once");
    assert!(ix.failed.is_empty(), "{:?}", ix.failed);
}

fn assert_no_open_uploads(env: &S3Env, prefix: &str) {
    if let Some(pending) = support::pending_multipart_uploads(env, &format!("{prefix}/")) {
        assert!(
            pending.is_empty(),
            "multipart uploads left open: {pending:?}"
        );
    }
}

// ----------------------------------------------------------------------------------------------------------
// A fault-injecting proxy in front of S3.

/// A TCP proxy to `upstream` that answers the first `fail_first` connections with `503 Slow Down` without
/// forwarding them, and delays every forwarded connection by `delay`. Requests keep their `Host` header,
/// so SigV4 signatures stay valid.
async fn fault_proxy(
    upstream: SocketAddr,
    fail_first: usize,
    delay: Duration,
) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let failed = Arc::new(AtomicUsize::new(0));
    let count = failed.clone();
    tokio::spawn(async move {
        let mut seen = 0usize;
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            seen += 1;
            if seen <= fail_first {
                count.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 16384];
                    let _ = sock.read(&mut buf).await;
                    let body = "<Error><Code>SlowDown</Code><Message>injected</Message></Error>";
                    let _ = sock
                        .write_all(
                            format!(
                                "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                                body.len()
                            )
                            .as_bytes(),
                        )
                        .await;
                });
                continue;
            }
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                if let Ok(mut up) = tokio::net::TcpStream::connect(upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut sock, &mut up).await;
                }
            });
        }
    });
    (url, failed)
}

fn endpoint_addr(endpoint: &str) -> SocketAddr {
    let u = url::Url::parse(endpoint).unwrap();
    format!("{}:{}", u.host_str().unwrap(), u.port().unwrap())
        .parse()
        .unwrap()
}

/// Injects: S3 answering 503 on the first 6 connections, and 150 ms of latency on every other one.
/// Asserts: the run mirrors everything, correctly, with no upload left open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_errors_and_slow_responses_are_retried() {
    let Some(env) = support::s3_env(S3Kind::Seaweed) else {
        return;
    };
    let (proxy, failed) =
        fault_proxy(endpoint_addr(&env.endpoint), 6, Duration::from_millis(150)).await;
    let sim = Sim::start(harness::scenario().with_item(app(1..=3, 11 << 20)));
    let prefix = support::random_prefix();
    let url = format!("s3://{}/{prefix}", env.bucket);
    let mut cfg = config(&sim, &url, "");
    let mut via_proxy = env.clone();
    via_proxy.endpoint = proxy;
    cfg.store = support::s3_config(&via_proxy, &url);
    let store = Store::open(&cfg.store).unwrap();
    let s = mirror_once(&cfg, &store).await;
    assert!(s.ok(), "{s:?}");
    assert_eq!(
        failed.load(Ordering::Relaxed),
        6,
        "the injected 503s were hit"
    );
    assert_complete(&store, &sim, 1..=3).await;
    assert_no_open_uploads(&env, &prefix);
}

// ----------------------------------------------------------------------------------------------------------
// A private SeaweedFS, to stop and start.

/// A SeaweedFS of this test's own, with an admin identity and a read-only one, and a bucket.
pub(crate) struct PrivateWeed {
    argv: Vec<String>,
    dir: tempfile::TempDir,
    child: Option<Child>,
    endpoint: String,
    pub(crate) bucket: String,
}

impl PrivateWeed {
    /// Starts one; `None` (after `skip_or_fail`) without `JAM_TEST_WEED`.
    pub(crate) fn start() -> Option<PrivateWeed> {
        let Some(weed) = std::env::var("JAM_TEST_WEED")
            .ok()
            .filter(|v| !v.is_empty())
        else {
            support::skip_or_fail("SeaweedFS is not available: JAM_TEST_WEED is not set");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        std::fs::write(
            dir.path().join("s3.json"),
            r#"{"identities":[
              {"name":"admin","credentials":[{"accessKey":"privadmin","secretKey":"privadmin-secret"}],"actions":["Admin","Read","Write","List","Tagging"]},
              {"name":"reader","credentials":[{"accessKey":"privreader","secretKey":"privreader-secret"}],"actions":["Read","List"]}]}"#,
        )
        .unwrap();
        let base = free_port_block();
        let d = dir.path().display().to_string();
        let argv: Vec<String> = vec![
            weed,
            "mini".into(),
            format!("-dir={d}/data"),
            "-ip=127.0.0.1".into(),
            "-ip.bind=127.0.0.1".into(),
            format!("-master.port={base}"),
            format!("-volume.port={}", base + 1),
            format!("-filer.port={}", base + 2),
            format!("-s3.port={}", base + 3),
            format!("-admin.port={}", base + 4),
            format!("-filer.localSocket={d}/filer.sock"),
            format!("-s3.localSocket={d}/s3.sock"),
            format!("-s3.config={d}/s3.json"),
            "-webdav=false".into(),
            "-admin.ui=false".into(),
            "-s3.port.iceberg=0".into(),
            "-s3.port.lance=0".into(),
            "-master.telemetry=false".into(),
        ];
        let mut w = PrivateWeed {
            argv,
            dir,
            child: None,
            endpoint: format!("http://127.0.0.1:{}", base + 3),
            bucket: "private".into(),
        };
        w.spawn();
        let deadline = Instant::now() + Duration::from_secs(60);
        while support::aws_cli_status(
            &w.env(false),
            &["s3api", "create-bucket", "--bucket", &w.bucket],
        )
        .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "private SeaweedFS did not take a bucket within 60 s"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        Some(w)
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(
            self.dir
                .path()
                .join(format!("weed-{}.log", rand::random::<u32>())),
        )
        .unwrap();
        let child = Command::new(&self.argv[0])
            .args(&self.argv[1..])
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        let addr = endpoint_addr(&self.endpoint);
        while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "private SeaweedFS did not listen within 60 s"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub(crate) fn env(&self, read_only: bool) -> S3Env {
        let (k, s) = if read_only {
            ("privreader", "privreader-secret")
        } else {
            ("privadmin", "privadmin-secret")
        };
        S3Env {
            kind: S3Kind::Seaweed,
            endpoint: self.endpoint.clone(),
            bucket: self.bucket.clone(),
            access_key: k.into(),
            secret_key: s.into(),
        }
    }
}

impl Drop for PrivateWeed {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A base port where BASE..BASE+4 and each + 10000 (SeaweedFS' gRPC ports) are free.
fn free_port_block() -> u16 {
    for _ in 0..200 {
        let base = 20000 + (rand::random::<u16>() % 900) * 10;
        let ports: Vec<u16> = (0..5).flat_map(|i| [base + i, base + i + 10000]).collect();
        if ports
            .iter()
            .all(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        {
            return base;
        }
    }
    panic!("no free block of ports for a private SeaweedFS");
}

/// Injects: the S3 server stopped for 30 s, mid-run, while new builds keep arriving, then restarted.
/// Asserts: the worker rides out the outage; afterwards every build is mirrored once and correctly, none
/// recorded as failed, and no upload is left open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_down_for_30_seconds_mid_run() {
    let Some(mut weed) = PrivateWeed::start() else {
        return;
    };
    let env = weed.env(false);
    let sim = Sim::start(harness::scenario().with_item(app(1..=2, 9 << 20)));
    let url = format!("s3://{}/outage", env.bucket);
    let mut cfg = config(
        &sim,
        &url,
        "[mirror]\npoll_interval = \"300ms\"\nretry_backoff = \"2s\"\nmax_attempts = 20\n",
    );
    cfg.store = support::s3_config(&env, &url);
    cfg.store.request_timeout = Duration::from_secs(20);
    let store = Store::open(&cfg.store).unwrap();
    let mirror = Mirror::new(&cfg, store.clone()).unwrap();
    let stop = CancellationToken::new();
    let worker = tokio::spawn(mirror.run(false, stop.clone()));
    let job = JobPath::new(["app"]);
    wait_for(|| async {
        index(&store, &job)
            .await
            .is_some_and(|ix| ix.builds.len() == 2)
    })
    .await;

    weed.stop();
    for n in 3..=5 {
        sim.add_build("app", build(n, 9 << 20)).unwrap();
    }
    tokio::time::sleep(Duration::from_secs(30)).await;
    weed.spawn();
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        if let Ok(Some(ix)) =
            tokio::time::timeout(Duration::from_secs(10), index_opt(&store, &job)).await
            && ix.builds.len() == 5
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "builds not mirrored within 4 minutes of the restart"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stop.cancel();
    let s = worker.await.unwrap().expect("the worker joins");
    assert_eq!(s.given_up, 0, "{s:?}");
    assert_complete(&store, &sim, 1..=5).await;
    assert_no_open_uploads(&env, "outage");
}

async fn index_opt(store: &Store, job: &JobPath) -> Option<jam::format::manifest::JobIndex> {
    let key = jam::format::layout::path(&harness::layout().index_key(job));
    let (bytes, _) = store.get(&key).await.ok()??;
    jam::format::manifest::JobIndex::parse(&bytes, "index").ok()
}

/// `jam mirror --once` from `sim` into `s3://<bucket>/x` on the server `env` names, with its credentials
/// and nothing else from the environment.
pub(crate) fn jam_mirror_once(sim: &Sim, env: &S3Env, bucket: &str) -> Command {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin!("jam"));
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("JENKINS_URL", sim.url())
        .env("JENKINS_USER", harness::USER)
        .env("JENKINS_API_TOKEN", harness::TOKEN)
        .env("JAM_STORE", format!("s3://{bucket}/x"))
        .env("AWS_ENDPOINT_URL", &env.endpoint)
        .env("AWS_ACCESS_KEY_ID", &env.access_key)
        .env("AWS_SECRET_ACCESS_KEY", &env.secret_key)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ALLOW_HTTP", "true")
        .current_dir(std::env::temp_dir())
        .args(["mirror", "--once"]);
    c
}

/// Injects: a bucket that does not exist, and credentials that may read but not write.
/// Asserts: `jam mirror --once` exits non-zero with an error that names the problem and what to do, and
/// nothing is committed.
#[test]
fn missing_bucket_and_denied_writes_fail_clearly() {
    let Some(weed) = PrivateWeed::start() else {
        return;
    };
    let sim = Sim::start(harness::scenario().with_item(app(1..=1, 1000)));
    let run = |env: &S3Env, bucket: &str| {
        let out = jam_mirror_once(&sim, env, bucket).output().unwrap();
        (
            out.status,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (status, err) = run(&weed.env(false), "no-such-bucket");
    assert!(!status.success(), "{err}");
    assert!(err.contains("check that the bucket exists"), "{err}");

    let (status, err) = run(&weed.env(true), &weed.bucket);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("may write"),
        "the error says what to do: {err}"
    );
    let listed = support::aws_cli(
        &weed.env(false),
        &["s3api", "list-objects-v2", "--bucket", &weed.bucket],
    )
    .unwrap();
    assert!(
        !listed.contains("manifest.json"),
        "nothing committed: {listed}"
    );
}
