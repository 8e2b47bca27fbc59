//! Integrity: the digests jam computes over every byte it moves (SHA-256 always, MD5 when a Jenkins
//! fingerprint is to be checked), in one place, for the mirror's uploads, `jam fetch`'s downloads and
//! `jam verify --deep`'s read-back alike.

use md5::Md5;
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

/// SHA-256 and (optionally) MD5 of a byte stream.
pub struct Hasher {
    sha: Sha256,
    md5: Option<Md5>,
    size: u64,
}

impl Hasher {
    /// A hasher; MD5 costs about three times SHA-256, so it runs only when `md5` is set.
    pub fn new(md5: bool) -> Hasher {
        Hasher {
            sha: Sha256::new(),
            md5: md5.then(Md5::new),
            size: 0,
        }
    }

    /// Feeds bytes.
    pub fn update(&mut self, b: &[u8]) {
        self.sha.update(b);
        if let Some(m) = &mut self.md5 {
            m.update(b);
        }
        self.size += b.len() as u64;
    }

    /// Bytes seen so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The digests.
    pub fn finish(self) -> Digests {
        Digests {
            size: self.size,
            sha256: hex::encode(self.sha.finalize()),
            md5: self.md5.map(|m| hex::encode(m.finalize())),
        }
    }
}

/// SHA-256 of a byte slice, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
