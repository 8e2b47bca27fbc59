//! Getting artifacts out: the artifacts of a build ([`crate::resolve`] finds which), written to local
//! files (or one to a writer) with every byte verified. Usable without the CLI.
//!
//! A build of the mirror comes with each artifact's size and SHA-256 ([`Resolved::from_mirror`]); a build
//! read from the controller instead ([`Resolved::from_jenkins`], for builds the mirror does not have yet)
//! has no SHA-256 to check against, so its MD5 fingerprints are checked where Jenkins recorded them and the
//! SHA-256 computed on the way is reported.
//!
//! [`Fetcher::fetch_to_dir`] writes each artifact under a temporary name (`.<name>.<random>.jam-part`) in
//! its target directory, hashing as it goes, and renames it to the final name only when size and digest
//! match. A failed, cancelled or dropped download removes its temporary file, so a file under its final
//! name is always complete and verified. A local file that already has the recorded SHA-256 is left alone.
//! Several artifacts download at once; a large store object is read as parallel ranges ([`RangedReads`]),
//! reassembled in order so it is still hashed and written as one sequential stream.
//!
//! [`select`] lists a build's artifacts and narrows them by glob; [`download`] writes them.

pub mod download;
mod durable;
pub mod select;

use std::path::PathBuf;

use crate::{
    format::layout::UnsafePath, integrity::IntegrityError, jenkins::JenkinsError,
    resolve::NotFound, store::StoreError,
};

pub use download::{
    DirOptions, Fetched, Fetcher, ItemProgress, NoProgress, Progress, RangedReads, Status,
};
pub use select::{Location, Origin, Resolved, Wanted};

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Talking to Jenkins failed.
    #[error(transparent)]
    Jenkins(#[from] JenkinsError),
    /// No artifact matched the globs.
    #[error(transparent)]
    NotFound(#[from] NotFound),
    /// A glob does not parse.
    #[error("{message}; `*` stays within a directory, `**` crosses them")]
    BadGlob {
        /// The glob as given.
        glob: String,
        /// The parser's complaint, naming the glob.
        message: String,
    },
    /// `--flatten` would write two artifacts to the same file.
    #[error(
        "--flatten would write '{first}' and '{second}' to the same file '{file}'; narrow the selection \
         with --artifact or drop --flatten"
    )]
    Flatten {
        /// The artifact written first.
        first: String,
        /// The artifact that would overwrite it.
        second: String,
        /// The file name they share.
        file: String,
    },
    /// The fetcher was built without the source an artifact's bytes are in.
    #[error("no {0} to read from")]
    NoReader(&'static str),
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
