//! Conformance against the captured/derived Jenkins responses in `fixtures/`.
//!
//! The simulator is loaded with `scenarios/fixtures.toml` (the controller the fixtures
//! describe), each fixture's request is replayed, and the answer must have the same keys in
//! the same order with the same nesting. Values may differ. Rules for the comparison:
//!
//! * objects: identical key sequence, compared recursively;
//! * `null` on either side matches anything (a null reference is a value, e.g. `nextBuild`);
//! * arrays: both empty or both non-empty; every element the simulator returns must have the
//!   shape of *some* fixture element; elements at the same index are compared pairwise,
//!   except inside `actions` (whose opaque `{}` padding differs per plugin set);
//! * scalars: same JSON type.

mod common;
use common::*;
use jenkins_sim::{Scenario, Sim, md5_hex};
use serde_json::Value;

const TREE_RECURSIVE: &str =
    "jobs[name,fullName,url,color,jobs[name,fullName,url,color,jobs[name,fullName,url,color]]]";
const TREE_POLLING: &str = "builds[number,result,building,timestamp,duration]{0,3},lastBuild[number,building,result],lastCompletedBuild[number,result]";
const TREE_FINGERPRINTS: &str = "number,artifacts[fileName,relativePath],fingerprint[fileName,hash,original[name,number],timestamp,usage[name,ranges[ranges[start,end]]]]";

/// fixture file → request (path and query as sent; `{APP_JAR_MD5}` is filled in).
const TABLE: &[(&str, &str)] = &[
    ("root-default.json", "/api/json"),
    (
        "root-tree-recursive.json",
        "/api/json?tree={TREE_RECURSIVE}",
    ),
    ("job-freestyle.json", "/job/simple-job/api/json"),
    (
        "job-tree-polling.json",
        "/job/simple-job/api/json?tree={TREE_POLLING}",
    ),
    (
        "build-freestyle-artifacts.json",
        "/job/simple-job/42/api/json",
    ),
    (
        "build-tree-artifacts-fingerprints.json",
        "/job/simple-job/42/api/json?tree={TREE_FINGERPRINTS}",
    ),
    ("fingerprint.json", "/fingerprint/{APP_JAR_MD5}/api/json"),
    ("build-pipeline-running.json", "/job/testJob/15/api/json"),
    (
        "build-branch-pipeline-completed.json",
        "/job/My%20Team/job/app/job/feature%252Fx/7/api/json",
    ),
    ("folder.json", "/job/My%20Team/api/json"),
    ("multibranch.json", "/job/My%20Team/job/app/api/json"),
    (
        "branch-job.json",
        "/job/My%20Team/job/app/job/feature%252Fx/api/json",
    ),
    ("crumb.json", "/crumbIssuer/api/json"),
    ("whoami.json", "/whoAmI/api/json"),
];

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn shape(fix: &Value, sim: &Value, path: &str, errs: &mut Vec<String>) {
    match (fix, sim) {
        (Value::Null, _) | (_, Value::Null) => {}
        (Value::Object(a), Value::Object(b)) => {
            let ka: Vec<&String> = a.keys().collect();
            let kb: Vec<&String> = b.keys().collect();
            if ka != kb {
                errs.push(format!(
                    "{path}: keys differ\n  fixture: {ka:?}\n  sim:     {kb:?}"
                ));
                return;
            }
            for (k, v) in a {
                shape(v, &b[k], &format!("{path}.{k}"), errs);
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            if a.is_empty() != b.is_empty() {
                errs.push(format!(
                    "{path}: fixture has {} elements, sim {}",
                    a.len(),
                    b.len()
                ));
                return;
            }
            for (i, el) in b.iter().enumerate() {
                let fits = a.iter().any(|f| {
                    let mut e = Vec::new();
                    shape(f, el, "", &mut e);
                    e.is_empty()
                });
                if !fits {
                    errs.push(format!(
                        "{path}[{i}]: no fixture element has this shape: {el}"
                    ));
                }
            }
            if !path.ends_with(".actions") {
                for (i, (f, s)) in a.iter().zip(b).enumerate() {
                    shape(f, s, &format!("{path}[{i}]"), errs);
                }
            }
        }
        (f, s) if kind(f) == kind(s) => {}
        (f, s) => errs.push(format!("{path}: fixture {} vs sim {}", kind(f), kind(s))),
    }
}

fn fixtures_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

#[test]
fn every_fixture_is_in_the_table() {
    let mut files: Vec<String> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json"))
        .collect();
    files.sort();
    let mut listed: Vec<String> = TABLE.iter().map(|(f, _)| f.to_string()).collect();
    listed.sort();
    assert_eq!(files, listed);
}

#[test]
fn simulator_matches_every_fixture() {
    let sc = Scenario::from_file(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/fixtures.toml"),
    )
    .unwrap();
    let sim = Sim::start(sc);
    let md5 = md5_hex(1001, 2_097_152);
    let enc = jenkins_sim::names::raw_encode;
    let mut failures = Vec::new();
    for (file, req) in TABLE {
        let req = req
            .replace("{TREE_RECURSIVE}", &enc(TREE_RECURSIVE))
            .replace("{TREE_POLLING}", &enc(TREE_POLLING))
            .replace("{TREE_FINGERPRINTS}", &enc(TREE_FINGERPRINTS))
            .replace("{APP_JAR_MD5}", &md5);
        let text = std::fs::read_to_string(fixtures_dir().join(file)).unwrap();
        let fixture: Value = serde_json::from_str(&text).unwrap();
        let r = get_as(
            &sim.url(),
            &req,
            "alice",
            "11e4d9f0c2b1a3d5e6f708192a3b4c5d6e",
        );
        assert_eq!(r.status, 200, "{file}: GET {req}: {}", r.text());
        // The fixtures come compact or in `?pretty` layout; check ours renders both the same.
        let pretty = get_as(
            &sim.url(),
            &format!(
                "{req}{}pretty=true",
                if req.contains('?') { '&' } else { '?' }
            ),
            "alice",
            "11e4d9f0c2b1a3d5e6f708192a3b4c5d6e",
        );
        assert_eq!(pretty.json(), r.json(), "{file}: pretty differs");
        let mut errs = Vec::new();
        shape(&fixture, &r.json(), "$", &mut errs);
        if !errs.is_empty() {
            failures.push(format!("{file} (GET {req}):\n{}", errs.join("\n")));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

#[test]
fn fixture_values_that_follow_from_the_scenario() {
    let sc = Scenario::from_file(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/fixtures.toml"),
    )
    .unwrap();
    let sim = Sim::start(sc);
    let g = |p: &str| get_as(&sim.url(), p, "alice", "11e4d9f0c2b1a3d5e6f708192a3b4c5d6e").json();
    let fixture = |f: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(fixtures_dir().join(f)).unwrap()).unwrap()
    };
    // Where the scenario reproduces the fixture's data, values agree too.
    let rec = g(&format!(
        "/api/json?tree={}",
        jenkins_sim::names::raw_encode(TREE_RECURSIVE)
    ));
    let fx = fixture("root-tree-recursive.json");
    assert_eq!(rec["jobs"][0], fx["jobs"][0], "acme-org subtree");
    assert_eq!(
        rec["jobs"][1]["jobs"][0]["jobs"][0]["url"],
        fx["jobs"][1]["jobs"][0]["jobs"][0]["url"]
    );
    assert_eq!(
        rec["jobs"][1]["jobs"][2], fx["jobs"][1]["jobs"][1],
        "Déploiement"
    );
    let b = g("/job/simple-job/42/api/json");
    let fb = fixture("build-freestyle-artifacts.json");
    assert_eq!(b["artifacts"], fb["artifacts"]);
    assert_eq!(b["actions"][0], fb["actions"][0], "parameters");
    assert_eq!(b["actions"][1], fb["actions"][1], "causes");
    assert_eq!(b["actions"][2], fb["actions"][2], "git BuildData");
    assert_eq!(
        b["changeSet"]["items"][0]["date"],
        fb["changeSet"]["items"][0]["date"]
    );
    let j = g("/job/simple-job/api/json");
    let fj = fixture("job-freestyle.json");
    for k in [
        "builds",
        "lastBuild",
        "lastCompletedBuild",
        "lastFailedBuild",
        "lastStableBuild",
        "nextBuildNumber",
        "color",
        "firstBuild",
    ] {
        assert_eq!(j[k], fj[k], "{k}");
    }
    let poll = g(&format!(
        "/job/simple-job/api/json?tree={}",
        jenkins_sim::names::raw_encode(TREE_POLLING)
    ));
    assert_eq!(poll, fixture("job-tree-polling.json"));
    let fp = g(&format!(
        "/fingerprint/{}/api/json",
        md5_hex(1001, 2_097_152)
    ));
    assert_eq!(
        fp["original"],
        serde_json::json!({"name": "simple-job", "number": 42})
    );
    assert_eq!(
        fp["usage"][1]["ranges"],
        serde_json::json!({"ranges": [{"end": 19, "start": 17}, {"end": 22, "start": 21}]})
    );
    assert_eq!(fp["usage"][1]["name"], "My Team/deploy");
}

#[test]
fn byte_identical_where_values_agree() {
    let sc = Scenario::from_file(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/fixtures.toml"),
    )
    .unwrap();
    let sim = Sim::start(sc);
    let tok = "11e4d9f0c2b1a3d5e6f708192a3b4c5d6e";
    let raw = |f: &str| std::fs::read_to_string(fixtures_dir().join(f)).unwrap();
    let r = get_as(&sim.url(), "/whoAmI/api/json", "alice", tok);
    assert_eq!(r.text(), raw("whoami.json").trim_end());
    let q = format!(
        "/job/simple-job/api/json?tree={}",
        jenkins_sim::names::raw_encode(TREE_POLLING)
    );
    assert_eq!(
        get_as(&sim.url(), &q, "alice", tok).text(),
        raw("job-tree-polling.json").trim_end()
    );
}

#[test]
fn comparator_catches_differences() {
    let mut e = Vec::new();
    shape(
        &serde_json::json!({"a": 1, "b": 2}),
        &serde_json::json!({"b": 2, "a": 1}),
        "$",
        &mut e,
    );
    assert_eq!(e.len(), 1, "order");
    let mut e = Vec::new();
    shape(
        &serde_json::json!({"x": [{"a": 1}]}),
        &serde_json::json!({"x": [{"a": 1, "c": 1}]}),
        "$",
        &mut e,
    );
    assert!(!e.is_empty(), "nested extra key");
    let mut e = Vec::new();
    shape(
        &serde_json::json!({"x": []}),
        &serde_json::json!({"x": [1]}),
        "$",
        &mut e,
    );
    assert!(!e.is_empty(), "empty vs non-empty");
    let mut e = Vec::new();
    shape(
        &serde_json::json!({"x": "s"}),
        &serde_json::json!({"x": 1}),
        "$",
        &mut e,
    );
    assert!(!e.is_empty(), "type");
}
