//! Soak: `jam mirror` as a process under a steady stream of new builds, sampled every second for memory,
//! open files and threads, which must stay flat; every build must end up mirrored.
//!
//! CI runs a short version (20 s). The long one is a separate command, `bash tests/soak.sh [SECONDS]`
//! (default 600), which prints the samples; the README records its latest result.

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use jam::{format::layout::JobPath, store::Store};
use jenkins_sim::{ArtifactSpec, BuildResult, BuildSpec, ItemSpec, Sim};

use crate::harness::{self, KillOnDrop, Target, jam_mirror};

struct Sample {
    at_s: f64,
    rss_kib: u64,
    fds: usize,
    threads: u64,
    builds: usize,
}

fn proc_status(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Builds of `job` committed in the store, per its index.
async fn mirrored(store: &Store, layout: &jam::format::layout::Layout, job: &JobPath) -> usize {
    let key = jam::format::layout::path(&layout.index_key(job));
    match store.get(&key).await {
        Ok(Some((bytes, _))) => {
            jam::format::manifest::JobIndex::parse(&bytes, "index").map_or(0, |ix| ix.builds.len())
        }
        _ => 0,
    }
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_steady_stream_of_builds_keeps_resources_flat() {
    let secs: u64 = std::env::var("JAM_TEST_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let sim = Sim::start(
        harness::scenario()
            .with_item(ItemSpec::freestyle("app"))
            .with_item(ItemSpec::folder("team")),
    );
    let source = jam::config::default_source_name(&url::Url::parse(&sim.url()).unwrap());
    let layout = jam::format::layout::Layout::new(source);

    // SeaweedFS when the test servers run (CI), else a local directory.
    let target = Target::seaweed().unwrap_or_else(Target::local);
    let store = target.store.clone();
    let dir = tempfile::tempdir().unwrap();
    let mut child = KillOnDrop(
        jam_mirror(&sim, &target, &["--poll-interval", "500ms"], &[])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = child.id();

    // A new build every 250 ms, alternating between two jobs, each with one 1 MiB and ten small artifacts.
    let started = Instant::now();
    let mut samples: Vec<Sample> = Vec::new();
    let mut added = 0u64;
    let mut next_sample = Instant::now();
    let app = JobPath::new(["app"]);
    while started.elapsed() < Duration::from_secs(secs) {
        added += 1;
        let job = if added.is_multiple_of(2) {
            "app"
        } else {
            "team/lib"
        };
        if added == 1 {
            sim.add_job("team", "lib").unwrap();
        }
        let mut b = BuildSpec::finished(added, BuildResult::Success)
            .with_artifact(ArtifactSpec::sized("dist/app.bin", 1 << 20));
        for i in 0..10 {
            b = b.with_artifact(ArtifactSpec::sized(&format!("reports/r{i}.xml"), 2000));
        }
        sim.add_build(job, b).unwrap();
        if Instant::now() >= next_sample {
            next_sample += Duration::from_secs(1);
            let builds = mirrored(&store, &layout, &app).await;
            samples.push(Sample {
                at_s: started.elapsed().as_secs_f64(),
                rss_kib: proc_status(pid, "VmRSS:").unwrap_or(0),
                fds: std::fs::read_dir(format!("/proc/{pid}/fd"))
                    .map(|d| d.count())
                    .unwrap_or(0),
                threads: proc_status(pid, "Threads:").unwrap_or(0),
                builds,
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Every build gets mirrored (the feed has stopped; the worker catches up).
    let expected_app = added / 2;
    let deadline = Instant::now() + Duration::from_secs(120);
    while (mirrored(&store, &layout, &app).await as u64) < expected_app {
        assert!(
            Instant::now() < deadline,
            "the worker did not catch up within 2 minutes"
        );
        assert!(child.try_wait().unwrap().is_none(), "the worker exited");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let lib = JobPath::new(["team", "lib"]);
    while (mirrored(&store, &layout, &lib).await as u64) < added - expected_app {
        assert!(
            Instant::now() < deadline,
            "the worker did not catch up within 2 minutes"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    assert!(child.wait().unwrap().success());

    println!("soak: {secs} s, {added} builds, {} artifacts", added * 11);
    println!(
        "{:>7} {:>9} {:>5} {:>8} {:>7}",
        "t_s", "rss_mib", "fds", "threads", "app_builds"
    );
    for s in &samples {
        println!(
            "{:>7.1} {:>9.1} {:>5} {:>8} {:>7}",
            s.at_s,
            s.rss_kib as f64 / 1024.0,
            s.fds,
            s.threads,
            s.builds
        );
    }
    // Flat: after a warm-up third, the last third's median RSS is within 20% + 8 MiB of the middle third's,
    // and open files and threads do not climb.
    let n = samples.len();
    assert!(n >= 9, "too few samples: {n}");
    let (mid, last) = (&samples[n / 3..2 * n / 3], &samples[2 * n / 3..]);
    let rss_mid = median(mid.iter().map(|s| s.rss_kib).collect());
    let rss_last = median(last.iter().map(|s| s.rss_kib).collect());
    assert!(
        rss_last <= rss_mid + rss_mid / 5 + 8 * 1024,
        "RSS grew from {rss_mid} KiB to {rss_last} KiB"
    );
    let fds_mid = mid.iter().map(|s| s.fds).max().unwrap();
    let fds_last = last.iter().map(|s| s.fds).max().unwrap();
    assert!(
        fds_last <= fds_mid + 16,
        "open files grew from {fds_mid} to {fds_last}"
    );
    let thr_mid = mid.iter().map(|s| s.threads).max().unwrap();
    let thr_last = last.iter().map(|s| s.threads).max().unwrap();
    assert!(
        thr_last <= thr_mid + 2,
        "threads grew from {thr_mid} to {thr_last}"
    );
}
