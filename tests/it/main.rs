//! jam's integration tests: one binary, one module per area.

mod harness;
mod jenkins_client;
mod config_files;
mod mirror;
mod worker_process;
mod store_contract;
mod support;
