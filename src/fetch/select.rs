//! What a `jam fetch` downloads: the artifacts of a resolved build ([`crate::resolve`] finds the build),
//! with what is known about each one's bytes and where they are, narrowed by the user's globs.

use object_store::path::Path;
use serde::Serialize;
use url::Url;

use super::FetchError;
use crate::{
    format::layout::{self, JobPath, check_relative_path},
    format::manifest::Manifest,
    integrity::fingerprint::{self, Fingerprint},
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
        let file_names: Vec<&str> = b
            .details
            .artifacts
            .iter()
            .map(|a| {
                a.relative_path
                    .rsplit('/')
                    .next()
                    .unwrap_or(&a.relative_path)
            })
            .collect();
        let fingerprints: Vec<Fingerprint> = b
            .details
            .fingerprint
            .iter()
            .map(|f| Fingerprint::new(&f.hash, f.file_name.clone()))
            .collect();
        let expected = fingerprint::expected_md5s(&file_names, &fingerprints);
        let mut artifacts = Vec::new();
        for (a, md5) in b.details.artifacts.iter().zip(expected) {
            check_relative_path(&a.relative_path)?;
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
