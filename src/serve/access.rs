//! Who may read: the users of `[[serve.users]]` (HTTP Basic `user:token`, as clients send to Jenkins, or
//! `Authorization: Bearer <token>`), or everyone with `serve.anonymous = true`.
//!
//! Only SHA-256 digests of the tokens are held; a presented token is hashed and compared with every
//! candidate in constant time. Failed attempts are counted per client address: after
//! `serve.login_failures` within `serve.login_window`, the address gets 429 until the window has passed.
//! A user's `jobs` globs decide which jobs it sees; a folder is visible when a job below it is, and
//! everything else answers 404, as Jenkins hides what a user may not read.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use base64::Engine as _;
use http::HeaderMap;
use sha2::Digest;

use crate::config::{ConfigError, JobFilter, ServeConfig};

/// A user who may read, with the jobs it sees.
#[derive(Debug)]
pub struct User {
    /// Its name.
    pub name: String,
    token_sha256: [u8; 32],
    jobs: JobFilter,
}

/// Who a request reads as.
#[derive(Debug, Clone)]
pub enum Reader {
    /// Nobody in particular (`serve.anonymous = true`): every job is visible.
    Anonymous,
    /// A configured user.
    User(Arc<User>),
}

impl Reader {
    /// Whether this reader sees the job with this full name.
    pub fn sees(&self, full_name: &str) -> bool {
        match self {
            Reader::Anonymous => true,
            Reader::User(u) => u.jobs.matches(full_name),
        }
    }

    /// The user's name (`anonymous` for nobody).
    pub fn name(&self) -> &str {
        match self {
            Reader::Anonymous => "anonymous",
            Reader::User(u) => &u.name,
        }
    }
}

/// Why a request may not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// No credentials, and anonymous reading is off: 401 with a challenge.
    NoCredentials,
    /// Credentials that match no user: 401.
    Wrong,
    /// Too many failures from this address: 429 for this long.
    Limited(Duration),
}

/// The table of users and the failure counts per address.
#[derive(Debug)]
pub struct Access {
    users: Vec<Arc<User>>,
    anonymous: bool,
    max_failures: u32,
    window: Duration,
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

/// Addresses whose failures are remembered at most; older windows are dropped first.
const TRACKED_ADDRESSES: usize = 10_000;

impl Access {
    /// The access rules of a configuration; reads the users' token files.
    pub fn new(cfg: &ServeConfig) -> Result<Access, ConfigError> {
        let users = cfg
            .users
            .iter()
            .enumerate()
            .map(|(i, u)| {
                Ok(Arc::new(User {
                    name: u.name.clone(),
                    token_sha256: u.token.sha256(&format!("serve.users[{i}]"))?,
                    jobs: u.jobs.clone(),
                }))
            })
            .collect::<Result<_, ConfigError>>()?;
        Ok(Access {
            users,
            anonymous: cfg.anonymous,
            max_failures: cfg.login_failures,
            window: cfg.login_window,
            failures: Mutex::new(HashMap::new()),
        })
    }

    /// Whether anyone may read without credentials.
    pub fn anonymous(&self) -> bool {
        self.anonymous
    }

    /// Decides who a request reads as. Credentials, when sent, must be right even with anonymous
    /// reading on (as Jenkins answers 401 to a wrong token on a public URL).
    pub fn check(&self, headers: &HeaderMap, from: IpAddr) -> Result<Reader, Denied> {
        let Some(auth) = headers.get(http::header::AUTHORIZATION) else {
            return if self.anonymous {
                Ok(Reader::Anonymous)
            } else {
                Err(Denied::NoCredentials)
            };
        };
        if let Some(wait) = self.locked(from) {
            return Err(Denied::Limited(wait));
        }
        match credentials(auth.as_bytes()).and_then(|c| self.find(c)) {
            Some(user) => {
                self.failures.lock().expect("failures lock").remove(&from);
                Ok(Reader::User(user))
            }
            None => {
                self.fail(from);
                Err(Denied::Wrong)
            }
        }
    }

    fn find(&self, (name, token): (Option<String>, Vec<u8>)) -> Option<Arc<User>> {
        let presented: [u8; 32] = sha2::Sha256::digest(&token).into();
        // Every candidate is compared, each in constant time: the time taken says nothing about the token.
        let mut found = None;
        for u in &self.users {
            let named = name.as_deref().is_none_or(|n| n == u.name);
            if constant_time_eq(&u.token_sha256, &presented) && named {
                found = Some(u.clone());
            }
        }
        found
    }

    fn locked(&self, from: IpAddr) -> Option<Duration> {
        let mut failures = self.failures.lock().expect("failures lock");
        let (since, count) = *failures.get(&from)?;
        let left = self.window.checked_sub(since.elapsed());
        match left {
            Some(left) if count >= self.max_failures => Some(left),
            Some(_) => None,
            None => {
                failures.remove(&from);
                None
            }
        }
    }

    fn fail(&self, from: IpAddr) {
        let mut failures = self.failures.lock().expect("failures lock");
        if failures.len() >= TRACKED_ADDRESSES {
            let window = self.window;
            failures.retain(|_, (since, _)| since.elapsed() < window);
        }
        let entry = failures.entry(from).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= self.window {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
        if entry.1 == self.max_failures {
            tracing::warn!(client = %from, failures = entry.1, "too many failed logins; refusing this address for a while");
        }
    }
}

/// `(user name, token)` from `Basic base64(user:token)` or `Bearer token` (schemes case-insensitive).
pub(crate) fn credentials(header: &[u8]) -> Option<(Option<String>, Vec<u8>)> {
    let text = std::str::from_utf8(header).ok()?.trim();
    let (scheme, value) = text.split_once(' ')?;
    let value = value.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(value)
            .ok()?;
        let colon = decoded.iter().position(|b| *b == b':')?;
        let name = String::from_utf8(decoded[..colon].to_vec()).ok()?;
        Some((Some(name), decoded[colon + 1..].to_vec()))
    } else if scheme.eq_ignore_ascii_case("bearer") {
        Some((None, value.as_bytes().to_vec()))
    } else {
        None
    }
}

/// Whether two digests are equal, in a time that does not depend on where they differ.
pub(crate) fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Overrides, parse_toml};

    fn access() -> Access {
        access_of(&format!(
            "[serve]\nlogin_failures = 3\n\n[[serve.users]]\nname = \"ci\"\ntoken_sha256 = \"{}\"\njobs = [\"team a/**\"]\n",
            hex::encode(sha2::Sha256::digest(b"s3cret"))
        ))
    }

    fn access_of(text: &str) -> Access {
        let raw = parse_toml(std::path::Path::new("t.toml"), text).unwrap();
        let cfg = Config::from_raw(
            raw,
            None,
            &Overrides::default(),
            &crate::config::Env::from_map(Default::default()),
        )
        .unwrap();
        Access::new(&cfg.serve).unwrap()
    }

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::AUTHORIZATION, auth.parse().unwrap());
        h
    }

    fn basic(user: &str, token: &str) -> HeaderMap {
        let b = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{token}"));
        headers(&format!("Basic {b}"))
    }

    #[test]
    fn basic_and_bearer_with_job_globs() {
        let a = access();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(
            a.check(&HeaderMap::new(), ip).unwrap_err(),
            Denied::NoCredentials
        );
        let r = a.check(&basic("ci", "s3cret"), ip).unwrap();
        assert_eq!(r.name(), "ci");
        assert!(r.sees("team a/app") && !r.sees("team b/app"));
        assert!(a.check(&headers("bearer s3cret"), ip).is_ok());
        assert_eq!(
            a.check(&basic("other", "s3cret"), ip).unwrap_err(),
            Denied::Wrong
        );
        assert_eq!(
            a.check(&headers("Digest x"), ip).unwrap_err(),
            Denied::Wrong
        );
    }

    #[test]
    fn failures_per_address_are_limited() {
        let a = access();
        let (bad, good): (IpAddr, IpAddr) =
            ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        for _ in 0..3 {
            assert_eq!(
                a.check(&basic("ci", "wrong"), bad).unwrap_err(),
                Denied::Wrong
            );
        }
        // Locked now, even with the right token; another address is not.
        assert!(matches!(
            a.check(&basic("ci", "s3cret"), bad),
            Err(Denied::Limited(_))
        ));
        assert!(a.check(&basic("ci", "s3cret"), good).is_ok());
    }

    #[test]
    fn anonymous_reading_still_checks_credentials_sent() {
        let a = access_of("[serve]\nanonymous = true\n");
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(matches!(
            a.check(&HeaderMap::new(), ip),
            Ok(Reader::Anonymous)
        ));
        assert_eq!(a.check(&basic("x", "y"), ip).unwrap_err(), Denied::Wrong);
    }
}
