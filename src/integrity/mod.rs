//! Integrity: every rule about whether bytes are the right bytes, in one place.
//!
//! - [`VerifiedStream`] wraps a byte stream and checks its length (the announced `Content-Length` or the
//!   manifest's size), its SHA-256 (against the manifest's, when known) and, when asked, its MD5 (against
//!   given Jenkins fingerprints); a failed check is yielded as an error in place of the end of the stream,
//!   so no consumer completes an upload or renames a file with bad bytes. It reports bytes as they pass
//!   and gives its [`Digests`] at the end. A long stream's digests run on threads of their own, one per
//!   digest, beside the stream's consumer, so only the slowest digest counts, not their sum; what they may
//!   keep alive is bounded ([`MAX_HELD`]). The mirror's uploads, `jam fetch`'s downloads (and its check of
//!   files already present) and `jam verify --deep`'s read-back all read through it; nothing else hashes
//!   artifact bytes.
//! - [`fingerprint`]: when an MD5 is evidence of corruption, for a whole build (the mirror) and for one
//!   artifact on its own (`jam fetch --from jenkins`).
//! - [`IntegrityError`]: which artifact failed which check, with what was expected and what was found, and
//!   the message users see; [`stored_size`] is the check of a stored object's size before it is read.
//!
//! This module imports nothing of the crate: the store, the Jenkins client and the commands hand it their
//! bytes and take back verified ones.

mod error;
pub mod fingerprint;
mod hash;
mod md5;
mod stream;

pub use error::{Check, IntegrityError, Origin, stored_size};
pub use hash::MAX_HELD;
pub use stream::{Md5Check, OnBytes, StreamError, VerifiedStream};

use sha2::{Digest, Sha256};

/// What a byte stream turned out to be: its length and digests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    /// Bytes seen.
    pub size: u64,
    /// SHA-256, lower-case hex.
    pub sha256: String,
    /// MD5, lower-case hex, when asked for.
    pub md5: Option<String>,
}

/// SHA-256 of a byte slice, lower-case hex (for small documents and tests, not artifact streams).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
