//! One writing process per local directory store: `jam mirror` holds an exclusive `flock` on
//! `<dir>/.jam/mirror.lock` for its lifetime, so a second `jam mirror` on the same directory fails at
//! start with an error naming the holder's pid, instead of both writing. The kernel drops the lock when
//! the process ends, however it ends (SIGKILL included), so a stale lock file never blocks a restart.
//!
//! A local directory is shared by processes on one host only; several workers need an S3 store, where
//! they coordinate through conditional writes ([`crate::fleet`]). Other stores need no lock:
//! [`Store::lock_for_writing`] returns `None` for them.

use std::{
    fs::{File, OpenOptions},
    io::{Read, Seek, Write},
    path::PathBuf,
};

use rustix::fs::{FlockOperation, flock};

use super::{Store, StoreError};

/// The lock a writing process holds on a local directory store; released when dropped (or when the
/// process ends).
#[derive(Debug)]
pub struct DirLock {
    _file: File,
    path: PathBuf,
}

impl DirLock {
    /// The lock file.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

impl Store {
    /// On a local directory store: takes the directory's writer lock, or fails at once if another process
    /// holds it. `None` on other stores.
    pub fn lock_for_writing(&self) -> Result<Option<DirLock>, StoreError> {
        let Some(dir) = &self.local_dir else {
            return Ok(None);
        };
        let path = dir.join(".jam").join("mirror.lock");
        let bad = |message: String| StoreError::Config {
            url: self.describe.clone(),
            message,
        };
        std::fs::create_dir_all(dir.join(".jam")).map_err(|e| {
            bad(format!(
                "cannot create '{}': {e}",
                dir.join(".jam").display()
            ))
        })?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| {
                bad(format!(
                    "cannot open the lock file '{}': {e}",
                    path.display()
                ))
            })?;
        if let Err(e) = flock(&file, FlockOperation::NonBlockingLockExclusive) {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            return Err(bad(if e == rustix::io::Errno::WOULDBLOCK {
                format!(
                    "another jam mirror{} is writing this directory (it holds the lock '{}'); a local directory \
                     takes one worker: stop the other one, or run several workers on an S3 store",
                    if holder.is_empty() {
                        String::new()
                    } else {
                        format!(" (pid {holder})")
                    },
                    path.display()
                )
            } else {
                format!("cannot lock '{}': {e}", path.display())
            }));
        }
        // For the message a second process prints: who holds the lock.
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = write!(file, "{}", std::process::id());
        let _ = file.flush();
        Ok(Some(DirLock { _file: file, path }))
    }
}

#[cfg(test)]
mod tests {
    use crate::{config::StoreConfig, store::Store};

    #[test]
    fn a_second_writer_of_a_directory_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StoreConfig::new(dir.path().to_str().unwrap())).unwrap();
        let held = store
            .lock_for_writing()
            .unwrap()
            .expect("a local store locks");
        // flock locks belong to the open file description: a second open in this process conflicts
        // just as another process would.
        let err = store.lock_for_writing().unwrap_err().to_string();
        assert!(err.contains("another jam mirror"), "{err}");
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(held);
        store.lock_for_writing().unwrap().expect("free again");
        let mem = Store::open(&StoreConfig::new("memory://")).unwrap();
        assert!(mem.lock_for_writing().unwrap().is_none());
    }
}
