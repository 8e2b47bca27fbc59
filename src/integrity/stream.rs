//! [`VerifiedStream`]: a byte stream that checks itself. It passes the chunks of the stream it wraps on
//! unchanged, counts and hashes them, and at the end checks the length, the SHA-256 and (when asked) the
//! MD5. A failed check is yielded as an error *in place of the end of the stream*: a consumer that
//! completes, commits or renames only once the stream has ended (the store's write, a file writer) can
//! therefore never do so with bad bytes. Too many bytes fail at once, without passing the excess on.

use std::{
    pin::Pin,
    task::{Context, Poll, ready},
};

use bytes::Bytes;
use futures::Stream;

use super::{Check, Digests, IntegrityError, Origin, hash::Hasher};

/// Whether and how the MD5 is checked.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Md5Check {
    /// Not computed.
    #[default]
    Off,
    /// Computed (it ends up in [`Digests::md5`]) and checked by the caller, e.g. with the build-level
    /// fingerprint rule ([`super::fingerprint::judge`]), which needs every artifact's MD5.
    Compute,
    /// Computed and checked here: it must be one of these (lower-case hex).
    OneOf(Vec<String>),
}

/// An error of a [`VerifiedStream`]: the wrapped stream's own, or a failed check.
#[derive(Debug, thiserror::Error)]
pub enum StreamError<E> {
    /// The wrapped stream failed (a broken connection, a failed read).
    #[error(transparent)]
    Source(E),
    /// The bytes failed a check.
    #[error(transparent)]
    Integrity(IntegrityError),
}

/// Reports the bytes of each chunk as it passes (progress bars, transfer counters).
pub type OnBytes<'a> = Box<dyn FnMut(u64) + Send + 'a>;

/// A byte stream checked against what is known about it (see the module documentation).
pub struct VerifiedStream<'a, S> {
    body: S,
    artifact: String,
    origin: Origin,
    size: Option<u64>,
    sha256: Option<String>,
    md5: Md5Check,
    on_bytes: Option<OnBytes<'a>>,
    state: State,
}

enum State {
    Reading(Hasher),
    /// The wrapped stream has ended; waiting for the digests (hashing threads finishing).
    Finishing(Hasher),
    /// Ended, every check passed.
    Verified(Digests),
    /// Yielded an error; yields nothing more.
    Failed,
}

impl<'a, S> VerifiedStream<'a, S> {
    /// Wraps `body`, the bytes of `artifact` from `origin` (both for messages); nothing is checked but
    /// what the `expect_*` methods add, and the SHA-256 is computed always.
    pub fn new(artifact: impl Into<String>, origin: Origin, body: S) -> VerifiedStream<'a, S> {
        VerifiedStream {
            body,
            artifact: artifact.into(),
            origin,
            size: None,
            sha256: None,
            md5: Md5Check::Off,
            on_bytes: None,
            state: State::Reading(Hasher::new(false)),
        }
    }

    /// Expects exactly `size` bytes, when known: the announced `Content-Length` or the manifest's size.
    pub fn expect_size(mut self, size: Option<u64>) -> Self {
        self.size = size;
        self
    }

    /// Expects this SHA-256 (hex, any case), when known: the manifest's.
    pub fn expect_sha256(mut self, sha256: Option<String>) -> Self {
        self.sha256 = sha256;
        self
    }

    /// Computes (and, with [`Md5Check::OneOf`], checks) the MD5.
    pub fn md5(mut self, md5: Md5Check) -> Self {
        self.state = State::Reading(Hasher::new(md5 != Md5Check::Off));
        self.md5 = md5;
        self
    }

    /// Calls `f` with the length of each chunk as it passes.
    pub fn on_bytes(mut self, f: impl FnMut(u64) + Send + 'a) -> Self {
        self.on_bytes = Some(Box::new(f));
        self
    }

    /// The digests, once the stream has ended and every check passed; `None` before that, or after a
    /// failure.
    pub fn digests(&self) -> Option<&Digests> {
        match &self.state {
            State::Verified(d) => Some(d),
            _ => None,
        }
    }

    /// [`Self::digests`], by value.
    pub fn into_digests(self) -> Option<Digests> {
        match self.state {
            State::Verified(d) => Some(d),
            _ => None,
        }
    }

    fn failure(&mut self, check: Check) -> IntegrityError {
        self.state = State::Failed;
        IntegrityError::artifact(self.artifact.clone(), self.origin.clone(), check)
    }

    /// The checks at the end of the stream, in order: length, SHA-256, MD5.
    fn verify(&mut self, got: Digests) -> Result<(), IntegrityError> {
        if let Some(expected) = self.size
            && expected != got.size
        {
            return Err(self.failure(Check::Length {
                expected,
                actual: got.size,
            }));
        }
        if let Some(expected) = &self.sha256
            && !expected.eq_ignore_ascii_case(&got.sha256)
        {
            let expected = expected.to_ascii_lowercase();
            return Err(self.failure(Check::Sha256 {
                expected,
                actual: got.sha256,
            }));
        }
        if let (Md5Check::OneOf(expected), Some(actual)) = (&self.md5, &got.md5)
            && !expected.iter().any(|m| m.eq_ignore_ascii_case(actual))
        {
            let check = Check::Md5 {
                expected: expected.clone(),
                actual: actual.clone(),
            };
            return Err(self.failure(check));
        }
        self.state = State::Verified(got);
        Ok(())
    }
}

impl<S, E> Stream for VerifiedStream<'_, S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    type Item = Result<Bytes, StreamError<E>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let hasher = match &mut this.state {
            State::Reading(hasher) => hasher,
            State::Finishing(hasher) => {
                let got = ready!(hasher.poll_finish(cx));
                this.state = State::Failed;
                return match this.verify(got) {
                    Ok(()) => Poll::Ready(None),
                    Err(e) => Poll::Ready(Some(Err(StreamError::Integrity(e)))),
                };
            }
            State::Verified(_) | State::Failed => return Poll::Ready(None),
        };
        // Wait for room at the hashing threads before taking more bytes from the source.
        ready!(hasher.poll_ready(cx));
        match ready!(Pin::new(&mut this.body).poll_next(cx)) {
            Some(Ok(chunk)) => {
                hasher.update(&chunk);
                let size = hasher.size();
                if let Some(f) = &mut this.on_bytes {
                    f(chunk.len() as u64);
                }
                match this.size {
                    Some(expected) if size > expected => {
                        let check = Check::Length {
                            expected,
                            actual: size,
                        };
                        Poll::Ready(Some(Err(StreamError::Integrity(this.failure(check)))))
                    }
                    _ => Poll::Ready(Some(Ok(chunk))),
                }
            }
            Some(Err(e)) => {
                this.state = State::Failed;
                Poll::Ready(Some(Err(StreamError::Source(e))))
            }
            None => {
                let State::Reading(hasher) = std::mem::replace(&mut this.state, State::Failed)
                else {
                    unreachable!("matched above")
                };
                this.state = State::Finishing(hasher);
                // Polls the digests now (in place: ready at once; on threads: registers the waker).
                Pin::new(this).poll_next(cx)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::{StreamExt, stream};

    use super::*;

    type Body = stream::Iter<std::vec::IntoIter<Result<Bytes, std::io::Error>>>;

    fn body(parts: &[&'static [u8]]) -> Body {
        stream::iter(
            parts
                .iter()
                .map(|p| Ok(Bytes::from_static(p)))
                .collect::<Vec<_>>(),
        )
    }

    fn origin() -> Origin {
        Origin::Store { key: "k".into() }
    }

    const HELLO_SHA: &str = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
    const HELLO_MD5: &str = "5d41402abc4b2a76b9719d911017c592";

    /// Drains the stream: the chunks it let through, and how it ended.
    async fn drain<S: Stream<Item = Result<Bytes, StreamError<std::io::Error>>> + Unpin>(
        s: &mut S,
    ) -> (Vec<u8>, Option<StreamError<std::io::Error>>) {
        let mut out = Vec::new();
        while let Some(item) = s.next().await {
            match item {
                Ok(b) => out.extend_from_slice(&b),
                Err(e) => {
                    assert!(s.next().await.is_none(), "nothing after an error");
                    return (out, Some(e));
                }
            }
        }
        (out, None)
    }

    fn integrity(e: Option<StreamError<std::io::Error>>) -> Check {
        match e {
            Some(StreamError::Integrity(i)) => i.check().cloned().expect("an artifact check"),
            other => panic!("expected an integrity error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn passes_good_bytes_and_reports_digests_and_progress() {
        let mut seen = 0;
        let mut s = VerifiedStream::new("a", origin(), body(&[b"he", b"llo"]))
            .expect_size(Some(5))
            .expect_sha256(Some(HELLO_SHA.to_ascii_uppercase()))
            .md5(Md5Check::OneOf(vec!["00".into(), HELLO_MD5.into()]))
            .on_bytes(|n| seen += n);
        let (bytes, end) = drain(&mut s).await;
        assert!(end.is_none());
        assert_eq!(bytes, b"hello");
        let d = s.into_digests().expect("verified");
        assert_eq!(
            d,
            Digests {
                size: 5,
                sha256: HELLO_SHA.into(),
                md5: Some(HELLO_MD5.into())
            }
        );
        assert_eq!(seen, 5);
    }

    #[tokio::test]
    async fn a_short_body_fails_instead_of_ending() {
        let mut s = VerifiedStream::new("a", origin(), body(&[b"hel"])).expect_size(Some(5));
        let (bytes, end) = drain(&mut s).await;
        assert_eq!(bytes, b"hel");
        assert_eq!(
            integrity(end),
            Check::Length {
                expected: 5,
                actual: 3
            }
        );
        assert!(s.digests().is_none());
    }

    #[tokio::test]
    async fn a_long_body_fails_at_the_first_excess_byte() {
        let mut s = VerifiedStream::new("a", origin(), body(&[b"hel", b"lo!", b"more"]))
            .expect_size(Some(5));
        let (bytes, end) = drain(&mut s).await;
        assert_eq!(bytes, b"hel", "the chunk with the excess is not passed on");
        assert_eq!(
            integrity(end),
            Check::Length {
                expected: 5,
                actual: 6
            }
        );
    }

    #[tokio::test]
    async fn digest_mismatches_fail_instead_of_ending() {
        let mut s =
            VerifiedStream::new("a", origin(), body(&[b"hello"])).expect_sha256(Some("ab".into()));
        assert_eq!(
            integrity(drain(&mut s).await.1),
            Check::Sha256 {
                expected: "ab".into(),
                actual: HELLO_SHA.into()
            }
        );
        let mut s = VerifiedStream::new("a", origin(), body(&[b"hello"]))
            .md5(Md5Check::OneOf(vec!["ab".into()]));
        assert_eq!(
            integrity(drain(&mut s).await.1),
            Check::Md5 {
                expected: vec!["ab".into()],
                actual: HELLO_MD5.into()
            }
        );
        // Computed but not checked here: the caller judges.
        let mut s = VerifiedStream::new("a", origin(), body(&[b"hello"])).md5(Md5Check::Compute);
        assert!(drain(&mut s).await.1.is_none());
        assert_eq!(s.digests().unwrap().md5.as_deref(), Some(HELLO_MD5));
        // Off: no MD5 at all.
        let mut s = VerifiedStream::new("a", origin(), body(&[b"hello"]));
        assert!(drain(&mut s).await.1.is_none());
        assert_eq!(s.digests().unwrap().md5, None);
    }

    /// `len` generated bytes (xorshift), cut into chunks of the given sizes in turn.
    fn generated(len: usize, chunks: &[usize]) -> (Vec<u8>, Body) {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let data: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let mut parts = Vec::new();
        let (mut at, mut i) = (0, 0);
        while at < len {
            let n = chunks[i % chunks.len()].min(len - at);
            parts.push(Ok(Bytes::copy_from_slice(&data[at..at + n])));
            at += n;
            i += 1;
        }
        (data, stream::iter(parts))
    }

    /// The names of this process's threads now.
    fn thread_names() -> Vec<String> {
        std::fs::read_dir("/proc/self/task")
            .map(|d| {
                d.flatten()
                    .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
                    .map(|n| n.trim().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn long_streams_hash_on_threads_with_the_same_digests() {
        use md5::Md5;
        use sha2::{Digest, Sha256};
        // MD5 on a thread of its own; SHA-256 too, unless it stays in place beside MD5 (SHA instructions).
        let lanes: &[&str] = if super::super::hash::sha_instructions() {
            &["jam-md5"]
        } else {
            &["jam-sha256", "jam-md5"]
        };
        // Odd chunk sizes around the offload point and the batch size, one larger than the backlog.
        for chunks in [
            &[1000usize, 65536, 7][..],
            &[3 << 20],
            &[super::super::hash::BATCH + 1, 10],
        ] {
            let len = 9 << 20;
            let (data, body) = generated(len, chunks);
            let mut s = VerifiedStream::new("a", origin(), body)
                .expect_size(Some(len as u64))
                .md5(Md5Check::Compute);
            let mut out = Vec::new();
            let mut threads = Vec::new();
            while let Some(b) = s.next().await {
                out.extend_from_slice(&b.expect("good bytes"));
                if threads.is_empty() && out.len() > (2 << 20) {
                    // A new thread names itself once it runs: give it a moment.
                    for _ in 0..200 {
                        threads = thread_names();
                        if lanes.iter().all(|t| threads.iter().any(|n| n == t)) {
                            break;
                        }
                        std::thread::sleep(std::time::Duration::from_millis(10));
                    }
                }
            }
            assert!(out == data, "the bytes pass unchanged ({chunks:?})");
            for t in lanes {
                assert!(
                    threads.iter().any(|n| n == t),
                    "a {t} thread hashes a long stream: {threads:?}"
                );
            }
            let d = s.into_digests().expect("verified");
            assert_eq!(d.size, len as u64);
            assert_eq!(d.sha256, hex::encode(Sha256::digest(&data)), "{chunks:?}");
            assert_eq!(d.md5, Some(hex::encode(Md5::digest(&data))), "{chunks:?}");
        }
    }

    #[tokio::test]
    async fn a_long_stream_that_fails_its_digest_check_fails_instead_of_ending() {
        let len = 5 << 20;
        let (_, body) = generated(len, &[100_000]);
        let mut s = VerifiedStream::new("a", origin(), body)
            .expect_sha256(Some("00".into()))
            .md5(Md5Check::OneOf(vec!["ab".into()]));
        let (bytes, end) = drain(&mut s).await;
        assert_eq!(bytes.len(), len, "every byte passed before the end");
        assert!(
            matches!(integrity(end), Check::Sha256 { expected, .. } if expected == "00"),
            "the SHA-256 check fails first"
        );
        assert!(s.digests().is_none());
    }

    #[tokio::test]
    async fn source_errors_pass_through_and_end_the_stream() {
        let items: Vec<Result<Bytes, std::io::Error>> = vec![
            Ok(Bytes::from_static(b"he")),
            Err(std::io::Error::other("reset")),
            Ok(Bytes::from_static(b"llo")),
        ];
        let mut s = VerifiedStream::new("a", origin(), stream::iter(items));
        let (bytes, end) = drain(&mut s).await;
        assert_eq!(bytes, b"he");
        assert!(matches!(end, Some(StreamError::Source(_))), "{end:?}");
        assert!(s.digests().is_none());
    }
}
