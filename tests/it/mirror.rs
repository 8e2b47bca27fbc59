//! End-to-end tests of the mirror worker against the Jenkins simulator and a local directory store:
//! backfill, new builds, out-of-order completion, corruption and truncation, idempotence.

use jam::{
    format::layout::{JobPath, Permalink},
    mirror::Mirror,
    store::Store,
};
use jenkins_sim::{ArtifactSpec, BuildResult, BuildSpec, Fault, ItemSpec, RouteKind, Sim};
use tokio_util::sync::CancellationToken;

use crate::harness::{
    self, Target, artifact_requests, assert_build_mirrored, index, mirror_once, mirrored_builds,
    pointer, pointer_number, wait_for,
};

fn build(n: u64, result: BuildResult, size: u64) -> BuildSpec {
    BuildSpec::finished(n, result)
        .with_artifact(ArtifactSpec::sized("dist/app.bin", size))
        .with_artifact(ArtifactSpec::sized("reports/summary.txt", 300).without_fingerprint())
}

async fn backfills_folders_multibranch_and_more_than_100_builds(t: Target) {
    let mut app = ItemSpec::freestyle("app");
    for n in 1..=130u64 {
        if n % 17 != 0 {
            // gaps: every 17th build was deleted by a discarder
            app = app.with_build(build(
                n,
                if n % 5 == 0 {
                    BuildResult::Failure
                } else {
                    BuildResult::Success
                },
                2048,
            ));
        }
    }
    let svc = ItemSpec::multibranch("svc")
        .with_job(
            ItemSpec::new("feature/x", jenkins_sim::ItemKind::Pipeline).with_build(build(
                1,
                BuildResult::Success,
                5000,
            )),
        )
        .with_job(
            ItemSpec::new("main", jenkins_sim::ItemKind::Pipeline).with_build(build(
                4,
                BuildResult::Unstable,
                10,
            )),
        );
    let sim = Sim::start(
        harness::scenario()
            .with_item(ItemSpec::folder("team").with_job(app))
            .with_item(ItemSpec::folder("My Team").with_job(
                ItemSpec::pipeline("Déploiement app").with_build(build(
                    2,
                    BuildResult::Success,
                    77,
                )),
            ))
            .with_item(svc),
    );
    let cfg = t.config(&sim, "");
    let store = Store::open(&cfg.store).unwrap();
    let summary = mirror_once(&cfg, &store).await;
    assert!(summary.ok(), "{summary:?}");

    let app_job = JobPath::new(["team", "app"]);
    let ix = index(&store, &app_job).await.expect("index");
    let expected: Vec<u64> = (1..=130).filter(|n| n % 17 != 0).collect();
    assert_eq!(
        ix.builds.keys().copied().collect::<Vec<_>>(),
        expected,
        "every build of team/app, gaps kept"
    );
    assert!(
        sim.requests().iter().any(|r| r.path.contains("allBuilds")),
        "builds older than the newest 100 come from allBuilds"
    );
    for n in [1, 16, 18, 100, 130] {
        let m = assert_build_mirrored(&store, &sim, &app_job, "team/app", n).await;
        assert_eq!(m.artifacts.len(), 2);
        assert!(
            m.artifacts[0].fingerprint,
            "dist/app.bin matched its fingerprint"
        );
        assert!(
            !m.artifacts[1].fingerprint,
            "reports/summary.txt was not fingerprinted"
        );
    }
    assert_eq!(
        pointer_number(&store, &app_job, Permalink::LastSuccessfulBuild)
            .await
            .unwrap(),
        129
    );
    assert_eq!(
        pointer_number(&store, &app_job, Permalink::LastFailedBuild)
            .await
            .unwrap(),
        130
    );
    assert_eq!(
        pointer_number(&store, &app_job, Permalink::LastCompletedBuild)
            .await
            .unwrap(),
        130
    );

    let branch = JobPath::new(["svc", "feature%2Fx"]);
    let m = assert_build_mirrored(&store, &sim, &branch, "svc/feature%2Fx", 1).await;
    assert!(
        m.artifacts[0]
            .key
            .starts_with("ci/job/svc/job/feature%252Fx/1/artifact/"),
        "{}",
        m.artifacts[0].key
    );
    let main = JobPath::new(["svc", "main"]);
    assert_build_mirrored(&store, &sim, &main, "svc/main", 4).await;
    assert_eq!(
        pointer_number(&store, &main, Permalink::LastSuccessfulBuild)
            .await
            .unwrap(),
        4
    );
    assert!(
        pointer(&store, &main, Permalink::LastStableBuild)
            .await
            .is_none(),
        "UNSTABLE is not stable"
    );
    let unicode = JobPath::new(["My Team", "Déploiement app"]);
    assert_build_mirrored(&store, &sim, &unicode, "My Team/Déploiement app", 2).await;
    t.assert_no_open_uploads();
}

async fn idle_second_run_downloads_no_artifact(t: Target) {
    let sim = Sim::start(
        harness::scenario().with_item(
            ItemSpec::freestyle("app")
                .with_build(build(1, BuildResult::Success, 1000))
                .with_build(build(2, BuildResult::Success, 1000)),
        ),
    );
    let cfg = t.config(&sim, "");
    let store = Store::open(&cfg.store).unwrap();
    assert!(mirror_once(&cfg, &store).await.ok());
    assert_eq!(artifact_requests(&sim), 4);
    sim.clear_requests();
    let second = mirror_once(&cfg, &store).await;
    assert!(second.ok());
    assert_eq!(second.mirrored, 0);
    assert_eq!(
        artifact_requests(&sim),
        0,
        "a restarted worker with nothing new downloads nothing"
    );
    assert!(
        sim.requests()
            .iter()
            .all(|r| !r.path.contains("/1/") && !r.path.contains("/2/")),
        "committed builds are not even asked about: {:?}",
        sim.requests().iter().map(|r| &r.path).collect::<Vec<_>>()
    );
    t.assert_no_open_uploads();
}

/// The paths of the requests the simulator logged since it was last cleared, and clears the log.
fn take_requests(sim: &Sim) -> Vec<String> {
    let paths = sim.requests().into_iter().map(|r| r.path).collect();
    sim.clear_requests();
    paths
}

/// A fresh `--once` run (cron's) over a controller where nothing changed asks Jenkins only the tree query:
/// it compares each job's newest builds there with the job's index in the store. A job with something
/// new is still looked at, and only that job: a new build, a running one (until it finishes), and a build
/// whose attempt failed and waits for another.
async fn a_fresh_idle_once_asks_jenkins_only_the_tree_query(t: Target) {
    let sim = Sim::start(
        harness::scenario()
            .with_item(
                ItemSpec::freestyle("app")
                    .with_build(build(1, BuildResult::Success, 100))
                    .with_build(build(2, BuildResult::Failure, 100)),
            )
            .with_item(ItemSpec::folder("team").with_job(
                ItemSpec::freestyle("lib").with_build(build(1, BuildResult::Success, 100)),
            ))
            .with_item(ItemSpec::freestyle("empty"))
            .with_item(ItemSpec::freestyle("tool").with_build(build(1, BuildResult::Success, 100))),
    );
    let cfg = t.config(&sim, "");
    let store = Store::open(&cfg.store).unwrap();
    let first = mirror_once(&cfg, &store).await;
    assert!(first.ok() && first.mirrored == 4, "{first:?}");
    take_requests(&sim);

    let idle = mirror_once(&cfg, &store).await;
    assert!(idle.ok() && idle.mirrored == 0, "{idle:?}");
    let asked = take_requests(&sim);
    assert!(
        asked.len() == 1 && asked[0].starts_with("/api/json?tree="),
        "a fresh idle run asks only the tree query: {asked:?}"
    );

    // A new build on one job is found, and only that job is asked about.
    sim.add_build("app", build(3, BuildResult::Success, 100))
        .unwrap();
    let found = mirror_once(&cfg, &store).await;
    assert!(found.ok() && found.mirrored == 1, "{found:?}");
    let asked = take_requests(&sim);
    assert!(
        asked[1..].iter().all(|p| p.starts_with("/job/app/")),
        "only the job with a new build is asked about: {asked:?}"
    );
    let app = JobPath::new(["app"]);
    assert_build_mirrored(&store, &sim, &app, "app", 3).await;

    // A running build: its job is looked at by every fresh run until it finishes, then it is mirrored.
    sim.add_build(
        "app",
        BuildSpec::running(4).with_artifact(ArtifactSpec::sized("a.bin", 10)),
    )
    .unwrap();
    let running = mirror_once(&cfg, &store).await;
    assert!(running.ok() && running.mirrored == 0, "{running:?}");
    let asked = take_requests(&sim);
    assert!(
        asked.len() == 2 && asked[1].starts_with("/job/app/api/json"),
        "the job with a running build is looked at: {asked:?}"
    );
    sim.finish_build("app", 4, BuildResult::Success).unwrap();
    assert_eq!(mirror_once(&cfg, &store).await.mirrored, 1);
    assert_build_mirrored(&store, &sim, &app, "app", 4).await;

    // A build whose attempt failed is not settled (it waits for another attempt): the next fresh run
    // looks at its job and mirrors it.
    sim.add_build("tool", build(2, BuildResult::Success, 100))
        .unwrap();
    let fault = sim
        .add_fault(
            Fault::status(500)
                .on(RouteKind::Artifact)
                .path_prefix("/job/tool/2/"),
        )
        .unwrap();
    let failed = mirror_once(&cfg, &store).await;
    assert!(
        failed.failed_attempts == 1 && failed.given_up == 0 && failed.mirrored == 0,
        "{failed:?}"
    );
    sim.remove_fault(fault).unwrap();
    let retried = mirror_once(&cfg, &store).await;
    assert!(retried.ok() && retried.mirrored == 1, "{retried:?}");
    assert_build_mirrored(&store, &sim, &JobPath::new(["tool"]), "tool", 2).await;

    take_requests(&sim);
    assert!(mirror_once(&cfg, &store).await.ok());
    let asked = take_requests(&sim);
    assert_eq!(asked.len(), 1, "idle again: {asked:?}");
    t.assert_no_open_uploads();
}

async fn out_of_order_completion_mirrors_both_and_pointers_only_move_forward(t: Target) {
    let sim = Sim::start(
        harness::scenario().with_item(
            ItemSpec::freestyle("app")
                .with_build(BuildSpec::running(11).with_artifact(ArtifactSpec::sized("a.bin", 100)))
                .with_build(build(12, BuildResult::Success, 100)),
        ),
    );
    let cfg = t.config(&sim, "");
    let store = Store::open(&cfg.store).unwrap();
    let job = JobPath::new(["app"]);
    assert!(mirror_once(&cfg, &store).await.ok());
    assert!(
        harness::manifest(&store, &job, 11).await.is_none(),
        "running build not mirrored"
    );
    assert_build_mirrored(&store, &sim, &job, "app", 12).await;

    sim.finish_build("app", 11, BuildResult::Success).unwrap();
    assert!(mirror_once(&cfg, &store).await.ok());
    assert_build_mirrored(&store, &sim, &job, "app", 11).await;
    assert_eq!(
        pointer_number(&store, &job, Permalink::LastSuccessfulBuild)
            .await
            .unwrap(),
        12,
        "pointer never moves back"
    );
    t.assert_no_open_uploads();
}

async fn running_worker_picks_up_new_and_late_builds_within_a_cycle(t: Target) {
    let sim = Sim::start(
        harness::scenario().with_item(
            ItemSpec::freestyle("app")
                .with_build(BuildSpec::running(1).with_artifact(ArtifactSpec::sized("a.bin", 100)))
                .with_build(build(2, BuildResult::Success, 100)),
        ),
    );
    let cfg = t.config(&sim, "[mirror]\npoll_interval = \"200ms\"\n");
    let store = Store::open(&cfg.store).unwrap();
    let (stats, stop, worker) = start_worker(&cfg, &store);
    let job = JobPath::new(["app"]);
    wait_for(|| async { harness::manifest(&store, &job, 2).await.is_some() }).await;

    sim.add_build("app", build(3, BuildResult::Success, 100))
        .unwrap();
    let cycles = stats.cycles.load(std::sync::atomic::Ordering::Relaxed);
    wait_for(|| async { harness::manifest(&store, &job, 3).await.is_some() }).await;
    let after = stats.cycles.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        after - cycles <= 2,
        "build 3 took {} cycles",
        after - cycles
    );

    sim.finish_build("app", 1, BuildResult::Success).unwrap();
    wait_for(|| async { harness::manifest(&store, &job, 1).await.is_some() }).await;

    // Nothing new: each further cycle costs exactly one request.
    let c0 = stats.cycles.load(std::sync::atomic::Ordering::Relaxed);
    wait_for(|| async { stats.cycles.load(std::sync::atomic::Ordering::Relaxed) > c0 }).await;
    sim.clear_requests();
    let c1 = stats.cycles.load(std::sync::atomic::Ordering::Relaxed);
    wait_for(|| async { stats.cycles.load(std::sync::atomic::Ordering::Relaxed) >= c1 + 3 }).await;
    let c2 = stats.cycles.load(std::sync::atomic::Ordering::Relaxed);
    let reqs = sim.requests();
    assert!(
        reqs.len() as u64 <= c2 - c1 + 1
            && reqs.iter().all(|r| r.path.starts_with("/api/json?tree=")),
        "idle cycles cost one request each: {:?}",
        reqs.iter().map(|r| &r.path).collect::<Vec<_>>()
    );
    stop.cancel();
    let summary = worker.await.unwrap();
    assert_eq!(summary.mirrored, 3);
    t.assert_no_open_uploads();
}

async fn corrupted_download_is_retried_and_never_committed_corrupt(t: Target) {
    let sim = Sim::start(
        harness::scenario().with_item(ItemSpec::freestyle("app").with_build(build(
            1,
            BuildResult::Success,
            50_000,
        ))),
    );
    let cfg = t.config(&sim, "[mirror]\nmax_attempts = 1\n");
    let store = Store::open(&cfg.store).unwrap();
    let job = JobPath::new(["app"]);

    // Every download of app.bin is corrupted: the build must not be committed, and is recorded as failed.
    let id = sim
        .add_fault(
            Fault::corrupt_at(1000)
                .on(RouteKind::Artifact)
                .path_prefix("/job/app/1/artifact/dist"),
        )
        .unwrap();
    let s = mirror_once(&cfg, &store).await;
    assert!(!s.ok() && s.given_up == 1, "{s:?}");
    assert!(
        harness::manifest(&store, &job, 1).await.is_none(),
        "corrupt build committed"
    );
    let ix = index(&store, &job).await.unwrap();
    assert!(
        ix.failed[&1].error.contains("fingerprint"),
        "{:?}",
        ix.failed
    );
    sim.remove_fault(id).unwrap();

    // One corrupted download, then good ones: retried within the attempt and committed with the right bytes.
    let sim2 = Sim::start(
        harness::scenario().with_item(ItemSpec::freestyle("app").with_build(build(
            1,
            BuildResult::Success,
            50_000,
        ))),
    );
    sim2.add_fault(
        Fault::corrupt_at(10)
            .on(RouteKind::Artifact)
            .path_prefix("/job/app/1/artifact/dist")
            .times(1),
    )
    .unwrap();
    let t2 = t.fresh();
    let cfg2 = t2.config(&sim2, "");
    let store2 = Store::open(&cfg2.store).unwrap();
    assert!(mirror_once(&cfg2, &store2).await.ok());
    assert_build_mirrored(&store2, &sim2, &job, "app", 1).await;
    t.assert_no_open_uploads();
}

async fn truncated_and_reset_downloads_are_retried(t: Target) {
    let sim = Sim::start(
        harness::scenario().with_item(ItemSpec::freestyle("app").with_build(build(
            1,
            BuildResult::Success,
            9 << 20,
        ))),
    );
    sim.add_fault(Fault::short_body(4096).on(RouteKind::Artifact).times(1))
        .unwrap();
    sim.add_fault(Fault::reset_after(6 << 20).on(RouteKind::Artifact).times(1))
        .unwrap();
    let cfg = t.config(&sim, "");
    let store = Store::open(&cfg.store).unwrap();
    let s = mirror_once(&cfg, &store).await;
    assert!(s.ok(), "{s:?}");
    assert_build_mirrored(&store, &sim, &JobPath::new(["app"]), "app", 1).await;

    // Always short: never committed.
    let sim = Sim::start(
        harness::scenario().with_item(ItemSpec::freestyle("app").with_build(build(
            1,
            BuildResult::Success,
            9 << 20,
        ))),
    );
    sim.add_fault(
        Fault::short_body(1 << 20)
            .on(RouteKind::Artifact)
            .path_prefix("/job/app/1/artifact/dist"),
    )
    .unwrap();
    let t2 = t.fresh();
    let cfg = t2.config(&sim, "");
    let store = Store::open(&cfg.store).unwrap();
    let s = mirror_once(&cfg, &store).await;
    assert_eq!(s.failed_attempts, 1, "{s:?}");
    assert!(
        harness::manifest(&store, &JobPath::new(["app"]), 1)
            .await
            .is_none()
    );
    t.assert_no_open_uploads();
    t2.assert_no_open_uploads();
}

async fn backfill_policies_and_result_filter(t: Target) {
    let mut app = ItemSpec::freestyle("app");
    for n in 1..=6 {
        app = app.with_build(build(
            n,
            if n % 2 == 0 {
                BuildResult::Failure
            } else {
                BuildResult::Success
            },
            10,
        ));
    }
    let sim = Sim::start(harness::scenario().with_item(app));
    let job = JobPath::new(["app"]);

    let cfg = t.config(&sim, "[mirror]\nbackfill = 2\n");
    let store = Store::open(&cfg.store).unwrap();
    assert!(mirror_once(&cfg, &store).await.ok());
    assert_eq!(mirrored_builds(&store, &job).await, vec![5, 6]);

    let t2 = t.fresh();
    let cfg = t2.config(&sim, "[mirror]\nbackfill = \"none\"\n");
    let store = Store::open(&cfg.store).unwrap();
    assert!(mirror_once(&cfg, &store).await.ok());
    sim.add_build("app", build(7, BuildResult::Success, 10))
        .unwrap();
    assert!(
        mirror_once(&cfg, &store).await.ok(),
        "the cut survives a restart"
    );
    assert_eq!(mirrored_builds(&store, &job).await, vec![7]);

    let t3 = t.fresh();
    let cfg = t3.config(&sim, "[mirror]\nresults = [\"SUCCESS\"]\n");
    let store = Store::open(&cfg.store).unwrap();
    assert!(mirror_once(&cfg, &store).await.ok());
    assert_eq!(mirrored_builds(&store, &job).await, vec![1, 3, 5, 7]);
    t.assert_no_open_uploads();
}

async fn build_without_artifacts_gets_a_manifest_and_pointers(t: Target) {
    let sim = Sim::start(harness::scenario().with_item(
        ItemSpec::freestyle("app").with_build(BuildSpec::finished(1, BuildResult::Aborted)),
    ));
    let cfg = t.config(&sim, "");
    let store = Store::open(&cfg.store).unwrap();
    assert!(mirror_once(&cfg, &store).await.ok());
    let job = JobPath::new(["app"]);
    let m = assert_build_mirrored(&store, &sim, &job, "app", 1).await;
    assert!(m.artifacts.is_empty());
    assert_eq!(m.result, "ABORTED");
    assert_eq!(
        pointer_number(&store, &job, Permalink::LastUnsuccessfulBuild)
            .await
            .unwrap(),
        1
    );
    assert!(
        pointer(&store, &job, Permalink::LastSuccessfulBuild)
            .await
            .is_none()
    );
    t.assert_no_open_uploads();
}

/// Starts a long-running worker: its counters, the token that stops it, and its task.
fn start_worker(
    cfg: &jam::config::Config,
    store: &Store,
) -> (
    std::sync::Arc<jam::mirror::Stats>,
    CancellationToken,
    tokio::task::JoinHandle<jam::mirror::Summary>,
) {
    let mirror = Mirror::new(cfg, store.clone()).unwrap();
    let stats = mirror.stats();
    let stop = CancellationToken::new();
    let run = mirror.run(false, stop.clone());
    let worker = tokio::spawn(async move { run.await.expect("the worker joins") });
    (stats, stop, worker)
}

async fn build_deleted_before_it_was_mirrored_is_recorded_as_missed(t: Target) {
    let sim = Sim::start(
        harness::scenario().with_item(
            ItemSpec::freestyle("app")
                .with_build(BuildSpec::running(1).with_artifact(ArtifactSpec::sized("a.bin", 10)))
                .with_build(build(2, BuildResult::Success, 10)),
        ),
    );
    let cfg = t.config(&sim, "[mirror]\npoll_interval = \"100ms\"\n");
    let store = Store::open(&cfg.store).unwrap();
    let (stats, stop, worker) = start_worker(&cfg, &store);
    let job = JobPath::new(["app"]);
    wait_for(|| async { harness::manifest(&store, &job, 2).await.is_some() }).await;
    sim.delete_build("app", 1).unwrap();
    wait_for(|| async {
        index(&store, &job)
            .await
            .is_some_and(|ix| ix.missed.contains(&1))
    })
    .await;
    stop.cancel();
    let summary = worker.await.unwrap();
    assert_eq!(summary.missed, 1);
    assert_eq!(
        stats
            .builds_missed
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    t.assert_no_open_uploads();
}

harness::on_both_stores!(
    backfills_folders_multibranch_and_more_than_100_builds,
    idle_second_run_downloads_no_artifact,
    a_fresh_idle_once_asks_jenkins_only_the_tree_query,
    out_of_order_completion_mirrors_both_and_pointers_only_move_forward,
    running_worker_picks_up_new_and_late_builds_within_a_cycle,
    corrupted_download_is_retried_and_never_committed_corrupt,
    truncated_and_reset_downloads_are_retried,
    backfill_policies_and_result_filter,
    build_without_artifacts_gets_a_manifest_and_pointers,
    build_deleted_before_it_was_mirrored_is_recorded_as_missed,
);

/// A restarted worker looks at every job once; those looks run concurrently (bounded by `max_requests`),
/// so 40 jobs whose build lists each take 200 ms are read in far less than 40 × 200 ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_jobs_are_read_concurrently() {
    let mut scenario = harness::scenario();
    for j in 0..40 {
        scenario = scenario.with_item(
            ItemSpec::freestyle(&format!("j{j}"))
                .with_build(BuildSpec::finished(1, BuildResult::Success)),
        );
    }
    let sim = Sim::start(scenario);
    sim.add_fault(
        Fault::latency(std::time::Duration::from_millis(200))
            .on(RouteKind::Api)
            .path_regex(r"^/job/j[0-9]+/api/json"),
    )
    .unwrap();
    slowed_requests_overlap(&sim, "", 40, 40, "build lists").await;
}

/// One `--once` run into a local directory with `extra` config, over a simulator whose `slowed` requests
/// carry a latency fault: it must mirror `builds` builds, every slowed request must have been made, and
/// the run must take less than 4 s (the slowed requests overlap instead of following one another).
async fn slowed_requests_overlap(sim: &Sim, extra: &str, builds: u64, slowed: usize, what: &str) {
    let t = Target::local();
    let cfg = t.config(sim, extra);
    let started = std::time::Instant::now();
    let s = mirror_once(&cfg, &t.store).await;
    let took = started.elapsed();
    assert!(s.ok() && s.mirrored == builds, "{s:?}");
    assert_eq!(
        sim.requests().iter().filter(|r| r.faulted).count(),
        slowed,
        "every one of the {what} was slowed"
    );
    assert!(
        took < std::time::Duration::from_secs(4),
        "{slowed} slow {what} took {took:?}"
    );
}

/// The messages a failed download leaves in the job's index (and the logs), pinned to the letter: a body
/// that ends short of its `Content-Length`, and one whose MD5 does not match its Jenkins fingerprint. Each
/// is retried by the transfer loop only, so the artifact is downloaded exactly three times (its one attempt
/// budget) before the build attempt fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_downloads_are_recorded_with_exact_messages() {
    let job = JobPath::new(["app"]);
    let short = |url: &str| {
        format!(
            "artifact 'dist/app.bin': cannot reach Jenkins at {url}job/app/1/artifact/dist/app.bin: download broke \
             after 4096 bytes: body error: request or response body error: error reading a body from connection: \
             end of file before message length reached"
        )
    };
    let corrupt = |sim: &Sim| {
        let info = sim.artifact("app", 1, "dist/app.bin").unwrap();
        let mut bytes = info.content.to_vec();
        bytes[10] ^= 0xff;
        let actual = hex::encode(<md5::Md5 as md5::Digest>::digest(&bytes));
        format!(
            "artifact 'dist/app.bin': MD5 {actual} does not match the Jenkins fingerprint ({}); the download \
             was corrupted",
            info.digests().md5
        )
    };
    type Message<'a> = &'a dyn Fn(&Sim) -> String;
    let cases: [(Fault, Message<'_>); 2] = [
        (Fault::short_body(4096), &|sim: &Sim| short(&sim.url())),
        (Fault::corrupt_at(10), &corrupt),
    ];
    for (fault, message) in cases {
        let sim = Sim::start(harness::scenario().with_item(
            ItemSpec::freestyle("app").with_build(build(1, BuildResult::Success, 50_000)),
        ));
        sim.add_fault(
            fault
                .on(RouteKind::Artifact)
                .path_prefix("/job/app/1/artifact/dist"),
        )
        .unwrap();
        let t = Target::local();
        let cfg = t.config(&sim, "[mirror]\nmax_attempts = 1\n");
        let s = mirror_once(&cfg, &t.store).await;
        assert_eq!(s.given_up, 1, "{s:?}");
        let ix = index(&t.store, &job).await.unwrap();
        assert_eq!(ix.failed[&1].error, message(&sim));
        let downloads = sim
            .requests()
            .iter()
            .filter(|r| r.path == "/job/app/1/artifact/dist/app.bin")
            .count();
        assert_eq!(downloads, 3, "one attempt budget of three downloads");
        assert!(harness::manifest(&t.store, &job, 1).await.is_none());
    }
}

/// Artifacts that fit one part run many at once (`small_transfers`), beyond `transfers`, which bounds the
/// larger ones: with `transfers = 1`, 16 small artifacts whose downloads each take 500 ms are read together
/// (bounded by `max_requests`, 8), not one after another (8 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_artifacts_transfer_many_at_once() {
    let mut b = BuildSpec::finished(1, BuildResult::Success);
    for i in 0..16 {
        b = b.with_artifact(ArtifactSpec::sized(&format!("out/f{i:02}.bin"), 1000));
    }
    let sim = Sim::start(harness::scenario().with_item(ItemSpec::freestyle("app").with_build(b)));
    sim.add_fault(Fault::latency(std::time::Duration::from_millis(500)).on(RouteKind::Artifact))
        .unwrap();
    slowed_requests_overlap(&sim, "[mirror]\ntransfers = 1\n", 1, 16, "small downloads").await;
}
