//! `[serve]` and `[[serve.users]]`: how `jam serve` answers, and who may read.
//!
//! Tokens never appear in the configuration: each user names a `token_file` (read when `jam serve`
//! starts, by [`TokenSource`]) or the token's `token_sha256`. Paths are checked here; the files are read
//! only by the command that needs them, so `jam mirror` with the same file never touches them.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use url::Url;

use super::{
    ConfigError, Env, JobFilter, Overrides,
    raw::{RawServe, RawServeUser},
    values::{positive, read_secret_file, secs_or, validate_source_name},
};

/// The address `jam serve` listens on when nothing names one.
pub const DEFAULT_SERVE_LISTEN: &str = "127.0.0.1:9185";

/// How artifact downloads are answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Redirect {
    /// The gateway streams the bytes from the store.
    #[default]
    Proxy,
    /// A 302 to a presigned URL of the object (S3 stores only).
    Presigned,
}

/// Where a user's token comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// A file holding the token (surrounding whitespace trimmed).
    File(PathBuf),
    /// The token's SHA-256, lower-case hex.
    Sha256(String),
}

impl TokenSource {
    /// The SHA-256 of the token (reads the file); `key` names the setting in errors.
    pub fn sha256(&self, key: &str) -> Result<[u8; 32], ConfigError> {
        match self {
            TokenSource::Sha256(hex) => decode_sha256(key, hex),
            TokenSource::File(path) => {
                use secrecy::ExposeSecret;
                use sha2::Digest;
                let token = read_secret_file(key, path)?;
                Ok(sha2::Sha256::digest(token.expose_secret().as_bytes()).into())
            }
        }
    }
}

fn decode_sha256(key: &str, hex: &str) -> Result<[u8; 32], ConfigError> {
    let mut out = [0u8; 32];
    match hex::decode_to_slice(hex.trim(), &mut out) {
        Ok(()) => Ok(out),
        Err(_) => Err(ConfigError::invalid(
            key,
            "is not a SHA-256 (64 hex digits); compute it with `printf %s \"$TOKEN\" | sha256sum`",
        )),
    }
}

/// One `[[serve.users]]` entry.
#[derive(Debug, Clone)]
pub struct ServeUser {
    /// The user name clients send (HTTP Basic).
    pub name: String,
    /// Where the token comes from.
    pub token: TokenSource,
    /// The jobs this user may read (globs over full names; every job when none were given).
    pub jobs: JobFilter,
    /// The globs as written, for messages.
    pub job_globs: Vec<String>,
}

/// How `jam serve` behaves.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The source served at `/` when the store holds several; `None`: the only one.
    pub source: Option<String>,
    /// The root of `url` fields and links; `None`: each request's own host.
    pub public_url: Option<Url>,
    /// Proxy the bytes, or redirect to presigned URLs.
    pub redirect: Redirect,
    /// How long a presigned URL is valid.
    pub presign_expiry: Duration,
    /// Whether everyone may read without credentials.
    pub anonymous: bool,
    /// Who may read.
    pub users: Vec<ServeUser>,
    /// TLS certificate chain (PEM); with `tls_key`, the gateway speaks HTTPS.
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// Time from a request's arrival to its answer's headers.
    pub request_timeout: Duration,
    /// Time a connection may wait for its (next) request's headers.
    pub idle_timeout: Duration,
    /// Connections served at once; more wait to be accepted.
    pub max_connections: usize,
    /// How long a read of a pointer, index or controller record is trusted before it is revalidated.
    pub freshness: Duration,
    /// How long a listing of the mirror's jobs is reused.
    pub listing_ttl: Duration,
    /// Failed logins from one address within `login_window` before it is refused for the rest of it.
    pub login_failures: u32,
    /// The window of `login_failures`.
    pub login_window: Duration,
}

/// Validates `[serve]` with the flags and the environment layered over it.
pub(super) fn serve_config(
    raw: RawServe,
    flags: &Overrides,
    env: &Env<'_>,
    resolve: &dyn Fn(PathBuf) -> PathBuf,
) -> Result<ServeConfig, ConfigError> {
    let listen = env
        .layer(
            flags.serve_listen.clone(),
            &["JAM_SERVE_LISTEN"],
            raw.listen,
        )?
        .unwrap_or_else(|| DEFAULT_SERVE_LISTEN.to_string());
    let listen = listen.trim().parse().map_err(|_| {
        ConfigError::invalid(
            "serve.listen",
            format!(
                "'{listen}' is not a socket address; write e.g. \"127.0.0.1:9185\" or \"[::]:9185\""
            ),
        )
    })?;
    let source = env.layer(
        flags.serve_source.clone(),
        &["JAM_SERVE_SOURCE"],
        raw.source,
    )?;
    if let Some(s) = &source {
        validate_source_name(s).map_err(|m| ConfigError::invalid("serve.source", m))?;
    }
    let public_url = match env.layer(None, &["JAM_SERVE_PUBLIC_URL"], raw.public_url)? {
        None => None,
        Some(u) => {
            let mut url = Url::parse(u.trim()).map_err(|e| {
                ConfigError::invalid("serve.public_url", format!("'{u}' is not a URL: {e}"))
            })?;
            if !matches!(url.scheme(), "http" | "https") || url.query().is_some() {
                return Err(ConfigError::invalid(
                    "serve.public_url",
                    "must be an http:// or https:// URL without a query, e.g. \"https://mirror.example.com/\"",
                ));
            }
            if !url.path().ends_with('/') {
                url.set_path(&format!("{}/", url.path()));
            }
            Some(url)
        }
    };
    let redirect = match raw.redirect.as_deref().map(str::trim) {
        None | Some("proxy") => Redirect::Proxy,
        Some("presigned") => Redirect::Presigned,
        Some(other) => {
            return Err(ConfigError::invalid(
                "serve.redirect",
                format!("'{other}' is not a redirect mode; use \"proxy\" or \"presigned\""),
            ));
        }
    };
    let presign_expiry = secs_or(raw.presign_expiry, 300);
    if presign_expiry < Duration::from_secs(1) || presign_expiry > Duration::from_secs(7 * 86400) {
        return Err(ConfigError::invalid(
            "serve.presign_expiry",
            "must be between 1s and 7 days (S3's limit)",
        ));
    }
    let mut users = Vec::new();
    for (i, u) in raw.users.into_iter().enumerate() {
        users.push(user(i, u, resolve, &users)?);
    }
    let anonymous = raw.anonymous.unwrap_or(false);
    let (tls_cert, tls_key) = match (raw.tls_cert, raw.tls_key) {
        (Some(c), Some(k)) => (Some(resolve(c)), Some(resolve(k))),
        (None, None) => (None, None),
        _ => {
            return Err(ConfigError::invalid(
                "serve.tls_cert",
                "tls_cert and tls_key go together: set both for HTTPS, or neither",
            ));
        }
    };
    Ok(ServeConfig {
        listen,
        source,
        public_url,
        redirect,
        presign_expiry,
        anonymous,
        users,
        tls_cert,
        tls_key,
        request_timeout: secs_or(raw.request_timeout, 60),
        idle_timeout: secs_or(raw.idle_timeout, 60),
        max_connections: positive("serve.max_connections", raw.max_connections.unwrap_or(512))?,
        freshness: raw.freshness.map(|d| d.0).unwrap_or(Duration::from_secs(1)),
        listing_ttl: secs_or(raw.listing_ttl, 10),
        login_failures: raw.login_failures.unwrap_or(10).max(1),
        login_window: secs_or(raw.login_window, 60),
    })
}

fn user(
    i: usize,
    u: RawServeUser,
    resolve: &dyn Fn(PathBuf) -> PathBuf,
    before: &[ServeUser],
) -> Result<ServeUser, ConfigError> {
    let key = format!("serve.users[{i}]");
    let name = u.name.filter(|n| !n.trim().is_empty()).ok_or_else(|| {
        ConfigError::invalid(format!("{key}.name"), "missing; name the user clients send")
    })?;
    if name.contains(':') || name.chars().any(char::is_control) {
        return Err(ConfigError::invalid(
            format!("{key}.name"),
            "must not contain ':' or control characters (HTTP Basic splits at the first ':')",
        ));
    }
    if before.iter().any(|b| b.name == name) {
        return Err(ConfigError::invalid(
            format!("{key}.name"),
            format!("'{name}' is listed twice"),
        ));
    }
    let token = match (u.token_file, u.token_sha256) {
        (Some(f), None) => TokenSource::File(resolve(f)),
        (None, Some(h)) => {
            decode_sha256(&format!("{key}.token_sha256"), &h)?;
            TokenSource::Sha256(h.trim().to_ascii_lowercase())
        }
        _ => {
            return Err(ConfigError::invalid(
                key,
                "give exactly one of token_file (a file holding the token) or token_sha256 (its SHA-256); \
                 the token itself never goes into the config",
            ));
        }
    };
    let job_globs = u.jobs.unwrap_or_default();
    let jobs = JobFilter::new(&job_globs, &[], &key)?;
    Ok(ServeUser {
        name,
        token,
        jobs,
        job_globs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, parse_toml};

    fn load(text: &str, flags: &Overrides) -> Result<ServeConfig, ConfigError> {
        let raw = parse_toml(std::path::Path::new("serve.toml"), text)?;
        Config::from_raw(raw, None, flags, &crate::config::layer::env(&[])).map(|c| c.serve)
    }

    #[test]
    fn defaults_and_layering() {
        let s = load("", &Overrides::default()).unwrap();
        assert_eq!(s.listen, DEFAULT_SERVE_LISTEN.parse().unwrap());
        assert!(!s.anonymous && s.users.is_empty() && s.redirect == Redirect::Proxy);
        let flags = Overrides {
            serve_listen: Some("127.0.0.1:1".into()),
            ..Default::default()
        };
        let s = load(
            "[serve]\nlisten = \"0.0.0.0:2\"\npublic_url = \"https://m.example.com/jam\"\nredirect = \"presigned\"\n",
            &flags,
        )
        .unwrap();
        assert_eq!(s.listen, "127.0.0.1:1".parse().unwrap());
        assert_eq!(s.public_url.unwrap().as_str(), "https://m.example.com/jam/");
        assert_eq!(s.redirect, Redirect::Presigned);
    }

    #[test]
    fn users_need_exactly_one_token_source_and_never_the_token() {
        let hash = "a".repeat(64);
        let s = load(
            &format!(
                "[[serve.users]]\nname = \"ci\"\ntoken_sha256 = \"{hash}\"\njobs = [\"team a/**\"]\n"
            ),
            &Overrides::default(),
        )
        .unwrap();
        assert!(s.users[0].jobs.matches("team a/app"));
        assert!(!s.users[0].jobs.matches("team b/app"));
        assert_eq!(s.users[0].token.sha256("k").unwrap(), [0xaa; 32]);
        let err = load("[[serve.users]]\nname = \"ci\"\n", &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("exactly one of token_file"), "{err}");
        let err = load(
            "[[serve.users]]\nname = \"ci\"\ntoken_sha256 = \"xyz\"\n",
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("serve.users[0].token_sha256"), "{err}");
        let err = load(
            "[[serve.users]]\nname = \"ci\"\ntoken = \"t\"\n",
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("token"), "{err}");
        let err = load("[serve]\nredirect = \"s3\"\n", &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"proxy\" or \"presigned\""), "{err}");
    }
}
