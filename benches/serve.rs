//! Bench workload `serve`: `jam serve` (proxy mode) over a mirror in SeaweedFS, side by side with the
//! same objects read straight from SeaweedFS by presigned URLs, in one run:
//!
//! - a 1 GiB artifact with curl, through the gateway vs from S3 (goal ≥ 0.9× the direct rate);
//! - a 4 KiB artifact by permalink (`lastSuccessfulBuild`) with keep-alive load from `wrk`, vs the same
//!   object from S3 (goal ≥ 0.8× the direct request rate), with p50 and p99 latency;
//!
//! and the gateway's CPU time and peak RSS over each. `cargo bench --bench serve [-- --quick] [--runs N]`.

mod common;

use std::{fs, process::Command, time::Instant};

use base64::Engine as _;
use common::{BUCKET, Env, Guard, Opts, Report, Seaweed, SimProc, TOKEN, Target, USER};
use jenkins_sim::{ArtifactSpec, BuildResult, BuildSpec, ItemSpec, Scenario};
use serde_json::json;
use sha2::Digest;

const BIG: &str = "dist/big.bin";
const SMALL: &str = "dist/small.bin";

/// What `wrk` measured.
#[derive(Debug, Clone, Copy)]
struct Load {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// `wrk --latency` output: `Requests/sec:` and the 50% / 99% lines (`1.23ms`, `850.00us`, `1.02s`).
fn parse_wrk(out: &str) -> Load {
    let ms = |v: &str| -> f64 {
        let v = v.trim();
        let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len()));
        let n: f64 = num.parse().unwrap_or(f64::NAN);
        match unit {
            "us" => n / 1000.0,
            "s" => n * 1000.0,
            "m" => n * 60_000.0,
            _ => n,
        }
    };
    let pct = |p: &str| {
        out.lines()
            .find_map(|l| l.trim().strip_prefix(p).map(ms))
            .unwrap_or(f64::NAN)
    };
    let rps = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(f64::NAN);
    Load {
        rps,
        p50_ms: pct("50%"),
        p99_ms: pct("99%"),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() {
    let opts = Opts::parse();
    common::banner("serve", &opts);
    let env = Env::setup();
    common::ensure_apt("wrk");
    let big_size: u64 = 1 << 30;
    let secs = if opts.quick { 5 } else { 15 };
    let tmp = env.tempdir("serve");
    let dir = tmp.path();
    let s3 = Seaweed::start(&env, &dir.join("seaweedfs"));
    let sc = Scenario::default()
        .with_user(USER, TOKEN)
        .with_item(
            ItemSpec::freestyle("big").with_build(
                BuildSpec::finished(1, BuildResult::Success)
                    .with_artifact(ArtifactSpec::generated(BIG, big_size, 0x5e7e)),
            ),
        )
        .with_item(
            ItemSpec::freestyle("small").with_build(
                BuildSpec::finished(1, BuildResult::Success)
                    .with_artifact(ArtifactSpec::generated(SMALL, 4096, 0x5e7f)),
            ),
        );
    let sim = SimProc::start(&env, &sc, dir);
    let store_env = |c: &mut Command| {
        s3.s3_env(c);
        c.current_dir(dir)
            .env("JAM_STORE", format!("s3://{BUCKET}/mirror"))
            .env("JAM_LOG", "warn");
    };
    let mut c = Command::new(&env.jam);
    store_env(&mut c);
    common::run_ok(
        c.env("JENKINS_URL", &sim.url)
            .env("JENKINS_USER", USER)
            .env("JENKINS_API_TOKEN", TOKEN)
            .args(["mirror", "--once"]),
        "jam mirror --once (setting up the serve workload)",
    );
    drop(sim);
    let keys = s3.list("mirror");
    let key = |path: &str| {
        keys.iter()
            .find(|k| k.ends_with(&format!("/1/artifact/{path}")))
            .unwrap_or_else(|| panic!("no mirrored {path} among {keys:?}"))
            .clone()
    };
    let presign = |key: &str| {
        let mut c = s3.aws();
        common::run_ok(
            c.args([
                "s3",
                "presign",
                &format!("s3://{BUCKET}/{key}"),
                "--expires-in",
                "3600",
            ]),
            "aws s3 presign",
        )
        .trim()
        .to_string()
    };
    let (direct_big, direct_small) = (presign(&key(BIG)), presign(&key(SMALL)));

    // The gateway, as a user runs it.
    let port = common::free_port();
    let config = dir.join("serve.toml");
    fs::write(
        &config,
        format!(
            "[serve]\nlisten = \"127.0.0.1:{port}\"\n\n[[serve.users]]\nname = \"{USER}\"\ntoken_sha256 = \"{}\"\n",
            hex::encode(sha2::Sha256::digest(TOKEN))
        ),
    )
    .expect("write serve.toml");
    let mut c = Command::new(&env.jam);
    store_env(&mut c);
    let child = c
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .stdout(common::log_file(&dir.join("jam-serve.log")))
        .stderr(common::log_file(&dir.join("jam-serve.log")))
        .spawn()
        .expect("start jam serve");
    let gw = Guard {
        child,
        name: "jam serve".into(),
    };
    let base = format!("http://127.0.0.1:{port}/");
    let t = Instant::now();
    while common::http_status(&format!("{base}healthz")) != 200 {
        assert!(
            t.elapsed().as_secs() < 30,
            "jam serve did not answer; see jam-serve.log"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let auth = format!(
        "Authorization: Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{TOKEN}"))
    );
    let via_big = format!("{base}job/big/lastSuccessfulBuild/artifact/{BIG}");
    let via_small = format!("{base}job/small/lastSuccessfulBuild/artifact/{SMALL}");
    // The bytes are right (checked once, not timed).
    let want = jenkins_sim::sha256_hex(0x5e7e, big_size);
    let got = common::run_ok(
        Command::new("bash")
            .arg("-c")
            .arg(format!("curl -sS -H '{auth}' '{via_big}' | sha256sum")),
        "curl | sha256sum through the gateway",
    );
    assert!(
        got.starts_with(&want),
        "the gateway served other bytes: {got}"
    );

    // 1 GiB: curl to /dev/null, alternating gateway and S3.
    let curl_s = |url: &str, header: Option<&str>| -> f64 {
        let mut c = Command::new("curl");
        c.args(["-sS", "-o", "/dev/null", "-w", "%{time_total}"]);
        if let Some(h) = header {
            c.args(["-H", h]);
        }
        common::run_ok(c.arg(url), "curl")
            .trim()
            .parse()
            .expect("curl time")
    };
    let (mut t_gw, mut t_s3) = (Vec::new(), Vec::new());
    let cpu0 = gw.cpu_s(&env);
    for r in 0..opts.runs {
        eprintln!("bench serve: 1 GiB run {}/{}", r + 1, opts.runs);
        t_gw.push(curl_s(&via_big, Some(&auth)));
        t_s3.push(curl_s(&direct_big, None));
    }
    let big_cpu = (gw.cpu_s(&env) - cpu0) / opts.runs as f64;
    let mbps = |t: f64| big_size as f64 / t / 1e6;
    let (gw_mbps, s3_mbps) = (mbps(median(t_gw)), mbps(median(t_s3)));

    // 4 KiB by permalink: wrk with keep-alive, the gateway then S3.
    let wrk = |url: &str, header: Option<&str>| -> Load {
        let mut c = Command::new("wrk");
        c.args(["-t2", "-c16", &format!("-d{secs}s"), "--latency"]);
        if let Some(h) = header {
            c.args(["-H", h]);
        }
        parse_wrk(&common::run_ok(c.arg(url), "wrk"))
    };
    eprintln!("bench serve: wrk {secs}s through the gateway");
    let cpu0 = gw.cpu_s(&env);
    let small_gw = wrk(&via_small, Some(&auth));
    let small_cpu = gw.cpu_s(&env) - cpu0;
    eprintln!("bench serve: wrk {secs}s straight from SeaweedFS");
    let small_s3 = wrk(&direct_small, None);
    let rss = common::peak_rss(gw.child.id()).unwrap_or(0) as f64 / (1024.0 * 1024.0);
    drop(gw);
    drop(s3);
    drop(tmp);

    let table = format!(
        "| path | through jam serve | straight from SeaweedFS | ratio |\n|---|---:|---:|---:|\n\
         | 1 GiB artifact, curl (MB/s) | {gw_mbps:.0} | {s3_mbps:.0} | {:.2} |\n\
         | 4 KiB by permalink, wrk -c16 (requests/s) | {:.0} | {:.0} | {:.2} |\n\
         | 4 KiB p50 latency (ms) | {:.2} | {:.2} | |\n\
         | 4 KiB p99 latency (ms) | {:.2} | {:.2} | |\n\
         | gateway CPU s per 1 GiB download | {big_cpu:.2} | | |\n\
         | gateway CPU s over the wrk run ({secs} s) | {small_cpu:.2} | | |\n\
         | gateway peak RSS (MiB) | {rss:.0} | | |\n",
        gw_mbps / s3_mbps,
        small_gw.rps,
        small_s3.rps,
        small_gw.rps / small_s3.rps,
        small_gw.p50_ms,
        small_s3.p50_ms,
        small_gw.p99_ms,
        small_s3.p99_ms,
    );
    Report {
        workload: "serve".into(),
        description: "jam serve (proxy mode) over a mirror in SeaweedFS vs presigned GETs straight from SeaweedFS: one 1 GiB artifact with curl, and one 4 KiB artifact by permalink under keep-alive load (wrk, 2 threads, 16 connections).".into(),
        opts: opts.clone(),
        tools: Vec::new(),
        targets: vec![
            Target::at_least("1 GiB: gateway MB/s ÷ direct MB/s", gw_mbps / s3_mbps, 0.9),
            Target::at_least("4 KiB by permalink: gateway requests/s ÷ direct requests/s", small_gw.rps / small_s3.rps, 0.8),
        ],
        notes: vec![
            "The gateway, SeaweedFS, curl and wrk share the machine's 2 cores, so the gateway's own CPU competes with the load generator's and the store's.".into(),
            "A permalink costs the gateway no store round trip of its own in steady state: the job index is revalidated (a conditional GET) at most once per serve.freshness (1 s), the manifest is cached, and the artifact is one GET.".into(),
        ],
        extra: json!({
            "big_bytes": big_size,
            "gateway_mb_s": gw_mbps, "direct_mb_s": s3_mbps, "gateway_cpu_s_per_gib": big_cpu,
            "small_gateway": {"rps": small_gw.rps, "p50_ms": small_gw.p50_ms, "p99_ms": small_gw.p99_ms, "cpu_s": small_cpu},
            "small_direct": {"rps": small_s3.rps, "p50_ms": small_s3.p50_ms, "p99_ms": small_s3.p99_ms},
            "gateway_peak_rss_mib": rss,
        }),
        custom_table: table,
        extra_results: Vec::new(),
    }
    .finish(&env);
}
