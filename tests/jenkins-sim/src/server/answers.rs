//! Canned answers: Jenkins' HTML pages and error pages with the headers each one carries,
//! plain text and redirects, and exported beans served through `tree`/`depth`/`pretty` in the
//! `api/json` or `api/python` flavour.
//!
//! Which answers carry the version headers (API.md §1.7, §10.3):
//!
//! * `Api.setHeaders` (every `…/api/json|python`): `X-Jenkins`, `X-Jenkins-Session`,
//!   `X-Content-Type-Options`, `X-Frame-Options`; no `X-Hudson`.
//! * `Functions.advertiseHeaders` (every `<l:layout>` page: the dashboard, job and build
//!   pages, `accessDenied`, the 404 and "oops" pages, login, the anonymous 403):
//!   `X-Hudson: 1.395`, `X-Jenkins`, `X-Jenkins-Session`.
//! * None: artifact bytes, redirects, the container's 401, `sendError` answers (jsonp 403, the
//!   400 for `..`), plain text, `wfapi`.

use crate::json::{Flavor, write};
use crate::model::{Model, Who};
use crate::names::raw_encode;
use crate::tree::Pruner;
use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
pub(super) use jam::jenkins::stapler::api_flavor;
use jam::jenkins::stapler::{ApiError, render};
use serde_json::Value;

/// A bare HTML page without Jenkins' headers (container error pages, injected faults).
pub(super) fn html(status: StatusCode, title: &str, body: &str) -> Response {
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

/// A page rendered through `<l:layout>`: [`html`] plus `Functions.advertiseHeaders`.
pub(super) fn page(m: &Model, status: StatusCode, title: &str, body: &str) -> Response {
    let mut r = html(status, title, body);
    version_headers(m, &mut r);
    r.headers_mut()
        .insert("X-Hudson", HeaderValue::from_static("1.395"));
    r
}

pub(super) fn fault_response(status: u16, retry_after: Option<u64>) -> Response {
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

/// `X-Jenkins` and `X-Jenkins-Session`, common to API answers and layout pages.
fn version_headers(m: &Model, r: &mut Response) {
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&m.version) {
        h.insert("X-Jenkins", v);
    }
    if let Ok(v) = HeaderValue::from_str(&m.session) {
        h.insert("X-Jenkins-Session", v);
    }
}

pub(super) fn not_found(m: &Model) -> Response {
    page(
        m,
        StatusCode::NOT_FOUND,
        "Not Found",
        "<h2>HTTP ERROR 404 Not Found</h2>",
    )
}

pub(super) fn oops(m: &Model, msg: &str) -> Response {
    page(
        m,
        StatusCode::INTERNAL_SERVER_ERROR,
        "Oops!",
        &format!(
            "<h2>A problem occurred while processing the request</h2><pre>jakarta.servlet.ServletException: {}</pre>",
            escape(msg)
        ),
    )
}

pub(super) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// 401 for bad credentials (Spring's `BasicAuthenticationEntryPoint`, container error page).
pub(super) fn unauthorized() -> Response {
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

/// `HudsonAuthenticationEntryPoint`'s page for an anonymous caller: 403 that refreshes to the
/// login page, with `report` (why access was denied) in a comment. Without the permission
/// report headers: [`forbidden`] adds them for a missing permission; `/me` answers an
/// anonymous caller who may read with just this page (API.md §10.2).
pub(super) fn login_required(m: &Model, path: &str, report: &str) -> Response {
    let from = raw_encode(path);
    page(
        m,
        StatusCode::FORBIDDEN,
        "Authentication required",
        &format!(
            "<meta http-equiv='refresh' content='1;url=/login?from={from}'/><script>window.location.replace('/login?from={from}');</script>\n<!--\n{report}\n-->"
        ),
    )
}

/// 403 for a caller without Overall/Read (§1.2 anonymous, §1.3 authenticated), with the
/// `X-You-Are-*` / `X-Required-Permission` report.
pub(super) fn forbidden(m: &Model, who: &Who, path: &str) -> Response {
    let name = match who {
        Who::Anonymous => "anonymous",
        Who::User(u) => u.as_str(),
    };
    let mut r = match who {
        Who::Anonymous => login_required(
            m,
            path,
            "You are authenticated as: anonymous\nGroups that you are in:\n  \nPermission you need to have (but didn't): hudson.model.Hudson.Read\n -> implied by: hudson.security.Permission.GenericRead\n -> implied by: hudson.model.Hudson.Administer",
        ),
        Who::User(u) => page(
            m,
            StatusCode::FORBIDDEN,
            "Access Denied",
            &format!(
                "<p>{} is missing the Overall/Read permission</p>",
                escape(u)
            ),
        ),
    };
    let h = r.headers_mut();
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

/// `Api.setHeaders` plus the flavour's `Content-Type` (stapler `Flavor`).
fn api_response(m: &Model, text: String, flavor: Flavor) -> Response {
    let mut r = Response::new(Body::from(text));
    version_headers(m, &mut r);
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(flavor.content_type()),
    );
    h.insert(
        "X-Content-Type-Options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("X-Frame-Options", HeaderValue::from_static("deny"));
    r
}

/// Serves an exported bean at `…/api/<seg>` (`seg` accepted by [`api_flavor`]) honouring
/// `tree`, `depth`, `pretty`, and `jsonp` (refused, as without a `SecureRequester`).
pub(super) fn api(
    m: &Model,
    seg: &str,
    query: Option<&str>,
    f: impl FnOnce(Pruner<'_>) -> Value,
) -> Response {
    let flavor = api_flavor(seg).unwrap_or(Flavor::Json);
    match render(flavor, query, f) {
        Ok(text) => api_response(m, text, flavor),
        // `Api.doJson`: `sendError(403, …)` before any header is set.
        Err(e @ ApiError::Jsonp) => html(
            StatusCode::FORBIDDEN,
            "Error 403 Forbidden",
            &format!("<h2>HTTP ERROR 403 {e}</h2>"),
        ),
        Err(e) => oops(m, &e.to_string()),
    }
}

/// A Jackson-written JSON answer as pipeline-rest-api's `JsonResponse` sends it.
pub(super) fn jackson(v: &Value) -> Response {
    let mut r = Response::new(Body::from(write(v, Flavor::Jackson, false)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    r
}

pub(super) fn text(s: String) -> Response {
    let mut r = Response::new(Body::from(s));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain;charset=UTF-8"),
    );
    r
}

pub(super) fn redirect(location: &str) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::FOUND;
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}
