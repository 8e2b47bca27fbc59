//! One build's mirroring, as a task: the build's details from Jenkins, its artifacts streamed into the
//! store concurrently and checked against the build's fingerprints, then the commit.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use futures::{StreamExt, stream::FuturesUnordered};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use url::Url;

use crate::{
    fleet::{Claim, ClaimOutcome},
    format::{
        layout::{self, JobPath, Layout},
        manifest::{ArtifactEntry, Manifest, Scm, now_rfc3339},
    },
    integrity::{
        Check, Digests, IntegrityError, Md5Check, Origin, StreamError, VerifiedStream,
        fingerprint::{self, Fingerprint, Hashed, Verdict},
    },
    jenkins::{Download, JenkinsClient, model::BuildDetails, redact_url},
    retry::RetryPolicy,
    store::{
        Store,
        write::{Fence, StreamWrite, TransferError},
    },
};

use super::{BuildError, Outcome, Shared};

/// The attempts one artifact gets, over its broken, short or long downloads and its fingerprint
/// mismatches together, and the waits between them (`crate::retry` has the whole table).
const TRANSFER_RETRY: RetryPolicy =
    RetryPolicy::new(3, Duration::from_millis(400), Duration::from_secs(5));

/// How one transfer attempt failed: in the body (retried by the transfer loop), or otherwise (not).
enum Attempt {
    Retry(BuildError),
    Final(BuildError),
}

/// One in a gauge while it lives (a transfer in `jam_transfers_in_flight`).
struct Counted<'a>(&'a AtomicU64);

impl<'a> Counted<'a> {
    fn new(gauge: &'a AtomicU64) -> Counted<'a> {
        gauge.fetch_add(1, Ordering::Relaxed);
        Counted(gauge)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One build's mirroring, as a task.
pub(super) struct BuildTask {
    pub(super) shared: Arc<Shared>,
    pub(super) client: JenkinsClient,
    pub(super) layout: Layout,
    pub(super) job: JobPath,
    pub(super) number: u64,
    /// Cancels this build's transfers: at shutdown's abort, or when another worker takes its claim over.
    pub(super) cancel: tokio_util::sync::CancellationToken,
    /// The build's claim, once this worker holds it (the fence of its uploads).
    pub(super) claim: std::sync::OnceLock<Claim>,
}

impl BuildTask {
    pub(super) async fn run(self) -> Outcome {
        let _slot = tokio::select! {
            p = self.shared.builds.clone().acquire_owned() => p.expect("open"),
            _ = self.cancel.cancelled() => return Outcome::Failed(BuildError::Cancelled),
        };
        let outcome = match self.mirror().await {
            Ok(o) => o,
            Err(BuildError::Jenkins(e)) if e.is_not_found() => Outcome::Missed,
            Err(_) if self.claim.get().is_some_and(Claim::is_lost) => Outcome::Elsewhere,
            Err(e) => Outcome::Failed(e),
        };
        // Released after the commit and after a failure alike, so no other worker waits a lease.
        let still_held = match self.claim.get() {
            Some(claim) => claim.clone().release().await,
            None => true,
        };
        self.cancel.cancel();
        match outcome {
            // The attempt failed because another worker has the build now: not an attempt of this one's.
            Outcome::Failed(_) if !still_held => Outcome::Elsewhere,
            o => o,
        }
    }

    pub(super) async fn mirror(&self) -> Result<Outcome, BuildError> {
        // Committed by an earlier run that stopped before updating pointers and index: repair, don't redo.
        if let Some(o) = self.repair().await? {
            return Ok(o);
        }
        let fleet = self.shared.fleet();
        let prefix = self.layout.build_prefix(&self.job, self.number);
        let claim = match fleet.claim(&prefix).await? {
            ClaimOutcome::Held(c) => c,
            ClaimOutcome::Busy { holder } => {
                tracing::debug!(job = %self.job, build = self.number, holder = holder.as_deref().unwrap_or("?"), "another worker has claimed this build");
                return Ok(Outcome::Elsewhere);
            }
        };
        let lost = claim.lost_token();
        let cancel = self.cancel.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = lost.cancelled() => cancel.cancel(),
                _ = cancel.cancelled() => {}
            }
        });
        let _ = self.claim.set(claim);
        // Committed (and its claim released) between the first look and the claim: nothing to do.
        if let Some(o) = self.repair().await? {
            return Ok(o);
        }
        let details = self.client.build(&self.job, self.number).await?;
        if !details.finished() {
            return Ok(Outcome::StillRunning);
        }
        let started = Instant::now();
        // Refuse the whole build before writing anything if any path is unsafe.
        let mut keys = Vec::with_capacity(details.artifacts.len());
        for a in &details.artifacts {
            keys.push(
                self.layout
                    .artifact_key(&self.job, self.number, &a.relative_path)?,
            );
        }
        let fingerprints: Vec<Fingerprint> = details
            .fingerprint
            .iter()
            .map(|f| Fingerprint::new(&f.hash, f.file_name.clone()))
            .collect();
        let want_md5 = self.shared.cfg.verify_fingerprints && !fingerprints.is_empty();
        let artifacts = self
            .transfer_all(&details, &keys, &fingerprints, want_md5)
            .await?;
        let manifest = self.manifest(&details, artifacts);

        // Commit: SHA256SUMS, then the manifest (conditional create), then pointers and index; only while
        // the claim is this worker's (a worker that lost it leaves the build to the new holder).
        if let Some(claim) = self.claim.get() {
            claim.ensure().await.map_err(BuildError::Claim)?;
        }
        if !self.commit(&manifest).await? {
            return Ok(Outcome::AlreadyCommitted(Box::new(manifest)));
        }
        let bytes = manifest.total_size();
        let secs = started.elapsed().as_secs_f64();
        self.shared
            .stats
            .builds_mirrored
            .fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            controller = %self.layout.source(),
            job = %self.job,
            build = self.number,
            result = %manifest.result,
            artifacts = manifest.artifacts.len(),
            bytes,
            duration_s = (secs * 1000.0).round() / 1000.0,
            mb_per_s = ((bytes as f64 / 1e6 / secs.max(1e-6)) * 10.0).round() / 10.0,
            "mirrored build"
        );
        Ok(Outcome::Committed(Box::new(manifest)))
    }

    /// The build when it is committed already: published again unless the job's index lists it (an
    /// earlier run may have stopped before its pointers and index; the index is written after the
    /// pointers), nothing downloaded.
    async fn repair(&self) -> Result<Option<Outcome>, BuildError> {
        let Some(m) = self.committed().await? else {
            return Ok(None);
        };
        self.shared
            .stats
            .builds_already_committed
            .fetch_add(1, Ordering::Relaxed);
        let listed = self
            .shared
            .archive
            .read_index(&self.layout, &self.job)
            .await?
            .is_some_and(|ix| ix.builds.contains_key(&self.number));
        if !listed {
            self.publish(&m).await?;
        }
        Ok(Some(Outcome::AlreadyCommitted(Box::new(m))))
    }

    /// Transfers every artifact of the build, then judges their MD5s against the build's fingerprints
    /// ([`fingerprint::judge`]). An artifact found corrupt is transferred again within its attempt budget
    /// ([`TRANSFER_RETRY`]), which its broken, short or long downloads share.
    async fn transfer_all(
        &self,
        details: &BuildDetails,
        keys: &[String],
        fingerprints: &[Fingerprint],
        want_md5: bool,
    ) -> Result<Vec<ArtifactEntry>, BuildError> {
        let count = details.artifacts.len();
        let mut entries: Vec<Option<ArtifactEntry>> = vec![None; count];
        let mut used = vec![0u32; count];
        let mut todo: Vec<usize> = (0..count).collect();
        while !todo.is_empty() {
            let mut tasks: FuturesUnordered<_> = todo
                .iter()
                .map(|&i| {
                    let path = details.artifacts[i].relative_path.as_str();
                    let (key, after) = (keys[i].as_str(), used[i]);
                    async move { (i, self.transfer_artifact(path, key, want_md5, after).await) }
                })
                .collect();
            while let Some((i, r)) = tasks.next().await {
                let (entry, attempts) = r?;
                entries[i] = Some(entry);
                used[i] = attempts;
            }
            drop(tasks);
            todo = Vec::new();
            if !want_md5 {
                break;
            }
            let names: Vec<String> = details
                .artifacts
                .iter()
                .map(|a| {
                    a.file_name.clone().unwrap_or_else(|| {
                        let p = &a.relative_path;
                        p.rsplit('/').next().unwrap_or(p).to_string()
                    })
                })
                .collect();
            let md5s: Vec<String> = entries
                .iter()
                .map(|e| e.as_ref().and_then(|e| e.md5.clone()).unwrap_or_default())
                .collect();
            let hashed: Vec<Hashed<'_>> = names
                .iter()
                .zip(&md5s)
                .map(|(file_name, md5)| Hashed { file_name, md5 })
                .collect();
            for (i, verdict) in fingerprint::judge(&hashed, fingerprints)
                .into_iter()
                .enumerate()
            {
                let e = entries[i].as_mut().expect("every artifact transferred");
                e.fingerprint = verdict == Verdict::Matched;
                let Verdict::Corrupt { expected } = verdict else {
                    continue;
                };
                let url = redact_url(&self.artifact_url(&e.path));
                let err = IntegrityError::artifact(
                    &e.path,
                    Origin::Jenkins { url },
                    Check::Md5 {
                        expected: vec![expected],
                        actual: md5s[i].clone(),
                    },
                );
                if !TRANSFER_RETRY.allows_another(used[i]) {
                    return Err(BuildError::Integrity(err));
                }
                tracing::warn!(job = %self.job, build = self.number, artifact = %e.path, error = %err, "fingerprint mismatch; downloading again");
                self.shared
                    .stats
                    .artifact_retries
                    .fetch_add(1, Ordering::Relaxed);
                todo.push(i);
            }
        }
        Ok(entries
            .into_iter()
            .map(|e| e.expect("every artifact transferred"))
            .collect())
    }

    fn artifact_url(&self, path: &str) -> Url {
        self.client
            .artifact_url(&self.job, &self.number.to_string(), path)
    }

    /// Transfers one artifact whose earlier attempts numbered `after`, attempt after attempt until one
    /// succeeds or [`TRANSFER_RETRY`] is spent; returns the entry and the attempts used so far. Only what
    /// went wrong in the body is retried here (a break, a wrong length or, in [`Self::transfer_all`], a
    /// wrong MD5): a failure to open the download was retried by the Jenkins client already, and a store
    /// failure by object_store.
    async fn transfer_artifact(
        &self,
        path: &str,
        key: &str,
        md5: bool,
        after: u32,
    ) -> Result<(ArtifactEntry, u32), BuildError> {
        let url = self.artifact_url(path);
        let obj = layout::path(key);
        let mut attempt = after;
        loop {
            if attempt > 0 {
                tokio::select! {
                    _ = tokio::time::sleep(TRANSFER_RETRY.delay(attempt, None)) => {}
                    _ = self.cancel.cancelled() => return Err(BuildError::Cancelled),
                }
            }
            attempt += 1;
            let stats = &self.shared.stats;
            let began = Instant::now();
            let result = self.upload(&url, path, &obj, md5).await;
            match result {
                Ok(d) => {
                    stats.transfer_seconds.observe(began.elapsed());
                    stats.artifacts.fetch_add(1, Ordering::Relaxed);
                    let entry = ArtifactEntry {
                        path: path.to_string(),
                        key: key.to_string(),
                        size: d.size,
                        sha256: d.sha256,
                        md5: d.md5,
                        fingerprint: false,
                    };
                    return Ok((entry, attempt));
                }
                Err(Attempt::Retry(e)) if TRANSFER_RETRY.allows_another(attempt) => {
                    stats.artifact_retries.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(job = %self.job, build = self.number, artifact = %path, attempt, error = %e, "artifact transfer failed; retrying");
                }
                Err(Attempt::Retry(e) | Attempt::Final(e)) => return Err(e),
            }
        }
    }

    /// Waits for a transfer slot of `pool`, or for the build's cancellation.
    async fn slot(&self, pool: &Arc<Semaphore>) -> Result<OwnedSemaphorePermit, Attempt> {
        tokio::select! {
            p = pool.clone().acquire_owned() => Ok(p.expect("open")),
            _ = self.cancel.cancelled() => Err(Attempt::Final(BuildError::Cancelled)),
        }
    }

    /// One attempt: the download from Jenkins, read through a [`VerifiedStream`] (its length, and its MD5
    /// computed for the fingerprint check), written by the store.
    ///
    /// The attempt holds a transfer slot throughout. Its size is known only once Jenkins answers, so it
    /// starts in one of the many small slots (`mirror.small_transfers`), and moves to one of the
    /// `mirror.transfers` slots when the answer is larger than one part or has no length. Memory is
    /// bounded by the bytes the write reserves from the shared budget, not by the slots; the slots bound
    /// connections and, for large artifacts, the streams that share the budget.
    async fn upload(
        &self,
        url: &Url,
        path: &str,
        key: &object_store::path::Path,
        md5: bool,
    ) -> Result<Digests, Attempt> {
        let transfer = |source| BuildError::Transfer {
            path: path.to_string(),
            source,
        };
        let small = self.slot(&self.shared.small_transfers).await?;
        // In flight from the moment it holds a slot: the wait for Jenkins' answer is part of the transfer.
        let _counted = Counted::new(&self.shared.stats.transfers_in_flight);
        let dl = match self.client.download(url).await {
            Ok(dl) => dl,
            Err(e) if e.is_not_found() || e.is_unauthorized() => {
                return Err(Attempt::Final(BuildError::Jenkins(e)));
            }
            Err(e) => return Err(Attempt::Final(transfer(TransferError::Source(e)))),
        };
        let fits_one_part = dl
            .content_length
            .is_some_and(|l| l <= self.shared.limits.part_size as u64);
        let _slot = if fits_one_part {
            small
        } else {
            drop(small);
            self.slot(&self.shared.transfers).await?
        };
        let stats = &self.shared.stats;
        let flight =
            stats
                .transfers
                .start(self.job.full_name(), self.number, path, dl.content_length);
        let write = StreamWrite {
            length: dl.content_length,
            limits: &self.shared.limits,
            journal: Some(&self.shared.journal),
            cancel: &self.cancel,
            fence: self.claim.get().map(|c| c as &dyn Fence),
        };
        let on_bytes = |n| {
            stats.bytes.fetch_add(n, Ordering::Relaxed);
            flight.advance(n);
        };
        write_download(&self.shared.store, key, path, dl, write, md5, on_bytes).await
    }

    pub(super) fn manifest(&self, d: &BuildDetails, artifacts: Vec<ArtifactEntry>) -> Manifest {
        Manifest {
            format: layout::FORMAT_VERSION,
            source: self.layout.source().to_string(),
            jenkins: self.client.base().to_string(),
            job: self.job.clone(),
            full_name: self.job.full_name(),
            number: self.number,
            result: d.result.clone().unwrap_or_else(|| "NOT_BUILT".into()),
            timestamp: d.timestamp,
            duration: d.duration,
            url: self
                .client
                .build_url(&self.job, &self.number.to_string())
                .to_string(),
            display_name: d.display_name.clone(),
            description: d.description.clone().filter(|s| !s.is_empty()),
            scm: d.git().map(|(revision, branches, remotes)| Scm {
                revision,
                branches,
                remotes,
            }),
            parameters: d.parameters(),
            causes: d.causes(),
            artifacts,
            mirrored_at: now_rfc3339(),
            mirrored_by: concat!("jam ", env!("CARGO_PKG_VERSION")).to_string(),
        }
    }
}

/// The one way down of an artifact's bytes: the download's body, read through a [`VerifiedStream`] (its
/// length checked, its MD5 computed when `md5` is set), written by the store's [`Store::put_stream`]. The
/// store pulls the bytes: mirror → integrity → store, each entered once (a test below checks it on the
/// call stack).
async fn write_download(
    store: &Store,
    key: &object_store::path::Path,
    path: &str,
    dl: Download,
    write: StreamWrite<'_>,
    md5: bool,
    on_bytes: impl FnMut(u64) + Send,
) -> Result<Digests, Attempt> {
    let transfer = |source| BuildError::Transfer {
        path: path.to_string(),
        source,
    };
    let mut body = VerifiedStream::new(path, Origin::Jenkins { url: dl.url }, dl.body)
        .expect_size(dl.content_length)
        .md5(if md5 {
            Md5Check::Compute
        } else {
            Md5Check::Off
        })
        .on_bytes(on_bytes);
    match store.put_stream(key, &mut body, write).await {
        Ok(_) => Ok(body
            .into_digests()
            .expect("the store writes a stream to its end, where it has passed its checks")),
        Err(TransferError::Source(StreamError::Integrity(e))) => {
            Err(Attempt::Retry(BuildError::Integrity(e)))
        }
        Err(TransferError::Source(StreamError::Source(e))) => {
            Err(Attempt::Retry(transfer(TransferError::Source(e))))
        }
        Err(TransferError::Cancelled) => Err(Attempt::Final(BuildError::Cancelled)),
        Err(TransferError::Store { key, source }) => {
            Err(Attempt::Final(transfer(TransferError::Store {
                key,
                source,
            })))
        }
        Err(TransferError::Journal(e)) => Err(Attempt::Final(transfer(TransferError::Journal(e)))),
        Err(TransferError::Fenced { key, reason }) => {
            Err(Attempt::Final(transfer(TransferError::Fenced {
                key,
                reason,
            })))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{sync::Mutex, task::Poll};

    use bytes::Bytes;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::{
        config::StoreConfig,
        store::write::{ByteBudget, TransferLimits},
    };

    /// The first line of this test module: frames below it are test code.
    const TESTS_FROM: u32 = line!();

    /// The crate's top-level modules on a call stack, by the source file of each frame, innermost first,
    /// consecutive repeats merged; frames of this test module and of other crates are left out.
    fn modules_on(trace: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for line in trace.lines() {
            let Some(at) = line.trim_start().strip_prefix("at ") else {
                continue;
            };
            let Some((_, file)) = at
                .split_once("./src/")
                .or_else(|| at.split_once(concat!(env!("CARGO_MANIFEST_DIR"), "/src/")))
            else {
                continue;
            };
            let mut parts = file.split(':');
            let path = parts.next().unwrap_or_default();
            let line_no: u32 = parts.next().and_then(|n| n.parse().ok()).unwrap_or(0);
            if path == "mirror/build.rs" && line_no >= TESTS_FROM {
                continue;
            }
            let module = path
                .split('/')
                .next()
                .unwrap_or_default()
                .trim_end_matches(".rs");
            if out.last().map(String::as_str) != Some(module) {
                out.push(module.to_string());
            }
        }
        out
    }

    /// Follows the bytes from the mirror's build task to the store write, on the call stack of the moment
    /// the store first pulls a chunk of the download: the store's write pulls from the verified stream,
    /// which pulls from the download, and each of mirror, integrity and store is entered exactly once.
    #[tokio::test]
    async fn the_bytes_take_one_way_down_through_each_module_once() {
        let trace: Arc<Mutex<Option<String>>> = Arc::default();
        let seen = trace.clone();
        let mut sent = false;
        let body = futures::stream::poll_fn(move |_| {
            if std::mem::replace(&mut sent, true) {
                return Poll::Ready(None);
            }
            let bt = std::backtrace::Backtrace::force_capture().to_string();
            *seen.lock().unwrap() = Some(bt);
            Poll::Ready(Some(Ok(Bytes::from_static(b"hello"))))
        });
        let dl = Download {
            content_length: Some(5),
            url: "http://ci.invalid/job/app/1/artifact/a.bin".into(),
            body: Box::pin(body),
        };
        let store = Store::open(&StoreConfig::new("memory://")).unwrap();
        let limits = TransferLimits {
            part_size: 5 << 20,
            part_uploads: 2,
            budget: ByteBudget::new(64 << 20),
        };
        let cancel = CancellationToken::new();
        let write = StreamWrite {
            length: dl.content_length,
            limits: &limits,
            journal: None,
            cancel: &cancel,
            fence: None,
        };
        let key = layout::path("ci/job/app/1/artifact/a.bin");
        let Ok(d) = write_download(&store, &key, "a.bin", dl, write, true, |_| {}).await else {
            panic!("the write failed");
        };
        assert_eq!((d.size, d.md5.is_some()), (5, true));
        assert_eq!(&store.get(&key).await.unwrap().unwrap().0[..], b"hello");
        let trace = trace.lock().unwrap().take().expect("the body was polled");
        assert_eq!(
            modules_on(&trace),
            ["integrity", "store", "mirror"],
            "innermost first:\n{trace}"
        );
    }
}
