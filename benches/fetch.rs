//! Bench workload `fetch`: a 1 GiB artifact mirrored by jam into SeaweedFS, then `jam fetch` of it to
//! local disk (jam verifies SHA-256 on the way) beside `s5cmd cp` and `aws s3 cp` of the same object each
//! followed by `sha256sum -c`. When this jam has no `jam fetch`, it says "jam fetch not available" and
//! measures the peers alone. `cargo bench --bench fetch [-- --quick] [--runs N] [--readme]`.

mod common;

use std::{fs, process::Command};

use common::{
    BUCKET, Env, Opts, Report, Seaweed, Servers, SimProc, TOKEN, Target, ToolResult, USER,
};
use jenkins_sim::{ArtifactSpec, BuildResult, BuildSpec, ItemSpec, Scenario};
use serde_json::json;

const PATH: &str = "dist/fetch.bin";
const SEED: u64 = 0xfe7c4;

fn main() {
    let opts = Opts::parse();
    common::banner("fetch", &opts);
    let env = Env::setup();
    let size: u64 = 1 << 30;
    let have_fetch = env.jam_has_fetch();
    if !have_fetch {
        println!(
            "jam fetch not available ({} fetch --help failed): measuring the peers only",
            env.jam.display()
        );
    }
    let tmp = env.tempdir("fetch");
    let dir = tmp.path();
    let s3 = Seaweed::start(&env, &dir.join("seaweedfs"));
    let sc = Scenario::default().with_user(USER, TOKEN).with_item(
        ItemSpec::freestyle("bench").with_build(
            BuildSpec::finished(1, BuildResult::Success)
                .with_artifact(ArtifactSpec::generated(PATH, size, SEED)),
        ),
    );
    let sim = SimProc::start(&env, &sc, dir);
    let sha = jenkins_sim::sha256_hex(SEED, size);
    // Put the artifact into the mirror with jam itself.
    let mirror_env = |c: &mut Command| {
        s3.s3_env(c);
        c.current_dir(dir)
            .env("JAM_STORE", format!("s3://{BUCKET}/mirror"))
            .env("JENKINS_URL", &sim.url)
            .env("JENKINS_USER", USER)
            .env("JENKINS_API_TOKEN", TOKEN);
    };
    let mut c = Command::new(&env.jam);
    mirror_env(&mut c);
    common::run_ok(
        c.args(["mirror", "--once"]),
        "jam mirror --once (setting up the fetch workload)",
    );
    let key = s3
        .list("mirror")
        .into_iter()
        .find(|k| k.ends_with(&format!("/1/artifact/{PATH}")))
        .expect("the mirrored artifact's key");
    eprintln!("bench fetch: mirrored {key}");
    fs::write(dir.join("expected.sha256"), format!("{sha}  fetch.bin\n")).expect("write checksum");
    let servers = Servers {
        env: &env,
        s3: Some(&s3),
        sim: &sim,
    };
    let out = dir.join("out");
    let mut tools = Vec::new();
    if have_fetch {
        tools.push(ToolResult::new(
            "jam fetch",
            "jam fetch bench -b 1 -o out (SHA-256 verified by jam)",
            size,
            1,
        ));
    }
    tools.push(ToolResult::new(
        "s5cmd cp + sha256sum -c",
        "s5cmd cp s3://bucket/key out/fetch.bin && sha256sum -c",
        size,
        1,
    ));
    tools.push(ToolResult::new(
        "aws s3 cp + sha256sum -c",
        "aws s3 cp s3://bucket/key out/fetch.bin && sha256sum -c",
        size,
        1,
    ));
    for r in 0..opts.runs {
        for tool in tools.iter_mut() {
            let _ = fs::remove_dir_all(&out);
            fs::create_dir_all(&out).expect("mkdir out");
            let log = dir.join(format!(
                "fetch-{r}-{}.log",
                tool.tool.split(' ').next().unwrap_or("x")
            ));
            eprintln!("bench fetch: run {}/{}: {}", r + 1, opts.runs, tool.tool);
            let run = if tool.tool == "jam fetch" {
                let mut c = Command::new(&env.jam);
                mirror_env(&mut c);
                c.args([
                    "fetch",
                    "bench",
                    "-b",
                    "1",
                    "-q",
                    "--source",
                    &sim.source_name(),
                    "-o",
                ])
                .arg(&out);
                let run = servers.measure(&mut c, &log, false);
                let got = common::run_ok(
                    Command::new("sha256sum").arg(out.join(PATH)),
                    "sha256sum of jam fetch's output",
                );
                assert!(
                    got.starts_with(&sha),
                    "jam fetch wrote the wrong bytes: {got}"
                );
                run
            } else {
                let client = if tool.tool.starts_with("s5cmd") {
                    format!(
                        "'{}' --endpoint-url \"$AWS_ENDPOINT_URL\" cp",
                        env.s5cmd.display()
                    )
                } else {
                    format!(
                        "'{}' --endpoint-url \"$AWS_ENDPOINT_URL\" s3 cp --only-show-errors",
                        env.aws.display()
                    )
                };
                let mut c = Command::new("bash");
                s3.s3_env(&mut c);
                c.current_dir(&out).arg("-c").arg(format!(
                    "set -euo pipefail; {client} 's3://{BUCKET}/{key}' fetch.bin && sha256sum -c '{}'",
                    dir.join("expected.sha256").display()
                ));
                servers.measure(&mut c, &log, true)
            };
            eprintln!(
                "    {:.2}s, CPU {:.2}s, peak RSS {:.0} MiB",
                run.wall_s, run.cpu_s, run.peak_rss_mib
            );
            tool.runs.push(run);
        }
    }
    let _ = fs::remove_dir_all(&out);
    drop(sim);
    drop(s3);
    drop(tmp);

    let mut targets = Vec::new();
    let mut notes = vec![
        "The mirror and the output directory are on the same disk; the page cache is not dropped between runs (it is shared with other work), so the object usually comes from memory.".to_string(),
        "jam fetch makes each file durable before renaming it into place (the peers do not sync): it flushes what it has written every 32 MiB while the download goes on, and syncs the rest at the end.".to_string(),
    ];
    if have_fetch {
        let jam = &tools[0];
        let s5 = &tools[1];
        targets.push(Target::at_most(
            "jam fetch wall time ÷ (s5cmd cp + sha256sum)",
            jam.median_s() / s5.median_s(),
            1.0,
        ));
        targets.push(Target::at_most(
            "jam fetch CPU s/GiB ÷ (s5cmd cp + sha256sum) CPU s/GiB",
            jam.cpu_s_per_gib() / s5.cpu_s_per_gib().max(1e-9),
            1.0,
        ));
    } else {
        notes.insert(
            0,
            "jam fetch not available in this build: only the peers were measured.".into(),
        );
    }
    Report {
        workload: "fetch".into(),
        description: "One 1 GiB artifact (generated, incompressible), mirrored by jam into SeaweedFS, fetched to local disk with its checksum verified.".into(),
        opts: opts.clone(),
        tools,
        targets,
        notes,
        extra: json!({ "bytes": size, "jam_fetch_available": have_fetch }),
        custom_table: String::new(),
        extra_results: Vec::new(),
    }
    .finish(&env);
}
