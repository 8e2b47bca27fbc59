//! Getting artifacts out: which job, build and artifacts a `jam fetch` means, and writing them to local
//! files (or one to a writer) with every byte verified. Usable without the CLI.
//!
//! Resolution from the mirror costs what the layout promises: for "the latest successful build" one
//! pointer read and one manifest read, no listing ([`resolve_from_mirror`]); only a name that does not exist
//! as typed is looked up level by level. [`resolve_from_jenkins`] asks the controller instead, for builds
//! the mirror does not have yet; it has no SHA-256 to check against, so it checks the build's MD5
//! fingerprints where Jenkins recorded them and reports the SHA-256 it computed.
//!
//! [`Fetcher::fetch_to_dir`] writes each artifact under a temporary name (`.<name>.<random>.jam-part`) in
//! its target directory, hashing as it goes, and renames it to the final name only when size and digest
//! match. A failed, cancelled or dropped download removes its temporary file, so a file under its final
//! name is always complete and verified. A local file that already has the recorded SHA-256 is left alone.
//! Several artifacts download at once; a large store object is read as parallel ranges ([`RangedReads`]),
//! reassembled in order so it is still hashed and written as one sequential stream.

use std::{
    collections::{BTreeMap, HashSet},
    path::{Path as FsPath, PathBuf},
    str::FromStr,
    sync::Arc,
};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt, stream::BoxStream};
use object_store::{ObjectStoreExt, path::Path};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use url::Url;

use crate::{
    catalog::{Catalog, CatalogError},
    jenkins::{JenkinsClient, JenkinsError},
    layout::{self, JobPath, Layout, Permalink, UnsafePath, check_relative_path},
    manifest::Manifest,
    store::{Store, StoreError},
    transfer::Hasher,
};

/// Why a fetch failed. [`FetchError`] converts into [`crate::Error`] with the right exit code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// Reading the mirror's catalog failed (or the job does not exist there).
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// Talking to Jenkins failed.
    #[error(transparent)]
    Jenkins(#[from] JenkinsError),
    /// The job exists but not the build asked for.
    #[error("{job}: {what}")]
    NoBuild {
        /// The job.
        job: String,
        /// What is missing.
        what: String,
    },
    /// No artifact matched the globs.
    #[error("{}", no_match_message(.job, .number, .globs, .available))]
    NoMatch {
        /// The job.
        job: String,
        /// The build.
        number: u64,
        /// The globs that matched nothing.
        globs: Vec<String>,
        /// What the build has.
        available: Vec<String>,
    },
    /// Bad arguments (glob syntax, `--stdout` with several artifacts, `--flatten` collisions).
    #[error("{0}")]
    Usage(String),
    /// An artifact path from a manifest or Jenkins would escape the output directory.
    #[error(transparent)]
    Unsafe(#[from] UnsafePath),
    /// Bytes did not match their recorded size or digest, or a listed object is missing.
    #[error("{0}")]
    Integrity(String),
    /// Reading an artifact from the store failed.
    #[error("store read of '{key}' failed: {source}")]
    StoreRead {
        /// The key.
        key: String,
        /// The backend's error.
        source: object_store::Error,
    },
    /// A local file operation failed.
    #[error("{what} '{}': {source}", .path.display())]
    Io {
        /// What jam was doing.
        what: &'static str,
        /// The local path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

fn no_match_message(job: &str, number: &u64, globs: &[String], available: &[String]) -> String {
    let mut s = format!(
        "no artifact of {job} #{number} matches {}; ",
        globs
            .iter()
            .map(|g| format!("'{g}'"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if available.is_empty() {
        s.push_str("the build has no artifacts");
    } else {
        s.push_str("the build has:");
        for a in available {
            s.push_str("\n  ");
            s.push_str(a);
        }
    }
    s
}

impl From<StoreError> for FetchError {
    fn from(e: StoreError) -> FetchError {
        FetchError::Catalog(CatalogError::Store(e))
    }
}

impl From<FetchError> for crate::Error {
    fn from(e: FetchError) -> crate::Error {
        match e {
            FetchError::Catalog(c) => c.into(),
            FetchError::Jenkins(j) => crate::Error::Jenkins(j),
            FetchError::NoBuild { .. } | FetchError::NoMatch { .. } => {
                crate::Error::NotFound(e.to_string())
            }
            FetchError::Usage(m) => crate::Error::Usage(m),
            FetchError::Integrity(m) => crate::Error::Integrity(m),
            FetchError::Io { what, path, source } => crate::Error::Io { what, path, source },
            FetchError::Unsafe(_) | FetchError::StoreRead { .. } => {
                crate::Error::Other(e.to_string())
            }
        }
    }
}

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
        (Some(m), _) => Err(FetchError::Integrity(format!(
            "'{}' names build #{} but is stored as #{number}; run `jam verify`",
            layout.manifest_key(job, number),
            m.number
        ))),
        (None, BuildSelector::Link(link)) => Err(FetchError::Integrity(format!(
            "'{}' points at build #{number}, which has no manifest; run `jam verify`",
            layout.pointer_key(job, link)
        ))),
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
    let mut by_name: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in &details.fingerprint {
        if let Some(n) = &f.file_name {
            by_name
                .entry(n.clone())
                .or_default()
                .push(f.hash.to_ascii_lowercase());
        }
    }
    let file_name = |p: &str| p.rsplit('/').next().unwrap_or(p).to_string();
    let mut name_count: BTreeMap<String, usize> = BTreeMap::new();
    for a in &details.artifacts {
        *name_count.entry(file_name(&a.relative_path)).or_default() += 1;
    }
    let mut artifacts = Vec::new();
    for a in &details.artifacts {
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

/// Whether a file was downloaded or already had the right content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Bytes were transferred.
    Downloaded,
    /// A local file already had the recorded digest; nothing was transferred.
    Present,
}

/// One artifact written.
#[derive(Debug, Clone, Serialize)]
pub struct Fetched {
    /// Jenkins `relativePath`.
    pub artifact: String,
    /// The local file (`None` for a writer).
    pub path: Option<PathBuf>,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256, lower-case hex.
    pub sha256: String,
    /// Downloaded or already present.
    pub status: Status,
}

/// Progress reporting for downloads; the CLI draws bars, the library default draws nothing.
pub trait Progress: Send + Sync {
    /// An artifact download starts; `size` when known.
    fn start(&self, path: &str, size: Option<u64>) -> Box<dyn ItemProgress>;
}

/// Progress of one artifact.
pub trait ItemProgress: Send + Sync {
    /// `n` more bytes arrived.
    fn advance(&self, n: u64);
    /// The download ended (successfully or not).
    fn finish(&self, ok: bool);
}

/// Draws nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _: &str, _: Option<u64>) -> Box<dyn ItemProgress> {
        Box::new(NoProgress)
    }
}

impl ItemProgress for NoProgress {
    fn advance(&self, _: u64) {}
    fn finish(&self, _: bool) {}
}

/// Options of [`Fetcher::fetch_to_dir`].
#[derive(Debug, Clone)]
pub struct DirOptions {
    /// The output directory (created if missing).
    pub dir: PathBuf,
    /// Drop the artifacts' directories; two artifacts with the same file name are then an error.
    pub flatten: bool,
    /// Download even when a local file already has the recorded digest.
    pub force: bool,
    /// Downloads at once.
    pub parallel: usize,
}

/// Downloads resolved artifacts from the store or Jenkins.
#[derive(Clone)]
pub struct Fetcher {
    store: Option<Store>,
    jenkins: Option<JenkinsClient>,
    progress: Arc<dyn Progress>,
    ranged: RangedReads,
}

/// Parallel ranged reads of large store objects: the object is read as `part_size` ranges, `parallel` at a
/// time, and reassembled in order (so hashing and writing stay sequential and memory stays bounded at
/// `parallel × part_size`).
#[derive(Debug, Clone, Copy)]
pub struct RangedReads {
    /// Objects at least this large are read in ranges.
    pub min_size: u64,
    /// Range size.
    pub part_size: u64,
    /// Ranges in flight.
    pub parallel: usize,
}

impl Default for RangedReads {
    fn default() -> Self {
        RangedReads {
            min_size: 64 * 1024 * 1024,
            part_size: 8 * 1024 * 1024,
            parallel: 4,
        }
    }
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("store", &self.store)
            .field("jenkins", &self.jenkins)
            .finish_non_exhaustive()
    }
}

type ByteStream = BoxStream<'static, Result<Bytes, FetchError>>;

impl Fetcher {
    /// A fetcher reading from the store.
    pub fn from_store(store: Store) -> Fetcher {
        Fetcher {
            store: Some(store),
            jenkins: None,
            progress: Arc::new(NoProgress),
            ranged: RangedReads::default(),
        }
    }

    /// A fetcher reading from Jenkins.
    pub fn from_jenkins(client: JenkinsClient) -> Fetcher {
        Fetcher {
            store: None,
            jenkins: Some(client),
            progress: Arc::new(NoProgress),
            ranged: RangedReads::default(),
        }
    }

    /// Sets when and how large store objects are read in parallel ranges.
    pub fn with_ranged_reads(mut self, r: RangedReads) -> Fetcher {
        self.ranged = r;
        self
    }

    /// Reports progress to `p`.
    pub fn with_progress(mut self, p: Arc<dyn Progress>) -> Fetcher {
        self.progress = p;
        self
    }

    /// Writes the artifacts under `opts.dir`, at most `opts.parallel` at once. Stops at the first error;
    /// files already renamed into place stay (they are verified), others leave nothing behind.
    pub async fn fetch_to_dir(
        &self,
        resolved: &Resolved,
        opts: &DirOptions,
    ) -> Result<Vec<Fetched>, FetchError> {
        let mut targets = Vec::new();
        let mut seen: BTreeMap<String, &str> = BTreeMap::new();
        for a in &resolved.artifacts {
            check_relative_path(&a.path)?;
            let rel = if opts.flatten {
                a.path.rsplit('/').next().unwrap_or(&a.path).to_string()
            } else {
                a.path.clone()
            };
            check_relative_path(&rel)?;
            if let Some(other) = seen.insert(rel.clone(), &a.path) {
                return Err(FetchError::Usage(format!(
                    "--flatten would write '{other}' and '{}' to the same file '{rel}'; \
                     narrow the selection with --artifact or drop --flatten",
                    a.path
                )));
            }
            targets.push((a, rel));
        }
        tokio::fs::create_dir_all(&opts.dir)
            .await
            .map_err(io("cannot create directory", &opts.dir))?;
        let root = tokio::fs::canonicalize(&opts.dir)
            .await
            .map_err(io("cannot resolve directory", &opts.dir))?;
        let mut out: Vec<Option<Fetched>> = vec![None; targets.len()];
        let mut tasks = futures::stream::iter(targets.into_iter().enumerate())
            .map(|(i, (a, rel))| {
                let root = root.clone();
                async move { (i, self.fetch_file(a, &root, &rel, opts.force).await) }
            })
            .buffer_unordered(opts.parallel.max(1));
        while let Some((i, r)) = tasks.next().await {
            out[i] = Some(r?);
        }
        Ok(out.into_iter().flatten().collect())
    }

    async fn fetch_file(
        &self,
        a: &Wanted,
        root: &FsPath,
        rel: &str,
        force: bool,
    ) -> Result<Fetched, FetchError> {
        let dest = root.join(rel);
        let parent = dest.parent().unwrap_or(root).to_path_buf();
        tokio::fs::create_dir_all(&parent)
            .await
            .map_err(io("cannot create directory", &parent))?;
        // A symlinked directory inside the output directory must not lead out of it.
        let real_parent = tokio::fs::canonicalize(&parent)
            .await
            .map_err(io("cannot resolve directory", &parent))?;
        if !real_parent.starts_with(root) {
            return Err(FetchError::Unsafe(UnsafePath {
                path: rel.to_string(),
                reason: "it leads out of the output directory through a symbolic link",
            }));
        }
        let file_name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dest = real_parent.join(&file_name);
        if !force && let Some((size, sha256)) = already_present(a, &dest).await? {
            return Ok(Fetched {
                artifact: a.path.clone(),
                path: Some(dest),
                size,
                sha256,
                status: Status::Present,
            });
        }
        let tmp = real_parent.join(format!(
            ".{file_name}.{:08x}.jam-part",
            rand::random::<u32>()
        ));
        let mut guard = TempFile {
            path: Some(tmp.clone()),
        };
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .await
            .map_err(io("cannot create", &tmp))?;
        let mut w = tokio::io::BufWriter::with_capacity(256 * 1024, file);
        let (size, sha256) = self.copy(a, &mut w).await?;
        w.flush().await.map_err(io("cannot write", &tmp))?;
        let file = w.into_inner();
        file.sync_all().await.map_err(io("cannot write", &tmp))?;
        drop(file);
        tokio::fs::rename(&tmp, &dest)
            .await
            .map_err(io("cannot rename into place", &dest))?;
        guard.path = None;
        Ok(Fetched {
            artifact: a.path.clone(),
            path: Some(dest),
            size,
            sha256,
            status: Status::Downloaded,
        })
    }

    /// Streams one artifact into `w`, verifying it at the end. The bytes are written before they can be
    /// verified, so on an integrity error `w` has received unverified bytes (the caller discards them).
    pub async fn fetch_to_writer<W: AsyncWrite + Unpin>(
        &self,
        a: &Wanted,
        w: &mut W,
    ) -> Result<Fetched, FetchError> {
        let (size, sha256) = self.copy(a, w).await?;
        w.flush()
            .await
            .map_err(io("cannot write", FsPath::new("-")))?;
        Ok(Fetched {
            artifact: a.path.clone(),
            path: None,
            size,
            sha256,
            status: Status::Downloaded,
        })
    }

    async fn copy<W: AsyncWrite + Unpin>(
        &self,
        a: &Wanted,
        w: &mut W,
    ) -> Result<(u64, String), FetchError> {
        let (len, mut body) = self.open(a).await?;
        let bar = self.progress.start(&a.path, a.size.or(len));
        let result = async {
            let mut h = Hasher::new(!a.md5.is_empty());
            while let Some(chunk) = body.next().await {
                let chunk = chunk?;
                h.update(&chunk);
                w.write_all(&chunk)
                    .await
                    .map_err(io("cannot write", FsPath::new(&a.path)))?;
                bar.advance(chunk.len() as u64);
            }
            let got = h.finish();
            let expected = a.size.or(len);
            if let Some(exp) = expected
                && exp != got.size
            {
                return Err(FetchError::Integrity(format!(
                    "artifact '{}': expected {exp} bytes but {} arrived; nothing was written under its name",
                    a.path, got.size
                )));
            }
            if let Some(sha) = &a.sha256
                && !sha.eq_ignore_ascii_case(&got.sha256)
            {
                return Err(FetchError::Integrity(format!(
                    "artifact '{}': SHA-256 {} does not match the manifest's {sha}; the stored object is corrupt \
                     (run `jam verify --deep`); nothing was written under its name",
                    a.path, got.sha256
                )));
            }
            if let Some(md5) = &got.md5
                && !a.md5.iter().any(|m| m == md5)
            {
                return Err(FetchError::Integrity(format!(
                    "artifact '{}': MD5 {md5} does not match the Jenkins fingerprint ({}); the download was corrupted",
                    a.path,
                    a.md5.join(", ")
                )));
            }
            Ok((got.size, got.sha256))
        }
        .await;
        bar.finish(result.is_ok());
        result
    }

    /// Opens the byte stream of an artifact; returns the length the source announced.
    async fn open(&self, a: &Wanted) -> Result<(Option<u64>, ByteStream), FetchError> {
        match &a.location {
            Location::Store(key) => {
                let store = self
                    .store
                    .as_ref()
                    .ok_or_else(|| FetchError::Usage("no store to read from".into()))?;
                let r = match store.object_store().get(key).await {
                    Ok(r) => r,
                    Err(object_store::Error::NotFound { .. }) => {
                        return Err(FetchError::Integrity(format!(
                            "artifact '{}': the manifest lists '{key}' but the store has no such object; \
                             run `jam verify`",
                            a.path
                        )));
                    }
                    Err(source) => {
                        return Err(FetchError::StoreRead {
                            key: key.to_string(),
                            source,
                        });
                    }
                };
                let size = r.meta.size;
                if let Some(exp) = a.size
                    && exp != size
                {
                    return Err(FetchError::Integrity(format!(
                        "artifact '{}': the manifest records {exp} bytes but '{key}' holds {size}; \
                         run `jam verify`",
                        a.path
                    )));
                }
                if size >= self.ranged.min_size && self.ranged.part_size > 0 {
                    drop(r);
                    return Ok((Some(size), self.ranged_body(store, key, size)));
                }
                let k = key.to_string();
                let body = r
                    .into_stream()
                    .map_err(move |source| FetchError::StoreRead {
                        key: k.clone(),
                        source,
                    })
                    .boxed();
                Ok((Some(size), body))
            }
            Location::Jenkins(url) => {
                let client = self
                    .jenkins
                    .as_ref()
                    .ok_or_else(|| FetchError::Usage("no Jenkins to read from".into()))?;
                let d = client.download(url).await?;
                Ok((d.content_length, d.body.map_err(FetchError::from).boxed()))
            }
        }
    }
}

impl Fetcher {
    /// The object as consecutive ranges read `parallel` at a time, yielded in order.
    fn ranged_body(&self, store: &Store, key: &Path, size: u64) -> ByteStream {
        let part = self.ranged.part_size;
        let ranges: Vec<std::ops::Range<u64>> = (0..size.div_ceil(part))
            .map(|i| i * part..((i + 1) * part).min(size))
            .collect();
        let store = store.object_store().clone();
        let key = key.clone();
        futures::stream::iter(ranges)
            .map(move |r| {
                let store = store.clone();
                let key = key.clone();
                async move {
                    store
                        .get_range(&key, r)
                        .await
                        .map_err(|source| FetchError::StoreRead {
                            key: key.to_string(),
                            source,
                        })
                }
            })
            .buffered(self.ranged.parallel.max(1))
            .boxed()
    }
}

/// Whether `dest` already holds the artifact: its SHA-256 (or, from Jenkins, its MD5 fingerprint) matches.
async fn already_present(a: &Wanted, dest: &FsPath) -> Result<Option<(u64, String)>, FetchError> {
    let meta = match tokio::fs::metadata(dest).await {
        Ok(m) if m.is_file() => m,
        _ => return Ok(None),
    };
    if a.sha256.is_none() && a.md5.len() != 1 {
        return Ok(None);
    }
    if a.size.is_some_and(|s| s != meta.len()) {
        return Ok(None);
    }
    let mut f = tokio::fs::File::open(dest)
        .await
        .map_err(io("cannot read", dest))?;
    let mut h = Hasher::new(a.sha256.is_none());
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf).await.map_err(io("cannot read", dest))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    let got = h.finish();
    let same = match (&a.sha256, &got.md5) {
        (Some(sha), _) => sha.eq_ignore_ascii_case(&got.sha256),
        (None, Some(md5)) => a.md5.iter().any(|m| m == md5),
        (None, None) => false,
    };
    Ok(same.then_some((got.size, got.sha256)))
}

/// Removes a temporary file when dropped, unless it was renamed into place.
struct TempFile {
    path: Option<PathBuf>,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn io<'a>(what: &'static str, path: &'a FsPath) -> impl FnOnce(std::io::Error) -> FetchError + 'a {
    move |source| FetchError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
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
