//! `jam ls`: the mirrored jobs with their latest builds, a job's builds, or a build's artifacts, read from
//! the store alone (indexes and manifests; no Jenkins).

use futures::StreamExt;
use serde::Serialize;

use super::shared::{self, human_size, table};
use crate::{
    archive::catalog::Catalog,
    config::Overrides,
    error::{Error, exit},
    fetch::{self, BuildSelector, JobArg},
    format::layout::{JobPath, Layout},
    format::manifest::{JobIndex, ms_to_rfc3339},
    store::Store,
};

/// Arguments of `jam ls`.
#[derive(Debug, clap::Args)]
pub struct LsArgs {
    /// A job (full name or Jenkins URL): list its builds; without it, list every mirrored job
    #[arg(value_name = "JOB")]
    pub job: Option<String>,
    /// List this build's artifacts (a number or a permalink such as lastSuccessful)
    #[arg(long, short = 'b', value_name = "BUILD", requires = "job")]
    pub build: Option<BuildSelector>,
    /// The source (controller) name; without it, every source in the store (or the configured one for JOB)
    #[arg(long, value_name = "NAME")]
    pub source: Option<String>,
    /// Print JSON on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct JobRow {
    source: String,
    job: String,
    items: JobPath,
    latest: Option<u64>,
    result: Option<String>,
    timestamp: Option<String>,
    builds: usize,
    failed: usize,
    missed: usize,
}

#[derive(Debug, Serialize)]
struct BuildRow {
    number: u64,
    status: &'static str,
    result: Option<String>,
    timestamp: Option<String>,
    artifacts: Option<usize>,
    size: Option<u64>,
    note: Option<String>,
}

/// Runs `jam ls`.
pub fn run(args: LsArgs, flags: Overrides) -> crate::Result<u8> {
    let (cfg, configured) = shared::load(&flags, false)?;
    let store = Store::open(&cfg.store)?;
    let catalog = Catalog::new(store);
    shared::run_interruptible(async move {
        match &args.job {
            None => list_jobs(&catalog, &args).await,
            Some(job) => {
                let job_arg = JobArg::parse(job).map_err(Error::Usage)?;
                let source = fetch::pick_source(
                    args.source.as_deref(),
                    &configured,
                    Some(&job_arg),
                    Some(&catalog),
                )
                .await?;
                let layout = Layout::new(&source);
                let build = args.build.or(match &job_arg {
                    JobArg::Url { build, .. } => *build,
                    JobArg::Name(_) => None,
                });
                match build {
                    Some(b) => list_artifacts(&catalog, &source, &job_arg, b, args.json).await,
                    None => {
                        let path = match &job_arg {
                            JobArg::Url { job, .. } => job.clone(),
                            JobArg::Name(n) => catalog.resolve_job(&layout, n).await?,
                        };
                        list_builds(&catalog, &layout, &path, args.json).await
                    }
                }
            }
        }
    })
}

async fn list_jobs(catalog: &Catalog, args: &LsArgs) -> crate::Result<u8> {
    let sources = match &args.source {
        Some(s) => vec![s.clone()],
        None => catalog.sources().await?,
    };
    let mut jobs = Vec::new();
    for s in &sources {
        jobs.extend(catalog.jobs(s).await?);
    }
    let indexes: Vec<crate::Result<(crate::archive::catalog::JobEntry, Option<JobIndex>)>> =
        futures::stream::iter(jobs)
            .map(|j| async move {
                let ix = catalog.index(&Layout::new(&j.source), &j.job).await?;
                Ok((j, ix))
            })
            .buffered(8)
            .collect()
            .await;
    let mut rows = Vec::new();
    for r in indexes {
        let (j, ix) = r?;
        let ix = ix.unwrap_or_default();
        let latest = ix.builds.iter().next_back();
        rows.push(JobRow {
            source: j.source.clone(),
            job: j.job.full_name(),
            items: j.job.clone(),
            latest: latest.map(|(n, _)| *n),
            result: latest.map(|(_, b)| b.result.clone()),
            timestamp: latest.map(|(_, b)| ms_to_rfc3339(b.timestamp)),
            builds: ix.builds.len(),
            failed: ix.failed.len(),
            missed: ix.missed.len(),
        });
    }
    if args.json {
        print_json(&rows)?;
        return Ok(exit::OK);
    }
    if rows.is_empty() {
        eprintln!(
            "no mirrored jobs in the store at {}",
            catalog.store().describe()
        );
        return Ok(exit::OK);
    }
    let several = sources.len() > 1;
    let mut header = vec![
        "JOB", "LATEST", "RESULT", "STARTED", "BUILDS", "FAILED", "MISSED",
    ];
    if several {
        header.insert(0, "SOURCE");
    }
    let dash = || "-".to_string();
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut c = vec![
                r.job.clone(),
                r.latest.map(|n| n.to_string()).unwrap_or_else(dash),
                r.result.clone().unwrap_or_else(dash),
                r.timestamp.clone().unwrap_or_else(dash),
                r.builds.to_string(),
                r.failed.to_string(),
                r.missed.to_string(),
            ];
            if several {
                c.insert(0, r.source.clone());
            }
            c
        })
        .collect();
    let off = usize::from(several);
    print!(
        "{}",
        table(&header, &cells, &[1 + off, 4 + off, 5 + off, 6 + off])
    );
    Ok(exit::OK)
}

async fn list_builds(
    catalog: &Catalog,
    layout: &Layout,
    job: &JobPath,
    json: bool,
) -> crate::Result<u8> {
    let ix = catalog
        .index(layout, job)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no job '{job}' in the mirror")))?;
    let mut rows: Vec<BuildRow> = Vec::new();
    for (n, b) in &ix.builds {
        rows.push(BuildRow {
            number: *n,
            status: "mirrored",
            result: Some(b.result.clone()),
            timestamp: Some(ms_to_rfc3339(b.timestamp)),
            artifacts: Some(b.artifacts),
            size: Some(b.size),
            note: None,
        });
    }
    for (n, f) in &ix.failed {
        rows.push(BuildRow {
            number: *n,
            status: "failed",
            result: None,
            timestamp: None,
            artifacts: None,
            size: None,
            note: Some(format!(
                "failed to mirror after {} attempts ({}): {}",
                f.attempts, f.at, f.error
            )),
        });
    }
    for n in &ix.missed {
        rows.push(BuildRow {
            number: *n,
            status: "missed",
            result: None,
            timestamp: None,
            artifacts: None,
            size: None,
            note: Some("deleted from Jenkins before it was mirrored".into()),
        });
    }
    rows.sort_by_key(|r| r.number);
    if json {
        #[derive(Serialize)]
        struct Out<'a> {
            source: &'a str,
            job: String,
            items: &'a JobPath,
            floor: u64,
            builds: &'a [BuildRow],
        }
        print_json(&Out {
            source: layout.source(),
            job: job.full_name(),
            items: job,
            floor: ix.floor,
            builds: &rows,
        })?;
        return Ok(exit::OK);
    }
    let dash = || "-".to_string();
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.number.to_string(),
                r.result.clone().unwrap_or_else(|| r.status.to_uppercase()),
                r.timestamp.clone().unwrap_or_else(dash),
                r.artifacts.map(|n| n.to_string()).unwrap_or_else(dash),
                r.size.map(human_size).unwrap_or_else(dash),
                r.note.clone().unwrap_or_default(),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &["BUILD", "RESULT", "STARTED", "ARTIFACTS", "SIZE", "NOTE"],
            &cells,
            &[0, 3, 4]
        )
    );
    if ix.floor > 0 {
        println!(
            "(builds up to #{} predate mirroring and are not mirrored)",
            ix.floor
        );
    }
    Ok(exit::OK)
}

async fn list_artifacts(
    catalog: &Catalog,
    source: &str,
    job: &JobArg,
    build: BuildSelector,
    json: bool,
) -> crate::Result<u8> {
    let r = fetch::resolve_from_mirror(catalog, source, job, build).await?;
    let m = catalog
        .manifest(&Layout::new(source), &r.job, r.number)
        .await?
        .ok_or_else(|| Error::NotFound(format!("{} #{} has no manifest", r.job, r.number)))?;
    if json {
        print_json(&m)?;
        return Ok(exit::OK);
    }
    let mut arts = m.artifacts.clone();
    arts.sort_by(|a, b| a.path.cmp(&b.path));
    let cells: Vec<Vec<String>> = arts
        .iter()
        .map(|a| vec![a.path.clone(), a.size.to_string(), a.sha256.clone()])
        .collect();
    println!(
        "{} #{} {} {} ({} artifacts, {})",
        m.full_name,
        m.number,
        m.result,
        ms_to_rfc3339(m.timestamp),
        m.artifacts.len(),
        human_size(m.total_size())
    );
    print!("{}", table(&["PATH", "SIZE", "SHA256"], &cells, &[1]));
    Ok(exit::OK)
}

fn print_json<T: Serialize>(v: &T) -> crate::Result<()> {
    let text = serde_json::to_string_pretty(v)
        .map_err(|e| Error::Other(format!("cannot render JSON: {e}")))?;
    println!("{text}");
    Ok(())
}
