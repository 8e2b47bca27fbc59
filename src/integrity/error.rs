//! Integrity failures as data: which artifact (or record), where its bytes came from, which check failed,
//! and what was expected and found. The messages users see are written here, once, for every command.

use std::{fmt, path::PathBuf};

/// A failed integrity check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IntegrityError {
    /// An artifact's bytes failed a check.
    #[error("artifact '{artifact}': {}", describe(check, origin))]
    Artifact {
        /// The artifact (its Jenkins `relativePath`).
        artifact: String,
        /// Where the bytes came from.
        origin: Origin,
        /// The check that failed, with what it expected and what it found.
        check: Check,
    },
    /// The archive's records contradict each other (a manifest stored under another build's number, a
    /// pointer naming a build that has no manifest).
    #[error("'{key}' {problem}; run `jam verify`")]
    Records {
        /// The record's key.
        key: String,
        /// What is wrong with it.
        problem: String,
    },
}

/// Where an artifact's bytes came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A download from Jenkins (its URL, without credentials or query).
    Jenkins {
        /// The URL.
        url: String,
    },
    /// An object in the store.
    Store {
        /// Its key, relative to the store root.
        key: String,
    },
    /// A local file.
    File {
        /// Its path.
        path: PathBuf,
    },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Jenkins { url } => f.write_str(url),
            Origin::Store { key } => write!(f, "'{key}'"),
            Origin::File { path } => write!(f, "'{}'", path.display()),
        }
    }
}

/// Which check failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Check {
    /// The length: `expected` is what the source announced (`Content-Length`) or the manifest records,
    /// `actual` what arrived (or what the object holds). When more bytes arrive than expected, the stream
    /// stops at once, so `actual` counts the bytes up to that point.
    Length {
        /// Bytes expected.
        expected: u64,
        /// Bytes found.
        actual: u64,
    },
    /// SHA-256 against the manifest's.
    Sha256 {
        /// The manifest's, lower-case hex.
        expected: String,
        /// The bytes', lower-case hex.
        actual: String,
    },
    /// MD5 against the Jenkins fingerprints recorded for the artifact: one must match.
    Md5 {
        /// The fingerprints, lower-case hex.
        expected: Vec<String>,
        /// The bytes', lower-case hex.
        actual: String,
    },
    /// The object the manifest lists does not exist.
    Missing,
}

impl IntegrityError {
    /// An artifact's failed check.
    pub fn artifact(artifact: impl Into<String>, origin: Origin, check: Check) -> IntegrityError {
        IntegrityError::Artifact {
            artifact: artifact.into(),
            origin,
            check,
        }
    }

    /// The failed check, for an artifact's bytes.
    pub fn check(&self) -> Option<&Check> {
        match self {
            IntegrityError::Artifact { check, .. } => Some(check),
            IntegrityError::Records { .. } => None,
        }
    }
}

/// The message after `artifact '…': `.
fn describe(check: &Check, origin: &Origin) -> String {
    match (check, origin) {
        (Check::Length { expected, actual }, Origin::Jenkins { url }) => {
            format!("{url}: Content-Length was {expected} but {actual} bytes arrived")
        }
        (Check::Length { expected, actual }, Origin::Store { key }) => {
            format!(
                "the manifest records {expected} bytes but '{key}' holds {actual}; run `jam verify`"
            )
        }
        (Check::Length { expected, actual }, Origin::File { .. }) => {
            format!("{expected} bytes are recorded but {origin} holds {actual}")
        }
        (Check::Sha256 { expected, actual }, _) => format!(
            "SHA-256 {actual} does not match the manifest's {expected}; {}",
            consequence(origin)
        ),
        (Check::Md5 { expected, actual }, _) => format!(
            "MD5 {actual} does not match the Jenkins fingerprint ({}); {}",
            expected.join(", "),
            consequence(origin)
        ),
        (Check::Missing, Origin::Store { key }) => {
            format!("the manifest lists '{key}' but the store has no such object; run `jam verify`")
        }
        (Check::Missing, _) => format!("{origin} does not exist"),
    }
}

/// What a digest mismatch means, by where the bytes came from.
fn consequence(origin: &Origin) -> String {
    match origin {
        Origin::Jenkins { .. } => "the download was corrupted".into(),
        Origin::Store { key } => {
            format!("the stored object '{key}' is corrupt (run `jam verify --deep`)")
        }
        Origin::File { path } => format!("the local file '{}' differs", path.display()),
    }
}

/// The size check of a stored object against its manifest, before any byte is read.
pub fn stored_size(
    artifact: &str,
    key: &str,
    recorded: u64,
    stored: u64,
) -> Result<(), IntegrityError> {
    if recorded == stored {
        return Ok(());
    }
    Err(IntegrityError::artifact(
        artifact,
        Origin::Store { key: key.into() },
        Check::Length {
            expected: recorded,
            actual: stored,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jenkins() -> Origin {
        Origin::Jenkins {
            url: "http://ci/job/app/1/artifact/app.bin".into(),
        }
    }

    fn store() -> Origin {
        Origin::Store {
            key: "ci/job/app/1/artifact/app.bin".into(),
        }
    }

    #[test]
    fn messages_name_the_artifact_the_check_and_what_to_do() {
        let e = |origin: Origin, check: Check| {
            IntegrityError::artifact("dist/app.bin", origin, check).to_string()
        };
        assert_eq!(
            e(
                jenkins(),
                Check::Length {
                    expected: 10,
                    actual: 4
                }
            ),
            "artifact 'dist/app.bin': http://ci/job/app/1/artifact/app.bin: Content-Length was 10 but 4 bytes arrived"
        );
        assert_eq!(
            e(
                store(),
                Check::Length {
                    expected: 10,
                    actual: 4
                }
            ),
            "artifact 'dist/app.bin': the manifest records 10 bytes but 'ci/job/app/1/artifact/app.bin' holds 4; \
             run `jam verify`"
        );
        assert_eq!(
            e(
                store(),
                Check::Sha256 {
                    expected: "aa".into(),
                    actual: "bb".into()
                }
            ),
            "artifact 'dist/app.bin': SHA-256 bb does not match the manifest's aa; the stored object \
             'ci/job/app/1/artifact/app.bin' is corrupt (run `jam verify --deep`)"
        );
        assert_eq!(
            e(
                jenkins(),
                Check::Md5 {
                    expected: vec!["aa".into(), "cc".into()],
                    actual: "bb".into()
                }
            ),
            "artifact 'dist/app.bin': MD5 bb does not match the Jenkins fingerprint (aa, cc); the download was corrupted"
        );
        assert_eq!(
            e(store(), Check::Missing),
            "artifact 'dist/app.bin': the manifest lists 'ci/job/app/1/artifact/app.bin' but the store has no \
             such object; run `jam verify`"
        );
        let records = IntegrityError::Records {
            key: "ci/job/app/7/manifest.json".into(),
            problem: "names build #8 but is stored as #7".into(),
        };
        assert_eq!(
            records.to_string(),
            "'ci/job/app/7/manifest.json' names build #8 but is stored as #7; run `jam verify`"
        );
        assert!(records.check().is_none());
    }

    #[test]
    fn stored_size_compares_before_reading() {
        assert!(stored_size("a", "k", 5, 5).is_ok());
        let err = stored_size("a", "k", 5, 6).unwrap_err();
        assert_eq!(
            err.check(),
            Some(&Check::Length {
                expected: 5,
                actual: 6
            })
        );
    }
}
