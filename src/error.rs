//! The library's error type and the exit codes the CLI derives from it.
//!
//! Each module has its own error enum that names the input it could not handle (a config file and line, a
//! Jenkins URL, a store key); [`Error`] gathers them so callers can tell classes of failure apart, and
//! [`Error::exit_code`] maps each class onto the stable exit codes documented in the README.

use crate::{config::ConfigError, jenkins::JenkinsError, store::StoreError};

/// Stable process exit codes (documented in the README and `jam --help`).
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// Anything not covered below (network, store, Jenkins failures).
    pub const FAILURE: u8 = 1;
    /// Usage or configuration error.
    pub const USAGE: u8 = 2;
    /// Job, build or artifact not found.
    pub const NOT_FOUND: u8 = 3;
    /// Integrity failure: a checksum or size did not match.
    pub const INTEGRITY: u8 = 4;
}

/// Any error the jam library reports.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration (file, environment or flags) is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A flag or argument is invalid in a way clap cannot see.
    #[error("{0}")]
    Usage(String),
    /// Talking to Jenkins failed.
    #[error(transparent)]
    Jenkins(#[from] JenkinsError),
    /// Talking to the object store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A job, build or artifact does not exist (in the mirror or in Jenkins).
    #[error("{0}")]
    NotFound(String),
    /// Bytes did not match their recorded size or digest.
    #[error("{0}")]
    Integrity(String),
    /// A local file operation failed.
    #[error("{what} '{path}': {source}")]
    Io {
        /// What jam was doing.
        what: &'static str,
        /// The local path involved.
        path: std::path::PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Anything else, already phrased for the user.
    #[error("{0}")]
    Other(String),
}

impl Error {
    /// The process exit code that reports this error (see [`exit`]).
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_) | Error::Usage(_) => exit::USAGE,
            Error::Store(StoreError::Config { .. }) => exit::USAGE,
            Error::NotFound(_) => exit::NOT_FOUND,
            Error::Integrity(_) => exit::INTEGRITY,
            Error::Jenkins(e) if e.is_not_found() => exit::NOT_FOUND,
            Error::Store(e) if e.is_not_found() => exit::NOT_FOUND,
            _ => exit::FAILURE,
        }
    }
}

/// Shorthand for results with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<crate::audit::retention::RetentionError> for Error {
    fn from(e: crate::audit::retention::RetentionError) -> Error {
        use crate::audit::retention::RetentionError;
        match e {
            RetentionError::Catalog(c) => c.into(),
            RetentionError::Store(s) => Error::Store(s),
        }
    }
}
