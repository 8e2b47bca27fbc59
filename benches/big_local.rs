//! Bench workload `big-local`: one build with one 2 GiB artifact (1 GiB in `--quick`) mirrored into the
//! local-directory store on tmpfs (`/dev/shm`, else the target directory), where the sink is not the bound:
//! jam must keep up with the slower of the source (`curl` from the simulator) and the single-core speed of
//! the slowest digest it computes (`md5sum` with fingerprints, `sha256sum` without), all measured on the
//! same bytes in the same run. `cargo bench --bench big-local [-- --quick] [--runs N] [--perf] [--readme]`.

mod common;

use std::{fs, io::Write as _, path::Path, process::Command};

use common::{Env, Opts, Report, Servers, SimProc, TOKEN, Target, ToolResult, USER};
use jenkins_sim::{ArtifactSpec, BuildResult, BuildSpec, ItemSpec, Scenario};
use serde_json::json;

const PATH: &str = "dist/big.bin";
const SEED: u64 = 0xb16;

/// What is measured, in table order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Jam { fingerprints: bool },
    Curl,
    Hash(&'static str),
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
    ];
    let url = format!("{}job/bench/1/artifact/{PATH}", sim.url);
    for r in 0..opts.runs {
        for (i, (kind, tool)) in tools.iter_mut().enumerate() {
            eprintln!(
                "bench big-local: run {}/{}: {}",
                r + 1,
                opts.runs,
                tool.tool
            );
            let log = dir.join(format!("t{i}-r{r}.log"));
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
    let [jam, jam_sha, curl, md5sum, sha256sum] = &tools[..] else {
        unreachable!("five tools")
    };
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
        "jam computes SHA-256 always and MD5 when fingerprints are checked, each on a thread of its own beside the download and the write: the slowest digest sets the pace, not their sum. Its SHA-256 uses the CPU's SHA extensions where it has them, which coreutils' sha256sum does not.".into(),
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
        extra: json!({ "bytes": size, "tmpfs": on_tmpfs }),
        custom_table: String::new(),
        extra_results: Vec::new(),
    }
    .finish(&env);
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
