//! jam, the Jenkins Artifact Mirror.
//!
//! jam polls Jenkins controllers through their JSON API and streams the artifacts of finished builds into
//! S3-compatible object storage (or a local directory), hashing every byte on the way. The store is the
//! single source of truth: a build counts as mirrored once its `manifest.json` exists, and the manifest is
//! written only after every artifact it lists has been stored and verified.
//!
//! Modules, one concern each: [`config`] (file, environment, flags), [`store`] (store URLs and conditional
//! writes), [`layout`] (the key scheme, a public contract), [`manifest`] (the JSON documents beside the
//! bytes), [`jenkins`] (the API client), [`transfer`] (one artifact, Jenkins → hashes → store), [`journal`]
//! and [`s3_uploads`] (no multipart upload left open), [`mirror`] (the worker), [`catalog`] (reading what the mirror holds: jobs, indexes, pointers, manifests), [`fetch`]
//! (resolving a job, build and artifacts and downloading them to verified files), [`verify`] (the archive
//! audit), [`retention`] (deleting builds a policy no longer keeps), [`telemetry`] (logs), [`metrics`] (the
//! Prometheus text rendering of jam's counters), [`ops`] (the `/metrics`, `/healthz`, `/readyz`
//! endpoint), [`doctor`] (set-up checks), and [`cli`] (the `jam` command line). The binary is a thin shell
//! over [`cli::run`].

pub mod catalog;
pub mod cli;
pub mod config;
pub mod doctor;
pub mod error;
pub mod fetch;
pub mod jenkins;
pub mod journal;
pub mod layout;
pub mod manifest;
pub mod metrics;
pub mod mirror;
pub mod ops;
pub mod retention;
pub mod s3_uploads;
pub mod store;
pub mod telemetry;
pub mod transfer;
pub mod verify;

pub use error::{Error, Result};
