//! `jam serve`: the mirror over HTTP, answering like Jenkins, until SIGTERM or Ctrl-C.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::{
    config::{Env, Overrides},
    error::exit,
    serve::{Gateway, http},
    store::Store,
};

/// Arguments of `jam serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Listen on this address [default: 127.0.0.1:9185; config: serve.listen; env: JAM_SERVE_LISTEN]
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// The source (controller) served at / when the store holds several [config: serve.source]
    #[arg(long, value_name = "NAME")]
    pub source: Option<String>,
}

/// Runs `jam serve`.
pub fn run(args: ServeArgs, mut flags: Overrides, env: &Env<'_>) -> crate::Result<u8> {
    flags.serve_listen = args.listen;
    flags.serve_source = args.source;
    let (cfg, _) = super::shared::load(&flags, env, false)?;
    let store = Store::open(&cfg.store)?;
    let rt = super::runtime()?;
    rt.block_on(async move {
        store.probe().await?;
        let serve = &cfg.serve;
        let gateway = Arc::new(Gateway::new(serve, store.clone())?);
        let tls = http::tls(serve)?;
        let listener = http::bind(serve.listen).await?;
        let addr = listener.local_addr().unwrap_or(serve.listen);
        let scheme = if tls.is_some() { "https" } else { "http" };
        tracing::info!(
            listen = %addr,
            url = %format!("{scheme}://{addr}/"),
            store = %store.describe(),
            users = serve.users.len(),
            anonymous = serve.anonymous,
            "jam serve listening"
        );
        if serve.users.is_empty() && !serve.anonymous {
            tracing::warn!(
                "no [[serve.users]] and serve.anonymous is false: every request will be refused; add users or set anonymous = true"
            );
        }
        let shutdown = CancellationToken::new();
        tokio::spawn(signals(shutdown.clone()));
        http::serve(gateway, listener, tls, http::Limits::of(serve), shutdown)
            .await
            .map_err(|e| crate::Error::Io {
                what: "serving on",
                path: addr.to_string().into(),
                source: e,
            })?;
        tracing::info!("jam serve stopped");
        Ok(exit::OK)
    })
}

async fn signals(shutdown: CancellationToken) {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM");
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("signal received: finishing the requests in flight");
    shutdown.cancel();
}
