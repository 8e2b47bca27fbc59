//! Opening a store: a store URL (`s3://bucket/prefix`, `file:///abs/path`, a plain relative path, or
//! `memory://`) and its settings become an `object_store` backend, wrapped so every request is counted. For
//! S3 every setting comes from the configuration (which gathered the `AWS_*` environment), and object_store's
//! own retry is set explicitly.

use std::{path::PathBuf, sync::Arc, time::Duration};

use object_store::{
    BackoffConfig, ClientOptions, RetryConfig,
    aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey, S3ConditionalPut},
    local::LocalFileSystem,
    memory::InMemory,
    path::Path,
    prefix::PrefixStore,
};
use secrecy::ExposeSecret;

use super::{Backend, Store, StoreError, presign, s3_uploads::S3Uploads};
use crate::config::StoreConfig;

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
        Ok(Store {
            local_dir: Some(dir.clone()),
            ..Store::new(Arc::new(local), Backend::Local, dir.display().to_string())
        })
    }
}

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
