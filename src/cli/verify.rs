//! `jam verify`: audits the archive (all jobs, or the named ones) and reports every problem by key.

use super::{
    output::{human_size, print_json},
    runtime::run_interruptible,
    shared,
};
use crate::{
    archive::catalog::Catalog,
    audit::verify::{self, VerifyOptions},
    config::{Env, Overrides},
    error::exit,
    resolve::{JobArg, Scope},
    store::Store,
};

/// Arguments of `jam verify`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Exit codes: 0 nothing wrong; 4 an object is missing or its size, checksum or SHA256SUMS disagrees with the
manifest; 1 other problems (pointers, indexes, unreadable documents, store errors); 2 usage error.")]
pub struct VerifyArgs {
    /// Jobs to audit (full names or Jenkins URLs); without any, every mirrored job
    #[arg(value_name = "JOB")]
    pub jobs: Vec<String>,
    /// Read every object back and re-hash it (reads the whole archive)
    #[arg(long)]
    pub deep: bool,
    /// The source (controller) name; without it, every source in the store (or the configured one for JOB)
    #[arg(long, value_name = "NAME")]
    pub source: Option<String>,
    /// Builds checked at once
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,
    /// Print the report as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

/// Runs `jam verify`.
pub fn run(args: VerifyArgs, flags: Overrides, env: &Env<'_>) -> crate::Result<u8> {
    let (cfg, configured) = shared::load(&flags, env, false)?;
    let store = Store::open(&cfg.store)?;
    let catalog = Catalog::new(store);
    let jobs = args
        .jobs
        .iter()
        .map(|j| JobArg::parse(j))
        .collect::<Result<Vec<_>, _>>()?;
    let scope = Scope::new(args.source.clone(), configured);
    run_interruptible(async move {
        let jobs: Vec<_> = scope
            .jobs(&catalog, &jobs)
            .await?
            .into_iter()
            .map(|j| (j.source, j.job))
            .collect();
        let report = verify::verify(
            &catalog,
            &jobs,
            VerifyOptions {
                deep: args.deep,
                concurrency: usize::from(args.concurrency),
            },
        )
        .await;
        if args.json {
            print_json(&report)?;
        } else {
            let mut line = format!(
                "verified {} job{}, {} build{}, {} artifact{}, {} pointer{}",
                report.jobs,
                plural(report.jobs),
                report.builds,
                plural(report.builds),
                report.artifacts,
                plural(report.artifacts),
                report.pointers,
                plural(report.pointers),
            );
            if report.deep {
                line.push_str(&format!(" (read back {})", human_size(report.bytes_read)));
            }
            if report.ok() {
                println!("{line}: no problems");
            } else {
                println!(
                    "{line}: {} problem{}",
                    report.problems.len(),
                    plural(report.problems.len())
                );
                for p in &report.problems {
                    let kind = serde_json::to_value(p.kind)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default();
                    println!("  {kind:<8}  {}: {}", p.key, p.message);
                }
            }
        }
        Ok(exit::of_audit(&report))
    })
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
