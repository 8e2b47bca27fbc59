//! `jam serve`: a read-only HTTP server over the mirror that answers like Jenkins, so scripts, Jenkins
//! clients and people read the mirror with the URLs they already use.
//!
//! It reads the store through the archive's catalog and the store's revalidating reads ([`view`]), and
//! writes nothing. The parts:
//!
//! - [`route`] (with the types of what a request names in [`request`]): Jenkins' URL space (sources, `job/<seg>` items, builds by number and permalink,
//!   `artifact/…`, `SHA256SUMS`, the root endpoints clients call);
//! - [`json`]: the exported beans (`…/api/json|python`, `tree` and `depth` through the shared Stapler
//!   code in [`crate::jenkins::stapler`]);
//! - [`files`]: downloads (ranges, conditional requests, the SHA-256 as ETag and `Repr-Digest`, presigned
//!   redirects), listings and streamed zips;
//! - [`pages`]: HTML for people, escaped by the template engine;
//! - [`access`]: users, tokens, job globs and the failed-login limit;
//! - [`http`]: the listener (TLS, timeouts, the connection limit, graceful shutdown), with one access-log
//!   line per request;
//! - [`metrics`]: `/metrics`, next to `/healthz` and `/readyz`.

pub mod access;
mod answers;
mod files;
pub mod http;
mod items;
mod json;
pub mod metrics;
mod pages;
mod request;
mod route;
mod view;

use std::{net::SocketAddr, sync::Arc, time::Duration, time::Instant};

use ::http::{HeaderMap, Method, StatusCode, header};

pub use answers::{ARTIFACT_CSP, PAGE_CSP, Response};

use crate::{
    config::{ConfigError, Redirect, ServeConfig},
    jenkins::stapler::names::{request_root, split_path},
    metrics::Registry,
    store::Store,
};

use access::{Access, Denied};
use metrics::{Route, ServeStats};
use request::Req;
use view::View;

/// Why the gateway cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// A setting is unusable (a token file that cannot be read, say).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `serve.redirect = "presigned"` on a store that cannot presign.
    #[error(
        "serve.redirect = \"presigned\" needs an S3 store, but {store} cannot presign URLs; use redirect = \"proxy\" (the default)"
    )]
    CannotPresign {
        /// The store, as described for messages.
        store: String,
    },
    /// The TLS certificate or key cannot be used.
    #[error("serve.tls_cert / serve.tls_key: {0}")]
    Tls(String),
    /// The address cannot be listened on.
    #[error("cannot listen on {addr} (serve.listen / --listen): {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// The gateway: the view of the mirror, the access rules, and its counters.
pub struct Gateway {
    view: View,
    access: Access,
    stats: Arc<ServeStats>,
    source: Option<String>,
    public_url: Option<url::Url>,
    listen: SocketAddr,
    redirect: Redirect,
    presign_expiry: Duration,
    request_timeout: Duration,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("store", &self.view.store().describe())
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// A gateway over an opened store; reads the users' token files, and refuses presigned mode on a
    /// store that cannot presign.
    pub fn new(cfg: &ServeConfig, store: Store) -> Result<Gateway, ServeError> {
        if cfg.redirect == Redirect::Presigned && store.presigner().is_none() {
            return Err(ServeError::CannotPresign {
                store: store.describe().to_string(),
            });
        }
        Ok(Gateway {
            access: Access::new(cfg)?,
            view: View::new(store, cfg.freshness, cfg.listing_ttl),
            stats: Arc::new(ServeStats::default()),
            source: cfg.source.clone(),
            public_url: cfg.public_url.clone(),
            listen: cfg.listen,
            redirect: cfg.redirect,
            presign_expiry: cfg.presign_expiry,
            request_timeout: cfg.request_timeout,
        })
    }

    /// The gateway's counters.
    pub fn stats(&self) -> &Arc<ServeStats> {
        &self.stats
    }

    /// What `/metrics` reports: the gateway's counters and the store's requests.
    pub fn metrics(&self) -> Registry {
        let registry = Registry::default();
        registry.register(self.stats.clone());
        registry.register(self.view.store().stats().clone());
        registry
    }

    /// The gateway's own root URL: `serve.public_url`, else the request's (`Host`, `X-Forwarded-*`).
    fn base_for(&self, headers: &HeaderMap) -> String {
        match &self.public_url {
            Some(u) => u.to_string(),
            None => request_root(headers, &self.listen.to_string()),
        }
    }

    /// Answers one request from `peer`, logs it, and counts it.
    pub async fn handle<B>(&self, req: ::http::Request<B>, peer: SocketAddr) -> Response {
        let started = Instant::now();
        let (route, user, mut resp) = self.answer(&req, peer).await;
        answers::common(&mut resp);
        let status = resp.status().as_u16();
        self.stats.answered(route, status, started.elapsed());
        let bytes = resp
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-");
        tracing::info!(
            target: "jam::serve::access",
            client = %peer.ip(),
            user = user.as_deref().unwrap_or("-"),
            method = %req.method(),
            path = %req.uri().path(),
            status,
            bytes,
            ms = started.elapsed().as_millis() as u64,
            "request"
        );
        resp
    }

    async fn answer<B>(
        &self,
        req: &::http::Request<B>,
        peer: SocketAddr,
    ) -> (Route, Option<String>, Response) {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return (Route::Refused, None, answers::method_not_allowed());
        }
        let mut path = req.uri().path();
        if let Some(prefix) = self
            .public_url
            .as_ref()
            .map(|u| u.path())
            .filter(|p| *p != "/")
            && let Some(rest) = path.strip_prefix(prefix.trim_end_matches('/'))
        {
            path = if rest.is_empty() { "/" } else { rest };
        }
        match path {
            "/healthz" => return (Route::Ops, None, answers::text(StatusCode::OK, "ok\n")),
            "/readyz" => return (Route::Ops, None, self.ready().await),
            "/metrics" => {
                let r = answers::with_body(
                    StatusCode::OK,
                    crate::metrics::CONTENT_TYPE,
                    self.metrics().render(),
                );
                return (Route::Ops, None, r);
            }
            "/static/jam.css" => {
                let mut r =
                    answers::with_body(StatusCode::OK, "text/css;charset=UTF-8", pages::STYLESHEET);
                answers::set(&mut r, header::CACHE_CONTROL, "public, max-age=3600");
                return (Route::Ops, None, r);
            }
            _ => {}
        }
        let reader = match self.access.check(req.headers(), peer.ip()) {
            Ok(r) => r,
            Err(Denied::NoCredentials) => {
                return (
                    Route::Refused,
                    None,
                    answers::unauthorized("Authentication required"),
                );
            }
            Err(Denied::Wrong) => {
                return (
                    Route::Refused,
                    None,
                    answers::unauthorized("Invalid credentials"),
                );
            }
            Err(Denied::Limited(wait)) => {
                return (Route::Refused, None, answers::too_many(wait.as_secs()));
            }
        };
        let user = Some(reader.name().to_string());
        let owned = split_path(path);
        let segs: Vec<&str> = owned.iter().map(String::as_str).collect();
        if segs.iter().any(|s| *s == ".." || *s == ".") {
            return (
                Route::Refused,
                user,
                answers::bad_request("'..' and '.' are not allowed in paths"),
            );
        }
        let r = Req {
            method: req.method(),
            headers: req.headers(),
            path,
            query: req.uri().query(),
            reader,
        };
        match tokio::time::timeout(self.request_timeout, self.route(&r, &segs)).await {
            Ok(Ok((route, resp))) => (route, user, resp),
            Ok(Err(e)) => {
                tracing::error!(path = %path, error = %e, "reading the mirror failed");
                let msg = format!("reading the mirror failed: {e}");
                (
                    Route::Refused,
                    user,
                    answers::failed(StatusCode::BAD_GATEWAY, &msg),
                )
            }
            Err(_) => {
                tracing::warn!(path = %path, timeout_s = self.request_timeout.as_secs(), "request timed out");
                let msg = "the store did not answer in time (serve.request_timeout)";
                (
                    Route::Refused,
                    user,
                    answers::failed(StatusCode::SERVICE_UNAVAILABLE, msg),
                )
            }
        }
    }

    /// `/readyz`: the store answers a listing.
    async fn ready(&self) -> Response {
        let check = tokio::time::timeout(Duration::from_secs(10), self.view.probe()).await;
        match check {
            Ok(Ok(())) => answers::text(
                StatusCode::OK,
                format!(
                    "ready\nok   store: {} answers\n",
                    self.view.store().describe()
                ),
            ),
            Ok(Err(e)) => answers::text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready\nFAIL store: {e}\n"),
            ),
            Err(_) => answers::text(
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready\nFAIL store: no answer within 10s\n",
            ),
        }
    }
}
