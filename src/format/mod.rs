//! The mirror's format, a public contract: where every object lives ([`layout`]: keys built from Jenkins'
//! own URL space) and the JSON documents jam writes beside the bytes ([`manifest`]: manifests, pointers,
//! job indexes, `SHA256SUMS`), and the format version they record ([`version`]: a newer one is refused).
//! Nothing here does I/O.

pub mod layout;
pub mod manifest;
pub mod version;
