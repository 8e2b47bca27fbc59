//! `[log]`: the level and format, and the filter in effect (`RUST_LOG` wins over the level).

use super::{ConfigError, Env, Overrides, raw::RawLog, values::LogFormat};

/// Logging.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// The configured level or filter: `--log-level`, else `JAM_LOG`, else `[log] level`, else `info`.
    pub level: String,
    /// The filter in effect: `RUST_LOG` when it is set, else [`LogConfig::level`].
    pub filter: String,
    /// Where [`LogConfig::filter`] came from (for messages).
    pub filter_source: FilterSource,
    /// Output format.
    pub format: LogFormat,
}

/// Where the log filter in effect came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterSource {
    /// The `RUST_LOG` variable.
    RustLog,
    /// The configured level ([`LogConfig::level`]).
    Level,
}

impl LogConfig {
    /// Logging at `level` in `format`, with `RUST_LOG` taken from `env`; also what a command logs with when
    /// the configuration does not load.
    pub fn new(level: impl Into<String>, format: LogFormat, env: &Env<'_>) -> LogConfig {
        let level = level.into();
        let rust_log = env
            .get("RUST_LOG")
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty());
        let (filter, filter_source) = match rust_log {
            Some(v) => (v, FilterSource::RustLog),
            None => (level.clone(), FilterSource::Level),
        };
        LogConfig {
            level,
            filter,
            filter_source,
            format,
        }
    }
}

/// Validates `[log]` with the environment and flags layered over it.
pub(super) fn log_config(
    raw: RawLog,
    flags: &Overrides,
    env: &Env<'_>,
) -> Result<LogConfig, ConfigError> {
    let level = env
        .layer(flags.log_level.clone(), &["JAM_LOG"], raw.level)?
        .unwrap_or_else(|| "info".into());
    let format = env
        .layer(flags.log_format, &["JAM_LOG_FORMAT"], raw.format)?
        .unwrap_or_default();
    Ok(LogConfig::new(level, format, env))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, RawConfig, layer::env};

    #[test]
    fn rust_log_wins_over_every_configured_level() {
        let flags = Overrides {
            log_level: Some("debug".into()),
            ..Default::default()
        };
        let cfg = Config::from_raw(
            RawConfig::default(),
            None,
            &flags,
            &env(&[("RUST_LOG", " jam=trace "), ("JAM_LOG", "warn")]),
        )
        .unwrap();
        assert_eq!(cfg.log.level, "debug");
        assert_eq!(cfg.log.filter, "jam=trace");
        assert_eq!(cfg.log.filter_source, FilterSource::RustLog);
        let cfg = Config::from_raw(
            RawConfig::default(),
            None,
            &Overrides::default(),
            &env(&[("JAM_LOG", "warn"), ("JAM_LOG_FORMAT", "json")]),
        )
        .unwrap();
        assert_eq!(
            (cfg.log.filter.as_str(), cfg.log.filter_source),
            ("warn", FilterSource::Level)
        );
        assert_eq!(cfg.log.format, LogFormat::Json);
    }
}
