//! What a request names once it is routed: the request with its reader ([`Req`]), the item found in the
//! tree with the chain of folders above it ([`Found`]), the build ([`BuildAt`]), and the answer type every
//! handler returns ([`Answer`]). The router builds them; the handlers of downloads, listings and pages take
//! them.

use std::sync::Arc;

use http::{HeaderMap, Method};

use crate::{
    archive::CatalogError,
    format::manifest::{JobIndex, Manifest},
};

use super::{access::Reader, answers::Response, items::Node, json::ItemAt, metrics::Route};

/// A request, once its reader is known.
pub(super) struct Req<'a> {
    pub(super) method: &'a Method,
    pub(super) headers: &'a HeaderMap,
    /// The raw path (still encoded).
    pub(super) path: &'a str,
    pub(super) query: Option<&'a str>,
    pub(super) reader: Reader,
}

/// An answer and its route label, or a store failure.
pub(super) type Answer = Result<(Route, Response), CatalogError>;

/// The item a request names, in the tree it was found in.
pub(super) struct Found<'t> {
    pub(super) nodes: Vec<&'t Node>,
    pub(super) chain: Vec<ItemAt>,
}

impl Found<'_> {
    pub(super) fn node(&self) -> &Node {
        self.nodes.last().expect("an item")
    }

    pub(super) fn at(&self) -> &ItemAt {
        self.chain.last().expect("an item")
    }
}

/// A build a request names: its number, index and manifest.
pub(super) struct BuildAt {
    pub(super) number: u64,
    pub(super) index: Arc<JobIndex>,
    pub(super) manifest: Arc<Manifest>,
}
