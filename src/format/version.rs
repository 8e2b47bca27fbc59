//! The store format version and what jam does with documents of another one.
//!
//! Every JSON document of the mirror (manifest, pointer, job index) records the format it was written in
//! ([`FORMAT_VERSION`]). jam reads every format up to its own; a document in a newer format was written by a
//! newer jam, and this one refuses it ([`DocumentError::NewerFormat`]) rather than misread it or, worse,
//! write over it in its own older format and so lose what the newer jam recorded. [`parse_document`] is the
//! one way jam reads a document; [`newer_format`] is the check a compare-and-swap update makes before it
//! replaces one.

use serde::{Deserialize, de::DeserializeOwned};

use crate::format::layout::FORMAT_VERSION;

/// A document of the mirror that jam cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DocumentError {
    /// Written by a newer jam, in a format this one does not know.
    #[error(
        "'{key}' is in store format {found}, newer than format {FORMAT_VERSION}, the newest this jam ({}) reads: a newer jam wrote it; upgrade jam before it uses this store (README: \"Upgrading\")",
        env!("CARGO_PKG_VERSION")
    )]
    NewerFormat {
        /// The document's key.
        key: String,
        /// The format it records.
        found: u32,
    },
    /// Not a jam document of the expected kind.
    #[error("'{key}' is not a valid jam {kind}: {message}")]
    Invalid {
        /// The document's key.
        key: String,
        /// What it should have been ("manifest", "pointer", "job index").
        kind: &'static str,
        /// The parser's complaint.
        message: String,
    },
}

impl DocumentError {
    /// Whether a newer jam wrote the document (as opposed to it being damaged).
    pub fn is_newer_format(&self) -> bool {
        matches!(self, DocumentError::NewerFormat { .. })
    }
}

/// A document that records the format it was written in.
pub trait Versioned: DeserializeOwned {
    /// What the document is called in errors.
    const KIND: &'static str;
    /// The format it records.
    fn format(&self) -> u32;
}

/// Parses the document stored at `key`. One in a newer format is refused, also when it would not parse as
/// this version's type at all; one that does not parse otherwise is [`DocumentError::Invalid`].
pub fn parse_document<T: Versioned>(bytes: &[u8], key: &str) -> Result<T, DocumentError> {
    match serde_json::from_slice::<T>(bytes) {
        Ok(doc) => match check(doc.format(), key) {
            Some(newer) => Err(newer),
            None => Ok(doc),
        },
        Err(e) => Err(
            newer_format(bytes, key).unwrap_or_else(|| DocumentError::Invalid {
                key: key.to_string(),
                kind: T::KIND,
                message: e.to_string(),
            }),
        ),
    }
}

/// The refusal for a document whose bytes record a format newer than this jam's; `None` for every other
/// document (current, older, or not a JSON object with a numeric `format` at all).
pub fn newer_format(bytes: &[u8], key: &str) -> Option<DocumentError> {
    #[derive(Deserialize)]
    struct Format {
        format: u32,
    }
    let Format { format } = serde_json::from_slice(bytes).ok()?;
    check(format, key)
}

fn check(found: u32, key: &str) -> Option<DocumentError> {
    (found > FORMAT_VERSION).then(|| DocumentError::NewerFormat {
        key: key.to_string(),
        found,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::manifest::Pointer;

    const KEY: &str = "ci/job/app/lastSuccessfulBuild.json";

    fn pointer(format: u32) -> String {
        format!(
            r#"{{"format":{format},"number":3,"result":"SUCCESS","timestamp":1,"manifest":"ci/job/app/3/manifest.json"}}"#
        )
    }

    #[test]
    fn the_current_format_parses() {
        let p: Pointer = parse_document(pointer(FORMAT_VERSION).as_bytes(), KEY).unwrap();
        assert_eq!(p.number, 3);
        assert!(newer_format(pointer(FORMAT_VERSION).as_bytes(), KEY).is_none());
    }

    #[test]
    fn a_newer_format_is_refused_with_what_to_do() {
        let newer = FORMAT_VERSION + 1;
        let e = parse_document::<Pointer>(pointer(newer).as_bytes(), KEY).unwrap_err();
        assert_eq!(
            e,
            DocumentError::NewerFormat {
                key: KEY.into(),
                found: newer
            }
        );
        let text = e.to_string();
        assert!(text.contains(KEY), "{text}");
        assert!(
            text.contains(&format!(
                "store format {newer}, newer than format {FORMAT_VERSION}"
            )),
            "{text}"
        );
        assert!(text.contains("upgrade jam"), "{text}");
        assert!(
            newer_format(pointer(newer).as_bytes(), KEY)
                .unwrap()
                .is_newer_format()
        );
    }

    #[test]
    fn a_newer_format_that_no_longer_parses_is_still_called_newer() {
        let doc = format!(r#"{{"format":{},"build":{{"n":3}}}}"#, FORMAT_VERSION + 1);
        let e = parse_document::<Pointer>(doc.as_bytes(), KEY).unwrap_err();
        assert!(e.is_newer_format(), "{e}");
    }

    #[test]
    fn a_damaged_document_is_invalid_not_newer() {
        for doc in ["{", "[]", r#"{"format":"two"}"#, r#"{"format":1}"#] {
            let e = parse_document::<Pointer>(doc.as_bytes(), KEY).unwrap_err();
            assert!(
                matches!(
                    &e,
                    DocumentError::Invalid {
                        kind: "pointer",
                        ..
                    }
                ),
                "{doc}: {e:?}"
            );
            assert!(newer_format(doc.as_bytes(), KEY).is_none(), "{doc}");
        }
    }
}
