//! Fault injection.
//!
//! A [`Fault`] matches requests (by route kind, raw path prefix or regex, method) and does one
//! thing to them: answer a status instead (`500`, `502`, `503`, `429` + `Retry-After`, …), add
//! latency, or damage the body (stall, reset the connection, end early, flip bytes). `times`
//! limits how many requests it affects and `skip` lets the first matching requests through.
//!
//! For every request the first matching status fault and the first matching body fault apply,
//! plus the sum of all matching latency faults. Faults are checked before authentication, like
//! a misbehaving proxy in front of Jenkins. Control requests (`/_sim/…`) are never faulted.

use bytes::Bytes;
use futures::{StreamExt, stream::BoxStream};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Which kind of route a request hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RouteKind {
    /// Every request.
    Any,
    /// `…/api/json` (and other API endpoints).
    Api,
    /// `…/artifact/…` on the controller.
    Artifact,
    /// Requests to the fake S3 listener.
    S3,
    /// Requests to the resource-root listener.
    ResourceRoot,
    /// Anything else on the controller (HTML pages, `/health`, …).
    Other,
}

/// What a fault does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum FaultAction {
    /// Answer `status` with an HTML body; `retry_after` (seconds) adds `Retry-After`.
    Status {
        /// HTTP status code.
        status: u16,
        /// `Retry-After` seconds.
        #[serde(default)]
        retry_after: Option<u64>,
    },
    /// Wait before answering.
    Latency {
        /// Milliseconds.
        ms: u64,
    },
    /// Send headers and `after_bytes` of the body, then stop sending (for `ms`
    /// milliseconds, then continue; forever when `None`).
    Stall {
        /// Bytes sent before the stall.
        after_bytes: u64,
        /// Stall length; `None` = forever.
        #[serde(default)]
        ms: Option<u64>,
    },
    /// Abort the connection after `after_bytes` of the body.
    Reset {
        /// Bytes sent before the reset.
        after_bytes: u64,
    },
    /// End the body cleanly after `after_bytes`, short of `Content-Length`.
    Short {
        /// Bytes sent.
        after_bytes: u64,
    },
    /// Flip (`xor 0xFF`) `count` bytes of the body starting at body offset `offset`.
    Corrupt {
        /// First flipped byte (offset within the response body).
        #[serde(default)]
        offset: u64,
        /// Number of flipped bytes (default 1).
        #[serde(default = "one")]
        count: u64,
    },
}

fn one() -> u64 {
    1
}

impl FaultAction {
    pub(crate) fn is_body(&self) -> bool {
        matches!(
            self,
            FaultAction::Stall { .. }
                | FaultAction::Reset { .. }
                | FaultAction::Short { .. }
                | FaultAction::Corrupt { .. }
        )
    }
}

/// A fault: which requests, what happens, how often.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// Route kind matched (default: any).
    #[serde(default = "any")]
    pub kind: RouteKind,
    /// Raw request path (without query) must start with this.
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// Raw request path (with `?query` when present) must match this regex.
    #[serde(default)]
    pub path_regex: Option<String>,
    /// HTTP method (e.g. `GET`, `HEAD`).
    #[serde(default)]
    pub method: Option<String>,
    /// What happens.
    pub action: FaultAction,
    /// How many requests it affects (`None`: all).
    #[serde(default)]
    pub times: Option<u32>,
    /// Let this many matching requests through first.
    #[serde(default)]
    pub skip: u32,
}

fn any() -> RouteKind {
    RouteKind::Any
}

impl Fault {
    /// A fault doing `action` to every request.
    pub fn new(action: FaultAction) -> Self {
        Fault {
            kind: RouteKind::Any,
            path_prefix: None,
            path_regex: None,
            method: None,
            action,
            times: None,
            skip: 0,
        }
    }

    /// Answer `status` (HTML body).
    pub fn status(status: u16) -> Self {
        Self::new(FaultAction::Status {
            status,
            retry_after: None,
        })
    }

    /// Answer 429 with `Retry-After: secs`.
    pub fn too_many_requests(retry_after_secs: u64) -> Self {
        Self::new(FaultAction::Status {
            status: 429,
            retry_after: Some(retry_after_secs),
        })
    }

    /// Add latency.
    pub fn latency(d: Duration) -> Self {
        Self::new(FaultAction::Latency {
            ms: d.as_millis() as u64,
        })
    }

    /// Stall the body forever after `after_bytes`.
    pub fn stall_after(after_bytes: u64) -> Self {
        Self::new(FaultAction::Stall {
            after_bytes,
            ms: None,
        })
    }

    /// Reset the connection after `after_bytes` of body.
    pub fn reset_after(after_bytes: u64) -> Self {
        Self::new(FaultAction::Reset { after_bytes })
    }

    /// End the body after `after_bytes` (short of `Content-Length`).
    pub fn short_body(after_bytes: u64) -> Self {
        Self::new(FaultAction::Short { after_bytes })
    }

    /// Flip one byte at body offset `offset`.
    pub fn corrupt_at(offset: u64) -> Self {
        Self::new(FaultAction::Corrupt { offset, count: 1 })
    }

    /// Only on routes of `kind` (builder style).
    #[must_use]
    pub fn on(mut self, kind: RouteKind) -> Self {
        self.kind = kind;
        self
    }

    /// Only on raw paths starting with `prefix` (builder style).
    #[must_use]
    pub fn path_prefix(mut self, prefix: &str) -> Self {
        self.path_prefix = Some(prefix.into());
        self
    }

    /// Only on raw paths (plus `?query`) matching `regex` (builder style).
    #[must_use]
    pub fn path_regex(mut self, regex: &str) -> Self {
        self.path_regex = Some(regex.into());
        self
    }

    /// Only for `method` (builder style).
    #[must_use]
    pub fn method(mut self, method: &str) -> Self {
        self.method = Some(method.to_ascii_uppercase());
        self
    }

    /// Only the next `n` matching requests (builder style).
    #[must_use]
    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }

    /// Let `n` matching requests through first (builder style).
    #[must_use]
    pub fn skip(mut self, n: u32) -> Self {
        self.skip = n;
        self
    }
}

/// An installed fault.
#[derive(Debug)]
pub(crate) struct ActiveFault {
    pub id: u64,
    pub fault: Fault,
    pub regex: Option<regex::Regex>,
}

/// What the faults decided for one request.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    pub latency: Duration,
    pub status: Option<(u16, Option<u64>)>,
    pub body: Option<FaultAction>,
}

impl Plan {
    pub(crate) fn is_empty(&self) -> bool {
        self.latency.is_zero() && self.status.is_none() && self.body.is_none()
    }
}

/// The installed faults.
#[derive(Debug, Default)]
pub(crate) struct FaultSet {
    pub faults: Vec<ActiveFault>,
    pub next_id: u64,
}

impl FaultSet {
    pub(crate) fn add(&mut self, fault: Fault) -> Result<u64, String> {
        let regex = match &fault.path_regex {
            Some(r) => Some(regex::Regex::new(r).map_err(|e| format!("bad path_regex: {e}"))?),
            None => None,
        };
        self.next_id += 1;
        self.faults.push(ActiveFault {
            id: self.next_id,
            fault,
            regex,
        });
        Ok(self.next_id)
    }

    pub(crate) fn plan(
        &mut self,
        kind: RouteKind,
        method: &str,
        path: &str,
        query: Option<&str>,
    ) -> Plan {
        let mut plan = Plan::default();
        if self.faults.is_empty() {
            return plan;
        }
        let full = match query {
            Some(q) => format!("{path}?{q}"),
            None => path.to_string(),
        };
        for af in &mut self.faults {
            let f = &mut af.fault;
            if f.kind != RouteKind::Any && f.kind != kind {
                continue;
            }
            if f.path_prefix
                .as_deref()
                .is_some_and(|p| !path.starts_with(p))
            {
                continue;
            }
            if af.regex.as_ref().is_some_and(|r| !r.is_match(&full)) {
                continue;
            }
            if f.method
                .as_deref()
                .is_some_and(|m| !m.eq_ignore_ascii_case(method))
            {
                continue;
            }
            if f.times == Some(0) {
                continue;
            }
            let wanted = match &f.action {
                FaultAction::Latency { .. } => true,
                FaultAction::Status { .. } => plan.status.is_none(),
                a => a.is_body() && plan.body.is_none(),
            };
            if !wanted {
                continue;
            }
            if f.skip > 0 {
                f.skip -= 1;
                continue;
            }
            if let Some(t) = &mut f.times {
                *t -= 1;
            }
            match &f.action {
                FaultAction::Latency { ms } => plan.latency += Duration::from_millis(*ms),
                FaultAction::Status {
                    status,
                    retry_after,
                } => plan.status = Some((*status, *retry_after)),
                a => plan.body = Some(a.clone()),
            }
        }
        self.faults.retain(|f| f.fault.times != Some(0));
        plan
    }
}

/// A response body as a stream of chunks.
pub(crate) type BodyStream = BoxStream<'static, Result<Bytes, std::io::Error>>;

/// Applies a body fault to a body stream.
pub(crate) fn damage(body: BodyStream, action: FaultAction) -> BodyStream {
    match action {
        FaultAction::Corrupt { offset, count } => {
            let mut pos = 0u64;
            body.map(move |r| {
                r.map(|chunk| {
                    let start = pos;
                    let end = pos + chunk.len() as u64;
                    pos = end;
                    let (lo, hi) = (offset.max(start), offset.saturating_add(count).min(end));
                    if lo >= hi {
                        return chunk;
                    }
                    let mut v = chunk.to_vec();
                    for i in lo..hi {
                        v[(i - start) as usize] ^= 0xFF;
                    }
                    Bytes::from(v)
                })
            })
            .boxed()
        }
        FaultAction::Stall { after_bytes, .. }
        | FaultAction::Reset { after_bytes }
        | FaultAction::Short { after_bytes } => {
            let st = Cut {
                inner: body,
                pos: 0,
                pending: None,
                fired: false,
                done: false,
                limit: after_bytes,
                action,
            };
            futures::stream::unfold(st, cut_next).boxed()
        }
        FaultAction::Status { .. } | FaultAction::Latency { .. } => body,
    }
}

struct Cut {
    inner: BodyStream,
    pos: u64,
    pending: Option<Bytes>,
    fired: bool,
    done: bool,
    limit: u64,
    action: FaultAction,
}

async fn cut_next(mut st: Cut) -> Option<(Result<Bytes, std::io::Error>, Cut)> {
    loop {
        if st.done {
            return None;
        }
        if !st.fired && st.pos >= st.limit {
            st.fired = true;
            match st.action {
                FaultAction::Stall { ms, .. } => match ms {
                    Some(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                    None => futures::future::pending::<()>().await,
                },
                FaultAction::Reset { .. } => {
                    // Let the bytes already queued reach the client before the abort.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    st.done = true;
                    let e = std::io::Error::new(
                        std::io::ErrorKind::ConnectionReset,
                        "jenkins-sim fault: connection reset",
                    );
                    return Some((Err(e), st));
                }
                _ => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    return None;
                }
            }
        }
        let item = match st.pending.take() {
            Some(p) => Some(Ok(p)),
            None => st.inner.next().await,
        };
        let chunk = match item {
            None => return None,
            Some(Err(e)) => return Some((Err(e), st)),
            Some(Ok(c)) => c,
        };
        if chunk.is_empty() {
            continue;
        }
        let len = chunk.len() as u64;
        if !st.fired && st.pos + len > st.limit {
            let n = (st.limit - st.pos) as usize;
            st.pending = Some(chunk.slice(n..));
            st.pos += n as u64;
            if n == 0 {
                continue;
            }
            return Some((Ok(chunk.slice(..n)), st));
        }
        st.pos += len;
        return Some((Ok(chunk), st));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(chunks: &[&'static [u8]]) -> BodyStream {
        futures::stream::iter(
            chunks
                .iter()
                .map(|c| Ok(Bytes::from_static(c)))
                .collect::<Vec<_>>(),
        )
        .boxed()
    }

    async fn collect(s: BodyStream) -> (Vec<u8>, bool) {
        let mut out = Vec::new();
        let mut s = s;
        while let Some(r) = s.next().await {
            match r {
                Ok(b) => out.extend_from_slice(&b),
                Err(_) => return (out, true),
            }
        }
        (out, false)
    }

    #[tokio::test]
    async fn short_reset_corrupt() {
        let (b, err) = collect(damage(
            body(&[b"abcd", b"efgh"]),
            FaultAction::Short { after_bytes: 6 },
        ))
        .await;
        assert_eq!((b.as_slice(), err), (&b"abcdef"[..], false));
        let (b, err) = collect(damage(
            body(&[b"abcd", b"efgh"]),
            FaultAction::Reset { after_bytes: 3 },
        ))
        .await;
        assert_eq!((b.as_slice(), err), (&b"abc"[..], true));
        let (b, _) = collect(damage(
            body(&[b"abcd", b"efgh"]),
            FaultAction::Corrupt {
                offset: 3,
                count: 2,
            },
        ))
        .await;
        assert_eq!(
            b,
            vec![b'a', b'b', b'c', b'd' ^ 0xFF, b'e' ^ 0xFF, b'f', b'g', b'h']
        );
        let (b, _) = collect(damage(
            body(&[b"abcd", b"efgh"]),
            FaultAction::Stall {
                after_bytes: 5,
                ms: Some(1),
            },
        ))
        .await;
        assert_eq!(b, b"abcdefgh");
    }

    #[test]
    fn plan_counts_and_skips() {
        let mut fs = FaultSet::default();
        fs.add(Fault::status(503).on(RouteKind::Api).times(2).skip(1))
            .unwrap();
        fs.add(Fault::latency(Duration::from_millis(5)).path_prefix("/job/a/"))
            .unwrap();
        let p = fs.plan(RouteKind::Api, "GET", "/api/json", None);
        assert!(p.is_empty(), "first one skipped");
        assert_eq!(
            fs.plan(RouteKind::Api, "GET", "/api/json", None).status,
            Some((503, None))
        );
        assert_eq!(
            fs.plan(RouteKind::Artifact, "GET", "/api/json", None)
                .status,
            None
        );
        let p = fs.plan(RouteKind::Api, "GET", "/job/a/api/json", None);
        assert_eq!(p.status, Some((503, None)));
        assert_eq!(p.latency, Duration::from_millis(5));
        assert_eq!(fs.faults.len(), 1, "exhausted fault removed");
        assert!(fs.plan(RouteKind::Api, "GET", "/api/json", None).is_empty());
        fs.add(Fault::reset_after(1).path_regex(r"tree=.*builds"))
            .unwrap();
        assert!(
            fs.plan(RouteKind::Api, "GET", "/api/json", Some("tree=builds"))
                .body
                .is_some()
        );
        assert!(
            fs.plan(RouteKind::Api, "GET", "/api/json", Some("tree=jobs"))
                .body
                .is_none()
        );
        assert!(fs.add(Fault::status(500).path_regex("(")).is_err());
    }
}
