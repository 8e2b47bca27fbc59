//! `jam verify`: audits the archive (all jobs, or the named ones) and reports every problem by key.

use super::shared::{self, human_size};
use crate::{
    archive::catalog::Catalog,
    audit::verify::{self, VerifyOptions},
    config::Overrides,
    error::Error,
    fetch::{self, JobArg},
    format::layout::Layout,
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
pub fn run(args: VerifyArgs, flags: Overrides) -> crate::Result<u8> {
    let (cfg, configured) = shared::load(&flags, false)?;
    let store = Store::open(&cfg.store)?;
    let catalog = Catalog::new(store);
    shared::run_interruptible(async move {
        let mut jobs = Vec::new();
        if args.jobs.is_empty() {
            let sources = match &args.source {
                Some(s) => vec![s.clone()],
                None => catalog.sources().await?,
            };
            for s in sources {
                for j in catalog.jobs(&s).await? {
                    jobs.push((j.source, j.job));
                }
            }
        } else {
            for j in &args.jobs {
                let arg = JobArg::parse(j).map_err(Error::Usage)?;
                let source = fetch::pick_source(
                    args.source.as_deref(),
                    &configured,
                    Some(&arg),
                    Some(&catalog),
                )
                .await?;
                let path = match &arg {
                    JobArg::Url { job, .. } => job.clone(),
                    JobArg::Name(n) => catalog.resolve_job(&Layout::new(&source), n).await?,
                };
                jobs.push((source, path));
            }
        }
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
            let text = serde_json::to_string_pretty(&report)
                .map_err(|e| Error::Other(format!("cannot render JSON: {e}")))?;
            println!("{text}");
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
        Ok(report.exit_code())
    })
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
