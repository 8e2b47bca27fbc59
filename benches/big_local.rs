//! Bench workload `big-local`: one build with one 2 GiB artifact (1 GiB in `--quick`) mirrored into the
//! local-directory store on tmpfs (`/dev/shm`, else the target directory), where the sink is not the bound:
//! jam must keep up with the slower of the source (`curl` from the simulator) and the single-core speed of
//! the slowest digest it computes (`md5sum` with fingerprints, `sha256sum` without), all measured on the
//! same bytes in the same run. `cargo bench --bench big-local [-- --quick] [--runs N] [--perf] [--readme]`.
//!
//! Before every measured run (of every tool), the bench writes and deletes as many bytes as the artifact
//! in the sink's filesystem ([`warm_sink`]), so that each run starts from the same memory state; `dd` into
//! the same directory measures what the sink costs in that state. On a VM that hands free memory back to
//! its hypervisor, a write into memory handed back is not free (README, "What bounds jam"). The notes also
//! give the least time jam's runs could take on the machine's cores ([`CoreFloor`]: its CPU and the
//! simulator's, spread over all of them), so a miss can be told apart from what the machine allows.

mod common;

use std::{fs, io::Write as _, path::Path, process::Command, time::Instant};

use common::{Env, Opts, Report, Servers, SimProc, TOKEN, Target, ToolResult, USER};
use jenkins_sim::{ArtifactSpec, BuildResult, BuildSpec, ItemSpec, Scenario};
use serde_json::json;

const PATH: &str = "dist/big.bin";
const SEED: u64 = 0xb16;

/// What is measured, in table order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Jam {
        fingerprints: bool,
    },
    Curl,
    Hash(&'static str),
    /// `dd` of the bytes into the sink's directory.
    Sink,
}

fn main() {
    let opts = Opts::parse();
    common::banner("big-local", &opts);
    let env = Env::setup();
    let size: u64 = if opts.quick { 1 << 30 } else { 2 << 30 };
    let tmp = env.tempdir("big-local");
    let dir = tmp.path();
    // The store and the bytes the digest tools read live in memory, so no disk bounds anyone.
    let shm = tempfile::Builder::new()
        .prefix("jam-bench-big-local-")
        .tempdir_in("/dev/shm")
        .unwrap_or_else(|_| env.tempdir("big-local-shm"));
    let on_tmpfs = shm.path().starts_with("/dev/shm");
    let file = shm.path().join("big.bin");
    {
        let mut w = std::io::BufWriter::with_capacity(1 << 20, fs::File::create(&file).unwrap());
        std::io::copy(&mut jenkins_sim::artifact_bytes(SEED, size), &mut w).unwrap();
        w.flush().unwrap();
    }
    let sc = Scenario::default().with_user(USER, TOKEN).with_item(
        ItemSpec::freestyle("bench").with_build(
            BuildSpec::finished(1, BuildResult::Success)
                .with_artifact(ArtifactSpec::generated(PATH, size, SEED)),
        ),
    );
    let sim = SimProc::start(&env, &sc, dir);
    // The simulator hashes fingerprinted content lazily, on the first request that needs it: pay that now.
    sim.get("job/bench/1/api/json?tree=fingerprint[hash,fileName]");
    let servers = Servers {
        env: &env,
        s3: None,
        sim: &sim,
    };
    let where_ = if on_tmpfs { "tmpfs" } else { "disk" };
    let mut tools: Vec<(Kind, ToolResult)> = vec![
        (
            Kind::Jam { fingerprints: true },
            ToolResult::new(
                &format!("jam mirror --once → directory on {where_}"),
                "jam mirror --once, store = a local directory (default settings: fingerprints checked)",
                size,
                1,
            ),
        ),
        (
            Kind::Jam {
                fingerprints: false,
            },
            ToolResult::new(
                "jam mirror --once (fingerprints off)",
                "the same with verify_fingerprints = false (SHA-256 only)",
                size,
                1,
            ),
        ),
        (
            Kind::Curl,
            ToolResult::new(
                "curl ← simulator (source bound)",
                "curl -u user:token URL -o /dev/null",
                size,
                1,
            ),
        ),
        (
            Kind::Hash("md5sum"),
            ToolResult::new(
                &format!("md5sum (the same bytes on {where_})"),
                "md5sum big.bin",
                size,
                1,
            ),
        ),
        (
            Kind::Hash("sha256sum"),
            ToolResult::new(
                &format!("sha256sum (the same bytes on {where_})"),
                "sha256sum big.bin",
                size,
                1,
            ),
        ),
        (
            Kind::Sink,
            ToolResult::new(
                &format!("dd → {where_} (sink bound)"),
                "dd if=big.bin of=<a file beside the store> bs=1M",
                size,
                1,
            ),
        ),
    ];
    let url = format!("{}job/bench/1/artifact/{PATH}", sim.url);
    let mut warm_mb_s = Vec::new();
    for r in 0..opts.runs {
        for (i, (kind, tool)) in tools.iter_mut().enumerate() {
            eprintln!(
                "bench big-local: run {}/{}: {}",
                r + 1,
                opts.runs,
                tool.tool
            );
            let log = dir.join(format!("t{i}-r{r}.log"));
            warm_mb_s.push(warm_sink(shm.path(), size));
            let run = match *kind {
                Kind::Jam { fingerprints } => {
                    let store = shm.path().join(format!("store-t{i}-r{r}"));
                    let mut c =
                        common::jam_command(&env, &opts, r == 0 && fingerprints, "big-local");
                    c.env_clear()
                        .env("PATH", std::env::var("PATH").unwrap_or_default())
                        .env("HOME", dir)
                        .env("JAM_STORE", &store);
                    common::mirror_once(&mut c, &sim, dir, fingerprints);
                    let run = servers.measure(&mut c, &log, false);
                    check_stored(&store, size);
                    let _ = fs::remove_dir_all(&store);
                    run
                }
                Kind::Curl => {
                    let mut c = Command::new("curl");
                    c.args(["-sS", "--fail", "-g", "-o", "/dev/null", "-u"])
                        .arg(format!("{USER}:{TOKEN}"))
                        .arg(&url);
                    servers.measure(&mut c, &log, false)
                }
                Kind::Hash(t) => {
                    let mut c = Command::new(t);
                    c.arg(&file);
                    servers.measure(&mut c, &log, false)
                }
                Kind::Sink => {
                    let copy = shm.path().join("copy.bin");
                    let mut c = Command::new("dd");
                    c.arg(format!("if={}", file.display()))
                        .arg(format!("of={}", copy.display()))
                        .arg("bs=1M");
                    let run = servers.measure(&mut c, &log, false);
                    assert_eq!(fs::metadata(&copy).unwrap().len(), size, "dd copied it all");
                    let _ = fs::remove_file(&copy);
                    run
                }
            };
            eprintln!(
                "    {:.2}s, {:.0} MB/s, CPU {:.2}s, peak RSS {:.0} MiB",
                run.wall_s,
                size as f64 / 1e6 / run.wall_s,
                run.cpu_s,
                run.peak_rss_mib
            );
            tool.runs.push(run);
        }
    }
    drop(sim);
    drop(shm);
    drop(tmp);
    let tools: Vec<ToolResult> = tools.into_iter().map(|(_, t)| t).collect();
    let [jam, jam_sha, curl, md5sum, sha256sum, sink] = &tools[..] else {
        unreachable!("six tools")
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let floor = CoreFloor::of(jam, cores);
    let with_md5 = curl.mb_per_s().min(md5sum.mb_per_s());
    let sha_only = curl.mb_per_s().min(sha256sum.mb_per_s());
    let targets = vec![
        Target::at_least(
            "jam MB/s ÷ slower of curl and md5sum (fingerprints checked)",
            jam.mb_per_s() / with_md5,
            0.9,
        ),
        Target::at_least(
            "jam (fingerprints off) MB/s ÷ slower of curl and sha256sum",
            jam_sha.mb_per_s() / sha_only,
            0.9,
        ),
        Target::at_most(
            "jam peak RSS MiB (default settings)",
            jam.peak_rss_mib(),
            64.0,
        ),
    ];
    let notes = vec![
        format!(
            "The store is a local directory on {where_}; the simulator serves {:.0} MB/s to curl, md5sum hashes {:.0} MB/s and sha256sum {:.0} MB/s on one core.",
            curl.mb_per_s(),
            md5sum.mb_per_s(),
            sha256sum.mb_per_s()
        ),
        format!(
            "dd writes {:.0} MB/s into the sink. Before every run of every tool, the bench writes as many bytes as the artifact into the sink's filesystem and deletes them, so each starts from the same memory state: on this machine, memory left free goes back to the hypervisor (free page reporting{}), and the first write to each such page costs the writer kernel time, so the tmpfs is not free of cost here. Those warm-up writes ran at {:.0} to {:.0} MB/s.",
            sink.mb_per_s(),
            page_reporting_limit()
                .map(|mib| format!(", once more than {mib} MiB is free"))
                .unwrap_or_default(),
            warm_mb_s.iter().copied().fold(f64::INFINITY, f64::min),
            warm_mb_s.iter().copied().fold(0.0, f64::max),
        ),
        floor.note(md5sum.median_s().max(curl.median_s()), jam.median_s()),
        "jam computes SHA-256 always and MD5 when fingerprints are checked. MD5 runs on a thread of its own beside the download and the write; SHA-256 does too without fingerprints, and beside MD5 stays on the download's thread when the CPU has SHA extensions (then it costs less than half of MD5): the slowest digest sets the pace, not their sum. coreutils' sha256sum does not use those extensions.".into(),
        "CPU s is user+sys of the tool's whole process tree; the simulator's CPU is shown beside it (on 2 cores it competes with the tool).".into(),
    ];
    Report {
        workload: "big-local".into(),
        description: format!(
            "One build, one {} GiB artifact (generated, incompressible), into a local-directory store on {where_}.",
            size >> 30
        ),
        opts: opts.clone(),
        tools,
        targets,
        notes,
        extra: json!({ "bytes": size, "tmpfs": on_tmpfs, "two_core_floor_s": floor.secs }),
        custom_table: String::new(),
        extra_results: Vec::new(),
    }
    .finish(&env);
}

/// The least wall time jam's runs could have taken on this machine's cores, whatever the overlap: the
/// CPU jam spent and the simulator spent meanwhile, spread over every core (median over the runs).
struct CoreFloor {
    cores: usize,
    cpu_s: f64,
    sim_cpu_s: f64,
    secs: f64,
}

impl CoreFloor {
    fn of(jam: &ToolResult, cores: usize) -> CoreFloor {
        let per_run = jam
            .runs
            .iter()
            .map(|r| (r.cpu_s + r.sim_cpu_s) / cores as f64)
            .collect();
        CoreFloor {
            cores,
            cpu_s: jam.cpu_s(),
            sim_cpu_s: jam.sim_cpu_s(),
            secs: common::median(per_run),
        }
    }

    /// What the floor allows against `bound_s` (the slower of curl and md5sum), and how near to it
    /// jam's `wall_s` came.
    fn note(&self, bound_s: f64, wall_s: f64) -> String {
        format!(
            "On {} cores, jam's CPU with fingerprints ({:.2} s: both digests, the receive and the write of every byte) and the simulator's meanwhile ({:.2} s) need at least {:.2} s of wall time, however well they overlap. Against the slower of curl and md5sum ({:.2} s), the best ratio these cores allow is {:.2}; jam's median run took {:.2} s, {:.2} of the floor's pace.",
            self.cores,
            self.cpu_s,
            self.sim_cpu_s,
            self.secs,
            bound_s,
            bound_s / self.secs,
            wall_s,
            self.secs / wall_s,
        )
    }
}

/// Writes `size` bytes of zeros into a file in `dir` (the sink's filesystem) and deletes it, so that the next
/// run's writes land on memory the machine has just used; returns the write's MB/s.
fn warm_sink(dir: &Path, size: u64) -> f64 {
    let path = dir.join("warm.bin");
    let block = vec![0u8; 1 << 20];
    let started = Instant::now();
    let mut f = fs::File::create(&path).expect("create the warm-up file");
    for _ in 0..size.div_ceil(block.len() as u64) {
        f.write_all(&block).expect("write the warm-up file");
    }
    drop(f);
    let secs = started.elapsed().as_secs_f64();
    fs::remove_file(&path).expect("remove the warm-up file");
    size as f64 / 1e6 / secs
}

/// How much free memory (MiB) the kernel lets wait before reporting it to the hypervisor, where the
/// kernel's page-reporting module says.
fn page_reporting_limit() -> Option<u64> {
    fs::read_to_string("/sys/module/page_reporting/parameters/max_waiting_mib")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// jam stored the artifact whole and committed the build.
fn check_stored(store: &Path, size: u64) {
    let mut found = (None, false);
    let mut stack = vec![store.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.ends_with(PATH) {
                found.0 = Some(fs::metadata(&p).unwrap().len());
            } else if p.file_name().is_some_and(|n| n == "manifest.json") {
                found.1 = true;
            }
        }
    }
    assert_eq!(
        found,
        (Some(size), true),
        "jam stored the artifact and committed the build"
    );
}
