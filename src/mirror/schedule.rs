//! What the loop does with a build task's outcome: a committed build settles, a running one is looked at
//! again, a failed one is retried with backoff or, after `max_attempts`, recorded as failed, and a build
//! Jenkins deleted first is recorded as missed.

use std::{
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use crate::{
    archive::{Archive, IndexChange},
    format::{
        layout::{JobPath, Layout},
        manifest::{Failure, now_rfc3339},
    },
};

use super::{BuildError, Mirror, Outcome, Report, Summary, poll::JobState};

impl Mirror {
    pub(super) async fn handle(&mut self, r: Report, summary: &mut Summary) {
        let shared = self.shared.clone();
        let src = &mut self.sources[r.source];
        let name = src.client.name().to_string();
        let state = src.jobs.entry(r.job.clone()).or_default();
        state.in_flight.remove(&r.number);
        match r.outcome {
            Outcome::Committed(m) | Outcome::AlreadyCommitted(m) => {
                state.elsewhere.remove(&r.number);
                state.retry.remove(&r.number);
                state.running.remove(&r.number);
                if let Some(ix) = &mut state.index {
                    IndexChange::mirrored(&m).apply(ix);
                }
                summary.mirrored += 1;
            }
            Outcome::StillRunning => {
                state.running.insert(r.number);
            }
            Outcome::Elsewhere => {
                // Another worker has it: look again in half a lease (is its claim renewed, is it committed?).
                let again = Instant::now() + shared.cfg.lease / 2;
                state.elsewhere.insert(r.number, again);
            }
            Outcome::Missed => {
                state.running.remove(&r.number);
                state.retry.remove(&r.number);
                summary.missed += 1;
                shared.stats.builds_missed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(controller = %name, job = %r.job, build = r.number, "build was deleted from Jenkins before it was mirrored");
                let change = IndexChange::Missed(r.number);
                if let Some(e) = state
                    .record(&shared.archive, &src.layout, &r.job, change)
                    .await
                {
                    summary.refuse_if_newer(&e);
                }
            }
            Outcome::Failed(BuildError::Cancelled) => {
                // Shutdown interrupted it: not an attempt; the next run starts it again.
            }
            Outcome::Failed(e) if summary.refuse_if_newer(&e) => {
                // The store holds a newer format: the worker stops, and records nothing.
            }
            Outcome::Failed(err) => {
                summary.failed_attempts += 1;
                shared.stats.build_failures.fetch_add(1, Ordering::Relaxed);
                let attempts = state.retry.get(&r.number).map_or(0, |(a, _, _)| *a) + 1;
                let give_up = !err.retryable() || attempts >= shared.cfg.max_attempts;
                if give_up {
                    summary.given_up += 1;
                    shared.stats.builds_failed.fetch_add(1, Ordering::Relaxed);
                    state.retry.remove(&r.number);
                    tracing::error!(
                        controller = %name, job = %r.job, build = r.number, attempts, error = %err,
                        "giving up on build; recorded as failed in the job's index (it will not be retried)"
                    );
                    let failure = Failure {
                        attempts,
                        error: err.to_string(),
                        at: now_rfc3339(),
                    };
                    let change = IndexChange::Failed {
                        number: r.number,
                        failure,
                    };
                    if let Some(e) = state
                        .record(&shared.archive, &src.layout, &r.job, change)
                        .await
                    {
                        summary.refuse_if_newer(&e);
                    }
                } else {
                    let delay = build_retry(&shared.cfg).delay(attempts, None);
                    tracing::warn!(
                        controller = %name, job = %r.job, build = r.number, attempt = attempts,
                        max_attempts = shared.cfg.max_attempts, retry_in_s = delay.as_secs(), error = %err,
                        "build not mirrored; will retry"
                    );
                    state.retry.insert(
                        r.number,
                        (attempts, Instant::now() + delay, err.to_string()),
                    );
                }
            }
        }
    }
}

impl JobState {
    /// Records a missed or failed build in the job's index in the store, and the same change in the
    /// worker's copy. A store failure is logged, and the copy records the change all the same: this worker
    /// leaves the build alone, while a restarted one, which reads the store's index, tries it again. An
    /// index in a newer format is returned: the worker must stop.
    async fn record(
        &mut self,
        archive: &Archive,
        layout: &Layout,
        job: &JobPath,
        change: IndexChange,
    ) -> Option<BuildError> {
        match archive
            .change_index(layout, job, &change)
            .await
            .map_err(BuildError::from)
        {
            Err(e @ BuildError::NewerFormat(_)) => return Some(e),
            Err(e) => {
                let what = match change {
                    IndexChange::Missed(_) => "missed",
                    _ => "failed",
                };
                tracing::warn!(job = %job, error = %e, "could not record {what} build in the index");
            }
            Ok(_) => {}
        }
        if let Some(ix) = &mut self.index {
            change.apply(ix);
        }
        None
    }
}

/// A failed build's attempts (`mirror.max_attempts`) and the waits between them: `mirror.retry_backoff`,
/// doubling per attempt, ±25 %, at most 6 hours (`crate::retry` has the whole table).
fn build_retry(cfg: &crate::config::MirrorConfig) -> crate::retry::RetryPolicy {
    crate::retry::RetryPolicy::new(
        cfg.max_attempts,
        cfg.retry_backoff,
        Duration::from_secs(6 * 3600),
    )
    .with_jitter(crate::retry::Jitter::Around { percent: 25 })
}
