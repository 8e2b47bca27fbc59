//! The control HTTP endpoint, the binary, scenario files, and scale.

mod common;
use common::*;
use jenkins_sim::*;
use serde_json::json;
use std::io::BufRead;
use std::time::{Duration, Instant};

fn scenarios_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios")
}

#[test]
fn every_shipped_scenario_parses_starts_and_round_trips_through_json() {
    let mut n = 0;
    for e in std::fs::read_dir(scenarios_dir()).unwrap() {
        let p = e.unwrap().path();
        let sc = Scenario::from_file(&p).unwrap_or_else(|e| panic!("{e}"));
        let back = Scenario::from_json_str(&serde_json::to_string(&sc).unwrap()).unwrap();
        assert_eq!(back, sc, "{}", p.display());
        let sim = Sim::start(sc);
        let tok = if p.ends_with("demo.toml") {
            "11c0ffee00c0ffee00c0ffee00c0ffee00"
        } else {
            "11e4d9f0c2b1a3d5e6f708192a3b4c5d6e"
        };
        assert_eq!(get_as(&sim.url(), "/api/json", "alice", tok).status, 200);
        n += 1;
    }
    assert!(n >= 2);
}

#[test]
fn demo_scenario_has_what_it_promises() {
    let sim = Sim::start(Scenario::from_file(scenarios_dir().join("demo.toml")).unwrap());
    let tok = "11c0ffee00c0ffee00c0ffee00c0ffee00";
    let g = |p: &str| get_as(&sim.url(), p, "alice", tok);
    let v = g("/job/My%20Team/job/service/job/feature%252Fx/2/api/json?depth=2").json();
    assert_eq!(v["fingerprint"][0]["hash"], md5_hex(99, 1 << 20));
    let r = g(
        "/job/My%20Team/job/D%C3%A9ploiement%20continu/1/artifact/rapport%20final/r%C3%A9sum%C3%A9.txt",
    );
    assert_eq!(r.text(), "ok\n");
    assert_eq!(
        get_as(
            &sim.url(),
            "/job/secret/api/json",
            "viewer",
            "11beef00beef00beef00beef00beef0000"
        )
        .status,
        404
    );
    assert_eq!(g("/job/secret/api/json").status, 200);
    assert_eq!(
        g("/job/acme/job/widget/job/PR-7/lastBuild/api/json").json()["result"],
        "ABORTED"
    );
}

#[test]
fn scenario_errors_are_reported() {
    assert!(Scenario::from_toml_str("bogus_key = 1").is_err());
    assert!(Scenario::from_toml_str("[[jobs]]\nname = \"a\"\nkind = \"nope\"").is_err());
    let sc = Scenario::from_toml_str(
        "[[jobs]]\nname = \"f\"\nkind = \"folder\"\n[[jobs.builds]]\nnumber = 1",
    )
    .unwrap();
    assert!(Sim::start_on("127.0.0.1:0".parse().unwrap(), sc).is_err());
    let sc = Scenario::from_json_str(
        r#"{"jobs":[{"name":"j","builds":[{"number":3,"building":true}]}]}"#,
    )
    .unwrap();
    let sim = Sim::start(sc.with_anonymous_read(true));
    assert_eq!(
        get(&sim.url(), "/job/j/lastBuild/api/json").json()["building"],
        true
    );
}

#[test]
fn control_endpoint_drives_everything() {
    let sim = Sim::start(Scenario::default());
    let base = sim.url();
    let cmd = |v: serde_json::Value| post_json(&base, "/_sim/command", &v);
    assert_eq!(
        cmd(json!({"op": "add_user", "user": {"name": "ci", "token": "11ab"}})).status,
        200
    );
    let r = cmd(
        json!({"op": "add_item", "item": {"name": "team", "kind": "folder",
        "jobs": [{"name": "svc", "kind": "multibranch", "jobs": [{"name": "feature/y"}]}]}}),
    );
    assert_eq!(r.json()["full_name"], "team");
    let r = cmd(json!({"op": "add_build", "job": "team/svc/feature%2Fy",
        "build": {"building": true, "artifacts": [{"path": "a/b.bin", "size": 1000, "seed": 3}]}}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["number"], 1);
    let job = "/job/team/job/svc/job/feature%252Fy/";
    assert_eq!(
        get_as(&base, &format!("{job}1/api/json"), "ci", "11ab").json()["building"],
        true
    );
    assert_eq!(cmd(json!({"op": "finish_build", "job": "team/svc/feature%2Fy", "number": 1, "result": "SUCCESS"})).status, 200);
    let v = get_as(
        &base,
        &format!("{job}lastSuccessfulBuild/api/json"),
        "ci",
        "11ab",
    )
    .json();
    assert_eq!(v["building"], false);
    let r = get_as(&base, &format!("{job}1/artifact/a/b.bin"), "ci", "11ab");
    assert_eq!(r.body, artifact_bytes(3, 1000).to_vec());
    // Faults and restarts through the endpoint.
    let r = cmd(
        json!({"op": "add_fault", "fault": {"kind": "api", "times": 1, "action": {"type": "status", "status": 503}}}),
    );
    assert!(r.json()["id"].as_u64().is_some());
    assert_eq!(get_as(&base, "/api/json", "ci", "11ab").status, 503);
    assert_eq!(get_as(&base, "/api/json", "ci", "11ab").status, 200);
    // Errors.
    assert_eq!(
        cmd(json!({"op": "add_build", "job": "nope", "build": {}})).status,
        404
    );
    assert_eq!(
        cmd(json!({"op": "add_user", "user": {"name": "ci"}})).status,
        409
    );
    assert_eq!(cmd(json!({"op": "no_such_op"})).status, 400);
    // Token rotation.
    let t = cmd(json!({"op": "rotate_token", "user": "ci"})).json()["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(get_as(&base, "/api/json", "ci", "11ab").status, 401);
    assert_eq!(get_as(&base, "/api/json", "ci", &t).status, 200);
    // The request log excludes control requests.
    let log = get(&base, "/_sim/requests").json();
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .all(|r| !r["path"].as_str().unwrap().starts_with("/_sim"))
    );
    assert_eq!(log.as_array().unwrap().len(), sim.request_count());
    assert_eq!(request("DELETE", &base, "/_sim/requests", &[]).status, 200);
    assert_eq!(sim.request_count(), 0);
    let info = get(&base, "/_sim/info").json();
    assert_eq!(info["s3_url"], sim.s3_url());
}

#[test]
fn binary_prints_its_url_and_serves() {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_jenkins-sim"))
        .args([
            "--scenario",
            scenarios_dir().join("demo.toml").to_str().unwrap(),
            "--port",
            "0",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.trim().to_string();
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with('/'),
        "{url}"
    );
    let r = get_as(
        &url,
        "/job/app/api/json",
        "alice",
        "11c0ffee00c0ffee00c0ffee00c0ffee00",
    );
    assert_eq!(r.status, 200);
    // The configured root URL is used in url fields, not the listen address.
    assert_eq!(r.json()["url"], "http://127.0.0.1:8080/job/app/");
    let r = post_json(
        &url,
        "/_sim/command",
        &json!({"op": "set_anonymous_read", "enabled": true}),
    );
    assert_eq!(r.status, 200);
    assert_eq!(get(&url, "/api/json").status, 200);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_big_controller_answers_the_recursive_tree_fast() {
    let mut sc = Scenario::default().with_user("u", "t");
    for f in 0..40 {
        let mut folder = ItemSpec::folder(&format!("folder-{f:02}"));
        for j in 0..50 {
            let mut job = ItemSpec::freestyle(&format!("job-{j:02}"));
            job.builds
                .push(BuildSpec::finished(1, BuildResult::Success).at(1_700_000_000_000));
            folder.jobs.push(job);
        }
        sc.jobs.push(folder);
    }
    for j in 0..500 {
        sc.jobs.push(ItemSpec::pipeline(&format!("top-{j:03}")));
    }
    let sim = Sim::start(sc);
    let q = format!(
        "/api/json?tree={}",
        jenkins_sim::names::raw_encode(
            "jobs[name,url,color,jobs[name,url,color,jobs[name,url,color]]]"
        )
    );
    let t = Instant::now();
    let r = get_as(&sim.url(), &q, "u", "t");
    let took = t.elapsed();
    assert_eq!(r.status, 200);
    let v = r.json();
    let jobs = v["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 540);
    let total: usize = jobs
        .iter()
        .map(|j| j["jobs"].as_array().map_or(1, |a| a.len()))
        .sum();
    assert_eq!(total, 2500);
    assert!(took < Duration::from_secs(3), "took {took:?}");
}

/// `cargo test -p jenkins-sim --release --test control -- --ignored --nocapture throughput`
#[test]
#[ignore = "measurement; run in release mode"]
fn throughput() {
    let size: u64 = 2 << 30;
    let t = Instant::now();
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = 0;
    while pos < size {
        jenkins_sim::content::fill(9, pos, &mut buf);
        pos += buf.len() as u64;
    }
    let gen_rate = size as f64 / t.elapsed().as_secs_f64() / 1e9;
    let sim = Sim::start(
        Scenario::default().with_anonymous_read(true).with_item(
            ItemSpec::freestyle("big").with_build(
                BuildSpec::finished(1, BuildResult::Success)
                    .with_artifact(ArtifactSpec::generated("big.bin", size, 9)),
            ),
        ),
    );
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(sim.addr()).unwrap();
    write!(
        s,
        "GET /job/big/1/artifact/big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let t = Instant::now();
    let mut total = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = s.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    let http_rate = total as f64 / t.elapsed().as_secs_f64() / 1e9;
    println!("generation {gen_rate:.2} GB/s, HTTP download {http_rate:.2} GB/s ({total} bytes)");
    assert!(total > size);
}
