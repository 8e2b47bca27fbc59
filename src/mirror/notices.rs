//! Build notices into the worker: "look at this job now", so a build is mirrored seconds after it
//! finishes instead of at the next poll.
//!
//! [`Notices`] is the endpoint's side (`ops::notify`): it maps a parsed notice to a configured
//! controller and a job its filter mirrors, and queues a look on a bounded channel (a full queue is
//! refused, not waited for: Jenkins sends notices from the build's own thread). The worker's loop
//! takes the looks from its [`Inbox`] between poll cycles and reads that one job as a poll would (its
//! build list, and its index the first time), starting a task for every finished build not settled
//! yet; claims and the manifest's conditional create keep several workers correct as they do for
//! polls. A look costs one Jenkins request, and none when the worker already mirrors or settled the
//! named build. A notice that comes while the build still runs (a Pipeline's `post` step, the
//! plugin's COMPLETED before Jenkins finalizes) is followed up: the job is looked at again after
//! 0.5 s, 1 s, 2 s, … (at most 30 s apart, [`FOLLOW_UPS`] times), until the build is finished, then
//! polling takes over. A notice that is lost costs only freshness: the next poll finds the build.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;
use url::Url;

use crate::{
    config::JobFilter,
    format::layout::JobPath,
    jenkins::notice::BuildNotice,
    metrics::{Collect, Exposition},
};

use super::{Mirror, Report, Summary, poll};

/// Looks queued and not yet taken by the worker, at most.
const QUEUE: usize = 1024;

/// Looks again at a job whose noticed build still ran, at most.
pub const FOLLOW_UPS: u32 = 12;

/// The first follow-up's delay; each next one doubles, up to [`FOLLOW_UP_MAX`].
const FOLLOW_UP_FIRST: Duration = Duration::from_millis(500);
const FOLLOW_UP_MAX: Duration = Duration::from_secs(30);

/// One look the worker is asked to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Look {
    source: usize,
    job: JobPath,
    number: Option<u64>,
}

/// A controller as notices name it.
#[derive(Debug)]
struct Target {
    name: String,
    base: Url,
    filter: JobFilter,
}

/// What became of a notice the endpoint accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submitted {
    /// The worker will look at the job of this controller now.
    Queued {
        /// The controller's name.
        controller: String,
    },
    /// A QUEUED or STARTED notice: nothing to mirror yet (a later notice, or polling, finds the build).
    Early {
        /// The controller's name.
        controller: String,
    },
}

/// Why a notice was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoticeRefused {
    /// The notice names a controller this worker does not mirror.
    #[error("no controller named '{name}' is configured here (configured: {known})")]
    UnknownController {
        /// The name given.
        name: String,
        /// The configured names.
        known: String,
    },
    /// Several controllers are configured and nothing in the notice says which one.
    #[error(
        "cannot tell which controller sent this notice ({url}); add ?controller=NAME to the notice URL \
         (one of {known})"
    )]
    WhichController {
        /// The notice's URL, or `no URL`.
        url: String,
        /// The configured names.
        known: String,
    },
    /// The controller's `include`/`exclude` globs leave the job out.
    #[error(
        "job '{job}' of controller '{controller}' is not mirrored (its include/exclude globs leave it out)"
    )]
    NotMirrored {
        /// The controller.
        controller: String,
        /// The job's full name.
        job: String,
    },
    /// The worker's queue is full, or the worker has stopped.
    #[error("the worker cannot take notices now ({0}); polling will find the build")]
    Busy(&'static str),
}

/// Why the endpoint refused a request (the `reason` label of `jam_notices_rejected_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// No secret, or the wrong one (401).
    Unauthorized,
    /// The body is not a notice (400).
    Malformed,
    /// The body is larger than the endpoint takes (413).
    TooLarge,
    /// Not a POST (405).
    Method,
    /// Unknown controller, or a job not mirrored (404).
    Unknown,
    /// The worker's queue is full or it stopped (503).
    Busy,
}

impl Rejection {
    const ALL: [(Rejection, &'static str); 6] = [
        (Rejection::Unauthorized, "unauthorized"),
        (Rejection::Malformed, "malformed"),
        (Rejection::TooLarge, "too_large"),
        (Rejection::Method, "method"),
        (Rejection::Unknown, "unknown"),
        (Rejection::Busy, "busy"),
    ];

    fn index(self) -> usize {
        Rejection::ALL
            .iter()
            .position(|(r, _)| *r == self)
            .unwrap_or(0)
    }
}

/// Counters of notices (reported in `/metrics` whether or not the endpoint is on).
#[derive(Debug, Default)]
pub struct NoticeStats {
    received: AtomicU64,
    accepted: AtomicU64,
    rejected: [AtomicU64; 6],
    looks: AtomicU64,
}

impl NoticeStats {
    /// A request reached the endpoint.
    pub fn received(&self) {
        self.received.fetch_add(1, Ordering::Relaxed);
    }

    /// A notice was accepted (202).
    pub fn accepted(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
    }

    /// A request was refused.
    pub fn rejected(&self, why: Rejection) {
        self.rejected[why.index()].fetch_add(1, Ordering::Relaxed);
    }
}

impl Collect for NoticeStats {
    fn collect(&self, out: &mut Exposition) {
        out.counter(
            "jam_notices_received_total",
            "Requests to the build-notice endpoint (POST /notify/jenkins).",
            &self.received,
        );
        out.counter(
            "jam_notices_accepted_total",
            "Build notices accepted (202): the worker looks at the job, or the build has not finished yet.",
            &self.accepted,
        );
        let f = out.family(
            "jam_notices_rejected_total",
            "counter",
            "Requests to the build-notice endpoint refused, by reason (unauthorized, malformed, too_large, \
             method, unknown, busy).",
        );
        for ((_, label), n) in Rejection::ALL.iter().zip(&self.rejected) {
            f.sample("", &[("reason", label)], n.load(Ordering::Relaxed));
        }
        out.counter(
            "jam_notice_looks_total",
            "Looks at a job because of a build notice (one Jenkins request each), follow-ups included.",
            &self.looks,
        );
    }
}

/// The endpoint's handle on the worker: maps notices to a controller and job, and queues looks.
#[derive(Debug, Clone)]
pub struct Notices {
    targets: Arc<Vec<Target>>,
    tx: mpsc::Sender<Look>,
    pub(super) stats: Arc<NoticeStats>,
}

impl Notices {
    /// The counters the endpoint updates.
    pub fn stats(&self) -> &NoticeStats {
        &self.stats
    }

    /// Maps `notice` to a controller (`controller` when the request names one, else the one whose URL
    /// the notice's URL starts with, else the only one) and a job it mirrors, and asks the worker to
    /// look at it, unless the build cannot have finished yet.
    pub fn submit(
        &self,
        controller: Option<&str>,
        notice: &BuildNotice,
    ) -> Result<Submitted, NoticeRefused> {
        let known = || {
            self.targets
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let source = match controller {
            Some(name) => self
                .targets
                .iter()
                .position(|t| t.name == name)
                .ok_or_else(|| NoticeRefused::UnknownController {
                    name: name.to_string(),
                    known: known(),
                })?,
            None => notice
                .url
                .as_ref()
                .and_then(|u| self.targets.iter().position(|t| under(u, &t.base)))
                .or((self.targets.len() == 1).then_some(0))
                .ok_or_else(|| NoticeRefused::WhichController {
                    url: notice
                        .url
                        .as_ref()
                        .map_or("no URL".into(), |u| u.to_string()),
                    known: known(),
                })?,
        };
        let t = &self.targets[source];
        let full_name = notice.job.full_name();
        if !t.filter.matches(&full_name) {
            return Err(NoticeRefused::NotMirrored {
                controller: t.name.clone(),
                job: full_name,
            });
        }
        let controller = t.name.clone();
        if !notice.may_be_done() {
            return Ok(Submitted::Early { controller });
        }
        let look = Look {
            source,
            job: notice.job.clone(),
            number: notice.number,
        };
        match self.tx.try_send(look) {
            Ok(()) => Ok(Submitted::Queued { controller }),
            Err(mpsc::error::TrySendError::Full(_)) => {
                Err(NoticeRefused::Busy("its queue of notices is full"))
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(NoticeRefused::Busy("it has stopped")),
        }
    }
}

/// Whether `url` lies under the controller's base URL (same scheme, host and port; path below).
fn under(url: &Url, base: &Url) -> bool {
    url.scheme() == base.scheme()
        && url.host_str() == base.host_str()
        && url.port_or_known_default() == base.port_or_known_default()
        && url.path().starts_with(base.path())
}

/// A job whose noticed build was still running: when to look again (on tokio's clock), how often it was.
#[derive(Debug)]
struct FollowUp {
    number: u64,
    due: tokio::time::Instant,
    tries: u32,
}

/// The worker's side: queued looks and the follow-ups of builds that were still running.
pub(super) struct Inbox {
    rx: mpsc::Receiver<Look>,
    follow_ups: HashMap<(usize, JobPath), FollowUp>,
    stats: Arc<NoticeStats>,
}

/// The endpoint's handle and the worker's inbox for `sources`.
pub(super) fn channel(sources: &[poll::Source]) -> (Notices, Inbox) {
    let targets = sources
        .iter()
        .map(|s| Target {
            name: s.client.name().to_string(),
            base: s.client.base().clone(),
            filter: s.filter.clone(),
        })
        .collect();
    channel_of(targets, QUEUE)
}

fn channel_of(targets: Vec<Target>, queue: usize) -> (Notices, Inbox) {
    let (tx, rx) = mpsc::channel(queue);
    let stats = Arc::new(NoticeStats::default());
    let notices = Notices {
        targets: Arc::new(targets),
        tx,
        stats: stats.clone(),
    };
    let inbox = Inbox {
        rx,
        follow_ups: HashMap::new(),
        stats,
    };
    (notices, inbox)
}

impl Inbox {
    /// The next look: a queued one, or a follow-up when it is due. Cancel-safe (for `select!`): a
    /// follow-up changes only when it is returned.
    pub(super) async fn next(&mut self) -> Look {
        loop {
            let due = self.follow_ups.values().map(|f| f.due).min();
            tokio::select! {
                Some(look) = self.rx.recv() => return look,
                _ = sleep_until(due) => {
                    let now = tokio::time::Instant::now();
                    let key = self
                        .follow_ups
                        .iter()
                        .find(|(_, f)| f.due <= now)
                        .map(|(k, _)| k.clone());
                    if let Some(key) = key
                        && let Some(f) = self.follow_ups.get_mut(&key)
                    {
                        // Not due again until the look reschedules or forgets it.
                        f.due = now + FOLLOW_UP_MAX;
                        return Look { source: key.0, job: key.1, number: Some(f.number) };
                    }
                }
            }
        }
    }

    /// Looks at `look.job` again later when its build still runs (or is not listed yet); forgets the
    /// follow-up when it is done, or after [`FOLLOW_UPS`] tries.
    fn follow_up(&mut self, look: Look, again: bool) {
        let Some(number) = look.number else {
            return;
        };
        let key = (look.source, look.job);
        if !again {
            self.follow_ups.remove(&key);
            return;
        }
        let tries = match self.follow_ups.get(&key) {
            Some(f) if f.number == number => f.tries,
            _ => 0,
        };
        if tries >= FOLLOW_UPS {
            self.follow_ups.remove(&key);
            return;
        }
        let delay = FOLLOW_UP_FIRST
            .saturating_mul(1 << tries.min(10))
            .min(FOLLOW_UP_MAX);
        self.follow_ups.insert(
            key,
            FollowUp {
                number,
                due: tokio::time::Instant::now() + delay,
                tries: tries + 1,
            },
        );
    }
}

async fn sleep_until(due: Option<tokio::time::Instant>) {
    match due {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

impl Mirror {
    /// The endpoint's handle for build notices (`ops::notify`); it shares the worker's queue.
    pub fn notices(&self) -> Notices {
        self.notices.clone()
    }

    /// Looks at one job because of a notice (or its follow-up); returns how many build tasks (and
    /// missed-build reports) it started.
    pub(super) async fn look_now(
        &mut self,
        look: Look,
        inbox: &mut Inbox,
        tx: &mpsc::UnboundedSender<Report>,
        tracker: &TaskTracker,
        summary: &mut Summary,
    ) -> usize {
        let i = look.source;
        let src = &mut self.sources[i];
        if src.locked_until.is_some_and(|t| t > Instant::now()) {
            // The controller refused the credentials: the poll tries again when its lockout ends.
            inbox.follow_up(look, false);
            return 0;
        }
        let state = src.jobs.entry(look.job.clone()).or_default();
        // Already under way or settled: nothing to ask Jenkins.
        if let (Some(n), Some(ix)) = (look.number, &state.index)
            && (ix.settled(n) || state.in_flight.contains(&n) || state.elsewhere.contains_key(&n))
        {
            inbox.follow_up(look, false);
            return 0;
        }
        let need_index = state.index.is_none();
        inbox.stats.looks.fetch_add(1, Ordering::Relaxed);
        let (shared, client, layout) = (&self.shared, &src.client, &src.layout);
        let looked =
            match poll::fetch_job(shared, client, layout, &look.job, (need_index, None)).await {
                Ok(fetched) => {
                    let builds = fetched
                        .listing
                        .as_ref()
                        .map_or(&[][..], |l| l.builds.as_slice());
                    // What the poll's change detection compares: the newest build and the newest finished.
                    let seen = (
                        builds.iter().map(|b| b.number).max(),
                        builds
                            .iter()
                            .filter(|b| !b.building)
                            .map(|b| b.number)
                            .max(),
                    );
                    let listed = look
                        .number
                        .is_some_and(|n| builds.iter().any(|b| b.number == n));
                    poll::look_at_job(shared, src, &look.job, fetched, tx, tracker, i)
                        .await
                        .map(|started| (started, seen, listed))
                }
                Err(e) => Err(e),
            };
        match looked {
            Ok((started, seen, listed)) => {
                let state = src.jobs.get_mut(&look.job).expect("state exists");
                state.seen = Some(seen);
                let running = look.number.is_some_and(|n| state.running.contains(&n));
                tracing::debug!(controller = %src.client.name(), job = %look.job, build = ?look.number, started, running, "looked at a job on a build notice");
                inbox.follow_up(look, running || !listed);
                started
            }
            Err(e) if summary.refuse_if_newer(&e) => 0,
            Err(e) => {
                tracing::warn!(controller = %src.client.name(), job = %look.job, error = %e, "cannot look at the job of a build notice; polling will");
                // A job no poll has seen (perhaps none Jenkins has) leaves nothing behind.
                if src
                    .jobs
                    .get(&look.job)
                    .is_some_and(|s| s.seen.is_none() && s.index.is_none())
                {
                    src.jobs.remove(&look.job);
                }
                inbox.follow_up(look, false);
                0
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jenkins::notice::parse;

    /// Notices for two controllers: `ci` (everything but `sandbox/**`) and `other` under a context path.
    fn two() -> (Notices, Inbox) {
        let target = |name: &str, base: &str, exclude: &[&str]| Target {
            name: name.into(),
            base: Url::parse(base).unwrap(),
            filter: JobFilter::new(
                &[],
                &exclude.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                "t",
            )
            .unwrap(),
        };
        let targets = vec![
            target("ci", "https://ci.example.com/", &["sandbox/**"]),
            target("other", "http://jenkins:8080/jenkins/", &[]),
        ];
        channel_of(targets, 2)
    }

    fn notice(json: &str) -> BuildNotice {
        parse(json.as_bytes()).unwrap()
    }

    #[tokio::test]
    async fn a_notice_is_mapped_to_its_controller_and_job_or_refused() {
        let (n, mut inbox) = two();
        // By the notice's URL, under the controller's base URL (context path included).
        let by_url = notice(r#"{"url":"http://jenkins:8080/jenkins/job/team/job/app/7/"}"#);
        assert_eq!(
            n.submit(None, &by_url),
            Ok(Submitted::Queued {
                controller: "other".into()
            })
        );
        let look = inbox.next().await;
        assert_eq!(
            (look.source, look.job.full_name(), look.number),
            (1, "team/app".into(), Some(7))
        );
        // By name, which wins over the URL.
        assert!(matches!(
            n.submit(Some("ci"), &by_url),
            Ok(Submitted::Queued { controller }) if controller == "ci"
        ));
        // Neither: two controllers, so which one is unknown.
        let bare = notice(r#"{"job":"team/app","number":3}"#);
        let err = n.submit(None, &bare).unwrap_err().to_string();
        assert!(
            err.contains("?controller=NAME") && err.contains("ci, other"),
            "{err}"
        );
        let err = n.submit(Some("nope"), &bare).unwrap_err().to_string();
        assert!(err.contains("no controller named 'nope'"), "{err}");
        let sandbox = notice(r#"{"job":"sandbox/x","number":1}"#);
        assert!(matches!(
            n.submit(Some("ci"), &sandbox),
            Err(NoticeRefused::NotMirrored { .. })
        ));
        // STARTED: accepted, no look.
        let started = notice(r#"{"url":"job/app/","build":{"number":4,"phase":"STARTED"}}"#);
        assert!(matches!(
            n.submit(Some("ci"), &started),
            Ok(Submitted::Early { .. })
        ));
        // The queue holds two (one left from above): the third is refused, not waited for.
        assert!(n.submit(Some("ci"), &bare).is_ok());
        assert_eq!(
            n.submit(Some("ci"), &bare),
            Err(NoticeRefused::Busy("its queue of notices is full"))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_running_build_is_followed_up_with_growing_delays_a_bounded_number_of_times() {
        let (_n, mut inbox) = two();
        let look = Look {
            source: 0,
            job: JobPath::new(["app"]),
            number: Some(9),
        };
        let mut waits = Vec::new();
        inbox.follow_up(look.clone(), true);
        loop {
            let t = tokio::time::Instant::now();
            let again = inbox.next().await;
            assert_eq!(again, look);
            waits.push(t.elapsed().as_millis());
            inbox.follow_up(again, true);
            if inbox.follow_ups.is_empty() {
                break;
            }
        }
        assert_eq!(waits.len() as u32, FOLLOW_UPS);
        assert_eq!(&waits[..7], [500, 1000, 2000, 4000, 8000, 16000, 30000]);
        assert!(waits[7..].iter().all(|w| *w == 30000), "{waits:?}");
        // Done (finished or settled): forgotten.
        inbox.follow_up(look.clone(), true);
        inbox.follow_up(look, false);
        assert!(inbox.follow_ups.is_empty());
    }
}
