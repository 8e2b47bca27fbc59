//! The gateway's view of the mirror: every read goes through the store, and what is kept is only a cache.
//!
//! - **Manifests** never change once committed: they are cached (a bounded number) and never read again.
//!   A build retention deleted is noticed through its job's index, which no longer lists it.
//! - **Indexes and controller records** change: a cached one is trusted for `serve.freshness`, then
//!   revalidated with a conditional GET on its ETag, which moves no bytes while it is unchanged. A missing
//!   document is cached the same way.
//! - **Listings** (the sources, a source's jobs) cost a `LIST` per folder: they are reused for
//!   `serve.listing_ttl`. A job mirrored since the last listing is still found by name (its index).
//!
//! So a download by permalink costs, in steady state, the artifact's own GET and one conditional GET of
//! the index per `serve.freshness`.

use std::{
    collections::{HashMap, VecDeque},
    hash::Hash,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde::de::DeserializeOwned;

use crate::{
    archive::{Catalog, CatalogError},
    format::{
        layout::{self, JobPath, Layout},
        manifest::{ControllerInfo, JobIndex, Manifest},
    },
    store::{Store, read::Fetched},
};

use super::items::ItemTree;

/// A map that forgets its oldest entries beyond a bound.
#[derive(Debug)]
pub(super) struct Bounded<K, V> {
    map: HashMap<K, V>,
    order: VecDeque<K>,
    cap: usize,
}

impl<K: Eq + Hash + Clone, V> Bounded<K, V> {
    pub(super) fn new(cap: usize) -> Self {
        Bounded {
            map: HashMap::new(),
            order: VecDeque::new(),
            cap: cap.max(1),
        }
    }

    pub(super) fn get(&self, k: &K) -> Option<&V> {
        self.map.get(k)
    }

    pub(super) fn insert(&mut self, k: K, v: V) {
        if self.map.insert(k.clone(), v).is_none() {
            self.order.push_back(k);
        }
        while self.map.len() > self.cap {
            match self.order.pop_front() {
                Some(old) => {
                    self.map.remove(&old);
                }
                None => break,
            }
        }
    }
}

/// A revalidated document: its value (`None`: no object), ETag, and when it was last checked.
struct Fresh<T> {
    value: Option<Arc<T>>,
    etag: Option<String>,
    checked: Instant,
}

/// Documents read through the store with revalidation (see the module's documentation).
struct Docs<T> {
    cache: Mutex<Bounded<String, Fresh<T>>>,
}

impl<T: DeserializeOwned> Docs<T> {
    fn new(cap: usize) -> Self {
        Docs {
            cache: Mutex::new(Bounded::new(cap)),
        }
    }

    async fn get(
        &self,
        store: &Store,
        key: &str,
        freshness: Duration,
    ) -> Result<Option<Arc<T>>, CatalogError> {
        let etag = {
            let cache = self.cache.lock().expect("cache lock");
            match cache.get(&key.to_string()) {
                Some(f) if f.checked.elapsed() < freshness => return Ok(f.value.clone()),
                Some(f) => f.etag.clone(),
                None => None,
            }
        };
        let path = Store::path(key)?;
        let fetched = store.get_if_changed(&path, etag.as_deref()).await?;
        let mut cache = self.cache.lock().expect("cache lock");
        let fresh = match fetched {
            Fetched::Unchanged => match cache.get(&key.to_string()) {
                Some(f) => Fresh {
                    value: f.value.clone(),
                    etag: f.etag.clone(),
                    checked: Instant::now(),
                },
                None => return Ok(None),
            },
            Fetched::Missing => Fresh {
                value: None,
                etag: None,
                checked: Instant::now(),
            },
            Fetched::Changed(bytes, meta) => {
                let value: T =
                    serde_json::from_slice(&bytes).map_err(|e| CatalogError::Corrupt {
                        key: key.to_string(),
                        message: e.to_string(),
                    })?;
                Fresh {
                    value: Some(Arc::new(value)),
                    etag: meta.e_tag,
                    checked: Instant::now(),
                }
            }
        };
        let value = fresh.value.clone();
        cache.insert(key.to_string(), fresh);
        Ok(value)
    }
}

/// Where an artifact was found by its MD5 (for `/fingerprint/<md5>/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Sighting {
    pub(super) source: String,
    pub(super) job: JobPath,
    pub(super) number: u64,
    pub(super) file_name: String,
    pub(super) timestamp: u64,
}

/// The gateway's cached reader of the mirror.
pub(super) struct View {
    store: Store,
    catalog: Catalog,
    freshness: Duration,
    listing_ttl: Duration,
    indexes: Docs<JobIndex>,
    controllers: Docs<ControllerInfo>,
    manifests: Mutex<Bounded<String, Arc<Manifest>>>,
    md5s: Mutex<Bounded<String, Sighting>>,
    sources: tokio::sync::Mutex<Option<(Instant, Arc<Vec<String>>)>>,
    trees: tokio::sync::Mutex<HashMap<String, (Instant, Arc<ItemTree>)>>,
}

/// Manifests, indexes and MD5 sightings kept at most.
const CACHED: usize = 20_000;

impl View {
    pub(super) fn new(store: Store, freshness: Duration, listing_ttl: Duration) -> View {
        View {
            catalog: Catalog::new(store.clone()),
            store,
            freshness,
            listing_ttl,
            indexes: Docs::new(CACHED),
            controllers: Docs::new(1024),
            manifests: Mutex::new(Bounded::new(CACHED)),
            md5s: Mutex::new(Bounded::new(CACHED)),
            sources: tokio::sync::Mutex::new(None),
            trees: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    pub(super) fn store(&self) -> &Store {
        &self.store
    }

    /// The sources the store holds (listed at most once per `listing_ttl`).
    pub(super) async fn sources(&self) -> Result<Arc<Vec<String>>, CatalogError> {
        let mut cached = self.sources.lock().await;
        if let Some((at, s)) = &*cached
            && at.elapsed() < self.listing_ttl
        {
            return Ok(s.clone());
        }
        let s = Arc::new(self.catalog.sources().await?);
        *cached = Some((Instant::now(), s.clone()));
        Ok(s)
    }

    /// A source's items: its jobs and the folders above them (listed at most once per `listing_ttl`).
    pub(super) async fn tree(&self, source: &str) -> Result<Arc<ItemTree>, CatalogError> {
        let mut trees = self.trees.lock().await;
        if let Some((at, t)) = trees.get(source)
            && at.elapsed() < self.listing_ttl
        {
            return Ok(t.clone());
        }
        let jobs = self.catalog.jobs(source).await?;
        let info = self.controller(source).await?;
        let tree = Arc::new(ItemTree::new(
            jobs.into_iter().map(|j| j.job),
            info.as_deref(),
        ));
        trees.insert(source.to_string(), (Instant::now(), tree.clone()));
        Ok(tree)
    }

    /// What the mirror last saw of a source's controller.
    pub(super) async fn controller(
        &self,
        source: &str,
    ) -> Result<Option<Arc<ControllerInfo>>, CatalogError> {
        let key = Layout::new(source).controller_key();
        self.controllers
            .get(&self.store, &key, self.freshness)
            .await
    }

    /// A job's index (`None`: no such job in the mirror).
    pub(super) async fn index(
        &self,
        layout: &Layout,
        job: &JobPath,
    ) -> Result<Option<Arc<JobIndex>>, CatalogError> {
        self.indexes
            .get(&self.store, &layout.index_key(job), self.freshness)
            .await
    }

    /// A committed build's manifest (read once, then cached).
    pub(super) async fn manifest(
        &self,
        layout: &Layout,
        job: &JobPath,
        number: u64,
    ) -> Result<Option<Arc<Manifest>>, CatalogError> {
        let key = layout.manifest_key(job, number);
        if let Some(m) = self.manifests.lock().expect("cache lock").get(&key) {
            return Ok(Some(m.clone()));
        }
        let Some(m) = self.catalog.read_json::<Manifest>(&key).await? else {
            return Ok(None);
        };
        let m = Arc::new(m);
        self.manifests
            .lock()
            .expect("cache lock")
            .insert(key, m.clone());
        let mut md5s = self.md5s.lock().expect("cache lock");
        for a in &m.artifacts {
            if let Some(md5) = &a.md5 {
                md5s.insert(
                    md5.clone(),
                    Sighting {
                        source: layout.source().to_string(),
                        job: job.clone(),
                        number,
                        file_name: a.path.rsplit('/').next().unwrap_or(&a.path).to_string(),
                        timestamp: m.timestamp,
                    },
                );
            }
        }
        Ok(Some(m))
    }

    /// Where the gateway has seen an artifact with this MD5 (in the manifests it has read).
    pub(super) fn sighting(&self, md5: &str) -> Option<Sighting> {
        self.md5s
            .lock()
            .expect("cache lock")
            .get(&md5.to_string())
            .cloned()
    }

    /// Whether the store answers a listing (readiness).
    pub(super) async fn probe(&self) -> Result<(), String> {
        self.store
            .list_dir(&layout::path(""))
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_maps_forget_the_oldest() {
        let mut b = Bounded::new(2);
        b.insert(1, "a");
        b.insert(2, "b");
        b.insert(1, "c");
        b.insert(3, "d");
        assert_eq!(b.get(&1), None);
        assert_eq!((b.get(&2), b.get(&3)), (Some(&"b"), Some(&"d")));
    }

    #[tokio::test]
    async fn documents_are_revalidated_after_their_freshness() {
        let store = Store::open(&crate::config::StoreConfig::new("memory://")).unwrap();
        let layout = Layout::new("ci");
        let job = JobPath::new(["app"]);
        let view = View::new(store.clone(), Duration::ZERO, Duration::ZERO);
        assert!(view.index(&layout, &job).await.unwrap().is_none());
        let key = layout::path(&layout.index_key(&job));
        store
            .put(&key, JobIndex::new(job.clone()).to_json())
            .await
            .unwrap();
        let ix = view.index(&layout, &job).await.unwrap().unwrap();
        assert_eq!(ix.full_name, "app");
        // Unchanged: a conditional GET, no bytes, the same value.
        let gets = || {
            store.stats().get(
                crate::store::counting::StoreOp::Get,
                crate::store::counting::StoreOutcome::Ok,
            )
        };
        let before = gets();
        let again = view.index(&layout, &job).await.unwrap().unwrap();
        assert!(Arc::ptr_eq(&ix, &again));
        assert_eq!(gets(), before, "an unchanged index is not read again");
        // Within the freshness, not even that.
        let fresh = View::new(store.clone(), Duration::from_secs(60), Duration::ZERO);
        fresh.index(&layout, &job).await.unwrap();
        store.delete(&key).await.unwrap();
        assert!(fresh.index(&layout, &job).await.unwrap().is_some());
        assert!(view.index(&layout, &job).await.unwrap().is_none());
    }
}
