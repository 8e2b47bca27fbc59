//! `[log]`: the level and format, the filter in effect (`RUST_LOG` wins over the level), and whether the
//! text may carry ANSI colours (only when stderr is a terminal and `NO_COLOR` is not set, as
//! <https://no-color.org> asks).

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
    /// Whether text lines may carry ANSI colour codes.
    pub color: bool,
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
    /// Logging at `level` in `format`, with `RUST_LOG` and the colour decision taken from `env`; also what a
    /// command logs with when the configuration does not load.
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
            color: use_color(env.stderr_terminal(), env.get("NO_COLOR").as_deref()),
        }
    }
}

/// Whether logs may carry colours: only on a terminal, and not when `NO_COLOR` is set to anything but the
/// empty string.
fn use_color(stderr_terminal: bool, no_color: Option<&str>) -> bool {
    stderr_terminal && no_color.is_none_or(str::is_empty)
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
    fn colours_only_on_a_terminal_without_no_color() {
        for (terminal, no_color, want) in [
            (true, None, true),
            (true, Some("1"), false),
            (true, Some(""), true),
            (false, None, false),
            (false, Some("1"), false),
        ] {
            assert_eq!(
                use_color(terminal, no_color),
                want,
                "terminal {terminal}, NO_COLOR {no_color:?}"
            );
            let mut vars = vec![];
            if let Some(v) = no_color {
                vars.push(("NO_COLOR", v));
            }
            let e = env(&vars).with_stderr_terminal(terminal);
            let cfg =
                Config::from_raw(RawConfig::default(), None, &Overrides::default(), &e).unwrap();
            assert_eq!(
                cfg.log.color, want,
                "terminal {terminal}, NO_COLOR {no_color:?}"
            );
        }
    }

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
