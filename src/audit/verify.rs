//! The archive audit behind `jam verify`: for each job, every committed build's manifest is checked against
//! the objects it lists (they exist, with the recorded size; with `deep`, read back and re-hashed) and
//! against the build's `SHA256SUMS`; every index entry must have a manifest, and every permalink pointer
//! must name a committed build whose result it accepts.
//!
//! The audit never stops at the first problem: it names each one (the key and what is wrong) in a
//! [`Report`]. It is gentle on the store: jobs are audited one after another, and within a job at most
//! `concurrency` builds are checked at once, each issuing one request at a time.

use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt;
use object_store::ObjectStoreExt;
use serde::Serialize;

use crate::{
    archive::catalog::{Catalog, CatalogError},
    format::layout::{self, JobPath, Layout, PERMALINKS},
    format::manifest::{ArtifactEntry, JobIndex, Manifest, Pointer, parse_sha256sums},
    integrity::{Check, IntegrityError, Origin, StreamError, VerifiedStream, stored_size},
    store::Store,
};

/// What kind of problem the audit found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// An object a manifest lists does not exist.
    Missing,
    /// An object's size differs from the manifest.
    Size,
    /// An object's bytes do not hash to the manifest's SHA-256.
    Checksum,
    /// `SHA256SUMS` is missing or disagrees with the manifest.
    Sums,
    /// A manifest is unreadable or inconsistent with its key.
    Manifest,
    /// A pointer is unreadable or names a build it should not.
    Pointer,
    /// A job index is missing, unreadable, or lists builds without manifests.
    Index,
    /// The store failed while auditing.
    Error,
}

impl ProblemKind {
    /// Whether the problem is about the bytes themselves (exit code 4) rather than the bookkeeping.
    pub fn is_integrity(self) -> bool {
        matches!(
            self,
            ProblemKind::Missing | ProblemKind::Size | ProblemKind::Checksum | ProblemKind::Sums
        )
    }
}

/// One problem: the key and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Problem {
    /// The object key concerned.
    pub key: String,
    /// The kind.
    pub kind: ProblemKind,
    /// What is wrong.
    pub message: String,
}

/// The audit's findings.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Jobs audited.
    pub jobs: usize,
    /// Committed builds audited.
    pub builds: usize,
    /// Artifacts checked.
    pub artifacts: usize,
    /// Pointers checked.
    pub pointers: usize,
    /// Whether objects were read back and re-hashed.
    pub deep: bool,
    /// Bytes read back (with `deep`).
    pub bytes_read: u64,
    /// Every problem found, sorted by key.
    pub problems: Vec<Problem>,
}

impl Report {
    /// Whether the audit found nothing wrong.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    fn merge(&mut self, other: BuildAudit) {
        self.builds += other.committed as usize;
        self.artifacts += other.artifacts;
        self.bytes_read += other.bytes_read;
        self.problems.extend(other.problems);
    }
}

/// How to audit.
#[derive(Debug, Clone, Copy)]
pub struct VerifyOptions {
    /// Read every object back and re-hash it.
    pub deep: bool,
    /// Builds checked at once within a job.
    pub concurrency: usize,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            deep: false,
            concurrency: 8,
        }
    }
}

#[derive(Default)]
struct BuildAudit {
    committed: bool,
    manifest: Option<Manifest>,
    artifacts: usize,
    bytes_read: u64,
    problems: Vec<Problem>,
}

fn problem(key: impl Into<String>, kind: ProblemKind, message: impl Into<String>) -> Problem {
    Problem {
        key: key.into(),
        kind,
        message: message.into(),
    }
}

/// Audits the given jobs (source name, job) and returns the report.
pub async fn verify(catalog: &Catalog, jobs: &[(String, JobPath)], opts: VerifyOptions) -> Report {
    let mut report = Report {
        deep: opts.deep,
        ..Default::default()
    };
    for (source, job) in jobs {
        report.jobs += 1;
        verify_job(catalog, &Layout::new(source), job, opts, &mut report).await;
    }
    report.problems.sort();
    report.problems.dedup();
    report
}

async fn verify_job(
    catalog: &Catalog,
    layout: &Layout,
    job: &JobPath,
    opts: VerifyOptions,
    report: &mut Report,
) {
    let store = catalog.store();
    let index_key = layout.index_key(job);
    let index: Option<JobIndex> = match catalog.index(layout, job).await {
        Ok(Some(ix)) => Some(ix),
        Ok(None) => {
            report.problems.push(problem(
                &index_key,
                ProblemKind::Index,
                "the job has no index.json",
            ));
            None
        }
        Err(e) => {
            report
                .problems
                .push(catalog_problem(&index_key, ProblemKind::Index, e));
            None
        }
    };
    // Builds present as prefixes (one listing), plus those the index names.
    let prefix = layout.job_prefix(job);
    let mut numbers: BTreeSet<u64> = BTreeSet::new();
    match store.list_dir(&layout::path(&prefix)).await {
        Ok((_, prefixes)) => numbers.extend(prefixes.iter().filter_map(|p| {
            p.parts()
                .next_back()
                .and_then(|s| s.as_ref().parse::<u64>().ok())
        })),
        Err(e) => report
            .problems
            .push(problem(&prefix, ProblemKind::Error, e.to_string())),
    }
    let indexed: BTreeMap<u64, crate::format::manifest::BuildSummary> = index
        .as_ref()
        .map(|ix| ix.builds.clone())
        .unwrap_or_default();
    numbers.extend(indexed.keys().copied());

    let audits: Vec<(u64, BuildAudit)> = futures::stream::iter(numbers)
        .map(|n| {
            let summary = indexed.get(&n).cloned();
            async move {
                (
                    n,
                    verify_build(catalog, layout, job, n, summary, opts).await,
                )
            }
        })
        .buffer_unordered(opts.concurrency.max(1))
        .collect()
        .await;
    let mut committed: BTreeMap<u64, String> = BTreeMap::new();
    for (n, a) in audits {
        if let Some(m) = &a.manifest {
            committed.insert(n, m.result.clone());
        }
        report.merge(a);
    }

    for link in PERMALINKS {
        let key = layout.pointer_key(job, link);
        let p: Pointer = match catalog.read_json(&key).await {
            Ok(Some(p)) => p,
            Ok(None) => continue,
            Err(e) => {
                report
                    .problems
                    .push(catalog_problem(&key, ProblemKind::Pointer, e));
                continue;
            }
        };
        report.pointers += 1;
        let expected_key = layout.manifest_key(job, p.number);
        if p.manifest != expected_key {
            report.problems.push(problem(
                &key,
                ProblemKind::Pointer,
                format!(
                    "names build #{} but its manifest key is '{}' (expected '{expected_key}')",
                    p.number, p.manifest
                ),
            ));
        }
        match committed.get(&p.number) {
            None => report.problems.push(problem(
                &key,
                ProblemKind::Pointer,
                format!(
                    "points at build #{}, which is not committed (no readable manifest)",
                    p.number
                ),
            )),
            Some(result) => {
                if *result != p.result {
                    report.problems.push(problem(
                        &key,
                        ProblemKind::Pointer,
                        format!(
                            "records result {} for build #{} but its manifest says {result}",
                            p.result, p.number
                        ),
                    ));
                } else if !link.accepts(result) {
                    report.problems.push(problem(
                        &key,
                        ProblemKind::Pointer,
                        format!(
                            "points at build #{} whose result {result} {} does not accept",
                            p.number,
                            link.name()
                        ),
                    ));
                }
            }
        }
    }
}

fn catalog_problem(key: &str, kind: ProblemKind, e: CatalogError) -> Problem {
    match e {
        CatalogError::Corrupt { message, .. } => {
            problem(key, kind, format!("unreadable: {message}"))
        }
        e => problem(key, ProblemKind::Error, e.to_string()),
    }
}

async fn verify_build(
    catalog: &Catalog,
    layout: &Layout,
    job: &JobPath,
    number: u64,
    summary: Option<crate::format::manifest::BuildSummary>,
    opts: VerifyOptions,
) -> BuildAudit {
    let mut a = BuildAudit::default();
    let store = catalog.store();
    let mkey = layout.manifest_key(job, number);
    let m: Manifest = match catalog.read_json(&mkey).await {
        Ok(Some(m)) => m,
        Ok(None) => {
            if summary.is_some() {
                a.problems.push(problem(
                    &mkey,
                    ProblemKind::Index,
                    format!(
                        "the index lists build #{number} but it has no manifest (index '{}')",
                        layout.index_key(job)
                    ),
                ));
            }
            // A prefix without a manifest is a build being mirrored (or abandoned): not committed.
            return a;
        }
        Err(e) => {
            a.problems
                .push(catalog_problem(&mkey, ProblemKind::Manifest, e));
            return a;
        }
    };
    a.committed = true;
    if m.number != number || m.job != *job {
        a.problems.push(problem(
            &mkey,
            ProblemKind::Manifest,
            format!(
                "describes {} #{} but is stored as {} #{number}",
                m.job, m.number, job
            ),
        ));
    }
    if let Some(s) = &summary
        && (s.artifacts != m.artifacts.len() || s.size != m.total_size() || s.result != m.result)
    {
        a.problems.push(problem(
            layout.index_key(job),
            ProblemKind::Index,
            format!(
                "build #{number}: the index records {} artifacts, {} bytes, {} but the manifest has {}, {}, {}",
                s.artifacts,
                s.size,
                s.result,
                m.artifacts.len(),
                m.total_size(),
                m.result
            ),
        ));
    }

    // SHA256SUMS agrees with the manifest.
    let skey = layout.sums_key(job, number);
    match store.get(&layout::path(&skey)).await {
        Ok(None) => a
            .problems
            .push(problem(&skey, ProblemKind::Sums, "missing")),
        Err(e) => a
            .problems
            .push(problem(&skey, ProblemKind::Error, e.to_string())),
        Ok(Some((bytes, _))) => {
            match std::str::from_utf8(&bytes)
                .map_err(|e| e.to_string())
                .and_then(parse_sha256sums)
            {
                Err(e) => a.problems.push(problem(
                    &skey,
                    ProblemKind::Sums,
                    format!("unreadable: {e}"),
                )),
                Ok(sums) => {
                    let want: BTreeMap<String, String> = m
                        .artifacts
                        .iter()
                        .map(|x| (x.path.clone(), x.sha256.to_ascii_lowercase()))
                        .collect();
                    if sums != want {
                        let mut diffs = Vec::new();
                        for (p, h) in &want {
                            match sums.get(p) {
                                None => diffs.push(format!("'{p}' is missing")),
                                Some(x) if x != h => {
                                    diffs.push(format!("'{p}' has {x} but the manifest has {h}"))
                                }
                                _ => {}
                            }
                        }
                        for p in sums.keys().filter(|p| !want.contains_key(*p)) {
                            diffs.push(format!("'{p}' is not in the manifest"));
                        }
                        a.problems.push(problem(
                            &skey,
                            ProblemKind::Sums,
                            format!("disagrees with the manifest: {}", diffs.join("; ")),
                        ));
                    }
                }
            }
        }
    }

    for art in &m.artifacts {
        a.artifacts += 1;
        let expected = match layout.artifact_key(job, number, &art.path) {
            Ok(k) => k,
            Err(e) => {
                a.problems
                    .push(problem(&mkey, ProblemKind::Manifest, e.to_string()));
                continue;
            }
        };
        if art.key != expected {
            a.problems.push(problem(
                &mkey,
                ProblemKind::Manifest,
                format!(
                    "artifact '{}' has key '{}', not the layout's '{expected}'",
                    art.path, art.key
                ),
            ));
            continue;
        }
        let key = layout::path(&art.key);
        if opts.deep {
            let (read, outcome) = read_back(store, &key, art).await;
            a.bytes_read += read;
            match outcome {
                Ok(()) => {}
                Err(ReadBack::Bad(e)) => a.problems.push(integrity_problem(&art.key, &e)),
                Err(ReadBack::Failed(e)) => {
                    a.problems.push(problem(&art.key, ProblemKind::Error, e))
                }
            }
        } else {
            match store.head(&key).await {
                Ok(None) => a.problems.push(problem(
                    &art.key,
                    ProblemKind::Missing,
                    "the object does not exist",
                )),
                Ok(Some(meta)) if meta.size != art.size => a.problems.push(problem(
                    &art.key,
                    ProblemKind::Size,
                    format!(
                        "holds {} bytes; the manifest records {}",
                        meta.size, art.size
                    ),
                )),
                Ok(Some(_)) => {}
                Err(e) => a
                    .problems
                    .push(problem(&art.key, ProblemKind::Error, e.to_string())),
            }
        }
    }
    a.manifest = Some(m);
    a
}

/// Why a read-back found no good object.
enum ReadBack {
    /// The object is missing, or its bytes fail a check.
    Bad(IntegrityError),
    /// The store failed.
    Failed(String),
}

/// Reads an object back through a [`VerifiedStream`], checking it against the manifest's size and
/// SHA-256; returns the bytes read, and whether the object passed.
async fn read_back(
    store: &Store,
    key: &object_store::path::Path,
    art: &ArtifactEntry,
) -> (u64, Result<(), ReadBack>) {
    let origin = Origin::Store {
        key: art.key.clone(),
    };
    let r = match store.object_store().get(key).await {
        Ok(r) => r,
        Err(object_store::Error::NotFound { .. }) => {
            let missing = IntegrityError::artifact(&art.path, origin, Check::Missing);
            return (0, Err(ReadBack::Bad(missing)));
        }
        Err(e) => return (0, Err(ReadBack::Failed(format!("read failed: {e}")))),
    };
    if let Err(e) = stored_size(&art.path, &art.key, art.size, r.meta.size) {
        return (0, Err(ReadBack::Bad(e)));
    }
    let mut read = 0;
    let mut verified = VerifiedStream::new(&art.path, origin, r.into_stream())
        .expect_size(Some(art.size))
        .expect_sha256(Some(art.sha256.clone()))
        .on_bytes(|n| read += n);
    let mut outcome = Ok(());
    while let Some(chunk) = verified.next().await {
        match chunk {
            Ok(_) => {}
            Err(StreamError::Integrity(e)) => outcome = Err(ReadBack::Bad(e)),
            Err(StreamError::Source(e)) => {
                outcome = Err(ReadBack::Failed(format!("read failed: {e}")))
            }
        }
    }
    drop(verified);
    (read, outcome)
}

/// The audit's problem for an object that fails a check.
fn integrity_problem(key: &str, e: &IntegrityError) -> Problem {
    match e.check() {
        Some(Check::Missing) => problem(key, ProblemKind::Missing, "the object does not exist"),
        Some(Check::Length { expected, actual }) => problem(
            key,
            ProblemKind::Size,
            format!("holds {actual} bytes; the manifest records {expected}"),
        ),
        Some(Check::Sha256 { expected, actual }) => problem(
            key,
            ProblemKind::Checksum,
            format!("SHA-256 is {actual}; the manifest records {expected}"),
        ),
        _ => problem(key, ProblemKind::Error, e.to_string()),
    }
}
