//! The requests of one `jam mirror --once` over a workload, counted rather than timed: Jenkins' from the
//! simulator's request log, by kind (the tree query, build lists, build details, artifact downloads), and
//! the store's from jam's own counters (`jam_store_requests_total` and
//! `jam_coordination_store_requests_total`, by operation), so a bench can say what one artifact and one
//! build cost and show that no request is spent that is not needed. jam runs in this process, through the
//! library, with the settings the binary would read from the same environment.

use std::collections::BTreeMap;

use jam::{
    config::{Config, Overrides, parse_toml},
    mirror::Mirror,
    store::Store,
};
use serde_json::Value;

use super::{BUCKET, Seaweed, SimProc, TOKEN, USER};

/// What one run asked.
#[derive(Debug, Default, Clone)]
pub struct Census {
    /// Jenkins requests by kind.
    pub jenkins: BTreeMap<&'static str, u64>,
    /// The mirror's own store requests by operation (`put`, `get`, `create`, …).
    pub store: BTreeMap<String, u64>,
    /// Coordination store requests (heartbeat, claims, singletons) by operation.
    pub coordination: BTreeMap<String, u64>,
}

/// The kind of a Jenkins request, by its path.
fn kind(path: &str) -> &'static str {
    if path.contains("/artifact/") {
        "artifact download"
    } else if path.starts_with("/api/json") {
        "tree query"
    } else if path.contains("tree=builds") || path.contains("tree=allBuilds") {
        "build list"
    } else if path.contains("/api/json") {
        "build details"
    } else {
        "other"
    }
}

/// Sums `metric{operation="…",…} N` samples of a rendered exposition by operation.
fn by_operation(text: &str, metric: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(metric).and_then(|r| r.strip_prefix('{')) else {
            continue;
        };
        let Some((labels, value)) = rest.split_once("} ") else {
            continue;
        };
        let op = labels
            .split(',')
            .find_map(|l| l.strip_prefix("operation=\""))
            .map(|o| o.trim_end_matches('"').to_string())
            .unwrap_or_default();
        let n: u64 = value.trim().parse().unwrap_or(0);
        if n > 0 {
            *out.entry(op).or_default() += n;
        }
    }
    out
}

/// Runs `jam mirror --once` over the simulator into `s3://BUCKET/prefix` and counts its requests.
pub fn count(s3: &Seaweed, sim: &SimProc, prefix: &str, extra_toml: &str) -> Census {
    let vars: BTreeMap<String, String> = [
        ("JENKINS_URL", sim.url.clone()),
        ("JENKINS_USER", USER.to_string()),
        ("JENKINS_API_TOKEN", TOKEN.to_string()),
        ("JAM_STORE", format!("s3://{BUCKET}/{prefix}")),
        ("AWS_ACCESS_KEY_ID", super::S3_KEY.to_string()),
        ("AWS_SECRET_ACCESS_KEY", super::S3_SECRET.to_string()),
        ("AWS_REGION", "us-east-1".to_string()),
        ("AWS_ENDPOINT_URL", s3.endpoint.clone()),
        ("AWS_ALLOW_HTTP", "true".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let raw = parse_toml(std::path::Path::new("census.toml"), extra_toml).expect("census config");
    let cfg = Config::from_raw(
        raw,
        None,
        &Overrides::default(),
        &jam::config::Env::from_map(vars),
    )
    .expect("census config is valid");
    sim.clear_requests();
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let rendered = rt.block_on(async {
        let store = Store::open(&cfg.store).expect("open the store");
        let mirror = Mirror::new(&cfg, store).expect("the worker");
        let registry = mirror.metrics();
        let summary = mirror
            .run(true, tokio_util::sync::CancellationToken::new())
            .await
            .expect("the worker joins");
        assert!(summary.ok(), "the counted run failed: {summary:?}");
        registry.render()
    });
    let mut jenkins = BTreeMap::new();
    for r in sim.requests() {
        let path = r["path"].as_str().unwrap_or_default();
        *jenkins.entry(kind(path)).or_default() += 1;
    }
    Census {
        jenkins,
        store: by_operation(&rendered, "jam_store_requests_total"),
        coordination: by_operation(&rendered, "jam_coordination_store_requests_total"),
    }
}

impl Census {
    /// The census as Markdown lines: each count, and per artifact and per build.
    pub fn markdown(&self, artifacts: u64, builds: u64) -> String {
        let list = |m: &BTreeMap<String, u64>| {
            m.iter()
                .map(|(k, v)| format!("{v} {k}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let jenkins: BTreeMap<String, u64> = self
            .jenkins
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
        let total = |m: &BTreeMap<String, u64>| m.values().sum::<u64>();
        let per = |n: u64, d: u64| n as f64 / d.max(1) as f64;
        let downloads = self.jenkins.get("artifact download").copied().unwrap_or(0);
        let puts = self.store.get("put").copied().unwrap_or(0);
        format!(
            "Requests of one more `jam mirror --once` (counted in-process, not timed): Jenkins {} ({}): {:.2} downloads per artifact, {} other per build; the store {} ({}): {:.2} PUTs per artifact, {} other per build; coordination {} ({}).",
            total(&jenkins),
            list(&jenkins),
            per(downloads, artifacts),
            (total(&jenkins) - downloads) / builds.max(1),
            total(&self.store),
            list(&self.store),
            per(puts, artifacts),
            (total(&self.store) - puts) / builds.max(1),
            total(&self.coordination),
            list(&self.coordination),
        )
    }

    /// The census for the JSON.
    pub fn json(&self) -> Value {
        serde_json::json!({
            "jenkins": self.jenkins,
            "store": self.store,
            "coordination": self.coordination,
        })
    }
}
