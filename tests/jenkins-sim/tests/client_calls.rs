//! What python-jenkins, jenkinsapi and api4jenkins call besides the polling API (API.md §10):
//! version headers, `/me`, the `api/python` flavour, the crumb issuer, fingerprints by MD5,
//! `wfapi/artifacts`, and the `url`/`color`/`_class` rules of §10.7.

mod common;
use common::*;
use jenkins_sim::*;
use serde_json::{Value, json};

const VERSION: &str = "2.555.1";

fn alice() -> UserSpec {
    UserSpec {
        full_name: Some("Alice Example".into()),
        email: Some("alice@example.com".into()),
        ..UserSpec::new("alice", "11aaaa")
    }
}

fn scenario() -> Scenario {
    let app = ItemSpec {
        description: Some("Build \"app\" \\ null true\nDéploiement 😀".into()),
        ..ItemSpec::freestyle("app")
    }
    .with_build(
        BuildSpec::finished(1, BuildResult::Success)
            .with_artifact(ArtifactSpec::text("dist/app.txt", "hello\n"))
            .with_artifact(ArtifactSpec::generated("dist/app.bin", 4096, 9)),
    )
    .with_build(BuildSpec::finished(2, BuildResult::Failure));
    let workflow = ItemSpec::pipeline("Test Workflow").with_build(
        BuildSpec::finished(14, BuildResult::Success)
            .with_artifact(ArtifactSpec::text("target/classes/x.class", "x"))
            .with_artifact(ArtifactSpec::text("target/hello2.jar", "hello\n")),
    );
    Scenario {
        version: VERSION.into(),
        users: vec![alice()],
        ..Scenario::default()
    }
    .with_user("bob", "11bbbb")
    .with_item(ItemSpec::folder("team").with_job(app).with_job(workflow))
    .with_item(ItemSpec::freestyle("empty"))
}

fn g(sim: &Sim, path: &str) -> Resp {
    get_as(&sim.url(), path, "alice", "11aaaa")
}

fn head(sim: &Sim, path: &str) -> Resp {
    request("HEAD", &sim.url(), path, &[basic("alice", "11aaaa")])
}

/// The Python literal of a Stapler JSON text: `null`/`true`/`false` outside strings become
/// `None`/`True`/`False`; nothing else changes (PythonDataWriter).
fn pythonize(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let (mut in_str, mut esc) = (false, false);
    let mut rest = json;
    while let Some(c) = rest.chars().next() {
        if in_str {
            if esc {
                esc = false;
            } else if c == '\\' {
                esc = true;
            } else if c == '"' {
                in_str = false;
            }
        } else if c == '"' {
            in_str = true;
        } else if let Some((lit, py)) = [("null", "None"), ("true", "True"), ("false", "False")]
            .into_iter()
            .find(|(lit, _)| rest.starts_with(lit))
        {
            out.push_str(py);
            rest = &rest[lit.len()..];
            continue;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

#[test]
fn version_headers_on_the_dashboard_api_and_layout_pages() {
    let sim = Sim::start(scenario());
    let advertised = |r: &Resp, what: &str| {
        assert_eq!(r.header("X-Jenkins"), Some(VERSION), "{what}");
        assert_eq!(r.header("X-Hudson"), Some("1.395"), "{what}");
        assert!(r.header("X-Jenkins-Session").is_some(), "{what}");
    };
    // python-jenkins get_version: GET / ; api4jenkins version: HEAD /.
    let r = g(&sim, "/");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("text/html;charset=UTF-8"));
    advertised(&r, "GET /");
    let r = head(&sim, "/");
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    advertised(&r, "HEAD /");
    for path in [
        "/job/team/",
        "/job/team/job/app/1/",
        "/whoAmI/",
        "/login",
        "/job/nope/api/json",
        "/job/team/job/app/1/artifact/dist/",
    ] {
        advertised(&g(&sim, path), path);
    }
    advertised(&g(&sim, "/api/json?tree=a["), "oops");
    let anon = get(&sim.url(), "/api/json");
    assert_eq!(anon.status, 403);
    advertised(&anon, "anonymous 403");
    // Api.setHeaders: X-Jenkins and the session, no X-Hudson.
    for path in [
        "/api/json",
        "/api/python",
        "/job/team/job/app/api/python?tree=name",
        "/me/api/json",
    ] {
        let r = g(&sim, path);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("X-Jenkins"), Some(VERSION), "{path}");
        assert!(r.header("X-Jenkins-Session").is_some(), "{path}");
        assert_eq!(r.header("X-Hudson"), None, "{path}");
        assert_eq!(r.header("X-Content-Type-Options"), Some("nosniff"));
        assert_eq!(r.header("X-Frame-Options"), Some("deny"));
    }
    // Not on artifact bytes, redirects, the container's 401, sendError answers, plain text, wfapi.
    let none = [
        ("/job/team/job/app/1/artifact/dist/app.txt", 200),
        ("/job/team/job/app/1/artifact/dist", 302),
        ("/job/team/job/app/1/artifact/dist/*zip*/dist.zip", 200),
        ("/job/team/job/app/1/buildNumber", 200),
        ("/job/team/job/Test%20Workflow/14/wfapi/artifacts", 200),
        ("/api/json?jsonp=f", 403),
        ("/job/team/job/app/1/artifact/dist/../x", 400),
    ];
    for (path, status) in none {
        let r = g(&sim, path);
        assert_eq!(r.status, status, "{path}");
        assert_eq!(r.header("X-Jenkins"), None, "{path}");
        assert_eq!(r.header("X-Hudson"), None, "{path}");
    }
    let bad = get_as(&sim.url(), "/", "alice", "wrong");
    assert_eq!(bad.status, 401);
    assert_eq!(bad.header("X-Jenkins"), None);
    // The default version is a Jenkins LTS number.
    let plain = Sim::start(Scenario::default().with_user("alice", "11aaaa"));
    let v = g(&plain, "/").header("X-Jenkins").unwrap().to_string();
    assert_eq!(v, Scenario::default().version);
    assert_eq!(v.split('.').count(), 3, "{v}");
}

#[test]
fn me_is_the_callers_user_record() {
    let sim = Sim::start(scenario());
    let base = sim.url();
    let r = g(&sim, "/me/api/json?depth=0");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("Content-Type"),
        Some("application/json;charset=UTF-8")
    );
    assert_eq!(
        r.text(),
        format!(
            concat!(
                r#"{{"_class":"hudson.model.User","absoluteUrl":"{}user/alice","description":null,"#,
                r#""fullName":"Alice Example","id":"alice","property":[{{"_class":"jenkins.security.ApiTokenProperty"}},"#,
                r#"{{"_class":"hudson.model.MyViewsProperty"}},{{"_class":"hudson.search.UserSearchProperty","insensitiveSearch":true}},"#,
                r#"{{"_class":"hudson.tasks.Mailer$UserProperty","address":"alice@example.com"}}]}}"#
            ),
            base
        )
    );
    // Another user's record shows no properties; the id is matched ignoring case.
    let v = g(&sim, "/user/BOB/api/json").json();
    assert_eq!(
        v,
        json!({"_class": "hudson.model.User", "absoluteUrl": format!("{base}user/bob"),
               "description": null, "fullName": "bob", "id": "bob", "property": []})
    );
    assert_eq!(g(&sim, "/user/nobody/api/json").status, 404);
    // tree works as anywhere else.
    assert_eq!(
        g(&sim, "/me/api/json?tree=id").json(),
        json!({"_class": "hudson.model.User", "id": "alice"})
    );
    // Anonymous without Overall/Read: §1.2's 403 with the permission report.
    let r = get(&base, "/me/api/json");
    assert_eq!(r.status, 403);
    assert_eq!(r.header("X-You-Are-Authenticated-As"), Some("anonymous"));
    assert_eq!(
        r.header("X-Required-Permission"),
        Some("hudson.model.Hudson.Read")
    );
    // Anonymous with Overall/Read: "/me is not available when not logged in", same page,
    // without the report.
    sim.set_anonymous_read(true);
    let r = get(&base, "/me/api/json");
    assert_eq!(r.status, 403);
    assert!(r.text().contains("Authentication required"));
    assert_eq!(r.header("X-Jenkins"), Some(VERSION));
    assert_eq!(r.header("X-You-Are-Authenticated-As"), None);
    assert_eq!(r.header("X-Required-Permission"), None);
    // A configured root URL is used for absoluteUrl.
    sim.set_root_url(Some("https://ci.example.com/"));
    assert_eq!(
        g(&sim, "/me/api/json").json()["absoluteUrl"],
        "https://ci.example.com/user/alice"
    );
}

#[test]
fn api_python_is_the_json_export_with_python_literals() {
    let sim = Sim::start(scenario());
    let md5 = sim
        .artifact("team/app", 1, "dist/app.bin")
        .unwrap()
        .digests()
        .md5;
    let fp = format!("/fingerprint/{md5}/api/json");
    let paths = [
        "/api/json",
        "/api/json?depth=1",
        "/api/json?tree=jobs[name,color,url]",
        "/api/json?pretty=true",
        "/job/team/api/json",
        "/job/team/job/app/api/json",
        "/job/team/job/app/api/json?tree=lastSuccessfulBuild[number],description&pretty",
        "/job/team/job/app/1/api/json?depth=1",
        "/job/team/job/app/1/api/json?depth=1&tree=artifacts[relativePath,fileName]",
        "/job/team/job/app/lastFailedBuild/api/json?depth=2",
        "/job/team/job/Test%20Workflow/14/api/json",
        "/me/api/json",
        "/crumbIssuer/api/json",
        "/whoAmI/api/json",
        &fp,
    ];
    for path in paths {
        let json = g(&sim, path);
        let py = g(&sim, &path.replacen("/api/json", "/api/python", 1));
        assert_eq!(json.status, 200, "{path}");
        assert_eq!(py.status, 200, "{path}");
        assert_eq!(
            py.header("Content-Type"),
            Some("text/x-python;charset=UTF-8"),
            "{path}"
        );
        assert_eq!(py.header("X-Jenkins"), Some(VERSION), "{path}");
        assert_eq!(py.text(), pythonize(&json.text()), "{path}");
    }
    // The literals and escapes a Python caller sees.
    let py = g(
        &sim,
        "/job/team/job/app/api/python?tree=description,buildable,firstBuild,queueItem[id]",
    );
    assert_eq!(
        py.text(),
        concat!(
            r#"{"_class":"hudson.model.FreeStyleProject","#,
            r#""description":"Build \"app\" \\ null true\nDéploiement \ud83d\ude00","#,
            r#""buildable":True,"firstBuild":{"_class":"hudson.model.FreeStyleBuild"},"queueItem":None}"#
        )
    );
    // Errors are the same as for JSON; jsonp is a JSON-only parameter.
    assert_eq!(g(&sim, "/api/python?tree=a[").status, 500);
    assert_eq!(g(&sim, "/api/python?depth=x").status, 500);
    assert_eq!(g(&sim, "/api/python?jsonp=f").status, 200);
    assert_eq!(
        g(
            &sim,
            "/fingerprint/00000000000000000000000000000000/api/python"
        )
        .status,
        404
    );
    assert_eq!(g(&sim, "/job/nope/api/python").status, 404);
}

#[test]
fn crumb_issuer_answers_and_crumbs_are_accepted() {
    let sim = Sim::start(scenario());
    let r = g(&sim, "/crumbIssuer/api/json");
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(keys(&v), ["_class", "crumb", "crumbRequestField"]);
    assert_eq!(v["_class"], "hudson.security.csrf.DefaultCrumbIssuer");
    assert_eq!(v["crumbRequestField"], "Jenkins-Crumb");
    let crumb = v["crumb"].as_str().unwrap().to_string();
    assert_eq!(crumb.len(), 64);
    assert!(crumb.bytes().all(|b| b.is_ascii_hexdigit()));
    // The same crumb for the same caller; python-jenkins then sends it on every request.
    assert_eq!(
        g(&sim, "/crumbIssuer/api/json").json()["crumb"],
        crumb.as_str()
    );
    let with_crumb = |path: &str| {
        request(
            "GET",
            &sim.url(),
            path,
            &[
                basic("alice", "11aaaa"),
                ("Jenkins-Crumb".into(), crumb.clone()),
            ],
        )
    };
    for path in [
        "/api/json",
        "/job/team/job/app/1/artifact/dist/app.txt",
        "/me/api/json",
    ] {
        assert_eq!(with_crumb(path).status, 200, "{path}");
    }
    let py = g(&sim, "/crumbIssuer/api/python").text();
    assert_eq!(
        py,
        format!(
            r#"{{"_class":"hudson.security.csrf.DefaultCrumbIssuer","crumb":"{crumb}","crumbRequestField":"Jenkins-Crumb"}}"#
        )
    );
    // CSRF protection off: no crumb issuer.
    let off = Sim::start(Scenario {
        csrf: false,
        ..scenario()
    });
    assert_eq!(g(&off, "/crumbIssuer/api/json").status, 404);
}

#[test]
fn wfapi_artifacts_for_pipeline_runs_only() {
    let sim = Sim::start(scenario());
    let r = g(&sim, "/job/team/job/Test%20Workflow/14/wfapi/artifacts");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("Content-Type"),
        Some("application/json; charset=UTF-8")
    );
    assert_eq!(
        r.text(),
        concat!(
            r#"[{"id":"n2","name":"x.class","path":"target/classes/x.class","url":"/job/team/job/Test%20Workflow/14/artifact/target/classes/x.class","size":1},"#,
            r#"{"id":"n3","name":"hello2.jar","path":"target/hello2.jar","url":"/job/team/job/Test%20Workflow/14/artifact/target/hello2.jar","size":6}]"#
        )
    );
    // Permalinks resolve; a freestyle build has no wfapi.
    assert_eq!(
        g(
            &sim,
            "/job/team/job/Test%20Workflow/lastSuccessfulBuild/wfapi/artifacts"
        )
        .status,
        200
    );
    assert_eq!(g(&sim, "/job/team/job/app/1/wfapi/artifacts").status, 404);
    // Encoded hrefs; past 20 artifacts displayPath is null, so name is the relative path.
    let mut build = BuildSpec::finished(1, BuildResult::Success)
        .with_artifact(ArtifactSpec::sized("reports/unit tests/summary é.json", 3));
    for i in 0..20 {
        build = build.with_artifact(ArtifactSpec::sized(&format!("bin/f{i:02}"), 1));
    }
    sim.add_item("", ItemSpec::pipeline("many").with_build(build))
        .unwrap();
    let v = g(&sim, "/job/many/1/wfapi/artifacts").json();
    let arts = v.as_array().unwrap();
    assert_eq!(arts.len(), 21);
    let last = &arts[20];
    assert_eq!(last["name"], "reports/unit tests/summary é.json");
    assert_eq!(last["path"], "reports/unit%20tests/summary%20%C3%A9.json");
    assert_eq!(
        last["url"],
        "/job/many/1/artifact/reports/unit%20tests/summary%20%C3%A9.json"
    );
    assert_eq!(arts[0]["name"], "bin/f00");
    // bin/ is n1, its files n2..n21; reports/ is n22, and its chain of single children
    // ("unit tests/", then the file) is collapsed into it.
    assert_eq!(arts[0]["id"], "n2");
    assert_eq!(last["id"], "n22");
}

#[test]
fn url_fields_color_and_class_as_the_clients_follow_them() {
    let sim = Sim::start(scenario());
    let port = sim.addr().port();
    // jenkinsapi: a job list entry without color is a folder.
    let v = g(&sim, "/api/python?tree=jobs[name,color,url]").text();
    assert_eq!(
        v,
        format!(
            r#"{{"_class":"hudson.model.Hudson","jobs":[{{"_class":"hudson.model.FreeStyleProject","name":"empty","url":"http://127.0.0.1:{port}/job/empty/","color":"notbuilt"}},{{"_class":"com.cloudbees.hudson.plugins.folder.Folder","name":"team","url":"http://127.0.0.1:{port}/job/team/"}}]}}"#
        )
    );
    let v = g(&sim, "/job/team/api/json?tree=jobs[name,color]").json();
    assert_eq!(
        v["jobs"],
        json!([
            {"_class": "hudson.model.FreeStyleProject", "name": "app", "color": "red"},
            {"_class": "org.jenkinsci.plugins.workflow.job.WorkflowJob", "name": "Test Workflow", "color": "blue"}
        ])
    );
    // api4jenkins: permalinks by url, typed by _class.
    let v = g(
        &sim,
        "/job/team/job/app/api/json?depth=0&tree=lastSuccessfulBuild[url]",
    )
    .json();
    assert_eq!(
        v["lastSuccessfulBuild"],
        json!({"_class": "hudson.model.FreeStyleBuild", "url": format!("http://127.0.0.1:{port}/job/team/job/app/1/")})
    );
    assert_eq!(
        g(
            &sim,
            "/job/team/job/app/api/json?tree=lastStableBuild[url],lastUnstableBuild[url]"
        )
        .json(),
        json!({"_class": "hudson.model.FreeStyleProject",
               "lastStableBuild": {"_class": "hudson.model.FreeStyleBuild", "url": format!("http://127.0.0.1:{port}/job/team/job/app/1/")},
               "lastUnstableBuild": null})
    );
    // Without a configured root URL, url fields come from the request (Host, X-Forwarded-*).
    let as_host = |headers: &[(&str, &str)]| {
        let mut h: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        h.push(basic("alice", "11aaaa"));
        let v: Value = request(
            "GET",
            &sim.url(),
            "/job/team/job/app/api/json?tree=url,builds[url]",
            &h,
        )
        .json();
        (
            v["url"].as_str().unwrap().to_string(),
            v["builds"][0]["url"].as_str().unwrap().to_string(),
        )
    };
    assert_eq!(
        as_host(&[("Host", &format!("localhost:{port}"))]),
        (
            format!("http://localhost:{port}/job/team/job/app/"),
            format!("http://localhost:{port}/job/team/job/app/2/")
        )
    );
    assert_eq!(
        as_host(&[("Host", "ci.internal")]).0,
        "http://ci.internal/job/team/job/app/"
    );
    assert_eq!(
        as_host(&[
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "ci.example.com")
        ])
        .0,
        format!("https://ci.example.com:{port}/job/team/job/app/")
    );
    assert_eq!(
        as_host(&[
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "ci.example.com:443")
        ])
        .0,
        "https://ci.example.com/job/team/job/app/"
    );
    assert_eq!(
        as_host(&[
            ("X-Forwarded-Host", "ci.example.com"),
            ("X-Forwarded-Port", "8443")
        ])
        .0,
        "http://ci.example.com:8443/job/team/job/app/"
    );
    // The root's own url stays null (no configured root URL), its views follow the request.
    let v = g(&sim, "/api/json?tree=url,primaryView[url]").json();
    assert_eq!(v["url"], Value::Null);
    assert_eq!(v["primaryView"]["url"], format!("http://127.0.0.1:{port}/"));
    // A configured root URL wins.
    sim.set_root_url(Some("https://ci.example.com/jenkins"));
    assert_eq!(
        as_host(&[("Host", "localhost")]).0,
        "https://ci.example.com/jenkins/job/team/job/app/"
    );
}
