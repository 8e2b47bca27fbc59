//! Bench workload `workers`: 1, 2 and 3 `jam mirror` processes on one SeaweedFS bucket and one simulated
//! controller, on the same data (builds with two small artifacts, every tenth with a 24 MiB one). For
//! each count: builds/s until every build is committed, artifacts downloaded per artifact mirrored (from
//! the simulator's request log; 1.00 means each artifact was downloaded once), and the store requests
//! coordination added per committed build (claims, renewals, heartbeats, singletons, from the workers'
//! `jam_coordination_requests_total`). Then the takeover: two workers, one build whose download stalls
//! mid-transfer, its holder killed with SIGKILL; the time until the other worker holds the claim and until
//! the build is committed. `cargo bench --bench workers [-- --quick]`.

mod common;

use std::{
    fmt::Write as _,
    fs,
    net::SocketAddr,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use common::{BUCKET, Env, Guard, Opts, Report, Seaweed, SimProc, TOKEN, USER};
use jenkins_sim::{ArtifactSpec, BuildResult, BuildSpec, Fault, FaultAction, ItemSpec, Scenario};
use serde_json::{Value, json};

/// The lease the workers run with (short, so the takeover is measured in seconds).
const LEASE_S: u64 = 5;

fn build(n: u64) -> BuildSpec {
    let b = BuildSpec::finished(n, BuildResult::Success)
        .with_artifact(ArtifactSpec::sized("app.jar", 256 << 10))
        .with_artifact(ArtifactSpec::sized("notes.txt", 2 << 10));
    if n.is_multiple_of(10) {
        b.with_artifact(ArtifactSpec::sized("image.bin", 24 << 20))
    } else {
        b
    }
}

fn artifacts_of(n: u64) -> u64 {
    if n.is_multiple_of(10) { 3 } else { 2 }
}

/// A worker process and its metrics address.
struct Worker {
    proc: Guard,
    listen: SocketAddr,
}

impl Worker {
    fn start(env: &Env, s3: &Seaweed, sim: &SimProc, dir: &Path, prefix: &str, id: &str) -> Worker {
        let listen = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let cfg = dir.join("jam.toml");
        fs::write(
            &cfg,
            format!("[mirror]\nlease = \"{LEASE_S}s\"\nretry_backoff = \"1s\"\n"),
        )
        .unwrap();
        let mut c = Command::new(&env.jam);
        s3.s3_env(&mut c);
        c.env("JENKINS_URL", &sim.url)
            .env("JENKINS_USER", USER)
            .env("JENKINS_API_TOKEN", TOKEN)
            .env("JAM_STORE", format!("s3://{BUCKET}/{prefix}"))
            .env("JAM_CONFIG", &cfg)
            .args(["mirror", "--worker-id", id, "--poll-interval", "500ms"])
            .arg("--listen")
            .arg(listen.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(dir.join(format!("{id}.log"))).expect("worker log"));
        Worker {
            proc: Guard {
                child: c.spawn().expect("start jam mirror"),
                name: format!("jam mirror {id}"),
            },
            listen,
        }
    }

    fn metrics(&self) -> String {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect_timeout(&self.listen, Duration::from_secs(2))
        else {
            return String::new();
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = s.write_all(b"GET /metrics HTTP/1.0\r\nHost: jam\r\n\r\n");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }

    /// The sum of every sample of `name` (labelled or not).
    fn metric(&self, name: &str) -> f64 {
        self.metrics()
            .lines()
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|r| r.starts_with(' ') || r.starts_with('{'))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.proc.pid()])
            .status();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(_)) = self.proc.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill(mut self) {
        let _ = self.proc.child.kill();
        let _ = self.proc.child.wait();
    }
}

fn artifact_downloads(sim: &SimProc, filter: &str) -> u64 {
    sim.requests()
        .iter()
        .filter(|r| {
            r["method"] == "GET"
                && r["path"]
                    .as_str()
                    .is_some_and(|p| p.contains("/artifact/") && p.contains(filter))
        })
        .count() as u64
}

/// One run of `n` workers over `builds` builds.
struct Run {
    workers: usize,
    secs: f64,
    builds: u64,
    artifacts: u64,
    downloads: u64,
    coordination: f64,
    store_requests: f64,
    takeovers: f64,
    per_worker: Vec<f64>,
}

fn run(env: &Env, s3: &Seaweed, builds: u64, workers: usize) -> Run {
    let tmp = env.tempdir(&format!("workers-{workers}"));
    let mut job = ItemSpec::freestyle("app");
    for n in 1..=builds {
        job = job.with_build(build(n));
    }
    let sim = SimProc::start(
        env,
        &Scenario::default().with_user(USER, TOKEN).with_item(job),
        tmp.path(),
    );
    let prefix = format!("workers-{workers}-{:08x}", rand::random::<u32>());
    let started = Instant::now();
    let ws: Vec<Worker> = (1..=workers)
        .map(|i| Worker::start(env, s3, &sim, tmp.path(), &prefix, &format!("w{i}")))
        .collect();
    let committed = |ws: &[Worker]| -> f64 {
        ws.iter()
            .map(|w| w.metric("jam_builds_mirrored_total"))
            .sum()
    };
    while committed(&ws) < builds as f64 {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "{workers} workers did not commit {builds} builds in 10 minutes"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let secs = started.elapsed().as_secs_f64();
    let sum = |name: &str| ws.iter().map(|w| w.metric(name)).sum::<f64>();
    let r = Run {
        workers,
        secs,
        builds,
        artifacts: (1..=builds).map(artifacts_of).sum(),
        downloads: artifact_downloads(&sim, "/job/app/"),
        coordination: sum("jam_coordination_store_requests_total"),
        store_requests: sum("jam_store_requests_total"),
        takeovers: sum("jam_claims_taken_over_total"),
        per_worker: ws
            .iter()
            .map(|w| w.metric("jam_builds_mirrored_total"))
            .collect(),
    };
    for w in ws {
        w.stop();
    }
    s3.clear(&prefix);
    r
}

/// The takeover: two workers; the holder of a build whose download stalls is killed.
fn takeover(env: &Env, s3: &Seaweed) -> (f64, f64, u64) {
    let tmp = env.tempdir("workers-takeover");
    let mut sc = Scenario::default().with_user(USER, TOKEN).with_item(
        ItemSpec::freestyle("app").with_build(
            BuildSpec::finished(1, BuildResult::Success)
                .with_artifact(ArtifactSpec::sized("image.bin", 40 << 20)),
        ),
    );
    sc.faults.push(
        Fault::new(FaultAction::Stall {
            after_bytes: 12 << 20,
            ms: None,
        })
        .path_prefix("/job/app/1/artifact/image.bin")
        .times(1),
    );
    let sim = SimProc::start(env, &sc, tmp.path());
    let prefix = format!("workers-takeover-{:08x}", rand::random::<u32>());
    let mut ws: Vec<Worker> = (1..=2)
        .map(|i| Worker::start(env, s3, &sim, tmp.path(), &prefix, &format!("t{i}")))
        .collect();
    // The holder is the worker whose claim was won (it is the one downloading).
    let t = Instant::now();
    let holder = loop {
        if let Some(i) = ws
            .iter()
            .position(|w| w.metric("jam_claims_won_total") >= 1.0)
        {
            break i;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "no worker claimed the build"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    // Mid-transfer: its first part is uploaded before the stall.
    std::thread::sleep(Duration::from_secs(2));
    ws.remove(holder).kill();
    let killed = Instant::now();
    let other = ws.pop().expect("the other worker");
    let mut claimed = None;
    loop {
        if claimed.is_none() && other.metric("jam_claims_taken_over_total") >= 1.0 {
            claimed = Some(killed.elapsed().as_secs_f64());
        }
        if other.metric("jam_builds_mirrored_total") >= 1.0 {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(120),
            "the build was not taken over"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let committed = killed.elapsed().as_secs_f64();
    let downloads = artifact_downloads(&sim, "image.bin");
    other.stop();
    s3.clear(&prefix);
    (claimed.unwrap_or(committed), committed, downloads)
}

fn main() {
    let opts = Opts::parse();
    common::banner("workers", &opts);
    let env = Env::setup();
    let tmp = env.tempdir("workers");
    let s3 = Seaweed::start(&env, &tmp.path().join("seaweedfs"));
    let builds = if opts.quick { 40 } else { 120 };
    let mut runs = Vec::new();
    for workers in 1..=3 {
        let r = run(&env, &s3, builds, workers);
        eprintln!(
            "bench: {workers} worker(s): {:.1}s, {} downloads for {} artifacts",
            r.secs, r.downloads, r.artifacts
        );
        runs.push(r);
    }
    let (claim_s, commit_s, downloads) = takeover(&env, &s3);
    let mut table = String::new();
    table.push_str("| workers | builds | s | builds/s | downloads per artifact mirrored | coordination store requests per build | the mirror's own store requests per build | builds committed per worker | takeovers |\n");
    table.push_str("|---:|---:|---:|---:|---:|---:|---:|---|---:|\n");
    for r in &runs {
        let _ = writeln!(
            table,
            "| {} | {} | {:.1} | {:.2} | {:.2} | {:.2} | {:.1} | {} | {} |",
            r.workers,
            r.builds,
            r.secs,
            r.builds as f64 / r.secs,
            r.downloads as f64 / r.artifacts as f64,
            r.coordination / r.builds as f64,
            r.store_requests / r.builds as f64,
            r.per_worker
                .iter()
                .map(|n| format!("{n:.0}"))
                .collect::<Vec<_>>()
                .join(" / "),
            r.takeovers
        );
    }
    let _ = writeln!(
        table,
        "\n| takeover after SIGKILL (lease {LEASE_S} s) | value |\n|---|---:|\n| claim taken over, s after the kill | {claim_s:.1} |\n| build committed, s after the kill | {commit_s:.1} |\n| downloads of the 40 MiB artifact (the dead worker's partial one included) | {downloads} |"
    );
    let worst_dup = runs
        .iter()
        .map(|r| r.downloads as f64 / r.artifacts as f64)
        .fold(0.0, f64::max);
    let report = Report {
        workload: "workers".into(),
        description: format!(
            "{builds} builds (two small artifacts each, every tenth with a 24 MiB one) mirrored by 1, 2 and 3 \
             `jam mirror` processes sharing one SeaweedFS bucket (lease {LEASE_S} s, poll 0.5 s); then a takeover"
        ),
        opts: opts.clone(),
        tools: Vec::new(),
        targets: vec![
            common::Target::at_most("downloads per artifact mirrored, worst of 1-3 workers", worst_dup, 1.0),
            common::Target::at_most("takeover: claim taken over, leases after the kill", claim_s / LEASE_S as f64, 2.0),
        ],
        notes: vec![
            "On this 2-core machine the workers, the simulator and SeaweedFS share two cores: more workers do not \
             make more CPU, so builds/s stays about flat; what matters here is the duplicate ratio (each artifact \
             downloaded once) and the takeover time."
                .into(),
            format!(
                "Coordination costs per build one claim create and one delete (plus a renewal every {:.1} s while \
                 a build transfers), and per worker one heartbeat renewal every {:.1} s and one listing of the \
                 heartbeats every {LEASE_S} s; with the default 30 s lease, a third of that rate.",
                LEASE_S as f64 / 3.0,
                LEASE_S as f64 / 3.0
            ),
        ],
        extra: json!({
            "runs": runs.iter().map(|r| json!({
                "workers": r.workers, "seconds": r.secs, "builds": r.builds, "artifacts": r.artifacts,
                "downloads": r.downloads, "coordination_requests": r.coordination,
                "store_requests": r.store_requests, "takeovers": r.takeovers,
            })).collect::<Vec<Value>>(),
            "takeover": {"claim_s": claim_s, "commit_s": commit_s, "downloads": downloads, "lease_s": LEASE_S},
        }),
        custom_table: table,
        extra_results: Vec::new(),
    };
    report.finish(&env);
}
