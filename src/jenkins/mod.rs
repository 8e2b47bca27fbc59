//! The Jenkins API client jam uses: `tree=` queries, preemptive Basic auth with an API token, bounded
//! concurrency, retries with backoff and jitter, and artifact downloads as byte streams.
//!
//! Every URL is built from the configured base URL and the job's item names (never from the `url` fields
//! Jenkins returns, which come from its configured root URL and may name a host jam cannot reach). Change
//! detection costs one request per poll for the whole controller ([`JenkinsClient::poll`]); per-job and
//! per-build queries happen only for jobs that changed.
//!
//! [`notice`] reads the build notices Jenkins sends (the Notification plugin, a Pipeline `post` step).
//!
//! Errors are classified so the caller can act: a 401 means the token is wrong or revoked and is never
//! retried; 403/404 name the URL; 5xx, 429 and connection errors are retried with exponential backoff and
//! full jitter, honouring `Retry-After`. Error bodies are HTML and are never parsed as JSON.

mod error;
pub mod model;
pub mod notice;
pub mod stapler;

pub use error::JenkinsError;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use reqwest::{StatusCode, header};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use url::Url;

use crate::{
    config::JenkinsConfig,
    format::layout::JobPath,
    metrics::{Collect, Exposition},
    retry::RetryPolicy,
};
use model::*;

/// Counters of requests sent, by outcome (read by metrics and tests).
#[derive(Debug, Default)]
pub struct RequestStats {
    /// Requests sent (each attempt counts).
    pub sent: AtomicU64,
    /// Attempts that were retried.
    pub retries: AtomicU64,
    /// Answers by HTTP status; 0 counts attempts that got no answer (connection error, timeout).
    statuses: std::sync::Mutex<std::collections::BTreeMap<u16, u64>>,
    /// The controller's `X-Jenkins` header in the last JSON answer that had one.
    version: std::sync::Mutex<Option<String>>,
}

impl RequestStats {
    fn record_status(&self, status: u16) {
        *self
            .statuses
            .lock()
            .expect("stats lock")
            .entry(status)
            .or_default() += 1;
    }

    fn saw_version(&self, headers: &header::HeaderMap) {
        if let Some(v) = headers.get("X-Jenkins").and_then(|v| v.to_str().ok()) {
            *self.version.lock().expect("stats lock") = Some(v.to_string());
        }
    }

    /// The controller's version (`X-Jenkins`) as last seen on a JSON answer.
    pub fn controller_version(&self) -> Option<String> {
        self.version.lock().expect("stats lock").clone()
    }

    /// Attempts by HTTP status (0: no answer).
    pub fn by_status(&self) -> std::collections::BTreeMap<u16, u64> {
        self.statuses.lock().expect("stats lock").clone()
    }
}

/// A client for one controller.
#[derive(Clone)]
pub struct JenkinsClient {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    base: Url,
    user: String,
    token: SecretString,
    http: reqwest::Client,
    api_timeout: Duration,
    /// Attempts and waits for one request.
    retry: RetryPolicy,
    /// Bounds requests in flight to this controller; a download holds its permit until its body is read.
    limit: Arc<Semaphore>,
    stats: RequestStats,
}

impl std::fmt::Debug for JenkinsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JenkinsClient")
            .field("name", &self.inner.name)
            .field("url", &self.inner.base.as_str())
            .field("user", &self.inner.user)
            .finish_non_exhaustive()
    }
}

/// A streaming artifact download.
pub struct Download {
    /// `Content-Length`, when Jenkins (or the redirect target) sent one.
    pub content_length: Option<u64>,
    /// The final URL (after redirects), for messages; query strings (presigned signatures) are removed.
    pub url: String,
    /// The body; ends with an error if the connection breaks or Jenkins sends fewer bytes than promised.
    pub body: std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, JenkinsError>> + Send>>,
}

/// A download's body with the request permit it holds while Jenkins sends: the permit is released when
/// the body ends or fails, not only when the stream is dropped.
struct Permitted {
    body: std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, JenkinsError>> + Send>>,
    permit: Option<OwnedSemaphorePermit>,
}

impl Stream for Permitted {
    type Item = Result<Bytes, JenkinsError>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let next = self.body.as_mut().poll_next(cx);
        if matches!(next, std::task::Poll::Ready(None | Some(Err(_)))) {
            self.permit = None;
        }
        next
    }
}

/// Removes credentials and the query string (which carries presigned signatures on redirect targets, and
/// only the `tree` on API calls) from a URL for messages.
pub fn redact_url(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.to_string()
}

impl JenkinsClient {
    /// Builds a client for a configured controller.
    pub fn new(cfg: &JenkinsConfig) -> Result<JenkinsClient, JenkinsError> {
        let setup = |message: String| JenkinsError::Setup {
            url: cfg.url.to_string(),
            message,
        };
        let mut b = reqwest::Client::builder()
            .user_agent(concat!("jam/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(cfg.connect_timeout)
            .read_timeout(cfg.read_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::limited(5))
            .gzip(true);
        if let Some(ca) = &cfg.ca_bundle {
            let pem = std::fs::read(ca)
                .map_err(|e| setup(format!("cannot read ca_bundle '{}': {e}", ca.display())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                setup(format!(
                    "ca_bundle '{}' is not a PEM bundle: {e}",
                    ca.display()
                ))
            })?;
            b = b.tls_certs_merge(certs);
        }
        if crate::config::is_loopback(&cfg.url) {
            // Never route loopback traffic through a proxy from the environment.
            b = b.no_proxy();
        } else if cfg.url.scheme() == "http" {
            tracing::warn!(
                controller = %cfg.name,
                url = %cfg.url,
                "sending the API token in clear text over plain HTTP (allow_insecure_http is set)"
            );
        }
        let http = b.build().map_err(|e| setup(e.to_string()))?;
        Ok(JenkinsClient {
            inner: Arc::new(Inner {
                name: cfg.name.clone(),
                base: cfg.url.clone(),
                user: cfg.user.clone(),
                token: cfg.token.clone(),
                http,
                api_timeout: cfg.api_timeout,
                retry: RetryPolicy::new(
                    cfg.retries.max(1),
                    Duration::from_millis(500),
                    Duration::from_secs(60),
                ),
                limit: Arc::new(Semaphore::new(cfg.max_requests)),
                stats: RequestStats::default(),
            }),
        })
    }

    /// Shortens retry delays (tests).
    pub fn with_backoff(mut self, first: Duration, cap: Duration) -> JenkinsClient {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.retry.first = first;
            inner.retry.cap = cap;
        }
        self
    }

    /// The source name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The base URL.
    pub fn base(&self) -> &Url {
        &self.inner.base
    }

    /// Request counters.
    pub fn stats(&self) -> &RequestStats {
        &self.inner.stats
    }

    /// The URL of a job: `<base>job/<seg>/…/`.
    pub fn job_url(&self, job: &JobPath) -> Url {
        self.join(&job.url_path())
    }

    /// The URL of a build (a number or a permalink name): `<job url><N>/`.
    pub fn build_url(&self, job: &JobPath, build: &str) -> Url {
        self.join(&format!("{}{}/", job.url_path(), build))
    }

    /// The download URL of an artifact, each path segment encoded as Jenkins does.
    pub fn artifact_url(&self, job: &JobPath, build: &str, relative_path: &str) -> Url {
        let enc: Vec<String> = relative_path
            .split('/')
            .map(crate::format::layout::raw_encode)
            .collect();
        self.join(&format!(
            "{}{}/artifact/{}",
            job.url_path(),
            build,
            enc.join("/")
        ))
    }

    fn join(&self, rel: &str) -> Url {
        // The base ends with '/', and `rel` holds only encoded segments, so this cannot escape the base.
        self.inner
            .base
            .join(rel)
            .expect("encoded relative URL joins")
    }

    fn api_url(&self, rel: &str, tree: &str) -> Url {
        let mut u = self.join(&format!("{rel}api/json"));
        u.query_pairs_mut().append_pair("tree", tree);
        u
    }

    /// One change-detection request: every job's newest and newest-finished build numbers, recursing
    /// through folders `depth` levels.
    pub async fn poll(&self, depth: usize) -> Result<PollResult, JenkinsError> {
        let root: PollRoot = self.get_json(self.api_url("", &poll_tree(depth))).await?;
        Ok(root.flatten())
    }

    /// A job's newest (up to 100) builds and its oldest retained build.
    pub async fn job_builds(&self, job: &JobPath) -> Result<JobBuilds, JenkinsError> {
        self.get_json(self.api_url(&job.url_path(), JOB_BUILDS_TREE))
            .await
    }

    /// A page of a job's older builds from `allBuilds` (index `from` inclusive to `to` exclusive).
    pub async fn older_builds(
        &self,
        job: &JobPath,
        from: usize,
        to: usize,
    ) -> Result<Vec<BuildListEntry>, JenkinsError> {
        let page: JobBuilds = self
            .get_json(self.api_url(&job.url_path(), &all_builds_tree(from, to)))
            .await?;
        Ok(page.all_builds.unwrap_or_default())
    }

    /// A build's details: result, times, artifacts, fingerprints, parameters, causes, git data.
    pub async fn build(&self, job: &JobPath, number: u64) -> Result<BuildDetails, JenkinsError> {
        self.get_json(self.api_url(&format!("{}{number}/", job.url_path()), BUILD_TREE))
            .await
    }

    /// The number a permalink (`lastSuccessfulBuild`, …) names; `None` when it names no build.
    pub async fn permalink(&self, job: &JobPath, link: &str) -> Result<Option<u64>, JenkinsError> {
        let url = self.api_url(&format!("{}{link}/", job.url_path()), "number");
        match self.get_json::<BuildRef>(url).await {
            Ok(b) => Ok(Some(b.number)),
            Err(JenkinsError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Who the controller thinks jam is.
    pub async fn who_am_i(&self) -> Result<WhoAmI, JenkinsError> {
        self.get_json(self.api_url("whoAmI/", "name,authenticated,anonymous"))
            .await
    }

    /// GETs JSON with retries; the body is parsed only for 200 responses with a JSON content type. A body
    /// that breaks off is fetched again; one larger than [`MAX_JSON_BYTES`] is refused. Failed sends and
    /// broken bodies share one budget of attempts (`jenkins.retries`).
    pub async fn get_json<T: DeserializeOwned>(&self, url: Url) -> Result<T, JenkinsError> {
        let shown = redact_url(&url);
        let mut attempt = 0;
        loop {
            let (resp, _permit) = self
                .send_with_permit(&url, Some(self.inner.api_timeout), &mut attempt)
                .await?;
            self.inner.stats.saw_version(resp.headers());
            let ctype = resp
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            if !ctype.contains("json") {
                return Err(JenkinsError::BadResponse {
                    url: shown,
                    message: format!(
                        "expected JSON but got '{}' (is the URL a Jenkins controller, or is a login page or proxy in the way?)",
                        if ctype.is_empty() {
                            "no content type"
                        } else {
                            &ctype
                        }
                    ),
                });
            }
            let body = match read_limited(resp, MAX_JSON_BYTES).await {
                Ok(body) => body,
                Err(BodyError::TooLarge) => {
                    return Err(JenkinsError::BadResponse {
                        url: shown,
                        message: format!(
                            "the JSON answer is larger than {} MiB; narrow the job filter or lower folder_depth",
                            MAX_JSON_BYTES >> 20
                        ),
                    });
                }
                Err(BodyError::Read(e)) if self.inner.retry.allows_another(attempt) => {
                    let delay = self.inner.retry.delay(attempt, None);
                    self.inner.stats.retries.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(controller = %self.inner.name, url = %shown, attempt, error = %describe(&e), "JSON answer broke off; retrying");
                    tokio::time::sleep(delay).await;
                    continue;
                }
                Err(BodyError::Read(e)) => {
                    return Err(JenkinsError::Transport {
                        url: shown,
                        message: format!("reading the answer: {}", describe(&e)),
                        attempts: attempt,
                    });
                }
            };
            match serde_json::from_slice(&body) {
                Ok(v) => return Ok(v),
                // A body that ends mid-document was cut short on the way: fetch it again.
                Err(e) if e.is_eof() && self.inner.retry.allows_another(attempt) => {
                    tracing::warn!(controller = %self.inner.name, url = %shown, attempt, "JSON answer ends early; retrying");
                    tokio::time::sleep(self.inner.retry.delay(attempt, None)).await;
                }
                Err(e) => {
                    return Err(JenkinsError::BadResponse {
                        url: shown,
                        message: format!("JSON does not have the expected shape: {e}"),
                    });
                }
            }
        }
    }

    /// Starts an artifact download: follows redirects (without `Authorization` to other hosts), checks the
    /// status, and returns the body as a stream that fails if it ends short of `Content-Length`. The
    /// returned stream holds one of the controller's request permits while Jenkins sends: until the body
    /// has ended (or failed), or the stream is dropped. So a small artifact whose bytes have all arrived
    /// frees its slot toward Jenkins while the store still writes it, and its connection goes back to the
    /// client's pool for the next request.
    pub async fn download(&self, url: &Url) -> Result<Download, JenkinsError> {
        let (resp, permit) = self.send_with_permit(url, None, &mut 0).await?;
        let content_length = resp
            .content_length()
            .filter(|_| resp.headers().get(header::CONTENT_ENCODING).is_none());
        let final_url = redact_url(resp.url());
        let shown = final_url.clone();
        let mut received = 0u64;
        let body = resp.bytes_stream().map(move |r| match r {
            Ok(b) => {
                received += b.len() as u64;
                Ok(b)
            }
            Err(e) => Err(JenkinsError::Transport {
                url: shown.clone(),
                message: format!("download broke after {received} bytes: {}", describe(&e)),
                attempts: 1,
            }),
        });
        Ok(Download {
            content_length,
            url: final_url,
            body: Box::pin(Permitted {
                body: Box::pin(body),
                permit,
            }),
        })
    }

    /// Sends a GET with retries, counting in `attempt` the attempts made so far (the caller's earlier
    /// attempts at the same request included, so a retried body does not get a fresh budget). The permit
    /// bounds concurrency toward the controller; it is released during backoff sleeps and taken again for
    /// the next attempt.
    async fn send_with_permit(
        &self,
        url: &Url,
        timeout: Option<Duration>,
        attempt: &mut u32,
    ) -> Result<(reqwest::Response, Option<OwnedSemaphorePermit>), JenkinsError> {
        let inner = &self.inner;
        let shown = redact_url(url);
        let mut permit = None;
        loop {
            *attempt += 1;
            let attempt = *attempt;
            if permit.is_none() {
                permit = Some(
                    inner
                        .limit
                        .clone()
                        .acquire_owned()
                        .await
                        .expect("semaphore open"),
                );
            }
            let mut req = inner
                .http
                .get(url.clone())
                .basic_auth(&inner.user, Some(inner.token.expose_secret()));
            if let Some(t) = timeout {
                req = req.timeout(t);
            }
            inner.stats.sent.fetch_add(1, Ordering::Relaxed);
            tracing::trace!(controller = %inner.name, url = %shown, attempt, "GET");
            let sent = req.send().await;
            inner.stats.record_status(match &sent {
                Ok(resp) => resp.status().as_u16(),
                Err(_) => 0,
            });
            let (retry_after, failure) = match sent {
                Ok(resp) => {
                    let status = resp.status();
                    if status.is_success() {
                        return Ok((resp, permit));
                    }
                    match status {
                        StatusCode::UNAUTHORIZED => {
                            return Err(JenkinsError::Unauthorized {
                                url: inner.base.to_string(),
                                user: inner.user.clone(),
                            });
                        }
                        StatusCode::FORBIDDEN => {
                            let who = resp
                                .headers()
                                .get("x-you-are-authenticated-as")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("unknown")
                                .to_string();
                            return Err(JenkinsError::Forbidden { url: shown, who });
                        }
                        StatusCode::NOT_FOUND | StatusCode::GONE => {
                            return Err(JenkinsError::NotFound { url: shown });
                        }
                        s if s.is_server_error()
                            || s == StatusCode::TOO_MANY_REQUESTS
                            || s == StatusCode::REQUEST_TIMEOUT =>
                        {
                            let ra = crate::retry::retry_after(resp.headers());
                            (
                                ra,
                                JenkinsError::Status {
                                    url: shown.clone(),
                                    status: s.as_u16(),
                                    attempts: attempt,
                                },
                            )
                        }
                        s => {
                            return Err(JenkinsError::Status {
                                url: shown,
                                status: s.as_u16(),
                                attempts: attempt,
                            });
                        }
                    }
                }
                Err(e) => (
                    None,
                    JenkinsError::Transport {
                        url: shown.clone(),
                        message: describe(&e),
                        attempts: attempt,
                    },
                ),
            };
            if !inner.retry.allows_another(attempt) {
                return Err(failure);
            }
            let delay = inner.retry.delay(attempt, retry_after);
            inner.stats.retries.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                controller = %inner.name,
                url = %shown,
                attempt,
                delay_ms = delay.as_millis() as u64,
                error = %failure,
                "Jenkins request failed; retrying"
            );
            permit = None; // let others use the slot while this request waits
            tokio::time::sleep(delay).await;
        }
    }
}

impl Collect for JenkinsClient {
    fn collect(&self, out: &mut Exposition) {
        let name = self.name();
        let requests = out.family(
            "jam_jenkins_requests_total",
            "counter",
            "Requests sent to Jenkins (each attempt), by controller and HTTP status (\"error\": no answer).",
        );
        for (status, n) in self.stats().by_status() {
            let status = if status == 0 {
                "error".to_string()
            } else {
                status.to_string()
            };
            requests.sample("", &[("controller", name), ("status", &status)], n);
        }
        out.family(
            "jam_jenkins_retries_total",
            "counter",
            "Jenkins requests retried after a 5xx, 429, timeout or connection error, by controller.",
        )
        .sample(
            "",
            &[("controller", name)],
            self.stats().retries.load(Ordering::Relaxed),
        );
    }
}

/// The largest JSON answer jam reads (a poll of thousands of jobs is a few MiB).
pub const MAX_JSON_BYTES: usize = 256 << 20;

enum BodyError {
    TooLarge,
    Read(reqwest::Error),
}

async fn read_limited(resp: reqwest::Response, limit: usize) -> Result<Vec<u8>, BodyError> {
    if resp.content_length().is_some_and(|l| l > limit as u64) {
        return Err(BodyError::TooLarge);
    }
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(BodyError::Read)?;
        if out.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Describes a reqwest error without its URL's query or credentials.
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "body error"
    } else if e.is_redirect() {
        "too many redirects"
    } else {
        "request failed"
    };
    match std::error::Error::source(e) {
        Some(source) => format!("{kind}: {}", crate::chain::error_chain(source)),
        None => kind.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_drops_query_and_userinfo() {
        let u = Url::parse("https://u:secret@s3.example/b/k?X-Amz-Signature=abc").unwrap();
        let r = redact_url(&u);
        assert!(!r.contains("secret") && !r.contains("abc"), "{r}");
    }
}
