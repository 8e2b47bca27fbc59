//! What the process gives the configuration besides the file: the environment ([`Env`]) and the flags
//! ([`Overrides`]), and the one rule that layers them: a flag wins over the environment, the environment
//! over the file, the file over the default ([`Env::layer`]).
//!
//! [`Env::process`] is the only place jam reads its environment: the binary calls it once and hands it in,
//! and everything else gets what it needs from the validated [`Config`](super::Config). An environment
//! variable that does not parse is an error naming the variable and the accepted form.

use std::{borrow::Cow, collections::BTreeMap, io::IsTerminal, path::PathBuf, time::Duration};

use secrecy::SecretString;

use super::{ConfigError, LogFormat, parse_duration, values::parse_bool};

/// The process's environment as the configuration sees it: its variables (tests pass a map), and whether
/// stderr is a terminal (which decides whether logs may carry colours).
#[derive(Clone)]
pub struct Env<'a> {
    vars: Cow<'a, BTreeMap<String, String>>,
    stderr_terminal: bool,
}

impl std::fmt::Debug for Env<'_> {
    /// Names only: values may be secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env")
            .field("vars", &self.vars.keys().collect::<Vec<_>>())
            .field("stderr_terminal", &self.stderr_terminal)
            .finish()
    }
}

impl Env<'static> {
    /// The process environment: every variable that is set, not empty and valid UTF-8, read once now; and
    /// whether stderr is a terminal.
    pub fn process() -> Env<'static> {
        let vars = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .filter(|(_, v)| !v.is_empty())
            .collect();
        Env {
            vars: Cow::Owned(vars),
            stderr_terminal: std::io::stderr().is_terminal(),
        }
    }

    /// A fixed set of variables, with stderr not a terminal (for tests).
    pub fn from_map(map: BTreeMap<String, String>) -> Env<'static> {
        Env {
            vars: Cow::Owned(map),
            stderr_terminal: false,
        }
    }
}

impl<'a> Env<'a> {
    /// The same variables, as if stderr were (or were not) a terminal.
    pub fn with_stderr_terminal(self, terminal: bool) -> Env<'a> {
        Env {
            stderr_terminal: terminal,
            ..self
        }
    }

    /// One variable, if set.
    pub fn get(&self, key: &str) -> Option<String> {
        self.vars.get(key).cloned()
    }

    /// Whether stderr is a terminal.
    pub fn stderr_terminal(&self) -> bool {
        self.stderr_terminal
    }

    /// The variables whose names start with `prefix`, in name order.
    pub(super) fn with_prefix<'s>(
        &'s self,
        prefix: &'s str,
    ) -> impl Iterator<Item = (&'s str, &'s str)> + 's {
        self.vars
            .iter()
            .filter(move |(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The same environment without the variables whose names start with `prefix`.
    pub(super) fn without_prefix(&self, prefix: &str) -> Env<'static> {
        Env {
            vars: Cow::Owned(
                self.vars
                    .iter()
                    .filter(|(k, _)| !k.starts_with(prefix))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            stderr_terminal: self.stderr_terminal,
        }
    }

    /// The first of `vars` that is set, parsed; a value that does not parse is an error naming the variable.
    pub(super) fn var<T: FromVar>(&self, vars: &[&str]) -> Result<Option<T>, ConfigError> {
        for var in vars {
            if let Some(text) = self.vars.get(*var) {
                return T::from_var(text)
                    .map(Some)
                    .map_err(|m| ConfigError::invalid(*var, m));
            }
        }
        Ok(None)
    }

    /// One setting, layered: the flag if given, else the first of `vars` that is set (see [`Env::var`]),
    /// else the file's value. `None` leaves the default to the caller.
    pub(super) fn layer<T: FromVar>(
        &self,
        flag: Option<T>,
        vars: &[&str],
        file: Option<T>,
    ) -> Result<Option<T>, ConfigError> {
        self.layer_with(flag, vars, || Ok(file))
    }

    /// [`Env::layer`] with the file's value computed only when neither a flag nor a variable gives one
    /// (a secret file is read only when it is the source).
    pub(super) fn layer_with<T: FromVar>(
        &self,
        flag: Option<T>,
        vars: &[&str],
        file: impl FnOnce() -> Result<Option<T>, ConfigError>,
    ) -> Result<Option<T>, ConfigError> {
        if flag.is_some() {
            return Ok(flag);
        }
        match self.var(vars)? {
            Some(v) => Ok(Some(v)),
            None => file(),
        }
    }
}

/// A value an environment variable can hold: how it is read, and what the error says when it does not
/// parse (the accepted form).
pub(super) trait FromVar: Sized {
    /// Parses the variable's text.
    fn from_var(text: &str) -> Result<Self, String>;
}

impl FromVar for String {
    fn from_var(text: &str) -> Result<Self, String> {
        Ok(text.to_string())
    }
}

impl FromVar for PathBuf {
    fn from_var(text: &str) -> Result<Self, String> {
        Ok(PathBuf::from(text))
    }
}

impl FromVar for SecretString {
    fn from_var(text: &str) -> Result<Self, String> {
        Ok(SecretString::from(text.to_string()))
    }
}

impl FromVar for bool {
    fn from_var(text: &str) -> Result<Self, String> {
        parse_bool(text)
    }
}

impl FromVar for LogFormat {
    fn from_var(text: &str) -> Result<Self, String> {
        text.parse()
    }
}

impl FromVar for Duration {
    fn from_var(text: &str) -> Result<Self, String> {
        parse_duration(text)
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
    /// `mirror --worker-id`
    pub worker_id: Option<String>,
    /// `serve --listen`
    pub serve_listen: Option<String>,
    /// `serve --source`
    pub serve_source: Option<String>,
}

#[cfg(test)]
pub(super) fn env(pairs: &[(&str, &str)]) -> Env<'static> {
    Env::from_map(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flag_wins_over_the_environment_which_wins_over_the_file() {
        let e = env(&[("B", "from-b"), ("C", "from-c")]);
        let pick = |flag: Option<&str>, vars: &[&str], file: Option<&str>| {
            e.layer(flag.map(String::from), vars, file.map(String::from))
                .unwrap()
        };
        assert_eq!(
            pick(Some("flag"), &["B"], Some("file")).as_deref(),
            Some("flag")
        );
        assert_eq!(
            pick(None, &["A", "B", "C"], Some("file")).as_deref(),
            Some("from-b")
        );
        assert_eq!(pick(None, &["A"], Some("file")).as_deref(), Some("file"));
        assert_eq!(pick(None, &["A"], None), None);
    }

    #[test]
    fn a_variable_that_does_not_parse_names_itself_and_the_accepted_form() {
        let e = env(&[("AWS_ALLOW_HTTP", "sometimes"), ("JAM_LOG_FORMAT", "xml")]);
        let err = e.var::<bool>(&["AWS_ALLOW_HTTP"]).unwrap_err().to_string();
        assert_eq!(
            err,
            "invalid AWS_ALLOW_HTTP: 'sometimes' is not a boolean; use true or false"
        );
        let err = e
            .layer::<LogFormat>(None, &["JAM_LOG_FORMAT"], Some(LogFormat::Text))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "invalid JAM_LOG_FORMAT: 'xml' is not a log format; use text or json"
        );
        // A flag decides without looking at the variable.
        assert_eq!(
            e.layer(Some(LogFormat::Json), &["JAM_LOG_FORMAT"], None)
                .unwrap(),
            Some(LogFormat::Json)
        );
    }

    #[test]
    fn the_file_is_read_only_when_it_is_the_source() {
        let e = env(&[("SECRET", "from-env")]);
        let got: Option<String> = e
            .layer_with(None, &["SECRET"], || panic!("the file is not read"))
            .unwrap();
        assert_eq!(got.as_deref(), Some("from-env"));
    }

    #[test]
    fn debug_shows_names_but_no_values() {
        let e = env(&[("AWS_SECRET_ACCESS_KEY", "hunter2")]);
        let dbg = format!("{e:?}");
        assert!(dbg.contains("AWS_SECRET_ACCESS_KEY"), "{dbg}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        let without = e.without_prefix("AWS_");
        assert_eq!(without.get("AWS_SECRET_ACCESS_KEY"), None);
    }
}
