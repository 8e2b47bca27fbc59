//! Build notices: the small JSON documents Jenkins POSTs when a build moves on, read into a
//! [`BuildNotice`] (which job, which build, how far it got).
//!
//! Two senders are understood:
//! - the Notification plugin (`notification`): its `JobState` document, `{"name", "url":
//!   "job/team/job/app/", "build": {"number", "phase", "full_url", "url", …}}`, one per phase
//!   (QUEUED, STARTED, COMPLETED, FINALIZED);
//! - a Pipeline that sends its own notice from a `post` block (`httpRequest` or `curl`): any JSON
//!   object naming the job by `job` (its full name, `env.JOB_NAME`) or `url` (`env.BUILD_URL` or a job
//!   URL), and the build by `number` (a number or a numeric string; taken from `url` when absent).
//!
//! Everything else in the documents (SCM, parameters, artifact URLs, log lines) is ignored; the worker
//! asks Jenkins itself, so a notice only says where to look. A document that says nothing usable is a
//! [`NoticeError`] naming the field and what was expected.

use serde_json::{Map, Value};
use url::Url;

use crate::format::layout::JobPath;

/// Who sent a notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeKind {
    /// The Notification plugin's `JobState` document.
    Plugin,
    /// A Pipeline's own JSON from a `post` step.
    Pipeline,
}

/// The Notification plugin's phases of a build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// About to start.
    Queued,
    /// Running.
    Started,
    /// Result set; Jenkins may still be finishing the build's record.
    Completed,
    /// Everything done.
    Finalized,
}

impl Phase {
    const ALL: [(&'static str, Phase); 4] = [
        ("QUEUED", Phase::Queued),
        ("STARTED", Phase::Started),
        ("COMPLETED", Phase::Completed),
        ("FINALIZED", Phase::Finalized),
    ];

    /// The name the plugin sends.
    pub fn as_str(self) -> &'static str {
        Phase::ALL
            .iter()
            .find(|(_, p)| *p == self)
            .map_or("", |(n, _)| n)
    }
}

/// What one notice says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildNotice {
    /// Who sent it.
    pub kind: NoticeKind,
    /// The plugin's phase (`None` for a Pipeline's notice).
    pub phase: Option<Phase>,
    /// The job.
    pub job: JobPath,
    /// The build, when the notice names it.
    pub number: Option<u64>,
    /// The absolute URL the notice carries (the plugin's `build.full_url`, a Pipeline's `url`), which
    /// names the controller as Jenkins' root URL spells it.
    pub url: Option<Url>,
}

impl BuildNotice {
    /// Whether the build may have finished, so that a look at the job can find something to mirror: a
    /// Pipeline sends its notice near its end, the plugin from COMPLETED on.
    pub fn may_be_done(&self) -> bool {
        !matches!(self.phase, Some(Phase::Queued | Phase::Started))
    }
}

/// Why a notice's body was refused (the endpoint answers 400 with this text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoticeError {
    /// The body is not JSON.
    #[error(
        "the body is not JSON ({0}); send the Notification plugin's JSON document or a JSON object such as \
         {{\"job\": \"team/app\", \"number\": 42}}"
    )]
    NotJson(String),
    /// The plugin's XML format.
    #[error(
        "the body is XML; set the Notification plugin endpoint's Format to JSON (jam reads only its JSON document)"
    )]
    Xml,
    /// JSON, but not an object.
    #[error(
        "the body is JSON but not an object; send {{\"job\": \"team/app\", \"number\": 42}} or the plugin's document"
    )]
    NotObject,
    /// A field has the wrong type or value.
    #[error("field '{field}': {problem}")]
    Field {
        /// The field, dotted (`build.number`).
        field: String,
        /// What is wrong and what was expected.
        problem: String,
    },
    /// Nothing names the job.
    #[error(
        "the notice names no job: give 'job' (its full name, e.g. env.JOB_NAME) or 'url' (env.BUILD_URL), or \
         send the Notification plugin's document, whose 'url' names it"
    )]
    NoJob,
}

fn field(field: &str, problem: impl Into<String>) -> NoticeError {
    NoticeError::Field {
        field: field.into(),
        problem: problem.into(),
    }
}

/// Reads a notice's body.
pub fn parse(body: &[u8]) -> Result<BuildNotice, NoticeError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| NoticeError::NotJson(format!("not UTF-8: {e}")))?
        .trim_start_matches('\u{feff}');
    if text.trim_start().starts_with('<') {
        return Err(NoticeError::Xml);
    }
    let value: Value =
        serde_json::from_str(text).map_err(|e| NoticeError::NotJson(e.to_string()))?;
    let Value::Object(top) = value else {
        return Err(NoticeError::NotObject);
    };
    match top.get("build") {
        Some(Value::Object(build)) => plugin(&top, build),
        Some(other) if !other.is_null() => Err(field(
            "build",
            format!("is {}, not the plugin's build object", kind_of(other)),
        )),
        _ => pipeline(&top),
    }
}

/// The plugin's `JobState`: `url` (relative job URL) and `build.{number, phase, full_url, url}`.
fn plugin(
    top: &Map<String, Value>,
    build: &Map<String, Value>,
) -> Result<BuildNotice, NoticeError> {
    let phase = match build.get("phase") {
        Some(Value::String(p)) => Phase::ALL
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(p))
            .map(|(_, ph)| *ph)
            .ok_or_else(|| {
                field(
                    "build.phase",
                    format!(
                        "'{p}' is not a phase; expected QUEUED, STARTED, COMPLETED or FINALIZED"
                    ),
                )
            })?,
        None => return Err(field("build.phase", "missing (the plugin always sends it)")),
        Some(v) => {
            return Err(field(
                "build.phase",
                format!("is {}, not a string", kind_of(v)),
            ));
        }
    };
    let number = match build.get("number") {
        Some(v) => Some(number("build.number", v)?),
        None => {
            return Err(field(
                "build.number",
                "missing (the plugin always sends it)",
            ));
        }
    };
    let full_url = absolute("build.full_url", build.get("full_url"))?;
    let job = [("url", top.get("url")), ("build.url", build.get("url"))]
        .into_iter()
        .find_map(|(name, v)| v.and_then(Value::as_str).map(|s| (name, s)))
        .map(|(name, s)| job_of_url(name, s))
        .or_else(|| {
            full_url
                .as_ref()
                .map(|u| job_of_url("build.full_url", u.path()))
        })
        .ok_or_else(|| {
            field(
                "url",
                "missing: the plugin's document names the job by its relative URL",
            )
        })??;
    Ok(BuildNotice {
        kind: NoticeKind::Plugin,
        phase: Some(phase),
        job,
        number,
        url: full_url,
    })
}

/// A Pipeline's own notice: `job` and/or `url`, and `number`.
fn pipeline(top: &Map<String, Value>) -> Result<BuildNotice, NoticeError> {
    let url = absolute("url", top.get("url"));
    let (job_from_url, number_from_url) = match &url {
        Ok(Some(u)) => match JobPath::from_url_path(u.path()) {
            Some(job) => {
                let n = number_after(u.path(), &job);
                (Some(job), n)
            }
            None => (None, None),
        },
        _ => (None, None),
    };
    let job = match top.get("job") {
        Some(Value::String(name)) => Some(job_of_name(name)?),
        None | Some(Value::Null) => None,
        Some(v) => {
            return Err(field(
                "job",
                format!("is {}, not the job's full name", kind_of(v)),
            ));
        }
    };
    // Without `job`, `url` must name one; with it, a `url` that is not Jenkins' (or null) is ignored.
    let url = match (url, &job) {
        (Err(e), None) => return Err(e),
        (Err(_), Some(_)) => None,
        (Ok(u), _) => u,
    };
    if job.is_none() && url.is_some() && job_from_url.is_none() {
        return Err(field(
            "url",
            format!(
                "'{}' is not a Jenkins job or build URL (…/job/NAME/…/NUMBER/)",
                url.as_ref().map(Url::as_str).unwrap_or_default()
            ),
        ));
    }
    let job = job_from_url.or(job).ok_or(NoticeError::NoJob)?;
    let number = match top.get("number") {
        None | Some(Value::Null) => number_from_url,
        Some(v) => Some(number("number", v)?),
    };
    Ok(BuildNotice {
        kind: NoticeKind::Pipeline,
        phase: None,
        job,
        number,
        url,
    })
}

/// A build number: a positive integer, or a string of one (`"${BUILD_NUMBER}"` expanded).
fn number(name: &str, v: &Value) -> Result<u64, NoticeError> {
    let n = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    n.filter(|n| *n > 0).ok_or_else(|| {
        field(
            name,
            format!("{} is not a build number (a positive integer)", v),
        )
    })
}

/// An absolute `http(s)` URL, when the field is present and not null.
fn absolute(name: &str, v: Option<&Value>) -> Result<Option<Url>, NoticeError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => match Url::parse(s) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(Some(u)),
            _ => Err(field(name, format!("'{s}' is not an absolute http(s) URL"))),
        },
        Some(v) => Err(field(name, format!("is {}, not a URL", kind_of(v)))),
    }
}

/// The job of a (relative or absolute) job or build URL.
fn job_of_url(name: &str, url: &str) -> Result<JobPath, NoticeError> {
    let path = Url::parse(url).map_or_else(|_| url.to_string(), |u| u.path().to_string());
    JobPath::from_url_path(&path).ok_or_else(|| {
        field(
            name,
            format!("'{url}' is not a Jenkins job URL (job/NAME/ or job/FOLDER/job/NAME/)"),
        )
    })
}

/// The job of a full name (`team/app`, a branch `app/feature%2Fx` as `env.JOB_NAME` spells it).
fn job_of_name(name: &str) -> Result<JobPath, NoticeError> {
    let names: Vec<&str> = name.trim().trim_matches('/').split('/').collect();
    if names.iter().any(|n| n.trim().is_empty()) {
        return Err(field(
            "job",
            format!("'{name}' is not a job's full name (NAME or FOLDER/NAME, as env.JOB_NAME)"),
        ));
    }
    Ok(JobPath::new(names))
}

/// The build number in a build URL's path, right after the job's segments.
fn number_after(path: &str, job: &JobPath) -> Option<u64> {
    let at = path.find(&job.url_path())? + job.url_path().len();
    path[at..]
        .split('/')
        .next()?
        .parse()
        .ok()
        .filter(|n| *n > 0)
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(names: &[&str]) -> JobPath {
        JobPath::new(names.iter().copied())
    }

    /// The plugin's FINALIZED document as API.md §10.5 shows it (Gson escapes `=` and `&`).
    const PLUGIN: &str = r#"{"name":"app","display_name":"app","url":"job/team/job/app/","build":{"full_url":"https://ci.example.com/job/team/job/app/42/","number":42,"queue_id":1187,"timestamp":1767226012345,"duration":73410,"phase":"FINALIZED","status":"SUCCESS","url":"job/team/job/app/42/","scm":{"url":"https://git.example.com/team/app.git","branch":"origin/main","commit":"9fceb02d0ae598e95dc970b74767f19372d61af8","changes":["src/main.rs"],"culprits":["alice"]},"parameters":{"TARGET":"linux-x64","Q":"a\u003db\u0026c"},"log":"","artifacts":{"dist/app.tar.gz":{"archive":"https://ci.example.com/job/team/job/app/42/artifact/dist/app.tar.gz"}}}}"#;

    #[test]
    fn the_plugins_document_names_job_build_phase_and_controller() {
        let n = parse(PLUGIN.as_bytes()).unwrap();
        assert_eq!(n.kind, NoticeKind::Plugin);
        assert_eq!(n.phase, Some(Phase::Finalized));
        assert_eq!(n.job, job(&["team", "app"]));
        assert_eq!(n.number, Some(42));
        assert_eq!(
            n.url.unwrap().as_str(),
            "https://ci.example.com/job/team/job/app/42/"
        );
        assert!(parse(PLUGIN.as_bytes()).unwrap().may_be_done());
        // STARTED, without a root URL (no full_url), a multibranch branch (encoded twice in URLs).
        let started = r#"{"name":"feature%2Fx","url":"job/app/job/feature%252Fx/","build":{"number":3,"phase":"STARTED","url":"job/app/job/feature%252Fx/3/","log":"","artifacts":{}}}"#;
        let n = parse(started.as_bytes()).unwrap();
        assert_eq!(n.job, job(&["app", "feature%2Fx"]));
        assert_eq!((n.number, n.url.is_none()), (Some(3), true));
        assert!(!n.may_be_done());
    }

    #[test]
    fn a_pipelines_notice_names_the_job_by_full_name_or_url() {
        // The default body of API.md §10.6, with and without a root URL.
        let n = parse(
            br#"{"job":"team/app","number":7,"result":"SUCCESS","url":"https://ci.example.com/jenkins/job/team/job/app/7/"}"#,
        )
        .unwrap();
        assert_eq!(
            (n.kind, n.phase, n.job.clone(), n.number),
            (NoticeKind::Pipeline, None, job(&["team", "app"]), Some(7))
        );
        assert!(n.url.is_some() && n.may_be_done());
        let n = parse(br#"{"job":"app/feature%2Fx","number":"12","result":"FAILURE","url":null}"#)
            .unwrap();
        assert_eq!(
            (n.job, n.number, n.url),
            (job(&["app", "feature%2Fx"]), Some(12), None)
        );
        // Only a URL: the number comes from it.
        let n = parse(br#"{"url":"http://jenkins:8080/job/a%20b/9/"}"#).unwrap();
        assert_eq!((n.job, n.number), (job(&["a b"]), Some(9)));
        // Only a job: look at it, whichever build.
        let n = parse(br#"{"job":"app"}"#).unwrap();
        assert_eq!((n.job, n.number), (job(&["app"]), None));
    }

    #[test]
    fn malformed_notices_say_what_is_wrong() {
        let cases: [(&[u8], &str); 12] = [
            (b"job=app", "the body is not JSON"),
            (b"", "the body is not JSON"),
            (b"<job><name>app</name></job>", "Format to JSON"),
            (b"[1,2]", "not an object"),
            (b"{}", "names no job"),
            (
                br#"{"job":"a//b","number":1}"#,
                "field 'job': 'a//b' is not a job's full name",
            ),
            (
                br#"{"job":"app","number":-3}"#,
                "field 'number': -3 is not a build number",
            ),
            (br#"{"job":"app","number":"five"}"#, "field 'number'"),
            (
                br#"{"url":"https://ci.example.com/view/all/"}"#,
                "field 'url': 'https://ci.example.com/view/all/' is not a Jenkins job",
            ),
            (
                br#"{"build":{"number":1,"phase":"DONE"},"url":"job/app/"}"#,
                "field 'build.phase': 'DONE' is not a phase",
            ),
            (
                br#"{"build":{"phase":"FINALIZED"},"url":"job/app/"}"#,
                "field 'build.number': missing",
            ),
            (
                br#"{"build":{"number":1,"phase":"FINALIZED"},"url":"view/x/"}"#,
                "field 'url': 'view/x/' is not a Jenkins job URL",
            ),
        ];
        for (body, want) in cases {
            let err = parse(body).unwrap_err().to_string();
            assert!(
                err.contains(want),
                "{}: {err}",
                String::from_utf8_lossy(body)
            );
        }
        assert!(matches!(parse(b"\xff\xfe"), Err(NoticeError::NotJson(_))));
        let err = parse(br#"{"build":"x"}"#).unwrap_err().to_string();
        assert!(err.contains("field 'build': is a string"), "{err}");
    }
}
