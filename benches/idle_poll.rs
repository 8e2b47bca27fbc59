//! Bench workload `idle-poll`: 5,000 jobs (and 500, to show the cost does not grow with the job count) in
//! folders three deep, nothing new. `jam mirror` runs with a 1 s poll interval; once its first cycle is
//! done, the simulator's request log and the CPU times of jam, the simulator and the S3 server are taken
//! over a window of cycles. Beside it, the poller people write by hand: one `lastBuild` request per job,
//! with curl in parallel. And the first cycle of a fresh process, as cron runs it: `jam mirror --once`
//! over 2,000 jobs whose store already holds every job's index, nothing new, each run a new process.
//! `cargo bench --bench idle-poll [-- --quick] [--runs N] [--readme]`.

mod common;

use std::{
    fmt::Write as _,
    fs,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use common::{
    BUCKET, Env, Guard, Opts, Report, Seaweed, Servers, SimProc, TOKEN, Target, USER, proc_ticks,
};
use jenkins_sim::{BuildResult, BuildSpec, ItemSpec, Scenario};
use serde_json::{Value, json};

/// Jobs of the fresh `--once` case (the 2,000).
const FRESH_JOBS: usize = 2000;

/// Poll interval jam runs with.
const INTERVAL: Duration = Duration::from_secs(1);

/// `jobs` jobs as 10 folders × 10 folders × jobs/100 jobs, each with one finished build.
fn scenario(jobs: usize) -> (Scenario, Vec<String>) {
    let per = jobs / 100;
    let mut sc = Scenario::default().with_user(USER, TOKEN);
    let mut paths = Vec::new();
    for t in 0..10 {
        let mut top = ItemSpec::folder(&format!("team-{t:02}"));
        for g in 0..10 {
            let mut group = ItemSpec::folder(&format!("group-{g:02}"));
            for j in 0..per {
                group = group.with_job(
                    ItemSpec::freestyle(&format!("app-{j:03}"))
                        .with_build(BuildSpec::finished(1, BuildResult::Success)),
                );
                paths.push(format!("job/team-{t:02}/job/group-{g:02}/job/app-{j:03}/"));
            }
            top = top.with_job(group);
        }
        sc = sc.with_item(top);
    }
    (sc, paths)
}

fn is_cycle_request(r: &Value) -> bool {
    r["path"]
        .as_str()
        .is_some_and(|p| p.starts_with("/api/json"))
}

/// One measured steady-state window of `jam mirror` over `jobs` jobs.
struct JamIdle {
    jobs: usize,
    cycles: usize,
    requests: usize,
    bytes_per_cycle: u64,
    bytes_per_cycle_gzip: u64,
    cpu_ms_per_cycle: f64,
    sim_cpu_ms_per_cycle: f64,
    s3_cpu_ms_per_cycle: f64,
    first_cycle_s: f64,
    peak_rss_mib: f64,
}

fn response_bytes(sim: &SimProc, path: &str, gzip: bool) -> u64 {
    let mut c = Command::new("curl");
    c.args([
        "-sS",
        "--fail",
        "-g",
        "-o",
        "/dev/null",
        "-w",
        "%{size_download}",
        "-u",
    ])
    .arg(format!("{USER}:{TOKEN}"));
    if gzip {
        c.args(["-H", "Accept-Encoding: gzip"]);
    }
    c.arg(format!("{}{}", sim.url, path.trim_start_matches('/')));
    common::run_ok(&mut c, "GET the change-detection request")
        .trim()
        .parse()
        .unwrap_or(0)
}

fn jam_idle(env: &Env, s3: &Seaweed, jobs: usize, cycles: usize, dir: &std::path::Path) -> JamIdle {
    let (sc, _) = scenario(jobs);
    let sim = SimProc::start(env, &sc, dir);
    let cfg = dir.join("jam.toml");
    fs::write(&cfg, "[mirror]\nbackfill = \"none\"\n").expect("write jam.toml");
    let mut c = Command::new(&env.jam);
    s3.s3_env(&mut c);
    c.current_dir(dir)
        .env("JAM_CONFIG", &cfg)
        .env("JAM_STORE", format!("s3://{BUCKET}/idle-{jobs}"))
        .env("JENKINS_URL", &sim.url)
        .env("JENKINS_USER", USER)
        .env("JENKINS_API_TOKEN", TOKEN)
        .args(["--log-format", "json", "mirror", "--poll-interval"])
        .arg(format!("{}ms", INTERVAL.as_millis()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(dir.join(format!("jam-idle-{jobs}.log"))).expect("log"));
    let started = Instant::now();
    let jam = Guard {
        child: c.spawn().expect("start jam mirror"),
        name: "jam mirror".into(),
    };
    // The first cycle is done when the log ends in three change-detection requests in a row.
    let first_cycle_s = loop {
        std::thread::sleep(Duration::from_millis(500));
        let log = sim.requests();
        let tail_idle = log.len() >= 3 && log[log.len() - 3..].iter().all(is_cycle_request);
        if tail_idle {
            break started.elapsed().as_secs_f64();
        }
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "jam mirror did not settle over {jobs} jobs"
        );
    };
    let tck = env.clk_tck;
    let pid = jam.pid();
    sim.clear_requests();
    let (j0, sim0, s30) = (
        proc_ticks(&pid, false).unwrap_or(0),
        sim.proc.cpu_s(env),
        s3.proc.cpu_s(env),
    );
    std::thread::sleep(INTERVAL * cycles as u32 + Duration::from_millis(300));
    let (j1, sim1, s31) = (
        proc_ticks(&pid, false).unwrap_or(0),
        sim.proc.cpu_s(env),
        s3.proc.cpu_s(env),
    );
    let log = sim.requests();
    let peak = common::peak_rss(jam.child.id()).unwrap_or(0) as f64 / (1 << 20) as f64;
    drop(jam);
    let cycle_paths: Vec<&str> = log
        .iter()
        .filter(|r| is_cycle_request(r))
        .filter_map(|r| r["path"].as_str())
        .collect();
    let n = cycle_paths.len().max(1);
    let (bytes, bytes_gz) = cycle_paths.first().map_or((0, 0), |p| {
        (
            response_bytes(&sim, p, false),
            response_bytes(&sim, p, true),
        )
    });
    let other: u64 = log
        .iter()
        .filter(|r| !is_cycle_request(r))
        .filter_map(|r| r["path"].as_str())
        .map(|p| response_bytes(&sim, p, true))
        .sum();
    JamIdle {
        jobs,
        cycles: cycle_paths.len(),
        requests: log.len(),
        bytes_per_cycle: bytes + other / n as u64,
        bytes_per_cycle_gzip: bytes_gz + other / n as u64,
        cpu_ms_per_cycle: (j1 - j0) as f64 / tck * 1000.0 / n as f64,
        sim_cpu_ms_per_cycle: (sim1 - sim0) * 1000.0 / n as f64,
        s3_cpu_ms_per_cycle: (s31 - s30) * 1000.0 / n as f64,
        first_cycle_s,
        peak_rss_mib: peak,
    }
}

/// Fresh `jam mirror --once` processes over `jobs` jobs where nothing changed since a first run.
struct FreshOnce {
    jobs: usize,
    first_run: common::Run,
    runs: Vec<common::Run>,
}

fn fresh_once(
    env: &Env,
    s3: &Seaweed,
    jobs: usize,
    runs: usize,
    dir: &std::path::Path,
) -> FreshOnce {
    let (sc, _) = scenario(jobs);
    let sim = SimProc::start(env, &sc, dir);
    let cfg = dir.join("jam.toml");
    fs::write(&cfg, "[mirror]\nbackfill = \"none\"\n").expect("write jam.toml");
    let servers = Servers {
        env,
        s3: Some(s3),
        sim: &sim,
    };
    let once = |log: &str| {
        let mut c = Command::new(&env.jam);
        s3.s3_env(&mut c);
        c.env("JAM_CONFIG", &cfg)
            .env("JAM_STORE", format!("s3://{BUCKET}/fresh-{jobs}"));
        common::mirror_once(&mut c, &sim, dir, true);
        servers.measure(&mut c, &dir.join(log), false)
    };
    // The first run ever sees every job for the first time and records its backfill cut in its index.
    let first_run = once("first.log");
    let runs = (0..runs).map(|r| once(&format!("fresh-{r}.log"))).collect();
    FreshOnce {
        jobs,
        first_run,
        runs,
    }
}

/// One cycle of the hand-written poller: `lastBuild` of every job, curl with 8 in parallel.
struct CurlIdle {
    jobs: usize,
    wall_s: f64,
    requests: usize,
    bytes: u64,
    cpu_ms: f64,
    sim_cpu_ms: f64,
    peak_rss_mib: f64,
}

fn curl_idle(env: &Env, s3: &Seaweed, jobs: usize, dir: &std::path::Path) -> CurlIdle {
    let (sc, paths) = scenario(jobs);
    let sim = SimProc::start(env, &sc, dir);
    let mut list = String::new();
    for p in &paths {
        let _ = writeln!(
            list,
            "url = \"{}{p}api/json?tree=lastBuild[number],lastCompletedBuild[number]\"\noutput = \"/dev/null\"",
            sim.url
        );
    }
    let file = dir.join(format!("poll-{jobs}.curl"));
    fs::write(&file, list).expect("write curl list");
    let servers = Servers {
        env,
        s3: Some(s3),
        sim: &sim,
    };
    let log = dir.join(format!("curl-idle-{jobs}.log"));
    let run = servers.measure(
        Command::new("curl")
            .args([
                "-sS",
                "--fail",
                "-g",
                "--parallel",
                "--parallel-max",
                "8",
                "-w",
                "%{size_download}\\n",
                "-u",
            ])
            .arg(format!("{USER}:{TOKEN}"))
            .arg("-K")
            .arg(&file),
        &log,
        false,
    );
    let bytes = fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse::<u64>().ok())
        .sum();
    CurlIdle {
        jobs,
        wall_s: run.wall_s,
        requests: run.requests,
        bytes,
        cpu_ms: run.cpu_s * 1000.0,
        sim_cpu_ms: run.sim_cpu_s * 1000.0,
        peak_rss_mib: run.peak_rss_mib,
    }
}

fn main() {
    let opts = Opts::parse();
    common::banner("idle-poll", &opts);
    let env = Env::setup();
    let cycles = if opts.quick { 10 } else { 30 };
    let tmp = env.tempdir("idle-poll");
    let s3 = Seaweed::start(&env, &tmp.path().join("seaweedfs"));
    let mut jam_rows = Vec::new();
    let mut curl_rows = Vec::new();
    eprintln!("bench idle-poll: fresh --once processes over {FRESH_JOBS} jobs");
    let d = tmp.path().join("fresh");
    fs::create_dir_all(&d).expect("mkdir");
    let fresh = fresh_once(&env, &s3, FRESH_JOBS, opts.runs, &d);
    s3.clear(&format!("fresh-{FRESH_JOBS}"));
    for jobs in [500, 5000] {
        for r in 0..opts.runs {
            eprintln!("bench idle-poll: {jobs} jobs, run {}/{}", r + 1, opts.runs);
            let d = tmp.path().join(format!("jam-{jobs}-{r}"));
            fs::create_dir_all(&d).expect("mkdir");
            let row = jam_idle(&env, &s3, jobs, cycles, &d);
            eprintln!(
                "    jam: {} requests over {} cycles, {:.1} ms CPU per cycle",
                row.requests, row.cycles, row.cpu_ms_per_cycle
            );
            jam_rows.push(row);
            s3.clear(&format!("idle-{jobs}"));
        }
        let d = tmp.path().join(format!("curl-{jobs}"));
        fs::create_dir_all(&d).expect("mkdir");
        curl_rows.push(curl_idle(&env, &s3, jobs, &d));
    }
    drop(s3);
    drop(tmp);

    let med = |v: Vec<f64>| {
        let mut v = v;
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mut table = String::from(
        "| poller | jobs | cycles measured | Jenkins requests per cycle | response bytes per cycle (gzip) | poller CPU ms per cycle | simulator CPU ms per cycle | S3 server CPU ms per cycle | first cycle s (curl: the cycle) | peak RSS MiB |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let mut results = Vec::new();
    let mut targets = Vec::new();
    for jobs in [500, 5000] {
        let rows: Vec<&JamIdle> = jam_rows.iter().filter(|r| r.jobs == jobs).collect();
        let cycles: usize = rows.iter().map(|r| r.cycles).sum();
        let requests: usize = rows.iter().map(|r| r.requests).sum();
        let per_cycle = requests as f64 / cycles.max(1) as f64;
        let cpu = med(rows.iter().map(|r| r.cpu_ms_per_cycle).collect());
        let sim_cpu = med(rows.iter().map(|r| r.sim_cpu_ms_per_cycle).collect());
        let s3_cpu = med(rows.iter().map(|r| r.s3_cpu_ms_per_cycle).collect());
        let first = med(rows.iter().map(|r| r.first_cycle_s).collect());
        let rss = rows.iter().map(|r| r.peak_rss_mib).fold(0.0, f64::max);
        let (b, bgz) = (rows[0].bytes_per_cycle, rows[0].bytes_per_cycle_gzip);
        let _ = writeln!(
            table,
            "| jam mirror --poll-interval 1s | {jobs} | {cycles} | {per_cycle:.2} | {b} ({bgz}) | {cpu:.1} | {sim_cpu:.1} | {s3_cpu:.1} | {first:.1} | {rss:.0} |"
        );
        results.push(json!({
            "tool": "jam", "jobs": jobs, "cycles": cycles, "requests": requests,
            "requests_per_cycle": common::round3(per_cycle), "bytes_per_cycle": b, "bytes_per_cycle_gzip": bgz,
            "cpu_ms_per_cycle": common::round3(cpu), "jenkins_sim_cpu_ms_per_cycle": common::round3(sim_cpu),
            "s3_server_cpu_ms_per_cycle": common::round3(s3_cpu), "first_cycle_s": common::round3(first),
            "peak_rss_mib": common::round3(rss),
            // One cycle, for the common shape.
            "median_s": 0.0, "mb_per_s": 0.0, "cpu_s_per_gib": 0.0, "requests_total": requests,
        }));
        targets.push(Target::exactly(
            &format!("jam Jenkins requests per idle cycle, {jobs} jobs"),
            per_cycle,
            1.0,
        ));
    }
    for c in &curl_rows {
        let _ = writeln!(
            table,
            "| curl lastBuild per job (--parallel-max 8) | {} | 1 | {} | {} | {:.1} | {:.1} | 0.0 | {:.1} | {:.0} |",
            c.jobs, c.requests, c.bytes, c.cpu_ms, c.sim_cpu_ms, c.wall_s, c.peak_rss_mib
        );
        results.push(json!({
            "tool": "curl per job", "jobs": c.jobs, "cycles": 1, "requests": c.requests,
            "requests_per_cycle": c.requests, "bytes_per_cycle": c.bytes,
            "cpu_ms_per_cycle": common::round3(c.cpu_ms), "jenkins_sim_cpu_ms_per_cycle": common::round3(c.sim_cpu_ms),
            "median_s": common::round3(c.wall_s), "mb_per_s": 0.0, "cpu_s_per_gib": 0.0,
            "peak_rss_mib": common::round3(c.peak_rss_mib),
        }));
    }
    let mut fresh_table = String::from(
        "| run | jobs | Jenkins requests | wall s | jam CPU ms | simulator CPU ms | S3 server CPU ms | peak RSS MiB |\n|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let row = |t: &mut String, name: &str, r: &common::Run| {
        let _ = writeln!(
            t,
            "| {name} | {} | {} | {:.2} | {:.0} | {:.0} | {:.0} | {:.0} |",
            fresh.jobs,
            r.requests,
            r.wall_s,
            r.cpu_s * 1000.0,
            r.sim_cpu_s * 1000.0,
            r.s3_cpu_s * 1000.0,
            r.peak_rss_mib
        );
    };
    row(
        &mut fresh_table,
        "jam mirror --once, the first run ever (every job seen for the first time)",
        &fresh.first_run,
    );
    let mut by_wall = fresh.runs.clone();
    by_wall.sort_by(|a, b| a.wall_s.total_cmp(&b.wall_s));
    let median = &by_wall[by_wall.len() / 2];
    row(
        &mut fresh_table,
        &format!(
            "jam mirror --once, a fresh process, nothing changed (median of {})",
            fresh.runs.len()
        ),
        median,
    );
    let worst = fresh.runs.iter().map(|r| r.requests).max().unwrap_or(0);
    targets.push(Target::exactly(
        &format!(
            "Jenkins requests of a fresh idle --once, {} jobs (the most any run made)",
            fresh.jobs
        ),
        worst as f64,
        1.0,
    ));
    results.push(json!({
        "tool": "jam mirror --once (fresh process, idle)", "jobs": fresh.jobs,
        "requests": median.requests, "requests_max": worst, "median_s": common::round3(median.wall_s),
        "cpu_s": common::round3(median.cpu_s), "jenkins_sim_cpu_s": common::round3(median.sim_cpu_s),
        "s3_server_cpu_s": common::round3(median.s3_cpu_s), "peak_rss_mib": common::round3(median.peak_rss_mib),
        "first_run_s": common::round3(fresh.first_run.wall_s), "first_run_requests": fresh.first_run.requests,
        "mb_per_s": 0.0, "cpu_s_per_gib": 0.0,
    }));
    table.push_str("\nThe first cycle of a fresh process (cron's `jam mirror --once`):\n\n");
    table.push_str(&fresh_table);
    let report = Report {
        workload: "idle-poll".into(),
        description: format!(
            "500 and 5,000 jobs in folders three deep (team/group/app), each with one mirrored-or-skipped build, nothing new; jam with backfill = \"none\" and a 1 s poll interval, measured over {cycles} cycles after its first cycle, {} times; and fresh `jam mirror --once` processes over {FRESH_JOBS} such jobs after a first run, {} times.",
            opts.runs, opts.runs
        ),
        opts: opts.clone(),
        tools: Vec::new(),
        targets,
        notes: vec![
            "A fresh --once reads each job's index from the store (one GET per job, 32 at once) and asks Jenkins about a job only when the tree query shows a build its index has not settled.".into(),
            "Response bytes are the bodies of the requests jam made, fetched again with curl (in brackets: with Accept-Encoding: gzip, as jam asks; the simulator does not compress).".into(),
            "CPU per GiB does not apply here: nothing moves.".into(),
        ],
        extra: json!({ "cycles_per_window": cycles, "poll_interval_s": INTERVAL.as_secs_f64() }),
        custom_table: table,
        extra_results: results,
    };
    report.finish(&env);
}
