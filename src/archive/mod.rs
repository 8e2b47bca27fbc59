//! The archive: the one owner of the mirror's metadata. [`catalog`] reads what the mirror holds (sources,
//! jobs, indexes, pointers, manifests).

pub mod catalog;

pub use catalog::{Catalog, CatalogError, JobEntry};
