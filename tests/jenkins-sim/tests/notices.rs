//! Build notices (API.md §10.5, §10.6): a receiver in the test records every POST together
//! with what the simulator's API said about the build at that moment, so each notice's order,
//! exact document and timing against `building`/`inProgress` can be checked.

mod common;
use common::receiver::{Got, Receiver, Reply};
use common::*;
use jenkins_sim::*;
use serde_json::{Value, json};
use std::time::Duration;

/// The probe for plugin documents: the build's relative `url`.
fn plugin_probe(doc: &Value) -> String {
    doc["build"]["url"].as_str().unwrap_or("").to_string()
}

const T0: i64 = 1_767_226_012_345;

fn git() -> GitSpec {
    GitSpec {
        sha1: "9fceb02d0ae598e95dc970b74767f19372d61af8".into(),
        branch: "refs/remotes/origin/main".into(),
        remote_url: "https://git.example.com/team/app.git".into(),
        commits: vec![CommitSpec {
            id: "9fceb02".into(),
            message: "Fix the build".into(),
            author: "alice".into(),
            author_email: "alice@example.com".into(),
            timestamp: T0 - 60_000,
            paths: vec!["src/main.rs".into()],
        }],
    }
}

fn base() -> Scenario {
    Scenario::default().with_user("alice", "11aaaa").with_item(
        ItemSpec::folder("team")
            .with_job(ItemSpec::freestyle("app"))
            .with_job(ItemSpec::pipeline("pipe")),
    )
}

/// `timestamp` must lie in `[lo, hi]`; returns the document with it set to 0.
fn now_stamped(doc: &str, lo: i64, hi: i64) -> String {
    let v: Value = serde_json::from_str(doc).unwrap();
    let ts = v["build"]["timestamp"].as_i64().unwrap();
    assert!(
        lo <= ts && ts <= hi,
        "timestamp {ts} not in [{lo}, {hi}]: {doc}"
    );
    doc.replacen(&format!("\"timestamp\":{ts}"), "\"timestamp\":0", 1)
}

#[test]
fn plugin_notices_follow_the_build_timeline_with_exact_documents() {
    let sim = Sim::start(base().with_root_url("https://ci.example.com/"));
    let rx = Receiver::start(sim.url(), plugin_probe, |_| Reply::Status(200));
    sim.add_notifier(Notifier::plugin(&format!(
        "{}/hook/$JOB_BASE_NAME?b=${{BUILD_NUMBER}}",
        rx.url.replacen("http://", "http://jam:s%40cret@", 1)
    )))
    .unwrap();
    let before = jenkins_sim_now();
    let spec = BuildSpec {
        parameters: vec![
            ParamSpec {
                name: "TARGET".into(),
                value: json!("linux-x64"),
            },
            ParamSpec {
                name: "NOTE".into(),
                value: json!("a=b&c<d>'"),
            },
        ],
        git: Some(git()),
        queue_id: Some(1187),
        ..BuildSpec::running(42).at(T0)
    };
    assert_eq!(sim.add_build("team/app", spec).unwrap(), 42);
    let after = jenkins_sim_now();
    // QUEUED then STARTED, both sent once the build shows as running, before add_build returns.
    let got = rx.got();
    assert_eq!(got.len(), 2);
    for g in &got {
        assert_eq!(g.path, "/hook/app?b=42");
        assert_eq!(g.header("Authorization"), Some("Basic amFtOnMlNDBjcmV0"));
        assert_eq!(
            g.header("Content-Type"),
            Some("application/json;charset=UTF-8")
        );
        assert!(g.header("User-Agent").unwrap().starts_with("Java/"));
        assert_eq!(g.api["building"], true);
        assert_eq!(g.api["inProgress"], true);
        assert_eq!(g.api["result"], Value::Null);
    }
    let started = concat!(
        r#"{"name":"app","display_name":"app","url":"job/team/job/app/","build":{"#,
        r#""full_url":"https://ci.example.com/job/team/job/app/42/","number":42,"queue_id":1187,"#,
        r#""timestamp":1767226012345,"duration":0,"phase":"STARTED","url":"job/team/job/app/42/","#,
        r#""scm":{"changes":[],"culprits":[]},"#,
        r#""parameters":{"TARGET":"linux-x64","NOTE":"a\u003db\u0026c\u003cd\u003e\u0027"},"#,
        r#""log":"","artifacts":{}}}"#
    );
    assert_eq!(got[1].body, started);
    assert_eq!(
        now_stamped(&got[0].body, before, after),
        started
            .replace("STARTED", "QUEUED")
            .replace("1767226012345", "0")
    );
    // The build archives, then finishes: COMPLETED with building false (a freestyle build
    // still in progress), then FINALIZED once inProgress is false.
    sim.add_artifacts(
        "team/app",
        42,
        vec![
            ArtifactSpec::text("dist/app.tar.gz", "tgz"),
            ArtifactSpec::text("dist/app.sha256", "sum"),
        ],
    )
    .unwrap();
    sim.apply(Command::FinishBuild {
        job: "team/app".into(),
        number: 42,
        result: BuildResult::Success,
        duration_ms: Some(73_410),
    })
    .unwrap();
    let done = jenkins_sim_now();
    let got = rx.got();
    assert_eq!(got.len(), 4);
    let completed = concat!(
        r#"{"name":"app","display_name":"app","url":"job/team/job/app/","build":{"#,
        r#""full_url":"https://ci.example.com/job/team/job/app/42/","number":42,"queue_id":1187,"#,
        r#""timestamp":1767226085755,"duration":73410,"phase":"COMPLETED","status":"SUCCESS","#,
        r#""url":"job/team/job/app/42/","#,
        r#""scm":{"url":"https://git.example.com/team/app.git","branch":"origin/main","#,
        r#""commit":"9fceb02d0ae598e95dc970b74767f19372d61af8","changes":["src/main.rs"],"culprits":["alice"]},"#,
        r#""parameters":{"TARGET":"linux-x64","NOTE":"a\u003db\u0026c\u003cd\u003e\u0027"},"log":"","#,
        r#""artifacts":{"dist/app.sha256":{"archive":"https://ci.example.com/job/team/job/app/42/artifact/dist/app.sha256"},"#,
        r#""dist/app.tar.gz":{"archive":"https://ci.example.com/job/team/job/app/42/artifact/dist/app.tar.gz"}}}}"#
    );
    assert_eq!(got[2].body, completed);
    assert_eq!(got[2].api["building"], false);
    assert_eq!(got[2].api["inProgress"], true);
    assert_eq!(got[2].api["result"], "SUCCESS");
    assert_eq!(got[2].api["artifacts"].as_array().unwrap().len(), 2);
    assert_eq!(
        now_stamped(&got[3].body, after, done),
        completed
            .replace("COMPLETED", "FINALIZED")
            .replace("1767226085755", "0")
    );
    assert_eq!(got[3].api["building"], false);
    assert_eq!(got[3].api["inProgress"], false);
    // The simulator's own log: one successful attempt per phase, URL without user info.
    let log = sim.notices();
    let phases: Vec<Option<Phase>> = log.iter().map(|r| r.phase).collect();
    assert_eq!(
        phases,
        [
            Some(Phase::Queued),
            Some(Phase::Started),
            Some(Phase::Completed),
            Some(Phase::Finalized)
        ]
    );
    for r in &log {
        assert_eq!(
            (r.attempt, r.status, r.error.as_deref()),
            (1, Some(200), None)
        );
        assert_eq!(r.url, format!("{}/hook/app?b=42", rx.url));
        assert_eq!((r.job.as_str(), r.number), ("team/app", 42));
    }
}

fn jenkins_sim_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn event_and_branch_filters_and_branch_job_documents() {
    let sim = Sim::start(
        Scenario::default().with_user("alice", "11aaaa").with_item(
            ItemSpec::multibranch("svc")
                .with_job(ItemSpec::new("feature/x", ItemKind::Pipeline))
                .with_job(ItemSpec::new("main", ItemKind::Pipeline)),
        ),
    );
    let rx = Receiver::start(sim.url(), plugin_probe, |_| Reply::Status(204));
    let finalized = sim
        .add_notifier(Notifier::plugin(&format!("{}/finalized", rx.url)).event("finalized"))
        .unwrap();
    let main_only = sim
        .add_notifier(Notifier {
            branch: "ma.n".into(),
            ..Notifier::plugin(&format!("{}/main", rx.url))
        })
        .unwrap();
    let failures = sim
        .add_notifier(Notifier::plugin(&format!("{}/fail", rx.url)).event("failedAndFirstSuccess"))
        .unwrap();
    let run = |branch: &str, n: u64, r: BuildResult| {
        let job = format!("svc/{branch}");
        sim.add_build(
            &job,
            BuildSpec {
                git: Some(GitSpec {
                    branch: branch.into(),
                    ..git()
                }),
                ..BuildSpec::running(n).at(T0)
            }
            .with_artifact(ArtifactSpec::text("out/svc.tar.gz", "x")),
        )
        .unwrap();
        sim.finish_build(&job, n, r).unwrap();
    };
    run("feature/x", 1, BuildResult::Failure);
    run("feature/x", 2, BuildResult::Success);
    run("feature/x", 3, BuildResult::Success);
    run("main", 1, BuildResult::Success);
    let got = rx.got();
    let seen = |prefix: &str| -> Vec<(String, u64, String)> {
        got.iter()
            .filter(|g| g.path == prefix)
            .map(|g| {
                let d = g.json();
                (
                    d["name"].as_str().unwrap().to_string(),
                    d["build"]["number"].as_u64().unwrap(),
                    d["build"]["phase"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let t = |name: &str, n: u64, p: &str| (name.to_string(), n, p.to_string());
    assert_eq!(
        seen("/finalized"),
        [
            t("feature%2Fx", 1, "FINALIZED"),
            t("feature%2Fx", 2, "FINALIZED"),
            t("feature%2Fx", 3, "FINALIZED"),
            t("main", 1, "FINALIZED")
        ]
    );
    assert_eq!(
        seen("/main"),
        ["QUEUED", "STARTED", "COMPLETED", "FINALIZED"].map(|p| t("main", 1, p))
    );
    // A failure, then the first success after it; not the second success.
    assert_eq!(
        seen("/fail"),
        [
            t("feature%2Fx", 1, "FINALIZED"),
            t("feature%2Fx", 2, "FINALIZED")
        ]
    );
    // The branch filter skipped feature/x for the main-only endpoint, and said why.
    let skipped: Vec<_> = sim
        .notices()
        .into_iter()
        .filter(|r| r.notifier == main_only && r.attempt == 0)
        .collect();
    assert_eq!(skipped.len(), 12, "{skipped:#?}");
    assert!(skipped[0].error.as_deref().unwrap().contains("BRANCH_NAME"));
    let log = sim.notices();
    assert!(log.iter().all(|r| r.attempt == 0 || r.status == Some(204)));
    for id in [finalized, failures] {
        assert!(
            log.iter()
                .filter(|r| r.notifier == id)
                .all(|r| r.attempt == 1)
        );
    }
    // A branch job's document: stored name, encoded url, Pipeline scm without changes or
    // culprits, no full_url without a configured root URL (and archive URLs start with null).
    let doc = got.iter().find(|g| g.path == "/finalized").unwrap().json();
    assert_eq!(doc["display_name"], "feature/x");
    assert_eq!(doc["url"], "job/svc/job/feature%252Fx/");
    assert_eq!(doc["build"]["url"], "job/svc/job/feature%252Fx/1/");
    assert_eq!(doc["build"].get("full_url"), None);
    assert_eq!(doc["build"]["status"], "FAILURE");
    assert_eq!(
        doc["build"]["scm"],
        json!({"url": "https://git.example.com/team/app.git", "branch": "feature/x",
               "commit": "9fceb02d0ae598e95dc970b74767f19372d61af8", "changes": [], "culprits": []})
    );
    assert_eq!(
        doc["build"]["artifacts"],
        json!({"out/svc.tar.gz": {"archive": "nulljob/svc/job/feature%252Fx/1/artifact/out/svc.tar.gz"}})
    );
    assert_eq!(doc["build"].get("parameters"), None);
}

#[test]
fn receiver_status_is_ignored_failures_retried_and_307_followed() {
    let sim = Sim::start(base());
    // Answers: 500, drop (a failure), 200, 200, then 307 → the moved URL, then 200s.
    let rx = Receiver::start(sim.url(), plugin_probe, |k| match k {
        0 => Reply::Status(500),
        1 => Reply::Drop,
        4 => Reply::Redirect,
        _ => Reply::Status(200),
    });
    sim.add_notifier(Notifier::plugin(&format!("{}/n", rx.url)).retries(2))
        .unwrap();
    sim.add_build("team/app", BuildSpec::running(1)).unwrap();
    sim.finish_build("team/app", 1, BuildResult::Failure)
        .unwrap();
    let got = rx.got();
    let phases: Vec<(String, String)> = got
        .iter()
        .map(|g| {
            (
                g.path.clone(),
                g.json()["build"]["phase"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let p = |path: &str, phase: &str| (path.to_string(), phase.to_string());
    assert_eq!(
        phases,
        [
            // A 500 is not a failure: no retry.
            p("/n", "QUEUED"),
            // The dropped connection is; the plugin's loop then uses up every retry, even
            // after a success.
            p("/n", "STARTED"),
            p("/n", "STARTED"),
            p("/n", "STARTED"),
            // The 307 is re-POSTed to its Location.
            p("/n", "COMPLETED"),
            p("/n/moved", "COMPLETED"),
            p("/n", "FINALIZED"),
        ]
    );
    let attempts: Vec<(Option<Phase>, u32, Option<u16>, bool)> = sim
        .notices()
        .iter()
        .map(|r| (r.phase, r.attempt, r.status, r.error.is_some()))
        .collect();
    assert_eq!(
        attempts,
        [
            (Some(Phase::Queued), 1, Some(500), false),
            (Some(Phase::Started), 1, None, true),
            (Some(Phase::Started), 2, Some(200), false),
            (Some(Phase::Started), 3, Some(200), false),
            (Some(Phase::Completed), 1, Some(200), false),
            (Some(Phase::Finalized), 1, Some(200), false),
        ]
    );
    // The build went on regardless.
    let v = get_as(
        &sim.url(),
        "/job/team/job/app/1/api/json",
        "alice",
        "11aaaa",
    )
    .json();
    assert_eq!(
        (v["building"].clone(), v["result"].clone()),
        (json!(false), json!("FAILURE"))
    );
}

#[test]
fn a_slow_receiver_holds_the_build_until_the_timeout() {
    let sim = Sim::start(base());
    let rx = Receiver::start(sim.url(), plugin_probe, |_| {
        Reply::Slow(Duration::from_secs(2))
    });
    sim.add_notifier(
        Notifier::plugin(&format!("{}/slow", rx.url))
            .event("started")
            .timeout(Duration::from_millis(300)),
    )
    .unwrap();
    let t = std::time::Instant::now();
    sim.add_build("team/app", BuildSpec::running(1)).unwrap();
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(2),
        "{took:?}"
    );
    let log = sim.notices();
    assert_eq!(log.len(), 1);
    assert!(
        log[0]
            .error
            .as_deref()
            .unwrap()
            .contains("reading the answer"),
        "{log:?}"
    );
}

#[test]
fn pipeline_post_notices_are_sent_while_the_build_still_runs() {
    let sim = Sim::start(base().with_root_url("https://ci.example.com/"));
    let probe = |doc: &Value| {
        if doc.get("build").is_some() {
            return plugin_probe(doc);
        }
        let n = doc["number"]
            .as_u64()
            .or_else(|| doc["n"].as_u64())
            .unwrap();
        format!("job/team/job/pipe/{n}/")
    };
    let rx = Receiver::start(sim.url(), probe, |_| Reply::Status(200));
    sim.add_notifier(
        Notifier::pipeline_post(&format!("{}/post", rx.url))
            .header("Authorization", "Bearer t0k3n")
            .jobs(&["team/pipe"]),
    )
    .unwrap();
    sim.add_notifier(Notifier {
        body: Some(
            json!({"text": "${JOB_NAME} #${BUILD_NUMBER}: ${RESULT}", "n": "${BUILD_NUMBER}",
                          "branch": "${BRANCH_NAME}", "tags": ["$JOB_BASE_NAME", 1]}),
        ),
        ..Notifier::pipeline_post(&format!("{}/custom", rx.url)).header("X-Hook-Token", "abc")
    })
    .unwrap();
    sim.add_notifier(Notifier::plugin(&format!("{}/plugin", rx.url)).event("completed"))
        .unwrap();
    // A freestyle job has no Pipeline post step: only the plugin notice.
    sim.add_build("team/app", BuildSpec::running(1)).unwrap();
    sim.finish_build("team/app", 1, BuildResult::Success)
        .unwrap();
    assert_eq!(
        rx.got().iter().map(|g| g.path.as_str()).collect::<Vec<_>>(),
        ["/plugin"]
    );
    sim.add_build("team/pipe", BuildSpec::running(3)).unwrap();
    sim.finish_build("team/pipe", 3, BuildResult::Failure)
        .unwrap();
    let got: Vec<Got> = rx.got().into_iter().skip(1).collect();
    assert_eq!(
        got.iter().map(|g| g.path.as_str()).collect::<Vec<_>>(),
        ["/post", "/custom", "/plugin"]
    );
    let post = &got[0];
    assert_eq!(
        post.body,
        r#"{"job":"team/pipe","number":3,"result":"FAILURE","url":"https://ci.example.com/job/team/job/pipe/3/"}"#
    );
    assert_eq!(post.header("Authorization"), Some("Bearer t0k3n"));
    assert_eq!(
        post.header("Content-Type"),
        Some("application/json; charset=UTF-8")
    );
    // Sent from the post block: the build is still running and its result not yet set.
    for g in &got[..2] {
        assert_eq!(g.api["building"], true, "{}", g.body);
        assert_eq!(g.api["result"], Value::Null, "{}", g.body);
    }
    assert_eq!(
        got[1].body,
        r#"{"text":"team/pipe #3: FAILURE","n":3,"branch":null,"tags":["pipe",1]}"#
    );
    assert_eq!(got[1].header("X-Hook-Token"), Some("abc"));
    assert_eq!(got[1].header("Authorization"), None);
    assert_eq!(got[2].api["building"], false);
    let log = sim.notices();
    assert!(
        log.iter()
            .filter(|r| r.phase.is_none())
            .all(|r| r.style == NoticeStyle::PipelinePost)
    );
}

#[test]
fn a_build_added_finished_goes_through_every_phase() {
    let sim = Sim::start(base());
    let rx = Receiver::start(sim.url(), plugin_probe, |_| Reply::Status(200));
    sim.add_notifier(Notifier::plugin(&format!("{}/n", rx.url)).jobs(&["team"]))
        .unwrap();
    let spec = BuildSpec::finished(5, BuildResult::Unstable)
        .at(T0)
        .with_artifact(ArtifactSpec::sized("dist/app.bin", 1000));
    sim.add_build(
        "team/app",
        BuildSpec {
            duration: Some(5_000),
            ..spec
        },
    )
    .unwrap();
    let got = rx.got();
    let seen: Vec<(String, Value, usize)> = got
        .iter()
        .map(|g| {
            let d = g.json();
            (
                d["build"]["phase"].as_str().unwrap().to_string(),
                g.api["building"].clone(),
                g.api["artifacts"].as_array().unwrap().len(),
            )
        })
        .collect();
    let s = |p: &str, building: bool, arts: usize| (p.to_string(), json!(building), arts);
    assert_eq!(
        seen,
        [
            s("QUEUED", true, 0),
            s("STARTED", true, 0),
            s("COMPLETED", false, 1),
            s("FINALIZED", false, 1)
        ]
    );
    let completed = got[2].json();
    assert_eq!(completed["build"]["timestamp"], T0 + 5_000);
    assert_eq!(completed["build"]["duration"], 5_000);
    assert_eq!(completed["build"]["status"], "UNSTABLE");
    // The API ends where a build added without notifiers would be.
    let v = get_as(
        &sim.url(),
        "/job/team/job/app/5/api/json",
        "alice",
        "11aaaa",
    )
    .json();
    assert_eq!(v["result"], "UNSTABLE");
    assert_eq!(v["duration"], 5_000);
    assert_eq!(v["timestamp"], T0);
    // A job outside `jobs` sends nothing.
    sim.add_item("", ItemSpec::freestyle("other")).unwrap();
    sim.add_build("other", BuildSpec::finished(1, BuildResult::Success))
        .unwrap();
    assert_eq!(rx.got().len(), 4);
}

#[test]
fn notifiers_from_the_scenario_file_and_the_control_endpoint() {
    let sc = Scenario::from_toml_str(
        r#"
        [[users]]
        name = "alice"
        token = "11aaaa"

        [[jobs]]
        name = "app"

        [[notifications]]
        url = "http://127.0.0.1:9/never"
        event = "finalized"
        jobs = ["nothing-here"]
        "#,
    )
    .unwrap();
    assert_eq!(sc.notifications[0].event, "finalized");
    let sim = Sim::start(sc);
    let rx = Receiver::start(sim.url(), plugin_probe, |_| Reply::Status(200));
    // Over HTTP: install, build, read the log, remove.
    let r = post_json(
        &sim.url(),
        "/_sim/command",
        &json!({"op": "add_notifier", "notifier": {"url": format!("{}/h", rx.url), "event": "completed"}}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let id = r.json()["id"].as_u64().unwrap();
    let r = post_json(
        &sim.url(),
        "/_sim/command",
        &json!({"op": "add_build", "job": "app", "build": {"number": 1, "result": "SUCCESS"}}),
    );
    assert_eq!(r.json(), json!({"number": 1}));
    assert_eq!(rx.got().len(), 1);
    let log = get(&sim.url(), "/_sim/notices").json();
    assert_eq!(log.as_array().unwrap().len(), 1);
    assert_eq!(log[0]["phase"], "COMPLETED");
    assert_eq!(log[0]["notifier"], id);
    assert_eq!(
        request("DELETE", &sim.url(), "/_sim/notices", &[]).status,
        200
    );
    assert!(sim.notices().is_empty());
    let bad = post_json(
        &sim.url(),
        "/_sim/command",
        &json!({"op": "add_notifier", "notifier": {"url": "http://x/", "event": "sometimes"}}),
    );
    assert_eq!(bad.status, 400, "{}", bad.text());
    let bad = post_json(
        &sim.url(),
        "/_sim/command",
        &json!({"op": "add_notifier", "notifier": {"url": "http://x/", "headers": {"A": "b"}}}),
    );
    assert_eq!(bad.status, 400, "{}", bad.text());
    assert_eq!(
        post_json(
            &sim.url(),
            "/_sim/command",
            &json!({"op": "remove_notifier", "id": id})
        )
        .status,
        200
    );
    sim.add_build("app", BuildSpec::finished(2, BuildResult::Success))
        .unwrap();
    assert_eq!(rx.got().len(), 1);
}
