//! The HTTP side: routing (raw path split on `/`, each segment decoded), authentication and
//! the error answers of API.md §1, JSON endpoints, artifact downloads (§6), the fake S3 and
//! resource-root listeners, faults, and the request log.

mod answers;
mod download;
mod redirects;

use crate::export;
use crate::faults::{BodyStream, FaultSet, RouteKind, damage};
use crate::model::{Model, Who, now_ms};
use crate::names::{request_root, split_path};
use crate::notify::{NoticeRecord, NotifierSet};
use crate::scenario::ItemKind;
use answers::{
    api, api_flavor, escape, fault_response, forbidden, html, jackson, login_required, not_found,
    page, text, unauthorized,
};
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
    pub notifiers: Mutex<NotifierSet>,
    pub notices: Mutex<Vec<NoticeRecord>>,
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

/// One request to the controller, once authenticated: who asks and the root of `url` fields.
struct Call<'a> {
    m: &'a Model,
    who: Who,
    root: &'a str,
    r: &'a Req<'a>,
}

fn main_route(sh: &Shared, r: &Req<'_>, user: &mut Option<String>) -> Response {
    let m = sh.model.read().unwrap();
    let who = match authenticate(&m, r.headers) {
        Ok(w) => w,
        Err(resp) => return resp,
    };
    if let Who::User(u) = &who {
        *user = Some(u.clone());
    }
    let from_request = request_root(r.headers, &sh.main_url);
    let c = Call {
        m: &m,
        who,
        root: m.root_for(&from_request),
        r,
    };
    let segs = split_path(r.path);
    let seg: Vec<&str> = segs.iter().map(String::as_str).collect();
    // Always readable.
    match seg.as_slice() {
        ["whoAmI", "api", f] if api_flavor(f).is_some() => {
            return api(&m, f, r.query, |p| export::whoami(&m, &c.who, p));
        }
        ["whoAmI"] | ["whoAmI", ""] => {
            let name = match &c.who {
                Who::Anonymous => "anonymous",
                Who::User(u) => u.as_str(),
            };
            return page(
                &m,
                StatusCode::OK,
                "Who Am I?",
                &format!("<p>Name: {}</p>", escape(name)),
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
        ["login"] | ["login", ""] => return page(&m, StatusCode::OK, "Sign in", "<form></form>"),
        _ => {}
    }
    if !m.overall_read(&c.who) {
        return forbidden(&m, &c.who, r.path);
    }
    match seg.as_slice() {
        [] | [""] => page(
            &m,
            StatusCode::OK,
            "Dashboard [Jenkins]",
            "<div id=\"main-panel\"><p>Welcome to Jenkins!</p></div>",
        ),
        ["api", f] if api_flavor(f).is_some() => {
            api(&m, f, r.query, |p| export::root(&m, c.root, &c.who, p))
        }
        ["crumbIssuer", "api", f] if m.csrf && api_flavor(f).is_some() => {
            let crumb = crate::content::digests_of(
                format!("{}:{:?}:{}", m.secret, c.who, m.session).as_bytes(),
            )
            .sha256;
            api(&m, f, r.query, |p| export::crumb(&crumb, p))
        }
        ["me", rest @ ..] => match &c.who {
            // `Jenkins.getMe`: "/me is not available when not logged in".
            Who::Anonymous => login_required(&m, r.path, "/me is not available when not logged in"),
            Who::User(id) => user_route(&c, id, rest),
        },
        ["user", id, rest @ ..] => user_route(&c, id, rest),
        ["fingerprint", hash, "api", f] if api_flavor(f).is_some() => {
            fingerprint_route(&c, hash, f)
        }
        ["job", ..] => job_route(sh, &c, &seg),
        _ => not_found(&m),
    }
}

/// `/user/<id>/…` (and `/me/…` for the caller): the `hudson.model.User` bean. Its
/// `property` list is filled only for the caller's own record (`User.getAllProperties`).
fn user_route(c: &Call<'_>, id: &str, rest: &[&str]) -> Response {
    let m = c.m;
    let Some((id, u)) = m.user(id) else {
        return not_found(m);
    };
    let own = matches!(&c.who, Who::User(me) if me.eq_ignore_ascii_case(id));
    match rest {
        ["api", f] if api_flavor(f).is_some() => {
            api(m, f, c.r.query, |p| export::user(c.root, id, u, own, p))
        }
        [] | [""] => page(
            m,
            StatusCode::OK,
            &escape(u.full_name.as_deref().unwrap_or(id)),
            "",
        ),
        _ => not_found(m),
    }
}

fn fingerprint_route(c: &Call<'_>, hash: &str, flavor: &str) -> Response {
    let m = c.m;
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
        m.resolve(c.root, &names, &c.who).is_some()
    };
    api(m, flavor, c.r.query, |p| {
        export::fingerprint_with_class(
            p,
            &hash,
            uses,
            Some(&visible),
            Some("hudson.model.Fingerprint"),
        )
    })
}

fn job_route(sh: &Shared, c: &Call<'_>, seg: &[&str]) -> Response {
    let (m, who, r) = (c.m, &c.who, c.r);
    let mut names = Vec::new();
    let mut i = 0;
    while i + 1 < seg.len() && seg[i] == "job" {
        names.push(seg[i + 1].to_string());
        i += 2;
    }
    let Some((ctxs, item)) = m.resolve(c.root, &names, who) else {
        return not_found(m);
    };
    let ctx = ctxs.last().expect("non-empty path");
    match &seg[i..] {
        ["api", f] if api_flavor(f).is_some() => {
            api(m, f, r.query, |p| export::export_item(m, ctx, item, who, p))
        }
        [] | [""] => page(m, StatusCode::OK, &escape(&ctx.full_display), ""),
        [tok, tail @ ..] if item.kind.is_job() => {
            let Some(b) = item.build_ref(tok) else {
                return not_found(m);
            };
            match tail {
                ["api", f] if api_flavor(f).is_some() => {
                    api(m, f, r.query, |p| export::export_build(m, ctx, item, b, p))
                }
                [] | [""] => page(
                    m,
                    StatusCode::OK,
                    &escape(&format!("{} {}", ctx.full_display, b.display_name())),
                    "",
                ),
                ["buildNumber"] => text(format!("{}", b.number)),
                ["buildTimestamp"] => text(format!("{}", b.timestamp)),
                ["artifact", rest @ ..] => download::artifact_route(sh, m, who, ctx, b, rest, r),
                // pipeline-rest-api serves WorkflowRuns only.
                ["wfapi", "artifacts"] | ["wfapi", "artifacts", ""]
                    if item.kind == ItemKind::Pipeline =>
                {
                    jackson(&export::wfapi_artifacts(ctx, b))
                }
                _ => not_found(m),
            }
        }
        _ => not_found(m),
    }
}
