//! Upgrading: a store that a newer jam wrote (its documents record a newer store format) is refused by every
//! command with an error that says to upgrade jam (exit 2), and the worker writes nothing over it. The
//! version this binary reports is the crate's and the commit it was built from; CHANGELOG.md and the Debian
//! changelog have an entry for it.

use std::path::Path;

use assert_cmd::Command;
use jam::{
    format::layout::{self, FORMAT_VERSION, JobPath, Layout, Permalink},
    store::Store,
};
use jenkins_sim::{ArtifactSpec, BuildResult, BuildSpec, ItemSpec, Sim};
use serde_json::Value;

use crate::harness::{self, Target, jam_mirror, mirror_once};

fn build(n: u64) -> BuildSpec {
    BuildSpec::finished(n, BuildResult::Success)
        .with_artifact(ArtifactSpec::sized("dist/app.bin", 10_000))
}

/// Rewrites the document at `key` as a newer jam would: a newer format and a field this jam does not know.
async fn make_newer(store: &Store, key: &str) -> Vec<u8> {
    let path = layout::path(key);
    let (bytes, _) = store.get(&path).await.unwrap().expect("document exists");
    let mut doc: Value = serde_json::from_slice(&bytes).unwrap();
    doc["format"] = (FORMAT_VERSION + 1).into();
    doc["written_by_a_newer_jam"] = true.into();
    let bytes = serde_json::to_vec(&doc).unwrap();
    store.put(&path, bytes.clone().into()).await.unwrap();
    bytes
}

async fn read(store: &Store, key: &str) -> Option<Vec<u8>> {
    store
        .get(&layout::path(key))
        .await
        .unwrap()
        .map(|(b, _)| b.to_vec())
}

fn jam(target: &Target, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin!("jam"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(std::env::temp_dir())
        .args(args);
    for (k, v) in &target.env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn assert_refused(what: &str, out: &std::process::Output, key: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{what}: exit code; stderr:\n{stderr}"
    );
    let newer = FORMAT_VERSION + 1;
    for want in [
        key.to_string(),
        format!("store format {newer}, newer than format {FORMAT_VERSION}"),
        "upgrade jam".to_string(),
    ] {
        assert!(
            stderr.contains(&want),
            "{what}: stderr names {want:?}:\n{stderr}"
        );
    }
}

/// `jam ls`, `jam fetch` and `jam mirror` refuse a store whose index and pointer a newer jam wrote; the
/// worker stops before it writes anything, and the newer documents are left byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_refuses_a_newer_store_format() {
    let sim =
        Sim::start(harness::scenario().with_item(ItemSpec::freestyle("app").with_build(build(1))));
    let target = Target::local();
    let out = jam_mirror(&sim, &target, &["--once"], &[])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let source = jam::config::default_source_name(&url::Url::parse(&sim.url()).unwrap());
    let layout = Layout::new(source);
    let job = JobPath::new(["app"]);
    let index_key = layout.index_key(&job);
    let pointer_key = layout.pointer_key(&job, Permalink::LastSuccessfulBuild);
    let index = make_newer(&target.store, &index_key).await;
    let pointer = make_newer(&target.store, &pointer_key).await;

    assert_refused("jam ls JOB", &jam(&target, &["ls", "app"]), &index_key);
    let dir = tempfile::tempdir().unwrap();
    let out = jam(
        &target,
        &["fetch", "app", "-o", &dir.path().display().to_string()],
    );
    assert_refused("jam fetch", &out, &pointer_key);
    assert!(
        !dir.path().join("dist/app.bin").exists(),
        "fetch wrote nothing"
    );

    sim.add_build("app", build(2)).unwrap();
    let out = jam_mirror(&sim, &target, &["--once"], &[])
        .output()
        .unwrap();
    assert_refused("jam mirror --once", &out, &index_key);
    assert_eq!(read(&target.store, &index_key).await.unwrap(), index);
    assert_eq!(read(&target.store, &pointer_key).await.unwrap(), pointer);
    assert!(
        read(&target.store, &layout.manifest_key(&job, 2))
            .await
            .is_none(),
        "the refusing worker mirrored nothing"
    );
}

/// A worker that meets a newer document only when it moves a pointer (the job's index is still in its own
/// format) stops there: its run reports the refusal, and the newer pointer is not replaced.
#[tokio::test]
async fn the_worker_stops_at_a_newer_pointer_and_leaves_it() {
    let sim =
        Sim::start(harness::scenario().with_item(ItemSpec::freestyle("app").with_build(build(1))));
    let target = Target::local();
    let (cfg, store) = (target.config(&sim, ""), target.store.clone());
    assert!(mirror_once(&cfg, &store).await.ok());
    let job = JobPath::new(["app"]);
    let key = harness::layout().pointer_key(&job, Permalink::LastSuccessfulBuild);
    let pointer = make_newer(&store, &key).await;

    sim.add_build("app", build(2)).unwrap();
    let summary = mirror_once(&cfg, &store).await;
    let refused = summary.refused.clone().expect("the run was refused");
    assert!(refused.is_newer_format(), "{refused}");
    assert!(refused.to_string().contains(&key), "{refused}");
    assert!(!summary.ok());
    assert_eq!(
        read(&store, &key).await.unwrap(),
        pointer,
        "the newer pointer is left"
    );
}

/// `jam --version` is the crate's version and the commit it was built from (`unknown` outside a git
/// checkout), for every subcommand too.
#[test]
fn version_names_the_commit() {
    let commit = option_env!("JAM_BUILD_COMMIT")
        .map(str::to_string)
        .or_else(|| {
            let root = env!("CARGO_MANIFEST_DIR");
            let out = std::process::Command::new("git")
                .args(["-C", root, "rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let version = format!("{} (commit {commit})\n", env!("CARGO_PKG_VERSION"));
    for (args, name) in [
        (&["--version"][..], "jam"),
        (&["mirror", "--version"], "jam-mirror"),
    ] {
        let out = Command::new(assert_cmd::cargo::cargo_bin!("jam"))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success());
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("{name} {version}"),
            "jam {args:?}"
        );
    }
}

/// CHANGELOG.md (Keep a Changelog) has an Unreleased section and one for this version, and the Debian
/// changelog's newest entry packages this version.
#[test]
fn changelogs_name_this_version() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let version = env!("CARGO_PKG_VERSION");
    let changelog = std::fs::read_to_string(root.join("CHANGELOG.md")).unwrap();
    let headings: Vec<&str> = changelog.lines().filter(|l| l.starts_with("## ")).collect();
    assert_eq!(headings.first(), Some(&"## [Unreleased]"), "{headings:?}");
    assert!(
        headings
            .iter()
            .any(|h| h.starts_with(&format!("## [{version}] - "))),
        "CHANGELOG.md has a section for {version}: {headings:?}"
    );
    let debian = std::fs::read_to_string(root.join("packaging/debian/changelog")).unwrap();
    let first = debian.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(&format!("jam ({version}-")),
        "packaging/debian/changelog's newest entry is for {version}: {first}"
    );
}
