//! The hashing behind [`super::VerifiedStream`]: SHA-256 always, MD5 when asked. Nothing outside the
//! integrity module hashes artifact bytes, so how the digests are computed can change here without
//! touching a caller.
//!
//! A short stream is hashed in place as its chunks pass. Once a stream has passed [`OFFLOAD_AFTER`] bytes,
//! each digest moves to a thread of its own (with its state so far), fed with clones of the chunks
//! (`Bytes`: reference counts, no copy) in batches of [`BATCH`] bytes. The digests then run on separate
//! cores, beside the stream's consumer (the upload, the file write): the slowest of them sets the pace, not
//! the sum of all. One exception: beside MD5, SHA-256 stays in place when the CPU has SHA instructions.
//! It then costs less than half of MD5 (about 0.65 against 1.4 s per GiB on a 2-core Xeon), so MD5 still
//! sets the pace, and in place it hashes bytes that are still in this core's cache and leaves one thread
//! fewer to share the cores: on two cores that took big-local from 2.0–2.3 to 1.8–1.9 s per GiB.
//!
//! Each thread may fall behind the stream by at most [`BACKLOG`] bytes: a batch is sent only with permits
//! for its bytes from the thread's semaphore, which the thread returns once it has hashed the batch, and
//! the stream waits (returns `Pending`, woken when permits return) when there are none. So what a hashing
//! thread keeps alive after the consumer has let go of it is bounded by [`MAX_HELD`].
//!
//! A stream dropped before its end (an error, a cancellation) drops the senders: each thread hashes what
//! it was sent, finds its channel closed and exits.

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, mpsc},
    task::{Context, Poll, ready},
};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use tokio_util::sync::PollSemaphore;

use super::{Digests, md5::Md5};

/// A stream is hashed in place until it has passed this many bytes (small artifacts never start a thread).
pub(super) const OFFLOAD_AFTER: u64 = 1 << 20;
/// Bytes sent to a hashing thread at once (fewer, larger messages: about 8,000 per GiB).
pub(super) const BATCH: usize = 128 << 10;
/// How far (in bytes) a hashing thread may fall behind the stream: about 8 ms of MD5, enough that the MD5
/// thread (the bound of a big artifact into a fast sink) does not run dry while the thread feeding it waits
/// for a core on a busy 2-core machine (1 MiB did, README "What bounds jam"). The store's write path
/// reserves it for every transfer (`store::write::SOURCE_HELD`), so it is paid for within the budget.
/// 16 MiB was faster still there (a GiB into tmpfs in 3.2 s instead of 3.8 from cold memory), but one
/// large transfer would then reserve more than the default `buffer_budget` (32 MiB) holds.
pub(super) const BACKLOG: u64 = 4 << 20;
const BACKLOG_KIB: u32 = (BACKLOG / 1024) as u32;

/// The most bytes a verified stream keeps alive after passing them on: what its hashing threads have not
/// hashed yet ([`BACKLOG`]) and the batch being gathered ([`BATCH`]); a single chunk larger than that is
/// held until it is hashed. Memory accounting above the integrity layer adds this to what a consumer holds.
pub const MAX_HELD: u64 = BACKLOG + BATCH as u64;

/// One digest's state.
enum Algo {
    Sha256(Sha256),
    Md5(Md5),
}

impl Algo {
    fn update(&mut self, b: &[u8]) {
        match self {
            Algo::Sha256(h) => h.update(b),
            Algo::Md5(h) => h.update(b),
        }
    }

    fn hex(self) -> String {
        match self {
            Algo::Sha256(h) => hex::encode(h.finalize()),
            Algo::Md5(h) => hex::encode(h.finalize()),
        }
    }
}

type Batch = (Vec<Bytes>, OwnedSemaphorePermit);

/// A digest computed on its own thread.
struct Lane {
    /// `None` once the stream has ended (the thread then finishes).
    tx: Option<mpsc::Sender<Batch>>,
    room: PollSemaphore,
    /// Permits taken for the batch being sent while another lane still waits for its own.
    reserved: Option<OwnedSemaphorePermit>,
    done: oneshot::Receiver<String>,
    hex: Option<String>,
    #[cfg_attr(not(test), allow(dead_code))]
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Lane {
    /// Starts a thread that waits for a digest's state (sent once every lane has started), then hashes
    /// the batches it is sent.
    fn spawn(name: &str) -> std::io::Result<(Lane, mpsc::Sender<Algo>)> {
        let (init_tx, init_rx) = mpsc::channel::<Algo>();
        let (tx, rx) = mpsc::channel::<Batch>();
        let (done_tx, done) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let Ok(mut h) = init_rx.recv() else {
                    return;
                };
                while let Ok((batch, permit)) = rx.recv() {
                    for b in &batch {
                        h.update(b);
                    }
                    // The bytes go before the permits: the room the stream gets back is free memory.
                    drop(batch);
                    drop(permit);
                }
                let _ = done_tx.send(h.hex());
            })?;
        let lane = Lane {
            tx: Some(tx),
            room: PollSemaphore::new(Arc::new(Semaphore::new(BACKLOG_KIB as usize))),
            reserved: None,
            done,
            hex: None,
            thread: Some(thread),
        };
        Ok((lane, init_tx))
    }
}

enum Mode {
    /// Hashing in place.
    Inline {
        sha: Sha256,
        md5: Option<Md5>,
        /// Stays in place: a thread could not be started.
        pinned: bool,
    },
    /// The digests on threads of their own (SHA-256 may stay in place beside MD5); `batch` gathers clones
    /// of the chunks for the next send.
    Offloaded {
        /// SHA-256, when it stays in place beside the MD5 lane.
        sha: Option<Sha256>,
        lanes: Vec<Lane>,
        batch: Vec<Bytes>,
        batch_len: usize,
    },
    /// The digests were handed out.
    Finished,
}

/// SHA-256 and (optionally) MD5 of a byte stream, with its length (see the module documentation).
pub(super) struct Hasher {
    mode: Mode,
    size: u64,
    /// SHA-256 stays in place when the digests move (set only with MD5).
    sha_in_place: bool,
}

impl Hasher {
    /// A hasher; MD5 costs about twice SHA-256 (aws-lc against SHA-NI), so it runs only when `md5` is set.
    pub(super) fn new(md5: bool) -> Hasher {
        Hasher::placed(md5, sha_instructions())
    }

    /// A hasher that keeps SHA-256 in place beside an MD5 lane when `sha_in_place` (and `md5`) is set.
    fn placed(md5: bool, sha_in_place: bool) -> Hasher {
        Hasher {
            mode: Mode::Inline {
                sha: Sha256::new(),
                md5: md5.then(Md5::new),
                pinned: false,
            },
            size: 0,
            sha_in_place: md5 && sha_in_place,
        }
    }

    /// Bytes seen so far.
    pub(super) fn size(&self) -> u64 {
        self.size
    }

    /// Ready for the next chunk: a full batch has been sent to the hashing threads (waiting, when one of
    /// them is [`BACKLOG`] bytes behind, until it has caught up enough).
    pub(super) fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match &self.mode {
            Mode::Offloaded { batch_len, .. } if *batch_len >= BATCH => self.poll_send(cx),
            _ => Poll::Ready(()),
        }
    }

    /// Feeds a chunk (call [`Self::poll_ready`] first, so batches do not grow past [`BATCH`] plus a chunk).
    pub(super) fn update(&mut self, chunk: &Bytes) {
        self.size += chunk.len() as u64;
        match &mut self.mode {
            Mode::Inline { sha, md5, pinned } => {
                sha.update(chunk);
                if let Some(m) = md5 {
                    m.update(chunk);
                }
                if !*pinned && self.size >= OFFLOAD_AFTER {
                    self.offload();
                }
            }
            Mode::Offloaded {
                sha,
                batch,
                batch_len,
                ..
            } => {
                if let Some(sha) = sha {
                    sha.update(chunk);
                }
                *batch_len += chunk.len();
                batch.push(chunk.clone());
            }
            Mode::Finished => unreachable!("no bytes after the digests"),
        }
    }

    /// Moves each digest onto a thread of its own (SHA-256 beside MD5 may stay, see the module
    /// documentation); stays in place if a thread cannot be started (a process limit), for the rest of
    /// the stream.
    fn offload(&mut self) {
        let Mode::Inline { sha, md5, .. } = std::mem::replace(&mut self.mode, Mode::Finished)
        else {
            unreachable!("offloaded from in place only")
        };
        let sha_lane = !self.sha_in_place;
        let names = [
            sha_lane.then_some("jam-sha256"),
            md5.is_some().then_some("jam-md5"),
        ];
        let started: std::io::Result<Vec<_>> =
            names.iter().flatten().map(|n| Lane::spawn(n)).collect();
        self.mode = match started {
            Ok(started) => {
                let (in_place, on_lane) = if sha_lane {
                    (None, Some(sha))
                } else {
                    (Some(sha), None)
                };
                let algos = on_lane
                    .map(Algo::Sha256)
                    .into_iter()
                    .chain(md5.map(Algo::Md5));
                let mut lanes = Vec::with_capacity(started.len());
                for ((lane, init), algo) in started.into_iter().zip(algos) {
                    // The thread waits for exactly this message, so the send cannot fail.
                    let _ = init.send(algo);
                    lanes.push(lane);
                }
                Mode::Offloaded {
                    sha: in_place,
                    lanes,
                    batch: Vec::new(),
                    batch_len: 0,
                }
            }
            // The threads that did start see their state's sender dropped and exit.
            Err(_) => Mode::Inline {
                sha,
                md5,
                pinned: true,
            },
        };
    }

    /// Sends the gathered batch to every hashing thread once each has room for it.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Mode::Offloaded {
            lanes,
            batch,
            batch_len,
            ..
        } = &mut self.mode
        else {
            return Poll::Ready(());
        };
        if *batch_len == 0 {
            return Poll::Ready(());
        }
        let kib = u32::try_from(batch_len.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, BACKLOG_KIB);
        let mut waiting = false;
        for lane in lanes.iter_mut().filter(|l| l.reserved.is_none()) {
            match lane.room.poll_acquire_many(cx, kib) {
                Poll::Ready(p) => lane.reserved = p,
                Poll::Pending => waiting = true,
            }
        }
        if waiting {
            return Poll::Pending;
        }
        let batch = std::mem::take(batch);
        *batch_len = 0;
        for lane in lanes.iter_mut() {
            let permit = lane.reserved.take().expect("reserved above");
            if let Some(tx) = &lane.tx {
                // A send fails only if the thread is gone, which `poll_finish` reports.
                let _ = tx.send((batch.clone(), permit));
            }
        }
        Poll::Ready(())
    }

    /// The digests: at once when hashing in place, else once the last batch is sent and every thread has
    /// finished.
    pub(super) fn poll_finish(&mut self, cx: &mut Context<'_>) -> Poll<Digests> {
        if matches!(self.mode, Mode::Offloaded { .. }) {
            ready!(self.poll_send(cx));
            let Mode::Offloaded { lanes, .. } = &mut self.mode else {
                unreachable!("still offloaded")
            };
            let mut waiting = false;
            for lane in lanes.iter_mut().filter(|l| l.hex.is_none()) {
                lane.tx = None;
                match Pin::new(&mut lane.done).poll(cx) {
                    Poll::Ready(hex) => {
                        lane.hex = Some(hex.expect("a hashing thread ends with its digest"));
                    }
                    Poll::Pending => waiting = true,
                }
            }
            if waiting {
                return Poll::Pending;
            }
        }
        let size = self.size;
        Poll::Ready(match std::mem::replace(&mut self.mode, Mode::Finished) {
            Mode::Inline { sha, md5, .. } => Digests {
                size,
                sha256: hex::encode(sha.finalize()),
                md5: md5.map(|m| hex::encode(m.finalize())),
            },
            Mode::Offloaded { sha, lanes, .. } => {
                let mut hexes = lanes.into_iter().map(|l| l.hex.expect("finished above"));
                let sha256 = match sha {
                    Some(sha) => hex::encode(sha.finalize()),
                    None => hexes.next().expect("the SHA-256 lane"),
                };
                Digests {
                    size,
                    sha256,
                    md5: hexes.next(),
                }
            }
            Mode::Finished => unreachable!("the digests are handed out once"),
        })
    }
}

/// The CPU has instructions for SHA-256 (which `sha2` detects and uses at run time).
pub(super) fn sha_instructions() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("sha")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("sha2")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use std::{sync::mpsc, time::Duration};

    use futures::future::poll_fn;

    use super::*;

    fn feed(h: &mut Hasher, total: usize, chunk: usize) -> impl Future<Output = ()> + '_ {
        let mut sent = 0;
        poll_fn(move |cx| {
            while sent < total {
                ready!(h.poll_ready(cx));
                let n = chunk.min(total - sent);
                h.update(&Bytes::from(vec![7u8; n]));
                sent += n;
            }
            Poll::Ready(())
        })
    }

    fn threads(h: &mut Hasher) -> Vec<std::thread::JoinHandle<()>> {
        match &mut h.mode {
            Mode::Offloaded { lanes, .. } => {
                lanes.iter_mut().filter_map(|l| l.thread.take()).collect()
            }
            _ => Vec::new(),
        }
    }

    /// Joins `t` within a few seconds, or fails.
    fn ends_soon(t: std::thread::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(t.join().is_ok());
        });
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(20)),
            Ok(true),
            "the hashing thread ends cleanly"
        );
    }

    #[tokio::test]
    async fn short_streams_stay_in_place_and_long_ones_move_to_one_thread_per_digest() {
        let mut h = Hasher::placed(true, false);
        feed(&mut h, OFFLOAD_AFTER as usize - 1, 4096).await;
        assert!(
            matches!(h.mode, Mode::Inline { .. }),
            "no thread below the threshold"
        );
        feed(&mut h, 1, 1).await;
        let Mode::Offloaded { lanes, .. } = &h.mode else {
            panic!("offloaded at the threshold")
        };
        assert_eq!(lanes.len(), 2, "SHA-256 and MD5");
        let mut sha_only = Hasher::new(false);
        feed(&mut sha_only, 3 << 20, 65536).await;
        let Mode::Offloaded { lanes, .. } = &sha_only.mode else {
            panic!("offloaded")
        };
        assert_eq!(lanes.len(), 1, "SHA-256 alone");
        let d = poll_fn(|cx| sha_only.poll_finish(cx)).await;
        assert_eq!(d.size, 3 << 20);
        assert_eq!(d.md5, None);
        // With SHA instructions, SHA-256 stays in place beside MD5; without MD5 it always moves.
        let mut beside = Hasher::placed(true, true);
        feed(&mut beside, 3 << 20, 65536).await;
        let Mode::Offloaded { sha, lanes, .. } = &beside.mode else {
            panic!("offloaded")
        };
        assert!(sha.is_some(), "SHA-256 in place");
        assert_eq!(lanes.len(), 1, "MD5 alone on a thread");
        assert!(!Hasher::placed(false, true).sha_in_place);
        assert_eq!(Hasher::new(true).sha_in_place, sha_instructions());
    }

    #[tokio::test]
    async fn a_hasher_dropped_before_the_end_stops_its_threads() {
        let mut h = Hasher::placed(true, false);
        feed(&mut h, 8 << 20, 1 << 20).await;
        let handles = threads(&mut h);
        assert_eq!(handles.len(), 2);
        drop(h);
        for t in handles {
            ends_soon(t);
        }
    }

    #[tokio::test]
    async fn a_finished_hasher_joins_its_threads_results() {
        let data = vec![7u8; 5 << 20];
        for sha_in_place in [false, true] {
            let mut h = Hasher::placed(true, sha_in_place);
            feed(&mut h, 5 << 20, 300_000).await;
            let handles = threads(&mut h);
            assert_eq!(handles.len(), 2 - usize::from(sha_in_place));
            let d = poll_fn(|cx| h.poll_finish(cx)).await;
            assert_eq!(
                d.sha256,
                hex::encode(Sha256::digest(&data)),
                "{sha_in_place}"
            );
            assert_eq!(
                d.md5,
                Some(hex::encode(<md5::Md5 as md5::Digest>::digest(&data))),
                "{sha_in_place}"
            );
            for t in handles {
                ends_soon(t);
            }
        }
    }

    #[tokio::test]
    async fn the_threads_fall_behind_by_the_backlog_at_most() {
        let mut h = Hasher::new(true);
        feed(&mut h, 2 << 20, 65536).await;
        // Take all of both threads' room, as a full backlog would (waiting until what they were sent
        // is hashed).
        let Mode::Offloaded { lanes, .. } = &h.mode else {
            panic!("offloaded")
        };
        let sems: Vec<_> = lanes.iter().map(|l| l.room.clone_inner()).collect();
        let mut blocked = Vec::new();
        for s in &sems {
            blocked.push(s.clone().acquire_many_owned(BACKLOG_KIB).await.unwrap());
        }
        // With no room, a full batch is not sent and the stream is not ready for more.
        h.update(&Bytes::from(vec![7u8; BATCH]));
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(h.poll_ready(&mut cx).is_pending(), "waits for room");
        drop(blocked);
        poll_fn(|cx| h.poll_ready(cx)).await;
        let d = poll_fn(|cx| h.poll_finish(cx)).await;
        assert_eq!(d.size, (2 << 20) + BATCH as u64);
    }
}
