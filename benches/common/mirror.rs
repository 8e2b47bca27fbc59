//! Mirror workloads (big, typical, small-files): the same generated artifacts served by the simulator,
//! written once to disk for the tools that upload local files, and moved by jam and by every peer in turn
//! (round-robin, so machine noise spreads over all of them), each run into its own prefix of one bucket
//! that is emptied (and vacuumed) after it. jam runs twice per round, with the fingerprint check (MD5) and
//! without it (SHA-256 only); `sha256sum` and `md5sum` over the same files on disk give the CPU cost of
//! each digest for the pipeline of peers that does the work jam does (curl + the digests + s5cmd).

use std::{
    fmt::Write as _,
    fs,
    io::{BufWriter, Write as _},
    path::Path,
    process::Command,
};

use jenkins_sim::{ArtifactSpec, BuildResult, BuildSpec, ItemSpec, Scenario};
use serde_json::json;

use super::{
    BUCKET, Env, Opts, Report, Run, Seaweed, Servers, SimProc, StaticServer, TOKEN, Target,
    ToolResult, USER,
};

/// What a tool of a mirror workload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Jam {
        fingerprints: bool,
    },
    CurlSim,
    CurlWeb,
    S5cmd,
    /// `s5cmd --numworkers N cp`: s5cmd tuned for many small files (small-files only).
    S5cmdWorkers(u32),
    /// `sha256sum` or `md5sum` over the files: the single-core speed of a digest jam computes.
    Hash(&'static str),
    Aws,
    Rclone,
    Script,
}

impl Kind {
    /// Whether it writes into the bucket (its prefix is emptied after each run).
    fn uploads(self) -> bool {
        !matches!(self, Kind::CurlSim | Kind::CurlWeb | Kind::Hash(_))
    }
}

/// One generated artifact.
#[derive(Debug, Clone)]
pub struct Art {
    /// Relative path under the build's archive.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Generator seed (distinct per artifact, so fingerprints differ).
    pub seed: u64,
}

/// A mirror workload: builds of the job `bench`, each a list of artifacts.
#[derive(Debug, Clone)]
pub struct MirrorSpec {
    /// Name (`big`, `typical`, `small-files`).
    pub name: String,
    /// The shape, in words.
    pub description: String,
    /// Build `i + 1`'s artifacts.
    pub builds: Vec<Vec<Art>>,
    /// How many artifacts the curl | aws script moves (it starts two processes per artifact, so on large
    /// workloads it runs over a prefix of the artifacts, whole builds first, and its rate stands for all).
    pub script_artifacts: usize,
}

impl MirrorSpec {
    fn bytes(&self) -> u64 {
        self.builds.iter().flatten().map(|a| a.size).sum()
    }

    fn artifacts(&self) -> u64 {
        self.builds.iter().map(|b| b.len() as u64).sum()
    }
}

/// Builds of the job `bench` as a simulator scenario.
fn scenario(spec: &MirrorSpec) -> Scenario {
    let mut job = ItemSpec::freestyle("bench");
    for (i, arts) in spec.builds.iter().enumerate() {
        let mut b = BuildSpec::finished(i as u64 + 1, BuildResult::Success);
        for a in arts {
            b = b.with_artifact(ArtifactSpec::generated(&a.path, a.size, a.seed));
        }
        job = job.with_build(b);
    }
    Scenario::default().with_user(USER, TOKEN).with_item(job)
}

/// Writes every artifact to `dir/<build>/<path>`, byte for byte what the simulator serves.
fn write_files(spec: &MirrorSpec, dir: &Path) {
    for (i, arts) in spec.builds.iter().enumerate() {
        for a in arts {
            let p = dir.join((i + 1).to_string()).join(&a.path);
            fs::create_dir_all(p.parent().unwrap()).expect("mkdir");
            let mut w = BufWriter::with_capacity(1 << 20, fs::File::create(&p).expect("create"));
            std::io::copy(&mut jenkins_sim::artifact_bytes(a.seed, a.size), &mut w).expect("write");
            w.flush().expect("flush");
        }
    }
}

/// `(build, path)` of every artifact, builds in order.
fn all(spec: &MirrorSpec) -> Vec<(usize, &Art)> {
    spec.builds
        .iter()
        .enumerate()
        .flat_map(|(i, b)| b.iter().map(move |a| (i + 1, a)))
        .collect()
}

/// A curl config file: one `url`/`output` pair per artifact.
fn curl_list(urls: &[String], file: &Path) {
    let mut s = String::new();
    for u in urls {
        let _ = writeln!(s, "url = \"{u}\"\noutput = \"/dev/null\"");
    }
    fs::write(file, s).expect("write curl list");
}

/// Runs one mirror workload and reports it.
pub fn run(env: &Env, opts: &Opts, spec: &MirrorSpec) -> Report {
    let tmp = env.tempdir(&spec.name);
    let dir = tmp.path();
    let bytes = spec.bytes();
    let count = spec.artifacts();
    eprintln!(
        "bench {}: {} artifacts, {:.2} GiB; writing them to disk once for the file-based peers",
        spec.name,
        count,
        bytes as f64 / (1u64 << 30) as f64
    );
    let files = dir.join("files");
    write_files(spec, &files);
    let s3 = Seaweed::start(env, &dir.join("seaweedfs"));
    let sim = SimProc::start(env, &scenario(spec), dir);
    // The simulator hashes fingerprinted content lazily, on the first request that needs it: pay that now.
    for n in 1..=spec.builds.len() {
        sim.get(&format!(
            "job/bench/{n}/api/json?tree=fingerprint[hash,fileName]"
        ));
    }
    let web = StaticServer::start(&files, &dir.join("http.server.log"));
    let servers = Servers {
        env,
        s3: Some(&s3),
        sim: &sim,
    };

    let arts = all(spec);
    let sim_urls: Vec<String> = arts
        .iter()
        .map(|(n, a)| format!("{}job/bench/{n}/artifact/{}", sim.url, a.path))
        .collect();
    let web_urls: Vec<String> = arts
        .iter()
        .map(|(n, a)| format!("{}{n}/{}", web.url, a.path))
        .collect();
    curl_list(&sim_urls, &dir.join("sim.curl"));
    curl_list(&web_urls, &dir.join("web.curl"));
    let script_n = spec.script_artifacts.min(arts.len());
    let script_bytes: u64 = arts[..script_n].iter().map(|(_, a)| a.size).sum();
    let mut list = String::new();
    for ((n, a), url) in arts[..script_n].iter().zip(&sim_urls) {
        let _ = writeln!(list, "{url} {n}/{}", a.path);
    }
    fs::write(dir.join("script.list"), list).expect("write script list");
    fs::write(
        dir.join("script.sh"),
        format!(
            "set -euo pipefail\nwhile read -r url key; do\n  curl -sSf -u \"$JU:$JT\" \"$url\" | \"{}\" s3 cp - \"s3://{BUCKET}/$PREFIX/$key\" --endpoint-url \"$AWS_ENDPOINT_URL\" --only-show-errors\ndone < \"$1\"\n",
            env.aws.display()
        ),
    )
    .expect("write script");

    let parallel = if count > 1 {
        " --parallel --parallel-max 8"
    } else {
        ""
    };
    let mut tools: Vec<(Kind, ToolResult)> = vec![
        (
            Kind::Jam { fingerprints: true },
            ToolResult::new(
                "jam mirror --once",
                "jam --log-format json mirror --once (default settings: fingerprints checked)",
                bytes,
                count,
            ),
        ),
        (
            Kind::Jam {
                fingerprints: false,
            },
            ToolResult::new(
                "jam mirror --once (fingerprints off)",
                "the same with verify_fingerprints = false (SHA-256 only)",
                bytes,
                count,
            ),
        ),
        (
            Kind::CurlSim,
            ToolResult::new(
                "curl ← simulator (source bound)",
                &format!("curl -u user:token{parallel} -K urls (output /dev/null)"),
                bytes,
                count,
            ),
        ),
        (
            Kind::CurlWeb,
            ToolResult::new(
                "curl ← http.server (static files)",
                &format!("python3 -m http.server; curl{parallel} -K urls (output /dev/null)"),
                bytes,
                count,
            ),
        ),
        (
            Kind::S5cmd,
            ToolResult::new(
                "s5cmd cp (sink bound)",
                "s5cmd cp 'files/*' s3://bucket/prefix/",
                bytes,
                count,
            ),
        ),
        (
            Kind::Hash("sha256sum"),
            ToolResult::new(
                "sha256sum (the same bytes on disk)",
                "find files -type f | xargs sha256sum",
                bytes,
                count,
            ),
        ),
        (
            Kind::Hash("md5sum"),
            ToolResult::new(
                "md5sum (the same bytes on disk)",
                "find files -type f | xargs md5sum",
                bytes,
                count,
            ),
        ),
        (
            Kind::Aws,
            ToolResult::new(
                "aws s3 cp --recursive",
                "aws s3 cp --recursive files s3://bucket/prefix/",
                bytes,
                count,
            ),
        ),
        (
            Kind::Rclone,
            ToolResult::new(
                "rclone copy",
                "rclone copy files sw:bucket/prefix",
                bytes,
                count,
            ),
        ),
        (
            Kind::Script,
            ToolResult::new(
                "curl | aws s3 cp - (script)",
                "for each artifact: curl -u user:token URL | aws s3 cp - s3://bucket/prefix/key",
                script_bytes,
                script_n as u64,
            ),
        ),
    ];
    if spec.name == "small-files" {
        tools.push((
            Kind::S5cmdWorkers(32),
            ToolResult::new(
                "s5cmd --numworkers 32 cp",
                "s5cmd --numworkers 32 cp 'files/*' s3://bucket/prefix/",
                bytes,
                count,
            ),
        ));
    }
    let script_runs = if opts.quick { 1 } else { 2 };
    for r in 0..opts.runs {
        for (i, (kind, tool)) in tools.iter_mut().enumerate() {
            if *kind == Kind::Script && r >= script_runs {
                continue;
            }
            let prefix = format!("t{i}-r{r}");
            let log = dir.join(format!("{prefix}.log"));
            eprintln!(
                "bench {}: run {}/{}: {}",
                spec.name,
                r + 1,
                opts.runs,
                tool.tool
            );
            let run: Run = match *kind {
                Kind::Jam { fingerprints } => {
                    let mut c = super::jam_command(env, opts, r == 0 && fingerprints, &spec.name);
                    s3.s3_env(&mut c);
                    c.env("JAM_STORE", format!("s3://{BUCKET}/{prefix}"));
                    super::mirror_once(&mut c, &sim, dir, fingerprints);
                    let run = servers.measure(&mut c, &log, false);
                    if r == 0 {
                        let keys = s3.list(&prefix);
                        let artifacts = keys.iter().filter(|k| k.contains("/artifact/")).count();
                        let manifests = keys
                            .iter()
                            .filter(|k| k.ends_with("/manifest.json"))
                            .count();
                        assert_eq!(artifacts as u64, count, "jam stored every artifact");
                        assert_eq!(manifests, spec.builds.len(), "jam committed every build");
                    }
                    run
                }
                Kind::CurlSim | Kind::CurlWeb => {
                    let mut c = Command::new("curl");
                    c.args(["-sS", "--fail", "-g"]);
                    if count > 1 {
                        c.args(["--parallel", "--parallel-max", "8"]);
                    }
                    if *kind == Kind::CurlSim {
                        c.args(["-u", &format!("{USER}:{TOKEN}"), "-K"])
                            .arg(dir.join("sim.curl"));
                    } else {
                        c.arg("-K").arg(dir.join("web.curl"));
                    }
                    servers.measure(&mut c, &log, false)
                }
                Kind::S5cmd | Kind::S5cmdWorkers(_) => {
                    let mut c = s3.s5cmd();
                    if let Kind::S5cmdWorkers(n) = *kind {
                        c.args(["--numworkers", &n.to_string()]);
                    }
                    c.arg("cp")
                        .arg(format!("{}/*", files.display()))
                        .arg(format!("s3://{BUCKET}/{prefix}/"));
                    servers.measure(&mut c, &log, false)
                }
                Kind::Hash(tool) => {
                    let mut c = Command::new("bash");
                    c.arg("-c").arg(format!(
                        "set -euo pipefail; find '{}' -type f -print0 | xargs -0 {tool} > /dev/null",
                        files.display()
                    ));
                    servers.measure(&mut c, &log, true)
                }
                Kind::Aws => {
                    let mut c = s3.aws();
                    c.args(["s3", "cp", "--recursive", "--only-show-errors"])
                        .arg(&files)
                        .arg(format!("s3://{BUCKET}/{prefix}/"));
                    servers.measure(&mut c, &log, true)
                }
                Kind::Rclone => {
                    let mut c = Command::new(&env.rclone);
                    s3.s3_env(&mut c);
                    c.arg("copy")
                        .arg(&files)
                        .arg(format!("sw:{BUCKET}/{prefix}"));
                    servers.measure(&mut c, &log, false)
                }
                Kind::Script => {
                    let mut c = Command::new("bash");
                    s3.s3_env(&mut c);
                    c.env("JU", USER)
                        .env("JT", TOKEN)
                        .env("PREFIX", &prefix)
                        .arg(dir.join("script.sh"))
                        .arg(dir.join("script.list"));
                    servers.measure(&mut c, &log, true)
                }
            };
            eprintln!(
                "    {:.2}s, {:.0} MB/s, CPU {:.2}s, peak RSS {:.0} MiB, S3 server CPU {:.2}s, {} Jenkins requests",
                run.wall_s,
                tool.bytes as f64 / 1e6 / run.wall_s,
                run.cpu_s,
                run.peak_rss_mib,
                run.s3_cpu_s,
                run.requests
            );
            tool.runs.push(run);
            if kind.uploads() {
                s3.clear(&prefix);
            }
        }
    }
    // What one run asks of Jenkins and of the store, per artifact and per build (counted, not timed).
    let census = (spec.name == "small-files").then(|| {
        eprintln!(
            "bench {}: counting the requests of one more jam run",
            spec.name
        );
        let c = super::census::count(&s3, &sim, "census", "");
        s3.clear("census");
        c
    });
    drop(web);
    drop(sim);
    drop(s3);
    drop(tmp);
    let mut report = targets_and_notes(
        spec,
        opts,
        tools.into_iter().map(|(_, t)| t).collect(),
        script_n,
        arts.len(),
    );
    if let Some(c) = census {
        report
            .notes
            .push(c.markdown(count, spec.builds.len() as u64));
        report.extra["requests_of_one_run"] = c.json();
    }
    report
}

fn targets_and_notes(
    spec: &MirrorSpec,
    opts: &Opts,
    tools: Vec<ToolResult>,
    script_n: usize,
    total: usize,
) -> Report {
    let [
        jam,
        jam_sha,
        source,
        _,
        sink,
        sha256sum,
        md5sum,
        _,
        _,
        script,
    ] = &tools[..10]
    else {
        unreachable!("the tools of a mirror workload")
    };
    let mut targets = Vec::new();
    let mut notes = Vec::new();
    let bound = source.mb_per_s().min(sink.mb_per_s());
    if spec.name != "small-files" {
        for (name, j) in [("jam", jam), ("jam (fingerprints off)", jam_sha)] {
            targets.push(Target::at_least(
                &format!("{name} MB/s ÷ slower of source and sink bounds"),
                j.mb_per_s() / bound,
                0.8,
            ));
        }
    } else {
        targets.push(Target::at_least(
            "jam artifacts/s ÷ curl | aws script",
            jam.artifacts_per_s() / script.artifacts_per_s(),
            5.0,
        ));
        // s5cmd at its best here: the default (256 workers) or tuned for small files, whichever is faster.
        let best = tools[10..]
            .iter()
            .chain([sink])
            .map(ToolResult::artifacts_per_s)
            .fold(0.0, f64::max);
        targets.push(Target::at_least(
            "jam artifacts/s ÷ s5cmd cp tuned (the faster of default and --numworkers 32)",
            jam.artifacts_per_s() / best,
            0.95,
        ));
    }
    if spec.name != "small-files" {
        targets.push(Target::at_most(
            "jam peak RSS MiB (default settings)",
            jam.peak_rss_mib(),
            64.0,
        ));
    }
    let gib = |t: &ToolResult| t.cpu_s_per_gib();
    targets.push(Target::at_most(
        "jam CPU s/GiB ÷ (curl download + s5cmd upload) CPU s/GiB",
        gib(jam) / (gib(source) + gib(sink)).max(1e-9),
        1.0,
    ));
    targets.push(Target::at_most(
        "jam CPU s/GiB ÷ (curl + sha256sum + md5sum + s5cmd) CPU s/GiB",
        gib(jam) / (gib(source) + gib(sha256sum) + gib(md5sum) + gib(sink)).max(1e-9),
        0.8,
    ));
    targets.push(Target::at_most(
        "jam (fingerprints off) CPU s/GiB ÷ (curl + sha256sum + s5cmd) CPU s/GiB",
        gib(jam_sha) / (gib(source) + gib(sha256sum) + gib(sink)).max(1e-9),
        0.8,
    ));
    if source.mb_per_s() < sink.mb_per_s() {
        notes.push(format!(
            "The simulator ({:.0} MB/s to curl) is slower than the S3 server's ingest ({:.0} MB/s from s5cmd): here the source bounds jam.",
            source.mb_per_s(),
            sink.mb_per_s()
        ));
    } else {
        notes.push(format!(
            "The S3 server's ingest ({:.0} MB/s from s5cmd) is slower than the simulator ({:.0} MB/s to curl): here the sink bounds jam.",
            sink.mb_per_s(),
            source.mb_per_s()
        ));
    }
    if script_n < total {
        notes.push(format!(
            "The curl | aws script ran over the first {script_n} of {total} artifacts (two processes per artifact); its rates stand for the whole workload."
        ));
    }
    notes.push(
        "CPU s is user+sys of the tool's whole process tree; the S3 server's and the simulator's CPU are shown beside it (on 2 cores they compete with the tool)."
            .into(),
    );
    let extra = json!({
        "bytes": spec.bytes(),
        "artifacts": spec.artifacts(),
        "builds": spec.builds.len(),
        "source_bound_mb_per_s": super::round3(source.mb_per_s()),
        "sink_bound_mb_per_s": super::round3(sink.mb_per_s()),
    });
    Report {
        workload: spec.name.clone(),
        description: spec.description.clone(),
        opts: opts.clone(),
        tools,
        targets,
        notes,
        extra,
        custom_table: String::new(),
        extra_results: Vec::new(),
    }
}
