//! The value types of the configuration and how they are written: durations (`"90s"`), sizes (`"16 MiB"`),
//! the backfill choice, the log format, booleans in the environment, shell-like globs, the job filter and
//! the retention rules; plus the small checks every section uses (a count of at least 1, a secret file).

use std::{fmt, path::Path, time::Duration};

use bytesize::ByteSize;
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use secrecy::SecretString;
use serde::{Deserialize, Deserializer};

use super::ConfigError;

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

/// The duration a file gives, else `default_secs` seconds.
pub(super) fn secs_or(value: Option<Dur>, default_secs: u64) -> Duration {
    value.map_or(Duration::from_secs(default_secs), |d| d.0)
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

/// Parses a boolean as the environment writes it: `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`.
pub(super) fn parse_bool(v: &str) -> Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(format!("'{v}' is not a boolean; use true or false")),
    }
}

/// A size written as text, e.g. `"16 MiB"`, or as a number of bytes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Size(pub u64);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match NumberOrText::deserialize(d)? {
            NumberOrText::N(n) => Ok(Size(n)),
            NumberOrText::S(s) => parse_size(&s).map(Size).map_err(serde::de::Error::custom),
        }
    }
}

/// A value the file may write as a number or as text.
#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrText {
    N(u64),
    S(String),
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
        match NumberOrText::deserialize(d)? {
            NumberOrText::N(n) => Ok(Backfill::Newest(n)),
            NumberOrText::S(s) => s.parse().map_err(serde::de::Error::custom),
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

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!("'{s}' is not a log format; use text or json")),
        }
    }
}

/// A count that must be at least 1.
pub(super) fn positive(key: &str, n: usize) -> Result<usize, ConfigError> {
    if n == 0 {
        Err(ConfigError::invalid(key, "must be at least 1"))
    } else {
        Ok(n)
    }
}

/// Reads a secret from a file (surrounding whitespace trimmed); an empty file is an error.
pub(super) fn read_secret_file(key: &str, path: &Path) -> Result<SecretString, ConfigError> {
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

/// Checks a name that becomes part of every store key (a source name, a worker id).
pub(super) fn validate_source_name(name: &str) -> Result<(), String> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn booleans_and_log_formats_as_the_environment_writes_them() {
        for yes in ["1", "true", "YES", " on "] {
            assert_eq!(parse_bool(yes), Ok(true), "{yes}");
        }
        for no in ["0", "False", "no", "off"] {
            assert_eq!(parse_bool(no), Ok(false), "{no}");
        }
        assert_eq!(
            parse_bool("maybe"),
            Err("'maybe' is not a boolean; use true or false".to_string())
        );
        assert_eq!("JSON".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert_eq!(
            "xml".parse::<LogFormat>(),
            Err("'xml' is not a log format; use text or json".to_string())
        );
    }
}
