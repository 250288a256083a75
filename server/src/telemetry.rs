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
    // Standard error, so that commands writing data to standard output (exports) stay clean.
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).init(),
        LogFormat::Pretty => builder.compact().init(),
    }
}

/// The error and its causes, `outer: inner: innermost`: many libraries' own messages ("An error
/// occurred with the request") do not tell an operator what went wrong.
pub fn with_sources(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
