//! Build notices, sent as Jenkins sends them (API.md §10.5, §10.6).
//!
//! A [`Notifier`] is either a Notification plugin endpoint (`style = "plugin"`: a Gson
//! `JobState` document per phase, filtered by `event` and `branch`, `retries` more attempts
//! after a failure) or a Pipeline that POSTs its own JSON from a `post` block
//! (`style = "pipeline-post"`: custom body and headers, sent once while the build still shows
//! `building: true`). Notifiers come from the scenario (`[[notifications]]`) or the control
//! API, and apply to every job unless `jobs` names some. Not simulated: the plugin's XML
//! format, TCP and UDP protocols, URLs kept in credentials, `manual` notices from the
//! `notifyEndpoints` step, `loglines`, and `https://` receivers.
//!
//! The timeline of one build, each notice sent synchronously on it (the build waits for the
//! receiver, or for `timeout_ms`; the receiver's status is ignored):
//!
//! 1. the build appears, running → QUEUED, then STARTED (`onStarted`);
//! 2. Pipeline `post` notices (still `building: true`, artifacts archived);
//! 3. result and duration set, `building: false` (freestyle: `inProgress` still true) →
//!    COMPLETED;
//! 4. `inProgress: false` → FINALIZED.
//!
//! Starting a build ([`Sim::add_build`](crate::Sim::add_build) with `building: true`) runs
//! step 1; finishing it ([`Sim::finish_build`](crate::Sim::finish_build)) runs 2-4; a build
//! added already finished runs all four, showing as running (without its artifacts) until its
//! STARTED notice has been sent. Every attempt is logged as a [`NoticeRecord`].

mod document;
mod http;
mod send;

use crate::model::SimError;
use crate::scenario::{BuildResult, BuildSpec};
use crate::server::Shared;
use send::{deliver, plan};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

pub use document::Phase;

/// Who sends a notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NoticeStyle {
    /// A Notification plugin endpoint (`HudsonNotificationProperty`).
    #[default]
    Plugin,
    /// The Pipeline itself, from `post { cleanup { httpRequest … } }`.
    PipelinePost,
}

/// Where and how build notices are sent (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Notifier {
    /// `plugin` (default) or `pipeline-post`.
    pub style: NoticeStyle,
    /// `http://` URL; `$VARS`/`${VARS}` expand from the build environment (`BUILD_NUMBER`,
    /// `JOB_NAME`, `BRANCH_NAME`, parameters, …). Plugin: user info becomes
    /// `Authorization: Basic` (of the raw text), an unresolved `$` skips the notice.
    pub url: String,
    /// Only jobs with these full names (stored names, case-insensitive) or inside these
    /// folders; `None`: every job.
    pub jobs: Option<Vec<String>>,
    /// Connect and read timeout in ms (plugin default 30000; pipeline-post default none).
    pub timeout_ms: Option<u64>,
    /// Plugin: `all` (default), `queued`, `started`, `completed`, `finalized`, `failed`,
    /// `failedAndFirstSuccess` or `manual`.
    pub event: String,
    /// Plugin: `json` (XML is not simulated).
    pub format: String,
    /// Plugin: attempts after a failed one (default 0).
    pub retries: u32,
    /// Plugin: regex a branch job's `BRANCH_NAME` must match; other jobs pass only `.*`.
    pub branch: String,
    /// Plugin: sent as `notes`.
    pub build_notes: Option<String>,
    /// Pipeline-post: extra request headers (`Authorization = "Bearer …"`, `X-Hook-Token`).
    pub headers: BTreeMap<String, String>,
    /// Pipeline-post: the JSON body template; default
    /// `{"job":"${JOB_NAME}","number":"${BUILD_NUMBER}","result":"${RESULT}","url":"${BUILD_URL}"}`.
    pub body: Option<Value>,
}

impl Default for Notifier {
    fn default() -> Self {
        Notifier {
            style: NoticeStyle::Plugin,
            url: String::new(),
            jobs: None,
            timeout_ms: None,
            event: "all".into(),
            format: "json".into(),
            retries: 0,
            branch: ".*".into(),
            build_notes: None,
            headers: BTreeMap::new(),
            body: None,
        }
    }
}

const EVENTS: [&str; 8] = [
    "all",
    "queued",
    "started",
    "completed",
    "finalized",
    "failed",
    "failedAndFirstSuccess",
    "manual",
];

impl Notifier {
    /// A Notification plugin endpoint for every phase.
    pub fn plugin(url: &str) -> Self {
        Notifier {
            url: url.into(),
            ..Default::default()
        }
    }

    /// A Pipeline `post` step POSTing the default body.
    pub fn pipeline_post(url: &str) -> Self {
        Notifier {
            style: NoticeStyle::PipelinePost,
            url: url.into(),
            ..Default::default()
        }
    }

    /// Sets the plugin's `event` filter (builder style).
    #[must_use]
    pub fn event(mut self, event: &str) -> Self {
        self.event = event.into();
        self
    }

    /// Sets the plugin's `retries` (builder style).
    #[must_use]
    pub fn retries(mut self, n: u32) -> Self {
        self.retries = n;
        self
    }

    /// Limits the notifier to these jobs or folders (builder style).
    #[must_use]
    pub fn jobs(mut self, jobs: &[&str]) -> Self {
        self.jobs = Some(jobs.iter().map(|j| j.to_string()).collect());
        self
    }

    /// Sets the timeout (builder style).
    #[must_use]
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout_ms = Some(d.as_millis() as u64);
        self
    }

    /// Adds a pipeline-post request header (builder style).
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }

    fn check(&self) -> Result<Option<regex::Regex>, String> {
        if self.url.trim().is_empty() {
            return Err("a notifier needs a url".into());
        }
        match self.style {
            NoticeStyle::Plugin => {
                if !EVENTS.contains(&self.event.as_str()) {
                    return Err(format!("unknown event {:?}; one of {EVENTS:?}", self.event));
                }
                if !self.format.eq_ignore_ascii_case("json") {
                    return Err(format!(
                        "format {:?} is not simulated (json only)",
                        self.format
                    ));
                }
                if !self.headers.is_empty() || self.body.is_some() {
                    return Err("the Notification plugin sends neither custom headers nor a custom body (use style = \"pipeline-post\")".into());
                }
                regex::Regex::new(&format!("^(?:{})$", self.branch))
                    .map(Some)
                    .map_err(|e| format!("bad branch regex: {e}"))
            }
            NoticeStyle::PipelinePost => Ok(None),
        }
    }

    fn applies_to(&self, full_name: &str) -> bool {
        self.jobs.as_ref().is_none_or(|jobs| {
            let name = full_name.to_lowercase();
            jobs.iter().any(|j| {
                let j = j.trim_matches('/').to_lowercase();
                name == j || name.starts_with(&format!("{j}/"))
            })
        })
    }

    /// The plugin's `Phase.isRun`.
    fn wants(
        &self,
        phase: Phase,
        result: Option<BuildResult>,
        previous: Option<BuildResult>,
    ) -> bool {
        let finalized = phase == Phase::Finalized;
        match self.event.as_str() {
            "all" => true,
            "failed" => finalized && result == Some(BuildResult::Failure),
            "failedAndFirstSuccess" => {
                finalized
                    && (result == Some(BuildResult::Failure)
                        || (result == Some(BuildResult::Success)
                            && previous == Some(BuildResult::Failure)))
            }
            "manual" => false,
            e => e == phase.as_str().to_lowercase(),
        }
    }
}

/// One installed notifier.
#[derive(Debug, Clone)]
struct Installed {
    id: u64,
    notifier: Notifier,
    /// The plugin's branch filter, anchored.
    branch: Option<regex::Regex>,
}

/// The installed notifiers.
#[derive(Debug, Default)]
pub(crate) struct NotifierSet {
    notifiers: Vec<Installed>,
    next_id: u64,
}

impl NotifierSet {
    pub(crate) fn add(&mut self, n: Notifier) -> Result<u64, String> {
        let branch = n.check()?;
        self.next_id += 1;
        self.notifiers.push(Installed {
            id: self.next_id,
            notifier: n,
            branch,
        });
        Ok(self.next_id)
    }

    pub(crate) fn remove(&mut self, id: u64) -> bool {
        let before = self.notifiers.len();
        self.notifiers.retain(|n| n.id != id);
        self.notifiers.len() != before
    }

    pub(crate) fn clear(&mut self) {
        self.notifiers.clear();
    }

    fn for_job(&self, full_name: &str) -> Vec<Installed> {
        self.notifiers
            .iter()
            .filter(|n| n.notifier.applies_to(full_name))
            .cloned()
            .collect()
    }
}

/// One attempt to deliver a notice (`GET /_sim/notices`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeRecord {
    /// Id of the notifier that sent it.
    pub notifier: u64,
    /// Plugin or pipeline-post.
    pub style: NoticeStyle,
    /// The plugin's phase (`None` for a pipeline-post notice).
    pub phase: Option<Phase>,
    /// Job full name.
    pub job: String,
    /// Build number.
    pub number: u64,
    /// The expanded URL, without user info.
    pub url: String,
    /// 1 for the first attempt; 0 when not sent at all (`error` says why).
    pub attempt: u32,
    /// Status the receiver answered.
    pub status: Option<u16>,
    /// Why the attempt failed (or why it was not made).
    pub error: Option<String>,
    /// The body sent.
    pub body: String,
    /// When the attempt started, epoch ms.
    pub at_ms: i64,
}

/// The canonical full name of `job` and the notifiers that apply to it.
fn notifiers_for(sh: &Shared, job: &str) -> Result<(String, Vec<Installed>), SimError> {
    let full = sh.model.read().unwrap().find(job)?.0.full_name;
    let targets = sh.notifiers.lock().unwrap().for_job(&full);
    Ok((full, targets))
}

/// Adds a build (the `add_build` command) and sends the notices of the steps it goes through.
pub(crate) fn add_build(sh: &Shared, job: &str, spec: BuildSpec) -> Result<u64, SimError> {
    let (full, targets) = notifiers_for(sh, job)?;
    if targets.is_empty() {
        return sh.model.write().unwrap().add_build(job, spec);
    }
    // Start it running: a finished spec's result, duration and artifacts come at its end.
    let running = BuildSpec {
        building: true,
        in_progress: None,
        duration: None,
        result: if spec.building { spec.result } else { None },
        artifacts: if spec.building {
            spec.artifacts.clone()
        } else {
            Vec::new()
        },
        ..spec.clone()
    };
    let number = sh.model.write().unwrap().add_build(&full, running)?;
    for phase in [Phase::Queued, Phase::Started] {
        let notices = plan(sh, &targets, &full, number, Some(phase), None)?;
        deliver(sh, notices);
    }
    if !spec.building {
        if !spec.artifacts.is_empty() {
            sh.model
                .write()
                .unwrap()
                .add_artifacts(&full, number, spec.artifacts.clone())?;
        }
        let result = spec.result.unwrap_or(BuildResult::Success);
        let duration = Some(spec.duration.unwrap_or(60_000));
        finish_with(sh, &full, &targets, number, result, duration)?;
    }
    Ok(number)
}

/// Finishes a running build (the `finish_build` command), sending the notices of steps 2-4.
pub(crate) fn finish_build(
    sh: &Shared,
    job: &str,
    number: u64,
    result: BuildResult,
    duration: Option<i64>,
) -> Result<(), SimError> {
    let (full, targets) = notifiers_for(sh, job)?;
    if targets.is_empty() {
        return sh
            .model
            .write()
            .unwrap()
            .finish_build(job, number, result, duration);
    }
    finish_with(sh, &full, &targets, number, result, duration)
}

fn finish_with(
    sh: &Shared,
    job: &str,
    targets: &[Installed],
    number: u64,
    result: BuildResult,
    duration: Option<i64>,
) -> Result<(), SimError> {
    let post = plan(sh, targets, job, number, None, Some(result))?;
    deliver(sh, post);
    sh.model
        .write()
        .unwrap()
        .complete_build(job, number, result, duration)?;
    let completed = plan(sh, targets, job, number, Some(Phase::Completed), None)?;
    deliver(sh, completed);
    sh.model.write().unwrap().finalize_build(job, number)?;
    let finalized = plan(sh, targets, job, number, Some(Phase::Finalized), None)?;
    deliver(sh, finalized);
    Ok(())
}
