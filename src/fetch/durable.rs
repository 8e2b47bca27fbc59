//! A file written on a blocking thread while the download goes on, and flushed to disk as it grows.
//!
//! `jam fetch` renames a file into place only once its bytes are on disk (`sync_all`), so a crash cannot
//! leave a short or empty file under the final name. One `fsync` at the end would start the writeback of
//! the whole file only after its last byte arrived, and wait for all of it. Instead the writer thread,
//! every [`SYNC_EVERY`] bytes, has a second thread `fdatasync` what is written so far while it writes the
//! next bytes, so the disk works during the download and the final `sync_all` finds at most the last
//! stretch dirty. A failed background sync fails the file (after a failed `fsync` the kernel may forget
//! the error, so a later `sync_all` succeeding would prove nothing).
//!
//! The chunks reach the writer as `Bytes` (no copy), through a channel bounded in bytes ([`QUEUED`]), and
//! are written with plain `write_all` (no userspace buffer in between).

use std::{
    fs::File,
    io::{self, Write},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc,
    },
    thread::JoinHandle,
};

use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes written between the starts of two background syncs.
pub(super) const SYNC_EVERY: u64 = 32 << 20;
/// Bytes handed to the writer and not yet written, at most (a larger chunk waits for an empty queue).
pub(super) const QUEUED: u64 = 16 << 20;
const QUEUED_KIB: u32 = (QUEUED / 1024) as u32;

/// A file being written and flushed in the background (see the module documentation).
pub(super) struct DurableFile {
    tx: Option<mpsc::Sender<(Bytes, OwnedSemaphorePermit)>>,
    room: Arc<Semaphore>,
    writer: Option<tokio::task::JoinHandle<io::Result<()>>>,
    /// Set when the file is dropped unfinished: the writer stops without syncing.
    abandoned: Arc<AtomicBool>,
    /// Background syncs started so far (the tests read it).
    #[cfg_attr(not(test), allow(dead_code))]
    syncs: Arc<AtomicU64>,
}

impl DurableFile {
    /// Takes over `file` (open for writing, empty) and starts its writer.
    pub(super) fn new(file: File) -> DurableFile {
        let (tx, rx) = mpsc::channel::<(Bytes, OwnedSemaphorePermit)>();
        let abandoned = Arc::new(AtomicBool::new(false));
        let syncs = Arc::new(AtomicU64::new(0));
        let (stop, count) = (abandoned.clone(), syncs.clone());
        let writer = tokio::task::spawn_blocking(move || write_all(file, &rx, &stop, &count));
        DurableFile {
            tx: Some(tx),
            room: Arc::new(Semaphore::new(QUEUED_KIB as usize)),
            writer: Some(writer),
            abandoned,
            syncs,
        }
    }

    /// Queues a chunk, waiting while [`QUEUED`] bytes are waiting to be written. Fails with the writer's
    /// error once it has failed.
    pub(super) async fn write(&mut self, chunk: Bytes) -> io::Result<()> {
        let kib = u32::try_from(chunk.len().div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, QUEUED_KIB);
        let permit = self
            .room
            .clone()
            .acquire_many_owned(kib)
            .await
            .expect("the queue's semaphore is never closed");
        let sent = self
            .tx
            .as_ref()
            .is_some_and(|tx| tx.send((chunk, permit)).is_ok());
        if sent {
            return Ok(());
        }
        // The writer stopped: it failed, and says why.
        self.tx = None;
        match self.join().await {
            Err(e) => Err(e),
            Ok(()) => Err(io::Error::other("the file's writer stopped early")),
        }
    }

    /// Waits until every byte is written and on disk (`sync_all`).
    pub(super) async fn finish(mut self) -> io::Result<()> {
        self.tx = None;
        self.join().await
    }

    async fn join(&mut self) -> io::Result<()> {
        match self.writer.take() {
            Some(w) => w.await.map_err(io::Error::other)?,
            None => Err(io::Error::other("the file's writer already ended")),
        }
    }
}

impl Drop for DurableFile {
    fn drop(&mut self) {
        if self.writer.is_some() {
            self.abandoned.store(true, Ordering::Relaxed);
        }
    }
}

/// The writer: writes what arrives, starts a background `fdatasync` every [`SYNC_EVERY`] bytes (one at a
/// time), and at the end waits for it and syncs the rest. An abandoned file is left unsynced.
fn write_all(
    mut file: File,
    rx: &mpsc::Receiver<(Bytes, OwnedSemaphorePermit)>,
    abandoned: &AtomicBool,
    syncs: &AtomicU64,
) -> io::Result<()> {
    let mut written = 0u64;
    let mut sync_started_at = 0u64;
    let mut syncing: Option<JoinHandle<io::Result<()>>> = None;
    while let Ok((chunk, permit)) = rx.recv() {
        if abandoned.load(Ordering::Relaxed) {
            return Ok(());
        }
        file.write_all(&chunk)?;
        written += chunk.len() as u64;
        drop(chunk);
        drop(permit);
        if written - sync_started_at >= SYNC_EVERY
            && syncing.as_ref().is_none_or(|s| s.is_finished())
        {
            if let Some(done) = syncing.take() {
                joined(done)?;
            }
            let f = file.try_clone()?;
            syncing = Some(std::thread::spawn(move || f.sync_data()));
            syncs.fetch_add(1, Ordering::Relaxed);
            sync_started_at = written;
        }
    }
    if let Some(done) = syncing.take() {
        joined(done)?;
    }
    if abandoned.load(Ordering::Relaxed) {
        return Ok(());
    }
    file.sync_all()
}

/// A background sync's result (a panic there is an error here).
fn joined(sync: JoinHandle<io::Result<()>>) -> io::Result<()> {
    sync.join()
        .unwrap_or_else(|_| Err(io::Error::other("the background sync panicked")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(i: usize, len: usize) -> Bytes {
        Bytes::from(vec![(i % 251) as u8; len])
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_every_byte_in_order_and_syncs_while_it_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut f = DurableFile::new(File::create(&path).unwrap());
        let syncs = f.syncs.clone();
        let (n, len) = (100, 1 << 20);
        for i in 0..n {
            f.write(chunk(i, len)).await.unwrap();
        }
        f.finish().await.unwrap();
        let got = std::fs::read(&path).unwrap();
        assert_eq!(got.len(), n * len);
        for i in 0..n {
            assert!(
                got[i * len..(i + 1) * len]
                    .iter()
                    .all(|b| *b == (i % 251) as u8)
            );
        }
        // 100 MiB: a background sync after every 32 MiB at most one at a time, so at least one ran
        // before the end, and at most three.
        let started = syncs.load(Ordering::Relaxed);
        assert!((1..=3).contains(&started), "{started} background syncs");
    }

    #[tokio::test]
    async fn a_failing_writer_fails_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"").unwrap();
        // Open for reading only: every write fails.
        let mut f = DurableFile::new(File::open(&path).unwrap());
        let mut r = Ok(());
        for i in 0..64 {
            r = f.write(chunk(i, 1 << 20)).await;
            if r.is_err() {
                break;
            }
        }
        let r = match r {
            Err(e) => Err(e),
            Ok(()) => f.finish().await,
        };
        assert!(
            r.is_err(),
            "a write or the finish reports the failed writes"
        );
    }
}
