//! Turning a build's state into notices and delivering them: the plugin's per-endpoint
//! checks (`event`, unresolved `$VARS`, the branch filter), the request each style makes, and
//! `Phase.handle`'s retry loop, every attempt logged.

use super::document::{BuildFacts, expand};
use super::{Installed, NoticeRecord, NoticeStyle, Phase, http};
use crate::model::{SimError, now_ms};
use crate::scenario::{BuildResult, ItemKind};
use crate::server::Shared;
use std::time::Duration;

/// A notice ready to go.
pub(super) struct Notice {
    record: NoticeRecord,
    url: String,
    headers: Vec<(String, String)>,
    timeout: Option<Duration>,
    retries: u32,
    /// `Protocol.HTTP`'s ways (plugin notices): user info → `Authorization: Basic`, a 307
    /// re-POSTed to its `Location`.
    plugin_http: bool,
}

/// What the JDK's `HttpURLConnection` sends as `User-Agent`.
const JDK_USER_AGENT: &str = "Java/21.0.8";
/// What the http_request plugin's HTTP client sends.
const HTTP_REQUEST_USER_AGENT: &str = "Apache-HttpClient/5.4.3 (Java/21.0.8)";

fn owned(headers: &[(&str, &str)]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `Phase.handle`'s reasons to skip an endpoint: a `$` left in the expanded URL, a branch job
/// whose `BRANCH_NAME` the filter rejects, or a filter other than `.*` on a job without one.
fn skip_reason(
    n: &super::Notifier,
    branch: Option<&regex::Regex>,
    facts: &BuildFacts,
    url: &str,
) -> Option<String> {
    if url.contains('$') {
        return Some(format!("not sent: unresolved variable in {}", n.url));
    }
    match (&facts.branch_name, branch) {
        (Some(b), Some(re)) if !re.is_match(b) => Some(format!(
            "not sent: BRANCH_NAME {b:?} does not match {:?}",
            n.branch
        )),
        (None, _) if n.branch != ".*" => {
            Some("not sent: no BRANCH_NAME for the branch filter".to_string())
        }
        _ => None,
    }
}

/// The notices `targets` send for `phase` (or the pipeline-post ones when `phase` is `None`),
/// from the state of build `number` of `job` right now.
pub(super) fn plan(
    sh: &Shared,
    targets: &[Installed],
    job: &str,
    number: u64,
    phase: Option<Phase>,
    current: Option<BuildResult>,
) -> Result<Vec<Notice>, SimError> {
    let m = sh.model.read().unwrap();
    let (ctx, item) = m.find(job)?;
    let b = item
        .builds
        .get(&number)
        .ok_or_else(|| SimError::NotFound(format!("build {job} #{number}")))?;
    let facts = BuildFacts::of(&m, &ctx, item, b);
    drop(m);
    let mut out = Vec::new();
    for Installed {
        id,
        notifier: n,
        branch,
    } in targets
    {
        let style = n.style;
        let wanted = match (style, phase) {
            (NoticeStyle::Plugin, Some(p)) => n.wants(p, facts.result, facts.previous_result),
            (NoticeStyle::PipelinePost, None) => facts.kind == ItemKind::Pipeline,
            _ => false,
        };
        if !wanted {
            continue;
        }
        let checked_out = !matches!(phase, Some(Phase::Queued | Phase::Started));
        let env = facts.env(checked_out);
        let url = expand(&n.url, &env);
        let mut record = NoticeRecord {
            notifier: *id,
            style,
            phase,
            job: facts.full_name.clone(),
            number,
            url: without_userinfo(&url),
            attempt: 1,
            status: None,
            error: None,
            body: String::new(),
            at_ms: 0,
        };
        let (headers, timeout) = match style {
            NoticeStyle::Plugin => {
                if let Some(why) = skip_reason(n, branch.as_ref(), &facts, &url) {
                    record.attempt = 0;
                    record.error = Some(why);
                    record.at_ms = now_ms();
                    sh.notices.lock().unwrap().push(record);
                    continue;
                }
                let p = phase.expect("plugin notices have a phase");
                let timestamp = match p {
                    // The queue is not simulated: no time spent in it.
                    Phase::Queued | Phase::Finalized => now_ms(),
                    Phase::Started => facts.timestamp,
                    Phase::Completed => facts.timestamp + facts.duration,
                };
                record.body = facts.plugin_document(p, timestamp, n.build_notes.as_deref());
                let headers = [
                    ("Content-Type", "application/json;charset=UTF-8"),
                    ("User-Agent", JDK_USER_AGENT),
                    ("Accept", "text/html, image/gif, image/jpeg, */*; q=0.2"),
                    ("Connection", "keep-alive"),
                ];
                let timeout = Duration::from_millis(n.timeout_ms.unwrap_or(30_000));
                (owned(&headers), Some(timeout))
            }
            NoticeStyle::PipelinePost => {
                let result = current.unwrap_or(BuildResult::Success);
                record.body = facts.pipeline_body(n.body.as_ref(), result);
                let mut headers = owned(&[("Content-Type", "application/json; charset=UTF-8")]);
                headers.extend(n.headers.iter().map(|(k, v)| (k.clone(), v.clone())));
                headers.extend(owned(&[
                    ("User-Agent", HTTP_REQUEST_USER_AGENT),
                    ("Connection", "keep-alive"),
                ]));
                let timeout = n.timeout_ms.filter(|t| *t > 0).map(Duration::from_millis);
                (headers, timeout)
            }
        };
        let plugin = style == NoticeStyle::Plugin;
        out.push(Notice {
            record,
            url,
            headers,
            timeout,
            retries: if plugin { n.retries } else { 0 },
            plugin_http: plugin,
        });
    }
    Ok(out)
}

/// One POST as `Protocol.HTTP` makes it: user info → `Authorization: Basic`, a 307 re-POSTed
/// to its `Location`.
fn post_once(n: &Notice, url: &str, depth: u32) -> Result<u16, String> {
    let t = http::parse(url)?;
    let mut headers = n.headers.clone();
    if n.plugin_http
        && let Some(u) = &t.userinfo
    {
        headers.push(("Authorization".into(), http::basic_from_userinfo(u)));
    }
    let answer = http::post(&t, &headers, n.record.body.as_bytes(), n.timeout)?;
    match answer.location {
        Some(loc) if n.plugin_http && answer.status == 307 && depth < 10 => {
            post_once(n, &loc, depth + 1)
        }
        _ => Ok(answer.status),
    }
}

fn without_userinfo(url: &str) -> String {
    match http::parse(url) {
        Ok(http::Target {
            userinfo: Some(u), ..
        }) => url.replacen(&format!("{u}@"), "", 1),
        _ => url.to_string(),
    }
}

/// Sends `notices` in order, each with its retries, logging every attempt.
pub(super) fn deliver(sh: &Shared, notices: Vec<Notice>) {
    for n in notices {
        // `Phase.handle`'s loop: `failed` is never reset, so once an attempt failed every
        // remaining try is made, even after a success.
        let mut tries_remaining = i64::from(n.retries);
        let mut failed = false;
        let mut attempt = 1;
        loop {
            let mut rec = n.record.clone();
            rec.attempt = attempt;
            rec.at_ms = now_ms();
            match post_once(&n, &n.url, 0) {
                Ok(status) => rec.status = Some(status),
                Err(e) => {
                    failed = true;
                    rec.error = Some(e);
                }
            }
            sh.notices.lock().unwrap().push(rec);
            if !failed {
                break;
            }
            tries_remaining -= 1;
            if tries_remaining < 0 {
                break;
            }
            attempt += 1;
        }
    }
}
