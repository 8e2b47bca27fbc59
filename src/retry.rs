//! The one retry policy: exponential backoff with jitter, a cap, and a server's `Retry-After` honoured as
//! a lower bound. The Jenkins client, the artifact transfers, the compare-and-swap updates and the
//! worker's build attempts all wait with a [`RetryPolicy`]; the store's own requests are retried by
//! object_store, configured explicitly (`store::request_retry`).
//!
//! # Who retries what
//!
//! Each failure is retried at exactly one level; the levels do not stack, except that a build attempt
//! that fails after its level gave up is tried again as a whole, on a later cycle (the last row).
//!
//! | failure | retried by | attempts | waits | bound on one attempt's retries |
//! |---|---|---|---|---|
//! | a Jenkins request (an API call, or opening an artifact download) answered 5xx, 429 or 408, or a connection error or timeout | the Jenkins client (`jenkins`) | `[[jenkins]] retries` (5) | 0.5 s doubling up to 60 s, upper-half jitter; `Retry-After` up to 10 min | 5 requests, each bounded by `connect_timeout` (10 s) and, for API calls, `api_timeout` (120 s); waits 7.5 s at most without `Retry-After` |
//! | an API answer whose body breaks off or ends mid-document | the Jenkins client | the same `retries` (5): failed sends and broken bodies share one budget | as above | as above |
//! | an artifact body that breaks mid-stream, arrives short or long of its `Content-Length`, or whose MD5 matches no fingerprint under the build-level rule | the transfer loop (`mirror::build`, `TRANSFER_RETRY`) | 3 per artifact, for all three causes together | 0.4 s doubling up to 5 s, upper-half jitter | 3 downloads; each ends on the first idle `read_timeout` (60 s); waits 1.2 s at most |
//! | a store request (a PUT, a part, a completion, a read, a listing), on S3 | object_store (`store::request_retry`) | 11 (10 retries) | 100 ms, ×2 up to 15 s, decorrelated jitter | no retry starts after 180 s: about 195 s + `store.request_timeout` |
//! | a compare-and-swap conflict in `Store::update` (another writer came first) | `Store::update` (`store::CONFLICT_RETRY`) | 64 | 10 ms doubling up to 50 ms, upper-half jitter | 64 reads and conditional writes, waits about 3 s at most |
//! | a build attempt that failed for any of the reasons above (or a store failure, or a 5xx after the client's retries) | the worker (`mirror::schedule`) | `mirror.max_attempts` (5) | `mirror.retry_backoff` (60 s) doubling, ±25 %, at most 6 h | the build is recorded as failed in the job's index after the last attempt |
//!
//! Never retried: 401 (the token is wrong), 403, 404 (a build deleted meanwhile is recorded as missed), an
//! unsafe artifact path, a shutdown. The commands (`jam fetch`, `ls`, `verify`, `prune`) have only the
//! Jenkins client's, object_store's and (`prune`) the compare-and-swap rows: a failed download fails the
//! command.
//!
//! So, with the defaults, in total: a Jenkins controller answering 503 to an artifact download sees 5
//! requests per build attempt, 25 over the build's 5 attempts; an artifact whose body keeps breaking is
//! downloaded 3 times per build attempt, 15 in all; an S3 endpoint failing every request sees 11 tries
//! of the first request per build attempt, 55 in all, before the build is recorded as failed.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The longest `Retry-After` jam honours.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// How a wait is spread around its nominal length, so that retries from many clients do not line up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jitter {
    /// A random point in the upper half, `[d/2, d]`: waits never collapse to zero.
    UpperHalf,
    /// A random point within `percent` % either side, `[d·(1-p), d·(1+p)]` (still capped).
    Around {
        /// The spread, in percent of the nominal wait.
        percent: u8,
    },
}

/// How many attempts an operation gets and how long it waits between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all (the first one included); at least 1.
    pub attempts: u32,
    /// The wait before the second attempt, before jitter.
    pub first: Duration,
    /// The longest wait, jitter included.
    pub cap: Duration,
    /// How waits are spread.
    pub jitter: Jitter,
}

impl RetryPolicy {
    /// A policy of `attempts` attempts with waits growing from `first` up to `cap`, jittered in their
    /// upper half.
    pub const fn new(attempts: u32, first: Duration, cap: Duration) -> RetryPolicy {
        RetryPolicy {
            attempts,
            first,
            cap,
            jitter: Jitter::UpperHalf,
        }
    }

    /// The same policy with another jitter.
    pub const fn with_jitter(self, jitter: Jitter) -> RetryPolicy {
        RetryPolicy { jitter, ..self }
    }

    /// Whether attempt number `attempt` (1-based) may be followed by another.
    pub fn allows_another(&self, attempt: u32) -> bool {
        attempt < self.attempts
    }

    /// The wait after failed attempt number `attempt` (1-based): `first × 2^(attempt-1)`, capped at `cap`,
    /// then jittered (see [`Jitter`]) and capped again; `retry_after` from the server, when given, is a
    /// lower bound (capped at [`MAX_RETRY_AFTER`]).
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exp = self
            .first
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
            .min(self.cap);
        let factor = match self.jitter {
            Jitter::UpperHalf => rand::random_range(0.5..=1.0),
            Jitter::Around { percent } => {
                let p = f64::from(percent.min(100)) / 100.0;
                rand::random_range(1.0 - p..=1.0 + p)
            }
        };
        let jittered = exp.mul_f64(factor).min(self.cap);
        match retry_after {
            Some(ra) => ra.min(MAX_RETRY_AFTER).max(jittered),
            None => jittered,
        }
    }
}

/// Parses a `Retry-After` header (seconds or an HTTP date).
pub fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    let v = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate_parse(v)?;
    Some(when.duration_since(SystemTime::now()).unwrap_or_default())
}

fn httpdate_parse(v: &str) -> Option<SystemTime> {
    let fmt = time::format_description::parse_borrowed::<2>(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT",
    )
    .ok()?;
    let t = time::PrimitiveDateTime::parse(v, &fmt).ok()?.assume_utc();
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(t.unix_timestamp()).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_respects_retry_after() {
        let first = Duration::from_millis(100);
        let cap = Duration::from_secs(2);
        let policy = RetryPolicy::new(8, first, cap);
        for attempt in 1..8 {
            let d = policy.delay(attempt, None);
            let exp = (first * (1 << (attempt - 1))).min(cap);
            assert!(
                d <= exp && d >= exp / 2,
                "attempt {attempt}: {d:?} vs {exp:?}"
            );
        }
        let ds: std::collections::BTreeSet<_> = (0..20).map(|_| policy.delay(5, None)).collect();
        assert!(ds.len() > 1, "no jitter");
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert!(policy.allows_another(7) && !policy.allows_another(8));
    }

    #[test]
    fn spread_jitter_stays_around_the_nominal_wait_and_under_the_cap() {
        let first = Duration::from_secs(60);
        let cap = Duration::from_secs(6 * 3600);
        let policy = RetryPolicy::new(30, first, cap).with_jitter(Jitter::Around { percent: 25 });
        for attempt in 1..10 {
            let d = policy.delay(attempt, None);
            let exp = first * (1 << (attempt - 1));
            assert!(
                d >= exp.mul_f64(0.75) && d <= exp.mul_f64(1.25),
                "attempt {attempt}: {d:?} vs {exp:?}"
            );
        }
        for attempt in 10..30 {
            let d = policy.delay(attempt, None);
            assert!(
                d <= cap && d >= cap.mul_f64(0.75),
                "attempt {attempt}: {d:?}"
            );
        }
    }

    #[test]
    fn retry_after_forms() {
        let mut h = http::HeaderMap::new();
        h.insert(http::header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            http::header::RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
    }
}
