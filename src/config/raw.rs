//! The TOML file as written: [`RawConfig`] and its tables, a plain serde schema in which every table
//! rejects unknown keys and every key is optional (defaults are the validated sections' business).

use std::path::PathBuf;

use serde::Deserialize;

use super::{
    ConfigError, DEFAULT_CONFIG_FILE, Env, Overrides,
    parse::parse_toml,
    values::{Backfill, Dur, LogFormat, Size},
};

/// The TOML file as written. Every table rejects unknown keys.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawConfig {
    /// `[store]`
    pub store: RawStore,
    /// `[mirror]`
    pub mirror: RawMirror,
    /// `[[jenkins]]`
    pub jenkins: Vec<RawJenkins>,
    /// `[log]`
    pub log: RawLog,
    /// `[fetch]`
    pub fetch: RawFetch,
    /// `[[retention]]`
    pub retention: Vec<RawRetention>,
    /// `[serve]`
    pub serve: RawServe,
}

/// `[serve]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawServe {
    /// Listen address.
    pub listen: Option<String>,
    /// The source served at `/`.
    pub source: Option<String>,
    /// Root of `url` fields and links.
    pub public_url: Option<String>,
    /// `proxy` or `presigned`.
    pub redirect: Option<String>,
    /// Validity of presigned URLs.
    pub presign_expiry: Option<Dur>,
    /// Reading without credentials.
    pub anonymous: Option<bool>,
    /// TLS certificate chain (PEM).
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// Time to an answer's headers.
    pub request_timeout: Option<Dur>,
    /// Time a connection may wait for a request.
    pub idle_timeout: Option<Dur>,
    /// Connections at once.
    pub max_connections: Option<usize>,
    /// Trust in a pointer or index read before revalidation.
    pub freshness: Option<Dur>,
    /// Reuse of a job listing.
    pub listing_ttl: Option<Dur>,
    /// Failed logins per address per window.
    pub login_failures: Option<u32>,
    /// The window of `login_failures`.
    pub login_window: Option<Dur>,
    /// `[[serve.users]]`
    pub users: Vec<RawServeUser>,
}

/// `[[serve.users]]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawServeUser {
    /// User name.
    pub name: Option<String>,
    /// File holding the token.
    pub token_file: Option<PathBuf>,
    /// SHA-256 of the token, hex.
    pub token_sha256: Option<String>,
    /// Job globs the user may read.
    pub jobs: Option<Vec<String>>,
}

/// `[[retention]]` as written: one rule of the retention policy.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawRetention {
    /// Glob over job full names.
    pub jobs: Option<String>,
    /// Keep the newest N mirrored builds.
    pub keep_last: Option<u64>,
    /// Keep builds that started less than this long ago.
    pub keep_within: Option<Dur>,
}

impl RawConfig {
    /// Finds the config file (`--config`, else `JAM_CONFIG`, else `./jam.toml` if present) and parses it;
    /// with no file, the empty configuration. Returns the file's path too.
    pub fn load(
        flags: &Overrides,
        env: &Env<'_>,
    ) -> Result<(RawConfig, Option<PathBuf>), ConfigError> {
        let path = env.layer_with(flags.config.clone(), &["JAM_CONFIG"], || {
            Ok(Some(PathBuf::from(DEFAULT_CONFIG_FILE)).filter(|p| p.is_file()))
        })?;
        let raw = match &path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.clone(),
                    source,
                })?;
                parse_toml(p, &text)?
            }
            None => RawConfig::default(),
        };
        Ok((raw, path))
    }
}

/// `[store]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawStore {
    /// Store URL.
    pub url: Option<String>,
    /// S3 endpoint.
    pub endpoint: Option<String>,
    /// S3 region.
    pub region: Option<String>,
    /// Allow plain HTTP to the endpoint.
    pub allow_http: Option<bool>,
    /// Virtual-hosted-style requests instead of path style.
    pub virtual_hosted_style: Option<bool>,
    /// PEM bundle of extra CA certificates for the S3 endpoint.
    pub ca_bundle: Option<PathBuf>,
    /// File holding the S3 access key id.
    pub access_key_id_file: Option<PathBuf>,
    /// File holding the S3 secret access key.
    pub secret_access_key_file: Option<PathBuf>,
    /// Timeout of one store request, body included.
    pub request_timeout: Option<Dur>,
}

/// `[mirror]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawMirror {
    /// Time between poll cycles.
    pub poll_interval: Option<Dur>,
    /// First-sight history.
    pub backfill: Option<Backfill>,
    /// Build results to mirror; empty means all.
    pub results: Option<Vec<String>>,
    /// Attempts before a build is recorded as failed.
    pub max_attempts: Option<u32>,
    /// Base delay before a failed build is tried again.
    pub retry_backoff: Option<Dur>,
    /// Concurrent transfers of artifacts larger than one part (or of unknown length).
    pub transfers: Option<usize>,
    /// Concurrent transfers of artifacts that fit one part.
    pub small_transfers: Option<usize>,
    /// Multipart part size.
    pub part_size: Option<Size>,
    /// Parts of one artifact uploading at once.
    pub part_uploads: Option<usize>,
    /// Byte budget for buffered artifact data, shared by all transfers.
    pub buffer_budget: Option<Size>,
    /// Grace period for in-flight transfers at shutdown.
    pub shutdown_grace: Option<Dur>,
    /// Check MD5s against Jenkins fingerprints.
    pub verify_fingerprints: Option<bool>,
    /// This worker's id among the workers sharing the store (heartbeat, claims, upload journal).
    pub worker_id: Option<String>,
    /// How long a heartbeat or claim stays this worker's without a renewal.
    pub lease: Option<Dur>,
    /// Address of the HTTP endpoint for metrics and health checks.
    pub listen: Option<String>,
    /// Time between the worker's passes of the retention policy.
    pub retention_interval: Option<Dur>,
    /// File holding the shared secret of the build-notice endpoint.
    pub notify_secret_file: Option<PathBuf>,
}

/// `[[jenkins]]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawJenkins {
    /// Source name.
    pub name: Option<String>,
    /// Base URL.
    pub url: Option<String>,
    /// User name.
    pub user: Option<String>,
    /// File holding the API token.
    pub token_file: Option<PathBuf>,
    /// Environment variable holding the API token.
    pub token_env: Option<String>,
    /// Job globs to mirror.
    pub include: Option<Vec<String>>,
    /// Job globs to skip.
    pub exclude: Option<Vec<String>>,
    /// Folder levels the change-detection query descends.
    pub folder_depth: Option<usize>,
    /// Requests in flight to this controller.
    pub max_requests: Option<usize>,
    /// PEM bundle of extra CA certificates.
    pub ca_bundle: Option<PathBuf>,
    /// Connect timeout.
    pub connect_timeout: Option<Dur>,
    /// Idle-read timeout.
    pub read_timeout: Option<Dur>,
    /// Total timeout of one API (JSON) request.
    pub api_timeout: Option<Dur>,
    /// Attempts for one API request before giving up.
    pub retries: Option<u32>,
    /// Allow sending the token over plain HTTP to a host that is not loopback.
    pub allow_insecure_http: Option<bool>,
}

/// `[log]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawLog {
    /// Level or `RUST_LOG`-style filter.
    pub level: Option<String>,
    /// Output format.
    pub format: Option<LogFormat>,
}

/// `[fetch]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawFetch {
    /// Concurrent downloads.
    pub downloads: Option<usize>,
}
