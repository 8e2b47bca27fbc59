//! Configuration: one TOML file, then the environment, then flags; later wins.
//!
//! The file is read into [`RawConfig`], a plain serde schema that rejects unknown keys; [`Config::load`]
//! layers the environment ([`Env`]) and flag overrides ([`Overrides`]) over it and validates the result into
//! [`Config`], whose fields are typed (URLs parsed, globs compiled, limits checked). Secrets (the Jenkins API
//! token, S3 keys) come from the environment or from files, never from the TOML text or a flag, and are held
//! as [`SecretString`](secrecy::SecretString) so they never reach `Debug` output or logs.
//!
//! This is the one module that reads the environment: the binary hands in [`Env::process`], and what the
//! rest of jam would otherwise look up itself is a field here (the `AWS_*` settings of the S3 client in
//! [`StoreConfig::aws`], `RUST_LOG` and the colour decision in [`LogConfig`]).
//!
//! The files: `raw.rs` (the schema), `parse.rs` (TOML with `file:line:column` errors and the nearest-key
//! hint), `layer.rs` (`Env`, `Overrides` and the layering rule), `values.rs` (durations, sizes, globs, the
//! job filter, retention rules), and one file per section: `store.rs`, `mirror.rs`, `jenkins.rs`, `log.rs`,
//! `serve.rs`.

mod jenkins;
mod layer;
mod log;
mod mirror;
mod parse;
mod raw;
mod serve;
mod store;
mod values;

use std::path::{Path, PathBuf};

use url::Url;

pub use jenkins::{JenkinsConfig, default_source_name, is_loopback, parse_jenkins_url};
pub use layer::{Env, Overrides};
pub use log::{FilterSource, LogConfig};
pub use mirror::MirrorConfig;
pub use parse::{nearest, parse_toml};
pub use raw::{
    RawConfig, RawFetch, RawJenkins, RawLog, RawMirror, RawRetention, RawServe, RawServeUser,
    RawStore,
};
pub use serve::{DEFAULT_SERVE_LISTEN, Redirect, ServeConfig, ServeUser, TokenSource};
pub use store::{AwsOptions, StoreConfig};
pub use values::{
    Backfill, Dur, JobFilter, LogFormat, RetentionRule, Size, glob, parse_duration, parse_size,
};

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
    /// `jam serve` settings.
    pub serve: ServeConfig,
}

/// `jam fetch` settings.
#[derive(Debug, Clone)]
pub struct FetchConfig {
    /// Concurrent downloads.
    pub downloads: usize,
}

impl Config {
    /// Finds the config file (`--config`, else `JAM_CONFIG`, else `./jam.toml` if present), reads it, and
    /// layers the environment and the flags over it.
    pub fn load(flags: &Overrides, env: &Env<'_>) -> Result<Config, ConfigError> {
        let (raw, path) = RawConfig::load(flags, env)?;
        Config::from_raw(raw, path, flags, env)
    }

    /// [`Config::load`] for the commands that read only the store (`fetch` from the mirror, `ls`, `verify`,
    /// `prune`), with the configured controllers as (source name, base URL).
    ///
    /// A configuration whose Jenkins part is incomplete (no token, say) still loads: then its controllers'
    /// names and URLs are read from the tables (or `--jenkins` / `JENKINS_URL`) as written, and the rest is
    /// validated without the Jenkins part and without the `JENKINS_*` variables. When even that fails,
    /// the error is the full load's.
    pub fn load_without_jenkins(
        flags: &Overrides,
        env: &Env<'_>,
    ) -> Result<(Config, Vec<(String, Url)>), ConfigError> {
        let first = match Config::load(flags, env) {
            Ok(cfg) => {
                let sources = cfg.sources();
                return Ok((cfg, sources));
            }
            Err(e) => e,
        };
        let Ok((mut raw, path)) = RawConfig::load(flags, env) else {
            return Err(first);
        };
        let sources = jenkins::configured_sources(&raw.jenkins, flags, env);
        raw.jenkins.clear();
        let no_jenkins = Overrides {
            jenkins_url: None,
            jenkins_user: None,
            ..flags.clone()
        };
        let cfg = Config::from_raw(raw, path, &no_jenkins, &env.without_prefix("JENKINS_"))
            .map_err(|_| first)?;
        Ok((cfg, sources))
    }

    /// The configured controllers as (source name, base URL).
    pub fn sources(&self) -> Vec<(String, Url)> {
        self.jenkins
            .iter()
            .map(|j| (j.name.clone(), j.url.clone()))
            .collect()
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
        let store = store::store_config(raw.store, flags, env, &resolve)?;
        let mirror = mirror::mirror_config(raw.mirror, flags, env, &resolve)?;
        let jenkins = jenkins::jenkins_configs(raw.jenkins, flags, env, &resolve)?;
        let log = log::log_config(raw.log, flags, env)?;
        let serve = serve::serve_config(raw.serve, flags, env, &resolve)?;
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
            downloads: values::positive("fetch.downloads", raw.fetch.downloads.unwrap_or(4))?,
        };
        Ok(Config {
            file,
            store,
            mirror,
            jenkins,
            log,
            fetch,
            retention,
            serve,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use layer::env;

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
    fn read_side_load_without_jenkins_credentials_keeps_the_source_names() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("jam.toml");
        std::fs::write(
            &file,
            "[store]\nurl = \"memory://\"\n\n[[jenkins]]\nname = \"ci\"\nurl = \"https://ci.example.com/x\"\n",
        )
        .unwrap();
        let flags = Overrides {
            config: Some(file.clone()),
            ..Default::default()
        };
        let e = env(&[("JENKINS_USER", "jam")]);
        let full = Config::load(&flags, &e).unwrap_err().to_string();
        assert!(full.contains("no API token"), "{full}");
        let (cfg, sources) = Config::load_without_jenkins(&flags, &e).unwrap();
        assert!(cfg.jenkins.is_empty());
        assert_eq!(cfg.store.url, "memory://");
        assert_eq!(
            sources,
            [(
                "ci".to_string(),
                Url::parse("https://ci.example.com/x").unwrap()
            )]
        );
        // With the credentials, the full configuration loads and names the validated controllers.
        let e = env(&[("JENKINS_USER", "jam"), ("JENKINS_API_TOKEN", "t")]);
        let (cfg, sources) = Config::load_without_jenkins(&flags, &e).unwrap();
        assert_eq!(cfg.jenkins.len(), 1);
        assert_eq!(sources[0].1.as_str(), "https://ci.example.com/x/");
        // What is wrong outside the Jenkins part is reported as the full load reports it.
        std::fs::write(&file, "[mirror]\ntransfers = 0\n").unwrap();
        let err = Config::load_without_jenkins(&flags, &env(&[("JENKINS_URL", "https://ci/")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("mirror.transfers"), "{err}");
    }
}
