//! The `jam mirror` binary as a process: killed with SIGKILL at random points and restarted it still ends
//! with a complete, correct mirror; a 2 GiB artifact streams through in bounded memory; SIGTERM stops it
//! cleanly.

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use jam::{format::layout::JobPath, store::Store};
use jenkins_sim::{ArtifactSpec, BuildResult, BuildSpec, ItemSpec, Sim};
use rand::{Rng, SeedableRng};

use crate::{
    harness::{self, Target, jam_mirror},
    support,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_points_then_restart_leaves_a_complete_mirror_local() {
    sigkill_rounds(Target::local(), 8).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_points_then_restart_leaves_a_complete_mirror_seaweedfs() {
    let Some(target) = Target::seaweed() else {
        return;
    };
    sigkill_rounds(target, 20).await;
}

/// Each round adds a build (so there is always work in flight), starts `jam mirror --once`, and kills it
/// with SIGKILL after a seeded random delay; after every round each committed build must be complete and
/// correct. A last run without a kill must leave every build mirrored, and no multipart upload open.
async fn sigkill_rounds(target: Target, rounds: u64) {
    let builds = rounds + 2;
    let build = |n: u64| {
        BuildSpec::finished(n, BuildResult::Success)
            .with_artifact(ArtifactSpec::sized("big.bin", 24 << 20))
            .with_artifact(ArtifactSpec::sized("small.txt", 1000))
    };
    let sim = Sim::start(
        harness::scenario().with_item(
            ItemSpec::freestyle("app")
                .with_build(build(1))
                .with_build(build(2)),
        ),
    );
    let source = jam::config::default_source_name(&url::Url::parse(&sim.url()).unwrap());
    let layout = jam::format::layout::Layout::new(source.clone());
    let job = JobPath::new(["app"]);
    let mut rng = rand::rngs::StdRng::seed_from_u64(20261127);
    for round in 0..rounds {
        sim.add_build("app", build(round + 3)).unwrap();
        let mut child = jam_mirror(&sim, &target, &["--once"], &[]).spawn().unwrap();
        let delay = Duration::from_millis(rng.random_range(20..700));
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let done = assert_only_complete_builds_in(&target.store, &sim, &layout, &job, builds).await;
        eprintln!("round {round}: killed after {delay:?}, {done} builds committed");
    }
    let out = jam_mirror(&sim, &target, &["--once"], &[])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "final run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        assert_only_complete_builds_in(&target.store, &sim, &layout, &job, builds).await,
        builds as usize
    );
    let ix = index_in(&target.store, &layout, &job).await;
    assert_eq!(ix.builds.len(), builds as usize);
    if let Some((env, prefix)) = &target.s3
        && let Some(pending) = support::pending_multipart_uploads(env, &format!("{prefix}/"))
    {
        assert!(
            pending.is_empty(),
            "multipart uploads left open after the final run: {pending:?}"
        );
    }
}

/// Checks every committed build's artifacts byte for byte; returns how many builds are committed.
async fn assert_only_complete_builds_in(
    store: &Store,
    sim: &Sim,
    layout: &jam::format::layout::Layout,
    job: &JobPath,
    builds: u64,
) -> usize {
    let mut committed = 0;
    for n in 1..=builds {
        let key = jam::format::layout::path(&layout.manifest_key(job, n));
        let Some((bytes, _)) = store.get(&key).await.unwrap() else {
            continue;
        };
        let m: jam::format::manifest::Manifest = serde_json::from_slice(&bytes).unwrap();
        for a in &m.artifacts {
            let info = sim.artifact("app", n, &a.path).unwrap();
            let (data, _) = store
                .get(&jam::format::layout::path(&a.key))
                .await
                .unwrap()
                .expect("artifact of a committed build exists");
            assert_eq!(
                jam::integrity::sha256_hex(&data),
                info.digests().sha256,
                "{}",
                a.key
            );
        }
        committed += 1;
    }
    committed
}

async fn index_in(
    store: &Store,
    layout: &jam::format::layout::Layout,
    job: &JobPath,
) -> jam::format::manifest::JobIndex {
    let (bytes, _) = store
        .get(&jam::format::layout::path(&layout.index_key(job)))
        .await
        .unwrap()
        .expect("index");
    jam::format::manifest::JobIndex::parse(&bytes, "index").unwrap()
}

/// Peak RSS (VmHWM) of a running process, in bytes.
fn peak_rss(child: &Child) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gib_artifact_streams_in_bounded_memory() {
    const SIZE: u64 = 2 << 30;
    const BUDGET_MIB: u64 = 32;
    let sim = Sim::start(
        harness::scenario().with_item(
            ItemSpec::freestyle("app").with_build(
                BuildSpec::finished(1, BuildResult::Success)
                    .with_artifact(ArtifactSpec::sized("huge.bin", SIZE)),
            ),
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let target = Target::local();
    let cfg = dir.path().join("jam.toml");
    std::fs::write(&cfg, format!("[mirror]\nbuffer_budget = \"{BUDGET_MIB} MiB\"\npart_size = \"8 MiB\"\npart_uploads = 2\n")).unwrap();
    let mut child = jam_mirror(
        &sim,
        &target,
        &["--once"],
        &[("JAM_CONFIG", cfg.to_str().unwrap())],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let started = Instant::now();
    let mut peak = 0;
    let status = loop {
        if let Some(rss) = peak_rss(&child) {
            peak = peak.max(rss);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "2 GiB mirror took too long"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success());
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "2 GiB mirrored in {secs:.1}s ({:.0} MB/s), peak RSS {} MiB",
        SIZE as f64 / 1e6 / secs,
        peak >> 20
    );
    let limit = (BUDGET_MIB + 48) << 20;
    assert!(
        peak > 0 && peak < limit,
        "peak RSS {} MiB exceeds budget {BUDGET_MIB} MiB + 48 MiB",
        peak >> 20
    );
    let store = target.store.clone();
    let source = jam::config::default_source_name(&url::Url::parse(&sim.url()).unwrap());
    let layout = jam::format::layout::Layout::new(source);
    let key = jam::format::layout::path(&layout.manifest_key(&JobPath::new(["app"]), 1));
    let (bytes, _) = store.get(&key).await.unwrap().expect("committed");
    let m: jam::format::manifest::Manifest = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(m.artifacts[0].size, SIZE);
    assert_eq!(
        m.artifacts[0].sha256,
        sim.artifact("app", 1, "huge.bin").unwrap().digests().sha256
    );
    let meta = store
        .head(&jam::format::layout::path(&m.artifacts[0].key))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(meta.size, SIZE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_worker_cleanly() {
    let sim = Sim::start(
        harness::scenario().with_item(
            ItemSpec::freestyle("app").with_build(
                BuildSpec::finished(1, BuildResult::Success)
                    .with_artifact(ArtifactSpec::sized("a.bin", 1000)),
            ),
        ),
    );
    let target = Target::local();
    let mut child = jam_mirror(&sim, &target, &["--poll-interval", "200ms"], &[])
        .spawn()
        .unwrap();
    let store = target.store.clone();
    let source = jam::config::default_source_name(&url::Url::parse(&sim.url()).unwrap());
    let layout = jam::format::layout::Layout::new(source);
    let key = jam::format::layout::path(&layout.manifest_key(&JobPath::new(["app"]), 1));
    let deadline = Instant::now() + Duration::from_secs(20);
    while store.get(&key).await.unwrap().is_none() {
        assert!(Instant::now() < deadline, "build not mirrored");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "worker ignored SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit after SIGTERM: {status:?}");
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("\"message\":\"jam mirror stopped\""), "{log}");
    assert!(
        log.contains("\"message\":\"mirrored build\""),
        "one JSON line per mirrored build: {log}"
    );
    assert!(!log.contains(harness::TOKEN));
}
