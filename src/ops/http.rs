//! The operations endpoint of `jam mirror --listen ADDR`: `/metrics` (Prometheus text format), `/healthz`
//! (the process is alive and serving) and `/readyz` (the store answers and takes a write, and every
//! controller accepts jam's credentials); with a notice secret, also `POST /notify/jenkins`
//! ([`super::notify`]).
//!
//! Readiness is checked live on each request, with its own Jenkins clients (one attempt, a short
//! timeout, so a dead controller answers "not ready" in seconds instead of after the worker's retries)
//! and results cached for [`READY_CACHE`] so an eager prober cannot turn into load. The server stops
//! gracefully when its token is cancelled.

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    Router,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
    routing::get,
};
use bytes::Bytes;
use serde::Serialize;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::{
    config::{Config, JenkinsConfig},
    format::layout,
    jenkins::{JenkinsClient, JenkinsError},
    metrics::{self, Registry},
    store::Store,
};

/// How long a readiness result is reused.
pub const READY_CACHE: Duration = Duration::from_secs(1);

/// How long one readiness check (store or controller) may take.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// The outcome of one readiness check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was checked: `store` or `controller <name>`.
    pub name: String,
    /// Whether it passed.
    pub ok: bool,
    /// What was found, or what is wrong and what to do.
    pub detail: String,
}

/// A readiness check that needs no request: `Ok` with what was found, or `Err` with what is wrong.
type LocalCheck = Box<dyn Fn() -> Result<String, String> + Send + Sync>;

/// Readiness: the store and every controller, checked with clients of their own, and any local checks
/// (the worker's heartbeat).
pub struct Readiness {
    store: Store,
    controllers: Vec<JenkinsClient>,
    local: Vec<(String, LocalCheck)>,
    probe_key: String,
    cache: Mutex<Option<(Instant, Vec<Check>)>>,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readiness")
            .field("store", &self.store)
            .field("controllers", &self.controllers)
            .finish_non_exhaustive()
    }
}

impl Readiness {
    /// Readiness checks for a configuration's controllers and an opened store.
    pub fn new(cfg: &Config, store: Store) -> Result<Readiness, JenkinsError> {
        let controllers = cfg
            .jenkins
            .iter()
            .map(|j| JenkinsClient::new(&check_client_config(j)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Readiness {
            store,
            controllers,
            local: Vec::new(),
            probe_key: format!(".jam/ready/{}", cfg.mirror.worker_id),
            cache: Mutex::new(None),
        })
    }

    /// Adds a check answered without a request (`name` is how `/readyz` lists it).
    pub fn with_check(
        mut self,
        name: &str,
        check: impl Fn() -> Result<String, String> + Send + Sync + 'static,
    ) -> Readiness {
        self.local.push((name.to_string(), Box::new(check)));
        self
    }

    /// Runs every check (or returns the last results, if fresher than [`READY_CACHE`]).
    pub async fn check(&self) -> Vec<Check> {
        let mut cache = self.cache.lock().await;
        if let Some((at, checks)) = &*cache
            && at.elapsed() < READY_CACHE
        {
            return checks.clone();
        }
        // The local checks as of the request (before the remote ones, which may take their time).
        let local: Vec<Check> = self
            .local
            .iter()
            .map(|(name, check)| {
                let (ok, detail) = match check() {
                    Ok(d) => (true, d),
                    Err(d) => (false, d),
                };
                Check {
                    name: name.clone(),
                    ok,
                    detail,
                }
            })
            .collect();
        let mut checks = vec![self.check_store().await];
        for c in &self.controllers {
            checks.push(check_controller(c).await);
        }
        checks.extend(local);
        *cache = Some((Instant::now(), checks.clone()));
        checks
    }

    async fn check_store(&self) -> Check {
        let name = "store".to_string();
        let key = layout::path(&self.probe_key);
        let work = async {
            self.store.probe().await.map_err(|e| e.to_string())?;
            self.store
                .put(&key, Bytes::from(crate::format::manifest::now_rfc3339()))
                .await
                .map_err(|e| format!("the store answers but refuses a write: {e}"))
        };
        match tokio::time::timeout(CHECK_TIMEOUT, work).await {
            Ok(Ok(())) => Check {
                name,
                ok: true,
                detail: format!("{} answers and takes writes", self.store.describe()),
            },
            Ok(Err(detail)) => Check {
                name,
                ok: false,
                detail,
            },
            Err(_) => Check {
                name,
                ok: false,
                detail: format!(
                    "{} did not answer within {}s; check the endpoint and the network",
                    self.store.describe(),
                    CHECK_TIMEOUT.as_secs()
                ),
            },
        }
    }
}

/// A controller's settings for a health check: one attempt, bounded in time.
pub fn check_client_config(j: &JenkinsConfig) -> JenkinsConfig {
    let mut j = j.clone();
    j.retries = 1;
    j.api_timeout = j.api_timeout.min(CHECK_TIMEOUT);
    j.connect_timeout = j.connect_timeout.min(Duration::from_secs(5));
    j
}

/// Checks that a controller answers `/whoAmI` and accepts jam's credentials as a user.
pub async fn check_controller(c: &JenkinsClient) -> Check {
    let name = format!("controller {}", c.name());
    match tokio::time::timeout(CHECK_TIMEOUT, c.who_am_i()).await {
        Ok(Ok(who)) if who.authenticated && !who.anonymous => Check {
            name,
            ok: true,
            detail: format!("{} authenticated as '{}'", c.base(), who.name),
        },
        Ok(Ok(who)) => Check {
            name,
            ok: false,
            detail: format!(
                "{} answers but treats jam as '{}' (not authenticated): check the user and API token",
                c.base(),
                who.name
            ),
        },
        Ok(Err(e)) => Check {
            name,
            ok: false,
            detail: e.to_string(),
        },
        Err(_) => Check {
            name,
            ok: false,
            detail: format!(
                "{} did not answer within {}s",
                c.base(),
                CHECK_TIMEOUT.as_secs()
            ),
        },
    }
}

struct AppState {
    metrics: Registry,
    readiness: Readiness,
}

/// The endpoint's address cannot be listened on (taken, or not this host's).
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr} (mirror.listen / --listen): {source}")]
pub struct BindError {
    /// The address.
    pub addr: SocketAddr,
    /// Why.
    pub source: std::io::Error,
}

/// Binds the endpoint's address (before the worker starts, so a taken port fails at once).
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, BindError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| BindError { addr, source })
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Registry,
    readiness: Readiness,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    serve_with(listener, metrics, readiness, None, shutdown).await
}

/// [`serve`], and build notices on [`super::notify::NOTIFY_PATH`] when `notices` is given.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    metrics: Registry,
    readiness: Readiness,
    notices: Option<super::notify::NoticeEndpoint>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let state = Arc::new(AppState { metrics, readiness });
    let mut app = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready_handler))
        .with_state(state);
    if let Some(n) = notices {
        app = app.merge(n.router());
    }
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown.cancelled_owned())
    .await
}

async fn metrics_handler(State(s): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        s.metrics.render(),
    )
}

async fn ready_handler(State(s): State<Arc<AppState>>) -> impl IntoResponse {
    let checks = s.readiness.check().await;
    let ok = checks.iter().all(|c| c.ok);
    let mut body = String::from(if ok { "ready\n" } else { "not ready\n" });
    for c in &checks {
        body.push_str(&format!(
            "{} {}: {}\n",
            if c.ok { "ok  " } else { "FAIL" },
            c.name,
            c.detail
        ));
    }
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
}
