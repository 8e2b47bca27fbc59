//! `jam doctor`: checks the configuration, each controller and the store, and prints each check with
//! `ok` or what to fix. Exit code 0 when every check passes, 2 when the configuration does not load, 1
//! when any other check fails.

use std::io::Write;

use crate::{
    config::{Config, Env, LogConfig, LogFormat, Overrides},
    error::exit,
    ops::doctor::{self, Check},
};

/// Arguments of `jam doctor`.
#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// Print the checks as one JSON object: {"ok": bool, "checks": [{"name", "ok", "detail"}]}
    #[arg(long)]
    pub json: bool,
}

/// Runs `jam doctor`.
pub fn run(args: DoctorArgs, flags: Overrides, env: &Env<'_>) -> crate::Result<u8> {
    let (checks, code) = match Config::load(&flags, env) {
        Ok(cfg) => {
            crate::ops::telemetry::init(&cfg.log).map_err(crate::Error::Usage)?;
            let rt = super::runtime()?;
            let checks = rt.block_on(doctor::run(&cfg));
            let code = if checks.iter().all(|c| c.ok) {
                exit::OK
            } else {
                exit::FAILURE
            };
            (checks, code)
        }
        Err(e) => {
            let format = flags.log_format.unwrap_or(LogFormat::Text);
            let _ = crate::ops::telemetry::init(&LogConfig::new("warn", format, env));
            (
                vec![Check {
                    name: "config".into(),
                    ok: false,
                    detail: e.to_string(),
                }],
                exit::USAGE,
            )
        }
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        let v = serde_json::json!({ "ok": code == exit::OK, "checks": checks });
        let _ = writeln!(out, "{v}");
    } else {
        let width = checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
        for c in &checks {
            let _ = writeln!(
                out,
                "{}  {:width$}  {}",
                if c.ok { "ok  " } else { "FAIL" },
                c.name,
                c.detail
            );
        }
        let failed = checks.iter().filter(|c| !c.ok).count();
        let _ = if failed == 0 {
            writeln!(out, "all {} checks passed", checks.len())
        } else {
            writeln!(out, "{failed} of {} checks failed", checks.len())
        };
    }
    Ok(code)
}
