//! The library's error type and the exit codes the CLI derives from it.
//!
//! Each module has its own error enum that names the input it could not handle (a config file and line, a
//! Jenkins URL, a store key, a job name and the jobs there are); [`Error`] gathers them so callers can tell
//! classes of failure apart, and [`Error::exit_code`] maps each class onto the stable exit codes
//! documented in the README. The conversions from the modules' errors live here, at the top: no module
//! below the CLI imports this one.

use std::path::PathBuf;

use crate::{
    archive::{ArchiveError, CatalogError},
    audit::{retention::RetentionError, verify::Report},
    config::ConfigError,
    fetch::FetchError,
    fleet::FleetError,
    format::version::DocumentError,
    integrity::IntegrityError,
    jenkins::JenkinsError,
    mirror::SetupError,
    ops::BindError,
    resolve::{NotFound, ResolveError},
    serve::ServeError,
    store::StoreError,
};

/// Stable process exit codes (documented in the README and `jam --help`).
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// Anything not covered below (network, store, Jenkins failures).
    pub const FAILURE: u8 = 1;
    /// Usage or configuration error (also: the store was written by a newer jam).
    pub const USAGE: u8 = 2;
    /// Job, build or artifact not found.
    pub const NOT_FOUND: u8 = 3;
    /// Integrity failure: a checksum or size did not match.
    pub const INTEGRITY: u8 = 4;

    /// The exit code of an audit: 0 when clean, 4 when any problem is about the bytes, 1 otherwise.
    pub fn of_audit(report: &super::Report) -> u8 {
        if report.ok() {
            OK
        } else if report.problems.iter().any(|p| p.kind.is_integrity()) {
            INTEGRITY
        } else {
            FAILURE
        }
    }
}

/// Any error the jam library reports.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration (file, environment or flags) is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A flag or argument is invalid in a way clap cannot see (phrased by the command).
    #[error("{0}")]
    Usage(String),
    /// A name does not say which source, controller, job or build is meant (ambiguous, malformed), or
    /// the mirror's documents disagree about a build.
    #[error(transparent)]
    Resolve(ResolveError),
    /// Reading the mirror's catalog failed: a document does not parse, or a name matches several jobs.
    #[error(transparent)]
    Catalog(CatalogError),
    /// The store holds a document in a newer format than this jam reads: upgrade jam.
    #[error(transparent)]
    NewerFormat(#[from] DocumentError),
    /// A fetch failed: a bad glob, colliding `--flatten` names, an unsafe path, a store read.
    #[error(transparent)]
    Fetch(FetchError),
    /// Talking to Jenkins failed.
    #[error(transparent)]
    Jenkins(#[from] JenkinsError),
    /// Talking to the object store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A job, build, artifact or source does not exist (in the mirror or in Jenkins).
    #[error(transparent)]
    NotFound(#[from] NotFound),
    /// Bytes did not match their recorded size or digest (which artifact, which check, expected and
    /// found), or the archive's records contradict each other.
    #[error(transparent)]
    Integrity(IntegrityError),
    /// This worker cannot run beside the store's other workers (a live worker has its id; the store
    /// cannot coordinate and another worker is live), or another process took its id.
    #[error(transparent)]
    Fleet(FleetError),
    /// The metrics endpoint's address cannot be listened on.
    #[error(transparent)]
    Listen(#[from] BindError),
    /// `jam serve` cannot start (its settings, TLS files, or its address).
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// A local file operation failed.
    #[error("{what} '{path}': {source}")]
    Io {
        /// What jam was doing.
        what: &'static str,
        /// The local path involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A report could not be rendered as JSON.
    #[error("cannot render JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The async runtime could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

impl Error {
    /// The process exit code that reports this error (see [`exit`]).
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_) | Error::Usage(_) | Error::Listen(_) | Error::Serve(_) => exit::USAGE,
            // Retrying cannot help: this jam is too old for the store, as for a configuration error.
            Error::NewerFormat(_) => exit::USAGE,
            Error::Fleet(
                FleetError::DuplicateWorker { .. } | FleetError::CannotCoordinate { .. },
            ) => exit::USAGE,
            Error::Store(StoreError::Config { .. }) => exit::USAGE,
            Error::NotFound(_) => exit::NOT_FOUND,
            Error::Integrity(_) => exit::INTEGRITY,
            Error::Jenkins(e) if e.is_not_found() => exit::NOT_FOUND,
            Error::Store(e) if e.is_not_found() => exit::NOT_FOUND,
            Error::Resolve(ResolveError::Jenkins(e)) if e.is_not_found() => exit::NOT_FOUND,
            Error::Resolve(ResolveError::NotFound(_)) => exit::NOT_FOUND,
            Error::Resolve(ResolveError::Jenkins(_) | ResolveError::Catalog(_)) => exit::FAILURE,
            Error::Resolve(_) => exit::USAGE,
            Error::Catalog(
                CatalogError::Ambiguous { .. } | CatalogError::SeveralSources { .. },
            ) => exit::USAGE,
            Error::Catalog(CatalogError::NoSuchJob { .. } | CatalogError::NoSources { .. }) => {
                exit::NOT_FOUND
            }
            Error::Fetch(FetchError::BadGlob { .. } | FetchError::Flatten { .. }) => exit::USAGE,
            Error::Fetch(FetchError::NotFound(_)) => exit::NOT_FOUND,
            Error::Fetch(FetchError::Integrity(_)) => exit::INTEGRITY,
            _ => exit::FAILURE,
        }
    }
}

/// Shorthand for results with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<CatalogError> for Error {
    fn from(e: CatalogError) -> Error {
        match e {
            CatalogError::Store(s) => Error::Store(s),
            CatalogError::NewerFormat(d) => Error::NewerFormat(d),
            CatalogError::NoSuchJob { name, source_name } => Error::NotFound(NotFound::Job {
                name,
                source_name,
                known: Vec::new(),
            }),
            CatalogError::NoSources { store } => Error::NotFound(NotFound::Source {
                name: None,
                store,
                known: Vec::new(),
            }),
            e => Error::Catalog(e),
        }
    }
}

impl From<ResolveError> for Error {
    fn from(e: ResolveError) -> Error {
        match e {
            ResolveError::Catalog(c) => c.into(),
            ResolveError::Jenkins(j) => Error::Jenkins(j),
            ResolveError::NotFound(n) => Error::NotFound(n),
            ResolveError::Records(r) => Error::Integrity(r),
            e => Error::Resolve(e),
        }
    }
}

impl From<FetchError> for Error {
    fn from(e: FetchError) -> Error {
        match e {
            FetchError::Store(s) => Error::Store(s),
            FetchError::Jenkins(j) => Error::Jenkins(j),
            FetchError::NotFound(n) => Error::NotFound(n),
            FetchError::Integrity(m) => Error::Integrity(m),
            FetchError::Io { what, path, source } => Error::Io { what, path, source },
            e => Error::Fetch(e),
        }
    }
}

impl From<RetentionError> for Error {
    fn from(e: RetentionError) -> Error {
        match e {
            RetentionError::Catalog(c) => c.into(),
            RetentionError::Store(s) => Error::Store(s),
            RetentionError::Archive(a) => a.into(),
        }
    }
}

impl From<ArchiveError> for Error {
    fn from(e: ArchiveError) -> Error {
        match e {
            ArchiveError::Store(s) => Error::Store(s),
            ArchiveError::NewerFormat(d) => Error::NewerFormat(d),
        }
    }
}

impl From<FleetError> for Error {
    fn from(e: FleetError) -> Error {
        match e {
            FleetError::Store(s) => Error::Store(s),
            e => Error::Fleet(e),
        }
    }
}

impl From<SetupError> for Error {
    fn from(e: SetupError) -> Error {
        match e {
            SetupError::Config(c) => Error::Config(c),
            SetupError::Jenkins(j) => Error::Jenkins(j),
        }
    }
}
