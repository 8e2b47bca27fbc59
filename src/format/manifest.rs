//! The small JSON documents the mirror writes next to the artifact bytes: a build's manifest (its commit
//! marker), `SHA256SUMS`, the job's permalink pointers, the job's index, and what the mirror last saw of
//! the controller ([`ControllerInfo`]).
//!
//! All of them carry [`crate::format::layout::FORMAT_VERSION`] and are read with
//! [`crate::format::version::parse_document`]. The manifest is the source of truth; pointers and the index
//! are derived from manifests and can be rebuilt from them.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::format::{
    layout::{FORMAT_VERSION, JobPath},
    version::{DocumentError, Versioned, parse_document},
};

/// A committed build: written with a conditional create, only after every artifact it lists is stored and
/// verified.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Layout format version.
    pub format: u32,
    /// Source (controller) name.
    pub source: String,
    /// The controller's base URL.
    pub jenkins: String,
    /// The job's item names.
    pub job: JobPath,
    /// The job's full name (`folder/app`).
    pub full_name: String,
    /// Build number.
    pub number: u64,
    /// Build result (`SUCCESS`, `UNSTABLE`, `FAILURE`, `NOT_BUILT`, `ABORTED`).
    pub result: String,
    /// Start time, ms since the epoch.
    pub timestamp: u64,
    /// Duration in ms.
    pub duration: u64,
    /// The build's URL on the controller (built from the configured base URL).
    pub url: String,
    /// Display name, e.g. `#42`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Build description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Git revision and branch, when the build recorded them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scm: Option<Scm>,
    /// Build parameters, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, serde_json::Value>,
    /// What started the build (short descriptions).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<String>,
    /// The artifacts, in Jenkins' order.
    pub artifacts: Vec<ArtifactEntry>,
    /// When jam committed the build (RFC 3339).
    pub mirrored_at: String,
    /// Which jam did.
    pub mirrored_by: String,
}

/// Git data of a build.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scm {
    /// Commit SHA-1.
    pub revision: String,
    /// Branch names the revision was built as.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub branches: Vec<String>,
    /// Remote repository URLs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remotes: Vec<String>,
}

/// One stored artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArtifactEntry {
    /// Jenkins `relativePath`.
    pub path: String,
    /// Object key, relative to the store root.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256, lower-case hex.
    pub sha256: String,
    /// MD5, lower-case hex (computed when the build recorded fingerprints to check it against).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub md5: Option<String>,
    /// Whether the MD5 was found among the build's Jenkins fingerprints.
    #[serde(default)]
    pub fingerprint: bool,
}

impl Manifest {
    /// The manifest as pretty JSON.
    pub fn to_json(&self) -> bytes::Bytes {
        let mut v = serde_json::to_vec_pretty(self).expect("manifest serializes");
        v.push(b'\n');
        v.into()
    }

    /// Total artifact bytes.
    pub fn total_size(&self) -> u64 {
        self.artifacts.iter().map(|a| a.size).sum()
    }

    /// The `SHA256SUMS` text for this build (the format `sha256sum -c` reads, paths relative to the
    /// directory the artifacts are fetched into).
    pub fn sha256sums(&self) -> String {
        sha256sums(
            self.artifacts
                .iter()
                .map(|a| (a.sha256.as_str(), a.path.as_str())),
        )
    }

    /// The pointer to this build.
    pub fn pointer(&self, manifest_key: String) -> Pointer {
        Pointer {
            format: FORMAT_VERSION,
            number: self.number,
            result: self.result.clone(),
            timestamp: self.timestamp,
            manifest: manifest_key,
        }
    }
}

/// Renders `SHA256SUMS` lines: `<hex>  <path>`.
pub fn sha256sums<'a>(entries: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    entries
        .into_iter()
        .map(|(sha, path)| format!("{sha}  {path}\n"))
        .collect()
}

/// Parses `SHA256SUMS` text into (path → hex).
pub fn parse_sha256sums(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        let (hex, path) = line
            .split_once("  ")
            .or_else(|| line.split_once(" *"))
            .ok_or_else(|| format!("line {}: expected '<sha256>  <path>'", i + 1))?;
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("line {}: '{hex}' is not a SHA-256", i + 1));
        }
        out.insert(path.to_string(), hex.to_ascii_lowercase());
    }
    Ok(out)
}

/// A permalink pointer: `<job>/lastSuccessfulBuild.json` and friends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pointer {
    /// Layout format version.
    pub format: u32,
    /// Build number the permalink names.
    pub number: u64,
    /// That build's result.
    pub result: String,
    /// That build's start time (ms).
    pub timestamp: u64,
    /// Key of that build's manifest.
    pub manifest: String,
}

impl Pointer {
    /// The pointer as JSON.
    pub fn to_json(&self) -> bytes::Bytes {
        serde_json::to_vec(self).expect("pointer serializes").into()
    }
}

/// A job's index: what jam knows about the job's builds, so a restarted worker and `jam ls` need one read
/// per job rather than a listing of every build. Derived from manifests: a build listed here always has a
/// manifest, while a crash between a manifest write and the index update is repaired on the next cycle.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobIndex {
    /// Layout format version.
    pub format: u32,
    /// The job's item names.
    pub job: JobPath,
    /// The job's full name.
    pub full_name: String,
    /// Committed builds.
    #[serde(default)]
    pub builds: BTreeMap<u64, BuildSummary>,
    /// Builds jam gave up on after `max_attempts`, with the last error.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub failed: BTreeMap<u64, Failure>,
    /// Builds numbered at or below this are not mirrored: the `backfill` policy's cut at first sight, raised by
    /// retention to the newest build it deleted (so builds Jenkins still keeps are not mirrored again).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub floor: u64,
    /// Builds Jenkins deleted before jam could mirror them.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub missed: BTreeSet<u64>,
}

/// A committed build, as the index lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildSummary {
    /// Result.
    pub result: String,
    /// Start time (ms).
    pub timestamp: u64,
    /// Number of artifacts.
    pub artifacts: usize,
    /// Total artifact bytes.
    pub size: u64,
}

/// A build jam could not mirror.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// Attempts made.
    pub attempts: u32,
    /// The last error.
    pub error: String,
    /// When jam gave up (RFC 3339).
    pub at: String,
}

/// What the mirror last saw of a controller (`<source>/controller.json`): its version and the Jenkins
/// class of each mirrored item and the folders above them, so that a reader of the mirror can answer as
/// that controller would (`jam serve` sends the version as `X-Jenkins` and each item's `_class`). Written
/// by the worker when what it sees changes; "as last seen", never a commitment about any build.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerInfo {
    /// Layout format version.
    pub format: u32,
    /// Source (controller) name.
    pub source: String,
    /// The controller's base URL.
    pub jenkins: String,
    /// The controller's `X-Jenkins` header, when it sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// `_class` by full name (`team/app`), for the mirrored jobs and every folder above them.
    #[serde(default)]
    pub items: BTreeMap<String, String>,
    /// When this record was written (RFC 3339).
    pub recorded_at: String,
}

impl ControllerInfo {
    /// The record as JSON.
    pub fn to_json(&self) -> bytes::Bytes {
        let mut v = serde_json::to_vec_pretty(self).expect("controller info serializes");
        v.push(b'\n');
        v.into()
    }

    /// Whether two records say the same, whenever they were written.
    pub fn same_as(&self, other: &ControllerInfo) -> bool {
        (&self.source, &self.jenkins, &self.version, &self.items)
            == (&other.source, &other.jenkins, &other.version, &other.items)
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl JobIndex {
    /// An empty index for a job.
    pub fn new(job: JobPath) -> JobIndex {
        JobIndex {
            format: FORMAT_VERSION,
            full_name: job.full_name(),
            job,
            ..Default::default()
        }
    }

    /// The index as JSON.
    pub fn to_json(&self) -> bytes::Bytes {
        serde_json::to_vec(self).expect("index serializes").into()
    }

    /// Parses the index stored at `key`, refusing one in a newer format ([`parse_document`]).
    pub fn parse(bytes: &[u8], key: &str) -> Result<JobIndex, DocumentError> {
        parse_document(bytes, key)
    }

    /// Whether jam is done with a build (committed, given up on, or missed).
    pub fn settled(&self, number: u64) -> bool {
        self.builds.contains_key(&number)
            || self.failed.contains_key(&number)
            || self.missed.contains(&number)
    }
}

impl Versioned for Manifest {
    const KIND: &'static str = "manifest";
    fn format(&self) -> u32 {
        self.format
    }
}

impl Versioned for Pointer {
    const KIND: &'static str = "pointer";
    fn format(&self) -> u32 {
        self.format
    }
}

impl Versioned for JobIndex {
    const KIND: &'static str = "job index";
    fn format(&self) -> u32 {
        self.format
    }
}

impl Versioned for ControllerInfo {
    const KIND: &'static str = "controller record";
    fn format(&self) -> u32 {
        self.format
    }
}

/// The current time as RFC 3339 (UTC, seconds).
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc())
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Formats ms since the epoch as RFC 3339.
pub fn ms_to_rfc3339(ms: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp((ms / 1000) as i64)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_round_trip() {
        let text = sha256sums([
            (&"a".repeat(64)[..], "dist/app.jar"),
            (&"b".repeat(64)[..], "my file.txt"),
        ]);
        assert_eq!(
            text.lines().next().unwrap(),
            format!("{}  dist/app.jar", "a".repeat(64))
        );
        let parsed = parse_sha256sums(&text).unwrap();
        assert_eq!(parsed["my file.txt"], "b".repeat(64));
        assert!(parse_sha256sums("xyz  a\n").is_err());
    }

    #[test]
    fn time_formats() {
        assert_eq!(ms_to_rfc3339(1_700_000_000_123), "2023-11-14T22:13:20Z");
        assert!(now_rfc3339().ends_with('Z'));
    }
}
