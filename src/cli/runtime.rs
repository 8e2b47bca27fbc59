//! The runtime of the read-side commands: their work runs until done, or until the first Ctrl-C or SIGTERM
//! drops it (which removes temporary files) and the command exits with [`INTERRUPTED`].

use std::future::Future;

/// Exit code after an interrupting signal (128 + SIGINT).
pub const INTERRUPTED: u8 = 130;

/// Runs `work` on a multi-threaded runtime; the first Ctrl-C or SIGTERM drops it (which removes temporary
/// files) and returns [`INTERRUPTED`].
pub fn run_interruptible<F>(work: F) -> crate::Result<u8>
where
    F: Future<Output = crate::Result<u8>>,
{
    let rt = super::runtime()?;
    rt.block_on(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let term_recv = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            r = work => r,
            _ = tokio::signal::ctrl_c() => {
                eprintln!("interrupted");
                Ok(INTERRUPTED)
            }
            _ = term_recv => {
                eprintln!("terminated");
                Ok(INTERRUPTED)
            }
        }
    })
}
