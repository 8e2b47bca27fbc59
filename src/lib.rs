//! jam, the Jenkins Artifact Mirror.
//!
//! jam polls Jenkins controllers through their JSON API and streams the artifacts of finished builds into
//! S3-compatible object storage (or a local directory), hashing every byte on the way. The store is the
//! single source of truth: a build counts as mirrored once its `manifest.json` exists, and the manifest is
//! written only after every artifact it lists has been stored and verified.
//!
//! The library is built in layers; each imports only the layers below it (`ARCHITECTURE.md` draws them):
//!
//! - foundation: [`config`] (file, environment, flags), [`retry`] (the one backoff policy), [`metrics`]
//!   (the registry the parts report to), [`chain`] (error chains for messages), [`zip`] (a streamed zip
//!   writer);
//! - [`format`]: the key scheme and the JSON documents beside the bytes, a public contract;
//! - [`store`]: store URLs and backends, conditional writes, the artifact write path, request counting, the
//!   journal of open uploads;
//! - [`jenkins`]: the API client and its model, and Stapler's export (the writer, `tree`, names) that
//!   `jam serve` and the test simulator answer with;
//! - [`integrity`]: the verified byte stream (length, SHA-256, MD5) and the fingerprint rules;
//! - [`archive`]: the one owner of the mirror's metadata (catalog, indexes, pointers);
//! - [`fleet`]: several workers on one store (heartbeats, build claims, singletons), leases on the store's
//!   conditional writes;
//! - work: [`resolve`] (which source, job and build a name means), [`mirror`] (the worker), [`fetch`]
//!   (verified downloads), [`audit`] (verify and retention), [`serve`] (the gateway that answers like
//!   Jenkins from the mirror);
//! - [`ops`]: the `/metrics`, `/healthz` and `/readyz` endpoint, logs, `jam doctor`;
//! - [`cli`]: the `jam` command line, and [`error`], the error every command reports with its exit code.
//!
//! The binary is a thin shell over [`cli::main`].

pub mod archive;
pub mod audit;
pub mod chain;
pub mod cli;
pub mod config;
pub mod error;
pub mod fetch;
pub mod fleet;
pub mod format;
pub mod integrity;
pub mod jenkins;
pub mod metrics;
pub mod mirror;
pub mod ops;
pub mod resolve;
pub mod retry;
pub mod serve;
pub mod store;
pub mod zip;

pub use error::{Error, Result};
