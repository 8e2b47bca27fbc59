//! `POST /notify/jenkins` on the `--listen` address: build notices from Jenkins (the Notification
//! plugin, or a Pipeline's `post` step with `httpRequest` or `curl`), which make the worker look at
//! the job at once ([`crate::mirror::Notices`]).
//!
//! The endpoint exists only when a secret is configured (`mirror.notify_secret_file` or
//! `JAM_NOTIFY_SECRET`). A request must carry it as `Authorization: Bearer SECRET`, as the password
//! of `Authorization: Basic` (the plugin turns a URL's `user:SECRET@` into that), or as the URL
//! parameter `token=SECRET` (for a plugin URL without user info); it is compared by SHA-256 digest in
//! constant time and never logged. Then, in this order: only POST (405), the secret (401, before the
//! body is read), at most [`MAX_NOTICE_BYTES`] of body (413), a notice jam can read (400, saying what
//! is wrong), a controller and a job this worker mirrors (404; `controller=NAME` in the URL picks the
//! controller when several are configured and the notice's URL does not tell), room in the worker's
//! queue (503); then 202. Nothing else is served under `/notify/`.

use std::{net::SocketAddr, sync::Arc};

use axum::{
    Router,
    body::Body,
    extract::{ConnectInfo, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
    routing::any,
};
use secrecy::{ExposeSecret, SecretString};
use sha2::Digest;

use crate::{
    jenkins::notice,
    mirror::{NoticeRefused, Notices, Rejection, Submitted},
    serve::access::{constant_time_eq, credentials},
};

/// The path Jenkins posts build notices to.
pub const NOTIFY_PATH: &str = "/notify/jenkins";

/// The largest notice body taken (the plugin's document lists every artifact's URL: 2 MiB holds
/// about 15,000).
pub const MAX_NOTICE_BYTES: usize = 2 * 1024 * 1024;

/// The build-notice endpoint: the secret's digest and the worker's handle.
pub struct NoticeEndpoint {
    secret_sha256: [u8; 32],
    notices: Notices,
}

impl std::fmt::Debug for NoticeEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoticeEndpoint").finish_non_exhaustive()
    }
}

impl NoticeEndpoint {
    /// An endpoint that takes notices carrying `secret`, for the worker behind `notices`.
    pub fn new(secret: &SecretString, notices: Notices) -> NoticeEndpoint {
        NoticeEndpoint {
            secret_sha256: sha2::Sha256::digest(secret.expose_secret().as_bytes()).into(),
            notices,
        }
    }

    /// The route, to merge into the `--listen` router.
    pub(super) fn router(self) -> Router {
        Router::new()
            .route(NOTIFY_PATH, any(handle))
            .with_state(Arc::new(self))
    }

    /// Whether the request carries the secret (header or `token` parameter).
    fn authorized(&self, headers: &HeaderMap, uri: &Uri) -> bool {
        let mut presented: Vec<Vec<u8>> = headers
            .get_all(header::AUTHORIZATION)
            .iter()
            .filter_map(|v| credentials(v.as_bytes()))
            .map(|(_, token)| token)
            .collect();
        presented.extend(
            query(uri)
                .filter(|(k, _)| k == "token")
                .map(|(_, v)| v.into_bytes()),
        );
        // Every candidate is compared: the time taken says nothing about which one was close.
        presented.iter().fold(false, |ok, p| {
            let digest: [u8; 32] = sha2::Sha256::digest(p).into();
            constant_time_eq(&digest, &self.secret_sha256) | ok
        })
    }
}

fn query(uri: &Uri) -> impl Iterator<Item = (String, String)> + '_ {
    url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()).into_owned()
}

fn answer(status: StatusCode, text: impl Into<String>) -> Response {
    let mut text = text.into();
    text.push('\n');
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text,
    )
        .into_response()
}

async fn handle(
    State(ep): State<Arc<NoticeEndpoint>>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let stats = ep.notices.stats();
    stats.received();
    let refuse = |why: Rejection, status: StatusCode, text: String| {
        stats.rejected(why);
        answer(status, text)
    };
    if method != Method::POST {
        let mut r = refuse(
            Rejection::Method,
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{NOTIFY_PATH} takes build notices by POST only"),
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return r;
    }
    if !ep.authorized(&headers, &uri) {
        tracing::warn!(client = %from.ip(), "build notice refused: no or wrong secret");
        let mut r = refuse(
            Rejection::Unauthorized,
            StatusCode::UNAUTHORIZED,
            "a build notice needs jam's notice secret: send `Authorization: Bearer SECRET`, user info \
             `https://jam:SECRET@host/notify/jenkins`, or `?token=SECRET`"
                .into(),
        );
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"jam build notices\""),
        );
        return r;
    }
    let too_large = || {
        refuse(
            Rejection::TooLarge,
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "a build notice is at most {MAX_NOTICE_BYTES} bytes; polling will find this build \
                 (with the Notification plugin, keep Log lines at 0)"
            ),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_NOTICE_BYTES as u64) {
        return too_large();
    }
    let Ok(body) = axum::body::to_bytes(body, MAX_NOTICE_BYTES).await else {
        return too_large();
    };
    let parsed = match notice::parse(&body) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(client = %from.ip(), error = %e, "build notice refused: malformed");
            return refuse(
                Rejection::Malformed,
                StatusCode::BAD_REQUEST,
                format!("not a build notice: {e}"),
            );
        }
    };
    let controller = query(&uri).find(|(k, _)| k == "controller").map(|(_, v)| v);
    let build = parsed
        .number
        .map_or("(any build)".into(), |n| format!("#{n}"));
    let phase = parsed.phase.map_or("pipeline", |p| p.as_str());
    match ep.notices.submit(controller.as_deref(), &parsed) {
        Ok(Submitted::Queued { controller }) => {
            stats.accepted();
            tracing::debug!(controller, job = %parsed.job, build, phase, "build notice: looking at the job");
            answer(
                StatusCode::ACCEPTED,
                format!("looking at {controller} {} {build} now", parsed.job),
            )
        }
        Ok(Submitted::Early { controller }) => {
            stats.accepted();
            answer(
                StatusCode::ACCEPTED,
                format!(
                    "{controller} {} {build} is {phase}: nothing to mirror until it completes",
                    parsed.job
                ),
            )
        }
        Err(e @ NoticeRefused::Busy(_)) => {
            tracing::warn!(error = %e, job = %parsed.job, "build notice dropped");
            refuse(
                Rejection::Busy,
                StatusCode::SERVICE_UNAVAILABLE,
                e.to_string(),
            )
        }
        Err(e) => {
            tracing::warn!(client = %from.ip(), error = %e, "build notice for nothing this worker mirrors");
            refuse(Rejection::Unknown, StatusCode::NOT_FOUND, e.to_string())
        }
    }
}
