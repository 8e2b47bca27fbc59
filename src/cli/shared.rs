//! What the read-side commands (`fetch`, `ls`, `verify`) share: loading the configuration without needing
//! Jenkins credentials when only the store is read, the source names the configuration knows, a runtime
//! that stops cleanly on Ctrl-C or SIGTERM, and aligned-column tables.

use std::future::Future;

use url::Url;

use crate::{
    config::{Config, Overrides},
    error::Error,
};

/// Exit code after an interrupting signal (128 + SIGINT).
pub const INTERRUPTED: u8 = 130;

/// The configuration for a command, and the configured controllers as (source name, base URL).
///
/// With `need_jenkins` false, a configuration whose Jenkins settings are incomplete (no token, say) still
/// loads: reading the store needs only the store settings and the source names
/// ([`Config::load_without_jenkins`]).
pub fn load(flags: &Overrides, need_jenkins: bool) -> crate::Result<(Config, Vec<(String, Url)>)> {
    let env = super::environment();
    let (cfg, sources) = if need_jenkins {
        let cfg = Config::load(flags, env)?;
        let sources = cfg.sources();
        (cfg, sources)
    } else {
        Config::load_without_jenkins(flags, env)?
    };
    crate::ops::telemetry::init(&cfg.log).map_err(Error::Usage)?;
    Ok((cfg, sources))
}

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

/// Renders rows as left-aligned columns separated by two spaces (the last column is not padded);
/// columns listed in `right` are right-aligned.
pub fn table(header: &[&str], rows: &[Vec<String>], right: &[usize]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let mut out = String::new();
    let head: Vec<String> = header.iter().map(|s| s.to_string()).collect();
    for r in std::iter::once(&head).chain(rows) {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            let pad = widths[i].saturating_sub(c.chars().count());
            let last = i + 1 == r.len();
            if right.contains(&i) {
                line.push_str(&" ".repeat(pad));
                line.push_str(c);
            } else {
                line.push_str(c);
                if !last {
                    line.push_str(&" ".repeat(pad));
                }
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Bytes for people: `1.5 MiB`.
pub fn human_size(n: u64) -> String {
    bytesize::ByteSize(n).display().iec().to_string()
}
