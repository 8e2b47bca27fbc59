//! The HTTP side: routing (raw path split on `/`, each segment decoded), authentication and
//! the error answers of API.md §1, JSON endpoints, artifact downloads (§6), the fake S3 and
//! resource-root listeners, faults, and the request log.

use crate::export;
use crate::faults::{BodyStream, FaultSet, RouteKind, damage};
use crate::model::{Artifact, Ctx, Model, Who, now_ms};
use crate::names::{parse_query, raw_encode, split_path};
use crate::scenario::RedirectMode;
use crate::tree::{Pruner, parse_tree};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use base64::Engine as _;
use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

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

const CHUNK: u64 = 64 * 1024;
const CSP: &str =
    "sandbox allow-same-origin; default-src 'none'; img-src 'self'; style-src 'self';";

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
        return crate::sim::control(sh, req).await;
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
            Listener::S3 => s3_route(&sh, &r),
            Listener::ResourceRoot => rr_route(&sh, &r, &mut user),
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

// ----- canned answers -----

fn html(status: StatusCode, title: &str, body: &str) -> Response {
    let page = format!(
        "<!DOCTYPE html><html><head><title>{title} [Jenkins]</title></head><body><h1>{title}</h1>{body}</body></html>\n"
    );
    let mut r = Response::new(Body::from(page));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html;charset=UTF-8"),
    );
    r
}

fn fault_response(status: u16, retry_after: Option<u64>) -> Response {
    let st = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let reason = st.canonical_reason().unwrap_or("Error");
    let mut r = html(
        st,
        &format!("{status} {reason}"),
        "<p>Injected by jenkins-sim.</p>",
    );
    if let Some(s) = retry_after {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    r
}

fn jenkins_headers(m: &Model, r: &mut Response) {
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&m.version) {
        h.insert("X-Jenkins", v);
    }
    if let Ok(v) = HeaderValue::from_str(&m.session) {
        h.insert("X-Jenkins-Session", v);
    }
}

fn not_found(m: &Model) -> Response {
    let mut r = html(
        StatusCode::NOT_FOUND,
        "Not Found",
        "<h2>HTTP ERROR 404 Not Found</h2>",
    );
    jenkins_headers(m, &mut r);
    r
}

fn oops(m: &Model, msg: &str) -> Response {
    let mut r = html(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Oops!",
        &format!(
            "<h2>A problem occurred while processing the request</h2><pre>jakarta.servlet.ServletException: {}</pre>",
            escape(msg)
        ),
    );
    jenkins_headers(m, &mut r);
    r
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// 401 for bad credentials (Spring's `BasicAuthenticationEntryPoint`, container error page).
fn unauthorized() -> Response {
    let mut r = html(
        StatusCode::UNAUTHORIZED,
        "Error 401 Unauthorized",
        "<h2>HTTP ERROR 401 Unauthorized</h2><table><tr><th>MESSAGE:</th><td>Unauthorized</td></tr></table>",
    );
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"Jenkins\""),
    );
    r
}

/// 403 for a caller without Overall/Read (§1.2 anonymous, §1.3 authenticated).
fn forbidden(m: &Model, who: &Who, path: &str) -> Response {
    let name = match who {
        Who::Anonymous => "anonymous",
        Who::User(u) => u.as_str(),
    };
    let mut r = match who {
        Who::Anonymous => {
            let from = raw_encode(path);
            html(
                StatusCode::FORBIDDEN,
                "Authentication required",
                &format!(
                    "<meta http-equiv='refresh' content='1;url=/login?from={from}'/><script>window.location.replace('/login?from={from}');</script>\n<!--\nYou are authenticated as: anonymous\nGroups that you are in:\n  \nPermission you need to have (but didn't): hudson.model.Hudson.Read\n -> implied by: hudson.security.Permission.GenericRead\n -> implied by: hudson.model.Hudson.Administer\n-->"
                ),
            )
        }
        Who::User(u) => html(
            StatusCode::FORBIDDEN,
            "Access Denied",
            &format!(
                "<p>{} is missing the Overall/Read permission</p>",
                escape(u)
            ),
        ),
    };
    jenkins_headers(m, &mut r);
    let h = r.headers_mut();
    h.insert("X-Hudson", HeaderValue::from_static("1.395"));
    if let Ok(v) = HeaderValue::from_str(name) {
        h.insert("X-You-Are-Authenticated-As", v);
    }
    h.insert(
        "X-You-Are-In-Group-Disabled",
        HeaderValue::from_static("JENKINS-39402: use -Dhudson.security.AccessDeniedException2.REPORT_GROUP_HEADERS=true or use /whoAmI to diagnose"),
    );
    h.insert(
        "X-Required-Permission",
        HeaderValue::from_static("hudson.model.Hudson.Read"),
    );
    h.append(
        "X-Permission-Implied-By",
        HeaderValue::from_static("hudson.security.Permission.GenericRead"),
    );
    h.append(
        "X-Permission-Implied-By",
        HeaderValue::from_static("hudson.model.Hudson.Administer"),
    );
    r
}

fn json_response(m: &Model, v: &Value, pretty: bool) -> Response {
    let mut r = Response::new(Body::from(crate::json::to_jenkins_json(v, pretty)));
    jenkins_headers(m, &mut r);
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=UTF-8"),
    );
    h.insert(
        "X-Content-Type-Options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("X-Frame-Options", HeaderValue::from_static("deny"));
    r
}

/// Serves an exported bean honouring `tree`, `depth`, `pretty`.
fn api(m: &Model, query: Option<&str>, f: impl FnOnce(Pruner<'_>) -> Value) -> Response {
    let params = parse_query(query);
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if get("jsonp").is_some() {
        let mut r = html(StatusCode::FORBIDDEN, "Forbidden", "<p>jsonp forbidden</p>");
        jenkins_headers(m, &mut r);
        return r;
    }
    let pretty = get("pretty").is_some();
    let v = if let Some(t) = get("tree") {
        match parse_tree(t) {
            Ok(tree) => f(Pruner::Tree(&tree.children)),
            Err(e) => return oops(m, &e.to_string()),
        }
    } else {
        let depth = match get("depth") {
            None => 0,
            Some(d) => match d.parse::<i32>() {
                Ok(d) => d,
                Err(_) => return oops(m, "Depth parameter must be a number"),
            },
        };
        f(Pruner::for_depth(depth))
    };
    json_response(m, &v, pretty)
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
                ["artifact", rest @ ..] => artifact_route(sh, m, who, ctx, b, rest, r),
                _ => not_found(m),
            }
        }
        _ => not_found(m),
    }
}

fn text(s: String) -> Response {
    let mut r = Response::new(Body::from(s));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain;charset=UTF-8"),
    );
    r
}

/// Immediate children of directory `dir` (`""` = root): `(name, is_dir)`, sorted
/// case-insensitively.
fn dir_children(arts: &[Arc<Artifact>], dir: &str) -> Vec<(String, bool)> {
    let mut out: Vec<(String, bool)> = Vec::new();
    for a in arts {
        let rest = if dir.is_empty() {
            Some(a.path.as_str())
        } else {
            a.path.strip_prefix(dir).and_then(|r| r.strip_prefix('/'))
        };
        let Some(rest) = rest else { continue };
        let (name, is_dir) = match rest.split_once('/') {
            Some((d, _)) => (d, true),
            None => (rest, false),
        };
        if !out.iter().any(|(n, _)| n == name) {
            out.push((name.to_string(), is_dir));
        }
    }
    out.sort_by_key(|(n, _)| n.to_lowercase());
    out
}

fn request_base(sh: &Shared, headers: &HeaderMap) -> String {
    match headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
        Some(host) => format!("http://{host}"),
        None => sh.main_url.trim_end_matches('/').to_string(),
    }
}

fn redirect(location: &str) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::FOUND;
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

fn artifact_route(
    sh: &Shared,
    m: &Model,
    who: &Who,
    ctx: &Ctx,
    b: &crate::model::Build,
    rest: &[&str],
    r: &Req<'_>,
) -> Response {
    let arts = b.live_artifacts();
    if rest.contains(&"..") {
        let mut resp = html(StatusCode::BAD_REQUEST, "Bad Request", "");
        jenkins_headers(m, &mut resp);
        return resp;
    }
    if arts.is_empty() {
        return not_found(m);
    }
    if rest.is_empty() {
        return redirect(&format!("{}{}/", request_base(sh, r.headers), r.path));
    }
    if let Some(k) = rest.iter().position(|s| *s == "*zip*") {
        let dir = rest[..k]
            .iter()
            .filter(|s| !s.is_empty())
            .cloned()
            .collect::<Vec<_>>()
            .join("/");
        let prefix = if dir.is_empty() {
            "archive".to_string()
        } else {
            dir.rsplit('/').next().unwrap_or(&dir).to_string()
        };
        let entries: Vec<(String, Arc<Artifact>)> = arts
            .iter()
            .filter_map(|a| {
                let rel = if dir.is_empty() {
                    Some(a.path.as_str())
                } else {
                    a.path.strip_prefix(&dir).and_then(|x| x.strip_prefix('/'))
                };
                rel.map(|rel| (format!("{prefix}/{rel}"), a.clone()))
            })
            .collect();
        if entries.is_empty() {
            return not_found(m);
        }
        let mut resp = Response::new(Body::from_stream(crate::zip::zip_stream(
            entries,
            b.end_time(),
        )));
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/zip"),
        );
        return resp;
    }
    if let Some(k) = rest.iter().position(|s| *s == "*plain*") {
        let dir = rest[..k]
            .iter()
            .filter(|s| !s.is_empty())
            .cloned()
            .collect::<Vec<_>>()
            .join("/");
        let kids = dir_children(arts, &dir);
        if kids.is_empty() {
            return not_found(m);
        }
        let mut body = String::new();
        for (n, d) in kids {
            body.push_str(&n);
            if d {
                body.push('/');
            }
            body.push('\n');
        }
        return text(body);
    }
    let trailing = rest.last() == Some(&"");
    let path = rest
        .iter()
        .filter(|s| !s.is_empty())
        .cloned()
        .collect::<Vec<_>>()
        .join("/");
    if let Some(a) = arts.iter().find(|a| a.path == path) {
        return serve_file(sh, m, who, ctx, b.number, a.clone(), r);
    }
    let kids = dir_children(arts, &path);
    if kids.is_empty() {
        return not_found(m);
    }
    if !trailing {
        return redirect(&format!("{}{}/", request_base(sh, r.headers), r.path));
    }
    let mut rows = String::new();
    for (n, d) in &kids {
        let href = format!("{}{}", raw_encode(n), if *d { "/" } else { "" });
        rows.push_str(&format!(
            "<tr><td><a href=\"{href}\">{}</a></td></tr>\n",
            escape(n)
        ));
    }
    let zip_name = if path.is_empty() {
        "archive".to_string()
    } else {
        path.rsplit('/').next().unwrap_or("archive").to_string()
    };
    let mut resp = html(
        StatusCode::OK,
        &escape(&format!(
            "{} #{} artifacts /{}",
            ctx.full_display, b.number, path
        )),
        &format!(
            "<table class=\"fileList\">\n{rows}</table><a href=\"*zip*/{}.zip\">(all files in zip)</a>",
            raw_encode(&zip_name)
        ),
    );
    jenkins_headers(m, &mut resp);
    resp
}

fn content_type(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("txt" | "log" | "md") => "text/plain;charset=UTF-8",
        Some("html" | "htm") => "text/html;charset=UTF-8",
        Some("css") => "text/css;charset=UTF-8",
        Some("csv") => "text/csv;charset=UTF-8",
        Some("json") => "application/json",
        Some("xml") => "application/xml",
        Some("jar") => "application/java-archive",
        Some("zip") => "application/zip",
        Some("gz" | "tgz") => "application/gzip",
        Some("tar") => "application/x-tar",
        Some("js") => "text/javascript;charset=UTF-8",
        Some("png") => "image/png",
        Some("pdf") => "application/pdf",
        _ => "application/octet-stream",
    }
}

fn http_date(ms: i64) -> String {
    let t = SystemTime::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    httpdate::fmt_http_date(t)
}

pub(crate) fn body_stream(a: Arc<Artifact>, start: u64, end: u64) -> BodyStream {
    futures::stream::unfold(start, move |pos| {
        let a = a.clone();
        async move {
            if pos >= end {
                return None;
            }
            let n = (end - pos).min(CHUNK) as usize;
            let mut v = vec![0u8; n];
            a.content.fill_at(pos, &mut v);
            Some((Ok(Bytes::from(v)), pos + n as u64))
        }
    })
    .boxed()
}

/// Stapler's `bytes=S-E` / `bytes=S-` (whole header must match; anything else is ignored).
fn parse_single_range(h: &str) -> Option<(u64, Option<u64>)> {
    let spec = h.strip_prefix("bytes=")?;
    let (s, e) = spec.split_once('-')?;
    if s.is_empty()
        || !s.bytes().all(|b| b.is_ascii_digit())
        || !e.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let s: u64 = s.parse().ok()?;
    let e = if e.is_empty() {
        None
    } else {
        Some(e.parse().ok()?)
    };
    Some((s, e))
}

/// Jenkins' (Stapler `serveStaticResource`) answer for one file.
fn jenkins_file_response(a: Arc<Artifact>, r: &Req<'_>, csp: bool) -> Response {
    let len = a.content.len();
    if let Some(ims) = r
        .headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
    {
        let ims_ms = ims
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        if a.last_modified < ims_ms + 1000 {
            let mut resp = Response::new(Body::empty());
            *resp.status_mut() = StatusCode::NOT_MODIFIED;
            return resp;
        }
    }
    let range = r
        .headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_single_range);
    let (status, start, end) = match range {
        Some((s, _)) if s >= len => {
            // Jenkins has no 416: skipping past the end fails inside the servlet.
            return html(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Oops!",
                "<pre>java.io.IOException: skipBytes failure</pre>",
            );
        }
        Some((s, e)) => {
            let e1 = e.map(|e| e.saturating_add(1)).unwrap_or(len).min(len);
            (StatusCode::PARTIAL_CONTENT, s, e1.max(s))
        }
        None => (StatusCode::OK, 0, len),
    };
    let lm = http_date(a.last_modified);
    let mut resp = if r.method == Method::HEAD {
        Response::new(Body::empty())
    } else {
        Response::new(Body::from_stream(body_stream(a.clone(), start, end)))
    };
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(&a.file_name)),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    if let Ok(v) = HeaderValue::from_str(&lm) {
        h.insert(header::LAST_MODIFIED, v.clone());
        h.insert(header::EXPIRES, v);
    }
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        "X-Content-Type-Options",
        HeaderValue::from_static("nosniff"),
    );
    if csp {
        h.insert("Content-Security-Policy", HeaderValue::from_static(CSP));
    }
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&format!(
            "bytes {}-{}/{}",
            start,
            end.saturating_sub(1),
            len
        ))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    resp
}

fn serve_file(
    sh: &Shared,
    m: &Model,
    who: &Who,
    ctx: &Ctx,
    number: u64,
    a: Arc<Artifact>,
    r: &Req<'_>,
) -> Response {
    match m.redirect {
        RedirectMode::None => jenkins_file_response(a, r, true),
        RedirectMode::S3 => redirect(&presign(sh, m, &ctx.full_name, number, &a.path)),
        RedirectMode::ResourceRoot => {
            let user = match who {
                Who::Anonymous => String::new(),
                Who::User(u) => u.clone(),
            };
            let token = rr_token(m, &user, &ctx.full_name, number, now_ms() + RR_VALID_MS);
            let path: Vec<String> = a.path.split('/').map(raw_encode).collect();
            redirect(&format!(
                "{}static-files/{token}/{}",
                sh.rr_url,
                path.join("/")
            ))
        }
    }
}

// ----- fake S3 -----

const S3_BUCKET: &str = "jenkins-artifacts";
const S3_EXPIRES_S: i64 = 3600;
const RR_VALID_MS: i64 = 30 * 60 * 1000;

fn amz_date(ms: i64) -> String {
    // yyyyMMdd'T'HHmmss'Z'
    let d = export::format_git_date(ms); // "yyyy-MM-dd HH:mm:ss +0000"
    format!(
        "{}{}{}T{}{}{}Z",
        &d[0..4],
        &d[5..7],
        &d[8..10],
        &d[11..13],
        &d[14..16],
        &d[17..19]
    )
}

fn parse_amz_date(s: &str) -> Option<i64> {
    if s.len() != 16 {
        return None;
    }
    let t = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &s[0..4],
        &s[4..6],
        &s[6..8],
        &s[9..11],
        &s[11..13],
        &s[13..15]
    );
    let st = httpdate_from_rfc3339(&t)?;
    Some(st)
}

fn httpdate_from_rfc3339(t: &str) -> Option<i64> {
    // Minimal: yyyy-mm-ddThh:mm:ssZ → epoch ms.
    let y: i64 = t.get(0..4)?.parse().ok()?;
    let mo: i64 = t.get(5..7)?.parse().ok()?;
    let d: i64 = t.get(8..10)?.parse().ok()?;
    let h: i64 = t.get(11..13)?.parse().ok()?;
    let mi: i64 = t.get(14..16)?.parse().ok()?;
    let s: i64 = t.get(17..19)?.parse().ok()?;
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86400) + h * 3600 + mi * 60 + s) * 1000)
}

fn s3_signature(m: &Model, key: &str, date: &str) -> String {
    crate::content::digests_of(format!("{}\n{key}\n{date}", m.secret).as_bytes()).sha256
}

fn s3_key(full_name: &str, number: u64, path: &str) -> String {
    format!("{full_name}/{number}/artifacts/{path}")
}

fn presign(sh: &Shared, m: &Model, full_name: &str, number: u64, path: &str) -> String {
    let date = amz_date(now_ms());
    let key = s3_key(full_name, number, path);
    let sig = s3_signature(m, &key, &date);
    let enc_path: Vec<String> = path.split('/').map(raw_encode).collect();
    format!(
        "{}{S3_BUCKET}/{}/{number}/artifacts/{}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAJENKINSSIM%2F{}%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date={date}&X-Amz-Expires={S3_EXPIRES_S}&X-Amz-SignedHeaders=host&X-Amz-Signature={sig}",
        sh.s3_url,
        raw_encode(full_name),
        enc_path.join("/"),
        &date[..8],
    )
}

fn s3_error(status: StatusCode, code: &str, msg: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{msg}</Message><RequestId>JSIM0000</RequestId></Error>"
    );
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    r
}

fn s3_route(sh: &Shared, r: &Req<'_>) -> Response {
    let m = sh.model.read().unwrap();
    let params = parse_query(r.query);
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if r.headers.contains_key(header::AUTHORIZATION) {
        return s3_error(
            StatusCode::BAD_REQUEST,
            "InvalidArgument",
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified",
        );
    }
    let segs = split_path(r.path);
    let (Some(sig), Some(date)) = (get("X-Amz-Signature"), get("X-Amz-Date")) else {
        return s3_error(StatusCode::FORBIDDEN, "AccessDenied", "Access Denied");
    };
    let [bucket, full_name, number, arts, rest @ ..] = segs.as_slice() else {
        return s3_error(
            StatusCode::NOT_FOUND,
            "NoSuchKey",
            "The specified key does not exist.",
        );
    };
    if bucket != S3_BUCKET || arts != "artifacts" || rest.is_empty() {
        return s3_error(
            StatusCode::NOT_FOUND,
            "NoSuchKey",
            "The specified key does not exist.",
        );
    }
    let path = rest.join("/");
    let Ok(number) = number.parse::<u64>() else {
        return s3_error(
            StatusCode::NOT_FOUND,
            "NoSuchKey",
            "The specified key does not exist.",
        );
    };
    if s3_signature(&m, &s3_key(full_name, number, &path), date) != sig {
        return s3_error(
            StatusCode::FORBIDDEN,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        );
    }
    let expired = parse_amz_date(date).is_none_or(|t| t + S3_EXPIRES_S * 1000 < now_ms());
    if expired {
        return s3_error(StatusCode::FORBIDDEN, "AccessDenied", "Request has expired");
    }
    let art = m.find(full_name).ok().and_then(|(_, item)| {
        let b = item.builds.get(&number)?;
        b.live_artifacts().iter().find(|a| a.path == path).cloned()
    });
    let Some(a) = art else {
        return s3_error(
            StatusCode::NOT_FOUND,
            "NoSuchKey",
            "The specified key does not exist.",
        );
    };
    drop(m);
    s3_file_response(a, r)
}

/// S3's answer: ETag, full Range support (incl. suffix ranges, 416).
fn s3_file_response(a: Arc<Artifact>, r: &Req<'_>) -> Response {
    let len = a.content.len();
    let range = r
        .headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|h| {
            let spec = h.strip_prefix("bytes=")?;
            if spec.contains(',') {
                return None;
            }
            let (s, e) = spec.split_once('-')?;
            match (s.is_empty(), e.is_empty()) {
                (true, false) => {
                    let n: u64 = e.parse().ok()?;
                    Some((len.saturating_sub(n), len))
                }
                (false, _) => {
                    let s: u64 = s.parse().ok()?;
                    let e1 = if e.is_empty() {
                        len
                    } else {
                        e.parse::<u64>().ok()?.saturating_add(1).min(len)
                    };
                    Some((s, e1))
                }
                _ => None,
            }
        });
    let (status, start, end) = match range {
        Some((s, e)) if s >= len || s >= e => {
            let mut resp = s3_error(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "InvalidRange",
                "The requested range is not satisfiable",
            );
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                resp.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return resp;
        }
        Some((s, e)) => (StatusCode::PARTIAL_CONTENT, s, e),
        None => (StatusCode::OK, 0, len),
    };
    let etag = if len <= 16 * 1024 * 1024 {
        format!("\"{}\"", a.md5())
    } else {
        let k = crate::content::word(len, len);
        format!(
            "\"{:016x}{:016x}-{}\"",
            k,
            k.rotate_left(17),
            len.div_ceil(8 << 20)
        )
    };
    let mut resp = if r.method == Method::HEAD {
        Response::new(Body::empty())
    } else {
        Response::new(Body::from_stream(body_stream(a.clone(), start, end)))
    };
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    if let Ok(v) = HeaderValue::from_str(&http_date(a.last_modified)) {
        h.insert(header::LAST_MODIFIED, v);
    }
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert("x-amz-request-id", HeaderValue::from_static("JSIM0000"));
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {}-{}/{}", start, end - 1, len))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    resp
}

// ----- resource root -----

fn rr_sig(m: &Model, payload: &str) -> String {
    crate::content::digests_of(format!("{}|rr|{payload}", m.secret).as_bytes()).sha256[..32]
        .to_string()
}

fn rr_token(m: &Model, user: &str, full_name: &str, number: u64, expires_ms: i64) -> String {
    let payload =
        serde_json::json!({"u": user, "j": full_name, "n": number, "e": expires_ms}).to_string();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(payload.as_bytes());
    let sig = rr_sig(m, &b64);
    format!("{b64}.{sig}")
}

fn rr_route(sh: &Shared, r: &Req<'_>, user_out: &mut Option<String>) -> Response {
    let m = sh.model.read().unwrap();
    let segs = split_path(r.path);
    let only_static = || {
        html(
            StatusCode::NOT_FOUND,
            "Not Found",
            "<p>Jenkins serves only static files on this domain.</p>",
        )
    };
    let [first, token, rest @ ..] = segs.as_slice() else {
        return only_static();
    };
    if first != "static-files" || rest.is_empty() {
        return only_static();
    }
    if r.headers.contains_key(header::AUTHORIZATION) {
        return html(
            StatusCode::BAD_REQUEST,
            "Bad Request",
            "<p>Authenticated requests are not allowed on the resource domain.</p>",
        );
    }
    let Some((b64, sig)) = token.split_once('.') else {
        return only_static();
    };
    if rr_sig(&m, b64) != sig {
        return only_static();
    }
    let Some(payload) = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(b64)
        .ok()
        .and_then(|v| serde_json::from_slice::<Value>(&v).ok())
    else {
        return only_static();
    };
    let user = payload["u"].as_str().unwrap_or("").to_string();
    let full_name = payload["j"].as_str().unwrap_or("").to_string();
    let number = payload["n"].as_u64().unwrap_or(0);
    let expires = payload["e"].as_i64().unwrap_or(0);
    let path = rest.join("/");
    if expires < now_ms() {
        // Expired: back to the controller URL, which will mint a new token.
        let job_path: String = crate::model::split_full_name(&full_name)
            .iter()
            .map(|n| format!("job/{}/", raw_encode(n)))
            .collect();
        let enc: Vec<String> = path.split('/').map(raw_encode).collect();
        return redirect(&format!(
            "{}{job_path}{number}/artifact/{}",
            sh.main_url,
            enc.join("/")
        ));
    }
    let who = if user.is_empty() {
        Who::Anonymous
    } else {
        *user_out = Some(user.clone());
        Who::User(user)
    };
    if !m.overall_read(&who) {
        return forbidden(&m, &who, r.path);
    }
    let names = crate::model::split_full_name(&full_name);
    let art = m.resolve(&names, &who).and_then(|(_, item)| {
        let b = item.builds.get(&number)?;
        b.live_artifacts().iter().find(|a| a.path == path).cloned()
    });
    let Some(a) = art else {
        return not_found(&m);
    };
    drop(m);
    jenkins_file_response(a, r, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_stapler() {
        assert_eq!(parse_single_range("bytes=0-9"), Some((0, Some(9))));
        assert_eq!(parse_single_range("bytes=5-"), Some((5, None)));
        assert_eq!(parse_single_range("bytes=-5"), None);
        assert_eq!(parse_single_range("bytes=0-1,5-6"), None);
        assert_eq!(parse_single_range("items=0-1"), None);
    }

    #[test]
    fn amz_dates_round_trip() {
        let ms = 1762958943000;
        let d = amz_date(ms);
        assert_eq!(d, "20251112T144903Z");
        assert_eq!(parse_amz_date(&d), Some(ms));
    }
}
