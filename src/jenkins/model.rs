//! The slices of Jenkins' JSON that jam asks for, and the `tree=` queries that ask for exactly them.
//!
//! Every query jam sends names its fields with `tree=` (never `depth`), so a controller serializes only
//! what jam reads. Field names and shapes follow the Jenkins remote API; unknown fields are ignored, and a
//! missing field that jam needs is an error naming the URL.

use serde::{Deserialize, Deserializer};

use crate::format::layout::JobPath;

/// Deserializes a present field (even `null`) as `Some(..)`, so an absent key stays `None`.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// `{ "number": N }`, as in permalinks and build lists.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub struct BuildRef {
    /// Build number.
    pub number: u64,
}

/// One item of the change-detection listing.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PollItem {
    /// `_class`, e.g. `hudson.model.FreeStyleProject`.
    #[serde(rename = "_class", default)]
    pub class: Option<String>,
    /// Item name (as stored; branch names are encoded).
    pub name: String,
    /// Present (maybe `null`) on jobs.
    #[serde(default, deserialize_with = "present")]
    pub last_build: Option<Option<BuildRef>>,
    /// Present (maybe `null`) on jobs.
    #[serde(default, deserialize_with = "present")]
    pub last_completed_build: Option<Option<BuildRef>>,
    /// Present on folders (when the query reached their level).
    #[serde(default)]
    pub jobs: Option<Vec<PollItem>>,
}

/// The root of the change-detection listing.
#[derive(Debug, Clone, Deserialize)]
pub struct PollRoot {
    /// Top-level items.
    #[serde(default)]
    pub jobs: Vec<PollItem>,
}

/// A job found by a poll, with its change-detection numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolledJob {
    /// The job's identity.
    pub path: JobPath,
    /// `_class`.
    pub class: String,
    /// Newest build (maybe running).
    pub last_build: Option<u64>,
    /// Newest finished build.
    pub last_completed: Option<u64>,
}

/// The result of one change-detection request.
#[derive(Debug, Clone, Default)]
pub struct PollResult {
    /// Every job found, in listing order.
    pub jobs: Vec<PolledJob>,
    /// Folders the query did not descend into because they sit deeper than `folder_depth`.
    pub too_deep: Vec<JobPath>,
    /// Every folder it did descend into, with its `_class`.
    pub folders: Vec<(JobPath, String)>,
}

impl PollRoot {
    /// Flattens the nested listing into jobs (an item is a job when it has `lastBuild`, a folder when it
    /// has `jobs`).
    pub fn flatten(self) -> PollResult {
        let mut out = PollResult::default();
        fn walk(items: Vec<PollItem>, parent: &[String], out: &mut PollResult) {
            for item in items {
                let mut path = parent.to_vec();
                path.push(item.name);
                if let Some(last_build) = item.last_build {
                    out.jobs.push(PolledJob {
                        path: JobPath(path),
                        class: item.class.unwrap_or_default(),
                        last_build: last_build.map(|b| b.number),
                        last_completed: item.last_completed_build.flatten().map(|b| b.number),
                    });
                } else if let Some(children) = item.jobs {
                    out.folders
                        .push((JobPath(path.clone()), item.class.unwrap_or_default()));
                    walk(children, &path, out);
                } else {
                    out.too_deep.push(JobPath(path));
                }
            }
        }
        walk(self.jobs, &[], &mut out);
        out
    }
}

/// The `tree` of the change-detection query: every job's newest and newest finished build numbers,
/// recursing through folders `depth` levels.
pub fn poll_tree(depth: usize) -> String {
    const JOB: &str = "name,lastBuild[number],lastCompletedBuild[number]";
    let mut tree = format!("jobs[{JOB}]");
    for _ in 1..depth.max(1) {
        tree = format!("jobs[{JOB},{tree}]");
    }
    tree
}

/// A build in a job's build list.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BuildListEntry {
    /// Build number.
    pub number: u64,
    /// Still running.
    #[serde(default)]
    pub building: bool,
    /// Still in progress (Jenkins ≥ 2.369; absent before).
    #[serde(default)]
    pub in_progress: Option<bool>,
    /// Result, once known (may be set while still building).
    #[serde(default)]
    pub result: Option<String>,
}

impl BuildListEntry {
    /// Finished means `building == false` and, where reported, `inProgress == false`.
    pub fn finished(&self) -> bool {
        !self.building && self.in_progress != Some(true)
    }
}

/// A job's recent builds.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobBuilds {
    /// Up to 100 newest builds, newest first.
    #[serde(default)]
    pub builds: Vec<BuildListEntry>,
    /// Oldest retained build.
    #[serde(default)]
    pub first_build: Option<BuildRef>,
    /// A page of `allBuilds`, when asked for.
    #[serde(default)]
    pub all_builds: Option<Vec<BuildListEntry>>,
}

/// `tree` for a job's newest builds.
pub const JOB_BUILDS_TREE: &str = "builds[number,building,inProgress,result],firstBuild[number]";

/// `tree` for a page of older builds: `allBuilds` from index `from` (inclusive) to `to` (exclusive).
pub fn all_builds_tree(from: usize, to: usize) -> String {
    format!("allBuilds[number,building,inProgress,result]{{{from},{to}}}")
}

/// One artifact of a build.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Artifact {
    /// Path under the build's archive, `/`-separated.
    pub relative_path: String,
    /// Last path component.
    #[serde(default)]
    pub file_name: Option<String>,
}

/// One fingerprint the build recorded.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Fingerprint {
    /// Name the content was first seen under (anywhere): not a join key.
    #[serde(default)]
    pub file_name: Option<String>,
    /// MD5, lower-case hex.
    pub hash: String,
}

/// The details of one build.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildDetails {
    /// Build number.
    pub number: u64,
    /// Result, once known.
    #[serde(default)]
    pub result: Option<String>,
    /// Still running.
    #[serde(default)]
    pub building: bool,
    /// Still in progress (≥ 2.369).
    #[serde(default)]
    pub in_progress: Option<bool>,
    /// Start, ms since the epoch.
    #[serde(default)]
    pub timestamp: u64,
    /// Duration, ms.
    #[serde(default)]
    pub duration: u64,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Archived artifacts.
    #[serde(default)]
    pub artifacts: Vec<Artifact>,
    /// Recorded fingerprints (empty unless the job fingerprints).
    #[serde(default)]
    pub fingerprint: Vec<Fingerprint>,
    /// Actions (causes, parameters, git data); opaque ones are `{}`.
    #[serde(default)]
    pub actions: Vec<serde_json::Value>,
}

impl BuildDetails {
    /// Finished means `building == false` and, where reported, `inProgress == false`.
    pub fn finished(&self) -> bool {
        !self.building && self.in_progress != Some(true)
    }

    /// Parameters by name.
    pub fn parameters(&self) -> std::collections::BTreeMap<String, serde_json::Value> {
        let mut out = std::collections::BTreeMap::new();
        for a in &self.actions {
            for p in a
                .get("parameters")
                .and_then(|v| v.as_array())
                .into_iter()
                .flatten()
            {
                if let Some(name) = p.get("name").and_then(|n| n.as_str()) {
                    out.insert(
                        name.to_string(),
                        p.get("value").cloned().unwrap_or(serde_json::Value::Null),
                    );
                }
            }
        }
        out
    }

    /// Short descriptions of what started the build.
    pub fn causes(&self) -> Vec<String> {
        let mut out = Vec::new();
        for a in &self.actions {
            for c in a
                .get("causes")
                .and_then(|v| v.as_array())
                .into_iter()
                .flatten()
            {
                if let Some(s) = c.get("shortDescription").and_then(|s| s.as_str()) {
                    out.push(s.to_string());
                }
            }
        }
        out
    }

    /// The first git revision the build recorded: (SHA-1, branch names, remote URLs).
    pub fn git(&self) -> Option<(String, Vec<String>, Vec<String>)> {
        self.actions.iter().find_map(|a| {
            let rev = a.get("lastBuiltRevision")?;
            let sha = rev.get("SHA1")?.as_str()?.to_string();
            let branches = rev
                .get("branch")
                .and_then(|b| b.as_array())
                .into_iter()
                .flatten()
                .filter_map(|b| b.get("name")?.as_str().map(String::from))
                .collect();
            let remotes = a
                .get("remoteUrls")
                .and_then(|r| r.as_array())
                .into_iter()
                .flatten()
                .filter_map(|r| r.as_str().map(String::from))
                .collect();
            Some((sha, branches, remotes))
        })
    }
}

/// `tree` for a build's details.
pub const BUILD_TREE: &str = "number,result,building,inProgress,timestamp,duration,displayName,description,\
artifacts[relativePath,fileName],fingerprint[fileName,hash],\
actions[causes[shortDescription],parameters[name,value],lastBuiltRevision[SHA1,branch[name]],remoteUrls]";

/// `/whoAmI/api/json`.
#[derive(Debug, Clone, Deserialize)]
pub struct WhoAmI {
    /// User name (`anonymous` when credentials were not accepted as a user).
    pub name: String,
    /// Whether Jenkins considers the caller authenticated.
    #[serde(default)]
    pub authenticated: bool,
    /// Whether the caller is anonymous.
    #[serde(default)]
    pub anonymous: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_tree_nests() {
        assert_eq!(
            poll_tree(1),
            "jobs[name,lastBuild[number],lastCompletedBuild[number]]"
        );
        assert_eq!(
            poll_tree(2),
            "jobs[name,lastBuild[number],lastCompletedBuild[number],jobs[name,lastBuild[number],lastCompletedBuild[number]]]"
        );
    }

    #[test]
    fn flatten_tells_jobs_from_folders() {
        let json = r#"{"_class":"hudson.model.Hudson","jobs":[
          {"_class":"com.cloudbees.hudson.plugins.folder.Folder","name":"team","jobs":[
             {"_class":"hudson.model.FreeStyleProject","name":"app","lastBuild":{"_class":"x","number":7},"lastCompletedBuild":{"number":6}},
             {"_class":"com.cloudbees.hudson.plugins.folder.Folder","name":"deep"}]},
          {"_class":"hudson.model.FreeStyleProject","name":"new","lastBuild":null,"lastCompletedBuild":null}]}"#;
        let root: PollRoot = serde_json::from_str(json).unwrap();
        let r = root.flatten();
        assert_eq!(r.jobs.len(), 2);
        assert_eq!(r.jobs[0].path, JobPath::new(["team", "app"]));
        assert_eq!(
            (r.jobs[0].last_build, r.jobs[0].last_completed),
            (Some(7), Some(6))
        );
        assert_eq!(
            (r.jobs[1].last_build, r.jobs[1].last_completed),
            (None, None)
        );
        assert_eq!(r.too_deep, vec![JobPath::new(["team", "deep"])]);
        assert_eq!(
            r.folders,
            vec![(
                JobPath::new(["team"]),
                "com.cloudbees.hudson.plugins.folder.Folder".to_string()
            )]
        );
    }

    #[test]
    fn finished_uses_building_not_result() {
        let b: BuildListEntry =
            serde_json::from_str(r#"{"number":3,"building":true,"result":"UNSTABLE"}"#).unwrap();
        assert!(!b.finished());
        let b: BuildListEntry = serde_json::from_str(
            r#"{"number":3,"building":false,"inProgress":true,"result":"SUCCESS"}"#,
        )
        .unwrap();
        assert!(!b.finished());
        let b: BuildListEntry =
            serde_json::from_str(r#"{"number":3,"building":false,"result":"SUCCESS"}"#).unwrap();
        assert!(b.finished());
    }
}
