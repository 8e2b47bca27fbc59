//! The two redirect targets of API.md §6.6 and §6.7: a fake S3 that serves presigned URLs
//! (and refuses `Authorization`), and a resource-root host that serves `static-files/<token>/`
//! URLs (and answers 400 to authenticated requests).

use super::answers::{forbidden, html, not_found, redirect};
use super::download::{bytes_response, http_date, jenkins_file_response};
use super::{Req, Shared};
use crate::model::{Artifact, Model, Who, now_ms};
use crate::names::{parse_query, raw_encode, split_path};
use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use base64::Engine as _;
use serde_json::Value;
use std::sync::Arc;

const S3_BUCKET: &str = "jenkins-artifacts";
const S3_EXPIRES_S: i64 = 3600;
pub(super) const RR_VALID_MS: i64 = 30 * 60 * 1000;

fn amz_date(ms: i64) -> String {
    // yyyyMMdd'T'HHmmss'Z'
    let d = crate::export::format_git_date(ms); // "yyyy-MM-dd HH:mm:ss +0000"
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

pub(super) fn presign(sh: &Shared, m: &Model, full_name: &str, number: u64, path: &str) -> String {
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

pub(super) fn s3_route(sh: &Shared, r: &Req<'_>) -> Response {
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
    let mut resp = bytes_response(
        &a,
        r.method,
        status,
        (start, end),
        "application/octet-stream",
    );
    let h = resp.headers_mut();
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

pub(super) fn rr_token(
    m: &Model,
    user: &str,
    full_name: &str,
    number: u64,
    expires_ms: i64,
) -> String {
    let payload =
        serde_json::json!({"u": user, "j": full_name, "n": number, "e": expires_ms}).to_string();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(payload.as_bytes());
    let sig = rr_sig(m, &b64);
    format!("{b64}.{sig}")
}

pub(super) fn rr_route(sh: &Shared, r: &Req<'_>, user_out: &mut Option<String>) -> Response {
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
    let art = m.resolve(m.root(), &names, &who).and_then(|(_, item)| {
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
    fn amz_dates_round_trip() {
        let ms = 1762958943000;
        let d = amz_date(ms);
        assert_eq!(d, "20251112T144903Z");
        assert_eq!(parse_amz_date(&d), Some(ms));
    }
}
