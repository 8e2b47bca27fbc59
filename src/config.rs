//! Configuration: one TOML file, then the environment, then flags; later wins.
//!
//! The file is read into [`RawConfig`], a plain serde schema that rejects unknown keys; [`Config::load`]
//! layers the environment ([`Env`]) and flag overrides ([`Overrides`]) over it and validates the result into
//! [`Config`], whose fields are typed (URLs parsed, globs compiled, limits checked). Secrets (the Jenkins API
//! token, S3 keys) come from the environment or from files, never from the TOML text or a flag, and are held
//! as [`SecretString`] so they never reach `Debug` output or logs.

use std::{
    collections::BTreeMap,
    fmt,
    path::{Path, PathBuf},
    time::Duration,
};

use bytesize::ByteSize;
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use secrecy::SecretString;
use serde::{Deserialize, Deserializer};
use url::Url;

/// The config file jam reads when neither `--config` nor `JAM_CONFIG` names one.
pub const DEFAULT_CONFIG_FILE: &str = "jam.toml";
/// The store used when nothing names one: a local directory, the embedded default.
pub const DEFAULT_STORE: &str = "./jam-mirror";
/// The smallest multipart part S3 accepts (every part but the last).
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;

/// An error in the configuration, naming the file, key or variable at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file '{path}': {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not valid TOML or does not match the schema.
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line of the offending key or value.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong, with a hint when one helps.
        message: String,
    },
    /// A value (from the file, the environment or a flag) is invalid.
    #[error("invalid {key}: {message}")]
    Invalid {
        /// The key, variable or flag, e.g. `mirror.part_size` or `JAM_STORE`.
        key: String,
        /// What is wrong and what to do.
        message: String,
    },
}

impl ConfigError {
    fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// A duration written as text, e.g. `"90s"`, `"5m"`, `"1h 30m"`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl fmt::Debug for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s)
            .map(Dur)
            .map_err(serde::de::Error::custom)
    }
}

/// Parses a duration such as `"90s"` or `"1m 30s"`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| {
        format!("'{s}' is not a duration ({e}); write e.g. \"90s\", \"5m\" or \"1h 30m\"")
    })
}

/// Parses a size such as `"16 MiB"` or `"8MB"` (MiB = 2^20 bytes, MB = 10^6 bytes).
pub fn parse_size(s: &str) -> Result<u64, String> {
    s.trim()
        .parse::<ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| format!("'{s}' is not a size ({e}); write e.g. \"16 MiB\" or \"512 KiB\""))
}

/// A size written as text, e.g. `"16 MiB"`, or as a number of bytes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Size(pub u64);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            N(u64),
            S(String),
        }
        match Repr::deserialize(d)? {
            Repr::N(n) => Ok(Size(n)),
            Repr::S(s) => parse_size(&s).map(Size).map_err(serde::de::Error::custom),
        }
    }
}

/// How much history to mirror the first time jam sees a job.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum Backfill {
    /// Every finished build Jenkins still has (the default).
    #[default]
    All,
    /// Only builds that finish from now on.
    None,
    /// The newest N finished builds.
    Newest(u64),
}

impl<'de> Deserialize<'de> for Backfill {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            N(u64),
            S(String),
        }
        match Repr::deserialize(d)? {
            Repr::N(n) => Ok(Backfill::Newest(n)),
            Repr::S(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl std::str::FromStr for Backfill {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "all" => Ok(Backfill::All),
            "none" => Ok(Backfill::None),
            n => n.parse().map(Backfill::Newest).map_err(|_| {
                format!("'{s}' is not a backfill; use \"all\", \"none\" or a number of builds")
            }),
        }
    }
}

/// Log output format.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

// ---------------------------------------------------------------------------------------------------------
// The file schema.

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
        let path = flags
            .config
            .clone()
            .or_else(|| env.get("JAM_CONFIG").map(PathBuf::from))
            .or_else(|| Some(PathBuf::from(DEFAULT_CONFIG_FILE)).filter(|p| p.is_file()));
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
    /// Concurrent artifact transfers.
    pub transfers: Option<usize>,
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
    /// This worker's name in the store's upload journal.
    pub worker_id: Option<String>,
    /// Address of the HTTP endpoint for metrics and health checks.
    pub listen: Option<String>,
    /// Time between the worker's passes of the retention policy.
    pub retention_interval: Option<Dur>,
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

// ---------------------------------------------------------------------------------------------------------
// The validated configuration.

/// The validated configuration jam runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from, if any.
    pub file: Option<PathBuf>,
    /// Where the mirror lives.
    pub store: StoreConfig,
    /// How the worker behaves.
    pub mirror: MirrorConfig,
    /// The controllers to mirror.
    pub jenkins: Vec<JenkinsConfig>,
    /// Logging.
    pub log: LogConfig,
    /// `jam fetch` settings.
    pub fetch: FetchConfig,
    /// The retention policy: rules in file order; the first whose glob matches a job applies.
    pub retention: Vec<RetentionRule>,
}

/// One retention rule: which jobs, and which of their mirrored builds to keep. A build is kept when any
/// condition holds: among the newest `keep_last`, started within `keep_within`, or named by a pointer.
#[derive(Debug, Clone)]
pub struct RetentionRule {
    /// The glob as written (for messages).
    pub jobs: String,
    matcher: globset::GlobMatcher,
    /// Keep the newest N mirrored builds.
    pub keep_last: Option<u64>,
    /// Keep builds that started less than this long ago.
    pub keep_within: Option<Duration>,
}

impl RetentionRule {
    /// A rule; `key` names it in errors.
    pub fn new(
        jobs: &str,
        keep_last: Option<u64>,
        keep_within: Option<Duration>,
        key: &str,
    ) -> Result<RetentionRule, ConfigError> {
        let matcher = glob(jobs)
            .map_err(|e| ConfigError::invalid(format!("{key}.jobs"), e))?
            .compile_matcher();
        if keep_last.is_none() && keep_within.is_none() {
            return Err(ConfigError::invalid(
                key,
                "keeps nothing: set keep_last (builds) and/or keep_within (a duration such as \"90d\")",
            ));
        }
        if keep_last == Some(0) {
            return Err(ConfigError::invalid(
                format!("{key}.keep_last"),
                "must be at least 1 (to keep by age only, leave keep_last out)",
            ));
        }
        Ok(RetentionRule {
            jobs: jobs.to_string(),
            matcher,
            keep_last,
            keep_within,
        })
    }

    /// Whether the rule applies to the job with this full name (`folder/app`, item names as stored).
    pub fn matches(&self, full_name: &str) -> bool {
        self.matcher.is_match(full_name)
    }
}

/// Where the mirror lives: the store URL and its S3 settings.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// The store URL as given (`s3://…`, `file:///…`, a path, or `memory://`).
    pub url: String,
    /// S3 endpoint, for anything that is not AWS.
    pub endpoint: Option<String>,
    /// S3 region.
    pub region: Option<String>,
    /// Allow plain HTTP to the endpoint.
    pub allow_http: bool,
    /// Virtual-hosted-style requests.
    pub virtual_hosted_style: bool,
    /// Extra CA certificates (PEM).
    pub ca_bundle: Option<PathBuf>,
    /// S3 access key id, when given through the environment or a file.
    pub access_key_id: Option<SecretString>,
    /// S3 secret key, when given through the environment or a file.
    pub secret_access_key: Option<SecretString>,
    /// S3 session token from the environment.
    pub session_token: Option<SecretString>,
    /// Timeout of one store request, body included (a whole part upload must fit).
    pub request_timeout: Duration,
}

impl StoreConfig {
    /// A store configuration with nothing but the URL (no S3 settings, default timeout).
    pub fn new(url: impl Into<String>) -> StoreConfig {
        StoreConfig {
            url: url.into(),
            endpoint: None,
            region: None,
            allow_http: false,
            virtual_hosted_style: false,
            ca_bundle: None,
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            request_timeout: Duration::from_secs(300),
        }
    }
}

/// How the worker (`jam mirror`) behaves.
#[derive(Debug, Clone)]
pub struct MirrorConfig {
    /// Time between poll cycles.
    pub poll_interval: Duration,
    /// First-sight history.
    pub backfill: Backfill,
    /// Results to mirror (upper case); empty means every result.
    pub results: Vec<String>,
    /// Attempts before a build is recorded as failed.
    pub max_attempts: u32,
    /// Base delay before a failed build is tried again (doubles per attempt).
    pub retry_backoff: Duration,
    /// Concurrent artifact transfers over all controllers.
    pub transfers: usize,
    /// Multipart part size; artifacts up to this size go up in one PUT.
    pub part_size: u64,
    /// Parts of one artifact uploading at once.
    pub part_uploads: usize,
    /// Byte budget for buffered artifact data, shared by all transfers.
    pub buffer_budget: u64,
    /// Grace period for in-flight transfers at shutdown.
    pub shutdown_grace: Duration,
    /// Check MD5s against Jenkins fingerprints.
    pub verify_fingerprints: bool,
    /// This worker's name in the store's upload journal (distinct per worker sharing a bucket).
    pub worker_id: String,
    /// Where to serve `/metrics`, `/healthz` and `/readyz`; `None`: no HTTP endpoint.
    pub listen: Option<std::net::SocketAddr>,
    /// Time between the worker's passes of the retention policy (when `[[retention]]` rules exist).
    pub retention_interval: Duration,
}

/// One Jenkins controller: where it is, who jam is there, and how to talk to it.
#[derive(Debug, Clone)]
pub struct JenkinsConfig {
    /// Source name: part of every store key.
    pub name: String,
    /// Base URL, ending in `/`.
    pub url: Url,
    /// User name.
    pub user: String,
    /// API token.
    pub token: SecretString,
    /// Job filter.
    pub jobs: JobFilter,
    /// Folder levels the change-detection query descends.
    pub folder_depth: usize,
    /// Requests in flight to this controller.
    pub max_requests: usize,
    /// Extra CA certificates (PEM).
    pub ca_bundle: Option<PathBuf>,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Idle-read timeout (a download may take as long as it needs while bytes keep coming).
    pub read_timeout: Duration,
    /// Total timeout of one API request.
    pub api_timeout: Duration,
    /// Attempts for one API request before giving up.
    pub retries: u32,
}

/// Logging.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// Default filter (`RUST_LOG` wins over it).
    pub level: String,
    /// Output format.
    pub format: LogFormat,
}

/// `jam fetch` settings.
#[derive(Debug, Clone)]
pub struct FetchConfig {
    /// Concurrent downloads.
    pub downloads: usize,
}

/// Include and exclude globs over job full names (`folder/app`).
///
/// `*` does not cross `/`; `**` does. No include globs means every job.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    include: Option<GlobSet>,
    exclude: Option<GlobSet>,
}

impl JobFilter {
    /// Builds a filter; `key` names the setting in error messages.
    pub fn new(include: &[String], exclude: &[String], key: &str) -> Result<Self, ConfigError> {
        let build = |globs: &[String], which: &str| -> Result<Option<GlobSet>, ConfigError> {
            if globs.is_empty() {
                return Ok(None);
            }
            let mut set = GlobSetBuilder::new();
            for g in globs {
                set.add(glob(g).map_err(|e| ConfigError::invalid(format!("{key}.{which}"), e))?);
            }
            set.build()
                .map(Some)
                .map_err(|e| ConfigError::invalid(format!("{key}.{which}"), e.to_string()))
        };
        Ok(JobFilter {
            include: build(include, "include")?,
            exclude: build(exclude, "exclude")?,
        })
    }

    /// Whether the job with this full name is mirrored.
    pub fn matches(&self, full_name: &str) -> bool {
        self.include.as_ref().is_none_or(|s| s.is_match(full_name))
            && !self.exclude.as_ref().is_some_and(|s| s.is_match(full_name))
    }
}

/// Compiles a glob with shell semantics: `*` and `?` do not cross `/`, `**` does.
pub fn glob(pattern: &str) -> Result<globset::Glob, String> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map_err(|e| format!("bad glob '{pattern}': {e}"))
}

// ---------------------------------------------------------------------------------------------------------
// Layering.

/// The environment, as a lookup function (tests pass a map; the binary passes `std::env::var`).
pub struct Env<'a>(Box<Lookup<'a>>);

type Lookup<'a> = dyn Fn(&str) -> Option<String> + 'a;

impl<'a> Env<'a> {
    /// The process environment.
    pub fn process() -> Env<'static> {
        Env(Box::new(|k| {
            std::env::var(k).ok().filter(|v| !v.is_empty())
        }))
    }

    /// A fixed set of variables (for tests).
    pub fn from_map(map: BTreeMap<String, String>) -> Env<'static> {
        Env(Box::new(move |k| map.get(k).cloned()))
    }

    /// One variable, if set and not empty.
    pub fn get(&self, key: &str) -> Option<String> {
        (self.0)(key)
    }

    fn first(&self, keys: &[&str]) -> Option<String> {
        keys.iter().find_map(|k| self.get(k))
    }
}

/// Values given as flags; they win over the file and the environment.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--config`
    pub config: Option<PathBuf>,
    /// `--store`
    pub store: Option<String>,
    /// `--log-level`
    pub log_level: Option<String>,
    /// `--log-format`
    pub log_format: Option<LogFormat>,
    /// `--jenkins` (URL of a single controller)
    pub jenkins_url: Option<String>,
    /// `--user`
    pub jenkins_user: Option<String>,
    /// `--poll-interval`
    pub poll_interval: Option<Duration>,
    /// `mirror --listen`
    pub listen: Option<String>,
}

impl Config {
    /// Finds the config file (`--config`, else `JAM_CONFIG`, else `./jam.toml` if present), reads it, and
    /// layers the environment and the flags over it.
    pub fn load(flags: &Overrides, env: &Env<'_>) -> Result<Config, ConfigError> {
        let (raw, path) = RawConfig::load(flags, env)?;
        Config::from_raw(raw, path, flags, env)
    }

    /// Validates a parsed file with the environment and flags layered over it.
    pub fn from_raw(
        raw: RawConfig,
        file: Option<PathBuf>,
        flags: &Overrides,
        env: &Env<'_>,
    ) -> Result<Config, ConfigError> {
        let base = file
            .as_deref()
            .and_then(Path::parent)
            .map(Path::to_path_buf);
        let resolve = |p: PathBuf| match &base {
            Some(b) if p.is_relative() => b.join(p),
            _ => p,
        };
        let store = store_config(raw.store, flags, env, &resolve)?;
        let mirror = mirror_config(raw.mirror, flags)?;
        let jenkins = jenkins_configs(raw.jenkins, flags, env, &resolve)?;
        let log = LogConfig {
            level: flags
                .log_level
                .clone()
                .or_else(|| env.get("JAM_LOG"))
                .or(raw.log.level)
                .unwrap_or_else(|| "info".into()),
            format: flags
                .log_format
                .or_else(|| {
                    env.get("JAM_LOG_FORMAT").and_then(|v| match v.as_str() {
                        "json" => Some(LogFormat::Json),
                        "text" => Some(LogFormat::Text),
                        _ => None,
                    })
                })
                .or(raw.log.format)
                .unwrap_or_default(),
        };
        let mut retention = Vec::new();
        for (i, r) in raw.retention.into_iter().enumerate() {
            let key = format!("retention[{i}]");
            let jobs = r.jobs.ok_or_else(|| {
                ConfigError::invalid(
                    format!("{key}.jobs"),
                    "missing; name the jobs the rule applies to with a glob, e.g. \"**\" for every job",
                )
            })?;
            retention.push(RetentionRule::new(
                &jobs,
                r.keep_last,
                r.keep_within.map(|d| d.0),
                &key,
            )?);
        }
        let fetch = FetchConfig {
            downloads: positive("fetch.downloads", raw.fetch.downloads.unwrap_or(4))?,
        };
        Ok(Config {
            file,
            store,
            mirror,
            jenkins,
            log,
            fetch,
            retention,
        })
    }
}

fn positive(key: &str, n: usize) -> Result<usize, ConfigError> {
    if n == 0 {
        Err(ConfigError::invalid(key, "must be at least 1"))
    } else {
        Ok(n)
    }
}

fn read_secret_file(key: &str, path: &Path) -> Result<SecretString, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::invalid(key, format!("cannot read '{}': {e}", path.display())))?;
    let value = text.trim();
    if value.is_empty() {
        return Err(ConfigError::invalid(
            key,
            format!("'{}' is empty", path.display()),
        ));
    }
    Ok(SecretString::from(value.to_owned()))
}

fn parse_bool(key: &str, v: &str) -> Result<bool, ConfigError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::invalid(
            key,
            format!("'{v}' is not a boolean; use true or false"),
        )),
    }
}

fn store_config(
    raw: RawStore,
    flags: &Overrides,
    env: &Env<'_>,
    resolve: &dyn Fn(PathBuf) -> PathBuf,
) -> Result<StoreConfig, ConfigError> {
    let url = flags
        .store
        .clone()
        .or_else(|| env.get("JAM_STORE"))
        .or(raw.url)
        .unwrap_or_else(|| DEFAULT_STORE.into());
    let allow_http = match env.get("AWS_ALLOW_HTTP") {
        Some(v) => parse_bool("AWS_ALLOW_HTTP", &v)?,
        None => raw.allow_http.unwrap_or(false),
    };
    let secret = |var: &str,
                  file: Option<PathBuf>,
                  key: &str|
     -> Result<Option<SecretString>, ConfigError> {
        match (env.get(var), file) {
            (Some(v), _) => Ok(Some(SecretString::from(v))),
            (None, Some(f)) => read_secret_file(key, &resolve(f)).map(Some),
            (None, None) => Ok(None),
        }
    };
    let request_timeout = raw
        .request_timeout
        .map(|d| d.0)
        .unwrap_or(Duration::from_secs(300));
    if request_timeout.is_zero() {
        return Err(ConfigError::invalid(
            "store.request_timeout",
            "must be more than 0s",
        ));
    }
    Ok(StoreConfig {
        url,
        endpoint: env
            .first(&["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"])
            .or(raw.endpoint),
        region: env
            .first(&["AWS_REGION", "AWS_DEFAULT_REGION"])
            .or(raw.region),
        allow_http,
        virtual_hosted_style: match env.get("AWS_VIRTUAL_HOSTED_STYLE_REQUEST") {
            Some(v) => parse_bool("AWS_VIRTUAL_HOSTED_STYLE_REQUEST", &v)?,
            None => raw.virtual_hosted_style.unwrap_or(false),
        },
        ca_bundle: raw.ca_bundle.map(resolve),
        access_key_id: secret(
            "AWS_ACCESS_KEY_ID",
            raw.access_key_id_file,
            "store.access_key_id_file",
        )?,
        secret_access_key: secret(
            "AWS_SECRET_ACCESS_KEY",
            raw.secret_access_key_file,
            "store.secret_access_key_file",
        )?,
        session_token: env.get("AWS_SESSION_TOKEN").map(SecretString::from),
        request_timeout,
    })
}

const RESULTS: [&str; 5] = ["SUCCESS", "UNSTABLE", "FAILURE", "NOT_BUILT", "ABORTED"];

fn mirror_config(raw: RawMirror, flags: &Overrides) -> Result<MirrorConfig, ConfigError> {
    let part_size = raw.part_size.map(|s| s.0).unwrap_or(8 * 1024 * 1024);
    if part_size < MIN_PART_SIZE {
        return Err(ConfigError::invalid(
            "mirror.part_size",
            format!(
                "{} is below the 5 MiB minimum S3 accepts for multipart parts; use at least \"5 MiB\"",
                ByteSize(part_size).display().iec()
            ),
        ));
    }
    if part_size > 5 * 1024 * 1024 * 1024 {
        return Err(ConfigError::invalid(
            "mirror.part_size",
            "must be at most 5 GiB (the S3 part limit)",
        ));
    }
    let part_uploads = positive("mirror.part_uploads", raw.part_uploads.unwrap_or(2))?;
    let transfers = positive("mirror.transfers", raw.transfers.unwrap_or(8))?;
    let per_artifact = part_size * (part_uploads as u64 + 1);
    let buffer_budget = raw.buffer_budget.map(|s| s.0).unwrap_or(64 * 1024 * 1024);
    if buffer_budget < per_artifact {
        return Err(ConfigError::invalid(
            "mirror.buffer_budget",
            format!(
                "{} cannot hold one large artifact in flight, which needs part_size x (part_uploads + 1) = {}; \
                 raise buffer_budget or lower part_size/part_uploads",
                ByteSize(buffer_budget).display().iec(),
                ByteSize(per_artifact).display().iec()
            ),
        ));
    }
    let mut results = Vec::new();
    for r in raw.results.unwrap_or_default() {
        let up = r.trim().to_ascii_uppercase();
        if !RESULTS.contains(&up.as_str()) {
            return Err(ConfigError::invalid(
                "mirror.results",
                format!(
                    "'{r}' is not a Jenkins build result; use any of {}",
                    RESULTS.join(", ")
                ),
            ));
        }
        results.push(up);
    }
    let poll_interval = flags
        .poll_interval
        .or(raw.poll_interval.map(|d| d.0))
        .unwrap_or(Duration::from_secs(60));
    if poll_interval < Duration::from_millis(100) {
        return Err(ConfigError::invalid(
            "mirror.poll_interval",
            "must be at least 100ms",
        ));
    }
    let max_attempts = raw.max_attempts.unwrap_or(5);
    if max_attempts == 0 {
        return Err(ConfigError::invalid(
            "mirror.max_attempts",
            "must be at least 1",
        ));
    }
    Ok(MirrorConfig {
        poll_interval,
        backfill: raw.backfill.unwrap_or_default(),
        results,
        max_attempts,
        retry_backoff: raw
            .retry_backoff
            .map(|d| d.0)
            .unwrap_or(Duration::from_secs(60)),
        transfers,
        part_size,
        part_uploads,
        buffer_budget,
        shutdown_grace: raw
            .shutdown_grace
            .map(|d| d.0)
            .unwrap_or(Duration::from_secs(30)),
        verify_fingerprints: raw.verify_fingerprints.unwrap_or(true),
        listen: match flags.listen.clone().or(raw.listen) {
            Some(a) => Some(a.trim().parse().map_err(|_| {
                ConfigError::invalid(
                    "mirror.listen",
                    format!("'{a}' is not a socket address; write e.g. \"127.0.0.1:9184\" or \"[::]:9184\""),
                )
            })?),
            None => None,
        },
        retention_interval: match raw.retention_interval.map(|d| d.0) {
            Some(d) if d < Duration::from_secs(1) => {
                return Err(ConfigError::invalid(
                    "mirror.retention_interval",
                    "must be at least 1s",
                ));
            }
            Some(d) => d,
            None => Duration::from_secs(3600),
        },
        worker_id: match raw.worker_id {
            Some(id) => {
                validate_source_name(&id)
                    .map_err(|m| ConfigError::invalid("mirror.worker_id", m))?;
                id
            }
            None => hostname(),
        },
    })
}

fn jenkins_configs(
    raw: Vec<RawJenkins>,
    flags: &Overrides,
    env: &Env<'_>,
    resolve: &dyn Fn(PathBuf) -> PathBuf,
) -> Result<Vec<JenkinsConfig>, ConfigError> {
    let env_url = flags.jenkins_url.clone().or_else(|| env.get("JENKINS_URL"));
    let env_user = flags
        .jenkins_user
        .clone()
        .or_else(|| env.get("JENKINS_USER"));
    let mut raw = raw;
    if raw.is_empty() && env_url.is_some() {
        raw.push(RawJenkins::default());
    }
    let single = raw.len() == 1;
    let mut out: Vec<JenkinsConfig> = Vec::new();
    for (i, r) in raw.into_iter().enumerate() {
        let key = format!("jenkins[{i}]");
        // The environment and flags name one controller; with several configured, they would be ambiguous.
        let url_text = if single {
            env_url.clone().or(r.url)
        } else {
            r.url
        }
        .ok_or_else(|| {
            ConfigError::invalid(
                format!("{key}.url"),
                "missing; set url in [[jenkins]] or JENKINS_URL",
            )
        })?;
        let url = parse_jenkins_url(&url_text)
            .map_err(|m| ConfigError::invalid(format!("{key}.url"), m))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(ConfigError::invalid(
                format!("{key}.url"),
                "must not carry credentials; set user and the token through token_file or JENKINS_API_TOKEN",
            ));
        }
        let user = if single {
            env_user.clone().or(r.user)
        } else {
            r.user
        }
        .ok_or_else(|| {
            ConfigError::invalid(
                format!("{key}.user"),
                "missing; set user in [[jenkins]] or JENKINS_USER",
            )
        })?;
        let token = match (r.token_file, &r.token_env) {
            (Some(f), _) => read_secret_file(&format!("{key}.token_file"), &resolve(f))?,
            (None, var) => {
                let var = var.clone().unwrap_or_else(|| "JENKINS_API_TOKEN".into());
                env.get(&var).map(SecretString::from).ok_or_else(|| {
                    ConfigError::invalid(
                        format!("{key}.token"),
                        format!("no API token for {url}: set {var} or token_file (a file holding the token)"),
                    )
                })?
            }
        };
        let allow_insecure = match env.get("JAM_ALLOW_INSECURE_HTTP") {
            Some(v) => parse_bool("JAM_ALLOW_INSECURE_HTTP", &v)?,
            None => r.allow_insecure_http.unwrap_or(false),
        };
        if url.scheme() == "http" && !is_loopback(&url) && !allow_insecure {
            return Err(ConfigError::invalid(
                format!("{key}.url"),
                format!(
                    "{url} is plain HTTP to a host that is not loopback, so the API token would cross the network \
                     in clear text; use https, or set allow_insecure_http = true if you accept that"
                ),
            ));
        }
        let name = match r.name {
            Some(n) => {
                validate_source_name(&n)
                    .map_err(|m| ConfigError::invalid(format!("{key}.name"), m))?;
                n
            }
            None => default_source_name(&url),
        };
        if out.iter().any(|c| c.name == name) {
            return Err(ConfigError::invalid(
                format!("{key}.name"),
                format!("'{name}' names two controllers; give each [[jenkins]] a distinct name"),
            ));
        }
        let jobs = JobFilter::new(
            &r.include.unwrap_or_default(),
            &r.exclude.unwrap_or_default(),
            &key,
        )?;
        out.push(JenkinsConfig {
            name,
            url,
            user,
            token,
            jobs,
            folder_depth: r.folder_depth.unwrap_or(5).clamp(1, 20),
            max_requests: positive(&format!("{key}.max_requests"), r.max_requests.unwrap_or(8))?,
            ca_bundle: r.ca_bundle.map(resolve),
            connect_timeout: r
                .connect_timeout
                .map(|d| d.0)
                .unwrap_or(Duration::from_secs(10)),
            read_timeout: r
                .read_timeout
                .map(|d| d.0)
                .unwrap_or(Duration::from_secs(60)),
            api_timeout: r
                .api_timeout
                .map(|d| d.0)
                .unwrap_or(Duration::from_secs(120)),
            retries: r.retries.unwrap_or(5),
        });
    }
    Ok(out)
}

/// Parses a controller base URL, making sure it ends in `/` so relative joins keep its path.
pub fn parse_jenkins_url(text: &str) -> Result<Url, String> {
    let mut url = Url::parse(text.trim()).map_err(|e| format!("'{text}' is not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("'{text}' must be an http or https URL"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("'{text}' must not have a query or fragment"));
    }
    if !url.path().ends_with('/') {
        let p = format!("{}/", url.path());
        url.set_path(&p);
    }
    Ok(url)
}

/// Whether the URL's host is a loopback address or `localhost`.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// The default source name of a controller: its host, and its port when not the scheme's default.
pub fn default_source_name(url: &Url) -> String {
    let host = url
        .host_str()
        .unwrap_or("jenkins")
        .trim_matches(['[', ']'])
        .replace(':', "_");
    match url.port() {
        Some(p) => format!("{host}_{p}"),
        None => host,
    }
}

/// The host name (`/proc/sys/kernel/hostname`), reduced to the characters a worker id may hold.
fn hostname() -> String {
    let name: String = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    if name.is_empty() || name == "." || name == ".." {
        "jam".into()
    } else {
        name
    }
}

fn validate_source_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "'{name}' must be 1-100 characters of A-Z a-z 0-9 - _ . (it becomes part of every store key)"
        ))
    }
}

// ---------------------------------------------------------------------------------------------------------
// Parsing with helpful errors.

/// Parses config text, turning serde's messages into ones that name the file, line and key, and suggest
/// the nearest valid key for a misspelled one.
pub fn parse_toml(path: &Path, text: &str) -> Result<RawConfig, ConfigError> {
    toml::from_str::<RawConfig>(text).map_err(|e| {
        let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
        let table = e.span().and_then(|s| enclosing_table(text, s.start));
        let message = explain(e.message(), table.as_deref());
        ConfigError::Parse {
            path: path.to_path_buf(),
            line,
            column,
            message,
        }
    })
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

fn enclosing_table(text: &str, offset: usize) -> Option<String> {
    text[..offset.min(text.len())]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string())
}

fn explain(message: &str, table: Option<&str>) -> String {
    let message = message.trim();
    // serde's wording: "unknown field `x`, expected one of `a`, `b`" or "expected `a`".
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (field, tail) = rest.split_once('`').unwrap_or((rest, ""));
        let valid: Vec<&str> = tail.split('`').skip(1).step_by(2).collect();
        let place = table.map(|t| format!(" in [{t}]")).unwrap_or_default();
        let mut out = format!("unknown key '{field}'{place}");
        if let Some(best) = nearest(field, &valid) {
            out.push_str(&format!("; did you mean '{best}'?"));
        }
        if !valid.is_empty() {
            out.push_str(&format!(" (valid keys: {})", valid.join(", ")));
        }
        return out;
    }
    message.to_string()
}

/// The candidate closest to `word` by edit distance, if it is close enough to be a likely typo.
pub fn nearest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env<'static> {
        Env::from_map(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn misspelled_key_names_file_line_key_and_suggestion() {
        let text = "[store]\nurl = \"x\"\n\n[mirror]\npoll_interval = \"5s\"\ntransfer = 4\n";
        let err = parse_toml(Path::new("jam.toml"), text)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("jam.toml:6:1: unknown key 'transfer' in [mirror]"),
            "{err}"
        );
        assert!(err.contains("did you mean 'transfers'?"), "{err}");
    }

    #[test]
    fn unknown_key_in_array_table_is_reported() {
        let text = "[[jenkins]]\nurl = \"https://ci\"\ntokn_file = \"t\"\n";
        let err = parse_toml(Path::new("c.toml"), text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("c.toml:3:"), "{err}");
        assert!(
            err.contains("unknown key 'tokn_file' in [jenkins]; did you mean 'token_file'?"),
            "{err}"
        );
    }

    #[test]
    fn wrong_type_names_line() {
        let err = parse_toml(Path::new("c.toml"), "[mirror]\ntransfers = \"many\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("c.toml:2:"), "{err}");
    }

    #[test]
    fn durations_and_sizes_parse() {
        let raw = parse_toml(
            Path::new("c.toml"),
            "[mirror]\npoll_interval = \"90s\"\npart_size = \"16 MiB\"\nbuffer_budget = 67108864\n",
        )
        .unwrap();
        let cfg = Config::from_raw(raw, None, &Overrides::default(), &env(&[])).unwrap();
        assert_eq!(cfg.mirror.poll_interval, Duration::from_secs(90));
        assert_eq!(cfg.mirror.part_size, 16 * 1024 * 1024);
        assert_eq!(cfg.mirror.buffer_budget, 64 * 1024 * 1024);
        let err =
            parse_toml(Path::new("c.toml"), "[mirror]\npoll_interval = \"soon\"\n").unwrap_err();
        assert!(
            err.to_string().contains("'soon' is not a duration"),
            "{err}"
        );
    }

    #[test]
    fn impossible_limits_are_refused() {
        for (text, key) in [
            ("[mirror]\ntransfers = 0\n", "mirror.transfers"),
            ("[mirror]\npart_size = \"1 MiB\"\n", "mirror.part_size"),
            (
                "[mirror]\nbuffer_budget = \"8 MiB\"\n",
                "mirror.buffer_budget",
            ),
            ("[mirror]\nresults = [\"GREEN\"]\n", "mirror.results"),
        ] {
            let raw = parse_toml(Path::new("c.toml"), text).unwrap();
            let err = Config::from_raw(raw, None, &Overrides::default(), &env(&[])).unwrap_err();
            assert!(err.to_string().contains(key), "{text}: {err}");
        }
    }

    #[test]
    fn layering_file_then_env_then_flags() {
        let raw = parse_toml(Path::new("c.toml"), "[store]\nurl = \"file-store\"\n").unwrap();
        let e = env(&[("JAM_STORE", "env-store")]);
        let cfg = Config::from_raw(raw, None, &Overrides::default(), &e).unwrap();
        assert_eq!(cfg.store.url, "env-store");
        let flags = Overrides {
            store: Some("flag-store".into()),
            ..Default::default()
        };
        let raw = parse_toml(Path::new("c.toml"), "[store]\nurl = \"file-store\"\n").unwrap();
        assert_eq!(
            Config::from_raw(raw, None, &flags, &e).unwrap().store.url,
            "flag-store"
        );
        let cfg =
            Config::from_raw(RawConfig::default(), None, &Overrides::default(), &env(&[])).unwrap();
        assert_eq!(cfg.store.url, DEFAULT_STORE);
    }

    #[test]
    fn jenkins_from_standard_env_with_secret_redacted() {
        let e = env(&[
            ("JENKINS_URL", "http://127.0.0.1:8080/jenkins"),
            ("JENKINS_USER", "jam"),
            ("JENKINS_API_TOKEN", "11aaaabbbbccccddddeeeeffff00001111"),
        ]);
        let cfg = Config::from_raw(RawConfig::default(), None, &Overrides::default(), &e).unwrap();
        let j = &cfg.jenkins[0];
        assert_eq!(j.url.as_str(), "http://127.0.0.1:8080/jenkins/");
        assert_eq!(j.name, "127.0.0.1_8080");
        assert_eq!(j.user, "jam");
        let dbg = format!("{cfg:?}");
        assert!(
            !dbg.contains("11aaaabbbb"),
            "token leaked into Debug: {dbg}"
        );
    }

    #[test]
    fn missing_token_says_what_to_set() {
        let e = env(&[
            ("JENKINS_URL", "https://ci.example.com/"),
            ("JENKINS_USER", "jam"),
        ]);
        let err =
            Config::from_raw(RawConfig::default(), None, &Overrides::default(), &e).unwrap_err();
        assert!(err.to_string().contains("JENKINS_API_TOKEN"), "{err}");
    }

    #[test]
    fn plain_http_to_remote_host_needs_opt_in() {
        let e = env(&[
            ("JENKINS_URL", "http://ci.example.com/"),
            ("JENKINS_USER", "jam"),
            ("JENKINS_API_TOKEN", "t"),
        ]);
        let err =
            Config::from_raw(RawConfig::default(), None, &Overrides::default(), &e).unwrap_err();
        assert!(err.to_string().contains("clear text"), "{err}");
    }

    #[test]
    fn job_globs_have_shell_semantics() {
        let f = JobFilter::new(&["team/*".into()], &["team/old-*".into()], "jenkins[0]").unwrap();
        assert!(f.matches("team/app"));
        assert!(!f.matches("team/app/main"));
        assert!(!f.matches("team/old-app"));
        let all = JobFilter::new(&["team/**".into()], &[], "j").unwrap();
        assert!(all.matches("team/app/feature%2Fx"));
        assert!(JobFilter::default().matches("anything/at/all"));
    }

    #[test]
    fn nearest_key() {
        assert_eq!(
            nearest("concurency", &["transfers", "concurrency"]),
            Some("concurrency")
        );
        assert_eq!(nearest("zzz", &["transfers"]), None);
    }
}
