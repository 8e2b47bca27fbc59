//! `jam mirror`: runs the worker until stopped, or for one cycle with `--once`. At a terminal it shows
//! a live display of the work ([`super::display`]) unless `--quiet` or `--log-format json`.

use std::{io::IsTerminal, time::Duration};

use tokio_util::sync::CancellationToken;

use super::display::{self, Display};
use crate::{
    config::{Config, Env, Overrides, parse_duration},
    error::{Error, exit},
    mirror::Mirror,
    ops,
    store::Store,
};

/// Arguments of `jam mirror`.
#[derive(Debug, clap::Args)]
pub struct MirrorArgs {
    /// Run one full cycle, wait for every transfer, and exit (non-zero if any build failed): for cron and CI.
    #[arg(long)]
    pub once: bool,
    /// Jenkins base URL of a single controller [env: JENKINS_URL]
    #[arg(long, value_name = "URL")]
    pub jenkins: Option<String>,
    /// Jenkins user [env: JENKINS_USER]; the API token comes from JENKINS_API_TOKEN or token_file, never a flag
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// Time between poll cycles, e.g. 60s [config: mirror.poll_interval]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub poll_interval: Option<Duration>,
    /// Serve /metrics, /healthz and /readyz on this address, e.g. 127.0.0.1:9184 [config: mirror.listen];
    /// with a notice secret [config: mirror.notify_secret_file; env: JAM_NOTIFY_SECRET], also build notices
    /// from Jenkins on POST /notify/jenkins
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// This worker's id among the workers sharing the store [env: JAM_WORKER_ID; config: mirror.worker_id;
    /// default: the host name]
    #[arg(long, value_name = "ID")]
    pub worker_id: Option<String>,
    /// No live display at a terminal (log lines only; --log-level sets how many)
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// Runs `jam mirror`.
pub fn run(args: MirrorArgs, mut flags: Overrides, env: &Env<'_>) -> crate::Result<u8> {
    flags.jenkins_url = args.jenkins;
    flags.jenkins_user = args.user;
    flags.poll_interval = args.poll_interval;
    flags.listen = args.listen;
    flags.worker_id = args.worker_id;
    let cfg = Config::load(&flags, env)?;
    let live = display::wanted(args.quiet, cfg.log.format, std::io::stderr().is_terminal())
        .then(Display::new);
    match &live {
        Some(d) => ops::telemetry::init_with_writer(&cfg.log, d.log_writer()),
        None => ops::telemetry::init(&cfg.log),
    }
    .map_err(Error::Usage)?;
    let store = Store::open(&cfg.store)?;
    // A local directory takes one writing process; held until the process ends.
    let _lock = store.lock_for_writing()?;
    let rt = super::runtime()?;
    rt.block_on(async move {
        store.probe().await?;
        let mirror = Mirror::new(&cfg, store.clone())?;
        let stop_display = CancellationToken::new();
        let display = live.map(|d| d.run(mirror.stats(), mirror.board(), stop_display.clone()));
        let shutdown = CancellationToken::new();
        let abort = mirror.abort_token();
        tokio::spawn(signals(shutdown.clone(), abort));
        // The endpoint outlives the worker's shutdown token: it reports through the grace period and stops
        // when the worker has.
        let stop_endpoint = CancellationToken::new();
        let endpoint = match cfg.mirror.listen {
            Some(addr) => {
                let listener = ops::bind(addr).await?;
                let readiness = ops::Readiness::new(&cfg, store.clone())?
                    .with_check("heartbeat", mirror.heartbeat_check());
                let notices = cfg
                    .mirror
                    .notify_secret
                    .as_ref()
                    .map(|secret| ops::NoticeEndpoint::new(secret, mirror.notices()));
                let what = if notices.is_some() {
                    "serving /metrics, /healthz, /readyz and build notices on POST /notify/jenkins"
                } else {
                    "serving /metrics, /healthz and /readyz"
                };
                tracing::info!(listen = %listener.local_addr().unwrap_or(addr), "{what}");
                Some(tokio::spawn(ops::serve_with(
                    listener,
                    mirror.metrics(),
                    readiness,
                    notices,
                    stop_endpoint.clone(),
                )))
            }
            None => {
                if cfg.mirror.notify_secret.is_some() {
                    tracing::warn!("a build-notice secret is set but no listen address: notices cannot arrive (set mirror.listen or --listen)");
                }
                None
            }
        };
        tracing::info!(
            store = %store.describe(),
            controllers = cfg.jenkins.len(),
            once = args.once,
            "jam mirror starting"
        );
        let summary = mirror.run(args.once, shutdown).await;
        stop_display.cancel();
        if let Some(d) = display {
            let _ = d.await;
        }
        stop_endpoint.cancel();
        let summary = summary?;
        if let Some(task) = endpoint {
            match task.await {
                Ok(Err(e)) => tracing::warn!(error = %e, "the metrics endpoint failed"),
                Err(e) => tracing::warn!(error = %e, "the metrics endpoint panicked"),
                Ok(Ok(())) => {}
            }
        }
        tracing::info!(
            mirrored = summary.mirrored,
            failed_attempts = summary.failed_attempts,
            given_up = summary.given_up,
            missed = summary.missed,
            "jam mirror stopped"
        );
        if let Some(refused) = summary.refused {
            return Err(refused.into());
        }
        Ok(if args.once && !summary.ok() {
            exit::FAILURE
        } else {
            exit::OK
        })
    })
}

/// First SIGTERM or Ctrl-C: stop starting work and let in-flight transfers finish within the grace period.
/// A second one aborts them at once.
async fn signals(shutdown: CancellationToken, abort: CancellationToken) {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM");
            return;
        }
    };
    for n in 0..2 {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        if n == 0 {
            tracing::info!(
                "signal received: finishing in-flight transfers (send again to abort them)"
            );
            shutdown.cancel();
        } else {
            tracing::warn!("second signal: aborting in-flight transfers");
            abort.cancel();
        }
    }
}
