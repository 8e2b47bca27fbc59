//! Stapler, the web framework Jenkins answers with, as far as jam speaks it: the exported-bean writer
//! ([`write`]: Stapler's key order and `_class`, in the JSON, Python, Jackson and Gson dialects), the
//! `tree` grammar and the `depth`/visibility pruning ([`tree`]), an API request's query ([`api`]), names
//! and request paths ([`names`]), and what Jenkins derives from a build's artifact paths ([`artifacts`]).
//!
//! Two servers share it: `jam serve`, which answers like Jenkins from the mirror, and the Jenkins
//! simulator the tests run against, so the two cannot drift apart.

pub mod api;
pub mod artifacts;
pub mod names;
pub mod tree;
pub mod write;

pub use api::{ApiError, ApiQuery, api_flavor, render};

/// The permalinks a job exports and answers URLs for, in Stapler's (alphabetical) order; `firstBuild`,
/// exported too, is not one of them.
pub const PERMALINKS: [&str; 7] = [
    "lastBuild",
    "lastCompletedBuild",
    "lastFailedBuild",
    "lastStableBuild",
    "lastSuccessfulBuild",
    "lastUnstableBuild",
    "lastUnsuccessfulBuild",
];
pub use tree::{Pruner, Range, Tree, TreeError, TreeNode, parse_tree};
pub use write::{Flavor, Obj, to_jenkins_json, write};
