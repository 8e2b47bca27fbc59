//! The gateway's canned answers and the headers every kind carries.
//!
//! - Every answer: `X-Jam` (jam's version), `X-Content-Type-Options: nosniff`, `Cache-Control: private,
//!   no-cache` (answers depend on the reader and on what is mirrored; validators make revalidation cheap).
//! - JSON and pages: `X-Jenkins` (the mirrored controller's version as last seen) as Jenkins sends it on
//!   `…/api/*` and its layout pages; pages also get a `Content-Security-Policy` that allows no script at
//!   all and styles only from the gateway, and `X-Frame-Options: deny`.
//! - Artifact bodies: Jenkins' `DirectoryBrowserSupport` policy, `sandbox` included, so an archived HTML
//!   report runs no script on the gateway's origin ([`ARTIFACT_CSP`]).

use axum::body::Body;
use http::{HeaderValue, StatusCode, header};

/// Jenkins' `DirectoryBrowserSupport.DEFAULT_CSP_VALUE`, sent with every artifact body.
pub const ARTIFACT_CSP: &str =
    "sandbox allow-same-origin; default-src 'none'; img-src 'self'; style-src 'self';";

/// The pages' policy: no script of any kind, styles and images from the gateway only, no framing.
pub const PAGE_CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'none'; \
                            frame-ancestors 'none'; base-uri 'none'";

/// An answer.
pub type Response = http::Response<Body>;

/// An answer with a status, a content type and a body.
pub(super) fn with_body(status: StatusCode, content_type: &str, body: impl Into<Body>) -> Response {
    let mut r = Response::new(body.into());
    *r.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

/// Sets a header from text (dropped if the text is not a valid header value).
pub(super) fn set(r: &mut Response, name: impl header::IntoHeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(name, v);
    }
}

/// The headers of every answer.
pub(super) fn common(r: &mut Response) {
    let h = r.headers_mut();
    h.insert("X-Jam", HeaderValue::from_static(env!("CARGO_PKG_VERSION")));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("private, no-cache"));
}

/// The headers of JSON answers and pages: `X-Jenkins` when the controller's version is known.
pub(super) fn jenkins(r: &mut Response, version: Option<&str>) {
    if let Some(v) = version {
        set(r, "X-Jenkins", v);
    }
    r.headers_mut()
        .insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("deny"));
}

/// The headers of pages.
pub(super) fn page_policy(r: &mut Response) {
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_CSP),
    );
}

/// A plain-text answer.
pub(super) fn text(status: StatusCode, body: impl Into<Body>) -> Response {
    with_body(status, "text/plain;charset=UTF-8", body)
}

/// 404, as Jenkins answers both what does not exist and what the reader may not see.
pub(super) fn not_found() -> Response {
    text(StatusCode::NOT_FOUND, "Not found\n")
}

/// 401 with the challenge that makes browsers ask for credentials.
pub(super) fn unauthorized(message: &str) -> Response {
    let mut r = text(StatusCode::UNAUTHORIZED, format!("{message}\n"));
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"jam\""),
    );
    r
}

/// 429 for an address with too many failed logins.
pub(super) fn too_many(retry_after_secs: u64) -> Response {
    let mut r = text(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many failed logins from this address; try again later\n",
    );
    set(
        &mut r,
        header::RETRY_AFTER,
        &retry_after_secs.max(1).to_string(),
    );
    r
}

/// 405 for anything but GET and HEAD.
pub(super) fn method_not_allowed() -> Response {
    let mut r = text(
        StatusCode::METHOD_NOT_ALLOWED,
        "The mirror is read-only: GET and HEAD only\n",
    );
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    r
}

/// 400 for a path Jenkins would refuse too (`..` segments).
pub(super) fn bad_request(message: &str) -> Response {
    text(StatusCode::BAD_REQUEST, format!("{message}\n"))
}

/// A 302 to `location`.
pub(super) fn found(location: &str) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::FOUND;
    set(&mut r, header::LOCATION, location);
    r
}

/// 500 with a message that names what failed (never a secret: store errors carry keys, not credentials).
pub(super) fn failed(status: StatusCode, message: &str) -> Response {
    text(status, format!("{message}\n"))
}
