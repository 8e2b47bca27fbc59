//! One build's mirroring, as a task: the build's details from Jenkins, its artifacts streamed into the
//! store concurrently and checked against the build's fingerprints, then the commit.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use futures::{StreamExt, stream::FuturesUnordered};

use crate::{
    format::{
        layout::{self, JobPath, Layout},
        manifest::{ArtifactEntry, Manifest, Scm, now_rfc3339},
    },
    jenkins::{JenkinsClient, model::BuildDetails},
    store::write::{self, TransferError},
};

use super::{BuildError, Outcome, Shared};

/// One build's mirroring, as a task.
pub(super) struct BuildTask {
    pub(super) shared: Arc<Shared>,
    pub(super) client: JenkinsClient,
    pub(super) layout: Layout,
    pub(super) job: JobPath,
    pub(super) number: u64,
}

impl BuildTask {
    pub(super) async fn run(self) -> Outcome {
        let _slot = tokio::select! {
            p = self.shared.builds.clone().acquire_owned() => p.expect("open"),
            _ = self.shared.abort.cancelled() => return Outcome::Failed(BuildError::Cancelled),
        };
        match self.mirror().await {
            Ok(o) => o,
            Err(BuildError::Jenkins(e)) if e.is_not_found() => Outcome::Missed,
            Err(e) => Outcome::Failed(e),
        }
    }

    pub(super) async fn mirror(&self) -> Result<Outcome, BuildError> {
        // Committed by an earlier run that stopped before updating pointers and index: repair, don't redo.
        if let Some(m) = self.committed().await? {
            self.shared
                .stats
                .builds_already_committed
                .fetch_add(1, Ordering::Relaxed);
            self.publish(&m).await?;
            return Ok(Outcome::AlreadyCommitted(Box::new(m)));
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
        let fingerprints: HashMap<String, Option<String>> = details
            .fingerprint
            .iter()
            .map(|f| (f.hash.to_ascii_lowercase(), f.file_name.clone()))
            .collect();
        let want_md5 = self.shared.cfg.verify_fingerprints && !fingerprints.is_empty();

        let mut entries: Vec<Option<ArtifactEntry>> = vec![None; details.artifacts.len()];
        let mut todo: Vec<usize> = (0..details.artifacts.len()).collect();
        let mut round = 0;
        while !todo.is_empty() {
            round += 1;
            let mut tasks: FuturesUnordered<_> = todo
                .iter()
                .map(|&i| {
                    let path = details.artifacts[i].relative_path.clone();
                    let key = keys[i].clone();
                    async move { (i, self.transfer_artifact(&path, &key, want_md5).await) }
                })
                .collect();
            while let Some((i, r)) = tasks.next().await {
                entries[i] = Some(r?);
            }
            drop(tasks);
            // Fingerprint rule: an artifact is corrupt when its MD5 matches none of the build's fingerprints
            // while a fingerprint recorded under the artifact's own file name matches no artifact at all.
            // Anything else (fingerprints of other files, artifacts not fingerprinted) is not evidence.
            todo = Vec::new();
            let mut corrupt = None;
            if want_md5 {
                let got: HashSet<String> = entries
                    .iter()
                    .flatten()
                    .filter_map(|e| e.md5.clone())
                    .collect();
                for (i, e) in entries.iter_mut().enumerate() {
                    let e = e.as_mut().expect("all transferred");
                    let md5 = e.md5.clone().unwrap_or_default();
                    e.fingerprint = fingerprints.contains_key(&md5);
                    if e.fingerprint {
                        continue;
                    }
                    let name = details.artifacts[i].file_name.clone().unwrap_or_else(|| {
                        e.path.rsplit('/').next().unwrap_or(&e.path).to_string()
                    });
                    if let Some((hash, _)) = fingerprints
                        .iter()
                        .find(|(h, f)| f.as_deref() == Some(name.as_str()) && !got.contains(*h))
                    {
                        tracing::warn!(job = %self.job, build = self.number, artifact = %e.path, md5 = %md5, expected = %hash, "fingerprint mismatch; downloading again");
                        corrupt = Some(BuildError::Fingerprint {
                            path: e.path.clone(),
                            md5,
                            expected: hash.clone(),
                        });
                        todo.push(i);
                    }
                }
            }
            if let Some(err) = corrupt {
                if round >= 3 {
                    return Err(err);
                }
                self.shared
                    .stats
                    .artifact_retries
                    .fetch_add(todo.len() as u64, Ordering::Relaxed);
            }
        }
        let artifacts: Vec<ArtifactEntry> = entries
            .into_iter()
            .map(|e| e.expect("all transferred"))
            .collect();
        let manifest = self.manifest(&details, artifacts);

        // Commit: SHA256SUMS, then the manifest (conditional create), then pointers and index.
        self.commit(&manifest).await?;
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

    /// Transfers one artifact, retrying broken or short downloads a few times.
    pub(super) async fn transfer_artifact(
        &self,
        path: &str,
        key: &str,
        md5: bool,
    ) -> Result<ArtifactEntry, BuildError> {
        let url = self
            .client
            .artifact_url(&self.job, &self.number.to_string(), path);
        let obj = layout::path(key);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let _permit = tokio::select! {
                p = self.shared.transfers.clone().acquire_owned() => p.expect("open"),
                _ = self.shared.abort.cancelled() => return Err(BuildError::Cancelled),
            };
            self.shared
                .stats
                .transfers_in_flight
                .fetch_add(1, Ordering::Relaxed);
            let began = Instant::now();
            let result = async {
                let dl = self
                    .client
                    .download(&url)
                    .await
                    .map_err(TransferError::Source)?;
                let stats = &self.shared.stats;
                let incoming = write::Incoming {
                    content_length: dl.content_length,
                    url: dl.url,
                    body: dl.body,
                };
                write::upload(
                    &self.shared.store,
                    &obj,
                    incoming,
                    &self.shared.limits,
                    md5,
                    Some(&self.shared.journal),
                    &self.shared.abort,
                    &|n| {
                        stats.bytes.fetch_add(n, Ordering::Relaxed);
                    },
                )
                .await
            }
            .await;
            self.shared
                .stats
                .transfers_in_flight
                .fetch_sub(1, Ordering::Relaxed);
            match result {
                Ok(t) => {
                    self.shared.stats.transfer_seconds.observe(began.elapsed());
                    self.shared.stats.artifacts.fetch_add(1, Ordering::Relaxed);
                    return Ok(ArtifactEntry {
                        path: path.to_string(),
                        key: key.to_string(),
                        size: t.size,
                        sha256: t.sha256,
                        md5: t.md5,
                        fingerprint: false,
                    });
                }
                Err(TransferError::Cancelled) => return Err(BuildError::Cancelled),
                Err(TransferError::Source(e)) if e.is_not_found() || e.is_unauthorized() => {
                    return Err(BuildError::Jenkins(e));
                }
                Err(e) if attempt < 3 => {
                    self.shared
                        .stats
                        .artifact_retries
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(job = %self.job, build = self.number, artifact = %path, attempt, error = %e, "artifact transfer failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200 * (1 << attempt))).await;
                }
                Err(e) => {
                    return Err(BuildError::Transfer {
                        path: path.to_string(),
                        source: e,
                    });
                }
            }
        }
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
