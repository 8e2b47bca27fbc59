//! The gateway over HTTP: curl downloads (credentials, a range, conditional requests), the JSON API's
//! shapes and URL forms, who may read what (401, 404 for hidden jobs in JSON, pages and downloads, the
//! failed-login limit), hostile names on pages, sandboxed reports, zips that unzip to exactly the
//! artifacts, and `jam fetch --from jenkins` pointed at the gateway.

use std::{path::Path, process::Command};

use serde_json::Value;

use super::{ALICE, CAROL, HOSTILE, Mirrored, client, get_as, mirrored, serve, sha, users};
use crate::support::skip_or_fail;

const APP: &str = "job/team%20a/job/app/";

/// `curl -sS` with `args`; returns (status, response headers, body). `None` (after [`skip_or_fail`])
/// without curl.
fn curl(args: &[&str]) -> Option<(u16, String, Vec<u8>)> {
    let dir = tempfile::tempdir().unwrap();
    let (h, b) = (dir.path().join("h"), dir.path().join("b"));
    let out = match Command::new("curl")
        .args(["-sS", "--noproxy", "*", "-D"])
        .arg(&h)
        .arg("-o")
        .arg(&b)
        .args(["-w", "%{http_code}"])
        .args(args)
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            skip_or_fail(&format!("curl cannot run ({e}); install curl"));
            return None;
        }
    };
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let headers = std::fs::read_to_string(&h).unwrap_or_default();
    Some((status, headers, std::fs::read(&b).unwrap_or_default()))
}

/// A header's value (names compared ignoring case).
fn header<'a>(headers: &'a str, name: &str) -> Option<&'a str> {
    headers.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn sim_bytes(m: &Mirrored, job: &str, n: u64, path: &str) -> Vec<u8> {
    m.sim.artifact(job, n, path).unwrap().content.to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_downloads_with_credentials_a_range_and_conditional_requests() {
    let m = mirrored().await;
    let gw = serve(&m.store, "", &users()).await;
    let auth = format!("{}:{}", ALICE.0, ALICE.1);
    let url = format!("{}{APP}lastSuccessfulBuild/artifact/dist/app.bin", gw.url);
    // lastSuccessfulBuild is #3 (UNSTABLE counts, as in Jenkins).
    let want = sim_bytes(&m, "team a/app", 3, "dist/app.bin");
    let (a, u) = (auth.clone(), url.clone());
    let got = tokio::task::spawn_blocking(move || {
        let full = curl(&["-u", &a, &u])?;
        let range = curl(&["-u", &a, "-r", "100-199", &u])?;
        let etag = header(&full.1, "etag").unwrap_or_default().to_string();
        let cond = curl(&["-u", &a, "-H", &format!("If-None-Match: {etag}"), &u])?;
        let lm = header(&full.1, "last-modified")
            .unwrap_or_default()
            .to_string();
        let since = curl(&["-u", &a, "-H", &format!("If-Modified-Since: {lm}"), &u])?;
        let head = curl(&["-u", &a, "-I", &u])?;
        let past = curl(&["-u", &a, "-r", "99999999-", &u])?;
        let anon = curl(&[&u])?;
        Some((full, range, cond, since, head, past, anon))
    })
    .await
    .unwrap();
    let Some((full, range, cond, since, head, past, anon)) = got else {
        return;
    };
    assert_eq!(full.0, 200);
    assert_eq!(sha(&full.2), sha(&want), "the bytes curl saved");
    let h = &full.1;
    assert_eq!(
        header(h, "etag"),
        Some(format!("\"{}\"", sha(&want)).as_str())
    );
    assert_eq!(header(h, "x-checksum-sha256"), Some(sha(&want).as_str()));
    assert!(
        header(h, "repr-digest").is_some_and(|d| d.starts_with("sha-256=:") && d.ends_with(':'))
    );
    assert_eq!(
        header(h, "content-length"),
        Some(want.len().to_string().as_str())
    );
    assert_eq!(header(h, "accept-ranges"), Some("bytes"));
    assert!(header(h, "content-security-policy").is_some_and(|c| c.starts_with("sandbox")));
    assert_eq!(header(h, "x-content-type-options"), Some("nosniff"));
    assert!(header(h, "last-modified").is_some() && header(h, "x-jam").is_some());
    assert_eq!(range.0, 206);
    assert_eq!(range.2, want[100..200]);
    assert_eq!(
        header(&range.1, "content-range"),
        Some(format!("bytes 100-199/{}", want.len()).as_str())
    );
    assert_eq!(
        (cond.0, cond.2.len()),
        (304, 0),
        "If-None-Match with the ETag"
    );
    assert_eq!(since.0, 304, "If-Modified-Since with Last-Modified");
    assert_eq!(head.0, 200, "HEAD");
    assert_eq!(
        header(&head.1, "content-length"),
        Some(want.len().to_string().as_str())
    );
    assert_eq!(past.0, 416);
    assert_eq!(anon.0, 401);
    assert_eq!(
        header(&anon.1, "www-authenticate"),
        Some("Basic realm=\"jam\"")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_see_only_their_jobs_and_wrong_tokens_are_limited() {
    let m = mirrored().await;
    let gw = serve(&m.store, "login_failures = 3", &users()).await;
    let c = client();
    let get = |path: &str, who: (&str, &str)| get_as(&c, &gw, path, who).send();
    // Carol reads `team a/**` only: the rest is 404 in the JSON, the pages and the downloads.
    let root: Value = get("api/json?tree=jobs[name]", CAROL)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        root["jobs"],
        serde_json::json!([{"_class": "com.cloudbees.hudson.plugins.folder.Folder", "name": "team a"}])
    );
    for path in [
        "job/team%20b/api/json",
        "job/team%20b/",
        "job/team%20b/job/secret/api/json",
        "job/team%20b/job/secret/1/",
        "job/team%20b/job/secret/1/artifact/secret.txt",
        "job/team%20b/job/secret/lastSuccessfulBuild/artifact/*zip*/archive.zip",
        "job/svc/job/feature%252Fx/5/api/json",
    ] {
        assert_eq!(
            get(path, CAROL).await.unwrap().status(),
            404,
            "carol: {path}"
        );
        assert_eq!(
            get(path, ALICE).await.unwrap().status(),
            200,
            "alice: {path}"
        );
    }
    assert_eq!(
        get(&format!("{APP}1/artifact/dist/notes.txt"), CAROL)
            .await
            .unwrap()
            .status(),
        200
    );
    // Bearer tokens work too; only GET and HEAD are served.
    let r = c
        .get(format!("{}{APP}api/json", gw.url))
        .bearer_auth(CAROL.1)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .post(format!("{}{APP}build", gw.url))
        .basic_auth(ALICE.0, Some(ALICE.1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET, HEAD");
    // Wrong tokens: 401 with the challenge, and after 3 failures this address is refused (429), even
    // with the right token.
    for _ in 0..3 {
        let r = get("api/json", ("alice", "wrong")).await.unwrap();
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers()["www-authenticate"], "Basic realm=\"jam\"");
    }
    let r = get("api/json", ALICE).await.unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_json_api_speaks_jenkins() {
    let m = mirrored().await;
    let gw = serve(&m.store, "", &users()).await;
    let c = client();
    let get = |path: String| get_as(&c, &gw, &path, ALICE).send();
    let json = |r: reqwest::Response| async move {
        assert_eq!(r.status(), 200, "{}", r.url());
        assert!(r.headers().contains_key("x-jenkins"));
        r.json::<Value>().await.unwrap()
    };
    // A branch by its canonical URL and by the lenient one.
    for seg in ["feature%252Fx", "feature%2Fx"] {
        let v = json(get(format!("job/svc/job/{seg}/api/json")).await.unwrap()).await;
        assert_eq!(
            v["_class"],
            "org.jenkinsci.plugins.workflow.job.WorkflowJob"
        );
        assert_eq!(
            (&v["name"], &v["displayName"]),
            (&"feature%2Fx".into(), &"feature/x".into())
        );
        assert_eq!(v["fullName"], "svc/feature%2Fx");
        assert_eq!(v["url"], format!("{}job/svc/job/feature%252Fx/", gw.url));
        assert_eq!(v["lastSuccessfulBuild"]["number"], 5);
        assert_eq!(v["lastFailedBuild"], Value::Null);
        assert_eq!(v["nextBuildNumber"], 7);
    }
    // Key order and _class as Stapler writes them; tree ranges; depth.
    let text = get(format!(
        "{APP}api/json?tree=builds[number,result]{{0,2}},color"
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    assert_eq!(
        text,
        r#"{"_class":"hudson.model.FreeStyleProject","builds":[{"_class":"hudson.model.FreeStyleBuild","number":3,"result":"UNSTABLE"},{"_class":"hudson.model.FreeStyleBuild","number":2,"result":"FAILURE"}],"color":"yellow"}"#
    );
    let b = json(get(format!("{APP}1/api/json")).await.unwrap()).await;
    assert_eq!(
        (&b["number"], &b["result"], &b["building"]),
        (&1.into(), &"SUCCESS".into(), &false.into())
    );
    assert_eq!(b["artifacts"].as_array().unwrap().len(), 4);
    // Jenkins' order: depth first, names compared ignoring case.
    let paths: Vec<&str> = b["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["relativePath"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            HOSTILE,
            "dist/app.bin",
            "dist/notes.txt",
            "reports/report.html"
        ]
    );
    assert_eq!(b["artifacts"][1]["displayPath"], "app.bin");
    let params = b["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["_class"] == "hudson.model.ParametersAction")
        .unwrap();
    assert_eq!(params["parameters"][0]["value"], "linux-x64");
    assert!(b.get("fingerprint").is_none(), "fingerprint needs depth 2");
    let deep = json(get(format!("{APP}1/api/json?depth=2")).await.unwrap()).await;
    assert_eq!(deep["fingerprint"].as_array().unwrap().len(), 4);
    // Python literals, a malformed tree (500, as Jenkins), the slash redirect, a missing build.
    let py = get("api/python?tree=useSecurity,quietDownReason".into())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        py,
        r#"{"_class":"hudson.model.Hudson","quietDownReason":None,"useSecurity":True}"#
    );
    assert_eq!(
        get("api/json?tree=jobs[".into()).await.unwrap().status(),
        500
    );
    let r = get("job/team%20a/job/app".into()).await.unwrap();
    assert_eq!(
        (
            r.status().as_u16(),
            r.headers()["location"].to_str().unwrap()
        ),
        (302, "/job/team%20a/job/app/")
    );
    assert_eq!(get(format!("{APP}9/api/json")).await.unwrap().status(), 404);
    assert_eq!(
        get(format!("{APP}lastStableBuild/buildNumber"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "1"
    );
    let sums = get(format!("{APP}1/SHA256SUMS"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(sums.contains(&format!(
        "{}  dist/app.bin",
        sha(&sim_bytes(&m, "team a/app", 1, "dist/app.bin"))
    )));
    // Operations.
    let metrics = c
        .get(format!("{}metrics", gw.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("jam_serve_requests_total{route=\"api\",status=\"200\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("jam_store_requests_total"), "{metrics}");
    for probe in ["healthz", "readyz"] {
        let r = c.get(format!("{}{probe}", gw.url)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{probe}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_escape_names_and_reports_are_sandboxed() {
    let m = mirrored().await;
    let gw = serve(&m.store, "", &users()).await;
    let c = client();
    let get = |path: String| get_as(&c, &gw, &path, ALICE).send();
    let r = get(format!("{APP}1/")).await.unwrap();
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("script-src"),
        "{csp}"
    );
    let page = r.text().await.unwrap();
    assert!(
        page.contains("&lt;img src=x onerror=alert(1)&gt;.txt"),
        "{page}"
    );
    assert!(!page.contains("<img"), "the hostile name is text: {page}");
    assert!(
        page.contains("artifact/%3Cimg%20src=x%20onerror=alert(1)%3E.txt\""),
        "{page}"
    );
    assert!(
        page.contains("9fceb02d0ae598e95dc970b74767f19372d61af8") && page.contains("linux-x64")
    );
    let art = get(format!(
        "{APP}1/artifact/%3Cimg%20src=x%20onerror=alert(1)%3E.txt"
    ))
    .await
    .unwrap();
    assert_eq!(art.status(), 200);
    assert_eq!(art.text().await.unwrap(), "not a tag\n");
    let report = get(format!("{APP}1/artifact/reports/report.html"))
        .await
        .unwrap();
    assert_eq!(report.headers()["content-type"], "text/html;charset=UTF-8");
    assert_eq!(
        report.headers()["content-security-policy"],
        jam::serve::ARTIFACT_CSP
    );
    // Listings of the archive's directories.
    let listing = get(format!("{APP}1/artifact/"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        listing.contains("href=\"dist/\"") && listing.contains("&lt;img"),
        "{listing}"
    );
    assert_eq!(
        get(format!("{APP}1/artifact/dist")).await.unwrap().status(),
        302
    );
    let plain = get(format!("{APP}1/artifact/dist/*plain*"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(plain, "app.bin\nnotes.txt\n");
}

/// The entries of a zip file and the SHA-256 of each, read by Python's `zipfile`.
fn unzip(zip: &Path) -> Option<Value> {
    let python = std::env::var("JAM_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = "import hashlib,json,sys,zipfile\nz=zipfile.ZipFile(sys.argv[1])\nassert z.testzip() is None\nprint(json.dumps({i.filename: hashlib.sha256(z.read(i)).hexdigest() for i in z.infolist()}))";
    match Command::new(&python).args(["-c", script]).arg(zip).output() {
        Ok(o) => {
            assert!(
                o.status.success(),
                "zipfile: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            Some(serde_json::from_slice(&o.stdout).unwrap())
        }
        Err(e) => {
            skip_or_fail(&format!("{python} cannot run ({e})"));
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zips_unzip_to_exactly_the_artifacts() {
    let m = mirrored().await;
    let gw = serve(&m.store, "", &users()).await;
    let c = client();
    let dir = tempfile::tempdir().unwrap();
    for (path, prefix, filter) in [
        ("artifact/*zip*/archive.zip", "archive/", ""),
        ("artifact/dist/*zip*/dist.zip", "dist/", "dist/"),
    ] {
        let r = get_as(&c, &gw, &format!("{APP}1/{path}"), ALICE)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/zip");
        let file = dir.path().join("a.zip");
        std::fs::write(&file, r.bytes().await.unwrap()).unwrap();
        let Some(got) = unzip(&file) else { return };
        let manifest = crate::harness::manifest(
            &m.store,
            &jam::format::layout::JobPath::new(["team a", "app"]),
            1,
        )
        .await
        .unwrap();
        let want: serde_json::Map<String, Value> = manifest
            .artifacts
            .iter()
            .filter_map(|a| {
                let rel = a.path.strip_prefix(filter)?;
                Some((format!("{prefix}{rel}"), Value::from(a.sha256.clone())))
            })
            .collect();
        assert_eq!(got, Value::Object(want), "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jam_fetch_from_jenkins_reads_the_gateway() {
    let m = mirrored().await;
    let gw = serve(&m.store, "", &users()).await;
    let out = tempfile::tempdir().unwrap();
    let (url, dir) = (gw.url.clone(), out.path().to_path_buf());
    let res = tokio::task::spawn_blocking(move || {
        crate::cli::bin()
            .env("JAM_STORE", dir.join("unused-store"))
            .env("JENKINS_URL", &url)
            .env("JENKINS_USER", ALICE.0)
            .env("JENKINS_API_TOKEN", ALICE.1)
            .args([
                "fetch",
                "team a/app",
                "--from",
                "jenkins",
                "--build",
                "1",
                "--json",
                "-o",
            ])
            .arg(dir.join("got"))
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let v: Value = serde_json::from_slice(&res.stdout).unwrap();
    assert_eq!((&v["build"], &v["from"]), (&1.into(), &"jenkins".into()));
    for a in [
        "dist/app.bin",
        "dist/notes.txt",
        "reports/report.html",
        HOSTILE,
    ] {
        let got = std::fs::read(out.path().join("got").join(a)).unwrap();
        assert_eq!(sha(&got), sha(&sim_bytes(&m, "team a/app", 1, a)), "{a}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presigned_mode_redirects_downloads_to_s3_and_needs_an_s3_store() {
    // A local directory cannot presign: refused at start, with the way out.
    let m = mirrored().await;
    let cfg = super::serve_config("redirect = \"presigned\"");
    let err = jam::serve::Gateway::new(&cfg.serve, m.store.clone())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("needs an S3 store") && err.contains("\"proxy\""),
        "{err}"
    );
    let Some(target) = crate::harness::Target::seaweed() else {
        return;
    };
    let cfg = target.config(&m.sim, "");
    assert!(crate::harness::mirror_once(&cfg, &target.store).await.ok());
    let gw = serve(
        &target.store,
        "redirect = \"presigned\"\npresign_expiry = \"2m\"",
        &users(),
    )
    .await;
    let c = client();
    let r = get_as(&c, &gw, &format!("{APP}1/artifact/dist/app.bin"), ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert!(location.contains("X-Amz-Expires=120"), "{location}");
    // The presigned URL needs no credentials of the gateway's; the bytes come from S3.
    let bytes = c
        .get(&location)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(
        sha(&bytes),
        sha(&sim_bytes(&m, "team a/app", 1, "dist/app.bin"))
    );
    // Listings and JSON are still the gateway's.
    let r = get_as(&c, &gw, &format!("{APP}1/api/json?tree=number"), ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_speaks_tls_with_its_certificate() {
    let m = mirrored().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = crate::tls::make_certs(dir.path());
    let tls = format!(
        "tls_cert = {:?}\ntls_key = {:?}",
        dir.path().join("leaf.pem"),
        dir.path().join("leaf.key")
    );
    let gw = serve(&m.store, &tls, &users()).await;
    let url = gw.url.replace("http://", "https://");
    let trusting = reqwest::Client::builder()
        .no_proxy()
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap())
        .build()
        .unwrap();
    let r = trusting
        .get(format!("{url}{APP}api/json?tree=name"))
        .basic_auth(ALICE.0, Some(ALICE.1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.text().await.unwrap(),
        r#"{"_class":"hudson.model.FreeStyleProject","name":"app"}"#
    );
    // A client that does not trust the test CA refuses the gateway's certificate.
    assert!(client().get(format!("{url}healthz")).send().await.is_err());
}
