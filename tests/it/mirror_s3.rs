//! The mirror into a real S3 server (SeaweedFS), checked from outside with an independent S3 client: the
//! aws CLI downloads the artifacts and `sha256sum -c` checks them against the build's `SHA256SUMS`.

use std::process::Command;

use jam::format::layout::{JobPath, Permalink};
use jenkins_sim::{ArtifactSpec, BuildResult, BuildSpec, ItemKind, ItemSpec, Sim};

use crate::{
    harness::{self, assert_build_mirrored, config, mirror_once, pointer_number},
    support::{self, S3Kind},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_into_seaweedfs_matches_an_independent_client() {
    let Some(target) = support::s3_target(S3Kind::Seaweed) else {
        return;
    };
    let sim = Sim::start(
        harness::scenario()
            .with_item(
                ItemSpec::freestyle("app")
                    .with_build(
                        BuildSpec::finished(1, BuildResult::Success)
                            .with_artifact(ArtifactSpec::sized("dist/app.bin", 21 << 20))
                            .with_artifact(ArtifactSpec::sized("dist/notes.txt", 999))
                            .with_artifact(
                                ArtifactSpec::sized("reports/summary.json", 5000)
                                    .without_fingerprint(),
                            ),
                    )
                    .with_build(
                        BuildSpec::finished(2, BuildResult::Unstable)
                            .with_artifact(ArtifactSpec::sized("dist/app.bin", 3000)),
                    ),
            )
            .with_item(
                ItemSpec::multibranch("svc").with_job(
                    ItemSpec::new("feature/x", ItemKind::Pipeline).with_build(
                        BuildSpec::finished(7, BuildResult::Success)
                            .with_artifact(ArtifactSpec::sized("out/x y.bin", 4000)),
                    ),
                ),
            ),
    );
    let url = format!("s3://{}/{}", target.env.bucket, target.prefix);
    let mut cfg = config(&sim, &url, "");
    cfg.store = support::s3_config(&target.env, &url);
    let store = target.store.clone();
    let summary = mirror_once(&cfg, &store).await;
    assert!(summary.ok(), "{summary:?}");

    let app = JobPath::new(["app"]);
    assert_build_mirrored(&store, &sim, &app, "app", 1).await;
    assert_build_mirrored(&store, &sim, &app, "app", 2).await;
    let branch = JobPath::new(["svc", "feature%2Fx"]);
    assert_build_mirrored(&store, &sim, &branch, "svc/feature%2Fx", 7).await;
    assert_eq!(
        pointer_number(&store, &app, Permalink::LastSuccessfulBuild)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        pointer_number(&store, &app, Permalink::LastStableBuild)
            .await
            .unwrap(),
        1
    );

    // What another client sees: exactly the keys jam wrote, and the bytes sha256sum accepts.
    let keys = support::list_keys_with_cli(&target.env, &format!("{}/", target.prefix)).unwrap();
    let p = &target.prefix;
    for expected in [
        format!("{p}/ci/job/app/1/artifact/dist/app.bin"),
        format!("{p}/ci/job/app/1/SHA256SUMS"),
        format!("{p}/ci/job/app/1/manifest.json"),
        format!("{p}/ci/job/app/lastSuccessfulBuild.json"),
        format!("{p}/ci/job/app/index.json"),
        format!("{p}/ci/job/svc/job/feature%252Fx/7/artifact/out/x%20y.bin"),
    ] {
        assert!(
            keys.contains(&expected),
            "{expected} missing from {keys:#?}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let build = format!("s3://{}/{p}/ci/job/app/1", target.env.bucket);
    support::aws_cli(
        &target.env,
        &[
            "s3",
            "cp",
            "--recursive",
            "--quiet",
            &format!("{build}/artifact/"),
            dir.path().to_str().unwrap(),
        ],
    )
    .unwrap();
    support::aws_cli(
        &target.env,
        &[
            "s3",
            "cp",
            "--quiet",
            &format!("{build}/SHA256SUMS"),
            dir.path().to_str().unwrap(),
        ],
    )
    .unwrap();
    let check = Command::new("sha256sum")
        .args(["-c", "SHA256SUMS"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success(),
        "sha256sum -c failed: {out}{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert_eq!(out.matches(": OK").count(), 3, "{out}");

    // Nothing left half-done on the server.
    assert_eq!(
        support::pending_multipart_uploads(&target.env, p).unwrap(),
        Vec::<String>::new()
    );
}
