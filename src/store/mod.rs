//! The object store behind the mirror: store URLs, backends, and the few operations jam builds on.
//!
//! [`Store::open`] turns a store URL (`s3://bucket/prefix`, `file:///abs/path`, a plain relative path, or
//! `memory://`) into an `object_store` backend. Every key jam uses is relative to the URL's prefix. Beyond
//! plain reads and writes, the mirror needs two conditional writes: *create* (a build's manifest is its
//! commit marker, written at most once) and *compare-and-swap update* (pointers only move forward).
//! S3 does both natively (`If-None-Match`/`If-Match`); `object_store`'s local file system has no
//! conditional update, so [`Store::update`] serialises updates inside this process there (a local directory
//! has a single writing process: `jam mirror` holds its [`lock`]).
//!
//! The files: `open.rs` (URLs, backends, the S3 client and its retry), [`write`] (the one way artifact bytes
//! go into the store), [`counting`] (every request counted by operation and outcome), [`journal`] and
//! [`s3_uploads`] (no multipart upload left open after a crash), [`versioned`] (create and compare-and-swap
//! returning the new version, and the probe that the store honours them), [`lock`] (one writing process per
//! local directory).

pub mod counting;
pub mod journal;
pub mod lock;
mod open;
pub mod presign;
pub mod read;
pub mod s3_uploads;
pub mod versioned;
pub mod write;

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::{
    ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion,
    multipart::MultipartStore, path::Path,
};

use crate::{
    chain::error_chain,
    retry::RetryPolicy,
    store::{
        counting::{InstrumentedMultipart, InstrumentedStore, StoreStats},
        s3_uploads::S3Uploads,
    },
};

/// An error from the store, naming the operation and the key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store URL or its settings are unusable.
    #[error("store '{url}': {message}")]
    Config {
        /// The URL as given.
        url: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// A key jam built is not a valid object path.
    #[error("invalid store key '{key}': {message}")]
    BadKey {
        /// The key.
        key: String,
        /// Why.
        message: String,
    },
    /// An operation on the store failed.
    #[error("store {op} '{key}' failed: {}{}", error_chain(source), hint(source))]
    Op {
        /// The operation (`get`, `put`, `list`, …).
        op: &'static str,
        /// The key, relative to the store root.
        key: String,
        /// The backend's error.
        source: object_store::Error,
    },
}

/// What to do about a store error, when the error says.
pub(crate) fn hint(e: &object_store::Error) -> &'static str {
    match e {
        object_store::Error::PermissionDenied { .. } => {
            "; check that the credentials may write the bucket (s3:PutObject, s3:DeleteObject, s3:AbortMultipartUpload)"
        }
        object_store::Error::Unauthenticated { .. } => {
            "; check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or the key files in [store])"
        }
        _ => "",
    }
}

impl StoreError {
    /// Whether the error means the object does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            StoreError::Op {
                source: object_store::Error::NotFound { .. },
                ..
            }
        )
    }

    fn op<'a>(
        op: &'static str,
        key: &'a Path,
    ) -> impl FnOnce(object_store::Error) -> StoreError + 'a {
        move |source| StoreError::Op {
            op,
            key: key.to_string(),
            source,
        }
    }
}

/// Which kind of backend a store is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// S3 or an S3-compatible server.
    S3,
    /// A local directory.
    Local,
    /// Process memory (tests).
    Memory,
}

/// The mirror's object store: a backend, a description for messages, and the conditional-write helpers.
#[derive(Clone)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    /// The same backend's multipart API, where it has one (S3, memory): uploads whose ids jam records so
    /// a restarted worker can abort what a killed one left open.
    multipart: Option<Arc<dyn MultipartStore>>,
    /// On S3: lists the open uploads of a key, for the journal's clean-up of uploads whose id was lost.
    uploads: Option<Arc<S3Uploads>>,
    backend: Backend,
    describe: String,
    /// Serialises [`Store::update`] on backends without a native conditional update.
    update_lock: Arc<tokio::sync::Mutex<()>>,
    /// Requests by operation and outcome (the backend is wrapped so that every request is counted).
    stats: Arc<StoreStats>,
    /// For a local directory store: the directory (its lock file lives there).
    local_dir: Option<std::path::PathBuf>,
    /// The backend and its multipart API without the counting wrapper (for [`Store::counted_apart`]).
    raw: Arc<dyn ObjectStore>,
    raw_multipart: Option<Arc<dyn MultipartStore>>,
    /// On S3: signs GET URLs ([`presign`]).
    presigner: Option<Arc<presign::Presigner>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("store", &self.describe)
            .finish()
    }
}

/// The outcome of a conditional create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// The object was written.
    Created,
    /// An object was already there; nothing was written.
    Existed,
}

impl Store {
    /// Wraps an existing backend (tests use `InMemory`).
    pub fn new(inner: Arc<dyn ObjectStore>, backend: Backend, describe: String) -> Store {
        let stats = Arc::new(StoreStats::default());
        Store {
            raw: inner.clone(),
            raw_multipart: None,
            inner: Arc::new(InstrumentedStore::new(inner, stats.clone())),
            multipart: None,
            uploads: None,
            backend,
            describe,
            update_lock: Arc::new(tokio::sync::Mutex::new(())),
            stats,
            local_dir: None,
            presigner: None,
        }
    }

    /// Adds the backend's multipart API (see [`Store::multipart`]).
    pub fn with_multipart(mut self, multipart: Arc<dyn MultipartStore>) -> Store {
        self.raw_multipart = Some(multipart.clone());
        self.multipart = Some(Arc::new(InstrumentedMultipart::new(
            multipart,
            self.stats.clone(),
        )));
        self
    }

    /// The same store, with its requests counted apart in `stats` instead of in [`Store::stats`] (the
    /// coordination of several workers is counted so, beside the mirror's own requests).
    pub fn counted_apart(&self, stats: Arc<StoreStats>) -> Store {
        Store {
            inner: Arc::new(InstrumentedStore::new(self.raw.clone(), stats.clone())),
            multipart: self.raw_multipart.as_ref().map(|mp| {
                Arc::new(InstrumentedMultipart::new(mp.clone(), stats.clone()))
                    as Arc<dyn MultipartStore>
            }),
            stats,
            ..self.clone()
        }
    }

    /// Requests made so far, by operation and outcome (metrics).
    pub fn stats(&self) -> &Arc<StoreStats> {
        &self.stats
    }

    /// On S3, the lister of open multipart uploads (see [`s3_uploads`]).
    pub fn open_uploads(&self) -> Option<&S3Uploads> {
        self.uploads.as_deref()
    }

    /// The backend's multipart API, when jam drives multipart uploads itself (S3, memory).
    pub fn multipart(&self) -> Option<&Arc<dyn MultipartStore>> {
        self.multipart.as_ref()
    }

    /// The backend, for code that must know (e.g. tests and `jam doctor`).
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The raw `object_store` backend, rooted at the store's prefix.
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.inner
    }

    /// The store as given, for messages (carries no credentials).
    pub fn describe(&self) -> &str {
        &self.describe
    }

    /// Parses a key relative to the store root.
    pub fn path(key: &str) -> Result<Path, StoreError> {
        Path::parse(key).map_err(|e| StoreError::BadKey {
            key: key.to_string(),
            message: e.to_string(),
        })
    }

    /// Reads a whole (small) object; `None` if it does not exist.
    pub async fn get(&self, key: &Path) -> Result<Option<(Bytes, ObjectMeta)>, StoreError> {
        match self.inner.get(key).await {
            Ok(r) => {
                let meta = r.meta.clone();
                let bytes = r.bytes().await.map_err(StoreError::op("get", key))?;
                Ok(Some((bytes, meta)))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(StoreError::op("get", key)(e)),
        }
    }

    /// Object metadata; `None` if it does not exist.
    pub async fn head(&self, key: &Path) -> Result<Option<ObjectMeta>, StoreError> {
        match self.inner.head(key).await {
            Ok(m) => Ok(Some(m)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(StoreError::op("head", key)(e)),
        }
    }

    /// Writes an object, replacing any previous one.
    pub async fn put(&self, key: &Path, bytes: Bytes) -> Result<(), StoreError> {
        self.inner
            .put(key, PutPayload::from(bytes))
            .await
            .map(|_| ())
            .map_err(StoreError::op("put", key))
    }

    /// Writes an object only if none exists at that key (the commit marker's write).
    pub async fn create(&self, key: &Path, bytes: Bytes) -> Result<Created, StoreError> {
        Ok(match self.create_versioned(key, bytes).await? {
            versioned::Versioned::Written(_) => Created::Created,
            versioned::Versioned::Conflict => Created::Existed,
        })
    }

    /// Read-modify-write with compare-and-swap: `f` sees the current bytes (or `None`) and returns the new
    /// bytes, or `None` to leave the object as it is. Reads again and retries when another writer got
    /// there first ([`CONFLICT_RETRY`]). Returns whether anything was written.
    pub async fn update<F>(&self, key: &Path, mut f: F) -> Result<bool, StoreError>
    where
        F: FnMut(Option<&[u8]>) -> Option<Bytes>,
    {
        if self.backend == Backend::Local {
            let _guard = self.update_lock.lock().await;
            let current = self.get(key).await?;
            return match f(current.as_ref().map(|(b, _)| b.as_ref())) {
                Some(new) => self.put(key, new).await.map(|_| true),
                None => Ok(false),
            };
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let current = self.get(key).await?;
            let Some(new) = f(current.as_ref().map(|(b, _)| b.as_ref())) else {
                return Ok(false);
            };
            let mode = match &current {
                None => PutMode::Create,
                Some((_, meta)) => PutMode::Update(UpdateVersion {
                    e_tag: meta.e_tag.clone(),
                    version: meta.version.clone(),
                }),
            };
            let opts = PutOptions {
                mode,
                ..Default::default()
            };
            match self.inner.put_opts(key, PutPayload::from(new), opts).await {
                Ok(_) => return Ok(true),
                Err(
                    object_store::Error::AlreadyExists { .. }
                    | object_store::Error::Precondition { .. },
                ) if CONFLICT_RETRY.allows_another(attempt) => {
                    tokio::time::sleep(CONFLICT_RETRY.delay(attempt, None)).await;
                }
                Err(
                    object_store::Error::AlreadyExists { .. }
                    | object_store::Error::Precondition { .. },
                ) => {
                    return Err(StoreError::Op {
                        op: "update",
                        key: key.to_string(),
                        source: object_store::Error::Generic {
                            store: "jam",
                            source: format!(
                                "gave up after {attempt} conflicting concurrent updates"
                            )
                            .into(),
                        },
                    });
                }
                Err(e) => return Err(StoreError::op("update", key)(e)),
            }
        }
    }

    /// Deletes an object; deleting a missing object is not an error.
    pub async fn delete(&self, key: &Path) -> Result<(), StoreError> {
        match self.inner.delete(key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(StoreError::op("delete", key)(e)),
        }
    }

    /// Lists one level below `prefix`: the objects there and the child prefixes.
    pub async fn list_dir(
        &self,
        prefix: &Path,
    ) -> Result<(Vec<ObjectMeta>, Vec<Path>), StoreError> {
        let r = self
            .inner
            .list_with_delimiter(Some(prefix))
            .await
            .map_err(StoreError::op("list", prefix))?;
        Ok((r.objects, r.common_prefixes))
    }

    /// Checks that the store answers: one listing of jam's own `.jam/` prefix (a missing bucket, wrong
    /// credentials or an unreachable endpoint fail here, before any work starts).
    pub async fn probe(&self) -> Result<(), StoreError> {
        self.list_dir(&Path::from(".jam")).await.map(|_| ()).map_err(|e| match e {
            StoreError::Op { source, .. } => StoreError::Config {
                url: self.describe.clone(),
                message: format!(
                    "the store does not answer as expected ({}); check that the bucket exists, the endpoint \
                     and region are right, and the credentials may list and write it",
                    error_chain(&source)
                ),
            },
            other => other,
        })
    }

    /// Lists every object below `prefix`, recursively.
    pub async fn list_all(&self, prefix: &Path) -> Result<Vec<ObjectMeta>, StoreError> {
        self.inner
            .list(Some(prefix))
            .try_collect()
            .await
            .map_err(StoreError::op("list", prefix))
    }
}

/// Compare-and-swap conflicts in [`Store::update`]: another writer updated the object between the read
/// and the conditional write. Each attempt reads again, so waits stay short; 64 attempts ride out dozens
/// of writers updating one key at once.
pub const CONFLICT_RETRY: RetryPolicy =
    RetryPolicy::new(64, Duration::from_millis(10), Duration::from_millis(50));
