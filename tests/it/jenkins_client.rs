//! The Jenkins client against the simulator: URL building for folders, branches and odd names, build
//! listings past the 100-build cap, every auth answer, injected faults, and artifact redirects.

use std::time::{Duration, Instant};

use futures::StreamExt;
use jam::{
    format::layout::JobPath,
    jenkins::{JenkinsClient, JenkinsError},
};
use jenkins_sim::{
    ArtifactSpec, BuildResult, BuildSpec, Fault, ItemKind, ItemSpec, Listener, RedirectMode,
    RouteKind, Sim,
};

use crate::harness::{self, config};

fn client(sim: &Sim) -> JenkinsClient {
    let cfg = config(sim, "memory://", "");
    JenkinsClient::new(&cfg.jenkins[0])
        .unwrap()
        .with_backoff(Duration::from_millis(20), Duration::from_millis(200))
}

async fn body(client: &JenkinsClient, url: &url::Url) -> Result<Vec<u8>, JenkinsError> {
    let mut dl = client.download(url).await?;
    let mut out = Vec::new();
    while let Some(chunk) = dl.body.next().await {
        out.extend_from_slice(&chunk?);
    }
    if let Some(len) = dl.content_length {
        assert_eq!(len, out.len() as u64, "Content-Length");
    }
    Ok(out)
}

fn tree() -> Sim {
    Sim::start(
        harness::scenario()
            .with_item(
                ItemSpec::folder("My Team").with_job(
                    ItemSpec::folder("Déploiement").with_job(
                        ItemSpec::freestyle("app (1)+x").with_build(
                            BuildSpec::finished(3, BuildResult::Success)
                                .with_artifact(ArtifactSpec::sized("dist/my app+ü.jar", 4000)),
                        ),
                    ),
                ),
            )
            .with_item(
                ItemSpec::multibranch("svc")
                    .with_job(
                        ItemSpec::new("feature/x", ItemKind::Pipeline)
                            .with_build(BuildSpec::finished(1, BuildResult::Success)),
                    )
                    .with_job(ItemSpec::new("main", ItemKind::Pipeline)),
            ),
    )
}

#[tokio::test]
async fn poll_finds_nested_jobs_branches_and_unicode_names() {
    let sim = tree();
    let c = client(&sim);
    let polled = c.poll(5).await.unwrap();
    let names: Vec<String> = polled.jobs.iter().map(|j| j.path.full_name()).collect();
    assert_eq!(
        names,
        vec![
            "My Team/Déploiement/app (1)+x",
            "svc/feature%2Fx",
            "svc/main"
        ]
    );
    assert_eq!(polled.jobs[0].last_completed, Some(3));
    assert_eq!(
        polled.jobs[2].last_build, None,
        "a job without builds has null permalinks"
    );
    assert_eq!(
        sim.request_count(),
        1,
        "one request for the whole controller"
    );

    // Per-job URLs are built from names, encoded as Jenkins does.
    let branch = JobPath::new(["svc", "feature%2Fx"]);
    let builds = c.job_builds(&branch).await.unwrap();
    assert_eq!(builds.builds[0].number, 1);
    let last = sim.requests().last().unwrap().path.clone();
    assert!(
        last.starts_with("/job/svc/job/feature%252Fx/api/json?tree="),
        "{last}"
    );

    let app = JobPath::new(["My Team", "Déploiement", "app (1)+x"]);
    let details = c.build(&app, 3).await.unwrap();
    assert_eq!(details.artifacts[0].relative_path, "dist/my app+ü.jar");
    assert_eq!(details.fingerprint.len(), 1);
    let url = c.artifact_url(&app, "3", &details.artifacts[0].relative_path);
    assert!(url.path().ends_with("/job/My%20Team/job/D%C3%A9ploiement/job/app%20(1)+x/3/artifact/dist/my%20app+%C3%BC.jar"), "{url}");
    let bytes = body(&c, &url).await.unwrap();
    let info = sim
        .artifact("My Team/Déploiement/app (1)+x", 3, "dist/my app+ü.jar")
        .unwrap();
    assert_eq!(jam::integrity::sha256_hex(&bytes), info.digests().sha256);
}

#[tokio::test]
async fn build_lists_past_the_100_cap_with_gaps_and_running_builds() {
    let mut job = ItemSpec::freestyle("app");
    for n in (1..=250u64).filter(|n| n % 10 != 0) {
        job = job.with_build(BuildSpec::finished(n, BuildResult::Success));
    }
    job = job.with_build(BuildSpec::running(251));
    let sim = Sim::start(harness::scenario().with_item(job));
    let c = client(&sim);
    let app = JobPath::new(["app"]);
    let listing = c.job_builds(&app).await.unwrap();
    assert_eq!(listing.builds.len(), 100, "builds is capped at 100");
    assert_eq!(listing.builds[0].number, 251);
    assert!(
        !listing.builds[0].finished(),
        "a running build is not finished"
    );
    assert_eq!(listing.first_build.unwrap().number, 1);
    let older = c.older_builds(&app, 100, 600).await.unwrap();
    let total = listing.builds.len() + older.len();
    assert_eq!(
        total, 226,
        "225 finished builds with gaps, plus the running one"
    );
    assert!(older.iter().all(|b| b.number % 10 != 0));
}

#[tokio::test]
async fn change_detection_of_2000_jobs_costs_one_request() {
    let mut scenario = harness::scenario();
    for f in 0..20 {
        let mut folder = ItemSpec::folder(&format!("team-{f}"));
        for j in 0..100 {
            folder = folder.with_job(
                ItemSpec::freestyle(&format!("job-{j}"))
                    .with_build(BuildSpec::finished(1, BuildResult::Success)),
            );
        }
        scenario = scenario.with_item(folder);
    }
    let sim = Sim::start(scenario);
    let c = client(&sim);
    let polled = c.poll(5).await.unwrap();
    assert_eq!(polled.jobs.len(), 2000);
    assert_eq!(sim.request_count(), 1);
}

#[tokio::test]
async fn auth_answers_are_told_apart() {
    let sim = tree();
    // Wrong token: 401, not retried, message says what to do and holds no token.
    let cfg = config(&sim, "memory://", "");
    let mut bad = cfg.jenkins[0].clone();
    bad.token = "11wrongwrongwrongwrongwrongwrongwr".to_string().into();
    let c = JenkinsClient::new(&bad).unwrap();
    let err = c.poll(3).await.unwrap_err();
    assert!(err.is_unauthorized(), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("API token is wrong, expired or revoked") && !msg.contains("11wrong"),
        "{msg}"
    );
    assert_eq!(sim.request_count(), 1, "a 401 is never retried");

    // Authenticated but without Overall/Read: 403 naming the user.
    sim.set_overall_read(harness::USER, false).unwrap();
    let err = client(&sim).poll(3).await.unwrap_err();
    assert!(
        matches!(&err, JenkinsError::Forbidden { who, .. } if who == harness::USER),
        "{err}"
    );
    sim.set_overall_read(harness::USER, true).unwrap();

    // A job the user may not read is 404, like a missing one.
    sim.set_visible_to("svc", Some(vec!["someone-else".into()]))
        .unwrap();
    let err = client(&sim)
        .job_builds(&JobPath::new(["svc", "main"]))
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    let who = client(&sim).who_am_i().await.unwrap();
    assert_eq!(who.name, harness::USER);
    assert!(who.authenticated);
}

#[tokio::test]
async fn server_errors_are_retried_and_429_honours_retry_after() {
    let sim = tree();
    let c = client(&sim);
    sim.add_fault(Fault::status(503).on(RouteKind::Api).times(2))
        .unwrap();
    c.poll(3).await.unwrap();
    assert_eq!(sim.request_count(), 3, "two 503s, then success");

    sim.clear_requests();
    sim.add_fault(Fault::too_many_requests(1).on(RouteKind::Api).times(1))
        .unwrap();
    let t = Instant::now();
    c.poll(3).await.unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(950),
        "Retry-After: 1 was honoured ({:?})",
        t.elapsed()
    );
    assert_eq!(sim.request_count(), 2);

    sim.clear_requests();
    sim.add_fault(Fault::status(500).on(RouteKind::Api))
        .unwrap();
    let err = c.poll(3).await.unwrap_err();
    assert!(
        matches!(
            err,
            JenkinsError::Status {
                status: 500,
                attempts: 5,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(sim.request_count(), 5);
    sim.clear_faults();

    // An HTML page where JSON was expected is an error, never parsed.
    sim.add_fault(Fault::status(502).on(RouteKind::Api))
        .unwrap();
    let err = c.poll(3).await.unwrap_err();
    assert!(err.to_string().contains("502"), "{err}");
}

#[tokio::test]
async fn broken_downloads_surface_as_errors() {
    let sim = tree();
    let c = client(&sim);
    let app = JobPath::new(["My Team", "Déploiement", "app (1)+x"]);
    let url = c.artifact_url(&app, "3", "dist/my app+ü.jar");
    sim.add_fault(Fault::reset_after(1000).on(RouteKind::Artifact).times(1))
        .unwrap();
    assert!(
        body(&c, &url).await.is_err(),
        "a reset mid-body is an error"
    );
    sim.add_fault(Fault::stall_after(100).on(RouteKind::Artifact).times(1))
        .unwrap();
    let mut cfg = config(&sim, "memory://", "").jenkins[0].clone();
    cfg.read_timeout = Duration::from_millis(300);
    let quick = JenkinsClient::new(&cfg).unwrap();
    let t = Instant::now();
    assert!(
        body(&quick, &url).await.is_err(),
        "a stalled body times out"
    );
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(body(&c, &url).await.is_ok());
    let missing = c.artifact_url(&app, "3", "nope.txt");
    assert!(c.download(&missing).await.err().unwrap().is_not_found());
}

#[tokio::test]
async fn redirected_downloads_never_carry_the_token() {
    for mode in [RedirectMode::S3, RedirectMode::ResourceRoot] {
        let sim = tree();
        sim.set_redirect_mode(mode);
        let c = client(&sim);
        let app = JobPath::new(["My Team", "Déploiement", "app (1)+x"]);
        let url = c.artifact_url(&app, "3", "dist/my app+ü.jar");
        let bytes = body(&c, &url)
            .await
            .unwrap_or_else(|e| panic!("{mode:?}: {e}"));
        assert_eq!(bytes.len(), 4000);
        let reqs = sim.requests();
        let first = reqs
            .iter()
            .find(|r| r.listener == Listener::Main && r.path.contains("/artifact/"))
            .unwrap();
        assert_eq!(first.status, 302, "{mode:?}");
        assert!(first.authorization);
        let hop = reqs
            .iter()
            .find(|r| r.listener != Listener::Main)
            .expect("redirect followed");
        assert!(
            !hop.authorization,
            "{mode:?}: Authorization followed the redirect to another host"
        );
        assert_eq!(hop.status, 200);
    }
}

/// A download holds one of the controller's request slots while Jenkins sends, not after: once its body
/// has ended, the slot is free for the next request though the stream is still held (as the store still
/// writes a small artifact whose bytes have all arrived). With one slot, a second download opens while the
/// first, read to its end, is still alive.
#[tokio::test]
async fn a_download_frees_its_request_slot_when_its_body_ends() {
    let sim = tree();
    let cfg = config(&sim, "memory://", "");
    let mut one = cfg.jenkins[0].clone();
    one.max_requests = 1;
    let c = JenkinsClient::new(&one).unwrap();
    let app = JobPath::new(["My Team", "Déploiement", "app (1)+x"]);
    let url = c.artifact_url(&app, "3", "dist/my app+ü.jar");
    let mut first = c.download(&url).await.unwrap();
    let mut got = 0;
    while let Some(chunk) = first.body.next().await {
        got += chunk.unwrap().len();
    }
    assert_eq!(got, 4000);
    let second = tokio::time::timeout(Duration::from_secs(10), body(&c, &url))
        .await
        .expect("the ended download still held the only request slot");
    assert_eq!(second.unwrap().len(), 4000);
    drop(first);
}
