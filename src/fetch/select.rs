//! Which job, build and artifacts a `jam fetch` means: build selectors, job arguments (names or pasted
//! URLs), and their resolution against the mirror or a controller.

use std::{collections::HashSet, str::FromStr};

use object_store::path::Path;
use serde::Serialize;
use url::Url;

use super::FetchError;
use crate::{
    archive::catalog::{Catalog, CatalogError},
    format::layout::{self, JobPath, Layout, Permalink, check_relative_path},
    format::manifest::Manifest,
    jenkins::JenkinsClient,
};

/// Which build: a permalink or a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildSelector {
    /// A permalink (`lastSuccessful`, `lastStable`, `lastCompleted`, …).
    Link(Permalink),
    /// A build number.
    Number(u64),
}

impl Default for BuildSelector {
    fn default() -> Self {
        BuildSelector::Link(Permalink::LastSuccessfulBuild)
    }
}

impl FromStr for BuildSelector {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim().trim_start_matches('#');
        if let Ok(n) = s.parse::<u64>() {
            return Ok(BuildSelector::Number(n));
        }
        Permalink::parse(s).map(BuildSelector::Link).ok_or_else(|| {
            format!(
                "'{s}' is not a build number or one of lastSuccessful, lastStable, lastCompleted, lastBuild, \
                 lastFailed, lastUnstable, lastUnsuccessful"
            )
        })
    }
}

impl std::fmt::Display for BuildSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BuildSelector::Link(l) => f.write_str(l.name()),
            BuildSelector::Number(n) => write!(f, "#{n}"),
        }
    }
}

/// The `JOB` argument: a full name to resolve, or a Jenkins URL that names the items exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobArg {
    /// A full name as typed (`folder/app`, `app/feature/x`).
    Name(String),
    /// A Jenkins job URL, pasted from the browser.
    Url {
        /// The job's item names, from the URL's `job/<seg>` pairs.
        job: JobPath,
        /// A build the URL names after the job (`…/42/`, `…/lastStableBuild/`).
        build: Option<BuildSelector>,
        /// The URL as given.
        url: Url,
    },
}

impl JobArg {
    /// Parses the argument: anything starting with `http://` or `https://` is a URL.
    pub fn parse(arg: &str) -> Result<JobArg, String> {
        let arg = arg.trim();
        if arg.starts_with("http://") || arg.starts_with("https://") {
            let url = Url::parse(arg).map_err(|e| format!("'{arg}' is not a valid URL: {e}"))?;
            let job = JobPath::from_url_path(url.path()).ok_or_else(|| {
                format!("'{arg}' is not a Jenkins job URL (expected …/job/NAME/…)")
            })?;
            // What follows the last job/<seg> pair may name a build.
            let segs: Vec<&str> = url.path().split('/').filter(|s| !s.is_empty()).collect();
            let last_job = segs.iter().rposition(|s| *s == "job");
            let build = last_job
                .and_then(|i| segs.get(i + 2))
                .and_then(|s| s.parse::<BuildSelector>().ok());
            return Ok(JobArg::Url { job, build, url });
        }
        if arg.split('/').all(str::is_empty) {
            return Err("the job name is empty".into());
        }
        Ok(JobArg::Name(arg.trim_matches('/').to_string()))
    }

    /// The job as typed, for messages.
    pub fn shown(&self) -> String {
        match self {
            JobArg::Name(n) => n.clone(),
            JobArg::Url { job, .. } => job.full_name(),
        }
    }
}

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
    fn from_manifest(m: &Manifest, source: &str, job: JobPath) -> Resolved {
        Resolved {
            source: source.to_string(),
            job,
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
            let m = crate::config::glob(g).map_err(FetchError::Usage)?;
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
            return Err(FetchError::NoMatch {
                job: self.job.full_name(),
                number: self.number,
                globs: unmatched,
                available,
            });
        }
        self.artifacts
            .retain(|a| matchers.iter().any(|m| m.is_match(&a.path)));
        Ok(())
    }
}

/// Resolves a job and build from the mirror. For a name typed as it is stored, a permalink costs one
/// pointer read and one manifest read; a number costs one manifest read.
pub async fn resolve_from_mirror(
    catalog: &Catalog,
    source: &str,
    job: &JobArg,
    build: BuildSelector,
) -> Result<Resolved, FetchError> {
    let layout = Layout::new(source);
    let (first, exact) = match job {
        JobArg::Name(n) => (JobPath::new(n.split('/').filter(|s| !s.is_empty())), false),
        JobArg::Url { job, .. } => (job.clone(), true),
    };
    if let Some(m) = read_build(catalog, &layout, &first, build).await? {
        return Ok(Resolved::from_manifest(&m, source, first));
    }
    // Not there as typed: find the job (or say there is none), then say what is missing.
    let resolved = if exact {
        if catalog.index(&layout, &first).await?.is_none() {
            return Err(CatalogError::NoSuchJob {
                name: first.full_name(),
                source_name: source.into(),
                hint: "; `jam ls` lists the mirrored jobs".into(),
            }
            .into());
        }
        first.clone()
    } else {
        catalog.resolve_job(&layout, &job.shown()).await?
    };
    if resolved != first
        && let Some(m) = read_build(catalog, &layout, &resolved, build).await?
    {
        return Ok(Resolved::from_manifest(&m, source, resolved));
    }
    Err(FetchError::NoBuild {
        job: resolved.full_name(),
        what: match build {
            BuildSelector::Link(l) => format!("no {} in the mirror", l.name()),
            BuildSelector::Number(n) => format!(
                "build #{n} is not in the mirror (`jam ls {}` lists the mirrored builds)",
                resolved.full_name()
            ),
        },
    })
}

async fn read_build(
    catalog: &Catalog,
    layout: &Layout,
    job: &JobPath,
    build: BuildSelector,
) -> Result<Option<Manifest>, FetchError> {
    let number = match build {
        BuildSelector::Number(n) => n,
        BuildSelector::Link(link) => match catalog.pointer(layout, job, link).await? {
            Some(p) => p.number,
            None => return Ok(None),
        },
    };
    let m = catalog.manifest(layout, job, number).await?;
    match (m, build) {
        (Some(m), _) if m.number == number => Ok(Some(m)),
        (Some(m), _) => Err(FetchError::Integrity(
            crate::integrity::IntegrityError::Records {
                key: layout.manifest_key(job, number),
                problem: format!("names build #{} but is stored as #{number}", m.number),
            },
        )),
        (None, BuildSelector::Link(link)) => Err(FetchError::Integrity(
            crate::integrity::IntegrityError::Records {
                key: layout.pointer_key(job, link),
                problem: format!("points at build #{number}, which has no manifest"),
            },
        )),
        (None, BuildSelector::Number(_)) => Ok(None),
    }
}

/// Resolves a job and build on Jenkins (permalinks, then the build's artifacts and fingerprints).
pub async fn resolve_from_jenkins(
    client: &JenkinsClient,
    job: &JobArg,
    build: BuildSelector,
) -> Result<Resolved, FetchError> {
    let job = match job {
        JobArg::Url { job, .. } => job.clone(),
        JobArg::Name(n) => jenkins_job(client, n).await?,
    };
    let number = match build {
        BuildSelector::Number(n) => n,
        BuildSelector::Link(link) => {
            client
                .permalink(&job, link.name())
                .await?
                .ok_or_else(|| FetchError::NoBuild {
                    job: job.full_name(),
                    what: format!("Jenkins has no {}", link.name()),
                })?
        }
    };
    let details = match client.build(&job, number).await {
        Ok(d) => d,
        Err(e) if e.is_not_found() => {
            return Err(FetchError::NoBuild {
                job: job.full_name(),
                what: format!("Jenkins has no build #{number}"),
            });
        }
        Err(e) => return Err(e.into()),
    };
    if !details.finished() {
        return Err(FetchError::NoBuild {
            job: job.full_name(),
            what: format!("build #{number} is still running; its artifacts are not final"),
        });
    }
    let file_names: Vec<&str> = details
        .artifacts
        .iter()
        .map(|a| {
            a.relative_path
                .rsplit('/')
                .next()
                .unwrap_or(&a.relative_path)
        })
        .collect();
    use crate::integrity::fingerprint::{self, Fingerprint};
    let fingerprints: Vec<Fingerprint> = details
        .fingerprint
        .iter()
        .map(|f| Fingerprint::new(&f.hash, f.file_name.clone()))
        .collect();
    let expected = fingerprint::expected_md5s(&file_names, &fingerprints);
    let mut artifacts = Vec::new();
    for (a, md5) in details.artifacts.iter().zip(expected) {
        check_relative_path(&a.relative_path)?;
        artifacts.push(Wanted {
            path: a.relative_path.clone(),
            size: None,
            sha256: None,
            md5,
            location: Location::Jenkins(client.artifact_url(
                &job,
                &number.to_string(),
                &a.relative_path,
            )),
        });
    }
    Ok(Resolved {
        source: client.name().to_string(),
        job,
        number,
        result: details.result.clone().unwrap_or_default(),
        timestamp: details.timestamp,
        origin: Origin::Jenkins,
        artifacts,
    })
}

/// Finds the job a typed name means on Jenkins, trying the ways its parts can form item names.
async fn jenkins_job(client: &JenkinsClient, name: &str) -> Result<JobPath, FetchError> {
    let parts: Vec<&str> = name.split('/').filter(|s| !s.is_empty()).collect();
    let mut found = Vec::new();
    let mut first_err = None;
    for (i, candidate) in splits(&parts).into_iter().enumerate() {
        match client.job_builds(&candidate).await {
            Ok(_) if i == 0 => return Ok(candidate),
            Ok(_) => found.push(candidate),
            Err(e) if e.is_not_found() => {
                first_err.get_or_insert(e);
            }
            Err(e) => return Err(e.into()),
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(first_err
            .map(FetchError::from)
            .unwrap_or_else(|| FetchError::Usage(format!("no job '{name}' on Jenkins")))),
        _ => Err(CatalogError::Ambiguous {
            name: name.into(),
            candidates: found.iter().map(JobPath::full_name).collect(),
        }
        .into()),
    }
}

/// The ways consecutive parts can form item names (a branch `a/b` is the item `a%2Fb`), the plain split
/// first. At most 2^11 candidates.
fn splits(parts: &[&str]) -> Vec<JobPath> {
    let n = parts.len();
    if n == 0 {
        return Vec::new();
    }
    let gaps = (n - 1).min(11);
    let mut out = Vec::new();
    // Bit i set: parts i and i+1 are joined into one name.
    for mask in 0u32..(1 << gaps) {
        let mut names = vec![parts[0].to_string()];
        for (i, p) in parts.iter().enumerate().skip(1) {
            if i - 1 < gaps && mask & (1 << (i - 1)) != 0 {
                let last = names.last_mut().expect("non-empty");
                last.push_str("%2F");
                last.push_str(p);
            } else {
                names.push(p.to_string());
            }
        }
        out.push(JobPath(names));
    }
    out
}

/// Picks the source (controller) a command means: `--source`, else the single configured controller (or
/// the one whose URL a pasted job URL shares), else the only source in `catalog` (when given).
pub async fn pick_source(
    explicit: Option<&str>,
    configured: &[(String, Url)],
    job: Option<&JobArg>,
    catalog: Option<&Catalog>,
) -> Result<String, FetchError> {
    if let Some(s) = explicit {
        return Ok(s.to_string());
    }
    if let Some(JobArg::Url { url, .. }) = job {
        let hit: Vec<&(String, Url)> = configured
            .iter()
            .filter(|(_, base)| {
                base.host_str() == url.host_str()
                    && base.port_or_known_default() == url.port_or_known_default()
                    && url.path().starts_with(base.path())
            })
            .collect();
        if let [one] = hit.as_slice() {
            return Ok(one.0.clone());
        }
    }
    match configured {
        [one] => Ok(one.0.clone()),
        [] => match catalog {
            Some(c) => Ok(c.only_source().await?),
            None => Err(FetchError::Usage(
                "no Jenkins controller is configured; set JENKINS_URL, JENKINS_USER and JENKINS_API_TOKEN, \
                 or add a [[jenkins]] table to the config"
                    .into(),
            )),
        },
        many => {
            let names: HashSet<&str> = many.iter().map(|(n, _)| n.as_str()).collect();
            let mut names: Vec<&str> = names.into_iter().collect();
            names.sort();
            Err(FetchError::Usage(format!(
                "several Jenkins controllers are configured ({}); choose one with --source",
                names.join(", ")
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn selectors_parse() {
        assert_eq!(
            "lastStable".parse::<BuildSelector>(),
            Ok(BuildSelector::Link(Permalink::LastStableBuild))
        );
        assert_eq!("42".parse::<BuildSelector>(), Ok(BuildSelector::Number(42)));
        assert_eq!("#7".parse::<BuildSelector>(), Ok(BuildSelector::Number(7)));
        assert!("latest-ish".parse::<BuildSelector>().is_err());
    }

    #[test]
    fn job_urls_parse() {
        let a =
            JobArg::parse("https://ci.example.com/jenkins/job/app/job/feature%252Fx/42/").unwrap();
        let JobArg::Url { job, build, .. } = a else {
            panic!("not a URL")
        };
        assert_eq!(job, JobPath::new(["app", "feature%2Fx"]));
        assert_eq!(build, Some(BuildSelector::Number(42)));
        let a = JobArg::parse("https://ci/job/app/lastStableBuild/artifact/x.jar").unwrap();
        assert!(matches!(
            a,
            JobArg::Url {
                build: Some(BuildSelector::Link(Permalink::LastStableBuild)),
                ..
            }
        ));
        assert_eq!(
            JobArg::parse("/folder/app/").unwrap(),
            JobArg::Name("folder/app".into())
        );
        assert!(JobArg::parse("https://ci/view/all/").is_err());
    }

    #[test]
    fn splits_plain_first() {
        let s = splits(&["app", "feature", "x"]);
        assert_eq!(s.len(), 4);
        assert_eq!(s[0], JobPath::new(["app", "feature", "x"]));
        assert!(s.contains(&JobPath::new(["app", "feature%2Fx"])));
        assert!(s.contains(&JobPath::new(["app%2Ffeature%2Fx"])));
    }
}
