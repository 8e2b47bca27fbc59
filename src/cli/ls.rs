//! `jam ls`: the mirrored jobs with their latest builds, a job's builds, or a build's artifacts, read from
//! the store alone (indexes and manifests; no Jenkins); with `--workers`, the workers on the store.

use futures::StreamExt;
use serde::Serialize;

use super::{
    output::{human_size, print_json, table},
    runtime::run_interruptible,
    shared,
};
use crate::{
    archive::catalog::{Catalog, JobEntry},
    config::{Env, Overrides},
    error::exit,
    format::layout::{JobPath, Layout},
    format::manifest::{JobIndex, Manifest, ms_to_rfc3339},
    resolve::{BuildSelector, JobArg, MirrorJob, Scope},
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
    /// List the workers on the store: heartbeat age, what each holds (claims, singletons, open uploads)
    #[arg(long, conflicts_with_all = ["job", "build", "source"])]
    pub workers: bool,
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
pub fn run(args: LsArgs, flags: Overrides, env: &Env<'_>) -> crate::Result<u8> {
    let (cfg, configured) = shared::load(&flags, env, false)?;
    let store = Store::open(&cfg.store)?;
    let catalog = Catalog::new(store);
    let job = args.job.as_deref().map(JobArg::parse).transpose()?;
    let scope = Scope::new(args.source.clone(), configured);
    run_interruptible(async move {
        if args.workers {
            return list_workers(catalog.store(), args.json).await;
        }
        match job {
            None => list_jobs(&catalog, &scope, args.json).await,
            Some(job) => match job.build(args.build) {
                Some(b) => {
                    list_artifacts(&scope.build(&catalog, &job, b).await?.manifest, args.json)
                }
                None => {
                    let (found, ix) = scope.job_index(&catalog, &job).await?;
                    list_builds(&found, &ix, args.json)
                }
            },
        }
    })
}

async fn list_jobs(catalog: &Catalog, scope: &Scope, json: bool) -> crate::Result<u8> {
    let listing = scope.all_jobs(catalog).await?;
    let indexes: Vec<crate::Result<(JobEntry, Option<JobIndex>)>> =
        futures::stream::iter(listing.jobs)
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
    if json {
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
    let several = listing.sources.len() > 1;
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

async fn list_workers(store: &Store, json: bool) -> crate::Result<u8> {
    let rows = crate::fleet::survey::survey(store).await?;
    if json {
        print_json(&rows)?;
        return Ok(exit::OK);
    }
    if rows.is_empty() {
        eprintln!("no workers on the store at {}", store.describe());
        return Ok(exit::OK);
    }
    let dash = || "-".to_string();
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut holds: Vec<String> = r.claims.clone();
            holds.extend(r.singletons.iter().map(|s| format!("singleton {s}")));
            vec![
                r.id.clone(),
                r.state.clone(),
                match (&r.host, r.pid) {
                    (Some(h), Some(p)) => format!("{h}:{p}"),
                    _ => dash(),
                },
                r.version.clone().unwrap_or_else(dash),
                r.started.clone().unwrap_or_else(dash),
                r.age_s.map(|a| format!("{a:.0}s")).unwrap_or_else(dash),
                r.lease_s.map(|l| format!("{l:.0}s")).unwrap_or_else(dash),
                r.open_uploads.to_string(),
                if holds.is_empty() {
                    dash()
                } else {
                    holds.join(", ")
                },
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &[
                "WORKER", "STATE", "HOST:PID", "VERSION", "STARTED", "AGE*", "LEASE", "UPLOADS",
                "HOLDS"
            ],
            &cells,
            &[5, 6, 7]
        )
    );
    println!(
        "* since the store last took the heartbeat, by the store's clock against this host's (approximate); \
         workers judge each other only by watching heartbeats change"
    );
    Ok(exit::OK)
}

fn list_builds(found: &MirrorJob, ix: &JobIndex, json: bool) -> crate::Result<u8> {
    let job = &found.job;
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
            source: &found.source,
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

fn list_artifacts(m: &Manifest, json: bool) -> crate::Result<u8> {
    if json {
        print_json(m)?;
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
