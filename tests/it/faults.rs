//! Fault injection: each test names what it injects and what it asserts afterwards — every eligible build
//! mirrored, verified and committed once, nothing incomplete committed.
//!
//! Jenkins side: error bursts, a restart, stalled bodies, a build deleted between listing and download, a
//! job deleted, a token revoked mid-run, and answers that are not the JSON jam asked for.

use std::{sync::atomic::Ordering, time::Duration};

use jam::{
    format::layout::{JobPath, Layout},
    jenkins::JenkinsClient,
    mirror::Mirror,
    store::Store,
};
use jenkins_sim::{ArtifactSpec, BuildResult, BuildSpec, Fault, ItemSpec, RouteKind, Sim};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::harness::{self, Target, assert_build_mirrored, config, index, mirror_once, wait_for};

fn app_with_builds(n: u64, size: u64) -> ItemSpec {
    let mut app = ItemSpec::freestyle("app");
    for b in 1..=n {
        app = app.with_build(
            BuildSpec::finished(b, BuildResult::Success)
                .with_artifact(ArtifactSpec::sized("dist/app.bin", size))
                .with_artifact(ArtifactSpec::sized("log.txt", 100).without_fingerprint()),
        );
    }
    app
}

async fn assert_all_mirrored(store: &Store, sim: &Sim, builds: u64) {
    let job = JobPath::new(["app"]);
    for n in 1..=builds {
        assert_build_mirrored(store, sim, &job, "app", n).await;
    }
    let ix = index(store, &job).await.unwrap();
    assert_eq!(ix.builds.len() as u64, builds);
    assert!(ix.failed.is_empty(), "{:?}", ix.failed);
}

/// Injects: bursts of 500, 502 and 503 on API calls and downloads, and a 429 with `Retry-After: 1`.
/// Asserts: one `--once` run still mirrors every build, correctly, and the 429 was waited out.
async fn error_bursts_and_429_are_survived(t: Target) {
    let sim = Sim::start(harness::scenario().with_item(app_with_builds(3, 100_000)));
    sim.add_fault(Fault::too_many_requests(1).on(RouteKind::Api).times(1))
        .unwrap();
    sim.add_fault(Fault::status(503).on(RouteKind::Api).times(3))
        .unwrap();
    sim.add_fault(Fault::status(500).on(RouteKind::Artifact).times(2))
        .unwrap();
    sim.add_fault(Fault::status(502).on(RouteKind::Any).skip(5).times(2))
        .unwrap();
    let cfg = t.config(&sim, "");
    let store = Store::open(&cfg.store).unwrap();
    let started = std::time::Instant::now();
    let s = mirror_once(&cfg, &store).await;
    assert!(s.ok(), "{s:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "Retry-After honoured"
    );
    assert_all_mirrored(&store, &sim, 3).await;
    let faulted = sim.requests().iter().filter(|r| r.faulted).count();
    assert!(faulted >= 8, "faults were hit: {faulted}");
    t.assert_no_open_uploads();
}

/// Injects: Jenkins restarting (503 to everything for 1.5 s) while a worker runs.
/// Asserts: the worker rides it out and mirrors everything once Jenkins is back, with no build failed.
async fn jenkins_restart_is_ridden_out(t: Target) {
    let sim = Sim::start(harness::scenario().with_item(app_with_builds(2, 5000)));
    sim.set_restarting(Duration::from_millis(1500));
    let cfg = t.config(&sim, "[mirror]\npoll_interval = \"200ms\"\n");
    let store = Store::open(&cfg.store).unwrap();
    let clients = vec![
        JenkinsClient::new(&cfg.jenkins[0])
            .unwrap()
            .with_backoff(Duration::from_millis(20), Duration::from_millis(100)),
    ];
    let mirror = Mirror::with_clients(&cfg, store.clone(), clients);
    let stop = CancellationToken::new();
    let worker = tokio::spawn(mirror.run(false, stop.clone()));
    let job = JobPath::new(["app"]);
    wait_for(|| async {
        index(&store, &job)
            .await
            .is_some_and(|ix| ix.builds.len() == 2)
    })
    .await;
    stop.cancel();
    let s = worker.await.unwrap().expect("the worker joins");
    assert_eq!(s.failed_attempts, 0, "{s:?}");
    assert!(s.poll_errors > 0, "the restart was seen: {s:?}");
    assert_all_mirrored(&store, &sim, 2).await;
    t.assert_no_open_uploads();
}

/// Injects: a body that stalls after 100 KB (once), with a 500 ms idle-read timeout.
/// Asserts: the stalled download times out, is retried, and the build is committed with the right bytes.
async fn stalled_body_times_out_and_is_retried(t: Target) {
    let sim = Sim::start(harness::scenario().with_item(app_with_builds(1, 1_000_000)));
    sim.add_fault(
        Fault::stall_after(100_000)
            .on(RouteKind::Artifact)
            .path_prefix("/job/app/1/artifact/dist")
            .times(1),
    )
    .unwrap();
    let cfg = t.config(&sim, "read_timeout = \"500ms\"\n");
    let store = Store::open(&cfg.store).unwrap();
    let s = mirror_once(&cfg, &store).await;
    assert!(s.ok(), "{s:?}");
    assert_all_mirrored(&store, &sim, 1).await;
    t.assert_no_open_uploads();
}

/// Injects: build 2 deleted from Jenkins after it was listed, while its download is delayed.
/// Asserts: build 2 is recorded as missed and not committed; build 1 is committed.
async fn build_deleted_between_listing_and_download_is_missed(t: Target) {
    let sim = Sim::start(harness::scenario().with_item(app_with_builds(2, 1000)));
    sim.add_fault(
        Fault::latency(Duration::from_millis(800))
            .on(RouteKind::Artifact)
            .path_prefix("/job/app/2/"),
    )
    .unwrap();
    let cfg = t.config(&sim, "");
    let store = Store::open(&cfg.store).unwrap();
    let run = {
        let (cfg, store) = (cfg.clone(), store.clone());
        tokio::spawn(async move { mirror_once(&cfg, &store).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    sim.delete_build("app", 2).unwrap();
    let s = run.await.unwrap();
    assert_eq!(s.missed, 1, "{s:?}");
    let job = JobPath::new(["app"]);
    assert!(harness::manifest(&store, &job, 2).await.is_none());
    assert_build_mirrored(&store, &sim, &job, "app", 1).await;
    assert!(index(&store, &job).await.unwrap().missed.contains(&2));
    t.assert_no_open_uploads();
}

/// Injects: a job deleted from Jenkins while the worker runs.
/// Asserts: what was mirrored stays (this is an archive), and the worker goes on with the other jobs.
async fn deleted_job_stays_mirrored_and_others_go_on(t: Target) {
    let sim = Sim::start(
        harness::scenario()
            .with_item(app_with_builds(1, 1000))
            .with_item(
                ItemSpec::freestyle("other")
                    .with_build(BuildSpec::finished(1, BuildResult::Success)),
            ),
    );
    let cfg = t.config(&sim, "[mirror]\npoll_interval = \"150ms\"\n");
    let store = Store::open(&cfg.store).unwrap();
    let mirror = Mirror::new(&cfg, store.clone()).unwrap();
    let stop = CancellationToken::new();
    let worker = tokio::spawn(mirror.run(false, stop.clone()));
    let app = JobPath::new(["app"]);
    let other = JobPath::new(["other"]);
    wait_for(|| async { harness::manifest(&store, &app, 1).await.is_some() }).await;
    sim.remove_item("app").unwrap();
    sim.add_build("other", BuildSpec::finished(2, BuildResult::Success))
        .unwrap();
    wait_for(|| async { harness::manifest(&store, &other, 2).await.is_some() }).await;
    stop.cancel();
    assert!(worker.await.unwrap().expect("the worker joins").ok());
    // The simulator no longer has the deleted job; the mirror still has it, whole.
    let m = harness::manifest(&store, &app, 1)
        .await
        .expect("deleted job's build stays mirrored");
    for a in &m.artifacts {
        let (bytes, _) = store
            .get(&jam::format::layout::path(&a.key))
            .await
            .unwrap()
            .expect("artifact stays");
        assert_eq!(jam::integrity::sha256_hex(&bytes), a.sha256);
    }
    t.assert_no_open_uploads();
}

/// Injects: the token of one of two controllers revoked mid-run.
/// Asserts: the worker says so, stops polling that controller (no hammering), and goes on mirroring the
/// other one.
async fn revoked_token_stops_one_controller_not_the_others(t: Target) {
    let a = Sim::start(harness::scenario().with_item(app_with_builds(1, 1000)));
    let b = Sim::start(harness::scenario().with_item(app_with_builds(1, 1000)));
    let extra = format!(
        "[[jenkins]]\nname = \"b\"\nurl = {:?}\nuser = {:?}\n\n[mirror]\npoll_interval = \"100ms\"\n",
        b.url(),
        harness::USER
    );
    let cfg = t.config(&a, &extra);
    let store = Store::open(&cfg.store).unwrap();
    let mirror = Mirror::new(&cfg, store.clone()).unwrap();
    let stats = mirror.stats();
    let stop = CancellationToken::new();
    let worker = tokio::spawn(mirror.run(false, stop.clone()));
    let job = JobPath::new(["app"]);
    let b_layout = Layout::new("b");
    let b_manifest = |n: u64| jam::format::layout::path(&b_layout.manifest_key(&job, n));
    wait_for(|| async {
        harness::manifest(&store, &job, 1).await.is_some()
            && store.head(&b_manifest(1)).await.unwrap().is_some()
    })
    .await;

    a.revoke_token(harness::USER, harness::TOKEN).unwrap();
    a.add_build("app", BuildSpec::finished(2, BuildResult::Success))
        .unwrap();
    b.add_build("app", BuildSpec::finished(2, BuildResult::Success))
        .unwrap();
    wait_for(|| async { store.head(&b_manifest(2)).await.unwrap().is_some() }).await;
    let c0 = stats.cycles.load(Ordering::Relaxed);
    wait_for(|| async { stats.cycles.load(Ordering::Relaxed) >= c0 + 5 }).await;
    a.clear_requests();
    let c1 = stats.cycles.load(Ordering::Relaxed);
    wait_for(|| async { stats.cycles.load(Ordering::Relaxed) >= c1 + 5 }).await;
    assert_eq!(
        a.request_count(),
        0,
        "no requests to a controller that refused the token"
    );
    stop.cancel();
    let s = worker.await.unwrap().expect("the worker joins");
    assert_eq!(s.unauthorized, vec!["ci".to_string()]);
    assert!(harness::manifest(&store, &job, 2).await.is_none());
    t.assert_no_open_uploads();
}

/// A one-shot HTTP server answering every request with `status`, `content_type` and `body` (and, when
/// given, a `Content-Length` that lies).
async fn canned(
    status: u16,
    content_type: &str,
    body: &'static str,
    claimed_len: Option<u64>,
) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let head = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        claimed_len.unwrap_or(body.len() as u64)
    );
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let head = head.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf).await;
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(body.as_bytes()).await;
            });
        }
    });
    url
}

fn client_for(url: &str) -> JenkinsClient {
    let mut j = config(&Sim::start(harness::scenario()), "memory://", "").jenkins[0].clone();
    j.url = url::Url::parse(url).unwrap();
    j.retries = 2;
    JenkinsClient::new(&j)
        .unwrap()
        .with_backoff(Duration::from_millis(10), Duration::from_millis(20))
}

/// Injects: answers that are not what jam asked for — HTML with 200, wrong-typed JSON, truncated JSON, an
/// enormous JSON body, and (from the simulator) a JSON body cut short once.
/// Asserts: each is a clear error naming the URL (never parsed as something else), and a body cut short
/// once is fetched again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_jenkins_answers_are_refused_clearly() {
    let html =
        client_for(&canned(200, "text/html;charset=utf-8", "<html>login</html>", None).await);
    let err = html.poll(2).await.unwrap_err().to_string();
    assert!(
        err.contains("expected JSON but got 'text/html") && err.contains("/api/json"),
        "{err}"
    );

    let typed =
        client_for(&canned(200, "application/json", r#"{"jobs":[{"name":5}]}"#, None).await);
    let err = typed.poll(2).await.unwrap_err().to_string();
    assert!(
        err.contains("JSON does not have the expected shape"),
        "{err}"
    );

    let cut = client_for(&canned(200, "application/json", r#"{"jobs":[{"na"#, None).await);
    let err = cut.poll(2).await.unwrap_err().to_string();
    assert!(err.contains("expected shape"), "{err}");

    let huge = client_for(&canned(200, "application/json", "{}", Some(1 << 40)).await);
    let err = huge.poll(2).await.unwrap_err().to_string();
    assert!(err.contains("larger than 256 MiB"), "{err}");

    let sim = Sim::start(harness::scenario().with_item(app_with_builds(1, 10)));
    sim.add_fault(Fault::short_body(20).on(RouteKind::Api).times(1))
        .unwrap();
    let c = JenkinsClient::new(&config(&sim, "memory://", "").jenkins[0])
        .unwrap()
        .with_backoff(Duration::from_millis(10), Duration::from_millis(20));
    assert_eq!(c.poll(2).await.unwrap().jobs.len(), 1);
}

harness::on_both_stores!(
    error_bursts_and_429_are_survived,
    jenkins_restart_is_ridden_out,
    stalled_body_times_out_and_is_retried,
    build_deleted_between_listing_and_download_is_missed,
    deleted_job_stays_mirrored_and_others_go_on,
    revoked_token_stops_one_controller_not_the_others,
);
