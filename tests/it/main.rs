//! jam's integration tests: one binary, one module per area.

mod archive_owner;
mod cli;
mod config_files;
mod display;
mod faults;
mod harness;
mod jenkins_client;
mod memory;
mod messages;
mod mirror;
mod mirror_s3;
mod notices;
mod operators;
mod ops;
mod parsers;
mod s3_faults;
mod security;
mod serve;
mod soak;
mod store_contract;
mod support;
mod tls;
mod upgrade;
mod worker_process;
mod workers;
