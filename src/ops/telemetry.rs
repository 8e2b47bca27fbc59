//! Logging: `tracing` with the filter the configuration settled on (`RUST_LOG` wins over the configured
//! level), written to stderr as text or as JSON lines. Text carries ANSI colours only when the
//! configuration allows them (stderr is a terminal and `NO_COLOR` is not set); JSON never does.
//!
//! JSON lines carry `timestamp`, `level`, `target`, `message` and the event's fields flattened beside them
//! (e.g. `job`, `build`, `bytes`); those names are stable and documented in the README.

use tracing_subscriber::{
    EnvFilter, Layer, fmt::MakeWriter, layer::SubscriberExt, util::SubscriberInitExt,
};

use crate::config::{FilterSource, LogConfig, LogFormat};

/// Installs the global subscriber for `log`. Returns an error message if the filter does not parse.
pub fn init(log: &LogConfig) -> Result<(), String> {
    init_with_writer(log, std::io::stderr)
}

/// [`init`], writing each log line through `writer` instead of straight to stderr (a live display at a
/// terminal passes one that keeps the lines from garbling it).
pub fn init_with_writer<W>(log: &LogConfig, writer: W) -> Result<(), String>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(&log.filter).map_err(|e| match log.filter_source {
        FilterSource::RustLog => format!("invalid RUST_LOG: {e}"),
        FilterSource::Level => format!("invalid log level '{}': {e}", log.filter),
    })?;
    let layer = match log.format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_ansi(false)
            .with_writer(writer)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_target(false)
            .with_ansi(log.color)
            .with_writer(writer)
            .boxed(),
    };
    // A second init (tests) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(layer)
        .try_init();
    Ok(())
}
