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
//!
//! [`select`] turns what a user typed into resolved artifacts; [`download`] writes them.

pub mod download;
pub mod select;

use std::path::PathBuf;

use crate::{
    archive::catalog::CatalogError, format::layout::UnsafePath, integrity::IntegrityError,
    jenkins::JenkinsError, store::StoreError,
};

pub use download::{
    DirOptions, Fetched, Fetcher, ItemProgress, NoProgress, Progress, RangedReads, Status,
};
pub use select::{
    BuildSelector, JobArg, Location, Origin, Resolved, Wanted, pick_source, resolve_from_jenkins,
    resolve_from_mirror,
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
    #[error(transparent)]
    Integrity(IntegrityError),
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
