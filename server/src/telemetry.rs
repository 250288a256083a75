//! Logging: JSON lines for log collectors, or readable lines in a terminal. The level comes
//! from `RUST_LOG` (default [`DEFAULT_FILTER`]).

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// The default levels. vaultrs and rustify log every failed Vault call at ERROR, including the
/// expected ones (a readiness probe while Vault starts); meshport logs the failures that matter.
const DEFAULT_FILTER: &str = "info,sqlx=warn,vaultrs=off,rustify=off";

/// Installs the global subscriber. Call once, first thing.
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).init(),
        LogFormat::Pretty => builder.compact().init(),
    }
}
