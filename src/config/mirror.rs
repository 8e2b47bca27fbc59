//! `[mirror]`: how the worker behaves, with the limits that keep memory bounded checked against each other.

use std::time::Duration;

use bytesize::ByteSize;
use secrecy::{ExposeSecret, SecretString};

use super::{
    ConfigError, Env, MIN_PART_SIZE, Overrides,
    raw::RawMirror,
    values::{Backfill, positive, read_secret_file, secs_or, validate_source_name},
};

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
    /// Concurrent transfers, over all controllers, of artifacts larger than `part_size` or of unknown
    /// length (the ones that stream parts).
    pub transfers: usize,
    /// Concurrent transfers, over all controllers, of artifacts that fit one part (`Content-Length` at
    /// most `part_size`): many at once, since each is mostly waiting for a request's answer; their bytes
    /// are bounded by `buffer_budget` like every transfer's.
    pub small_transfers: usize,
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
    /// This worker's id among the workers sharing the store: its heartbeat, the holder of its claims, its
    /// upload journal. Two live workers never share one.
    pub worker_id: String,
    /// How long a heartbeat, a build claim or a singleton stays this worker's without a renewal (renewed
    /// every third of it); another worker takes over what stood still for longer.
    pub lease: Duration,
    /// Where to serve `/metrics`, `/healthz` and `/readyz`; `None`: no HTTP endpoint.
    pub listen: Option<std::net::SocketAddr>,
    /// Time between the worker's passes of the retention policy (when `[[retention]]` rules exist).
    pub retention_interval: Duration,
    /// The shared secret Jenkins sends with build notices (`POST /notify/jenkins` on `listen`); `None`:
    /// the endpoint is off.
    pub notify_secret: Option<SecretString>,
}

/// Transfers of small artifacts at once by default: enough to keep an S3 server and Jenkins busy with
/// small requests (s5cmd moves small files no faster with 256 workers than with 32), few enough that
/// their connections stay modest.
const DEFAULT_SMALL_TRANSFERS: usize = 64;

const RESULTS: [&str; 5] = ["SUCCESS", "UNSTABLE", "FAILURE", "NOT_BUILT", "ABORTED"];

/// Validates `[mirror]` with the flags layered over it.
pub(super) fn mirror_config(
    raw: RawMirror,
    flags: &Overrides,
    env: &Env<'_>,
    resolve: &dyn Fn(std::path::PathBuf) -> std::path::PathBuf,
) -> Result<MirrorConfig, ConfigError> {
    let notify_secret = notify_secret(raw.notify_secret_file.clone(), env, resolve)?;
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
    let small_transfers = positive(
        "mirror.small_transfers",
        raw.small_transfers.unwrap_or(DEFAULT_SMALL_TRANSFERS),
    )?;
    let per_artifact = part_size * (part_uploads as u64 + 1);
    let buffer_budget = raw.buffer_budget.map(|s| s.0).unwrap_or(32 * 1024 * 1024);
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
    let poll_interval = env
        .layer(flags.poll_interval, &[], raw.poll_interval.map(|d| d.0))?
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
        retry_backoff: secs_or(raw.retry_backoff, 60),
        transfers,
        small_transfers,
        part_size,
        part_uploads,
        buffer_budget,
        shutdown_grace: secs_or(raw.shutdown_grace, 30),
        verify_fingerprints: raw.verify_fingerprints.unwrap_or(true),
        listen: match env.layer(flags.listen.clone(), &[], raw.listen)? {
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
        worker_id: match env.layer(flags.worker_id.clone(), &["JAM_WORKER_ID"], raw.worker_id)? {
            Some(id) => {
                validate_source_name(&id)
                    .map_err(|m| ConfigError::invalid("mirror.worker_id", m))?;
                id
            }
            None => hostname(),
        },
        lease: match raw.lease.map(|d| d.0) {
            Some(d) if d < Duration::from_secs(1) => {
                return Err(ConfigError::invalid("mirror.lease", "must be at least 1s"));
            }
            Some(d) => d,
            None => Duration::from_secs(30),
        },
        notify_secret,
    })
}

/// The build-notice secret: `JAM_NOTIFY_SECRET`, else the file `mirror.notify_secret_file` names (read
/// only then). Shorter than 16 characters is refused: it is all that guards the endpoint.
fn notify_secret(
    file: Option<std::path::PathBuf>,
    env: &Env<'_>,
    resolve: &dyn Fn(std::path::PathBuf) -> std::path::PathBuf,
) -> Result<Option<SecretString>, ConfigError> {
    const KEY: &str = "mirror.notify_secret_file";
    let secret = env.layer_with(None, &["JAM_NOTIFY_SECRET"], || {
        file.map(|f| read_secret_file(KEY, &resolve(f))).transpose()
    })?;
    if let Some(s) = &secret
        && s.expose_secret().trim().chars().count() < 16
    {
        return Err(ConfigError::invalid(
            KEY,
            "the build-notice secret is shorter than 16 characters; make a long random one, e.g. \
             `openssl rand -hex 32 > notify-secret`",
        ));
    }
    Ok(secret.map(|s| SecretString::from(s.expose_secret().trim().to_owned())))
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{Config, RawConfig, parse_toml};

    fn env() -> Env<'static> {
        crate::config::layer::env(&[])
    }

    #[test]
    fn durations_and_sizes_parse() {
        let raw = parse_toml(
            Path::new("c.toml"),
            "[mirror]\npoll_interval = \"90s\"\npart_size = \"16 MiB\"\nbuffer_budget = 67108864\n",
        )
        .unwrap();
        let cfg = Config::from_raw(raw, None, &Overrides::default(), &env()).unwrap();
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
            ("[mirror]\nsmall_transfers = 0\n", "mirror.small_transfers"),
            ("[mirror]\npart_size = \"1 MiB\"\n", "mirror.part_size"),
            (
                "[mirror]\nbuffer_budget = \"8 MiB\"\n",
                "mirror.buffer_budget",
            ),
            ("[mirror]\nresults = [\"GREEN\"]\n", "mirror.results"),
        ] {
            let raw = parse_toml(Path::new("c.toml"), text).unwrap();
            let err = Config::from_raw(raw, None, &Overrides::default(), &env()).unwrap_err();
            assert!(err.to_string().contains(key), "{text}: {err}");
        }
    }

    #[test]
    fn flags_win_over_the_file() {
        let raw = parse_toml(
            Path::new("c.toml"),
            "[mirror]\npoll_interval = \"90s\"\nlisten = \"127.0.0.1:1\"\n",
        )
        .unwrap();
        let flags = Overrides {
            poll_interval: Some(Duration::from_secs(5)),
            listen: Some("127.0.0.1:2".into()),
            ..Default::default()
        };
        let m = Config::from_raw(raw, None, &flags, &env()).unwrap().mirror;
        assert_eq!(m.poll_interval, Duration::from_secs(5));
        assert_eq!(m.listen, Some("127.0.0.1:2".parse().unwrap()));
    }

    #[test]
    fn the_notice_secret_comes_from_jam_notify_secret_or_its_file_and_is_long() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret"), "0123456789abcdef-from-file\n").unwrap();
        std::fs::write(dir.path().join("short"), "tiny\n").unwrap();
        let load = |file: &str, vars: &[(&str, &str)]| {
            let text = format!("[mirror]\nnotify_secret_file = {file:?}\n");
            let path = dir.path().join("jam.toml");
            let raw = parse_toml(&path, &text).unwrap();
            Config::from_raw(
                raw,
                Some(path),
                &Overrides::default(),
                &crate::config::layer::env(vars),
            )
            .map(|c| {
                c.mirror
                    .notify_secret
                    .map(|s| s.expose_secret().to_string())
            })
        };
        // Relative to the config file, trimmed.
        assert_eq!(
            load("secret", &[]).unwrap().as_deref(),
            Some("0123456789abcdef-from-file")
        );
        // The variable wins, and the file is then not read (it may not exist).
        let var = [("JAM_NOTIFY_SECRET", "0123456789abcdef-from-env")];
        assert_eq!(
            load("missing", &var).unwrap().as_deref(),
            Some("0123456789abcdef-from-env")
        );
        let err = load("short", &[]).unwrap_err().to_string();
        assert!(
            err.contains("mirror.notify_secret_file") && err.contains("16 characters"),
            "{err}"
        );
        assert!(
            !err.contains("tiny"),
            "the secret is not in the message: {err}"
        );
        let err = load("missing", &[]).unwrap_err().to_string();
        assert!(err.contains("cannot read"), "{err}");
        let none = Config::from_raw(RawConfig::default(), None, &Overrides::default(), &env())
            .unwrap()
            .mirror;
        assert!(none.notify_secret.is_none());
    }

    #[test]
    fn the_worker_id_is_a_flag_then_jam_worker_id_then_the_file_then_the_host_name() {
        let text = "[mirror]\nworker_id = \"from-file\"\nlease = \"12s\"\n";
        let load = |flag: Option<&str>, vars: &[(&str, &str)]| {
            let raw = parse_toml(Path::new("c.toml"), text).unwrap();
            let flags = Overrides {
                worker_id: flag.map(String::from),
                ..Default::default()
            };
            Config::from_raw(raw, None, &flags, &crate::config::layer::env(vars)).map(|c| c.mirror)
        };
        let env_id = [("JAM_WORKER_ID", "from-env")];
        assert_eq!(
            load(Some("from-flag"), &env_id).unwrap().worker_id,
            "from-flag"
        );
        assert_eq!(load(None, &env_id).unwrap().worker_id, "from-env");
        let m = load(None, &[]).unwrap();
        assert_eq!(
            (m.worker_id.as_str(), m.lease),
            ("from-file", Duration::from_secs(12))
        );
        let err = load(None, &[("JAM_WORKER_ID", "a/b")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("mirror.worker_id"), "{err}");
        let m = Config::from_raw(RawConfig::default(), None, &Overrides::default(), &env())
            .unwrap()
            .mirror;
        assert_eq!(
            (m.worker_id, m.lease),
            (hostname(), Duration::from_secs(30))
        );
    }
}
