//! The exact text of the messages users see most, pinned: a job that is not in the mirror (with the jobs
//! it holds, nearest first, capped), a glob that matches no artifact (with what the build has), a build or
//! source that is not there, a token Jenkins refuses, and a store that denies writes. Each names what was
//! asked, lists what exists, and says what to do. They go through the `jam` binary where that is what
//! users see.

use jam::store::StoreError;
use jenkins_sim::{ArtifactSpec, BuildResult, BuildSpec, ItemSpec, Sim};

use crate::{
    cli::{World, stderr, world, world_with},
    harness,
    s3_faults::{PrivateWeed, jam_mirror_once},
};

/// Runs `jam` in the world and returns (exit code, stderr).
fn jam(w: &World, args: &[&str]) -> (Option<i32>, String) {
    let out = w.jam().args(args).output().unwrap();
    (out.status.code(), stderr(&out))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_not_in_the_mirror_is_named_with_the_jobs_it_holds() {
    let w = world().await;
    let listed = "; it holds 2 jobs, nearest first:\n  team/app\n  svc/feature%2Fx\n\
                  `jam ls` lists them with their latest builds\n";
    assert_eq!(
        jam(&w, &["fetch", "team/nope"]),
        (
            Some(3),
            format!("error: no job 'team/nope' in the mirror (source 'ci'){listed}")
        )
    );
    assert_eq!(
        jam(&w, &["ls", "nope"]),
        (
            Some(3),
            format!("error: no job 'nope' in the mirror (source 'ci'){listed}")
        )
    );
    // A source the store does not hold is named with the ones it does.
    assert_eq!(
        jam(&w, &["verify", "team/app", "--source", "other"]),
        (
            Some(3),
            format!(
                "error: no source 'other' in the store at {}; it holds: ci; choose one with --source\n",
                w.store_dir.display()
            )
        )
    );
    // On Jenkins there is no list to offer, but the controller is named.
    assert_eq!(
        jam(&w, &["fetch", "team/nope", "--from", "jenkins"]),
        (
            Some(3),
            format!(
                "error: no job 'team/nope' on Jenkins at {} (or the user cannot see it); check the name, or \
                 paste the job's URL from the browser\n",
                w.sim.url()
            )
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_list_of_jobs_is_capped_nearest_first() {
    let jobs = (1..=13)
        .map(|i| {
            ItemSpec::freestyle(&format!("app-{i:02}")).with_build(
                BuildSpec::finished(1, BuildResult::Success)
                    .with_artifact(ArtifactSpec::text("a.txt", "a\n")),
            )
        })
        .collect();
    let w = world_with(jobs).await;
    assert_eq!(
        jam(&w, &["fetch", "app-1"]),
        (
            Some(3),
            "error: no job 'app-1' in the mirror (source 'ci'); it holds 13 jobs, nearest first:\n  \
             app-01\n  app-10\n  app-11\n  app-12\n  app-13\n  app-02\n  app-03\n  app-04\n  app-05\n  \
             app-06\n  ... and 3 more\n`jam ls` lists them with their latest builds\n"
                .into()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_glob_matching_nothing_lists_what_the_build_has() {
    let w = world().await;
    assert_eq!(
        jam(
            &w,
            &[
                "fetch", "team/app", "-b", "1", "-a", "*.exe", "-a", "dist/*"
            ]
        ),
        (
            Some(3),
            "error: no artifact of team/app #1 matches '*.exe'; the build has:\n  dist/app.bin\n  \
             dist/lib/core.jar\n  other/app.bin\n  reports/summary.txt\n\
             globs match the whole relative path: `*` stays within a directory, `**` crosses them\n"
                .into()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_that_is_not_there_is_named_with_the_builds_that_are() {
    let w = world().await;
    assert_eq!(
        jam(&w, &["fetch", "team/app", "-b", "99"]),
        (
            Some(3),
            "error: no build #99 of team/app in the mirror; it holds #3, #2, #1; `jam ls team/app` lists \
             them with their results\n"
                .into()
        )
    );
    assert_eq!(
        jam(&w, &["ls", "svc/feature/x", "-b", "lastFailed"]),
        (
            Some(3),
            "error: no lastFailedBuild of svc/feature%2Fx in the mirror; it holds #1; \
             `jam ls svc/feature%2Fx` lists them with their results\n"
                .into()
        )
    );
    assert_eq!(
        jam(&w, &["fetch", "team/app", "-b", "99", "--from", "jenkins"]),
        (
            Some(3),
            format!(
                "error: no build #99 of team/app on Jenkins at {}; Jenkins keeps #3, #2, #1; choose one \
                 with --build\n",
                w.sim.url()
            )
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_says_what_to_do() {
    let w = world().await;
    let out = w
        .jam()
        .env("JENKINS_API_TOKEN", "11wrongwrongwrongwrongwrongwrongwr")
        .args(["fetch", "team/app", "--from", "jenkins"])
        .output()
        .unwrap();
    assert_eq!(
        (out.status.code(), stderr(&out)),
        (
            Some(1),
            format!(
                "error: Jenkins at {} refused the credentials of user '{}' (401): the API token is wrong, \
                 expired or revoked; create a new token (user menu > Security > API Token) and update the \
                 token file or JENKINS_API_TOKEN\n",
                w.sim.url(),
                harness::USER
            )
        )
    );
}

/// The hint jam adds to a store's 403.
const MAY_WRITE: &str = "; check that the credentials may write the bucket (s3:PutObject, s3:DeleteObject, \
                         s3:AbortMultipartUpload)";

#[test]
fn a_store_that_denies_writes_says_which_permissions_are_needed() {
    // The library's text, whole.
    let denied = StoreError::Op {
        op: "put",
        key: "ci/job/app/1/SHA256SUMS".into(),
        source: object_store::Error::PermissionDenied {
            path: "x/ci/job/app/1/SHA256SUMS".into(),
            source: "403 Forbidden".into(),
        },
    };
    assert_eq!(
        denied.to_string(),
        format!(
            "store put 'ci/job/app/1/SHA256SUMS' failed: The operation lacked the necessary privileges to \
             complete for path x/ci/job/app/1/SHA256SUMS: 403 Forbidden{MAY_WRITE}"
        )
    );

    // What `jam mirror --once` says against a SeaweedFS identity that may read but not write: jam's frame
    // around the server's answer (which carries ports, timings and request ids).
    let Some(weed) = PrivateWeed::start() else {
        return;
    };
    let sim = Sim::start(
        harness::scenario().with_item(
            ItemSpec::freestyle("app").with_build(
                BuildSpec::finished(1, BuildResult::Success)
                    .with_artifact(ArtifactSpec::sized("a.bin", 100)),
            ),
        ),
    );
    let out = jam_mirror_once(&sim, &weed.env(true), &weed.bucket)
        .env("JAM_LOG_FORMAT", "json")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    // The first write is the start-up probe of conditional writes (under .jam/probe/), before anything
    // is downloaded.
    let log = stderr(&out);
    let at = log
        .find("error: ")
        .unwrap_or_else(|| panic!("no error printed: {log}"));
    let error = log[at + "error: ".len()..].trim_end();
    let head = "store create '.jam/probe/";
    assert!(
        error.starts_with(head) && error.contains("403 Forbidden") && error.ends_with(MAY_WRITE),
        "{error}"
    );
    assert!(!log.contains("/artifact/"), "nothing was downloaded: {log}");
}
