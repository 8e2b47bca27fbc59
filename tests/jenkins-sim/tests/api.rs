//! Behaviour of the controller API: serialization rules, auth answers, lookup rules.

mod common;
use common::*;
use jenkins_sim::*;
use serde_json::json;

fn scenario() -> Scenario {
    let mut job = ItemSpec::freestyle("simple-job");
    for n in (1..=130u64).filter(|n| *n != 41) {
        job.builds
            .push(BuildSpec::finished(n, BuildResult::Success).at(1_700_000_000_000 + n as i64));
    }
    job.builds
        .push(BuildSpec::running(131).at(1_700_000_100_000));
    Scenario::default()
        .with_root_url("https://ci.example.com/")
        .with_user("alice", "11aaaa")
        .with_user("bob", "11bbbb")
        .with_item(job)
        .with_item(
            ItemSpec::folder("My Team")
                .with_job(
                    ItemSpec::multibranch("app")
                        .with_job(
                            ItemSpec::new("feature/x", ItemKind::Pipeline).with_build(
                                BuildSpec::finished(7, BuildResult::Unstable).with_artifact(
                                    ArtifactSpec::generated("dist/app.tar.gz", 1000, 7),
                                ),
                            ),
                        )
                        .with_job(ItemSpec::new("main", ItemKind::Pipeline)),
                )
                .with_job(ItemSpec::freestyle("Déploiement")),
        )
        .with_item(ItemSpec {
            visible_to: Some(vec!["alice".into()]),
            ..ItemSpec::freestyle("secret")
        })
}

#[test]
fn root_lists_jobs_case_insensitively_with_root_url() {
    let sim = Sim::start(scenario());
    let r = get_as(&sim.url(), "/api/json", "alice", "11aaaa");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("Content-Type"),
        Some("application/json;charset=UTF-8")
    );
    assert!(r.header("X-Jenkins").is_some());
    let v = r.json();
    assert_eq!(v["_class"], "hudson.model.Hudson");
    let names: Vec<&str> = v["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["My Team", "secret", "simple-job"]);
    assert_eq!(keys(&v["jobs"][0]), ["_class", "name", "url"]);
    assert_eq!(keys(&v["jobs"][2]), ["_class", "name", "url", "color"]);
    assert_eq!(v["jobs"][0]["url"], "https://ci.example.com/job/My%20Team/");
    assert_eq!(v["jobs"][2]["color"], "blue_anime");
    // bob cannot see "secret": absent from listings and 404 by URL.
    let v = get_as(&sim.url(), "/api/json", "bob", "11bbbb").json();
    assert_eq!(v["jobs"].as_array().unwrap().len(), 2);
    assert_eq!(
        get_as(&sim.url(), "/job/secret/api/json", "bob", "11bbbb").status,
        404
    );
    assert_eq!(
        get_as(&sim.url(), "/job/secret/api/json", "alice", "11aaaa").status,
        200
    );
}

#[test]
fn builds_capped_at_100_newest_first_with_gaps_and_all_builds_on_request() {
    let sim = Sim::start(scenario());
    let v = get_as(&sim.url(), "/job/simple-job/api/json", "alice", "11aaaa").json();
    let builds = v["builds"].as_array().unwrap();
    assert_eq!(builds.len(), 100);
    assert_eq!(builds[0]["number"], 131);
    assert_eq!(keys(&builds[0]), ["_class", "number", "url"]);
    assert!(v.get("allBuilds").is_none());
    assert_eq!(v["lastBuild"]["number"], 131);
    assert_eq!(v["lastCompletedBuild"]["number"], 130);
    assert_eq!(v["lastFailedBuild"], serde_json::Value::Null);
    assert_eq!(v["nextBuildNumber"], 132);
    let v = get_as(
        &sim.url(),
        "/job/simple-job/api/json?tree=allBuilds%5Bnumber%5D%7B125,%7D",
        "alice",
        "11aaaa",
    )
    .json();
    let nums: Vec<u64> = v["allBuilds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["number"].as_u64().unwrap())
        .collect();
    assert_eq!(nums, [5, 4, 3, 2, 1]);
    let v = get_as(
        &sim.url(),
        "/job/simple-job/api/json?tree=builds[number]{100,200}",
        "alice",
        "11aaaa",
    )
    .json();
    assert_eq!(v["builds"], json!([]));
    let v = get_as(
        &sim.url(),
        "/job/simple-job/api/json?depth=3&tree=allBuilds[number]{0,1}",
        "alice",
        "11aaaa",
    )
    .json();
    assert_eq!(v["allBuilds"].as_array().unwrap().len(), 1);
    let all = get_as(
        &sim.url(),
        "/job/simple-job/api/json?depth=3",
        "alice",
        "11aaaa",
    )
    .json();
    assert_eq!(all["allBuilds"].as_array().unwrap().len(), 130);
    // Gap: 41 is 404, permalink with no target is 404.
    assert_eq!(
        get_as(&sim.url(), "/job/simple-job/41/api/json", "alice", "11aaaa").status,
        404
    );
    assert_eq!(
        get_as(
            &sim.url(),
            "/job/simple-job/lastFailedBuild/api/json",
            "alice",
            "11aaaa"
        )
        .status,
        404
    );
    assert_eq!(
        get_as(
            &sim.url(),
            "/job/simple-job/lastCompletedBuild/api/json",
            "alice",
            "11aaaa"
        )
        .json()["number"],
        130
    );
}

#[test]
fn tree_semantics_and_errors() {
    let sim = Sim::start(scenario());
    let g = |q: &str| get_as(&sim.url(), q, "alice", "11aaaa");
    // Order follows the class, not the tree; unknown names dropped; leaf objects get only _class.
    let v = g("/job/simple-job/api/json?tree=url,name,bogus,lastBuild").json();
    assert_eq!(keys(&v), ["_class", "name", "url", "lastBuild"]);
    assert_eq!(
        v["lastBuild"],
        json!({"_class": "hudson.model.FreeStyleBuild"})
    );
    let v = g("/job/simple-job/api/json?tree=lastBuild[number,building,result]").json();
    assert_eq!(
        keys(&v["lastBuild"]),
        ["_class", "building", "number", "result"]
    );
    assert_eq!(v["lastBuild"]["result"], serde_json::Value::Null);
    // " url" is not "url".
    assert_eq!(
        keys(&g("/job/simple-job/api/json?tree=%20url").json()),
        ["_class"]
    );
    // Wildcard.
    let v = g("/job/simple-job/api/json?tree=builds[*]{0,1}").json();
    assert!(keys(&v["builds"][0]).contains(&"timestamp".to_string()));
    for bad in [
        "", "a,", ",b", "a[", "a[b,c", "a[]", "a[b,,]", "a]", "a{}", "a{b}",
    ] {
        let r = g(&format!(
            "/api/json?tree={}",
            jenkins_sim::names::raw_encode(bad)
        ));
        assert_eq!(r.status, 500, "tree={bad:?}");
        assert!(r.header("Content-Type").unwrap().starts_with("text/html"));
    }
    assert_eq!(g("/api/json?depth=x").status, 500);
    // Pretty layout.
    let r = g("/whoAmI/api/json?pretty=true");
    assert!(
        r.text()
            .starts_with("{\n  \"_class\" : \"hudson.security.WhoAmI\",\n  \"anonymous\" : false,"),
        "{}",
        r.text()
    );
}

#[test]
fn depth_controls_visibility() {
    let sim = Sim::start(scenario());
    let g = |q: &str| get_as(&sim.url(), q, "alice", "11aaaa").json();
    let b = "/job/My%20Team/job/app/job/feature%252Fx/7/api/json";
    assert!(g(b).get("fingerprint").is_none());
    assert!(g(&format!("{b}?depth=1")).get("fingerprint").is_none());
    let fp = g(&format!("{b}?depth=2"));
    assert_eq!(fp["fingerprint"][0]["hash"], md5_hex(7, 1000));
    let v = g(&format!("{b}?tree=fingerprint[hash,original[name]]"));
    assert_eq!(keys(&v["fingerprint"][0]), ["hash", "original"]);
    assert_eq!(
        v["fingerprint"][0]["original"]["name"],
        "My Team/app/feature%2Fx"
    );
    // depth=1 on the root expands jobs.
    let root = g("/api/json?depth=1");
    assert!(root["jobs"][2].get("builds").is_some());
    assert!(g("/api/json")["jobs"][2].get("builds").is_none());
}

#[test]
fn multibranch_names_urls_and_lenient_lookup() {
    let sim = Sim::start(scenario());
    let g = |q: &str| get_as(&sim.url(), q, "alice", "11aaaa");
    let v = g("/job/My%20Team/job/app/job/feature%252Fx/api/json").json();
    assert_eq!(v["name"], "feature%2Fx");
    assert_eq!(v["fullName"], "My Team/app/feature%2Fx");
    assert_eq!(v["displayName"], "feature/x");
    assert_eq!(
        v["url"],
        "https://ci.example.com/job/My%20Team/job/app/job/feature%252Fx/"
    );
    assert_eq!(v["fullDisplayName"], "My Team » app » feature/x");
    assert_eq!(
        g("/job/My%20Team/job/app/job/feature%2Fx/api/json").status,
        200
    );
    assert_eq!(
        g("/job/my%20team/job/APP/job/FEATURE%252FX/api/json").status,
        200
    );
    let v = g("/job/My%20Team/job/D%C3%A9ploiement/api/json").json();
    assert_eq!(
        v["url"],
        "https://ci.example.com/job/My%20Team/job/D%C3%A9ploiement/"
    );
    assert_eq!(g("/job/My%20Team/job/nope/api/json").status, 404);
    assert!(
        g("/job/nope/api/json")
            .header("Content-Type")
            .unwrap()
            .starts_with("text/html")
    );
}

#[test]
fn auth_answers() {
    let sim = Sim::start(scenario());
    // Anonymous without read: 403 with headers, no challenge.
    let r = get(&sim.url(), "/api/json");
    assert_eq!(r.status, 403);
    assert_eq!(r.header("X-You-Are-Authenticated-As"), Some("anonymous"));
    assert_eq!(
        r.header("X-Required-Permission"),
        Some("hudson.model.Hudson.Read")
    );
    assert_eq!(r.headers_named("X-Permission-Implied-By").len(), 2);
    assert!(r.header("WWW-Authenticate").is_none());
    assert!(r.header("Content-Type").unwrap().starts_with("text/html"));
    // Bad token: 401 with the challenge, even on always-readable URLs.
    for path in ["/api/json", "/whoAmI/api/json"] {
        let r = get_as(&sim.url(), path, "alice", "wrong");
        assert_eq!(r.status, 401);
        assert_eq!(
            r.header("WWW-Authenticate"),
            Some("Basic realm=\"Jenkins\"")
        );
    }
    let r = request(
        "GET",
        &sim.url(),
        "/api/json",
        &[("Authorization".into(), "Basic !!!".into())],
    );
    assert_eq!(r.status, 401);
    // Scheme is case-insensitive.
    let (_, v) = basic("alice", "11aaaa");
    let r = request(
        "GET",
        &sim.url(),
        "/api/json",
        &[("Authorization".into(), v.replace("Basic", "bASIC"))],
    );
    assert_eq!(r.status, 200);
    // whoAmI works for anonymous.
    let v = get(&sim.url(), "/whoAmI/api/json").json();
    assert_eq!(v["name"], "anonymous");
    assert_eq!(v["anonymous"], true);
    // Token rotation and revocation.
    let new = sim.rotate_token("alice").unwrap();
    assert_eq!(new.len(), 34);
    assert!(new.starts_with("11"));
    assert_eq!(
        get_as(&sim.url(), "/api/json", "alice", "11aaaa").status,
        401
    );
    assert_eq!(get_as(&sim.url(), "/api/json", "alice", &new).status, 200);
    sim.revoke_token("alice", &new).unwrap();
    assert_eq!(get_as(&sim.url(), "/api/json", "alice", &new).status, 401);
    // User without Overall/Read: 403 naming the user.
    sim.set_overall_read("bob", false).unwrap();
    let r = get_as(&sim.url(), "/api/json", "bob", "11bbbb");
    assert_eq!(r.status, 403);
    assert_eq!(r.header("X-You-Are-Authenticated-As"), Some("bob"));
    // Anonymous read on.
    sim.set_anonymous_read(true);
    let v = get(&sim.url(), "/api/json").json();
    assert_eq!(
        v["jobs"].as_array().unwrap().len(),
        2,
        "secret hidden from anonymous"
    );
    // Crumb.
    let v = get(&sim.url(), "/crumbIssuer/api/json").json();
    assert_eq!(keys(&v), ["_class", "crumb", "crumbRequestField"]);
    assert_eq!(v["crumbRequestField"], "Jenkins-Crumb");
}

#[test]
fn build_lifecycle_through_the_handle() {
    let sim = Sim::start(scenario());
    let job = "My Team/app/feature%2Fx";
    let n = sim.add_build(job, BuildSpec::running(9)).unwrap();
    assert_eq!(n, 9);
    let g = |q: &str| get_as(&sim.url(), q, "alice", "11aaaa").json();
    let base = "/job/My%20Team/job/app/job/feature%252Fx/";
    let v = g(&format!("{base}9/api/json"));
    assert_eq!(v["building"], true);
    assert_eq!(v["inProgress"], true);
    assert_eq!(v["duration"], 0);
    assert_eq!(
        v["executor"],
        json!({"_class": "hudson.model.OneOffExecutor"})
    );
    assert_eq!(v["previousBuild"]["number"], 7);
    sim.set_result(job, 9, Some(BuildResult::Unstable)).unwrap();
    let v = g(&format!("{base}9/api/json"));
    assert_eq!(
        (v["building"].clone(), v["result"].clone()),
        (json!(true), json!("UNSTABLE"))
    );
    sim.add_artifacts(job, 9, vec![ArtifactSpec::text("out/log.txt", "hello")])
        .unwrap();
    sim.finish_build(job, 9, BuildResult::Failure).unwrap();
    let v = g(&format!("{base}9/api/json"));
    assert_eq!(v["building"], false);
    assert_eq!(v["result"], "FAILURE");
    assert_eq!(v["executor"], serde_json::Value::Null);
    assert_eq!(v["artifacts"][0]["relativePath"], "out/log.txt");
    let j = g(&format!("{base}api/json"));
    assert_eq!(j["lastFailedBuild"]["number"], 9);
    assert_eq!(j["lastSuccessfulBuild"]["number"], 7);
    assert_eq!(j["color"], "red");
    sim.discard_artifacts(job, 9).unwrap();
    assert_eq!(g(&format!("{base}9/api/json"))["artifacts"], json!([]));
    assert_eq!(
        get_as(
            &sim.url(),
            &format!("{base}9/artifact/out/log.txt"),
            "alice",
            "11aaaa"
        )
        .status,
        404
    );
    sim.delete_build(job, 9).unwrap();
    assert_eq!(
        get_as(&sim.url(), &format!("{base}9/api/json"), "alice", "11aaaa").status,
        404
    );
    assert_eq!(g(&format!("{base}api/json"))["nextBuildNumber"], 10);
    // Errors are typed.
    assert!(matches!(
        sim.add_build("My Team", BuildSpec::running(1)),
        Err(SimError::Invalid(_))
    ));
    assert!(matches!(
        sim.add_build("nope", BuildSpec::running(1)),
        Err(SimError::NotFound(_))
    ));
    assert!(matches!(
        sim.add_build(job, BuildSpec::running(7)),
        Err(SimError::Exists(_))
    ));
}

#[test]
fn request_log_records_everything() {
    let sim = Sim::start(scenario());
    get(&sim.url(), "/api/json");
    get_as(
        &sim.url(),
        "/job/simple-job/api/json?tree=name",
        "alice",
        "11aaaa",
    );
    let log = sim.requests();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].status, 403);
    assert!(!log[0].authorization);
    assert_eq!(log[1].path, "/job/simple-job/api/json?tree=name");
    assert_eq!(log[1].user.as_deref(), Some("alice"));
    assert!(log[1].authorization);
    assert_eq!(log[1].listener, Listener::Main);
    assert_eq!(sim.request_count(), 2);
    sim.clear_requests();
    assert_eq!(sim.request_count(), 0);
}
