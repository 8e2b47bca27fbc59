//! The hashing behind [`super::VerifiedStream`]: SHA-256 always, MD5 when asked. Nothing outside the
//! integrity module hashes artifact bytes, so how the digests are computed (one core or several) can change
//! here without touching a caller.

use md5::Md5;
use sha2::{Digest, Sha256};

use super::Digests;

/// SHA-256 and (optionally) MD5 of a byte stream, with its length.
pub(super) struct Hasher {
    sha: Sha256,
    md5: Option<Md5>,
    size: u64,
}

impl Hasher {
    /// A hasher; MD5 costs about three times SHA-256, so it runs only when `md5` is set.
    pub(super) fn new(md5: bool) -> Hasher {
        Hasher {
            sha: Sha256::new(),
            md5: md5.then(Md5::new),
            size: 0,
        }
    }

    /// Feeds bytes.
    pub(super) fn update(&mut self, b: &[u8]) {
        self.sha.update(b);
        if let Some(m) = &mut self.md5 {
            m.update(b);
        }
        self.size += b.len() as u64;
    }

    /// Bytes seen so far.
    pub(super) fn size(&self) -> u64 {
        self.size
    }

    /// The digests.
    pub(super) fn finish(self) -> Digests {
        Digests {
            size: self.size,
            sha256: hex::encode(self.sha.finalize()),
            md5: self.md5.map(|m| hex::encode(m.finalize())),
        }
    }
}
