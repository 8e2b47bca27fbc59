//! Build notices: the simulator sends the Notification plugin's documents and a Pipeline's `post` notice
//! to a running `jam mirror --listen` whose poll interval is an hour, and the builds are committed within
//! seconds (a notice that comes while the build runs is followed up); a wrong secret gets 401 and no look at Jenkins, a malformed notice 400; a notice that never
//! arrives is made up for by polling; two workers taking notices for one build commit it once.

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use jam::{
    format::layout::{JobPath, Layout},
    store::Store,
};
use jenkins_sim::{ArtifactSpec, BuildResult, BuildSpec, ItemSpec, Notifier, Sim};

use crate::harness::{self, KillOnDrop, Target};

const SECRET: &str = "n0tice-s3cret-0123456789";

/// A `jam mirror --listen` process with the notice secret, logging everything (`RUST_LOG=trace`) to a file.
struct Worker {
    _child: KillOnDrop,
    listen: SocketAddr,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Worker {
    async fn start(sim: &Sim, store_env: &[(String, String)], id: &str, poll: &str) -> Worker {
        let dir = tempfile::tempdir().unwrap();
        let listen = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let log = dir.path().join("jam.log");
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin!("jam"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("JENKINS_URL", sim.url())
            .env("JENKINS_USER", harness::USER)
            .env("JENKINS_API_TOKEN", harness::TOKEN)
            .env("JAM_NOTIFY_SECRET", SECRET)
            .env("RUST_LOG", "trace")
            .current_dir(dir.path())
            .args(["--log-format", "json", "mirror"])
            .args(["--worker-id", id, "--poll-interval", poll])
            .args(["--listen", &listen.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in store_env {
            cmd.env(k, v);
        }
        let w = Worker {
            _child: KillOnDrop(cmd.spawn().unwrap()),
            listen,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while w.metric("jam_poll_cycles_total").await < 1 {
            assert!(
                Instant::now() < deadline,
                "the worker did not finish its first cycle in 30 s:\n{}",
                w.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        w
    }

    fn url(&self, auth: &str) -> String {
        format!("http://{auth}{}/notify/jenkins", self.listen)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The sample `name` (with labels, as written) of the worker's `/metrics`; 0 when absent.
    async fn metric(&self, name: &str) -> u64 {
        let text = match reqwest::get(format!("http://{}/metrics", self.listen)).await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0)
    }

    /// The sample `name` once it has reached `want` (or after 10 s, whatever it is then).
    async fn metric_settled(&self, name: &str, want: u64) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.metric(name).await;
            if got >= want || Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn post(&self, query: &str, auth: Option<&str>, body: &str) -> (u16, String) {
        let mut req = reqwest::Client::new()
            .post(format!("{}{query}", self.url("")))
            .body(body.to_string());
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        let r = req.send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }
}

impl Worker {
    /// A POST that announces a body of `len` bytes and sends none; the answer's text.
    async fn announce_body(&self, auth: &str, len: usize) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(self.listen).await.unwrap();
        let head = format!(
            "POST /notify/jenkins HTTP/1.1\r\nHost: jam\r\nAuthorization: {auth}\r\n\
             Content-Length: {len}\r\nConnection: close\r\n\r\n"
        );
        s.write_all(head.as_bytes()).await.unwrap();
        let mut out = String::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut out)).await;
        out
    }
}

fn layout(sim: &Sim) -> Layout {
    Layout::new(jam::config::default_source_name(
        &url::Url::parse(&sim.url()).unwrap(),
    ))
}

async fn committed(store: &Store, layout: &Layout, job: &str, n: u64) -> bool {
    let key = layout.manifest_key(&JobPath::new(job.split('/')), n);
    store
        .head(&jam::format::layout::path(&key))
        .await
        .unwrap()
        .is_some()
}

/// Waits until build `n` of `job` is committed; returns how long it took.
async fn wait_committed(
    store: &Store,
    layout: &Layout,
    (job, n): (&str, u64),
    within: Duration,
    w: &Worker,
) -> Duration {
    let t = Instant::now();
    while !committed(store, layout, job, n).await {
        assert!(
            t.elapsed() < within,
            "{job} #{n} not committed within {within:?}:\n{}",
            w.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    t.elapsed()
}

/// Adds a build; the call returns once its notices were answered (or failed).
fn add_build(sim: &Sim, job: &str, n: u64) {
    let added = tokio::task::block_in_place(|| sim.add_build(job, build(n)));
    assert_eq!(added.unwrap(), n);
}

fn build(n: u64) -> BuildSpec {
    BuildSpec::finished(n, BuildResult::Success)
        .with_artifact(ArtifactSpec::sized("dist/app.bin", 300_000))
        .with_artifact(ArtifactSpec::sized("notes.txt", 700))
}

fn scenario() -> jenkins_sim::Scenario {
    harness::scenario()
        .with_item(ItemSpec::freestyle("app").with_build(build(1)))
        .with_item(ItemSpec::folder("team").with_job(ItemSpec::pipeline("pipe")))
}

/// The scenario's simulator, a worker `w1` on `target` that polls every hour, and the source's layout,
/// once the worker's first poll has committed `app #1`.
async fn worker_after_first_poll(target: &Target) -> (Sim, Worker, Layout) {
    let sim = Sim::start(scenario());
    let w = Worker::start(&sim, &target.env, "w1", "1h").await;
    let layout = layout(&sim);
    wait_committed(
        &target.store,
        &layout,
        ("app", 1),
        Duration::from_secs(30),
        &w,
    )
    .await;
    (sim, w, layout)
}

/// The Notification plugin (FINALIZED, secret in the URL's user info) and a Pipeline's `post` step
/// (`Authorization: Bearer`, sent while the build still runs) each get their build committed within
/// seconds, though the next poll is an hour away; each notice cost a look of one job.
async fn notices_commit_builds_within_seconds(target: Target) {
    let (sim, w, layout) = worker_after_first_poll(&target).await;
    sim.add_notifier(
        Notifier::plugin(&w.url(&format!("jam:{SECRET}@")))
            .event("finalized")
            .jobs(&["app"]),
    )
    .unwrap();
    sim.add_notifier(
        Notifier::pipeline_post(&w.url(""))
            .header("Authorization", &format!("Bearer {SECRET}"))
            .jobs(&["team"]),
    )
    .unwrap();
    for (job, n) in [("app", 2), ("team/pipe", 1), ("app", 3)] {
        let started = Instant::now();
        add_build(&sim, job, n);
        let took = wait_committed(
            &target.store,
            &layout,
            (job, n),
            Duration::from_secs(15),
            &w,
        )
        .await;
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{job} #{n}: {:?} from the build's end to its commit",
            started.elapsed()
        );
        println!("{job} #{n}: committed {took:?} after the build finished");
    }
    for rec in sim.notices() {
        assert_eq!(rec.status, Some(202), "{rec:?}");
    }
    // A notice while the build still runs is followed up until it has finished.
    sim.clear_notifiers();
    let running = tokio::task::block_in_place(|| sim.add_build("team/pipe", BuildSpec::running(2)));
    assert_eq!(running.unwrap(), 2);
    let bearer = format!("Bearer {SECRET}");
    let (status, text) = w
        .post("", Some(&bearer), r#"{"job":"team/pipe","number":2}"#)
        .await;
    assert_eq!(status, 202, "{text}");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(!committed(&target.store, &layout, "team/pipe", 2).await);
    let artifacts = vec![ArtifactSpec::sized("dist/pipe.bin", 100_000)];
    sim.add_artifacts("team/pipe", 2, artifacts).unwrap();
    sim.finish_build("team/pipe", 2, BuildResult::Success)
        .unwrap();
    let took = wait_committed(
        &target.store,
        &layout,
        ("team/pipe", 2),
        Duration::from_secs(10),
        &w,
    )
    .await;
    println!("team/pipe #2: committed {took:?} after it finished, on a follow-up");
    assert_eq!(w.metric("jam_notices_accepted_total").await, 4);
    assert_eq!(w.metric("jam_poll_cycles_total").await, 1, "no poll helped");
    // The follow-ups: 0.5 s and 1 s after the first look, and the one that found the build finished.
    assert!(w.metric("jam_notice_looks_total").await >= 6);
    // The counter moves after the pointers and the index, which follow the manifest seen above.
    assert_eq!(w.metric_settled("jam_builds_mirrored_total", 5).await, 5);
}

/// A wrong or missing secret gets 401 and the worker asks Jenkins nothing; a body that is not a notice
/// gets 400 saying what is wrong; so do other methods (405), unknown jobs (404); every refusal is counted.
async fn wrong_secrets_and_malformed_notices_are_refused(target: Target) {
    let (sim, w, layout) = worker_after_first_poll(&target).await;
    // The plugin with the wrong secret, then a curl-like Pipeline notice without one.
    sim.add_notifier(Notifier::plugin(&w.url("jam:not-the-secret@")).event("finalized"))
        .unwrap();
    sim.clear_requests();
    add_build(&sim, "app", 2);
    let plugin = sim.notices().into_iter().find(|r| r.number == 2).unwrap();
    assert_eq!(plugin.status, Some(401), "{plugin:?}");
    let notice = r#"{"job":"app","number":2,"result":"SUCCESS","url":null}"#;
    let (status, text) = w.post("", None, notice).await;
    assert_eq!(status, 401, "{text}");
    assert!(text.contains("Authorization: Bearer"), "{text}");
    let (status, _) = w
        .post(
            "?token=wrong-wrong-wrong-wrong",
            Some("Bearer also-wrong"),
            notice,
        )
        .await;
    assert_eq!(status, 401);
    // Malformed, with the right secret.
    let bearer = format!("Bearer {SECRET}");
    for (body, says) in [
        ("job=app&number=2", "not JSON"),
        (
            r#"{"build":{"phase":"FINALIZED"},"url":"job/app/"}"#,
            "build.number",
        ),
        (r#"{"job":"app","number":"two"}"#, "'number'"),
        ("<job><name>app</name></job>", "Format to JSON"),
    ] {
        let (status, text) = w.post("", Some(&bearer), body).await;
        assert_eq!(status, 400, "{body}: {text}");
        assert!(text.contains(says), "{body}: {text}");
    }
    // A body announced larger than the endpoint takes is refused before it is sent.
    let answer = w.announce_body(&bearer, 3 << 20).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    let get = reqwest::get(w.url("")).await.unwrap();
    assert_eq!(get.status().as_u16(), 405);
    let (status, text) = w.post("?controller=elsewhere", Some(&bearer), notice).await;
    assert_eq!(status, 404, "{text}");
    assert!(text.contains("no controller named 'elsewhere'"), "{text}");
    std::thread::sleep(Duration::from_millis(500));
    let asked: Vec<String> = sim
        .requests()
        .into_iter()
        .map(|r| r.path)
        .filter(|p| p.starts_with("/job/app/"))
        .collect();
    assert!(asked.is_empty(), "no look at the job: {asked:?}");
    assert!(!committed(&target.store, &layout, "app", 2).await);
    assert_eq!(w.metric("jam_notice_looks_total").await, 0);
    assert_eq!(w.metric("jam_notices_accepted_total").await, 0);
    for (reason, n) in [
        ("unauthorized", 3),
        ("malformed", 4),
        ("too_large", 1),
        ("method", 1),
        ("unknown", 1),
    ] {
        let name = format!("jam_notices_rejected_total{{reason=\"{reason}\"}}");
        assert_eq!(w.metric(&name).await, n, "{name}");
    }
    assert_eq!(w.metric("jam_notices_received_total").await, 10);
    // The secret in the URL parameter works, and is in no log line.
    let (status, text) = w.post(&format!("?token={SECRET}"), None, notice).await;
    assert_eq!(status, 202, "{text}");
    wait_committed(
        &target.store,
        &layout,
        ("app", 2),
        Duration::from_secs(15),
        &w,
    )
    .await;
    let log = w.log();
    assert!(
        log.lines().count() > 100,
        "the worker logs at trace level:\n{log}"
    );
    assert!(
        !log.contains(SECRET),
        "the secret is never logged, not even at trace level"
    );
}

/// A notice that never arrives (the receiver's address is wrong) costs only freshness: the next poll
/// commits the build.
async fn a_missed_notice_is_caught_by_polling(target: Target) {
    let sim = Sim::start(scenario());
    let w = Worker::start(&sim, &target.env, "w1", "2s").await;
    let layout = layout(&sim);
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    sim.add_notifier(
        Notifier::plugin(&format!("http://jam:{SECRET}@{dead}/notify/jenkins"))
            .event("finalized")
            .timeout(Duration::from_secs(1)),
    )
    .unwrap();
    add_build(&sim, "app", 2);
    let missed = sim.notices().into_iter().find(|r| r.number == 2).unwrap();
    assert!(
        missed.error.is_some() && missed.status.is_none(),
        "{missed:?}"
    );
    wait_committed(
        &target.store,
        &layout,
        ("app", 2),
        Duration::from_secs(20),
        &w,
    )
    .await;
    assert_eq!(w.metric("jam_notices_received_total").await, 0);
}

harness::on_both_stores!(
    notices_commit_builds_within_seconds,
    wrong_secrets_and_malformed_notices_are_refused,
    a_missed_notice_is_caught_by_polling,
);

/// Two workers on one bucket both get every notice (two plugin endpoints): each build is claimed by one,
/// committed once, and the other leaves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_taking_the_same_notices_commit_each_build_once() {
    let Some(target) = Target::seaweed() else {
        return;
    };
    let sim = Sim::start(scenario());
    let a = Worker::start(&sim, &target.env, "wa", "1h").await;
    let b = Worker::start(&sim, &target.env, "wb", "1h").await;
    let layout = layout(&sim);
    wait_committed(
        &target.store,
        &layout,
        ("app", 1),
        Duration::from_secs(30),
        &a,
    )
    .await;
    for w in [&a, &b] {
        sim.add_notifier(Notifier::plugin(&w.url(&format!("jam:{SECRET}@"))).event("finalized"))
            .unwrap();
    }
    for n in 2..=4 {
        add_build(&sim, "app", n);
        wait_committed(
            &target.store,
            &layout,
            ("app", n),
            Duration::from_secs(15),
            &a,
        )
        .await;
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    // Build 1 (first poll: each worker found it; one committed it) and 2-4, each committed by one worker.
    while a.metric("jam_builds_mirrored_total").await + b.metric("jam_builds_mirrored_total").await
        < 4
    {
        assert!(Instant::now() < deadline, "{}\n{}", a.log(), b.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let lost = a.metric("jam_claims_lost_total").await + b.metric("jam_claims_lost_total").await;
    let commits_lost =
        a.metric("jam_commits_lost_total").await + b.metric("jam_commits_lost_total").await;
    assert_eq!(
        a.metric("jam_notices_accepted_total").await + b.metric("jam_notices_accepted_total").await,
        6
    );
    assert!(
        lost + commits_lost >= 3,
        "the second worker left each noticed build to the first: claims lost {lost}, commits lost {commits_lost}"
    );
}
