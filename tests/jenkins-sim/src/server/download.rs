//! Artifact downloads as `DirectoryBrowserSupport` and Stapler's `serveStaticResource` answer
//! them (API.md §6): single files with ranges and `If-Modified-Since`, directory redirects and
//! listings, `*plain*`, `*zip*`, and the hand-off to the S3 / resource-root redirect modes.

use super::answers::{escape, html, not_found, page, redirect, text};
use super::redirects::{RR_VALID_MS, presign, rr_token};
use super::{Req, Shared};
use crate::faults::BodyStream;
use crate::model::{Artifact, Ctx, Model, Who, now_ms};
use crate::names::raw_encode;
use crate::scenario::RedirectMode;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use jam::jenkins::stapler::artifacts;
use jam::zip::{ZipEntry, zip_stream};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

const CHUNK: u64 = 64 * 1024;
const CSP: &str =
    "sandbox allow-same-origin; default-src 'none'; img-src 'self'; style-src 'self';";

/// Immediate children of directory `dir` (`""` = root): `(name, is_dir)`, sorted
/// case-insensitively.
fn dir_children(arts: &[Arc<Artifact>], dir: &str) -> Vec<(String, bool)> {
    artifacts::dir_children(arts.iter().map(|a| a.path.as_str()), dir)
}

/// The directory the path segments before `*zip*` or `*plain*` name (empty segments dropped).
fn dir_before(segments: &[&str]) -> String {
    segments
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("/")
}

pub(super) fn request_base(sh: &Shared, headers: &HeaderMap) -> String {
    match headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
        Some(host) => format!("http://{host}"),
        None => sh.main_url.trim_end_matches('/').to_string(),
    }
}

pub(super) fn artifact_route(
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
        // `DirectoryBrowserSupport`: `sendError(400)`, a container page.
        return html(StatusCode::BAD_REQUEST, "Error 400 Bad Request", "");
    }
    if arts.is_empty() {
        return not_found(m);
    }
    if rest.is_empty() {
        return redirect(&format!("{}{}/", request_base(sh, r.headers), r.path));
    }
    if let Some(k) = rest.iter().position(|s| *s == "*zip*") {
        let dir = dir_before(&rest[..k]);
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
        let entries = entries.into_iter().map(|(name, a)| {
            Ok(ZipEntry {
                name,
                size: a.content.len(),
                body: body_stream(a.clone(), 0, a.content.len()),
            })
        });
        let zip = zip_stream(futures::stream::iter(entries), b.end_time());
        let mut resp = Response::new(Body::from_stream(zip));
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/zip"),
        );
        return resp;
    }
    if let Some(k) = rest.iter().position(|s| *s == "*plain*") {
        let dir = dir_before(&rest[..k]);
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
    page(
        m,
        StatusCode::OK,
        &escape(&format!(
            "{} #{} artifacts /{}",
            ctx.full_display, b.number, path
        )),
        &format!(
            "<table class=\"fileList\">\n{rows}</table><a href=\"*zip*/{}.zip\">(all files in zip)</a>",
            raw_encode(&zip_name)
        ),
    )
}

pub(super) fn http_date(ms: i64) -> String {
    let t = SystemTime::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    httpdate::fmt_http_date(t)
}

/// A response of `a`'s bytes `start..end` (no body for `HEAD`) with `status`, `Content-Type` and
/// `Content-Length`.
pub(super) fn bytes_response(
    a: &Arc<Artifact>,
    method: &Method,
    status: StatusCode,
    (start, end): (u64, u64),
    content_type: &'static str,
) -> Response {
    let mut resp = if method == Method::HEAD {
        Response::new(Body::empty())
    } else {
        Response::new(Body::from_stream(body_stream(a.clone(), start, end)))
    };
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    resp
}

pub(super) fn body_stream(a: Arc<Artifact>, start: u64, end: u64) -> BodyStream {
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
pub(super) fn jenkins_file_response(a: Arc<Artifact>, r: &Req<'_>, csp: bool) -> Response {
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
    let content_type = artifacts::content_type(&a.file_name);
    let mut resp = bytes_response(&a, r.method, status, (start, end), content_type);
    let h = resp.headers_mut();
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
}
