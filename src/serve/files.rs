//! Artifact downloads done right, and the other byte answers of a build: `…/artifact/<path>` (ranges,
//! conditional requests, HEAD, the SHA-256 as ETag and `Repr-Digest`, or a 302 to a presigned URL),
//! directory listings (`…/artifact/dir/` and `*plain*`), `*zip*` archives streamed entry by entry, and
//! pipeline-rest-api's `wfapi/artifacts`.
//!
//! Bytes stream from the store as they arrive; nothing is buffered whole. Every artifact body carries
//! Jenkins' sandboxing `Content-Security-Policy`, so an archived HTML report cannot run script on the
//! gateway's origin.

use std::{
    sync::atomic::Ordering,
    time::{Duration, SystemTime},
};

use axum::body::Body;
use base64::Engine as _;
use bytes::Bytes;
use futures::StreamExt;
use http::{Method, StatusCode, header};

use crate::{
    config::Redirect,
    format::{layout, manifest::ArtifactEntry},
    jenkins::stapler::artifacts::{self, dir_children, wfapi_artifacts},
    store::StoreError,
    zip::{ZipEntry, zip_stream},
};

use super::{
    Gateway,
    answers::{self, ARTIFACT_CSP, Response},
    json::{ItemAt, Site},
    metrics::Route,
    pages,
    request::{Answer, BuildAt, Found, Req},
};

/// `…/<build>/artifact/<rest>`.
pub(super) async fn artifact(
    gw: &Gateway,
    req: &Req<'_>,
    site: &Site,
    found: &Found<'_>,
    b: &BuildAt,
    rest: &[&str],
) -> Answer {
    let arts = &b.manifest.artifacts;
    if rest.iter().any(|s| *s == ".." || *s == ".") {
        return Ok((
            Route::Refused,
            answers::bad_request("'..' and '.' are not allowed in artifact paths"),
        ));
    }
    if arts.is_empty() {
        return Ok((Route::Refused, answers::not_found()));
    }
    if rest.is_empty() {
        return Ok((Route::Redirect, answers::found(&format!("{}/", req.path))));
    }
    let dir_of = |upto: usize| -> String {
        rest[..upto]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join("/")
    };
    if let Some(k) = rest.iter().position(|s| *s == "*zip*") {
        return Ok(zip(gw, req, b, &dir_of(k)));
    }
    if let Some(k) = rest.iter().position(|s| *s == "*plain*") {
        let kids = dir_children(arts.iter().map(|a| a.path.as_str()), &dir_of(k));
        if kids.is_empty() {
            return Ok((Route::Refused, answers::not_found()));
        }
        let body: String = kids
            .iter()
            .map(|(n, d)| format!("{n}{}\n", if *d { "/" } else { "" }))
            .collect();
        return Ok((Route::Text, answers::text(StatusCode::OK, body)));
    }
    let trailing = rest.last().is_some_and(|s| s.is_empty());
    let path = dir_of(rest.len());
    if let Some(a) = arts.iter().find(|a| a.path == path) {
        return file(gw, req, b, a).await;
    }
    let kids = dir_children(arts.iter().map(|a| a.path.as_str()), &path);
    if kids.is_empty() {
        return Ok((Route::Refused, answers::not_found()));
    }
    if !trailing {
        return Ok((Route::Redirect, answers::found(&format!("{}/", req.path))));
    }
    Ok(pages::listing(gw, req, site, found, b, &path, &kids))
}

/// A single range asked for: `bytes=S-E`, `bytes=S-` or `bytes=-N`. Anything else (several ranges, other
/// units) is ignored, and the whole file is sent.
fn parse_range(h: &str, len: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = h.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (s, e) = spec.split_once('-')?;
    let num = |x: &str| x.trim().parse::<u64>().ok();
    let (start, end) = match (s.trim().is_empty(), e.trim().is_empty()) {
        (true, false) => {
            let n = num(e)?;
            if n == 0 {
                return Some(Err(()));
            }
            (len.saturating_sub(n), len)
        }
        (false, true) => (num(s)?, len),
        (false, false) => {
            let (s, e) = (num(s)?, num(e)?);
            if e < s {
                return None;
            }
            (s, e.saturating_add(1).min(len))
        }
        (true, true) => return None,
    };
    if start >= len {
        return Some(Err(()));
    }
    Some(Ok((start, end)))
}

fn http_date(t: SystemTime) -> String {
    httpdate::fmt_http_date(t)
}

/// The time a build was committed (its manifest's `mirrored_at`): every artifact was stored before it,
/// so it stands in for the files' modification time without a store request.
fn committed_at(b: &BuildAt) -> SystemTime {
    time::OffsetDateTime::parse(
        &b.manifest.mirrored_at,
        &time::format_description::well_known::Rfc3339,
    )
    .map(|t| SystemTime::UNIX_EPOCH + Duration::from_secs(t.unix_timestamp().max(0) as u64))
    .unwrap_or(SystemTime::UNIX_EPOCH + Duration::from_millis(b.manifest.timestamp))
}

/// Whether the client's copy is current: `If-None-Match` (the strong ETag) wins over `If-Modified-Since`.
fn not_modified(req: &Req<'_>, etag: &str, modified: SystemTime) -> bool {
    if let Some(inm) = req
        .headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    {
        return inm.split(',').any(|t| {
            let t = t.trim();
            t == "*" || t.trim_start_matches("W/") == etag
        });
    }
    req.headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
        .is_some_and(|ims| modified <= ims)
}

/// One artifact.
async fn file(gw: &Gateway, req: &Req<'_>, b: &BuildAt, a: &ArtifactEntry) -> Answer {
    let key = layout::path(&a.key);
    if gw.redirect == Redirect::Presigned
        && let Some(signer) = gw.view.store().presigner()
    {
        let url = signer.url(&key, gw.presign_expiry).await?;
        let mut r = answers::found(url.as_str());
        answers::set(&mut r, header::CACHE_CONTROL, "private, no-store");
        return Ok((Route::Artifact, r));
    }
    let etag = format!("\"{}\"", a.sha256);
    let modified = committed_at(b);
    let file_name = a.path.rsplit('/').next().unwrap_or(&a.path);
    let headers = |r: &mut Response| {
        answers::set(r, header::ETAG, &etag);
        answers::set(r, header::LAST_MODIFIED, &http_date(modified));
        answers::set(r, header::ACCEPT_RANGES, "bytes");
        answers::set(r, header::CONTENT_SECURITY_POLICY, ARTIFACT_CSP);
        if let Ok(raw) = hex::decode(&a.sha256) {
            let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
            answers::set(r, "Repr-Digest", &format!("sha-256=:{b64}:"));
        }
        answers::set(r, "X-Checksum-Sha256", &a.sha256);
    };
    if not_modified(req, &etag, modified) {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        headers(&mut r);
        return Ok((Route::Artifact, r));
    }
    let range = req
        .headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|h| parse_range(h, a.size));
    // `If-Range` with another validator: the whole file.
    let range = match req
        .headers
        .get(header::IF_RANGE)
        .and_then(|v| v.to_str().ok())
    {
        Some(ir) if ir.trim() != etag => None,
        _ => range,
    };
    let (status, start, end) = match range {
        Some(Err(())) => {
            let mut r = answers::text(StatusCode::RANGE_NOT_SATISFIABLE, "Range not satisfiable\n");
            answers::set(
                &mut r,
                header::CONTENT_RANGE,
                &format!("bytes */{}", a.size),
            );
            headers(&mut r);
            return Ok((Route::Artifact, r));
        }
        Some(Ok((s, e))) => (StatusCode::PARTIAL_CONTENT, s, e),
        None => (StatusCode::OK, 0, a.size),
    };
    let body = if req.method == Method::HEAD || start == end {
        Body::empty()
    } else {
        let Some(obj) = gw.view.store().read_stream(&key, Some(start..end)).await? else {
            return Ok((
                Route::Artifact,
                answers::failed(
                    StatusCode::BAD_GATEWAY,
                    &format!(
                        "the manifest lists '{}', but the store has no object '{}'; run `jam verify`",
                        a.path, a.key
                    ),
                ),
            ));
        };
        counted(gw, obj.body)
    };
    let mut r = Response::new(body);
    *r.status_mut() = status;
    answers::set(
        &mut r,
        header::CONTENT_TYPE,
        artifacts::content_type(file_name),
    );
    answers::set(&mut r, header::CONTENT_LENGTH, &(end - start).to_string());
    if status == StatusCode::PARTIAL_CONTENT {
        answers::set(
            &mut r,
            header::CONTENT_RANGE,
            &format!("bytes {start}-{}/{}", end.saturating_sub(1), a.size),
        );
    }
    headers(&mut r);
    Ok((Route::Artifact, r))
}

/// A body that counts the bytes it sends.
fn counted(
    gw: &Gateway,
    body: futures::stream::BoxStream<'static, Result<Bytes, StoreError>>,
) -> Body {
    let stats = gw.stats.clone();
    Body::from_stream(body.map(move |chunk| {
        if let Ok(c) = &chunk {
            stats.bytes.fetch_add(c.len() as u64, Ordering::Relaxed);
        }
        chunk.map_err(std::io::Error::other)
    }))
}

/// `…/artifact/<dir>/*zip*/<name>.zip`: the artifacts below `dir` (all of them for the root), under
/// `archive/` (or `<dir's last segment>/`), as Jenkins names the entries.
fn zip(gw: &Gateway, req: &Req<'_>, b: &BuildAt, dir: &str) -> (Route, Response) {
    let prefix = match dir.rsplit('/').next() {
        Some(last) if !dir.is_empty() => last.to_string(),
        _ => "archive".to_string(),
    };
    let entries: Vec<(String, ArtifactEntry)> = b
        .manifest
        .artifacts
        .iter()
        .filter_map(|a| {
            let rel = if dir.is_empty() {
                Some(a.path.as_str())
            } else {
                a.path.strip_prefix(dir).and_then(|r| r.strip_prefix('/'))
            };
            rel.map(|rel| (format!("{prefix}/{rel}"), a.clone()))
        })
        .collect();
    if entries.is_empty() {
        return (Route::Refused, answers::not_found());
    }
    let mut r = answers::with_body(StatusCode::OK, "application/zip", Body::empty());
    answers::set(&mut r, header::CONTENT_SECURITY_POLICY, ARTIFACT_CSP);
    if req.method == Method::HEAD {
        return (Route::Zip, r);
    }
    let store = gw.view.store().clone();
    let opened = futures::stream::iter(entries).then(move |(name, a)| {
        let store = store.clone();
        async move {
            let key = layout::path(&a.key);
            let obj = store
                .read_stream(&key, None)
                .await
                .map_err(std::io::Error::other)?
                .ok_or_else(|| {
                    std::io::Error::other(format!(
                        "the store has no object '{}' for '{}'",
                        a.key, a.path
                    ))
                })?;
            Ok::<_, std::io::Error>(ZipEntry {
                name,
                size: a.size,
                body: obj.body.map(|c| c.map_err(std::io::Error::other)).boxed(),
            })
        }
    });
    let stats = gw.stats.clone();
    let body = zip_stream(Box::pin(opened), b.manifest.timestamp as i64).map(move |c| {
        if let Ok(c) = &c {
            stats.bytes.fetch_add(c.len() as u64, Ordering::Relaxed);
        }
        c
    });
    *r.body_mut() = Body::from_stream(body);
    (Route::Zip, r)
}

/// `…/<run>/wfapi/artifacts` for Pipeline runs: the run's URL path without scheme or host.
pub(super) fn wfapi(at: &ItemAt, b: &BuildAt) -> (Route, Response) {
    let path = url::Url::parse(&format!("{}{}/", at.url, b.number))
        .map(|u| u.path().to_string())
        .unwrap_or_default();
    let arts: Vec<(&str, u64)> = b
        .manifest
        .artifacts
        .iter()
        .map(|a| (a.path.as_str(), a.size))
        .collect();
    let v = wfapi_artifacts(&path, &arts);
    let text = crate::jenkins::stapler::write(&v, crate::jenkins::stapler::Flavor::Jackson, false);
    let r = answers::with_body(
        StatusCode::OK,
        crate::jenkins::stapler::Flavor::Jackson.content_type(),
        text,
    );
    (Route::Api, r)
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn single_ranges_and_unsatisfiable_ones() {
        assert_eq!(parse_range("bytes=0-9", 100), Some(Ok((0, 10))));
        assert_eq!(parse_range("bytes=90-", 100), Some(Ok((90, 100))));
        assert_eq!(parse_range("bytes=-10", 100), Some(Ok((90, 100))));
        assert_eq!(parse_range("bytes=95-200", 100), Some(Ok((95, 100))));
        assert_eq!(parse_range("bytes=100-", 100), Some(Err(())));
        assert_eq!(parse_range("bytes=-0", 100), Some(Err(())));
        assert_eq!(parse_range("bytes=0-1,5-6", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
        assert_eq!(parse_range("bytes=5-2", 100), None);
    }
}
