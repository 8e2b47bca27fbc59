//! Black-box tests of `jam fetch`, `jam ls` and `jam verify`: the real `jam` binary against a store filled by
//! the real mirror from the Jenkins simulator (a local directory store), plus library-level checks of what
//! resolving "latest" costs.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use assert_cmd::Command;
use futures::{future::BoxFuture, stream::BoxStream};
use jam::{
    archive::catalog::Catalog,
    fetch::{self, Resolved},
    format::layout::{JobPath, Permalink},
    resolve::{BuildSelector, JobArg, Scope},
    store::{Backend, Store},
};
use jenkins_sim::{
    ArtifactSpec, BuildResult, BuildSpec, Fault, ItemKind, ItemSpec, RouteKind, Sim,
};
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, memory::InMemory,
    path::Path as ObjPath,
};
use serde_json::Value;

use crate::harness::{self, TOKEN, USER, config, mirror_once};

/// A mirrored world: the simulator, a local store filled by one mirror cycle, and a config file.
pub(crate) struct World {
    pub(crate) sim: Sim,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) store_dir: PathBuf,
    pub(crate) config: PathBuf,
}

fn items() -> Vec<ItemSpec> {
    let app =
        ItemSpec::freestyle("app")
            .with_build(
                BuildSpec::finished(1, BuildResult::Success)
                    .with_artifact(ArtifactSpec::generated("dist/app.bin", 3000, 1))
                    .with_artifact(ArtifactSpec::generated("dist/lib/core.jar", 500, 2))
                    .with_artifact(ArtifactSpec::generated("other/app.bin", 100, 3))
                    .with_artifact(
                        ArtifactSpec::text("reports/summary.txt", "all good\n")
                            .without_fingerprint(),
                    ),
            )
            .with_build(
                BuildSpec::finished(2, BuildResult::Unstable)
                    .with_artifact(ArtifactSpec::generated("dist/app.bin", 2000, 4)),
            )
            .with_build(
                BuildSpec::finished(3, BuildResult::Failure)
                    .with_artifact(ArtifactSpec::text("log.txt", "boom\n")),
            );
    let svc = ItemSpec::multibranch("svc").with_job(
        ItemSpec::new("feature/x", ItemKind::Pipeline).with_build(
            BuildSpec::finished(1, BuildResult::Success)
                .with_artifact(ArtifactSpec::generated("svc.tgz", 700, 5)),
        ),
    );
    vec![ItemSpec::folder("team").with_job(app), svc]
}

pub(crate) async fn world_with(items: Vec<ItemSpec>) -> World {
    let mut scenario = harness::scenario();
    for i in items {
        scenario = scenario.with_item(i);
    }
    let sim = Sim::start(scenario);
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("mirror");
    let url = store_dir.display().to_string();
    let cfg = config(&sim, &url, "");
    let store = Store::open(&cfg.store).unwrap();
    let summary = mirror_once(&cfg, &store).await;
    assert!(summary.ok(), "{summary:?}");
    let config = dir.path().join("jam.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\nurl = {url:?}\n\n[[jenkins]]\nname = \"ci\"\nurl = {:?}\nuser = {USER:?}\n",
            sim.url()
        ),
    )
    .unwrap();
    World {
        sim,
        dir,
        store_dir,
        config,
    }
}

pub(crate) async fn world() -> World {
    world_with(items()).await
}

const CLEARED: [&str; 12] = [
    "JAM_CONFIG",
    "JAM_STORE",
    "JENKINS_URL",
    "JENKINS_USER",
    "JENKINS_API_TOKEN",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_ENDPOINT_URL",
    "AWS_REGION",
    "AWS_ALLOW_HTTP",
    "RUST_LOG",
    "JAM_LOG",
];

pub(crate) fn bin() -> Command {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin!("jam"));
    for v in CLEARED {
        c.env_remove(v);
    }
    c.env("JAM_LOG", "warn").timeout(Duration::from_secs(60));
    c
}

impl World {
    /// `jam` with the world's config and the token in the environment, run in the temp dir.
    pub(crate) fn jam(&self) -> Command {
        let mut c = bin();
        c.current_dir(self.dir.path())
            .env("JENKINS_API_TOKEN", TOKEN)
            .arg("--config")
            .arg(&self.config);
        c
    }

    fn out(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn object(&self, key: &str) -> PathBuf {
        self.store_dir.join(key)
    }

    fn sha(&self, job: &str, n: u64, path: &str) -> String {
        self.sim.artifact(job, n, path).unwrap().digests().sha256
    }
}

fn json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

pub(crate) fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn file_sha(p: &Path) -> String {
    jam::integrity::sha256_hex(&std::fs::read(p).unwrap())
}

/// Every file below `dir`, relative, sorted.
fn files_under(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, d: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    if dir.exists() {
        walk(dir, dir, &mut out);
    }
    out.sort();
    out
}

fn sorted_paths(v: &Value) -> Vec<String> {
    let mut p: Vec<String> = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["artifact"].as_str().unwrap().to_string())
        .collect();
    p.sort();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_every_build_selector_from_the_mirror() {
    let w = world().await;
    // Default: lastSuccessful, which accepts UNSTABLE (#2).
    let out = w
        .jam()
        .args(["fetch", "team/app", "--json", "-o"])
        .arg(w.out("a"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["build"], 2);
    assert_eq!(v["result"], "UNSTABLE");
    assert_eq!(v["job"], "team/app");
    assert_eq!(v["from"], "mirror");
    assert_eq!(v["files"][0]["artifact"], "dist/app.bin");
    assert_eq!(v["files"][0]["status"], "downloaded");
    assert_eq!(v["files"][0]["size"], 2000);
    let sha = w.sha("team/app", 2, "dist/app.bin");
    assert_eq!(v["files"][0]["sha256"], sha.as_str());
    assert_eq!(file_sha(&w.out("a/dist/app.bin")), sha);
    assert_eq!(files_under(&w.out("a")), ["dist/app.bin"]);

    for (sel, n) in [
        ("lastStable", 1),
        ("lastCompleted", 3),
        ("lastSuccessful", 2),
        ("3", 3),
        ("1", 1),
    ] {
        let out = w
            .jam()
            .args([
                "fetch", "team/app", "--json", "--quiet", "--build", sel, "-o",
            ])
            .arg(w.out(&format!("sel-{sel}")))
            .output()
            .unwrap();
        assert!(out.status.success(), "{sel}: {}", stderr(&out));
        assert_eq!(json(&out)["build"], n, "--build {sel}");
    }
    // Build 1 in full: every artifact at its relative path, bytes verified.
    let got = files_under(&w.out("sel-1"));
    assert_eq!(
        got,
        [
            "dist/app.bin",
            "dist/lib/core.jar",
            "other/app.bin",
            "reports/summary.txt"
        ]
    );
    assert_eq!(
        file_sha(&w.out("sel-1/dist/lib/core.jar")),
        w.sha("team/app", 1, "dist/lib/core.jar")
    );
    assert_eq!(
        std::fs::read_to_string(w.out("sel-1/reports/summary.txt")).unwrap(),
        "all good\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn globs_select_and_a_glob_matching_nothing_lists_the_build() {
    let w = world().await;
    let run = |globs: &[&str], dir: &str| {
        let mut c = w.jam();
        c.args(["fetch", "team/app", "-b", "1", "--json", "-o"])
            .arg(w.out(dir));
        for g in globs {
            c.args(["--artifact", g]);
        }
        c.output().unwrap()
    };
    let out = run(&["dist/*"], "star");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        sorted_paths(&json(&out)),
        ["dist/app.bin"],
        "* does not cross /"
    );
    let out = run(&["dist/**"], "dstar");
    assert_eq!(
        sorted_paths(&json(&out)),
        ["dist/app.bin", "dist/lib/core.jar"],
        "** crosses /"
    );
    let out = run(&["**/*.jar", "reports/*.txt"], "two");
    assert_eq!(
        sorted_paths(&json(&out)),
        ["dist/lib/core.jar", "reports/summary.txt"]
    );

    let out = run(&["*.exe"], "none");
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("'*.exe'"), "{err}");
    for p in ["dist/app.bin", "dist/lib/core.jar", "reports/summary.txt"] {
        assert!(err.contains(p), "the error lists {p}: {err}");
    }
    assert!(!w.out("none").join("dist").exists());

    let out = run(&["dist/[x"], "bad");
    assert_eq!(out.status.code(), Some(2), "bad glob: {}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_fetch_downloads_nothing_unless_forced() {
    let w = world().await;
    let dir = w.out("again");
    let fetch = |extra: &[&str]| {
        let out = w
            .jam()
            .args(["fetch", "team/app", "-b", "1", "--json", "-o"])
            .arg(&dir)
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        json(&out)
    };
    let first = fetch(&[]);
    assert!(
        first["files"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["status"] == "downloaded")
    );
    let target = dir.join("dist/app.bin");
    let mtime = std::fs::metadata(&target).unwrap().modified().unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    let second = fetch(&[]);
    assert!(
        second["files"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["status"] == "present"),
        "{second}"
    );
    assert_eq!(
        std::fs::metadata(&target).unwrap().modified().unwrap(),
        mtime,
        "untouched"
    );
    // A local file with other content is replaced.
    std::fs::write(&target, b"stale").unwrap();
    let third = fetch(&["-a", "dist/app.bin"]);
    assert_eq!(third["files"][0]["status"], "downloaded");
    assert_eq!(file_sha(&target), w.sha("team/app", 1, "dist/app.bin"));
    let forced = fetch(&["--force", "-a", "dist/app.bin"]);
    assert_eq!(forced["files"][0]["status"], "downloaded");
    assert!(
        !files_under(&dir).iter().any(|f| f.contains("jam-part")),
        "no temp files left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdout_flatten_and_usage_errors() {
    let w = world().await;
    let out = w
        .jam()
        .args([
            "fetch",
            "team/app",
            "-b",
            "1",
            "-a",
            "dist/lib/*.jar",
            "--stdout",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        jam::integrity::sha256_hex(&out.stdout),
        w.sha("team/app", 1, "dist/lib/core.jar")
    );

    let out = w
        .jam()
        .args(["fetch", "team/app", "-b", "1", "--stdout"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("exactly one"), "{}", stderr(&out));
    assert!(out.stdout.is_empty());

    // --flatten: two artifacts named app.bin collide.
    let out = w
        .jam()
        .args(["fetch", "team/app", "-b", "1", "--flatten", "-o"])
        .arg(w.out("flat"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("app.bin"), "{}", stderr(&out));
    let out = w
        .jam()
        .args([
            "fetch",
            "team/app",
            "-b",
            "1",
            "--flatten",
            "-a",
            "dist/**",
            "-o",
        ])
        .arg(w.out("flat"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(files_under(&w.out("flat")), ["app.bin", "core.jar"]);

    // Usage and not-found exit codes.
    let code = |args: &[&str]| w.jam().args(args).output().unwrap().status.code();
    assert_eq!(code(&["fetch", "team/app", "--build", "newest"]), Some(2));
    assert_eq!(code(&["fetch", "team/nope"]), Some(3));
    assert_eq!(code(&["fetch", "team/app", "--build", "99"]), Some(3));
    assert_eq!(
        code(&[
            "fetch",
            "team/app",
            "--build",
            "lastUnsuccessful",
            "-o",
            "x"
        ]),
        Some(0)
    );
    assert_eq!(
        code(&["fetch", "svc/feature/x", "--build", "lastFailed"]),
        Some(3)
    );
    assert_eq!(
        code(&["fetch", "team/app", "--store", "ftp://nowhere/x"]),
        Some(2),
        "a bad store URL is a configuration error"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn branch_names_urls_and_no_jenkins_credentials() {
    let w = world().await;
    let sha = w.sha("svc/feature%2Fx", 1, "svc.tgz");
    let url = format!("{}job/svc/job/feature%252Fx/1/", w.sim.url());
    for (i, job) in ["svc/feature/x", "svc/feature%2Fx", url.as_str()]
        .iter()
        .enumerate()
    {
        let out = w
            .jam()
            .args(["fetch", job, "--json", "-o"])
            .arg(w.out(&format!("b{i}")))
            .output()
            .unwrap();
        assert!(out.status.success(), "{job}: {}", stderr(&out));
        let v = json(&out);
        assert_eq!(
            v["items"],
            serde_json::json!(["svc", "feature%2Fx"]),
            "{job}"
        );
        assert_eq!(v["files"][0]["sha256"], sha.as_str());
    }
    // Reading the mirror needs no Jenkins token, and with no Jenkins configured the store's only source is used.
    let out = bin()
        .current_dir(w.dir.path())
        .args(["--store"])
        .arg(&w.store_dir)
        .args(["fetch", "team/app", "-q", "-o"])
        .arg(w.out("notoken"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(w.out("notoken/dist/app.bin").is_file());
    let out = w
        .jam()
        .env_remove("JENKINS_API_TOKEN")
        .args(["fetch", "team/app", "-q", "-o"])
        .arg(w.out("notoken2"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // --from jenkins does need it.
    let out = w
        .jam()
        .env_remove("JENKINS_API_TOKEN")
        .args(["fetch", "team/app", "--from", "jenkins"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

/// What `jam fetch` says when an artifact fails its integrity check, pinned to the letter: which artifact,
/// which check, what was expected and found, what it means and what to do. Exit code 4 each time, and no
/// file is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integrity_failures_are_reported_exactly() {
    let w = world().await;
    let key = "ci/job/team/job/app/1/artifact/dist/app.bin";
    let good = std::fs::read(w.object(key)).unwrap();
    let fetch = |args: &[&str], out: &str| {
        let out_dir = w.out(out);
        let out = w
            .jam()
            .args(["fetch", "team/app", "-b", "1"])
            .args(args)
            .arg("-o")
            .arg(&out_dir)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
        assert!(
            files_under(&out_dir).is_empty(),
            "{:?}",
            files_under(&out_dir)
        );
        stderr(&out)
    };

    // Same size, other bytes.
    let bad = vec![b'x'; good.len()];
    std::fs::write(w.object(key), &bad).unwrap();
    assert_eq!(
        fetch(&["-a", "dist/app.bin"], "sha"),
        format!(
            "error: artifact 'dist/app.bin': SHA-256 {} does not match the manifest's {}; the stored object \
             '{key}' is corrupt (run `jam verify --deep`)\n",
            jam::integrity::sha256_hex(&bad),
            w.sha("team/app", 1, "dist/app.bin")
        )
    );
    // One byte short.
    std::fs::write(w.object(key), &good[1..]).unwrap();
    assert_eq!(
        fetch(&["-a", "dist/app.bin"], "size"),
        format!(
            "error: artifact 'dist/app.bin': the manifest records 3000 bytes but '{key}' holds 2999; run `jam verify`\n"
        )
    );
    // Gone.
    std::fs::remove_file(w.object(key)).unwrap();
    assert_eq!(
        fetch(&["-a", "dist/app.bin"], "gone"),
        format!(
            "error: artifact 'dist/app.bin': the manifest lists '{key}' but the store has no such object; run \
             `jam verify`\n"
        )
    );
    std::fs::write(w.object(key), &good).unwrap();

    // From Jenkins, a byte flipped on the way: the MD5 fingerprint recorded under the artifact's (unique)
    // file name catches it.
    w.sim
        .add_fault(Fault::corrupt_at(100).on(RouteKind::Artifact).times(1))
        .unwrap();
    let info = w.sim.artifact("team/app", 1, "dist/lib/core.jar").unwrap();
    let mut flipped = info.content.to_vec();
    flipped[100] ^= 0xff;
    assert_eq!(
        fetch(&["-a", "dist/lib/core.jar", "--from", "jenkins"], "md5"),
        format!(
            "error: artifact 'dist/lib/core.jar': MD5 {} does not match the Jenkins fingerprint ({}); the download \
             was corrupted\n",
            hex::encode(<md5::Md5 as md5::Digest>::digest(&flipped)),
            info.digests().md5
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_and_deleted_objects() {
    let w = world().await;
    let out = w.jam().args(["verify"]).output().unwrap();
    assert!(
        out.status.success(),
        "clean archive: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("no problems"));

    // Same size, other bytes: fetch refuses, leaves nothing; shallow verify cannot see it, deep does.
    let key = "ci/job/team/job/app/1/artifact/dist/app.bin";
    std::fs::write(w.object(key), vec![b'x'; 3000]).unwrap();
    let out = w
        .jam()
        .args(["fetch", "team/app", "-b", "1", "-o"])
        .arg(w.out("c"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("SHA-256"), "{}", stderr(&out));
    assert!(
        !w.out("c/dist/app.bin").exists(),
        "no file under the final name"
    );
    assert!(
        !files_under(&w.out("c"))
            .iter()
            .any(|f| f.contains("jam-part")),
        "temp file removed: {:?}",
        files_under(&w.out("c"))
    );
    let out = w
        .jam()
        .args([
            "fetch",
            "team/app",
            "-b",
            "1",
            "--stdout",
            "-a",
            "dist/app.bin",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));

    let out = w.jam().args(["verify"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "shallow verify checks sizes only"
    );
    let out = w.jam().args(["verify", "--deep"]).output().unwrap();
    assert_eq!(out.status.code(), Some(4));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(key) && text.contains("checksum"), "{text}");

    let out = w
        .jam()
        .args(["verify", "--deep", "--json", "team/app"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    let v = json(&out);
    assert_eq!(v["jobs"], 1);
    assert_eq!(v["builds"], 3);
    assert_eq!(v["problems"][0]["key"], key);
    assert_eq!(v["problems"][0]["kind"], "checksum");

    // A deleted object and a truncated one.
    let gone = "ci/job/svc/job/feature%252Fx/1/artifact/svc.tgz";
    std::fs::remove_file(w.object(gone)).unwrap();
    let short = "ci/job/team/job/app/2/artifact/dist/app.bin";
    std::fs::write(w.object(short), b"short").unwrap();
    let out = w.jam().args(["verify", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(4));
    let v = json(&out);
    let problems: Vec<(String, String)> = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["key"].as_str().unwrap().to_string(),
                p["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        problems.contains(&(gone.into(), "missing".into())),
        "{problems:?}"
    );
    assert!(
        problems.contains(&(short.into(), "size".into())),
        "{problems:?}"
    );
    let out = w
        .jam()
        .args(["fetch", "svc/feature/x", "-o"])
        .arg(w.out("gone"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(!w.out("gone/svc.tgz").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_names_bad_pointers_index_entries_and_sums() {
    let w = world().await;
    let ptr = "ci/job/team/job/app/lastStableBuild.json";
    let mut p: Value = serde_json::from_slice(&std::fs::read(w.object(ptr)).unwrap()).unwrap();
    p["number"] = 7.into();
    p["manifest"] = "ci/job/team/job/app/7/manifest.json".into();
    std::fs::write(w.object(ptr), serde_json::to_vec(&p).unwrap()).unwrap();
    let out = w.jam().args(["verify"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "pointer problems are not integrity problems"
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(ptr) && text.contains("#7"), "{text}");
    // Fetching through the broken pointer fails cleanly.
    let out = w
        .jam()
        .args(["fetch", "team/app", "-b", "lastStable"])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));

    // An index entry whose manifest vanished, and SHA256SUMS edited.
    std::fs::remove_file(w.object("ci/job/team/job/app/3/manifest.json")).unwrap();
    let sums = "ci/job/team/job/app/2/SHA256SUMS";
    std::fs::write(
        w.object(sums),
        format!("{}  dist/app.bin\n", "0".repeat(64)),
    )
    .unwrap();
    let out = w.jam().args(["verify", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(4));
    let v = json(&out);
    let text = v.to_string();
    assert!(
        text.contains("ci/job/team/job/app/3/manifest.json"),
        "{text}"
    );
    assert!(text.contains(sums), "{text}");
    assert!(
        text.contains("lastCompletedBuild.json"),
        "pointer at #3 now dangles: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ls_jobs_builds_and_artifacts() {
    let w = world().await;
    let out = w.jam().args(["ls"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("JOB"), "{text}");
    assert!(lines[1].starts_with("svc/feature%2Fx "), "{text}");
    assert!(
        lines[2].starts_with("team/app ") && lines[2].contains("FAILURE"),
        "{text}"
    );

    let out = w.jam().args(["ls", "--json"]).output().unwrap();
    let v: Value = json(&out);
    let app = v
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["job"] == "team/app")
        .unwrap();
    assert_eq!(app["latest"], 3);
    assert_eq!(app["builds"], 3);

    let out = w.jam().args(["ls", "team/app"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("BUILD"), "{text}");
    assert!(lines[1].trim_start().starts_with("1  SUCCESS"), "{text}");
    assert!(lines[3].trim_start().starts_with("3  FAILURE"), "{text}");

    let out = w
        .jam()
        .args(["ls", "svc/feature/x", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json(&out)["builds"][0]["number"], 1);

    let out = w
        .jam()
        .args(["ls", "team/app", "-b", "1"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains(&w.sha("team/app", 1, "dist/lib/core.jar")),
        "{text}"
    );
    assert!(text.contains("reports/summary.txt"), "{text}");
    let out = w
        .jam()
        .args(["ls", "team/app", "-b", "lastSuccessful", "--json"])
        .output()
        .unwrap();
    assert_eq!(json(&out)["number"], 2);
    assert_eq!(
        w.jam().args(["ls", "nope"]).output().unwrap().status.code(),
        Some(3)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_from_jenkins_before_the_mirror_has_it() {
    let w = world().await;
    w.sim
        .add_build(
            "team/app",
            BuildSpec::finished(4, BuildResult::Success)
                .with_artifact(ArtifactSpec::generated("dist/app.bin", 40_000, 9))
                .with_artifact(ArtifactSpec::text("notes.txt", "n\n").without_fingerprint()),
        )
        .unwrap();
    // The mirror still says #2.
    let out = w
        .jam()
        .args(["fetch", "team/app", "--json", "-o"])
        .arg(w.out("m"))
        .output()
        .unwrap();
    assert_eq!(json(&out)["build"], 2);
    let out = w
        .jam()
        .args(["fetch", "team/app", "--from", "jenkins", "--json", "-o"])
        .arg(w.out("j"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["build"], 4);
    assert_eq!(v["from"], "jenkins");
    let sha = w.sha("team/app", 4, "dist/app.bin");
    assert_eq!(file_sha(&w.out("j/dist/app.bin")), sha);
    assert_eq!(sorted_paths(&v), ["dist/app.bin", "notes.txt"]);
    let f = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["artifact"] == "dist/app.bin")
        .unwrap();
    assert_eq!(f["sha256"], sha.as_str());
    // A pasted URL with a permalink, and a number.
    let url = format!("{}job/team/job/app/lastStableBuild/", w.sim.url());
    let out = w
        .jam()
        .args(["fetch", &url, "--from", "jenkins", "--json", "-o"])
        .arg(w.out("u"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json(&out)["build"], 4);
    let out = w
        .jam()
        .args([
            "fetch",
            "svc/feature/x",
            "--from",
            "jenkins",
            "-b",
            "1",
            "--json",
            "-o",
        ])
        .arg(w.out("br"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        json(&out)["items"],
        serde_json::json!(["svc", "feature%2Fx"])
    );
    assert_eq!(
        w.jam()
            .args(["fetch", "team/app", "--from", "jenkins", "-b", "77"])
            .output()
            .unwrap()
            .status
            .code(),
        Some(3)
    );
    assert_eq!(
        w.jam()
            .args(["fetch", "team/none", "--from", "jenkins"])
            .output()
            .unwrap()
            .status
            .code(),
        Some(3)
    );

    // A byte flipped on the way: the MD5 fingerprint catches it; nothing is left.
    w.sim
        .add_fault(Fault::corrupt_at(100).on(RouteKind::Artifact).times(1))
        .unwrap();
    let out = w
        .jam()
        .args([
            "fetch", "team/app", "--from", "jenkins", "-a", "dist/*", "-o",
        ])
        .arg(w.out("bad"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("fingerprint"), "{}", stderr(&out));
    assert!(
        files_under(&w.out("bad")).is_empty(),
        "{:?}",
        files_under(&w.out("bad"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_fetch_leaves_no_file() {
    let w = world_with(vec![ItemSpec::freestyle("big").with_build(
        BuildSpec::finished(1, BuildResult::Success).with_artifact(ArtifactSpec::generated(
            "big.bin",
            4 << 20,
            11,
        )),
    )])
    .await;
    // The controller stalls after 1 MiB; the fetch hangs mid-download until it is terminated.
    w.sim
        .add_fault(Fault::stall_after(1 << 20).on(RouteKind::Artifact))
        .unwrap();
    let out_dir = w.out("int");
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin!("jam"))
        .env_remove("JENKINS_URL")
        .env("JENKINS_API_TOKEN", TOKEN)
        .env("JAM_LOG", "warn")
        .arg("--config")
        .arg(&w.config)
        .args(["fetch", "big", "--from", "jenkins", "-o"])
        .arg(&out_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let files = files_under(&out_dir);
        if files.iter().any(|f| f.contains("jam-part"))
            && std::fs::metadata(out_dir.join(&files[0]))
                .map(|m| m.len())
                .unwrap_or(0)
                > 0
        {
            break;
        }
        assert!(Instant::now() < deadline, "the download never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!out_dir.join("big.bin").exists());
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(
        !out_dir.join("big.bin").exists(),
        "no file under the final name"
    );
    assert!(
        files_under(&out_dir).is_empty(),
        "temp file removed: {:?}",
        files_under(&out_dir)
    );
}

// ---------------------------------------------------------------------------------------------------------
// Library level: what resolving "latest" costs.

/// An `ObjectStore` that counts list and get requests and delegates to another.
#[derive(Debug)]
struct Counting {
    inner: Arc<dyn ObjectStore>,
    lists: AtomicUsize,
    gets: AtomicUsize,
}

impl std::fmt::Display for Counting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Counting({})", self.inner)
    }
}

type Res<T> = object_store::Result<T>;

impl ObjectStore for Counting {
    fn put_opts<'a, 'b, 'c>(
        &'a self,
        location: &'b ObjPath,
        payload: PutPayload,
        opts: PutOptions,
    ) -> BoxFuture<'c, Res<PutResult>>
    where
        'a: 'c,
        'b: 'c,
        Self: 'c,
    {
        self.inner.put_opts(location, payload, opts)
    }

    fn put_multipart_opts<'a, 'b, 'c>(
        &'a self,
        location: &'b ObjPath,
        opts: PutMultipartOptions,
    ) -> BoxFuture<'c, Res<Box<dyn MultipartUpload>>>
    where
        'a: 'c,
        'b: 'c,
        Self: 'c,
    {
        self.inner.put_multipart_opts(location, opts)
    }

    fn get_opts<'a, 'b, 'c>(
        &'a self,
        location: &'b ObjPath,
        options: GetOptions,
    ) -> BoxFuture<'c, Res<GetResult>>
    where
        'a: 'c,
        'b: 'c,
        Self: 'c,
    {
        self.gets.fetch_add(1, Ordering::SeqCst);
        self.inner.get_opts(location, options)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Res<ObjPath>>,
    ) -> BoxStream<'static, Res<ObjPath>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&ObjPath>) -> BoxStream<'static, Res<ObjectMeta>> {
        self.lists.fetch_add(1, Ordering::SeqCst);
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&ObjPath>,
        offset: &ObjPath,
    ) -> BoxStream<'static, Res<ObjectMeta>> {
        self.lists.fetch_add(1, Ordering::SeqCst);
        self.inner.list_with_offset(prefix, offset)
    }

    fn list_with_delimiter<'a, 'b, 'c>(
        &'a self,
        prefix: Option<&'b ObjPath>,
    ) -> BoxFuture<'c, Res<ListResult>>
    where
        'a: 'c,
        'b: 'c,
        Self: 'c,
    {
        self.lists.fetch_add(1, Ordering::SeqCst);
        self.inner.list_with_delimiter(prefix)
    }

    fn copy_opts<'a, 'b, 'c, 'd>(
        &'a self,
        from: &'b ObjPath,
        to: &'c ObjPath,
        options: CopyOptions,
    ) -> BoxFuture<'d, Res<()>>
    where
        'a: 'd,
        'b: 'd,
        'c: 'd,
        Self: 'd,
    {
        self.inner.copy_opts(from, to, options)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolving_the_latest_build_reads_a_pointer_and_a_manifest_and_lists_nothing() {
    let mut scenario = harness::scenario();
    for i in items() {
        scenario = scenario.with_item(i);
    }
    let sim = Sim::start(scenario);
    let counting = Arc::new(Counting {
        inner: Arc::new(InMemory::new()),
        lists: AtomicUsize::new(0),
        gets: AtomicUsize::new(0),
    });
    let store = Store::new(counting.clone(), Backend::Memory, "counting".into());
    let cfg = config(&sim, "memory://", "");
    assert!(mirror_once(&cfg, &store).await.ok());
    let catalog = Catalog::new(store.clone());
    let ci = Scope::new(Some("ci".into()), Vec::new());
    for (job, build, n) in [
        (
            "team/app",
            BuildSelector::Link(Permalink::LastSuccessfulBuild),
            2,
        ),
        (
            "team/app",
            BuildSelector::Link(Permalink::LastStableBuild),
            1,
        ),
        ("team/app", BuildSelector::Number(3), 3),
    ] {
        counting.lists.store(0, Ordering::SeqCst);
        counting.gets.store(0, Ordering::SeqCst);
        let r = ci
            .build(&catalog, &JobArg::parse(job).unwrap(), build)
            .await
            .unwrap();
        assert_eq!(r.manifest.number, n);
        assert_eq!(
            counting.lists.load(Ordering::SeqCst),
            0,
            "{build}: no list request"
        );
        let reads = if matches!(build, BuildSelector::Number(_)) {
            1
        } else {
            2
        };
        assert_eq!(
            counting.gets.load(Ordering::SeqCst),
            reads,
            "{build}: pointer + manifest"
        );
    }
    // A branch typed by its real name costs a level-by-level lookup, which is where lists happen.
    let r = ci
        .build(
            &catalog,
            &JobArg::parse("svc/feature/x").unwrap(),
            BuildSelector::default(),
        )
        .await
        .unwrap();
    assert_eq!(r.job, JobPath::new(["svc", "feature%2Fx"]));
    let jobs = catalog.jobs("ci").await.unwrap();
    let names: Vec<String> = jobs.iter().map(|j| j.job.full_name()).collect();
    assert_eq!(names, ["svc/feature%2Fx", "team/app"]);
    assert_eq!(catalog.sources().await.unwrap(), ["ci"]);
}

// ---------------------------------------------------------------------------------------------------------
// The same commands against SeaweedFS (tests/run.sh starts it; skipped elsewhere, a failure under CI=true).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_ls_verify_against_seaweedfs() {
    use crate::support::{S3Kind, s3_target};
    let Some(target) = s3_target(S3Kind::Seaweed) else {
        return;
    };
    let mut scenario = harness::scenario();
    for i in items() {
        scenario = scenario.with_item(i);
    }
    let sim = Sim::start(scenario);
    let url = format!("s3://{}/{}", target.env.bucket, target.prefix);
    let cfg = config(&sim, &url, "");
    let summary = mirror_once(&cfg, &target.store).await;
    assert!(summary.ok(), "{summary:?}");
    let dir = tempfile::tempdir().unwrap();
    let config_file = dir.path().join("jam.toml");
    std::fs::write(
        &config_file,
        format!(
            "[[jenkins]]\nname = \"ci\"\nurl = {:?}\nuser = {USER:?}\n",
            sim.url()
        ),
    )
    .unwrap();
    let jam = || {
        let mut c = bin();
        c.current_dir(dir.path())
            .env("JENKINS_API_TOKEN", TOKEN)
            .env("JAM_STORE", &url)
            .env("AWS_ENDPOINT_URL", &target.env.endpoint)
            .env("AWS_ACCESS_KEY_ID", &target.env.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &target.env.secret_key)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ALLOW_HTTP", "true")
            .arg("--config")
            .arg(&config_file);
        c
    };
    let sha = |job: &str, n: u64, p: &str| sim.artifact(job, n, p).unwrap().digests().sha256;

    let out = jam()
        .args(["fetch", "team/app", "-b", "1", "--json", "-o", "out"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(sorted_paths(&json(&out)).len(), 4);
    assert_eq!(
        file_sha(&dir.path().join("out/dist/lib/core.jar")),
        sha("team/app", 1, "dist/lib/core.jar")
    );
    let out = jam()
        .args(["fetch", "team/app", "-b", "1", "--json", "-o", "out"])
        .output()
        .unwrap();
    assert!(
        json(&out)["files"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["status"] == "present")
    );
    let out = jam()
        .args(["fetch", "svc/feature/x", "--json", "-o", "br"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        json(&out)["files"][0]["sha256"],
        sha("svc/feature%2Fx", 1, "svc.tgz").as_str()
    );

    let out = jam().args(["ls", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json(&out).as_array().unwrap().len(), 2);
    let out = jam().args(["verify", "--deep"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // Corrupt one object (same size) and delete another.
    let bad = "ci/job/team/job/app/2/artifact/dist/app.bin";
    target
        .store
        .put(&jam::format::layout::path(bad), vec![b'z'; 2000].into())
        .await
        .unwrap();
    let gone = "ci/job/team/job/app/1/artifact/reports/summary.txt";
    target
        .store
        .delete(&jam::format::layout::path(gone))
        .await
        .unwrap();
    let out = jam()
        .args(["fetch", "team/app", "-o", "c"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(files_under(&dir.path().join("c")).is_empty());
    let out = jam().args(["verify", "--deep", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(4));
    let text = json(&out)["problems"].to_string();
    assert!(text.contains(bad) && text.contains("checksum"), "{text}");
    assert!(text.contains(gone) && text.contains("missing"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_objects_are_read_in_parallel_ranges_and_still_verified() {
    let w = world().await;
    let store = Store::open(&jam::config::StoreConfig::new(
        w.store_dir.to_str().unwrap(),
    ))
    .unwrap();
    let catalog = Catalog::new(store.clone());
    let fetcher = fetch::Fetcher::from_store(store, 700).with_ranged_reads(fetch::RangedReads {
        min_size: 1000,
        part_size: 700,
        parallel: 3,
    });
    let build = Scope::new(Some("ci".into()), Vec::new())
        .build(
            &catalog,
            &JobArg::parse("team/app").unwrap(),
            BuildSelector::Number(1),
        )
        .await
        .unwrap();
    let mut r = Resolved::from_mirror(&build);
    r.select(&["dist/**".into()]).unwrap();
    let opts = fetch::DirOptions {
        dir: w.out("ranged"),
        flatten: false,
        force: false,
        parallel: 2,
    };
    let got = fetcher.fetch_to_dir(&r, &opts).await.unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(
        file_sha(&w.out("ranged/dist/app.bin")),
        w.sha("team/app", 1, "dist/app.bin")
    );
    // A corrupt byte in the middle range is caught.
    let key = w.object("ci/job/team/job/app/1/artifact/dist/app.bin");
    let mut bytes = std::fs::read(&key).unwrap();
    bytes[1500] ^= 0xff;
    std::fs::write(&key, bytes).unwrap();
    let opts = fetch::DirOptions {
        force: true,
        ..opts
    };
    let err = fetcher.fetch_to_dir(&r, &opts).await.unwrap_err();
    assert!(matches!(err, fetch::FetchError::Integrity(_)), "{err}");
    assert_eq!(jam::Error::from(err).exit_code(), 4);
}

/// Logs written to a pipe (a file, journald) carry no ANSI colour codes, even with colours not disabled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_to_a_pipe_have_no_colour_codes() {
    let scenario = harness::scenario().with_item(
        ItemSpec::freestyle("app").with_build(
            BuildSpec::finished(1, BuildResult::Success)
                .with_artifact(ArtifactSpec::generated("app.bin", 1000, 1)),
        ),
    );
    let sim = Sim::start(scenario);
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .current_dir(dir.path())
        .env_remove("NO_COLOR")
        .env("JAM_LOG", "info")
        .env("JAM_STORE", dir.path().join("mirror"))
        .env("JENKINS_URL", sim.url())
        .env("JENKINS_USER", USER)
        .env("JENKINS_API_TOKEN", TOKEN)
        .args(["mirror", "--once"])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("mirrored build") && err.contains("INFO"),
        "the run logs at info: {err}"
    );
    assert!(
        !err.contains("\x1b["),
        "colour codes in piped logs: {err:?}"
    );
}
