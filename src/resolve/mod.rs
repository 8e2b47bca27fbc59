//! Names to things: which source (controller), job and build a command means. `jam fetch`, `jam ls` and
//! `jam verify` all resolve through here, so a name means the same to each of them and a name that does
//! not resolve gets the same message everywhere ([`NotFound`]: what was asked, what exists, what to do).
//!
//! **Source.** `--source`, else the single configured controller (or the one whose URL a pasted job URL
//! shares), else the store's only source.
//!
//! **Job.** A name typed by a user (`app/feature/x`) does not say where one item name ends and the next
//! begins, because a branch name may contain `/`; the mirror's [`Catalog::resolve_job`] and
//! [`jenkins::job`] try the possible splits against what exists. A pasted URL names the items exactly.
//!
//! **Build.** From the mirror, the name as typed costs what the layout promises: for a permalink one
//! pointer read and one manifest read, for a number one manifest read, and no listing; only a name that
//! does not exist as typed is looked up level by level. Only a failed lookup reads more (the jobs or the
//! builds that exist, for the message).

pub mod jenkins;
pub mod names;
pub mod not_found;

use url::Url;

use crate::{
    archive::catalog::{Catalog, CatalogError, JobEntry},
    config::JenkinsConfig,
    format::{
        layout::{JobPath, Layout},
        manifest::{JobIndex, Manifest},
    },
    integrity::IntegrityError,
    jenkins::JenkinsError,
};

pub use jenkins::JenkinsBuild;
pub use names::{BuildSelector, JobArg, splits};
pub use not_found::{NotFound, Place, nearest_first};

/// Why a name does not resolve.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    /// Reading the mirror failed, or a name is ambiguous, or the store holds several sources.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// Talking to Jenkins failed.
    #[error(transparent)]
    Jenkins(#[from] JenkinsError),
    /// The job, build or source does not exist.
    #[error(transparent)]
    NotFound(#[from] NotFound),
    /// A job argument that starts like a URL but does not parse as one.
    #[error("'{arg}' is not a valid URL: {message}")]
    BadUrl {
        /// The argument.
        arg: String,
        /// The parser's complaint.
        message: String,
    },
    /// A URL without `job/<name>` segments.
    #[error("'{arg}' is not a Jenkins job URL (expected …/job/NAME/…)")]
    NotAJobUrl {
        /// The argument.
        arg: String,
    },
    /// An empty job name.
    #[error("the job name is empty")]
    EmptyName,
    /// A build that is neither a number nor a permalink.
    #[error(
        "'{given}' is not a build number or one of lastSuccessful, lastStable, lastCompleted, lastBuild, \
         lastFailed, lastUnstable, lastUnsuccessful"
    )]
    BadBuild {
        /// What was given.
        given: String,
    },
    /// Jenkins is needed but no controller is configured.
    #[error(
        "no Jenkins controller is configured; set JENKINS_URL, JENKINS_USER and JENKINS_API_TOKEN, or add a \
         [[jenkins]] table to the config"
    )]
    NoController,
    /// Several controllers are configured and nothing says which one is meant.
    #[error("several Jenkins controllers are configured ({}); choose one with --source", .names.join(", "))]
    SeveralControllers {
        /// Their source names, sorted.
        names: Vec<String>,
    },
    /// `--source` names no configured controller (for `--from jenkins`).
    #[error(
        "--from jenkins: no Jenkins controller named '{name}' is configured; set JENKINS_URL, JENKINS_USER \
         and JENKINS_API_TOKEN, or add a [[jenkins]] table"
    )]
    UnknownController {
        /// The source name.
        name: String,
    },
    /// The archive's records contradict each other (a manifest stored under another build's number, a
    /// pointer naming a build that has no manifest).
    #[error(transparent)]
    Records(IntegrityError),
}

/// A job of the mirror.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorJob {
    /// The source (controller) name.
    pub source: String,
    /// The job.
    pub job: JobPath,
}

/// A committed build of the mirror.
#[derive(Debug, Clone)]
pub struct MirrorBuild {
    /// The source (controller) name.
    pub source: String,
    /// The job.
    pub job: JobPath,
    /// The build's manifest.
    pub manifest: Manifest,
}

/// The jobs of the sources a listing covers.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// The sources (`--source`, or every source in the store).
    pub sources: Vec<String>,
    /// Their jobs, sorted by source and item names.
    pub jobs: Vec<JobEntry>,
}

/// What a command's names are resolved against: `--source` and the configured controllers.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// `--source`, when given.
    pub source: Option<String>,
    /// The configured controllers, as (source name, base URL).
    pub configured: Vec<(String, Url)>,
}

impl Scope {
    /// A scope from `--source` and the configured controllers.
    pub fn new(source: Option<String>, configured: Vec<(String, Url)>) -> Scope {
        Scope { source, configured }
    }

    /// The source a command means: `--source`, else the single configured controller (or the one whose
    /// URL a pasted job URL shares), else the only source in `catalog` (when given).
    pub async fn source(
        &self,
        job: Option<&JobArg>,
        catalog: Option<&Catalog>,
    ) -> Result<String, ResolveError> {
        match (self.configured_source(job), catalog) {
            (Err(ResolveError::NoController), Some(c)) => match c.only_source().await {
                Ok(s) => Ok(s),
                Err(CatalogError::NoSources { store }) => Err(NotFound::Source {
                    name: None,
                    store,
                    known: Vec::new(),
                }
                .into()),
                Err(e) => Err(e.into()),
            },
            (r, _) => r,
        }
    }

    /// The source `--source` or the configuration names; [`ResolveError::NoController`] when neither does.
    fn configured_source(&self, job: Option<&JobArg>) -> Result<String, ResolveError> {
        if let Some(s) = &self.source {
            return Ok(s.clone());
        }
        if let Some(JobArg::Url { url, .. }) = job {
            let hit: Vec<&(String, Url)> = self
                .configured
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
        match self.configured.as_slice() {
            [one] => Ok(one.0.clone()),
            [] => Err(ResolveError::NoController),
            many => {
                let mut names: Vec<String> = many.iter().map(|(n, _)| n.clone()).collect();
                names.sort();
                names.dedup();
                Err(ResolveError::SeveralControllers { names })
            }
        }
    }

    /// The controller a `--from jenkins` command means.
    pub fn controller<'c>(
        &self,
        jenkins: &'c [JenkinsConfig],
        job: &JobArg,
    ) -> Result<&'c JenkinsConfig, ResolveError> {
        let name = self.configured_source(Some(job))?;
        jenkins
            .iter()
            .find(|j| j.name == name)
            .ok_or(ResolveError::UnknownController { name })
    }

    /// The sources a listing covers: `--source`, else every source in the store.
    pub async fn sources(&self, catalog: &Catalog) -> Result<Vec<String>, ResolveError> {
        Ok(match &self.source {
            Some(s) => vec![s.clone()],
            None => catalog.sources().await?,
        })
    }

    /// Every job of the sources a listing covers, sorted by source and item names.
    pub async fn all_jobs(&self, catalog: &Catalog) -> Result<Listing, ResolveError> {
        let sources = self.sources(catalog).await?;
        let mut jobs = Vec::new();
        for s in &sources {
            jobs.extend(catalog.jobs(s).await?);
        }
        Ok(Listing { sources, jobs })
    }

    /// The mirror's job a name or URL means. A URL is taken as it names the items (not read).
    pub async fn job(&self, catalog: &Catalog, arg: &JobArg) -> Result<MirrorJob, ResolveError> {
        let source = self.source(Some(arg), Some(catalog)).await?;
        let job = match arg {
            JobArg::Url { job, .. } => job.clone(),
            JobArg::Name(n) => find_job(catalog, &source, n).await?,
        };
        Ok(MirrorJob { source, job })
    }

    /// The jobs the arguments mean, or every job of the sources a listing covers when there are none.
    pub async fn jobs(
        &self,
        catalog: &Catalog,
        args: &[JobArg],
    ) -> Result<Vec<MirrorJob>, ResolveError> {
        if args.is_empty() {
            return Ok(self
                .all_jobs(catalog)
                .await?
                .jobs
                .into_iter()
                .map(|j| MirrorJob {
                    source: j.source,
                    job: j.job,
                })
                .collect());
        }
        let mut out = Vec::with_capacity(args.len());
        for a in args {
            out.push(self.job(catalog, a).await?);
        }
        Ok(out)
    }

    /// A job of the mirror and its index.
    pub async fn job_index(
        &self,
        catalog: &Catalog,
        arg: &JobArg,
    ) -> Result<(MirrorJob, JobIndex), ResolveError> {
        let found = self.job(catalog, arg).await?;
        match catalog
            .index(&Layout::new(&found.source), &found.job)
            .await?
        {
            Some(ix) => Ok((found, ix)),
            None => Err(no_such_job(catalog, &found.source, &arg.shown()).await),
        }
    }

    /// A committed build of the mirror. A name typed as it is stored costs one pointer read (for a
    /// permalink) and one manifest read.
    pub async fn build(
        &self,
        catalog: &Catalog,
        arg: &JobArg,
        build: BuildSelector,
    ) -> Result<MirrorBuild, ResolveError> {
        let source = self.source(Some(arg), Some(catalog)).await?;
        let layout = Layout::new(&source);
        let first = arg.plain();
        let found = |job: JobPath, manifest: Manifest| MirrorBuild {
            source: source.clone(),
            job,
            manifest,
        };
        if let Some(m) = read_build(catalog, &layout, &first, build).await? {
            return Ok(found(first, m));
        }
        // Not there as typed: find the job (or say there is none), then say what is missing.
        let job = match arg {
            JobArg::Url { .. } => {
                if catalog.index(&layout, &first).await?.is_none() {
                    return Err(no_such_job(catalog, &source, &arg.shown()).await);
                }
                first.clone()
            }
            JobArg::Name(n) => find_job(catalog, &source, n).await?,
        };
        if job != first
            && let Some(m) = read_build(catalog, &layout, &job, build).await?
        {
            return Ok(found(job, m));
        }
        let held = match catalog.index(&layout, &job).await? {
            Some(ix) => ix.builds.keys().rev().copied().collect(),
            None => Vec::new(),
        };
        Err(NotFound::Build {
            job: job.full_name(),
            build,
            place: Place::Mirror,
            held,
        }
        .into())
    }
}

/// The job a typed name means in a source; a name that means none is reported with the jobs there are.
async fn find_job(catalog: &Catalog, source: &str, name: &str) -> Result<JobPath, ResolveError> {
    match catalog.resolve_job(&Layout::new(source), name).await {
        Ok(job) => Ok(job),
        Err(CatalogError::NoSuchJob { .. }) => Err(no_such_job(catalog, source, name).await),
        Err(e) => Err(e.into()),
    }
}

/// The error for a job `name` that `source` does not hold: the jobs it holds, nearest first; or, when it
/// holds none because the store has no such source, the sources there are.
async fn no_such_job(catalog: &Catalog, source: &str, name: &str) -> ResolveError {
    let jobs = match catalog.jobs(source).await {
        Ok(jobs) => jobs,
        Err(e) => return e.into(),
    };
    if jobs.is_empty()
        && let Ok(sources) = catalog.sources().await
        && !sources.iter().any(|s| s == source)
    {
        return NotFound::Source {
            name: Some(source.into()),
            store: catalog.store().describe().into(),
            known: sources,
        }
        .into();
    }
    let names = jobs.iter().map(|j| j.job.full_name()).collect();
    NotFound::Job {
        name: name.into(),
        source_name: source.into(),
        known: nearest_first(name, names),
    }
    .into()
}

/// The manifest of a build of `job` as typed; `None` when the job has no such build (or no such job).
async fn read_build(
    catalog: &Catalog,
    layout: &Layout,
    job: &JobPath,
    build: BuildSelector,
) -> Result<Option<Manifest>, ResolveError> {
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
        (Some(m), _) => Err(ResolveError::Records(IntegrityError::Records {
            key: layout.manifest_key(job, number),
            problem: format!("names build #{} but is stored as #{number}", m.number),
        })),
        (None, BuildSelector::Link(link)) => Err(ResolveError::Records(IntegrityError::Records {
            key: layout.pointer_key(job, link),
            problem: format!("points at build #{number}, which has no manifest"),
        })),
        (None, BuildSelector::Number(_)) => Ok(None),
    }
}
