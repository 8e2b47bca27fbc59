//! The mirror's format, a public contract: where every object lives ([`layout`]: keys built from Jenkins'
//! own URL space) and the JSON documents jam writes beside the bytes ([`manifest`]: manifests, pointers,
//! job indexes, `SHA256SUMS`). Nothing here does I/O.

pub mod layout;
pub mod manifest;
