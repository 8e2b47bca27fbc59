//! What `jam ls --workers` shows: every heartbeat on the store, with the claims and singletons each
//! worker holds and its journaled uploads. Read once, so nothing here judges who is alive: the age shown
//! is the store's `Last-Modified` against this host's clock, for people only (workers judge liveness by
//! watching a heartbeat change, never by a clock).

use std::collections::BTreeMap;

use serde::Serialize;

use super::{CLAIMS, LEASES, WORKERS, lease::LeaseDoc};
use crate::store::{Store, StoreError, journal::JOURNALS};

/// One worker as its heartbeat and the objects it holds describe it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WorkerRow {
    /// The worker id.
    pub id: String,
    /// `worker` (announced), `dead` (marked by a clean-up), or `none` (holds objects, no heartbeat).
    pub state: String,
    /// Host, pid and jam version, as the heartbeat says.
    pub host: Option<String>,
    /// The process id.
    pub pid: Option<u32>,
    /// The jam version.
    pub version: Option<String>,
    /// Its lease, in seconds.
    pub lease_s: Option<f64>,
    /// When it started, by its own clock.
    pub started: Option<String>,
    /// When it last wrote its heartbeat, by its own clock.
    pub written_at: Option<String>,
    /// Seconds since the store last saw the heartbeat written (the store's clock against this host's:
    /// approximate, for people).
    pub age_s: Option<f64>,
    /// The builds it claims (build prefixes).
    pub claims: Vec<String>,
    /// The singletons it holds.
    pub singletons: Vec<String>,
    /// Multipart uploads its journal records as open.
    pub open_uploads: usize,
}

/// Every worker on the store.
pub async fn survey(store: &Store) -> Result<Vec<WorkerRow>, StoreError> {
    let mut rows: BTreeMap<String, WorkerRow> = BTreeMap::new();
    let blank = |id: &str| WorkerRow {
        id: id.to_string(),
        state: "none".into(),
        host: None,
        pid: None,
        version: None,
        lease_s: None,
        started: None,
        written_at: None,
        age_s: None,
        claims: Vec::new(),
        singletons: Vec::new(),
        open_uploads: 0,
    };
    let now = std::time::SystemTime::now();
    for meta in store.list_all(&Store::path(WORKERS)?).await? {
        let Some((bytes, _)) = store.get(&meta.location).await? else {
            continue;
        };
        let Some(d) = LeaseDoc::parse(&bytes) else {
            continue;
        };
        let modified: std::time::SystemTime = meta.last_modified.into();
        rows.insert(
            d.holder.clone(),
            WorkerRow {
                state: d.kind.clone(),
                host: Some(d.host.clone()),
                pid: Some(d.pid),
                version: Some(d.version.clone()),
                lease_s: Some(d.lease().as_secs_f64()),
                started: Some(d.since.clone()),
                written_at: Some(d.written_at.clone()),
                age_s: now
                    .duration_since(modified)
                    .ok()
                    .map(|a| (a.as_secs_f64() * 10.0).round() / 10.0),
                ..blank(&d.holder)
            },
        );
    }
    for (dir, singleton) in [(CLAIMS, false), (LEASES, true)] {
        for meta in store.list_all(&Store::path(dir)?).await? {
            let Some((bytes, _)) = store.get(&meta.location).await? else {
                continue;
            };
            let Some(d) = LeaseDoc::parse(&bytes) else {
                continue;
            };
            let name = meta
                .location
                .as_ref()
                .strip_prefix(&format!("{dir}/"))
                .unwrap_or(meta.location.as_ref())
                .to_string();
            let row = rows
                .entry(d.holder.clone())
                .or_insert_with(|| blank(&d.holder));
            if singleton {
                row.singletons.push(name);
            } else {
                row.claims.push(name);
            }
        }
    }
    for meta in store.list_all(&Store::path(JOURNALS)?).await? {
        let rest = meta
            .location
            .as_ref()
            .strip_prefix(&format!("{JOURNALS}/"))
            .unwrap_or_default();
        let Some((enc, _)) = rest.split_once('/') else {
            continue;
        };
        let id = crate::format::layout::percent_decode(enc).unwrap_or_else(|| enc.to_string());
        rows.entry(id.clone())
            .or_insert_with(|| blank(&id))
            .open_uploads += 1;
    }
    Ok(rows.into_values().collect())
}
