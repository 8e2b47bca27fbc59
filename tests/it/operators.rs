//! What operators look at: the Prometheus rules (`config/prometheus/`) and the Grafana dashboard
//! (`config/grafana/jam.json`) name only metrics that a live `jam mirror` or a live `jam serve` exports (both
//! run here as processes, the gateway over the directory the worker mirrored into, and both are scraped),
//! the dashboard shows every family either exports unless [`LEFT_OUT`] says why not, its queries parse as
//! PromQL, and every alert has a quiet and a firing case in the rules' tests and a row in the README's alert
//! table that matches the rule. (`promtool check rules` and `promtool test rules` themselves run in
//! tests/run.sh.)

use std::{
    collections::{BTreeMap, BTreeSet},
    io::{BufRead, BufReader},
    path::Path,
    time::{Duration, Instant},
};

use jenkins_sim::{ArtifactSpec, BuildResult, BuildSpec, ItemSpec, Sim};
use serde_json::Value;

use crate::{
    harness::{self, KillOnDrop, Target, jam_mirror},
    support,
};

/// Families jam exports that the dashboard leaves out on purpose, each with the reason. An entry must name a
/// family jam exports and no panel shows, so the list cannot go stale.
const LEFT_OUT: &[(&str, &str)] = &[];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

// ---------------------------------------------------------------------------------------------------------
// PromQL: the metric names an expression uses

/// Keywords after which a parenthesised list of label names follows.
const LABEL_LIST_KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];
/// Other words of the language that are no metric: operators, and aggregations (which may stand apart from
/// their parenthesis: `sum by (le) (…)`).
const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "inf",
    "nan",
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
];

/// The metric names a PromQL expression selects: identifiers outside label matchers (`{…}`), ranges
/// (`[…]`), strings and label lists (`by (…)`), that are not a function or aggregation (followed by `(`) or a
/// keyword. Grafana's `label_values(SELECTOR, LABEL)` counts its selector.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let expr = match expr.trim().strip_prefix("label_values(") {
        Some(rest) => rest.rsplit_once(',').map_or(rest, |(selector, _)| selector),
        None => expr,
    };
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    let skip_string = |i: &mut usize| {
        let quote = chars[*i];
        *i += 1;
        while *i < chars.len() && chars[*i] != quote {
            *i += if chars[*i] == '\\' { 2 } else { 1 };
        }
        *i += 1;
    };
    let skip_to = |i: &mut usize, close: char| {
        while *i < chars.len() && chars[*i] != close {
            if matches!(chars[*i], '"' | '\'' | '`') {
                skip_string(i);
            } else {
                *i += 1;
            }
        }
        *i += 1;
    };
    while i < chars.len() {
        let c = chars[i];
        if matches!(c, '"' | '\'' | '`') {
            skip_string(&mut i);
        } else if c == '{' {
            skip_to(&mut i, '}');
        } else if c == '[' {
            skip_to(&mut i, ']');
        } else if c.is_ascii_digit() || c == '.' {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '_' | ':'))
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut next = i;
            while next < chars.len() && chars[next].is_whitespace() {
                next += 1;
            }
            let before_paren = chars.get(next) == Some(&'(');
            if LABEL_LIST_KEYWORDS.contains(&word.as_str()) {
                if before_paren {
                    i = next + 1;
                    skip_to(&mut i, ')');
                }
            } else if !before_paren && !KEYWORDS.contains(&word.as_str()) {
                names.insert(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

#[test]
fn metric_names_are_read_from_promql() {
    let names = |e| metric_names(e).into_iter().collect::<Vec<_>>();
    assert_eq!(
        names(
            r#"histogram_quantile(0.95, sum by (le) (rate(jam_x_bucket{a=~"b}c", d!="e"}[$__rate_interval])))"#
        ),
        ["jam_x_bucket"]
    );
    assert_eq!(
        names(
            "sum(rate(a_total[5m])) / on(instance) group_left(version) b > bool 0.5 unless c offset 1h"
        ),
        ["a_total", "b", "c"]
    );
    assert_eq!(
        names(r#"label_values(jam_up{instance=~"$instance"}, controller)"#),
        ["jam_up"]
    );
    assert_eq!(names("absent(jam_y) or vector(1e3)"), ["jam_y"]);
}

// ---------------------------------------------------------------------------------------------------------
// What the files use

/// One alert of the rules file.
#[derive(Debug, Default)]
struct Alert {
    name: String,
    expr: String,
    /// `for:`, empty when the alert has none.
    wait: String,
    severity: String,
}

/// The alert rules, in file order. Each must have a one-line `expr:` (this test reads no multi-line YAML).
fn alerts() -> Vec<Alert> {
    let text = read("config/prometheus/jam.rules.yml");
    let mut alerts: Vec<Alert> = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix("- alert:") {
            alerts.push(Alert {
                name: name.trim().to_string(),
                ..Alert::default()
            });
            continue;
        }
        let Some(alert) = alerts.last_mut() else {
            continue;
        };
        for (key, field) in [
            ("expr:", &mut alert.expr),
            ("for:", &mut alert.wait),
            ("severity:", &mut alert.severity),
        ] {
            if let Some(value) = line.strip_prefix(key) {
                assert!(field.is_empty(), "{}: `{key}` twice", alert.name);
                *field = value.trim().to_string();
            }
        }
    }
    assert!(!alerts.is_empty(), "jam.rules.yml has no alerts");
    for a in &alerts {
        assert!(
            !a.expr.is_empty() && !a.expr.starts_with(['|', '>']),
            "{}: every alert has a one-line `expr:`",
            a.name
        );
        assert!(!a.severity.is_empty(), "{}: no severity label", a.name);
    }
    alerts
}

/// Every PromQL query of the dashboard (panel targets and template variables), with where it is.
fn dashboard_queries(dashboard: &Value) -> Vec<(String, String)> {
    fn walk(v: &Value, at: &str, out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(map) => {
                let here = match map.get("title").or(map.get("name")).and_then(Value::as_str) {
                    Some(t) => format!("{at} / {t}"),
                    None => at.to_string(),
                };
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("expr", Value::String(e)) => out.push((here.clone(), e.clone())),
                        ("query", Value::String(q)) if map.contains_key("refId") => {
                            out.push((here.clone(), q.clone()))
                        }
                        _ => walk(v, &here, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, at, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(dashboard, "dashboard", &mut out);
    out
}

fn dashboard() -> Value {
    serde_json::from_str(&read("config/grafana/jam.json")).expect("jam.json is JSON")
}

/// Metric names used anywhere operators look, each with where.
fn used_metrics() -> BTreeMap<String, BTreeSet<String>> {
    let mut used: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut add = |names: BTreeSet<String>, at: String| {
        for n in names {
            used.entry(n).or_default().insert(at.clone());
        }
    };
    for a in alerts() {
        add(metric_names(&a.expr), format!("jam.rules.yml / {}", a.name));
    }
    for line in read("config/prometheus/jam.rules.test.yml").lines() {
        if let Some(series) = line.trim().strip_prefix("- series:") {
            let series = series.trim().trim_matches('\'');
            add(metric_names(series), "jam.rules.test.yml".into());
        }
    }
    for (at, expr) in dashboard_queries(&dashboard()) {
        add(metric_names(&expr), format!("jam.json: {at}"));
    }
    used
}

// ---------------------------------------------------------------------------------------------------------
// A live worker's and a live gateway's /metrics

/// Metric families by name, with their types.
type Families = BTreeMap<String, String>;

/// What the two processes export.
struct Exported {
    worker: Families,
    gateway: Families,
}

impl Exported {
    /// Every family either exports.
    fn all(&self) -> Families {
        let mut all = self.worker.clone();
        all.extend(self.gateway.clone());
        all
    }
}

/// Reads a jam process's JSON log (stderr) until it names the address it bound (`"listen":"127.0.0.1:PORT"`).
fn listen_address(child: &mut KillOnDrop, what: &str) -> String {
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("{what} logged no listen address: {seen:#?}"));
        if let Ok(v) = serde_json::from_str::<Value>(&line)
            && let Some(addr) = v.get("listen").and_then(Value::as_str)
        {
            return addr.to_string();
        }
        seen.push(line);
    }
}

/// The families of a Prometheus text exposition, from its `# TYPE` lines.
fn families_of(text: &str) -> Families {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| {
            let (name, kind) = l.split_once(' ').unwrap();
            (name.to_string(), kind.to_string())
        })
        .collect()
}

/// `/metrics` of `addr`, once `ready` holds for its text (within 60 s).
async fn scrape_until(addr: &str, what: &str, ready: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = reqwest::get(format!("http://{addr}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if ready(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "{what} within 60 s:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The metric families a `jam mirror` process exports, scraped after it mirrored a build, and those of a
/// `jam serve` process over the same directory, scraped after it answered a page, the JSON API, an artifact
/// and a request for a job that does not exist.
async fn exported_families() -> Exported {
    let sim = Sim::start(
        harness::scenario().with_item(
            ItemSpec::freestyle("app").with_build(
                BuildSpec::finished(1, BuildResult::Success)
                    .with_artifact(ArtifactSpec::sized("dist/app.bin", 200_000)),
            ),
        ),
    );
    let target = Target::local();
    let mut worker = KillOnDrop(
        jam_mirror(
            &sim,
            &target,
            &["--listen", "127.0.0.1:0", "--poll-interval", "1s"],
            &[],
        )
        .spawn()
        .unwrap(),
    );
    let addr = listen_address(&mut worker, "the worker");
    let text = scrape_until(&addr, "the worker mirrored no build", |t| {
        t.contains("\njam_builds_mirrored_total 1\n")
    })
    .await;
    let worker_families = families_of(&text);

    // The gateway as a user runs it: the binary, a config file, the store from the environment.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("jam.toml");
    std::fs::write(&config, "[serve]\nanonymous = true\n").unwrap();
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin!("jam"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(target.env.iter().map(|(k, v)| (k, v)))
        .args(["--log-format", "json", "--config"])
        .arg(&config)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut gateway = KillOnDrop(cmd.spawn().unwrap());
    let addr = listen_address(&mut gateway, "jam serve");
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    for (path, status) in [
        ("", 200),
        ("api/json", 200),
        ("job/app/lastSuccessfulBuild/artifact/dist/app.bin", 200),
        ("job/nothing/api/json", 404),
    ] {
        let r = client
            .get(format!("http://{addr}/{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "jam serve: GET /{path}");
        r.bytes().await.unwrap();
    }
    let text = scrape_until(&addr, "jam serve counted no artifact download", |t| {
        t.contains("jam_serve_requests_total{route=\"artifact\",status=\"200\"} 1\n")
    })
    .await;
    drop(gateway);
    drop(worker);
    Exported {
        worker: worker_families,
        gateway: families_of(&text),
    }
}

/// Every name a query may use for the families: a histogram's `_bucket`, `_sum` and `_count` besides its own.
fn queryable(families: &Families) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (name, kind) in families {
        out.insert(name.clone(), name.clone());
        if kind == "histogram" {
            for suffix in ["_bucket", "_sum", "_count"] {
                out.insert(format!("{name}{suffix}"), name.clone());
            }
        }
    }
    out
}

/// The rules, their tests and the dashboard name only metrics a live worker or gateway exports, and the
/// dashboard shows every family either exports, but for those [`LEFT_OUT`] names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_and_dashboard_name_only_metrics_a_live_worker_or_gateway_exports() {
    let exported = exported_families().await;
    assert!(
        exported.worker.len() >= 20,
        "a worker exports jam's families: {:?}",
        exported.worker
    );
    for family in [
        "jam_claims_won_total",
        "jam_heartbeat_ok",
        "jam_workers_live",
    ] {
        assert!(
            exported.worker.contains_key(family),
            "the worker exports {family}: {:?}",
            exported.worker
        );
    }
    for family in [
        "jam_serve_requests_total",
        "jam_serve_bytes_total",
        "jam_serve_response_seconds",
        "jam_serve_connections",
        "jam_store_requests_total",
    ] {
        assert!(
            exported.gateway.contains_key(family),
            "the gateway exports {family}: {:?}",
            exported.gateway
        );
    }
    let families = exported.all();
    let names = queryable(&families);
    let used = used_metrics();
    let unknown: Vec<String> = used
        .iter()
        .filter(|(n, _)| !names.contains_key(*n))
        .map(|(n, at)| {
            format!(
                "{n} (in {})",
                at.iter().cloned().collect::<Vec<_>>().join("; ")
            )
        })
        .collect();
    assert!(
        unknown.is_empty(),
        "names jam does not export (exported: {:?}):\n{}",
        families.keys().collect::<Vec<_>>(),
        unknown.join("\n")
    );
    let on_dashboard: BTreeSet<&String> = dashboard_queries(&dashboard())
        .iter()
        .flat_map(|(_, e)| metric_names(e))
        .filter_map(|n| names.get(&n))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    for (family, why) in LEFT_OUT {
        assert!(
            families.contains_key(*family) && !on_dashboard.contains(&family.to_string()),
            "LEFT_OUT names {family} ({why}), which jam does not export or a panel shows: drop the entry"
        );
    }
    let missing: Vec<&String> = families
        .keys()
        .filter(|f| !on_dashboard.contains(f) && !LEFT_OUT.iter().any(|(l, _)| l == f))
        .collect();
    assert!(
        missing.is_empty(),
        "jam exports families no panel of config/grafana/jam.json shows; add a panel for {missing:?} \
         (or list it in LEFT_OUT with the reason)"
    );
}

// ---------------------------------------------------------------------------------------------------------
// The files themselves

/// Each alert has a test case in which it stays quiet and one in which it fires.
#[test]
fn every_alert_is_quiet_then_fires_in_a_test() {
    let tests = read("config/prometheus/jam.rules.test.yml");
    let lines: Vec<&str> = tests.lines().map(str::trim).collect();
    for a in alerts() {
        let case = |next: &str| {
            lines
                .windows(2)
                .any(|w| w[0] == format!("alertname: {}", a.name) && w[1] == next)
        };
        assert!(
            case("exp_alerts: []"),
            "jam.rules.test.yml has no case in which {} stays quiet (`alertname: {}` then `exp_alerts: []`)",
            a.name,
            a.name
        );
        assert!(
            case("exp_alerts:"),
            "jam.rules.test.yml has no case in which {} fires (`alertname: {}` then `exp_alerts:` with alerts)",
            a.name,
            a.name
        );
    }
}

/// The README's alert table (one row per alert: its name and expression as code, then `for` and severity)
/// lists exactly the rules of the file, in its order, each with the file's expression, `for` and severity.
#[test]
fn the_readme_alert_table_matches_the_rules() {
    let readme = read("README.md");
    let rows: Vec<[String; 4]> = readme
        .lines()
        .filter(|l| l.starts_with("| `Jam"))
        .map(|l| {
            // Cells split at each `|` but the escaped ones (`\|`, a `|` inside a cell).
            let escaped = l.replace("\\|", "\u{1}");
            let inner = escaped.trim().trim_start_matches('|').trim_end_matches('|');
            let cells: Vec<String> = inner
                .split('|')
                .map(|c| c.trim().replace('\u{1}', "|"))
                .collect();
            let [name, expr, wait, severity] = <[String; 4]>::try_from(cells).unwrap_or_else(|c| {
                panic!("README alert row of {} cells, not 4: {l}\n{c:?}", c.len())
            });
            let code = |cell: &str| {
                cell.strip_prefix('`')
                    .and_then(|rest| rest.split_once('`'))
                    .map(|(code, _)| code.to_string())
                    .unwrap_or_else(|| {
                        panic!("README alert row: `{cell}` does not start with code: {l}")
                    })
            };
            [code(&name), code(&expr), wait, severity]
        })
        .collect();
    let want: Vec<[String; 4]> = alerts()
        .into_iter()
        .map(|a| [a.name, a.expr, a.wait, a.severity])
        .collect();
    assert_eq!(
        rows, want,
        "README.md's alert table differs from config/prometheus/jam.rules.yml"
    );
}

/// The dashboard is one Grafana dashboard: every panel has a unique id, a place that overlaps no other
/// panel, the templated Prometheus data source, and queries with legends.
#[test]
fn dashboard_panels_are_well_formed() {
    let d = dashboard();
    assert_eq!(d["uid"], "jam-mirror");
    assert!(d["schemaVersion"].as_u64().unwrap() >= 36);
    let vars: Vec<&str> = d["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(vars, ["datasource", "instance", "controller"]);
    let panels = d["panels"].as_array().unwrap();
    let mut ids = BTreeSet::new();
    let mut boxes: Vec<(String, [u64; 4])> = Vec::new();
    for p in panels {
        let title = p["title"].as_str().unwrap().to_string();
        assert!(!title.is_empty());
        assert!(ids.insert(p["id"].as_u64().unwrap()), "{title}: id reused");
        let g = &p["gridPos"];
        let b = ["x", "y", "w", "h"].map(|k| g[k].as_u64().unwrap());
        assert!(b[0] + b[2] <= 24, "{title}: wider than the grid");
        for (other, o) in &boxes {
            let apart = b[0] + b[2] <= o[0]
                || o[0] + o[2] <= b[0]
                || b[1] + b[3] <= o[1]
                || o[1] + o[3] <= b[1];
            assert!(apart, "{title} overlaps {other}");
        }
        boxes.push((title.clone(), b));
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{title}");
        assert!(
            !p["description"].as_str().unwrap_or("").is_empty(),
            "{title}: a description says what it shows"
        );
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title}: no query");
        for t in targets {
            assert_eq!(t["datasource"]["uid"], "${datasource}", "{title}");
            assert!(!t["expr"].as_str().unwrap().is_empty(), "{title}");
            assert!(t["legendFormat"].is_string(), "{title}: legend");
        }
    }
}

/// Every dashboard query parses as PromQL: `promtool check rules` on a rules file made of them, with
/// Grafana's variables replaced by what Grafana would put there.
#[test]
fn dashboard_queries_parse_as_promql() {
    let Some(promtool) = support::which("promtool") else {
        return support::skip_or_fail(
            "promtool is not installed (tests/run.sh installs Debian's prometheus package)",
        );
    };
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    let queries = dashboard_queries(&dashboard());
    for (i, (_, expr)) in queries.iter().enumerate() {
        let expr = expr
            .replace("$__rate_interval", "5m")
            .replace("$instance", ".*")
            .replace("$controller", ".*");
        let expr = match expr.strip_prefix("label_values(") {
            Some(rest) => rest.rsplit_once(',').unwrap().0.to_string(),
            None => expr,
        };
        rules.push_str(&format!(
            "      - record: dashboard:query_{i}\n        expr: {}\n",
            serde_json::to_string(&expr).unwrap()
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dashboard.rules.yml");
    std::fs::write(&file, &rules).unwrap();
    let out = std::process::Command::new(promtool)
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dashboard queries do not parse:\n{}{}\n{rules}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("{} rules found", queries.len())),
        "{stdout}"
    );
}
