//! jam's integration tests: one binary, one module per area.

mod harness;
mod mirror;
