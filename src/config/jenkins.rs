//! `[[jenkins]]`: the controllers to mirror, from the tables or, with none, from `JENKINS_URL`,
//! `JENKINS_USER` and `JENKINS_API_TOKEN` (or `--jenkins` and `--user`). What a controller lacks (URL, user,
//! token) is named together in one error, so that one run shows everything there is to set.

use std::{path::PathBuf, time::Duration};

use secrecy::SecretString;
use url::Url;

use super::{
    ConfigError, Env, Overrides,
    raw::RawJenkins,
    values::{JobFilter, positive, read_secret_file, secs_or, validate_source_name},
};

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

/// What every controller's validation reads besides its own table.
struct Inputs<'a, 'e> {
    flags: &'a Overrides,
    env: &'a Env<'e>,
    resolve: &'a dyn Fn(PathBuf) -> PathBuf,
    /// Whether the controllers come from `[[jenkins]]` tables (else from the environment and flags).
    tables: bool,
    /// Whether there is one controller: only then do `JENKINS_URL`, `JENKINS_USER` and the flags apply to
    /// it (with several, they would be ambiguous).
    single: bool,
}

/// Validates the `[[jenkins]]` tables (or the one controller the environment names) with the environment
/// and flags layered over them.
pub(super) fn jenkins_configs(
    raw: Vec<RawJenkins>,
    flags: &Overrides,
    env: &Env<'_>,
    resolve: &dyn Fn(PathBuf) -> PathBuf,
) -> Result<Vec<JenkinsConfig>, ConfigError> {
    let tables = !raw.is_empty();
    let mut raw = raw;
    if !tables
        && env
            .layer(flags.jenkins_url.clone(), &["JENKINS_URL"], None::<String>)?
            .is_some()
    {
        raw.push(RawJenkins::default());
    }
    let inputs = Inputs {
        flags,
        env,
        resolve,
        tables,
        single: raw.len() == 1,
    };
    let mut out: Vec<JenkinsConfig> = Vec::new();
    for (i, r) in raw.into_iter().enumerate() {
        let c = controller(&format!("jenkins[{i}]"), r, &inputs, &out)?;
        out.push(c);
    }
    Ok(out)
}

/// Validates one controller; `taken` are the ones before it (source names must differ).
fn controller(
    key: &str,
    r: RawJenkins,
    inputs: &Inputs<'_, '_>,
    taken: &[JenkinsConfig],
) -> Result<JenkinsConfig, ConfigError> {
    let env = inputs.env;
    let layered = |flag: &Option<String>, var: &str, file: Option<String>| {
        if inputs.single {
            env.layer(flag.clone(), &[var], file)
        } else {
            Ok(file)
        }
    };
    let url_text = layered(&inputs.flags.jenkins_url, "JENKINS_URL", r.url)?;
    let user = layered(&inputs.flags.jenkins_user, "JENKINS_USER", r.user)?;
    let token_var = r
        .token_env
        .clone()
        .unwrap_or_else(|| "JENKINS_API_TOKEN".into());
    let env_token: Option<SecretString> = match r.token_file {
        Some(_) => None,
        None => env.var(&[token_var.as_str()])?,
    };
    let missing = Missing {
        url: url_text.is_none(),
        user: user.is_none(),
        token: r.token_file.is_none() && env_token.is_none(),
    };
    let Some(url_text) = url_text else {
        return Err(if missing.user || missing.token {
            missing.error(key, None, inputs, &token_var)
        } else {
            ConfigError::invalid(
                format!("{key}.url"),
                "missing; set url in [[jenkins]] or JENKINS_URL",
            )
        });
    };
    let url =
        parse_jenkins_url(&url_text).map_err(|m| ConfigError::invalid(format!("{key}.url"), m))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ConfigError::invalid(
            format!("{key}.url"),
            "must not carry credentials; set user and the token through token_file or JENKINS_API_TOKEN",
        ));
    }
    if missing.user && missing.token {
        return Err(missing.error(key, Some(&url), inputs, &token_var));
    }
    let user = user.ok_or_else(|| {
        ConfigError::invalid(
            format!("{key}.user"),
            "missing; set user in [[jenkins]] or JENKINS_USER",
        )
    })?;
    let token = match r.token_file {
        Some(f) => read_secret_file(&format!("{key}.token_file"), &(inputs.resolve)(f))?,
        None => env_token.ok_or_else(|| {
            ConfigError::invalid(
                format!("{key}.token"),
                format!(
                    "no API token for {url}: set {token_var} or token_file (a file holding the token)"
                ),
            )
        })?,
    };
    let allow_insecure = env
        .layer(None, &["JAM_ALLOW_INSECURE_HTTP"], r.allow_insecure_http)?
        .unwrap_or(false);
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
            validate_source_name(&n).map_err(|m| ConfigError::invalid(format!("{key}.name"), m))?;
            n
        }
        None => default_source_name(&url),
    };
    if taken.iter().any(|c| c.name == name) {
        return Err(ConfigError::invalid(
            format!("{key}.name"),
            format!("'{name}' names two controllers; give each [[jenkins]] a distinct name"),
        ));
    }
    let jobs = JobFilter::new(
        &r.include.unwrap_or_default(),
        &r.exclude.unwrap_or_default(),
        key,
    )?;
    Ok(JenkinsConfig {
        name,
        url,
        user,
        token,
        jobs,
        folder_depth: r.folder_depth.unwrap_or(5).clamp(1, 20),
        max_requests: positive(&format!("{key}.max_requests"), r.max_requests.unwrap_or(8))?,
        ca_bundle: r.ca_bundle.map(inputs.resolve),
        connect_timeout: secs_or(r.connect_timeout, 10),
        read_timeout: secs_or(r.read_timeout, 60),
        api_timeout: secs_or(r.api_timeout, 120),
        retries: r.retries.unwrap_or(5),
    })
}

/// What a controller lacks, when it lacks more than one thing: the error names all of it at once.
struct Missing {
    url: bool,
    user: bool,
    token: bool,
}

impl Missing {
    /// One error naming everything missing and where each may be set: the keys of a `[[jenkins]]` table
    /// (and the variables, where they apply), or the variables for a controller the environment names.
    fn error(
        &self,
        key: &str,
        url: Option<&Url>,
        inputs: &Inputs<'_, '_>,
        token_var: &str,
    ) -> ConfigError {
        // (missing, what, the table's key, the variable that may stand in for it)
        let single = inputs.single;
        let items = [
            (self.url, "url", "url", single.then_some("JENKINS_URL")),
            (self.user, "user", "user", single.then_some("JENKINS_USER")),
            (self.token, "API token", "token_file", Some(token_var)),
        ];
        let missing: Vec<_> = items.iter().filter(|i| i.0).collect();
        let what = and_list(missing.iter().map(|i| format!("no {}", i.1)));
        let vars: Vec<&str> = missing.iter().filter_map(|i| i.3).collect();
        let set = if !inputs.tables {
            format!("set {}", and_list(vars))
        } else {
            let keys = format!(
                "set {} in [[jenkins]]",
                and_list(missing.iter().map(|i| i.2))
            );
            if vars.len() == missing.len() {
                format!("{keys}, or {}", and_list(vars))
            } else if self.token {
                format!("{keys} (or put the token in {token_var})")
            } else {
                keys
            }
        };
        let place = url.map(|u| format!(" for {u}")).unwrap_or_default();
        ConfigError::invalid(key, format!("{what}{place}: {set}"))
    }
}

/// `a`, `a and b`, `a, b and c`.
fn and_list<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> String {
    let items: Vec<S> = items.into_iter().collect();
    match items.split_last() {
        None => String::new(),
        Some((last, [])) => last.as_ref().to_string(),
        Some((last, rest)) => {
            let rest: Vec<&str> = rest.iter().map(AsRef::as_ref).collect();
            format!("{} and {}", rest.join(", "), last.as_ref())
        }
    }
}

/// The controllers a configuration names, as (source name, base URL), from the tables (or, with none,
/// `--jenkins` or `JENKINS_URL`) without validating anything else: what the read-side commands need of a
/// configuration whose Jenkins part is incomplete. Tables without a usable URL are left out.
pub(super) fn configured_sources(
    raw: &[RawJenkins],
    flags: &Overrides,
    env: &Env<'_>,
) -> Vec<(String, Url)> {
    let mut names = Vec::new();
    for j in raw {
        let Some(url) = j.url.as_deref().and_then(|u| Url::parse(u).ok()) else {
            continue;
        };
        names.push((
            j.name.clone().unwrap_or_else(|| default_source_name(&url)),
            url,
        ));
    }
    if raw.is_empty()
        && let Some(url) = env
            .layer(flags.jenkins_url.clone(), &["JENKINS_URL"], None::<String>)
            .ok()
            .flatten()
            .and_then(|u| Url::parse(&u).ok())
    {
        names.push((default_source_name(&url), url));
    }
    names
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{Config, RawConfig, layer::env, parse_toml};

    fn from_env(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_raw(
            RawConfig::default(),
            None,
            &Overrides::default(),
            &env(pairs),
        )
    }

    fn from_file(text: &str, pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let raw = parse_toml(Path::new("c.toml"), text).unwrap();
        Config::from_raw(raw, None, &Overrides::default(), &env(pairs))
    }

    #[test]
    fn jenkins_from_standard_env_with_secret_redacted() {
        let cfg = from_env(&[
            ("JENKINS_URL", "http://127.0.0.1:8080/jenkins"),
            ("JENKINS_USER", "jam"),
            ("JENKINS_API_TOKEN", "11aaaabbbbccccddddeeeeffff00001111"),
        ])
        .unwrap();
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
        let err = from_env(&[
            ("JENKINS_URL", "https://ci.example.com/"),
            ("JENKINS_USER", "jam"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("JENKINS_API_TOKEN"), "{err}");
        assert_eq!(
            err.to_string(),
            "invalid jenkins[0].token: no API token for https://ci.example.com/: set JENKINS_API_TOKEN or \
             token_file (a file holding the token)"
        );
    }

    #[test]
    fn missing_user_alone_says_what_to_set() {
        let err = from_env(&[
            ("JENKINS_URL", "https://ci.example.com/"),
            ("JENKINS_API_TOKEN", "t"),
        ])
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid jenkins[0].user: missing; set user in [[jenkins]] or JENKINS_USER"
        );
    }

    #[test]
    fn missing_user_and_token_are_named_together() {
        let err = from_env(&[("JENKINS_URL", "https://ci.example.com")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid jenkins[0]: no user and no API token for https://ci.example.com/: set JENKINS_USER and \
             JENKINS_API_TOKEN"
        );
        let err = from_file("[[jenkins]]\nurl = \"https://ci.example.com/\"\n", &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid jenkins[0]: no user and no API token for https://ci.example.com/: set user and token_file \
             in [[jenkins]], or JENKINS_USER and JENKINS_API_TOKEN"
        );
        let err = from_file(
            "[[jenkins]]\nurl = \"https://a.example.com/\"\nuser = \"jam\"\ntoken_env = \"A_TOKEN\"\n\n\
             [[jenkins]]\nurl = \"https://b.example.com/\"\ntoken_env = \"B_TOKEN\"\n",
            &[("A_TOKEN", "a")],
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid jenkins[1]: no user and no API token for https://b.example.com/: set user and token_file \
             in [[jenkins]] (or put the token in B_TOKEN)"
        );
    }

    #[test]
    fn missing_url_and_credentials_are_named_together() {
        let err = from_file("[[jenkins]]\nname = \"ci\"\n", &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid jenkins[0]: no url, no user and no API token: set url, user and token_file in \
             [[jenkins]], or JENKINS_URL, JENKINS_USER and JENKINS_API_TOKEN"
        );
        let err = from_file(
            "[[jenkins]]\nuser = \"jam\"\n",
            &[("JENKINS_API_TOKEN", "t")],
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid jenkins[0].url: missing; set url in [[jenkins]] or JENKINS_URL",
            "the URL alone keeps its own message"
        );
        let err = from_file("[[jenkins]]\nuser = \"jam\"\n", &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid jenkins[0]: no url and no API token: set url and token_file in [[jenkins]], or \
             JENKINS_URL and JENKINS_API_TOKEN"
        );
    }

    #[test]
    fn plain_http_to_remote_host_needs_opt_in() {
        let e = [
            ("JENKINS_URL", "http://ci.example.com/"),
            ("JENKINS_USER", "jam"),
            ("JENKINS_API_TOKEN", "t"),
        ];
        let err = from_env(&e).unwrap_err();
        assert!(err.to_string().contains("clear text"), "{err}");
        let mut opt_in = e.to_vec();
        opt_in.push(("JAM_ALLOW_INSECURE_HTTP", "true"));
        assert!(from_env(&opt_in).is_ok());
    }

    #[test]
    fn and_lists_read_as_english() {
        assert_eq!(and_list(["a"]), "a");
        assert_eq!(and_list(["a", "b"]), "a and b");
        assert_eq!(and_list(["a", "b", "c"]), "a, b and c");
    }
}
