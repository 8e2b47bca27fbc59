//! Logging: `tracing` with a filter from `RUST_LOG` (which wins) or the configured level, written to stderr
//! as text or as JSON lines.
//!
//! JSON lines carry `timestamp`, `level`, `target`, `message` and the event's fields flattened beside them
//! (e.g. `job`, `build`, `bytes`); those names are stable and documented in the README.

use tracing_subscriber::{EnvFilter, Layer, layer::SubscriberExt, util::SubscriberInitExt};

use crate::config::LogFormat;

/// Installs the global subscriber. `level` is a level (`info`) or a full filter (`jam=debug,info`).
/// Returns an error message if the filter does not parse.
pub fn init(level: &str, format: LogFormat) -> Result<(), String> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => {
            EnvFilter::try_new(v.trim()).map_err(|e| format!("invalid RUST_LOG: {e}"))?
        }
        _ => EnvFilter::try_new(level).map_err(|e| format!("invalid log level '{level}': {e}"))?,
    };
    let layer = match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_target(false)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    // A second init (tests) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(layer)
        .try_init();
    Ok(())
}
