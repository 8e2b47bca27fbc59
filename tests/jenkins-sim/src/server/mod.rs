//! The HTTP side: routing (raw path split on `/`, each segment decoded), authentication and
//! the error answers of API.md §1, JSON endpoints, artifact downloads (§6), the fake S3 and
//! resource-root listeners, faults, and the request log.

mod answers;
mod download;
mod redirects;

use crate::export;
use crate::faults::{BodyStream, FaultSet, RouteKind, damage};
use crate::model::{Model, Who, now_ms};
use crate::names::split_path;
use answers::{api, escape, fault_response, forbidden, html, not_found, text, unauthorized};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use base64::Engine as _;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

/// Which listener a request arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Listener {
    /// The Jenkins controller.
    Main,
    /// The fake S3 endpoint (redirect mode `s3`).
    S3,
    /// The resource-root host (redirect mode `resource-root`).
    ResourceRoot,
}

/// One logged request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// Listener it arrived on.
    pub listener: Listener,
    /// HTTP method.
    pub method: String,
    /// Raw path plus `?query` when present.
    pub path: String,
    /// Status answered (a body fault still logs the status sent in the head).
    pub status: u16,
    /// Whether an `Authorization` header was present.
    pub authorization: bool,
    /// Authenticated user, if any.
    pub user: Option<String>,
    /// `Range` header, if any.
    pub range: Option<String>,
    /// Whether a fault changed the answer.
    pub faulted: bool,
    /// Arrival time, epoch ms.
    pub at_ms: i64,
}

/// State shared by all listeners and the control handle.
pub(crate) struct Shared {
    pub model: RwLock<Model>,
    pub faults: Mutex<FaultSet>,
    pub log: Mutex<Vec<RequestRecord>>,
    pub restart_until: Mutex<Option<Instant>>,
    pub main_url: String,
    pub s3_url: String,
    pub rr_url: String,
}

pub(crate) async fn main_handler(State(sh): State<Arc<Shared>>, req: Request) -> Response {
    handle(sh, Listener::Main, req).await
}

pub(crate) async fn s3_handler(State(sh): State<Arc<Shared>>, req: Request) -> Response {
    handle(sh, Listener::S3, req).await
}

pub(crate) async fn rr_handler(State(sh): State<Arc<Shared>>, req: Request) -> Response {
    handle(sh, Listener::ResourceRoot, req).await
}

fn classify(listener: Listener, path: &str) -> RouteKind {
    match listener {
        Listener::S3 => RouteKind::S3,
        Listener::ResourceRoot => RouteKind::ResourceRoot,
        Listener::Main => {
            if path.contains("/artifact/") || path.ends_with("/artifact") {
                RouteKind::Artifact
            } else if path.contains("/api/") {
                RouteKind::Api
            } else {
                RouteKind::Other
            }
        }
    }
}

async fn handle(sh: Arc<Shared>, listener: Listener, req: Request) -> Response {
    let path = req.uri().path().to_string();
    if listener == Listener::Main && (path == "/_sim" || path.starts_with("/_sim/")) {
        return crate::control::control(sh, req).await;
    }
    let query = req.uri().query().map(str::to_string);
    let method = req.method().clone();
    let headers = req.headers().clone();
    let at_ms = now_ms();
    let kind = classify(listener, &path);
    let plan = sh
        .faults
        .lock()
        .unwrap()
        .plan(kind, method.as_str(), &path, query.as_deref());
    if !plan.latency.is_zero() {
        tokio::time::sleep(plan.latency).await;
    }
    let restarting = {
        let mut r = sh.restart_until.lock().unwrap();
        match *r {
            Some(t) if Instant::now() < t => true,
            Some(_) => {
                *r = None;
                false
            }
            None => false,
        }
    };
    let mut user = None;
    let mut resp = if let Some((status, retry_after)) = plan.status {
        fault_response(status, retry_after)
    } else if restarting {
        html(
            StatusCode::SERVICE_UNAVAILABLE,
            "Starting Jenkins",
            "<p>Jenkins is getting ready to work ...</p>",
        )
    } else {
        let r = Req {
            method: &method,
            path: &path,
            query: query.as_deref(),
            headers: &headers,
        };
        match listener {
            Listener::Main => main_route(&sh, &r, &mut user),
            Listener::S3 => redirects::s3_route(&sh, &r),
            Listener::ResourceRoot => redirects::rr_route(&sh, &r, &mut user),
        }
    };
    let status = resp.status().as_u16();
    if method == Method::HEAD {
        // hyper drops HEAD bodies; make sure a streamed one is not even produced.
        let keep = resp.headers().clone();
        let st = resp.status();
        resp = Response::new(Body::empty());
        *resp.status_mut() = st;
        *resp.headers_mut() = keep;
    } else if let Some(action) = plan.body.clone() {
        let (parts, body) = resp.into_parts();
        let stream: BodyStream = body
            .into_data_stream()
            .map(|r| r.map_err(std::io::Error::other))
            .boxed();
        resp = Response::from_parts(parts, Body::from_stream(damage(stream, action)));
    }
    sh.log.lock().unwrap().push(RequestRecord {
        listener,
        method: method.to_string(),
        path: match &query {
            Some(q) => format!("{path}?{q}"),
            None => path.clone(),
        },
        status,
        authorization: headers.contains_key(header::AUTHORIZATION),
        user,
        range: headers
            .get(header::RANGE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        faulted: !plan.is_empty(),
        at_ms,
    });
    resp
}

struct Req<'a> {
    method: &'a Method,
    path: &'a str,
    query: Option<&'a str>,
    headers: &'a HeaderMap,
}

// ----- authentication -----

/// `Ok(who)`, or the 401 answer for bad credentials.
#[allow(clippy::result_large_err)] // the error is the finished 401 answer
fn authenticate(m: &Model, headers: &HeaderMap) -> Result<Who, Response> {
    if !m.use_security {
        return Ok(Who::Anonymous);
    }
    let Some(v) = headers.get(header::AUTHORIZATION) else {
        return Ok(Who::Anonymous);
    };
    let v = v.to_str().map_err(|_| unauthorized())?;
    if v.len() < 6 || !v[..6].eq_ignore_ascii_case("basic ") {
        return Ok(Who::Anonymous);
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(v[6..].trim())
        .map_err(|_| unauthorized())?;
    let text = String::from_utf8(decoded).map_err(|_| unauthorized())?;
    let (user, token) = text.split_once(':').ok_or_else(unauthorized)?;
    if m.authenticate(user, token) {
        Ok(Who::User(user.to_string()))
    } else {
        Err(unauthorized())
    }
}

// ----- the controller -----

fn main_route(sh: &Shared, r: &Req<'_>, user: &mut Option<String>) -> Response {
    let m = sh.model.read().unwrap();
    let who = match authenticate(&m, r.headers) {
        Ok(w) => w,
        Err(resp) => return resp,
    };
    if let Who::User(u) = &who {
        *user = Some(u.clone());
    }
    let segs = split_path(r.path);
    let seg: Vec<&str> = segs.iter().map(String::as_str).collect();
    // Always readable.
    match seg.as_slice() {
        ["whoAmI", "api", "json"] => return api(&m, r.query, |p| export::whoami(&m, &who, p)),
        ["whoAmI"] | ["whoAmI", ""] => {
            let name = match &who {
                Who::Anonymous => "anonymous".to_string(),
                Who::User(u) => u.clone(),
            };
            return html(
                StatusCode::OK,
                "Who Am I?",
                &format!("<p>Name: {}</p>", escape(&name)),
            );
        }
        ["health"] => {
            let mut resp = Response::new(Body::from("{\"status\":true}"));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json;charset=UTF-8"),
            );
            return resp;
        }
        ["login"] | ["login", ""] => return html(StatusCode::OK, "Sign in", "<form></form>"),
        _ => {}
    }
    if !m.overall_read(&who) {
        return forbidden(&m, &who, r.path);
    }
    match seg.as_slice() {
        [] | [""] => html(StatusCode::OK, "Dashboard", "<p>jenkins-sim</p>"),
        ["api", "json"] => api(&m, r.query, |p| export::root(&m, &who, p)),
        ["crumbIssuer", "api", "json"] if m.csrf => {
            let crumb = crate::content::digests_of(
                format!("{}:{:?}:{}", m.secret, who, m.session).as_bytes(),
            )
            .sha256;
            api(&m, r.query, |p| export::crumb(&crumb, p))
        }
        ["fingerprint", hash, "api", "json"] => fingerprint_route(&m, &who, hash, r.query),
        ["job", ..] => job_route(sh, &m, &who, &seg, r),
        _ => not_found(&m),
    }
}

fn fingerprint_route(m: &Model, who: &Who, hash: &str, query: Option<&str>) -> Response {
    let hash = hash.to_lowercase();
    if hash.len() != 32 {
        return not_found(m);
    }
    let idx = m.fingerprints();
    let found = idx
        .values()
        .find(|uses| uses.first().is_some_and(|u| u.artifact.md5() == hash));
    let Some(uses) = found else {
        return not_found(m);
    };
    let visible = |job: &str| {
        let names = crate::model::split_full_name(job);
        m.resolve(&names, who).is_some()
    };
    api(m, query, |p| {
        export::fingerprint_with_class(
            p,
            &hash,
            uses,
            Some(&visible),
            Some("hudson.model.Fingerprint"),
        )
    })
}

fn job_route(sh: &Shared, m: &Model, who: &Who, seg: &[&str], r: &Req<'_>) -> Response {
    let mut names = Vec::new();
    let mut i = 0;
    while i + 1 < seg.len() && seg[i] == "job" {
        names.push(seg[i + 1].to_string());
        i += 2;
    }
    let Some((ctxs, item)) = m.resolve(&names, who) else {
        return not_found(m);
    };
    let ctx = ctxs.last().expect("non-empty path");
    match &seg[i..] {
        ["api", "json"] => api(m, r.query, |p| export::export_item(m, ctx, item, who, p)),
        [] | [""] => html(StatusCode::OK, &escape(&ctx.full_display), ""),
        [tok, tail @ ..] if item.kind.is_job() => {
            let Some(b) = item.build_ref(tok) else {
                return not_found(m);
            };
            match tail {
                ["api", "json"] => api(m, r.query, |p| export::export_build(m, ctx, item, b, p)),
                [] | [""] => html(
                    StatusCode::OK,
                    &escape(&format!("{} {}", ctx.full_display, b.display_name())),
                    "",
                ),
                ["buildNumber"] => text(format!("{}", b.number)),
                ["buildTimestamp"] => text(format!("{}", b.timestamp)),
                ["artifact", rest @ ..] => download::artifact_route(sh, m, who, ctx, b, rest, r),
                _ => not_found(m),
            }
        }
        _ => not_found(m),
    }
}
