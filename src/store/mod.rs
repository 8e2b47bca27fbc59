//! The object store behind the mirror: store URLs, backends, and the few operations jam builds on.
//!
//! [`Store::open`] turns a store URL (`s3://bucket/prefix`, `file:///abs/path`, a plain relative path, or
//! `memory://`) into an `object_store` backend. Every key jam uses is relative to the URL's prefix. Beyond
//! plain reads and writes, the mirror needs two conditional writes: *create* (a build's manifest is its
//! commit marker, written at most once) and *compare-and-swap update* (pointers only move forward).
//! S3 does both natively (`If-None-Match`/`If-Match`); `object_store`'s local file system has no
//! conditional update, so [`Store::update`] serialises updates inside this process there (a local directory
//! has a single writer).

pub mod counting;
pub mod journal;
pub mod presign;
pub mod read;
pub mod s3_uploads;
pub mod write;

use std::{path::PathBuf, sync::Arc, time::Duration};

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::{
    BackoffConfig, ClientOptions, ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions,
    PutPayload, RetryConfig, UpdateVersion,
    aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey, S3ConditionalPut},
    local::LocalFileSystem,
    memory::InMemory,
    multipart::MultipartStore,
    path::Path,
    prefix::PrefixStore,
};
use secrecy::ExposeSecret;

use crate::{
    chain::error_chain,
    config::StoreConfig,
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
    /// Opens the store a configuration names. A local directory is created if missing.
    pub fn open(cfg: &StoreConfig) -> Result<Store, StoreError> {
        let url = cfg.url.trim();
        let bad = |message: String| StoreError::Config {
            url: url.to_string(),
            message,
        };
        if let Some(rest) = url
            .strip_prefix("s3://")
            .or_else(|| url.strip_prefix("s3a://"))
        {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad(
                    "no bucket; write s3://BUCKET or s3://BUCKET/PREFIX".into()
                ));
            }
            let s3 = build_s3(cfg, bucket).map_err(|e| bad(e.to_string()))?;
            let presigner = presign::Presigner::new(Arc::new(s3.clone()), prefix);
            let uploads = S3Uploads::new(cfg, &s3, bucket, prefix).map_err(bad)?;
            let prefix = prefix.trim_matches('/');
            let store = if prefix.is_empty() {
                let s3 = Arc::new(s3);
                Store::new(s3.clone(), Backend::S3, url.to_string()).with_multipart(s3)
            } else {
                let p = Path::parse(prefix).map_err(|e| bad(e.to_string()))?;
                let s3 = Arc::new(PrefixStore::new(s3, p));
                Store::new(s3.clone(), Backend::S3, url.to_string()).with_multipart(s3)
            };
            return Ok(Store {
                uploads: Some(Arc::new(uploads)),
                presigner: Some(Arc::new(presigner)),
                ..store
            });
        }
        if url == "memory://" || url == "memory:///" {
            let mem = Arc::new(InMemory::new());
            return Ok(
                Store::new(mem.clone(), Backend::Memory, "memory://".into()).with_multipart(mem)
            );
        }
        let dir = if let Some(rest) = url.strip_prefix("file://") {
            if !rest.starts_with('/') {
                return Err(bad("file URLs must be absolute (file:///abs/path); for a relative directory give the path alone".into()));
            }
            PathBuf::from(
                crate::format::layout::percent_decode(rest).unwrap_or_else(|| rest.to_string()),
            )
        } else if url.contains("://") {
            let scheme = url.split("://").next().unwrap_or_default();
            return Err(bad(format!(
                "unknown scheme '{scheme}://'; use s3://bucket[/prefix], file:///abs/path, a directory path, or memory://"
            )));
        } else {
            PathBuf::from(url)
        };
        std::fs::create_dir_all(&dir)
            .map_err(|e| bad(format!("cannot create directory '{}': {e}", dir.display())))?;
        let local = LocalFileSystem::new_with_prefix(&dir)
            .map_err(|e| bad(e.to_string()))?
            .with_automatic_cleanup(true);
        Ok(Store::new(
            Arc::new(local),
            Backend::Local,
            dir.display().to_string(),
        ))
    }

    /// Wraps an existing backend (tests use `InMemory`).
    pub fn new(inner: Arc<dyn ObjectStore>, backend: Backend, describe: String) -> Store {
        let stats = Arc::new(StoreStats::default());
        Store {
            inner: Arc::new(InstrumentedStore::new(inner, stats.clone())),
            multipart: None,
            uploads: None,
            backend,
            describe,
            update_lock: Arc::new(tokio::sync::Mutex::new(())),
            stats,
            presigner: None,
        }
    }

    /// Adds the backend's multipart API (see [`Store::multipart`]).
    pub fn with_multipart(mut self, multipart: Arc<dyn MultipartStore>) -> Store {
        self.multipart = Some(Arc::new(InstrumentedMultipart::new(
            multipart,
            self.stats.clone(),
        )));
        self
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
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .inner
            .put_opts(key, PutPayload::from(bytes), opts)
            .await
        {
            Ok(_) => Ok(Created::Created),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(Created::Existed),
            Err(e) => Err(StoreError::op("create", key)(e)),
        }
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

/// object_store's own retry of S3 requests: 5xx (`SlowDown` included), connection errors, and timeouts
/// of idempotent requests, with a decorrelated-jitter backoff from 100 ms (×2 per retry, at most 15 s).
/// It is the only level that retries a failing store request (`crate::retry` has the whole table):
///
/// - `max_retries: 10`, so at most 11 requests: a burst of 503s clears within the first few retries, and
///   ten retries (waits summing to a minute or more) ride out a short outage of a single request;
/// - `retry_timeout: 180 s`: no retry starts after three minutes, so a failing request is reported within
///   about 180 s + 15 s + `store.request_timeout`, well inside the five minutes object_store advises
///   (requests are retried without being signed again). A longer outage fails the build attempt, and the
///   worker tries the build again on a later cycle (`mirror.retry_backoff`, `mirror.max_attempts`);
/// - the backoff: object_store's defaults, written out so that the numbers above stay true if they
///   change.
fn request_retry() -> RetryConfig {
    RetryConfig {
        max_retries: 10,
        retry_timeout: Duration::from_secs(180),
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(15),
            base: 2.0,
        },
    }
}

fn build_s3(cfg: &StoreConfig, bucket: &str) -> object_store::Result<AmazonS3> {
    s3_builder(cfg, bucket)?.build()
}

/// The S3 client a store configuration describes. Everything comes from `cfg`, nothing from the
/// environment: the `AWS_*` settings object_store would read itself (credential providers, encryption, ...)
/// are in [`StoreConfig::aws`], applied first so that jam's own settings win over them.
fn s3_builder(cfg: &StoreConfig, bucket: &str) -> object_store::Result<AmazonS3Builder> {
    let mut client = ClientOptions::new()
        .with_connect_timeout(Duration::from_secs(10))
        .with_timeout(cfg.request_timeout)
        .with_read_timeout(Duration::from_secs(60))
        .with_user_agent(object_store::HeaderValue::from_static(concat!(
            "jam/",
            env!("CARGO_PKG_VERSION")
        )));
    if let Some(ca) = &cfg.ca_bundle {
        let pem = std::fs::read(ca).map_err(|e| object_store::Error::Generic {
            store: "S3",
            source: format!("cannot read ca_bundle '{}': {e}", ca.display()).into(),
        })?;
        for cert in object_store::Certificate::from_pem_bundle(&pem)? {
            client = client.with_root_certificate(cert);
        }
    }
    let mut b = AmazonS3Builder::new();
    for (key, value) in cfg.aws.iter() {
        b = b.with_config(key, value.expose_secret());
    }
    // with_client_options replaces every client-level key, so allow_http must come after it.
    let mut b = b
        .with_bucket_name(bucket)
        .with_client_options(client)
        .with_retry(request_retry())
        .with_allow_http(cfg.allow_http)
        .with_virtual_hosted_style_request(cfg.virtual_hosted_style)
        .with_conditional_put(S3ConditionalPut::ETagMatch)
        .with_region(cfg.region.clone().unwrap_or_else(|| "us-east-1".into()));
    if let Some(ep) = &cfg.endpoint {
        b = b.with_endpoint(ep.clone());
    }
    // Over TLS the payload needs no SigV4 hash of its own (TLS protects it on the wire, and jam hashes
    // every byte itself): that saves a SHA-256 pass over every part. Over plain HTTP the signed payload
    // hash is the only wire integrity check, so it stays. AWS_UNSIGNED_PAYLOAD, when set, decides.
    let https = cfg
        .endpoint
        .as_deref()
        .is_none_or(|e| e.starts_with("https://"));
    if !cfg.aws.contains(AmazonS3ConfigKey::UnsignedPayload) {
        b = b.with_unsigned_payload(https);
    }
    if let Some(k) = &cfg.access_key_id {
        b = b.with_access_key_id(k.expose_secret());
    }
    if let Some(k) = &cfg.secret_access_key {
        b = b.with_secret_access_key(k.expose_secret());
    }
    if let Some(k) = &cfg.session_token {
        b = b.with_token(k.expose_secret());
    }
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(url: &str) -> StoreConfig {
        StoreConfig::new(url)
    }

    #[test]
    fn unknown_scheme_is_refused_with_the_choices() {
        let err = Store::open(&cfg("ftp://host/x")).unwrap_err().to_string();
        assert!(err.contains("unknown scheme 'ftp://'"), "{err}");
        assert!(err.contains("s3://bucket"), "{err}");
        let err = Store::open(&cfg("file://relative/x"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("absolute"), "{err}");
        let err = Store::open(&cfg("s3://")).unwrap_err().to_string();
        assert!(err.contains("no bucket"), "{err}");
    }

    #[test]
    fn the_s3_client_takes_the_environment_settings_config_collected() {
        let env = crate::config::Env::from_map(
            [
                ("AWS_ROLE_ARN", "arn:aws:iam::1:role/jam"),
                ("AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/token"),
                ("AWS_REGION", "eu-west-1"),
                ("AWS_ALLOW_HTTP", "true"),
                ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000"),
                ("AWS_SESSION_TOKEN", "session"),
                ("AWS_TOKEN", "ignored-when-session-token-is-set"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        );
        let raw = crate::config::RawConfig::default();
        let cfg = crate::config::Config::from_raw(raw, None, &Default::default(), &env)
            .unwrap()
            .store;
        let b = s3_builder(&cfg, "bucket").unwrap();
        let get = |k| b.get_config_value(&k);
        assert_eq!(
            get(AmazonS3ConfigKey::RoleArn).as_deref(),
            Some("arn:aws:iam::1:role/jam")
        );
        assert_eq!(
            get(AmazonS3ConfigKey::WebIdentityTokenFile).as_deref(),
            Some("/var/run/token")
        );
        assert_eq!(get(AmazonS3ConfigKey::Region).as_deref(), Some("eu-west-1"));
        assert_eq!(get(AmazonS3ConfigKey::Bucket).as_deref(), Some("bucket"));
        assert_eq!(get(AmazonS3ConfigKey::Token).as_deref(), Some("session"));
        assert_eq!(
            get(AmazonS3ConfigKey::Client(
                object_store::ClientConfigKey::AllowHttp
            ))
            .as_deref(),
            Some("true"),
            "allow_http survives with_client_options"
        );
        assert_eq!(
            get(AmazonS3ConfigKey::UnsignedPayload).as_deref(),
            Some("false"),
            "plain HTTP keeps the signed payload"
        );
        let mut tls = StoreConfig::new("s3://bucket");
        assert_eq!(
            s3_builder(&tls, "bucket")
                .unwrap()
                .get_config_value(&AmazonS3ConfigKey::UnsignedPayload)
                .as_deref(),
            Some("true"),
            "TLS to AWS needs no payload hash"
        );
        tls.aws.push(
            AmazonS3ConfigKey::UnsignedPayload,
            "false".to_string().into(),
        );
        assert_eq!(
            s3_builder(&tls, "bucket")
                .unwrap()
                .get_config_value(&AmazonS3ConfigKey::UnsignedPayload)
                .as_deref(),
            Some("false"),
            "AWS_UNSIGNED_PAYLOAD decides when set"
        );
    }

    #[test]
    fn local_paths_are_created() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a/b");
        let s = Store::open(&cfg(target.to_str().unwrap())).unwrap();
        assert_eq!(s.backend(), Backend::Local);
        assert!(target.is_dir());
        let url = format!("file://{}", dir.path().join("c%20d").display());
        Store::open(&cfg(&url)).unwrap();
        assert!(dir.path().join("c d").is_dir());
    }
}
