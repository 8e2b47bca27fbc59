//! MD5, for Jenkins' fingerprints, computed by aws-lc's hand-written assembly.
//!
//! jam already links aws-lc (object_store's TLS and request signing use it), and its MD5 hashes about 1.3
//! times as fast as the pure-Rust `md-5` crate on this project's machines (555 against 430 MB/s on one
//! core, faster than coreutils' `md5sum` as well). With fingerprints checked, MD5 is the slowest digest
//! jam computes and so sets the pace of a big artifact whenever the sink is faster (README, "What bounds
//! jam"). The C interface is three calls on a plain state struct, so this module allows `unsafe` for
//! itself (the workspace lints in Cargo.toml list where else it is allowed); its tests check its digests
//! against `md-5`'s.

#![allow(unsafe_code)]

use aws_lc_sys::{MD5_CTX, MD5_Final, MD5_Init, MD5_Update};

/// An MD5 computation in progress.
pub(super) struct Md5(MD5_CTX);

impl Md5 {
    pub(super) fn new() -> Md5 {
        // SAFETY: MD5_CTX is plain integers and bytes, for which all zeros is a valid value, and MD5_Init
        // only writes the struct it is given.
        let mut ctx: MD5_CTX = unsafe { std::mem::zeroed() };
        // SAFETY: `ctx` is a valid, exclusively borrowed MD5_CTX. MD5_Init always returns 1.
        unsafe { MD5_Init(&mut ctx) };
        Md5(ctx)
    }

    pub(super) fn update(&mut self, bytes: &[u8]) {
        // SAFETY: the state was initialised by MD5_Init, and `bytes` is valid for `bytes.len()` bytes
        // for the duration of the call, which keeps no pointer to it. MD5_Update always returns 1.
        unsafe { MD5_Update(&mut self.0, bytes.as_ptr().cast(), bytes.len()) };
    }

    pub(super) fn finalize(mut self) -> [u8; 16] {
        let mut out = [0u8; 16];
        // SAFETY: `out` has room for the 16 bytes MD5_Final writes; the state was initialised by
        // MD5_Init. MD5_Final always returns 1.
        unsafe { MD5_Final(out.as_mut_ptr(), &mut self.0) };
        out
    }
}

#[cfg(test)]
mod tests {
    use super::Md5;
    use md5::Digest as _;

    #[test]
    fn digests_match_an_independent_implementation_at_every_split() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        for len in [0, 1, 55, 56, 63, 64, 65, 127, 128, 1000, data.len()] {
            let want = md5::Md5::digest(&data[..len]);
            for split in [0, 1, 33, 64, len / 2, len] {
                let split = split.min(len);
                let mut h = Md5::new();
                h.update(&data[..split]);
                h.update(&data[split..len]);
                assert_eq!(h.finalize(), want[..], "length {len}, split at {split}");
            }
        }
    }

    #[test]
    fn the_empty_input_has_the_known_digest() {
        assert_eq!(
            hex::encode(Md5::new().finalize()),
            "d41d8cd98f00b204e9800998ecf8427e"
        );
    }
}
