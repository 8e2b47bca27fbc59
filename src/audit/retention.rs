//! Retention: deleting mirrored builds a policy no longer wants, without ever leaving a half-deleted build
//! that looks committed.
//!
//! The policy is a list of `[[retention]]` rules ([`RetentionRule`]); the first rule whose `jobs` glob
//! matches a job's full name applies to it, and jobs no rule matches are never touched. Under a rule a
//! mirrored build is **kept** when any of these holds: it is among the job's newest `keep_last` mirrored
//! builds, it started less than `keep_within` ago, or one of the job's pointers (`lastSuccessfulBuild`, …)
//! names it. Everything else is deleted, in an order that keeps the store's invariant "a build is mirrored
//! if and only if its manifest exists": first every doomed build's `manifest.json` (the commit marker),
//! then its `SHA256SUMS` and artifacts, and last the job's `index.json`, with a compare-and-swap update
//! that removes the builds and raises the index's `floor` to the newest deleted build, so a worker does
//! not mirror again a build Jenkins still keeps. A pass interrupted anywhere leaves builds that are either
//! intact, or have no manifest and are still listed in the index; the next pass finishes them. The
//! deletions themselves are the archive's ([`Archive::retire`]); this module decides which builds go.
//!
//! [`prune`] walks every job in the store (one pass); the worker runs it every
//! `mirror.retention_interval`, and `jam prune` runs it on demand (`--dry-run` reports without deleting).

use std::{
    collections::BTreeSet,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::{
    archive::{
        Archive, ArchiveError,
        catalog::{Catalog, CatalogError, display_name},
    },
    config::RetentionRule,
    format::layout::{JobPath, Layout, PERMALINKS},
    format::manifest::JobIndex,
    store::{Store, StoreError},
};

/// An error that stops a whole retention pass (per-job errors are collected in [`PruneReport::errors`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RetentionError {
    /// The store could not be read.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The archive refused to change the job (a document in a newer format), or its store failed.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
}

/// How to run a pass.
#[derive(Debug, Clone, Default)]
pub struct PruneOptions {
    /// Report what would be deleted, delete nothing.
    pub dry_run: bool,
    /// Stop between jobs when cancelled (the worker's shutdown).
    pub cancel: Option<CancellationToken>,
}

/// A build the pass deleted (or, in a dry run, would delete).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PrunedBuild {
    /// Build number.
    pub number: u64,
    /// Result.
    pub result: String,
    /// Start time, ms since the epoch.
    pub timestamp: u64,
    /// Artifacts.
    pub artifacts: usize,
    /// Artifact bytes.
    pub size: u64,
}

/// What the pass did to one job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobPrune {
    /// Source (controller) name.
    pub source: String,
    /// The job's full name as users type it (`folder/app/feature/x`).
    pub job: String,
    /// The glob of the rule that applied.
    pub rule: String,
    /// Mirrored builds kept.
    pub kept: usize,
    /// Builds deleted (or to delete), oldest first.
    pub deleted: Vec<PrunedBuild>,
}

/// What a pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PruneReport {
    /// Whether nothing was deleted on purpose.
    pub dry_run: bool,
    /// Jobs a rule applied to and that had builds to delete.
    pub jobs: Vec<JobPrune>,
    /// Jobs that could not be pruned, with why (the pass went on with the others).
    pub errors: Vec<String>,
}

impl PruneReport {
    /// Builds deleted (or to delete).
    pub fn builds_deleted(&self) -> u64 {
        self.jobs.iter().map(|j| j.deleted.len() as u64).sum()
    }

    /// Artifact bytes deleted (or to delete).
    pub fn bytes_deleted(&self) -> u64 {
        self.jobs
            .iter()
            .flat_map(|j| &j.deleted)
            .map(|b| b.size)
            .sum()
    }
}

/// The first rule that applies to a job.
pub fn rule_for<'a>(rules: &'a [RetentionRule], job: &JobPath) -> Option<&'a RetentionRule> {
    let name = job.full_name();
    rules.iter().find(|r| r.matches(&name))
}

/// The mirrored builds of `index` that `rule` does not keep, oldest first. `protected` are the builds the
/// job's pointers name; `now_ms` is the current time in ms since the epoch.
pub fn plan(
    index: &JobIndex,
    protected: &BTreeSet<u64>,
    rule: &RetentionRule,
    now_ms: u64,
) -> Vec<u64> {
    let newest: BTreeSet<u64> = index
        .builds
        .keys()
        .rev()
        .take(rule.keep_last.unwrap_or(0) as usize)
        .copied()
        .collect();
    index
        .builds
        .iter()
        .filter(|(n, b)| {
            let young = rule
                .keep_within
                .is_some_and(|d| b.timestamp.saturating_add(d.as_millis() as u64) > now_ms);
            !newest.contains(n) && !young && !protected.contains(n)
        })
        .map(|(n, _)| *n)
        .collect()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as u64
}

/// One pass over every job of every source in the store.
pub async fn prune(
    store: &Store,
    rules: &[RetentionRule],
    opts: &PruneOptions,
) -> Result<PruneReport, RetentionError> {
    let mut report = PruneReport {
        dry_run: opts.dry_run,
        ..Default::default()
    };
    if rules.is_empty() {
        return Ok(report);
    }
    let catalog = Catalog::new(store.clone());
    for source in catalog.sources().await? {
        let layout = Layout::new(source.clone());
        let jobs = match catalog.jobs(&source).await {
            Ok(jobs) => jobs,
            Err(e) => {
                report
                    .errors
                    .push(format!("source '{source}': listing jobs: {e}"));
                continue;
            }
        };
        for entry in jobs {
            if opts.cancel.as_ref().is_some_and(|c| c.is_cancelled()) {
                return Ok(report);
            }
            let Some(rule) = rule_for(rules, &entry.job) else {
                continue;
            };
            match prune_job(&catalog, &layout, &entry.job, rule, opts.dry_run).await {
                Ok(Some(j)) => report.jobs.push(j),
                Ok(None) => {}
                Err(e) => report.errors.push(format!(
                    "job '{}' (source '{source}'): {e}",
                    display_name(&entry.job)
                )),
            }
        }
    }
    Ok(report)
}

/// Applies `rule` to one job; `None` when nothing is to be deleted.
pub async fn prune_job(
    catalog: &Catalog,
    layout: &Layout,
    job: &JobPath,
    rule: &RetentionRule,
    dry_run: bool,
) -> Result<Option<JobPrune>, RetentionError> {
    let Some(index) = catalog.index(layout, job).await? else {
        return Ok(None);
    };
    let now = now_ms();
    // Pointers are read only when the rule would delete something.
    if plan(&index, &BTreeSet::new(), rule, now).is_empty() {
        return Ok(None);
    }
    let mut protected = BTreeSet::new();
    for link in PERMALINKS {
        if let Some(p) = catalog.pointer(layout, job, link).await? {
            protected.insert(p.number);
        }
    }
    let doomed = plan(&index, &protected, rule, now);
    if doomed.is_empty() {
        return Ok(None);
    }
    let deleted: Vec<PrunedBuild> = doomed
        .iter()
        .map(|n| {
            let b = &index.builds[n];
            PrunedBuild {
                number: *n,
                result: b.result.clone(),
                timestamp: b.timestamp,
                artifacts: b.artifacts,
                size: b.size,
            }
        })
        .collect();
    let out = JobPrune {
        source: layout.source().to_string(),
        job: display_name(job),
        rule: rule.jobs.clone(),
        kept: index.builds.len() - doomed.len(),
        deleted,
    };
    if dry_run {
        return Ok(Some(out));
    }
    // Manifests first, then checksums and artifacts, then the index (see `archive::retire`).
    Archive::new(catalog.store().clone())
        .retire(layout, job, &doomed)
        .await?;
    tracing::info!(
        controller = %layout.source(),
        job = %job,
        rule = %rule.jobs,
        builds = out.deleted.len(),
        bytes = out.deleted.iter().map(|b| b.size).sum::<u64>(),
        kept = out.kept,
        "retention: deleted builds"
    );
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::manifest::BuildSummary;

    fn index(builds: &[(u64, u64)]) -> JobIndex {
        let mut ix = JobIndex::new(JobPath::new(["app"]));
        for (n, ts) in builds {
            ix.builds.insert(
                *n,
                BuildSummary {
                    result: "SUCCESS".into(),
                    timestamp: *ts,
                    artifacts: 1,
                    size: 10,
                },
            );
        }
        ix
    }

    const DAY: u64 = 86_400_000;

    #[test]
    fn keep_last_keep_within_and_pointers_each_keep() {
        let now = 100 * DAY;
        let ix = index(&[
            (1, 10 * DAY),
            (2, 20 * DAY),
            (3, 95 * DAY),
            (4, 96 * DAY),
            (5, 99 * DAY),
        ]);
        let last2 = RetentionRule::new("**", Some(2), None, "r").unwrap();
        assert_eq!(plan(&ix, &BTreeSet::new(), &last2, now), vec![1, 2, 3]);
        let week =
            RetentionRule::new("**", None, Some(Duration::from_secs(7 * 86_400)), "r").unwrap();
        assert_eq!(plan(&ix, &BTreeSet::new(), &week, now), vec![1, 2]);
        let both =
            RetentionRule::new("**", Some(1), Some(Duration::from_secs(7 * 86_400)), "r").unwrap();
        assert_eq!(plan(&ix, &BTreeSet::from([1]), &both, now), vec![2]);
    }

    #[test]
    fn rules_need_a_keep_condition_and_first_match_wins() {
        assert!(RetentionRule::new("**", None, None, "retention[0]").is_err());
        assert!(RetentionRule::new("**", Some(0), None, "retention[0]").is_err());
        let rules = vec![
            RetentionRule::new("team/*", Some(1), None, "r0").unwrap(),
            RetentionRule::new("**", Some(5), None, "r1").unwrap(),
        ];
        assert_eq!(
            rule_for(&rules, &JobPath::new(["team", "app"]))
                .unwrap()
                .keep_last,
            Some(1)
        );
        assert_eq!(
            rule_for(&rules, &JobPath::new(["other"]))
                .unwrap()
                .keep_last,
            Some(5)
        );
    }
}
