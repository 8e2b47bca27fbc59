//! `jam prune`: applies the `[[retention]]` policy to the store once, or with `--dry-run` reports what it
//! would delete. Exit code 0 on success, 1 when a job could not be pruned, 2 when no policy is configured.

use std::io::Write;

use super::{output::human_size, runtime::run_interruptible, shared};
use crate::{
    audit::retention::{self, PruneOptions},
    config::{Env, Overrides},
    error::{Error, exit},
    format::manifest::ms_to_rfc3339,
    store::Store,
};

/// Arguments of `jam prune`.
#[derive(Debug, clap::Args)]
pub struct PruneArgs {
    /// Report what would be deleted; delete nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Print the report as JSON: {"dry_run", "jobs": [{"source", "job", "rule", "kept", "deleted": [...]}],
    /// "errors"}
    #[arg(long)]
    pub json: bool,
}

/// Runs `jam prune`.
pub fn run(args: PruneArgs, flags: Overrides, env: &Env<'_>) -> crate::Result<u8> {
    let (cfg, _) = shared::load(&flags, env, false)?;
    if cfg.retention.is_empty() {
        return Err(Error::Usage(
            "no retention policy: add [[retention]] tables (jobs, keep_last, keep_within) to the config".into(),
        ));
    }
    let store = Store::open(&cfg.store)?;
    run_interruptible(async move {
        let opts = PruneOptions {
            dry_run: args.dry_run,
            cancel: None,
        };
        let report = retention::prune(&store, &cfg.retention, &opts).await?;
        let mut out = std::io::stdout().lock();
        if args.json {
            let _ = writeln!(
                out,
                "{}",
                serde_json::to_string(&report).expect("report serializes")
            );
        } else {
            let verb = if report.dry_run {
                "would delete"
            } else {
                "deleted"
            };
            for j in &report.jobs {
                for b in &j.deleted {
                    let _ = writeln!(
                        out,
                        "{verb} {}/{} #{} ({}, {}, {} artifacts, {})",
                        j.source,
                        j.job,
                        b.number,
                        b.result,
                        ms_to_rfc3339(b.timestamp),
                        b.artifacts,
                        human_size(b.size)
                    );
                }
            }
            let _ = writeln!(
                out,
                "{verb} {} build(s), {}, in {} job(s)",
                report.builds_deleted(),
                human_size(report.bytes_deleted()),
                report.jobs.len()
            );
        }
        for e in &report.errors {
            eprintln!("error: {e}");
        }
        Ok(if report.errors.is_empty() {
            exit::OK
        } else {
            exit::FAILURE
        })
    })
}
