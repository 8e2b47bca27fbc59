//! What the gateway reports on `/metrics`: requests by route and status, bytes served, answer latency,
//! connections open, and (registered beside these) the store's requests.

use std::{
    collections::BTreeMap,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use crate::metrics::{Collect, Exposition, Histogram};

/// Latency buckets of answers (seconds, until the headers are ready).
const LATENCY_BUCKETS: &[f64] = &[0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0];

/// What kind of answer a request got, for the `route` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Route {
    /// `…/api/json|python` and the other JSON endpoints.
    Api,
    /// An HTML page (or a directory listing).
    Page,
    /// An artifact's bytes (or its presigned redirect).
    Artifact,
    /// A `*zip*` archive.
    Zip,
    /// `SHA256SUMS`, `*plain*` and the other text answers.
    Text,
    /// A redirect to the slash form of a URL.
    Redirect,
    /// `/metrics`, `/healthz`, `/readyz`, the stylesheet.
    Ops,
    /// An answer without content: 401, 404, 405, 429.
    Refused,
}

impl Route {
    fn name(self) -> &'static str {
        match self {
            Route::Api => "api",
            Route::Page => "page",
            Route::Artifact => "artifact",
            Route::Zip => "zip",
            Route::Text => "text",
            Route::Redirect => "redirect",
            Route::Ops => "ops",
            Route::Refused => "refused",
        }
    }
}

/// The gateway's counters.
#[derive(Debug)]
pub struct ServeStats {
    requests: Mutex<BTreeMap<(Route, u16), u64>>,
    /// Body bytes sent.
    pub bytes: AtomicU64,
    /// Connections open now.
    pub connections: AtomicU64,
    latency: Histogram,
}

impl Default for ServeStats {
    fn default() -> Self {
        ServeStats {
            requests: Mutex::new(BTreeMap::new()),
            bytes: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            latency: Histogram::new(LATENCY_BUCKETS),
        }
    }
}

impl ServeStats {
    /// Counts one answer.
    pub fn answered(&self, route: Route, status: u16, took: Duration) {
        *self
            .requests
            .lock()
            .expect("stats lock")
            .entry((route, status))
            .or_default() += 1;
        self.latency.observe(took);
    }

    /// Answers so far with this route and status.
    pub fn count(&self, route: Route, status: u16) -> u64 {
        self.requests
            .lock()
            .expect("stats lock")
            .get(&(route, status))
            .copied()
            .unwrap_or(0)
    }
}

impl Collect for ServeStats {
    fn collect(&self, out: &mut Exposition) {
        let requests = self.requests.lock().expect("stats lock").clone();
        let f = out.family(
            "jam_serve_requests_total",
            "counter",
            "Requests answered by the gateway, by route and status.",
        );
        for ((route, status), n) in requests {
            f.sample(
                "",
                &[("route", route.name()), ("status", &status.to_string())],
                n,
            );
        }
        out.counter(
            "jam_serve_bytes_total",
            "Body bytes the gateway sent.",
            &self.bytes,
        );
        out.single(
            "jam_serve_connections",
            "gauge",
            "Connections open now.",
            self.connections.load(Ordering::Relaxed),
        );
        self.latency.write(
            out,
            "jam_serve_response_seconds",
            "Time from a request's arrival to its answer's headers.",
        );
    }
}
