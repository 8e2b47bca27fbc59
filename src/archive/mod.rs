//! The archive: the one owner of the mirror's metadata. [`catalog`] reads what the mirror holds (sources,
//! jobs, indexes, pointers, manifests); [`Archive`] is the only writer of that metadata:
//!
//! - [`commit`]: a build's commit (`SHA256SUMS`, then the manifest with a conditional create: the commit
//!   marker) and its publication (the job's pointers, forward only, then the job's index);
//! - [`index`]: every other change of a job's `index.json` (missed and failed builds, the first-sight
//!   floor), each a compare-and-swap update, described by an [`IndexChange`] that the worker also applies
//!   to its in-memory copy;
//! - [`retire`]: retention's deletion of builds, in the order that keeps "a build is mirrored if and only if
//!   its manifest exists";
//! - [`controller`]: what the worker last saw of a controller (its version, its items' classes).
//!
//! The artifact bytes are not metadata: the store's write path stores them, and a build's manifest
//! commits them afterwards.
//!
//! Every document is read with [`crate::format::version::parse_document`]: one in a newer store format than
//! this jam's is refused ([`ArchiveError::NewerFormat`], [`CatalogError::NewerFormat`]) and never written
//! over, not even by a compare-and-swap update.

pub mod catalog;
pub mod commit;
pub mod controller;
pub mod index;
pub mod retire;

use crate::{
    format::version::DocumentError,
    store::{Store, StoreError},
};

pub use catalog::{Catalog, CatalogError, JobEntry};
pub use commit::Committed;
pub use index::IndexChange;

/// An error writing (or reading, to write) the mirror's metadata.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A document was written by a newer jam: it is left as it is.
    #[error(transparent)]
    NewerFormat(DocumentError),
}

/// Writes the mirror's metadata: manifests, `SHA256SUMS`, pointers and job indexes.
#[derive(Debug, Clone)]
pub struct Archive {
    store: Store,
}

impl Archive {
    /// The archive in a store.
    pub fn new(store: Store) -> Archive {
        Archive { store }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// A reader of the same store.
    pub fn catalog(&self) -> Catalog {
        Catalog::new(self.store.clone())
    }
}
