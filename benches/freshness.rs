//! Bench workload `freshness`: how long after a build finishes it is in the mirror. Builds finish at
//! random times over a window on the simulator, spread over a few jobs; `jam mirror` (release binary, a
//! local directory store) runs with one poll interval, once with build notices (the Notification
//! plugin's FINALIZED notice to `POST /notify/jenkins`) and once with polling only. For each build the
//! time from its end to its manifest appearing in the store is taken; the table gives p50, p99 and the
//! largest of each mode side by side, with the Jenkins requests each mode made over the window.
//! `cargo bench --bench freshness [-- --quick] [--readme]`.

mod common;

use std::{
    fmt::Write as _,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use common::{Env, Guard, Opts, Report, TOKEN, Target, USER, banner, free_port, log_file};
use jam::format::layout::{JobPath, Layout};
use jenkins_sim::{ArtifactSpec, BuildResult, BuildSpec, ItemSpec, Notifier, Scenario, Sim};
use rand::Rng as _;
use serde_json::json;

const SECRET: &str = "freshness-bench-notice-secret";
const JOBS: usize = 4;

/// The shape of one run.
struct Shape {
    builds: usize,
    window: Duration,
    poll: Duration,
}

/// What one mode measured.
struct Measured {
    mode: &'static str,
    latencies: Vec<f64>,
    requests: usize,
}

impl Measured {
    /// The `q` quantile (nearest rank) of the latencies, in seconds.
    fn quantile(&self, q: f64) -> f64 {
        let mut v = self.latencies.clone();
        v.sort_by(f64::total_cmp);
        let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len().max(1));
        v.get(rank - 1).copied().unwrap_or(f64::NAN)
    }

    fn max(&self) -> f64 {
        self.latencies.iter().copied().fold(0.0, f64::max)
    }
}

fn job(i: usize) -> String {
    format!("app-{i}")
}

fn scenario() -> Scenario {
    let mut sc = Scenario::default().with_user(USER, TOKEN);
    for i in 0..JOBS {
        sc = sc.with_item(ItemSpec::freestyle(&job(i)).with_build(build(1)));
    }
    sc
}

fn build(n: u64) -> BuildSpec {
    BuildSpec::finished(n, BuildResult::Success)
        .with_artifact(ArtifactSpec::sized("dist/app.bin", 1 << 20))
        .with_artifact(ArtifactSpec::sized("notes.txt", 2_000))
}

/// `jam mirror` over `sim` into `store`, with `--listen` (and the notice secret when `notices`).
fn start_jam(env: &Env, sim: &Sim, store: &Path, poll: Duration, notices: bool) -> (Guard, u16) {
    let port = free_port();
    let dir = store.parent().expect("scratch dir");
    let mut c = Command::new(&env.jam);
    c.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("JENKINS_URL", sim.url())
        .env("JENKINS_USER", USER)
        .env("JENKINS_API_TOKEN", TOKEN)
        .env("JAM_STORE", store)
        .args(["--log-format", "json", "mirror"])
        .args(["--poll-interval", &format!("{}s", poll.as_secs())])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::null())
        .stdout(log_file(&dir.join("jam.log")))
        .stderr(log_file(&dir.join("jam.log")));
    if notices {
        c.env("JAM_NOTIFY_SECRET", SECRET);
    }
    let proc = Guard {
        child: c.spawn().expect("start jam mirror"),
        name: "jam mirror".into(),
    };
    // Ready once its first cycle (which mirrors each job's build 1) is done.
    let t = Instant::now();
    while metric(port, "jam_builds_mirrored_total") < JOBS as u64 {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "jam mirror did not mirror the first builds within 60 s (see {})",
            dir.join("jam.log").display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (proc, port)
}

fn metric(port: u16, name: &str) -> u64 {
    let text = Command::new("curl")
        .args(["-s", "-m", "5", &format!("http://127.0.0.1:{port}/metrics")])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0)
}

/// One mode: builds finishing at `offsets` (from the start) on random jobs; the time each takes to be
/// committed.
fn measure(env: &Env, shape: &Shape, offsets: &[(Duration, usize)], notices: bool) -> Measured {
    let mode = if notices {
        "notices (plugin, FINALIZED)"
    } else {
        "polling only"
    };
    eprintln!(
        "bench: freshness, {mode}: {} builds over {:?}",
        offsets.len(),
        shape.window
    );
    let scratch = env.tempdir("freshness");
    let store = scratch.path().join("mirror");
    let sim = Sim::start(scenario());
    let (jam, port) = start_jam(env, &sim, &store, shape.poll, notices);
    if notices {
        let url = format!("http://jam:{SECRET}@127.0.0.1:{port}/notify/jenkins");
        sim.add_notifier(Notifier::plugin(&url).event("finalized"))
            .expect("add notifier");
    }
    let layout = Layout::new(jam::config::default_source_name(
        &url::Url::parse(&sim.url()).expect("sim URL"),
    ));
    sim.clear_requests();
    let mut next = [2u64; JOBS];
    let mut pending: Vec<(std::path::PathBuf, Instant)> = Vec::new();
    let mut latencies = Vec::new();
    let start = Instant::now();
    let mut due = offsets.iter().peekable();
    let limit = shape.window + shape.poll * 3 + Duration::from_secs(30);
    while due.peek().is_some() || !pending.is_empty() {
        assert!(
            start.elapsed() < limit,
            "{} builds not committed within {limit:?}",
            pending.len()
        );
        if let Some((at, j)) = due.peek()
            && start.elapsed() >= *at
        {
            let n = next[*j];
            next[*j] += 1;
            let finished = Instant::now();
            sim.add_build(&job(*j), build(n)).expect("add build");
            let key = layout.manifest_key(&JobPath::new([job(*j)]), n);
            pending.push((store.join(key), finished));
            due.next();
            continue;
        }
        let now = Instant::now();
        pending.retain(|(manifest, finished)| {
            let done = manifest.exists();
            if done {
                latencies.push(now.duration_since(*finished).as_secs_f64());
            }
            !done
        });
        std::thread::sleep(Duration::from_millis(5));
    }
    let requests = sim.request_count();
    if notices {
        let refused = sim
            .notices()
            .iter()
            .filter(|r| r.status != Some(202))
            .count();
        assert_eq!(refused, 0, "every notice was accepted");
    }
    drop(jam);
    Measured {
        mode,
        latencies,
        requests,
    }
}

fn main() {
    let opts = Opts::parse();
    banner("freshness", &opts);
    let env = Env::setup();
    let shape = if opts.quick {
        Shape {
            builds: 12,
            window: Duration::from_secs(40),
            poll: Duration::from_secs(10),
        }
    } else {
        Shape {
            builds: 40,
            window: Duration::from_secs(240),
            poll: Duration::from_secs(30),
        }
    };
    // The same random finish times and jobs for both modes.
    let mut rng = rand::rng();
    let mut offsets: Vec<(Duration, usize)> = (0..shape.builds)
        .map(|_| {
            let at = rng.random_range(0.0..shape.window.as_secs_f64());
            (Duration::from_secs_f64(at), rng.random_range(0..JOBS))
        })
        .collect();
    offsets.sort();
    let with = measure(&env, &shape, &offsets, true);
    let without = measure(&env, &shape, &offsets, false);
    let mut table = String::new();
    table
        .push_str("| mode | poll interval | builds | p50 s | p99 s | max s | Jenkins requests |\n");
    table.push_str("|---|---:|---:|---:|---:|---:|---:|\n");
    for m in [&with, &without] {
        let _ = writeln!(
            table,
            "| {} | {} s | {} | {:.2} | {:.2} | {:.2} | {} |",
            m.mode,
            shape.poll.as_secs(),
            m.latencies.len(),
            m.quantile(0.5),
            m.quantile(0.99),
            m.max(),
            m.requests
        );
    }
    let p99 = with.quantile(0.99);
    let report = Report {
        workload: "freshness".into(),
        description: format!(
            "{} builds (1 MiB + 2 kB each) finishing at random times over {} s on {JOBS} jobs; time from a \
             build's end to its manifest in the store (a local directory), with build notices and with \
             polling only, the same poll interval",
            shape.builds,
            shape.window.as_secs()
        ),
        opts: Opts {
            runs: 1,
            ..opts.clone()
        },
        tools: Vec::new(),
        targets: vec![Target::at_most(
            "p99 with notices, s (within seconds)",
            p99,
            5.0,
        )],
        notes: vec![
            format!(
                "polling only waits for the next cycle: about half a poll interval on average ({} s here), \
                 a whole one at worst; notices do not wait. Jenkins requests over the window: {} with \
                 notices, {} polling only (a notice costs one read of its job's build list, where a poll \
                 reads each changed job once per cycle however many of its builds finished)",
                shape.poll.as_secs_f64() / 2.0,
                with.requests,
                without.requests
            ),
            "one run per mode; the machine is shared, so the numbers are indicative".into(),
        ],
        extra: json!({
            "poll_interval_s": shape.poll.as_secs(),
            "notices": {"latencies_s": with.latencies, "requests": with.requests},
            "polling_only": {"latencies_s": without.latencies, "requests": without.requests},
        }),
        custom_table: table,
        extra_results: Vec::new(),
    };
    report.finish(&env);
}
