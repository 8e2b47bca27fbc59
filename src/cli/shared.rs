//! What the read-side commands (`fetch`, `ls`, `verify`) share: loading the configuration without needing
//! Jenkins credentials when only the store is read, the source names the configuration knows, a runtime
//! that stops cleanly on Ctrl-C or SIGTERM, and aligned-column tables.

use std::future::Future;

use url::Url;

use crate::{
    config::{Config, Env, Overrides, RawConfig, default_source_name},
    error::Error,
};

/// Exit code after an interrupting signal (128 + SIGINT).
pub const INTERRUPTED: u8 = 130;

/// The configuration for a command, and the configured controllers as (source name, base URL).
///
/// With `need_jenkins` false, a configuration whose Jenkins settings are incomplete (no token, say) still
/// loads: reading the store needs only the store settings and the source names.
pub fn load(flags: &Overrides, need_jenkins: bool) -> crate::Result<(Config, Vec<(String, Url)>)> {
    let env = Env::process();
    let first = match Config::load(flags, &env) {
        Ok(cfg) => {
            init_logs(&cfg)?;
            let names = cfg
                .jenkins
                .iter()
                .map(|j| (j.name.clone(), j.url.clone()))
                .collect();
            return Ok((cfg, names));
        }
        Err(e) if need_jenkins => return Err(e.into()),
        Err(e) => e,
    };
    // Retry without the Jenkins part: from the file, then the environment.
    let Ok((mut raw, path)) = RawConfig::load(flags, &env) else {
        return Err(first.into());
    };
    let mut names = Vec::new();
    for j in &raw.jenkins {
        let Some(url) = j.url.as_deref().and_then(|u| Url::parse(u).ok()) else {
            continue;
        };
        names.push((
            j.name.clone().unwrap_or_else(|| default_source_name(&url)),
            url,
        ));
    }
    if raw.jenkins.is_empty()
        && let Some(url) = flags
            .jenkins_url
            .clone()
            .or_else(|| env.get("JENKINS_URL"))
            .and_then(|u| Url::parse(&u).ok())
    {
        names.push((default_source_name(&url), url));
    }
    raw.jenkins.clear();
    let vars: std::collections::BTreeMap<String, String> = std::env::vars()
        .filter(|(k, v)| !k.starts_with("JENKINS_") && !v.is_empty())
        .collect();
    let mut no_jenkins = flags.clone();
    no_jenkins.jenkins_url = None;
    no_jenkins.jenkins_user = None;
    let cfg = Config::from_raw(raw, path, &no_jenkins, &Env::from_map(vars))
        .map_err(|_| Error::from(first))?;
    init_logs(&cfg)?;
    Ok((cfg, names))
}

fn init_logs(cfg: &Config) -> crate::Result<()> {
    crate::ops::telemetry::init(&cfg.log.level, cfg.log.format).map_err(Error::Usage)
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
