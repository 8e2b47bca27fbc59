//! Operations: the `/metrics`, `/healthz` and `/readyz` endpoint of a running worker, `jam doctor` against
//! a good set-up and each kind of broken one, the retention policy (worker, library and `jam prune`, dry
//! run included), and the systemd unit in `config/`.

use std::{collections::BTreeMap, net::SocketAddr, path::Path, time::Duration};

use assert_cmd::Command;
use jam::{
    audit::retention::{self, PruneOptions},
    config::Config,
    format::layout::{JobPath, Permalink},
    jenkins::JenkinsClient,
    mirror::Mirror,
    ops::doctor,
    ops::{self, Readiness},
    store::Store,
};
use jenkins_sim::{ArtifactSpec, BuildResult, BuildSpec, Fault, ItemSpec, RouteKind, Sim};
use tokio_util::sync::CancellationToken;

use crate::{
    harness::{
        self, TOKEN, USER, config, index, manifest, mirror_once, mirrored_builds, pointer_number,
        wait_for,
    },
    support,
};

fn local() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().join("mirror").display().to_string();
    (dir, url)
}

fn app(builds: u64) -> ItemSpec {
    let mut app = ItemSpec::freestyle("app");
    for b in 1..=builds {
        app = app.with_build(
            BuildSpec::finished(b, BuildResult::Success)
                .with_artifact(ArtifactSpec::sized("dist/app.bin", 100_000))
                .with_artifact(ArtifactSpec::sized("log.txt", 100).without_fingerprint()),
        );
    }
    app
}

fn clients(cfg: &Config) -> Vec<JenkinsClient> {
    cfg.jenkins
        .iter()
        .map(|j| {
            JenkinsClient::new(j)
                .unwrap()
                .with_backoff(Duration::from_millis(20), Duration::from_millis(200))
        })
        .collect()
}

/// Starts the endpoint on a free loopback port; returns its address.
async fn serve(
    mirror: &Mirror,
    cfg: &Config,
    store: &Store,
    stop: &CancellationToken,
) -> SocketAddr {
    let listener = ops::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let readiness = Readiness::new(cfg, store.clone()).unwrap();
    tokio::spawn(ops::serve(
        listener,
        mirror.metrics(),
        readiness,
        stop.clone(),
    ));
    addr
}

async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let r = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
    let status = r.status().as_u16();
    (status, r.text().await.unwrap())
}

/// Parses Prometheus text into `name{labels}` → value (labels as rendered).
fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').expect("sample line");
            (k.to_string(), v.parse::<f64>().expect("number"))
        })
        .collect()
}

async fn scrape(addr: SocketAddr) -> BTreeMap<String, f64> {
    let (status, text) = get(addr, "/metrics").await;
    assert_eq!(status, 200);
    parse_metrics(&text)
}

fn m(metrics: &BTreeMap<String, f64>, key: &str) -> f64 {
    *metrics
        .get(key)
        .unwrap_or_else(|| panic!("no metric {key} in {metrics:#?}"))
}

/// Scrapes `/metrics` during a mirror run: counters match what the simulator served and the store holds,
/// the transfer histogram counted every artifact, retries and statuses are counted, and lag and pending
/// builds rise while a build is held up and fall back to zero once it is mirrored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_a_mirror_run() {
    let sim = Sim::start(harness::scenario().with_item(app(3)));
    sim.add_fault(Fault::status(503).on(RouteKind::Api).times(2))
        .unwrap();
    let (_dir, url) = local();
    let cfg = config(&sim, &url, "[mirror]\npoll_interval = \"200ms\"\n");
    let store = Store::open(&cfg.store).unwrap();
    let mirror = Mirror::with_clients(&cfg, store.clone(), clients(&cfg));
    let stop = CancellationToken::new();
    let addr = serve(&mirror, &cfg, &store, &stop).await;
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(mirror.run(false, shutdown.clone()));

    wait_for(|| async {
        let s = scrape(addr).await;
        m(&s, "jam_builds_mirrored_total") == 3.0
            && m(&s, "jam_controller_lag_builds{controller=\"ci\"}") == 0.0
    })
    .await;
    let s = scrape(addr).await;
    assert_eq!(m(&s, "jam_artifacts_transferred_total"), 6.0);
    assert_eq!(m(&s, "jam_artifact_bytes_total"), 3.0 * 100_100.0);
    assert_eq!(m(&s, "jam_artifact_transfer_seconds_count"), 6.0);
    assert_eq!(
        m(&s, "jam_artifact_transfer_seconds_bucket{le=\"+Inf\"}"),
        6.0
    );
    assert_eq!(m(&s, "jam_builds_failed_total"), 0.0);
    assert_eq!(m(&s, "jam_builds_missed_total"), 0.0);
    assert_eq!(m(&s, "jam_controller_up{controller=\"ci\"}"), 1.0);
    assert_eq!(m(&s, "jam_builds_pending{controller=\"ci\"}"), 0.0);
    assert_eq!(m(&s, "jam_controller_lag_seconds{controller=\"ci\"}"), 0.0);
    assert_eq!(m(&s, "jam_transfers_in_flight"), 0.0);
    assert_eq!(m(&s, "jam_buffered_bytes"), 0.0);
    assert!(m(&s, "jam_poll_cycles_total") >= 1.0);
    assert_eq!(
        m(
            &s,
            concat!(
                "jam_build_info{version=\"0.1.0\",commit=\"",
                env!("JAM_GIT_COMMIT"),
                "\"}"
            )
        ),
        1.0
    );
    // Jenkins: the two 503s were retried and counted; every 200 the worker got is one the simulator sent
    // (the readiness clients are separate and were not used yet).
    assert_eq!(m(&s, "jam_jenkins_retries_total{controller=\"ci\"}"), 2.0);
    assert_eq!(
        m(
            &s,
            "jam_jenkins_requests_total{controller=\"ci\",status=\"503\"}"
        ),
        2.0
    );
    // Store: three manifests created, artifacts and checksums written, nothing failed.
    assert_eq!(
        m(
            &s,
            "jam_store_requests_total{operation=\"create\",outcome=\"ok\"}"
        ),
        3.0
    );
    assert!(
        m(
            &s,
            "jam_store_requests_total{operation=\"put\",outcome=\"ok\"}"
        ) >= 9.0
    );
    assert!(!s.keys().any(|k| k.contains("outcome=\"error\"")), "{s:#?}");

    // A build held up by slow downloads: pending and lag rise, a transfer is in flight, then all is back to 0.
    sim.add_fault(
        Fault::latency(Duration::from_millis(1500))
            .on(RouteKind::Artifact)
            .times(1),
    )
    .unwrap();
    sim.add_build(
        "app",
        BuildSpec::finished(4, BuildResult::Success)
            .with_artifact(ArtifactSpec::sized("dist/app.bin", 1000)),
    )
    .unwrap();
    wait_for(|| async {
        let s = scrape(addr).await;
        m(&s, "jam_builds_pending{controller=\"ci\"}") == 1.0
            && m(&s, "jam_controller_lag_builds{controller=\"ci\"}") == 1.0
            && m(&s, "jam_transfers_in_flight") >= 1.0
    })
    .await;
    wait_for(|| async {
        let s = scrape(addr).await;
        m(&s, "jam_builds_mirrored_total") == 4.0
            && m(&s, "jam_builds_pending{controller=\"ci\"}") == 0.0
            && m(&s, "jam_controller_lag_builds{controller=\"ci\"}") == 0.0
    })
    .await;
    let s = scrape(addr).await;
    assert_eq!(m(&s, "jam_artifacts_transferred_total"), 7.0);
    assert_eq!(m(&s, "jam_artifact_bytes_total"), 3.0 * 100_100.0 + 1000.0);

    let (status, body) = get(addr, "/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    shutdown.cancel();
    let summary = worker.await.unwrap().expect("the worker joins");
    assert_eq!(summary.mirrored, 4);
    // Every answer the worker counted is one the simulator logged (the readiness clients were not used).
    let s = scrape(addr).await;
    for status in [200, 503] {
        let served = sim.requests().iter().filter(|r| r.status == status).count() as f64;
        assert_eq!(
            m(
                &s,
                &format!("jam_jenkins_requests_total{{controller=\"ci\",status=\"{status}\"}}")
            ),
            served,
            "status {status}"
        );
    }
    stop.cancel();
}

/// `/readyz` turns unready when the controller refuses the token, when it goes away, and when the store
/// cannot be written, and ready again each time the cause is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_follows_the_store_and_the_controller() {
    let sim = Sim::start(harness::scenario().with_item(app(1)));
    let sim_addr = sim.addr();
    let (dir, url) = local();
    let cfg = config(&sim, &url, "");
    let store = Store::open(&cfg.store).unwrap();
    let mirror = Mirror::with_clients(&cfg, store.clone(), clients(&cfg));
    let stop = CancellationToken::new();
    let addr = serve(&mirror, &cfg, &store, &stop).await;

    let ready = |want: u16, needle: &'static str| async move {
        wait_for(|| async {
            let (status, body) = get(addr, "/readyz").await;
            status == want && body.contains(needle)
        })
        .await;
    };
    ready(200, "ok   controller ci: ").await;
    let (_, body) = get(addr, "/readyz").await;
    assert!(body.starts_with("ready\n"), "{body}");
    assert!(
        body.contains(&format!("authenticated as '{USER}'")),
        "{body}"
    );

    // The token is revoked, then restored.
    sim.revoke_token(USER, TOKEN).unwrap();
    ready(503, "FAIL controller ci: ").await;
    let (_, body) = get(addr, "/readyz").await;
    assert!(body.contains("refused the credentials"), "{body}");
    assert!(body.contains("ok   store"), "{body}");
    sim.add_token(USER, TOKEN).unwrap();
    ready(200, "ready\n").await;

    // The controller goes away, then comes back on the same address.
    drop(sim);
    ready(503, "FAIL controller ci: ").await;
    let sim = loop {
        match Sim::start_on(sim_addr, harness::scenario().with_item(app(1))) {
            Ok(s) => break s,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    ready(200, "ready\n").await;

    // The store's directory is replaced by a file: nothing can be listed or written; then it is back.
    let root = dir.path().join("mirror");
    let aside = dir.path().join("aside");
    std::fs::rename(&root, &aside).unwrap();
    std::fs::write(&root, b"not a directory").unwrap();
    ready(503, "FAIL store: ").await;
    std::fs::remove_file(&root).unwrap();
    std::fs::rename(&aside, &root).unwrap();
    ready(200, "ready\n").await;
    drop(sim);
    stop.cancel();
}

// ---------------------------------------------------------------------------------------------------------
// jam doctor

fn check<'a>(checks: &'a [doctor::Check], name: &str) -> &'a doctor::Check {
    checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no check '{name}' in {checks:#?}"))
}

/// A good set-up passes every check, and says who jam is and what it can read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_passes_a_good_setup() {
    let sim = Sim::start(harness::scenario().with_item(app(2)));
    let (_dir, url) = local();
    let cfg = config(&sim, &url, "");
    let checks = doctor::run(&cfg).await;
    assert!(checks.iter().all(|c| c.ok), "{checks:#?}");
    let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "config",
            "jenkins ci auth",
            "jenkins ci jobs",
            "store write",
            "store read",
            "store conditional create",
            "store delete"
        ]
    );
    assert!(
        check(&checks, "jenkins ci auth")
            .detail
            .contains(&format!("authenticated as '{USER}'")),
        "{checks:#?}"
    );
    assert!(
        check(&checks, "jenkins ci jobs")
            .detail
            .contains("'app' lists 2 build(s)"),
        "{checks:#?}"
    );
    // The probe objects are gone again.
    let store = Store::open(&cfg.store).unwrap();
    let left = store
        .list_all(&jam::format::layout::path(".jam/doctor"))
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
}

/// A wrong token, an unreachable controller, a job the user cannot see: each fails its check with what to
/// do, and the store checks still run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_names_what_is_wrong_with_jenkins() {
    let sim = Sim::start(harness::scenario().with_item(app(1)));
    let (_dir, url) = local();

    // Bad token.
    let mut cfg = config(&sim, &url, "");
    cfg.jenkins[0].token = "11deadbeefdeadbeefdeadbeefdeadbeef".to_string().into();
    let checks = doctor::run(&cfg).await;
    let auth = check(&checks, "jenkins ci auth");
    assert!(!auth.ok);
    assert!(auth.detail.contains("refused the credentials"), "{auth:?}");
    assert!(auth.detail.contains("create a new token"), "{auth:?}");
    assert!(check(&checks, "store write").ok, "{checks:#?}");

    // Unreachable controller: a port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut cfg = config(&sim, &url, "");
    cfg.jenkins[0].url = format!("http://127.0.0.1:{port}/").parse().unwrap();
    let checks = doctor::run(&cfg).await;
    let auth = check(&checks, "jenkins ci auth");
    assert!(!auth.ok);
    assert!(auth.detail.contains("cannot reach Jenkins"), "{auth:?}");

    // The job is not visible to jam's user.
    sim.set_visible_to("app", Some(vec!["someone-else".into()]))
        .unwrap();
    let cfg = config(&sim, &url, "");
    let checks = doctor::run(&cfg).await;
    assert!(check(&checks, "jenkins ci auth").ok, "{checks:#?}");
    let jobs = check(&checks, "jenkins ci jobs");
    assert!(!jobs.ok);
    assert!(jobs.detail.contains("Job/Read"), "{jobs:?}");
}

/// A store that cannot be created, one that cannot be written, and (on moto) a bucket that does not exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_names_what_is_wrong_with_the_store() {
    let sim = Sim::start(harness::scenario().with_item(app(1)));
    let dir = tempfile::tempdir().unwrap();

    // A file where the store's directory should be.
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let cfg = config(&sim, file.to_str().unwrap(), "");
    let checks = doctor::run(&cfg).await;
    let open = check(&checks, "store open");
    assert!(
        !open.ok && open.detail.contains("cannot create directory"),
        "{open:?}"
    );
    assert!(check(&checks, "jenkins ci auth").ok);

    // The store opens, but jam's own prefix cannot be written (a file named .jam).
    let root = dir.path().join("store");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join(".jam"), b"x").unwrap();
    let cfg = config(&sim, root.to_str().unwrap(), "");
    let checks = doctor::run(&cfg).await;
    let write = check(&checks, "store write");
    assert!(!write.ok, "{checks:#?}");
    assert!(
        write.detail.contains("check that the store exists"),
        "{write:?}"
    );

    // S3: a bucket that does not exist.
    let Some(env) = support::s3_env(support::S3Kind::Moto) else {
        return;
    };
    let mut cfg = config(&sim, "memory://", "");
    cfg.store = support::s3_config(&env, "s3://no-such-bucket-for-jam/x");
    let checks = doctor::run(&cfg).await;
    let write = check(&checks, "store write");
    assert!(!write.ok, "{checks:#?}");
    // And the good bucket passes.
    cfg.store = support::s3_config(
        &env,
        &format!("s3://{}/{}", env.bucket, support::random_prefix()),
    );
    let checks = doctor::run(&cfg).await;
    assert!(checks.iter().all(|c| c.ok), "{checks:#?}");
}

fn jam_cmd() -> Command {
    let mut cmd = Command::cargo_bin("jam").unwrap();
    for var in [
        "JAM_CONFIG",
        "JAM_STORE",
        "JENKINS_URL",
        "JENKINS_USER",
        "JENKINS_API_TOKEN",
        "RUST_LOG",
        "JAM_LOG",
        "JAM_LOG_FORMAT",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

fn write_config(dir: &Path, sim: &Sim, store: &str, extra: &str) -> std::path::PathBuf {
    let path = dir.join("jam.toml");
    std::fs::write(
        &path,
        format!(
            "[store]\nurl = {store:?}\n\n[[jenkins]]\nname = \"ci\"\nurl = {:?}\nuser = {USER:?}\n\n{extra}\n",
            sim.url()
        ),
    )
    .unwrap();
    path
}

/// The binary: text and JSON reports, exit 0 when all pass, 1 when a check fails, 2 for a bad config.
#[test]
fn doctor_binary_reports_and_exit_codes() {
    let sim = Sim::start(harness::scenario().with_item(app(1)));
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("mirror");
    let path = write_config(dir.path(), &sim, store.to_str().unwrap(), "");

    let out = jam_cmd()
        .args(["doctor", "--json", "--config"])
        .arg(&path)
        .env("JENKINS_API_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["checks"].as_array().unwrap().len(), 7);

    let out = jam_cmd()
        .args(["doctor", "--config"])
        .arg(&path)
        .env("JENKINS_API_TOKEN", "11deadbeefdeadbeefdeadbeefdeadbeef")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("FAIL  jenkins ci auth"), "{text}");
    assert!(text.contains("ok    store write"), "{text}");
    assert!(text.contains("1 of 6 checks failed"), "{text}");
    assert!(
        !text.contains("11deadbeef"),
        "the token is never printed: {text}"
    );

    let out = jam_cmd()
        .args(["doctor", "--json", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["checks"][0]["name"], "config");
    assert!(
        v["checks"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("JENKINS_API_TOKEN"),
        "{v}"
    );
}

// ---------------------------------------------------------------------------------------------------------
// Retention

const DAY_MS: i64 = 86_400_000;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// `app`: builds 1-6, days old = 60, 50 (FAILURE), 40, 30, 2, 1. `lib`: builds 1-3, 30, 20 and 1 day old.
fn retention_scenario() -> jenkins_sim::Scenario {
    let now = now_ms();
    let mut app = ItemSpec::freestyle("app");
    for (n, days, result) in [
        (1, 60, BuildResult::Success),
        (2, 50, BuildResult::Failure),
        (3, 40, BuildResult::Success),
        (4, 30, BuildResult::Success),
        (5, 2, BuildResult::Success),
        (6, 1, BuildResult::Success),
    ] {
        app = app.with_build(
            BuildSpec::finished(n, result)
                .at(now - days * DAY_MS)
                .with_artifact(ArtifactSpec::sized("dist/app.bin", 1000)),
        );
    }
    let mut lib = ItemSpec::freestyle("lib");
    for (n, days) in [(1, 30), (2, 20), (3, 1)] {
        lib = lib.with_build(
            BuildSpec::finished(n, BuildResult::Success)
                .at(now - days * DAY_MS)
                .with_artifact(ArtifactSpec::sized("lib.jar", 500)),
        );
    }
    harness::scenario().with_item(app).with_item(lib)
}

const POLICY: &str = "[[retention]]\njobs = \"app\"\nkeep_last = 2\n\n[[retention]]\njobs = \"**\"\nkeep_within = \"7d\"\n";

/// The policy keeps the newest N, the young and the pointed-to builds; a dry run deletes nothing; a real
/// run deletes manifest, checksums and artifacts and updates the index; the worker does not mirror the
/// deleted builds again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_policy_dry_run_then_prune() {
    let sim = Sim::start(retention_scenario());
    let (_dir, url) = local();
    let cfg = config(&sim, &url, POLICY);
    let store = Store::open(&cfg.store).unwrap();
    // Mirror without the policy first.
    let plain = config(&sim, &url, "");
    assert!(mirror_once(&plain, &store).await.ok());
    let app = JobPath::new(["app"]);
    let lib = JobPath::new(["lib"]);
    assert_eq!(index(&store, &app).await.unwrap().builds.len(), 6);

    // Dry run: app keeps 5, 6 (newest two) and 2 (lastFailedBuild); lib keeps 3 (within 7 days).
    let dry = retention::prune(
        &store,
        &cfg.retention,
        &PruneOptions {
            dry_run: true,
            cancel: None,
        },
    )
    .await
    .unwrap();
    assert!(dry.errors.is_empty(), "{:?}", dry.errors);
    let planned: BTreeMap<String, Vec<u64>> = dry
        .jobs
        .iter()
        .map(|j| (j.job.clone(), j.deleted.iter().map(|b| b.number).collect()))
        .collect();
    assert_eq!(
        planned,
        BTreeMap::from([("app".into(), vec![1, 3, 4]), ("lib".into(), vec![1, 2])])
    );
    assert_eq!(dry.builds_deleted(), 5);
    assert_eq!(dry.bytes_deleted(), 3 * 1000 + 2 * 500);
    for n in 1..=6 {
        assert!(
            manifest(&store, &app, n).await.is_some(),
            "dry run kept #{n}"
        );
    }

    // The real run.
    let done = retention::prune(&store, &cfg.retention, &PruneOptions::default())
        .await
        .unwrap();
    assert_eq!(done.builds_deleted(), 5);
    let layout = harness::layout();
    for (job, gone, kept) in [
        (&app, vec![1, 3, 4], vec![2, 5, 6]),
        (&lib, vec![1, 2], vec![3]),
    ] {
        for n in gone {
            assert!(manifest(&store, job, n).await.is_none(), "{job} #{n}");
            let left = store
                .list_all(&jam::format::layout::path(&layout.build_prefix(job, n)))
                .await
                .unwrap();
            assert!(left.is_empty(), "{job} #{n}: {left:?}");
        }
        for n in &kept {
            assert!(manifest(&store, job, *n).await.is_some(), "{job} #{n}");
        }
        let ix = index(&store, job).await.unwrap();
        assert_eq!(ix.builds.keys().copied().collect::<Vec<_>>(), kept);
    }
    assert_eq!(index(&store, &app).await.unwrap().floor, 4);
    assert_eq!(
        pointer_number(&store, &app, Permalink::LastFailedBuild)
            .await
            .unwrap(),
        2
    );
    // Idempotent: nothing left to delete.
    let again = retention::prune(&store, &cfg.retention, &PruneOptions::default())
        .await
        .unwrap();
    assert_eq!(again.builds_deleted(), 0);

    // A fresh worker (no memory of the run) does not mirror the deleted builds again.
    let s = mirror_once(&plain, &store).await;
    assert!(s.ok(), "{s:?}");
    assert_eq!(s.mirrored, 0, "{s:?}");
    assert!(manifest(&store, &app, 1).await.is_none());
}

/// The worker applies the policy at the end of a --once run, and counts what it deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_applies_the_retention_policy() {
    let sim = Sim::start(retention_scenario());
    let (_dir, url) = local();
    let cfg = config(&sim, &url, POLICY);
    let store = Store::open(&cfg.store).unwrap();
    let mirror = Mirror::with_clients(&cfg, store.clone(), clients(&cfg));
    let stats = mirror.stats();
    let summary = mirror
        .run(true, CancellationToken::new())
        .await
        .expect("the worker joins");
    assert!(summary.ok(), "{summary:?}");
    assert_eq!(summary.mirrored, 9);
    assert_eq!(
        stats
            .retention_deleted
            .load(std::sync::atomic::Ordering::Relaxed),
        5
    );
    let app = JobPath::new(["app"]);
    assert_eq!(mirrored_builds(&store, &app).await, vec![2, 5, 6]);
}

/// `jam prune --dry-run --json`, then `jam prune`: the report, and the exit code without a policy.
#[test]
fn prune_binary_dry_run_and_run() {
    let sim = Sim::start(retention_scenario());
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("mirror");
    let plain = write_config(dir.path(), &sim, store_dir.to_str().unwrap(), "");
    jam_cmd()
        .args(["mirror", "--once", "--config"])
        .arg(&plain)
        .env("JENKINS_API_TOKEN", TOKEN)
        .assert()
        .success();
    let out = jam_cmd()
        .args(["prune", "--config"])
        .arg(&plain)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "no policy: {out:?}");

    let path = write_config(dir.path(), &sim, store_dir.to_str().unwrap(), POLICY);
    let out = jam_cmd()
        .args(["prune", "--dry-run", "--json", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["dry_run"], true);
    assert_eq!(v["jobs"].as_array().unwrap().len(), 2, "{v}");
    let manifest_1 = store_dir.join("ci/job/app/1/manifest.json");
    assert!(manifest_1.is_file(), "dry run deletes nothing");

    let out = jam_cmd()
        .args(["prune", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("deleted ci/app #1 (SUCCESS"), "{text}");
    assert!(text.contains("deleted 5 build(s)"), "{text}");
    assert!(!manifest_1.exists());
    assert!(
        !store_dir
            .join("ci/job/app/1/artifact/dist/app.bin")
            .exists()
    );
}

// ---------------------------------------------------------------------------------------------------------
// The systemd unit

/// `systemd-analyze verify` accepts `config/jam-mirror.service` (with the test's jam binary in ExecStart)
/// without a warning about it; the unit's credentials are the paths the S3 example config reads.
#[test]
fn systemd_unit_verifies_and_matches_the_s3_example() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let unit = std::fs::read_to_string(root.join("config/jam-mirror.service")).unwrap();
    let example = std::fs::read_to_string(root.join("config/s3.example.toml")).unwrap();
    for line in unit.lines().filter(|l| l.starts_with("LoadCredential=")) {
        let name = line["LoadCredential=".len()..].split(':').next().unwrap();
        let path = format!("/run/credentials/jam-mirror.service/{name}");
        assert!(example.contains(&path), "s3.example.toml reads {path}");
    }
    for key in [
        "User=jam",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "ProtectHome=yes",
        "CapabilityBoundingSet=\n",
        "SystemCallFilter=@system-service",
        "RestrictAddressFamilies=",
        "StateDirectory=jam-mirror",
    ] {
        assert!(unit.contains(key), "the unit sets {key:?}");
    }

    let Some(analyze) = support::which("systemd-analyze") else {
        println!(
            "skipping systemd-analyze verify: systemd-analyze is not installed (apt-get install systemd)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("jam-mirror.service");
    std::fs::write(
        &copy,
        unit.replace("/usr/bin/jam", env!("CARGO_BIN_EXE_jam")),
    )
    .unwrap();
    let out = std::process::Command::new(analyze)
        .arg("verify")
        .arg(&copy)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let about_unit: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("jam-mirror.service"))
        .collect();
    assert!(
        out.status.success() && about_unit.is_empty(),
        "systemd-analyze verify: {}\n{stderr}",
        out.status
    );
}
