//! What a `jam fetch` downloads: the artifacts of a resolved build ([`crate::resolve`] finds the build),
//! with what is known about each one's bytes and where they are, narrowed by the user's globs.

use std::collections::BTreeMap;

use object_store::path::Path;
use serde::Serialize;
use url::Url;

use super::FetchError;
use crate::{
    format::layout::{self, JobPath, check_relative_path},
    format::manifest::Manifest,
    jenkins::JenkinsClient,
    resolve::{JenkinsBuild, MirrorBuild, NotFound},
};

/// Where the bytes come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// The object store.
    Mirror,
    /// The Jenkins controller.
    Jenkins,
}

/// Where one artifact's bytes are.
#[derive(Debug, Clone)]
pub enum Location {
    /// An object in the store.
    Store(Path),
    /// A Jenkins download URL.
    Jenkins(Url),
}

/// One artifact to fetch, with what is known about its bytes.
#[derive(Debug, Clone)]
pub struct Wanted {
    /// Jenkins `relativePath`.
    pub path: String,
    /// Size, when recorded.
    pub size: Option<u64>,
    /// SHA-256 (lower-case hex), when recorded.
    pub sha256: Option<String>,
    /// MD5 fingerprints Jenkins recorded under this artifact's file name: one must match.
    pub md5: Vec<String>,
    /// Where the bytes are.
    pub location: Location,
}

/// A resolved build and its artifacts.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// Source (controller) name.
    pub source: String,
    /// The job.
    pub job: JobPath,
    /// Build number.
    pub number: u64,
    /// Build result.
    pub result: String,
    /// Start time (ms).
    pub timestamp: u64,
    /// Where the bytes come from.
    pub origin: Origin,
    /// Every artifact of the build.
    pub artifacts: Vec<Wanted>,
}

impl Resolved {
    /// A build of the mirror: every artifact its manifest lists, with size and SHA-256.
    pub fn from_mirror(b: &MirrorBuild) -> Resolved {
        let m: &Manifest = &b.manifest;
        Resolved {
            source: b.source.clone(),
            job: b.job.clone(),
            number: m.number,
            result: m.result.clone(),
            timestamp: m.timestamp,
            origin: Origin::Mirror,
            artifacts: m
                .artifacts
                .iter()
                .map(|a| Wanted {
                    path: a.path.clone(),
                    size: Some(a.size),
                    sha256: Some(a.sha256.clone()),
                    md5: Vec::new(),
                    location: Location::Store(layout::path(&a.key)),
                })
                .collect(),
        }
    }

    /// Keeps the artifacts matching any of `globs` (every artifact when there are none). A glob that
    /// matches nothing is an error listing what the build has.
    pub fn select(&mut self, globs: &[String]) -> Result<(), FetchError> {
        if globs.is_empty() {
            return Ok(());
        }
        let mut matchers = Vec::new();
        for g in globs {
            let m = crate::config::glob(g).map_err(|message| FetchError::BadGlob {
                glob: g.clone(),
                message,
            })?;
            matchers.push(m.compile_matcher());
        }
        let unmatched: Vec<String> = globs
            .iter()
            .zip(&matchers)
            .filter(|(_, m)| !self.artifacts.iter().any(|a| m.is_match(&a.path)))
            .map(|(g, _)| g.clone())
            .collect();
        if !unmatched.is_empty() {
            let mut available: Vec<String> =
                self.artifacts.iter().map(|a| a.path.clone()).collect();
            available.sort();
            return Err(NotFound::Artifacts {
                job: self.job.full_name(),
                number: self.number,
                globs: unmatched,
                available,
            }
            .into());
        }
        self.artifacts
            .retain(|a| matchers.iter().any(|m| m.is_match(&a.path)));
        Ok(())
    }

    /// A finished build on Jenkins: its artifacts' download URLs and the MD5 fingerprints Jenkins recorded
    /// for them (there is no SHA-256 to check against).
    pub fn from_jenkins(client: &JenkinsClient, b: &JenkinsBuild) -> Result<Resolved, FetchError> {
        let mut by_name: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for f in &b.details.fingerprint {
            if let Some(n) = &f.file_name {
                by_name
                    .entry(n.clone())
                    .or_default()
                    .push(f.hash.to_ascii_lowercase());
            }
        }
        let file_name = |p: &str| p.rsplit('/').next().unwrap_or(p).to_string();
        let mut name_count: BTreeMap<String, usize> = BTreeMap::new();
        for a in &b.details.artifacts {
            *name_count.entry(file_name(&a.relative_path)).or_default() += 1;
        }
        let mut artifacts = Vec::new();
        for a in &b.details.artifacts {
            check_relative_path(&a.relative_path)?;
            let name = file_name(&a.relative_path);
            // A fingerprint is recorded under the name the content was first seen with; it is evidence
            // only when the file name is unique in the build.
            let md5 = if name_count.get(&name) == Some(&1) {
                by_name.get(&name).cloned().unwrap_or_default()
            } else {
                Vec::new()
            };
            artifacts.push(Wanted {
                path: a.relative_path.clone(),
                size: None,
                sha256: None,
                md5,
                location: Location::Jenkins(client.artifact_url(
                    &b.job,
                    &b.number.to_string(),
                    &a.relative_path,
                )),
            });
        }
        Ok(Resolved {
            source: client.name().to_string(),
            job: b.job.clone(),
            number: b.number,
            result: b.details.result.clone().unwrap_or_default(),
            timestamp: b.details.timestamp,
            origin: Origin::Jenkins,
            artifacts,
        })
    }
}
