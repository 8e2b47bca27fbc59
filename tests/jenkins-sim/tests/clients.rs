//! Real clients against the simulator: `tests/clients/jenkins_clients.py` reads a folder job,
//! a multibranch branch `feature/x` and a job named with spaces and non-ASCII characters with
//! python-jenkins, jenkinsapi and api4jenkins (unmodified, from PyPI), and everything they
//! report must match the scenario: names, classes, colours, permalinks, build numbers and
//! results, and the SHA-256 of every artifact they downloaded.
//!
//! Needs `JAM_TEST_PYTHON`, a Python with the three clients (`tests/run.sh` exports its venv's).
//! Without it the test is skipped, except under `CI=true`, where it fails.

use jenkins_sim::clients::{python, run_clients};
use jenkins_sim::*;
use serde_json::{Value, json};

const APP: &str = "team/app";
const BRANCH: &str = "team/svc/feature%2Fx";
const UNICODE: &str = "Déploiement continu ☃";

fn scenario() -> Scenario {
    let app =
        ItemSpec::freestyle("app")
            .with_build(
                BuildSpec::finished(1, BuildResult::Success)
                    .with_artifact(ArtifactSpec::generated("dist/app.bin", 100 << 10, 11))
                    .with_artifact(ArtifactSpec::text("dist/notes.txt", "héllo wörld\n")),
            )
            .with_build(BuildSpec::finished(2, BuildResult::Failure))
            .with_build(
                BuildSpec::finished(3, BuildResult::Unstable)
                    .with_artifact(ArtifactSpec::generated("dist/app.bin", 70_001, 12)),
            )
            .with_build(BuildSpec::running(4));
    let branch = ItemSpec::new("feature/x", ItemKind::Pipeline)
        .with_build(
            BuildSpec::finished(5, BuildResult::Success)
                .with_artifact(ArtifactSpec::generated("out/svc.tar.gz", 64 << 10, 13))
                .with_artifact(ArtifactSpec::text(
                    "reports/unit tests/résumé.json",
                    "{\"passed\": 12}\n",
                )),
        )
        .with_build(BuildSpec::finished(6, BuildResult::Aborted));
    let unicode = ItemSpec::pipeline(UNICODE).with_build(
        BuildSpec::finished(1, BuildResult::Success).with_artifact(ArtifactSpec::generated(
            "bin/outil ☃.bin",
            10 << 10,
            14,
        )),
    );
    Scenario::default()
        .with_user("alice", "11aaaa")
        .with_item(
            ItemSpec::folder("team")
                .with_job(app)
                .with_job(ItemSpec::multibranch("svc").with_job(branch)),
        )
        .with_item(unicode)
}

/// What every client must report for one job.
struct Expect {
    name: &'static str,
    class: &'static str,
    color: &'static str,
    builds: &'static [u64],
    permalinks: Value,
}

fn expected() -> Vec<(&'static str, Expect)> {
    vec![
        (
            APP,
            Expect {
                name: "app",
                class: "FreeStyleProject",
                // Running build 4 after unstable 3.
                color: "yellow_anime",
                builds: &[4, 3, 2, 1],
                permalinks: json!({"firstBuild": 1, "lastBuild": 4, "lastCompletedBuild": 3,
                    "lastFailedBuild": 2, "lastStableBuild": 1, "lastSuccessfulBuild": 3,
                    "lastUnstableBuild": 3, "lastUnsuccessfulBuild": 3}),
            },
        ),
        (
            BRANCH,
            Expect {
                name: "feature%2Fx",
                class: "WorkflowJob",
                color: "aborted",
                builds: &[6, 5],
                permalinks: json!({"firstBuild": 5, "lastBuild": 6, "lastCompletedBuild": 6,
                    "lastFailedBuild": null, "lastStableBuild": 5, "lastSuccessfulBuild": 5,
                    "lastUnstableBuild": null, "lastUnsuccessfulBuild": 6}),
            },
        ),
        (
            UNICODE,
            Expect {
                name: UNICODE,
                class: "WorkflowJob",
                color: "blue",
                builds: &[1],
                permalinks: json!({"firstBuild": 1, "lastBuild": 1, "lastCompletedBuild": 1,
                    "lastFailedBuild": null, "lastStableBuild": 1, "lastSuccessfulBuild": 1,
                    "lastUnstableBuild": null, "lastUnsuccessfulBuild": null}),
            },
        ),
    ]
}

/// The scenario's truth about one build: `{number, result, building, artifacts}`.
fn build_truth(sim: &Sim, job: &str, n: u64) -> Value {
    let spec = scenario();
    let find = |items: &[ItemSpec], name: &str| -> Option<ItemSpec> {
        items.iter().find(|i| i.name == name).cloned()
    };
    let item = match job {
        APP => find(&find(&spec.jobs, "team").unwrap().jobs, "app"),
        BRANCH => find(
            &find(&find(&spec.jobs, "team").unwrap().jobs, "svc")
                .unwrap()
                .jobs,
            "feature/x",
        ),
        _ => find(&spec.jobs, job),
    }
    .unwrap();
    let b = item
        .builds
        .iter()
        .find(|b| b.number == Some(n))
        .unwrap_or_else(|| panic!("{job} #{n} is not in the scenario"));
    let mut artifacts = serde_json::Map::new();
    for a in &b.artifacts {
        let info = sim.artifact(job, n, &a.path).unwrap();
        artifacts.insert(
            a.path.clone(),
            json!({"sha256": info.digests().sha256, "size": info.size()}),
        );
    }
    json!({
        "number": n,
        "result": b.result.map(|r| r.as_str()),
        "building": b.building,
        "artifacts": artifacts,
    })
}

#[test]
fn python_jenkins_jenkinsapi_and_api4jenkins_read_what_the_scenario_holds() {
    let Some(python) = python() else { return };
    let sim = Sim::start(scenario());
    let spec = json!({
        "jobs": [
            {"name": APP, "builds": [2]},
            {"name": BRANCH},
            {"name": UNICODE},
        ],
        "strict_fingerprints": true,
    });
    let doc = run_clients(&python, &sim.url(), ("alice", "11aaaa"), &spec);
    assert_eq!(doc["errors"], json!([]), "{doc:#}");
    assert_eq!(
        doc["versions"],
        json!({"python-jenkins": "1.8.3", "jenkinsapi": "0.3.23", "api4jenkins": "2.1.0"}),
        "the pinned client versions (tests/run.sh)"
    );
    let version = Scenario::default().version;
    for client in ["python-jenkins", "jenkinsapi", "api4jenkins"] {
        let c = &doc[client];
        let ctx = |what: &str| format!("{client}: {what}\n{:#}", c);
        assert_eq!(
            c["server"]["version"],
            version.as_str(),
            "{}",
            ctx("version")
        );
        if client != "jenkinsapi" {
            assert_eq!(c["server"]["whoami"], "alice", "{}", ctx("whoami"));
        }
        let all: Vec<&str> = c["all_jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        for name in [APP, BRANCH, UNICODE] {
            assert!(all.contains(&name), "{}", ctx(&format!("{name} listed")));
        }
        for (name, want) in expected() {
            let job = &c["jobs"][name];
            let ctx = |what: &str| format!("{client} {name}: {what}\n{job:#}");
            // jenkinsapi names a job by its full name.
            let short = if client == "jenkinsapi" {
                name
            } else {
                want.name
            };
            assert_eq!(job["name"], short, "{}", ctx("name"));
            assert_eq!(job["full_name"], name, "{}", ctx("full name"));
            assert_eq!(job["class"], want.class, "{}", ctx("class"));
            assert_eq!(job["color"], want.color, "{}", ctx("color"));
            assert_eq!(
                job["build_numbers"],
                json!(want.builds),
                "{}",
                ctx("builds")
            );
            // Each permalink the client has a call for (jenkinsapi: six of the eight).
            let got = job["permalinks"].as_object().unwrap();
            let n_links = if client == "jenkinsapi" { 6 } else { 8 };
            assert_eq!(got.len(), n_links, "{}", ctx("permalinks read"));
            for (link, number) in got {
                assert_eq!(number, &want.permalinks[link], "{}", ctx(link));
            }
            // The builds the permalinks point at, plus the spec's, each with its artifacts.
            let mut wanted: Vec<u64> = got.values().filter_map(Value::as_u64).collect();
            if name == APP {
                wanted.push(2);
            }
            wanted.sort_unstable();
            wanted.dedup();
            let read: Vec<u64> = job["builds"]
                .as_object()
                .unwrap()
                .keys()
                .map(|k| k.parse().unwrap())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            assert_eq!(read, wanted, "{}", ctx("builds read"));
            for n in wanted {
                let mut truth = build_truth(&sim, name, n);
                // api4jenkins lists artifacts of Pipeline runs only (wfapi/artifacts).
                if client == "api4jenkins" && want.class == "FreeStyleProject" {
                    truth["artifacts"] = Value::Null;
                }
                assert_eq!(
                    job["builds"][n.to_string()],
                    truth,
                    "{}",
                    ctx(&format!("build {n}"))
                );
            }
        }
    }
    // What the clients did on the way, from the request log: each of them read the version
    // from `/`, jenkinsapi spoke api/python and validated fingerprints, api4jenkins used wfapi.
    let log = sim.requests();
    let seen = |method: &str, prefix: &str| {
        log.iter()
            .any(|r| r.method == method && r.path.starts_with(prefix) && r.status == 200)
    };
    assert!(seen("GET", "/crumbIssuer/api/json"));
    assert!(seen("GET", "/me/api/json"));
    assert!(seen("HEAD", "/"));
    assert!(seen("GET", "/api/python?tree="));
    assert!(seen("GET", "/fingerprint/"));
    assert!(seen(
        "GET",
        "/job/team/job/svc/job/feature%252Fx/5/wfapi/artifacts"
    ));
    assert!(
        log.iter().all(|r| r.status < 400),
        "a client met an error status: {:#?}",
        log.iter().filter(|r| r.status >= 400).collect::<Vec<_>>()
    );
}
