//! What a notice says: the Notification plugin's `JobState` document (API.md §10.5) and the
//! body a Pipeline `post` step sends (§10.6), built from a snapshot of one build
//! ([`BuildFacts`]) taken at the moment of the phase, plus the build environment they expand
//! `$VARS` from.

use crate::json::{Flavor, write};
use crate::model::{Build, Ctx, Item, Model};
use crate::names::{name_decode, raw_encode};
use crate::scenario::{BuildResult, ItemKind};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// The Notification plugin's phases (`Phase`), in the order a build goes through them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Phase {
    /// Sent from `onStarted`, just before STARTED.
    Queued,
    /// The build runs (`building: true`).
    Started,
    /// Result and duration set, `building: false` (`onCompleted`).
    Completed,
    /// Everything done, `inProgress: false` (`onFinalized`).
    Finalized,
}

impl Phase {
    /// The name in documents and in `event` filters (lower-cased).
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Queued => "QUEUED",
            Phase::Started => "STARTED",
            Phase::Completed => "COMPLETED",
            Phase::Finalized => "FINALIZED",
        }
    }
}

/// A build's git checkout as the notices see it.
#[derive(Debug, Clone)]
pub(crate) struct GitFacts {
    /// `GIT_URL`.
    pub url: String,
    /// `GIT_BRANCH` (`origin/main`, or the branch name of a multibranch job).
    pub branch: String,
    /// `GIT_COMMIT`.
    pub commit: String,
    /// Affected paths of the change set.
    pub changes: Vec<String>,
    /// Culprit user ids.
    pub culprits: Vec<String>,
}

/// Everything a notice may say about one build at one moment.
#[derive(Debug, Clone)]
pub(crate) struct BuildFacts {
    pub name: String,
    pub display_name: String,
    pub full_name: String,
    pub job_path: String,
    pub kind: ItemKind,
    /// `BRANCH_NAME` of a branch job (the raw branch name).
    pub branch_name: Option<String>,
    pub number: u64,
    pub queue_id: u64,
    pub timestamp: i64,
    pub duration: i64,
    pub result: Option<BuildResult>,
    pub artifacts: Vec<String>,
    /// Parameter name → value as its `buildEnvironment` writes it.
    pub parameters: Vec<(String, String)>,
    pub git: Option<GitFacts>,
    /// `findLastBuildThatFinished`: the last earlier completed build's SUCCESS, UNSTABLE or FAILURE.
    pub previous_result: Option<BuildResult>,
    /// The configured root URL (`Jenkins.getRootUrl()` outside a request).
    pub root_url: Option<String>,
}

impl BuildFacts {
    /// A snapshot of build `b` of the job `item` at `ctx`.
    pub(crate) fn of(m: &Model, ctx: &Ctx, item: &Item, b: &Build) -> BuildFacts {
        let previous_result = item
            .builds
            .range(..b.number)
            .rev()
            .map(|(_, p)| p)
            .filter(|p| !p.building)
            .filter_map(|p| p.result)
            .find(|r| {
                matches!(
                    r,
                    BuildResult::Success | BuildResult::Unstable | BuildResult::Failure
                )
            });
        let git = b.git.as_ref().map(|g| {
            let branch = g.branch.strip_prefix("refs/remotes/").unwrap_or(&g.branch);
            let mut culprits: Vec<String> = Vec::new();
            for c in &g.commits {
                if !culprits.contains(&c.author) {
                    culprits.push(c.author.clone());
                }
            }
            GitFacts {
                url: g.remote_url.clone(),
                branch: branch.to_string(),
                commit: g.sha1.clone(),
                changes: g.commits.iter().flat_map(|c| c.paths.clone()).collect(),
                culprits,
            }
        });
        BuildFacts {
            name: item.name.clone(),
            display_name: item.display().to_string(),
            full_name: ctx.full_name.clone(),
            job_path: ctx.path.clone(),
            kind: item.kind,
            branch_name: item.is_branch.then(|| name_decode(&item.name)),
            number: b.number,
            queue_id: b.queue_id,
            timestamp: b.timestamp,
            duration: if b.building { 0 } else { b.duration },
            result: b.result,
            artifacts: b.live_artifacts().iter().map(|a| a.path.clone()).collect(),
            parameters: b
                .parameters
                .iter()
                .map(|p| {
                    let v = match &p.value {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (p.name.clone(), v)
                })
                .collect(),
            git,
            previous_result,
            root_url: m.root_url.clone(),
        }
    }

    fn run_path(&self) -> String {
        format!("{}{}/", self.job_path, self.number)
    }

    /// The build environment (`Run.getEnvironment`) as far as the simulator knows it;
    /// `checked_out`: the SCM has run, so `GIT_*` are set.
    pub(crate) fn env(&self, checked_out: bool) -> BTreeMap<String, String> {
        let n = self.number.to_string();
        let mut env = BTreeMap::new();
        let mut set = |k: &str, v: String| {
            env.insert(k.to_string(), v);
        };
        set("BUILD_NUMBER", n.clone());
        set("BUILD_ID", n.clone());
        set("BUILD_DISPLAY_NAME", format!("#{n}"));
        set("JOB_NAME", self.full_name.clone());
        set("JOB_BASE_NAME", self.name.clone());
        set(
            "BUILD_TAG",
            format!("jenkins-{}-{n}", self.full_name.replace('/', "-")),
        );
        set("NODE_NAME", "built-in".into());
        if let Some(root) = &self.root_url {
            set("JENKINS_URL", root.clone());
            set("JOB_URL", format!("{root}{}", self.job_path));
            set("BUILD_URL", format!("{root}{}", self.run_path()));
        }
        if let Some(b) = &self.branch_name {
            set("BRANCH_NAME", b.clone());
        }
        if checked_out && let Some(g) = &self.git {
            set("GIT_URL", g.url.clone());
            set("GIT_BRANCH", g.branch.clone());
            set("GIT_COMMIT", g.commit.clone());
        }
        for (k, v) in &self.parameters {
            set(k, v.clone());
        }
        env
    }

    /// The Notification plugin's document for `phase`, compact Gson (API.md §10.5);
    /// `timestamp` as `JobListener` passes it, `notes` the endpoint's build notes.
    pub(crate) fn plugin_document(
        &self,
        phase: Phase,
        timestamp: i64,
        notes: Option<&str>,
    ) -> String {
        let done = matches!(phase, Phase::Completed | Phase::Finalized);
        let freestyle = self.kind == ItemKind::Freestyle;
        let mut scm = Map::new();
        match (&self.git, done) {
            (Some(g), true) => {
                scm.insert("url".into(), json!(g.url));
                scm.insert("branch".into(), json!(g.branch));
                scm.insert("commit".into(), json!(g.commit));
                // Affected paths and culprits come from AbstractBuild only.
                let (changes, culprits) = if freestyle {
                    (g.changes.clone(), g.culprits.clone())
                } else {
                    (Vec::new(), Vec::new())
                };
                scm.insert("changes".into(), json!(changes));
                scm.insert("culprits".into(), json!(culprits));
            }
            _ => {
                scm.insert("changes".into(), json!([]));
                scm.insert("culprits".into(), json!([]));
            }
        }
        let root = self.root_url.as_deref();
        let mut artifacts = Map::new();
        if done {
            for path in java_hash_map_order(&self.artifacts, default_capacity(self.artifacts.len()))
            {
                let href: Vec<String> = path.split('/').map(raw_encode).collect();
                // `Jenkins.getRootUrl() + run.getUrl() + "artifact/" + href`: "null…" unset.
                let url = format!(
                    "{}{}artifact/{}",
                    root.unwrap_or("null"),
                    self.run_path(),
                    href.join("/")
                );
                artifacts.insert(path.clone(), json!({ "archive": url }));
            }
        }
        let parameters = (!self.parameters.is_empty()).then(|| {
            // EnvVars (a case-insensitive TreeMap) copied into a HashMap.
            let mut names: Vec<&(String, String)> = self.parameters.iter().collect();
            names.sort_by_key(|(k, _)| k.to_lowercase());
            names.dedup_by(|a, b| a.0.eq_ignore_ascii_case(&b.0));
            let keys: Vec<String> = names.iter().map(|(k, _)| k.clone()).collect();
            let mut map = Map::new();
            for k in java_hash_map_order(&keys, copy_capacity(keys.len())) {
                let v = &names.iter().find(|(n, _)| *n == k).expect("key").1;
                map.insert(k, json!(v));
            }
            Value::Object(map)
        });
        let doc = json!({
            "name": self.name,
            "display_name": self.display_name,
            "url": self.job_path,
            "build": {
                "full_url": root.map(|r| format!("{r}{}", self.run_path())),
                "number": self.number,
                "queue_id": self.queue_id,
                "timestamp": timestamp,
                "duration": if done { self.duration } else { 0 },
                "phase": phase.as_str(),
                "status": self.result.map(|r| r.as_str()),
                "url": self.run_path(),
                "scm": scm,
                "parameters": parameters,
                "log": "",
                "notes": notes,
                "artifacts": artifacts,
            }
        });
        write(&doc, Flavor::Gson, false)
    }

    /// A Pipeline `post` step's body: `template` (default `{job, number, result, url}` as in
    /// API.md §10.6) with `${VAR}`s from the build environment plus `RESULT`
    /// (`currentBuild.currentResult`); a string that is one whole `${VAR}` becomes that value
    /// (`BUILD_NUMBER` a number, an unset one `null`), others are expanded in place.
    pub(crate) fn pipeline_body(&self, template: Option<&Value>, current: BuildResult) -> String {
        let default = json!({"job": "${JOB_NAME}", "number": "${BUILD_NUMBER}",
                             "result": "${RESULT}", "url": "${BUILD_URL}"});
        let mut env = self.env(true);
        env.insert("RESULT".into(), current.as_str().into());
        let body = fill(template.unwrap_or(&default), &env);
        write(&body, Flavor::Jackson, false)
    }
}

fn fill(v: &Value, env: &BTreeMap<String, String>) -> Value {
    match v {
        Value::String(s) => {
            let whole = s
                .strip_prefix("${")
                .and_then(|r| r.strip_suffix('}'))
                .filter(|k| is_var_name(k));
            match whole {
                Some("BUILD_NUMBER") => env
                    .get("BUILD_NUMBER")
                    .and_then(|n| n.parse::<u64>().ok())
                    .map_or(Value::Null, |n| json!(n)),
                Some(k) => env.get(k).map_or(Value::Null, |x| json!(x)),
                None => json!(expand(s, env)),
            }
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| fill(x, env)).collect()),
        Value::Object(o) => {
            Value::Object(o.iter().map(|(k, x)| (k.clone(), fill(x, env))).collect())
        }
        other => other.clone(),
    }
}

fn is_var_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !s.as_bytes()[0].is_ascii_digit()
}

/// `EnvVars.expand` (`Util.replaceMacro`): `$VAR` and `${VAR}` replaced when set, left as they
/// are otherwise.
pub(crate) fn expand(s: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, len) = if let Some(inner) = after.strip_prefix('{') {
            match inner.find('}') {
                Some(j) => (&inner[..j], j + 2),
                None => ("", 0),
            }
        } else {
            let j = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..j], j)
        };
        match env.get(name).filter(|_| len > 0 && is_var_name(name)) {
            Some(v) => {
                out.push_str(v);
                rest = &after[len..];
            }
            None => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Capacity of a `new HashMap<>()` after `n` puts (16, doubled past 3/4 full).
fn default_capacity(n: usize) -> usize {
    let mut cap = 16;
    while n * 4 > cap * 3 {
        cap *= 2;
    }
    cap
}

/// Capacity of `new HashMap<>(m)` for `m` of size `n`: `tableSizeFor(n / 0.75 + 1)`.
fn copy_capacity(n: usize) -> usize {
    ((n as f64 / 0.75 + 1.0) as usize).next_power_of_two()
}

/// `String.hashCode` over UTF-16 code units.
fn java_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, u| h.wrapping_mul(31).wrapping_add(i32::from(u)))
}

/// Iteration order of a `java.util.HashMap` of table size `cap` holding `keys` (inserted in
/// this order): by bucket `(h ^ h >>> 16) & (cap - 1)`, then insertion order.
fn java_hash_map_order(keys: &[String], cap: usize) -> Vec<String> {
    let bucket = |k: &String| {
        let h = java_hash(k) as u32;
        ((h ^ (h >> 16)) as usize) & (cap - 1)
    };
    let mut v: Vec<(usize, usize, &String)> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (bucket(k), i, k))
        .collect();
    v.sort();
    v.into_iter().map(|(_, _, k)| k.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_hash_maps() {
        assert_eq!(java_hash("hello"), 99_162_322);
        assert_eq!(
            java_hash("dist/app.tar.gz"),
            "dist/app.tar.gz"
                .encode_utf16()
                .fold(0i32, |h, u| h.wrapping_mul(31).wrapping_add(u as i32))
        );
        assert_eq!(default_capacity(12), 16);
        assert_eq!(default_capacity(13), 32);
        assert_eq!(copy_capacity(1), 2);
        assert_eq!(copy_capacity(3), 8);
        assert_eq!(copy_capacity(12), 32);
        // java.util.HashMap with "b", "a", "c" put in that order iterates a, b, c (buckets 1, 2, 3).
        let keys: Vec<String> = ["b", "a", "c"].iter().map(|s| s.to_string()).collect();
        assert_eq!(java_hash_map_order(&keys, 16), ["a", "b", "c"]);
        // "Aa" and "BB" collide (2112): insertion order inside the bucket.
        let keys: Vec<String> = ["BB", "Aa"].iter().map(|s| s.to_string()).collect();
        assert_eq!(java_hash_map_order(&keys, 16), ["BB", "Aa"]);
    }

    #[test]
    fn env_expansion_like_replace_macro() {
        let env: BTreeMap<String, String> = [("JOB_NAME", "team/app"), ("N", "7")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(
            expand("http://h/$JOB_NAME/${N}x", &env),
            "http://h/team/app/7x"
        );
        assert_eq!(expand("$UNSET ${ALSO} $ $", &env), "$UNSET ${ALSO} $ $");
        assert_eq!(expand("${N", &env), "${N");
    }
}
