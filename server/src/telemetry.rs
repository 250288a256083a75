//! Logging and traces. Logs are JSON lines for log collectors, or readable lines in a terminal;
//! the level comes from `RUST_LOG` (default [`DEFAULT_FILTER`]). With `telemetry.otlp_endpoint`
//! set, the same spans (requests, and the Vault, git, forge and database calls inside them) are
//! also sent to an OpenTelemetry collector over OTLP/HTTP. The `log_format` and `[telemetry]`
//! settings, and their check, live here.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use serde::Deserialize;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The default levels. vaultrs and rustify log every failed Vault call at ERROR, including the
/// expected ones (a readiness probe while Vault starts); meshport logs the failures that matter.
const DEFAULT_FILTER: &str = "info,sqlx=warn,vaultrs=off,rustify=off";

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line, for log collectors.
    Json,
    /// Human-readable lines, for a terminal.
    Pretty,
}

/// Traces of requests and of the calls they make (Vault, git, forges, database), sent over
/// OTLP/HTTP (protobuf) to an OpenTelemetry collector.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// The collector's OTLP/HTTP base URL, for example `http://otel-collector.monitoring:4318`
    /// (`/v1/traces` is added). Default: none, no traces are sent.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the traces. Default `meshport`.
    pub service_name: String,
    /// Share of new traces kept, 0.0 to 1.0 (a caller's sampled parent is always followed).
    /// Default 1.0.
    pub sample_ratio: f64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self { otlp_endpoint: None, service_name: "meshport".to_owned(), sample_ratio: 1.0 }
    }
}

impl TelemetryConfig {
    /// The first setting that cannot work, as (dotted key, rule).
    pub fn problem(&self) -> Option<(&'static str, &'static str)> {
        let valid = self.otlp_endpoint.as_deref().is_none_or(|url| {
            url::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "https" | "http"))
        }) && (0.0..=1.0).contains(&self.sample_ratio)
            && !self.service_name.is_empty();
        (!valid).then_some((
            "telemetry.otlp_endpoint",
            "must be an http(s) URL (with `telemetry.sample_ratio` 0.0 to 1.0 and a service name)",
        ))
    }
}

/// The trace exporter, when one runs: flushed and stopped by [`Telemetry::shutdown`].
#[must_use]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Sends the spans still buffered and stops the exporter (blocking: call off the runtime's
    /// worker threads, as `main` does).
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(error) = provider.shutdown()
        {
            eprintln!("meshport: traces not flushed: {error}");
        }
    }
}

/// Installs the global subscriber. Call once, first thing.
pub fn init(format: LogFormat, telemetry: &TelemetryConfig) -> anyhow::Result<Telemetry> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    // Standard error, so that commands writing data to standard output (exports) stay clean.
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let logs = match format {
        LogFormat::Json => logs.json().flatten_event(true).with_current_span(false).boxed(),
        LogFormat::Pretty => logs.compact().boxed(),
    };
    let provider = telemetry
        .otlp_endpoint
        .as_deref()
        .map(|url| tracer_provider(url, telemetry))
        .transpose()?;
    let traces = provider
        .as_ref()
        .map(|provider| tracing_opentelemetry::layer().with_tracer(provider.tracer("meshport")));
    tracing_subscriber::registry().with(filter).with(logs).with(traces).init();
    Ok(Telemetry { provider })
}

/// Batches spans to `<endpoint>/v1/traces` from a thread of its own.
fn tracer_provider(endpoint: &str, config: &TelemetryConfig) -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
        .build()?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(config.service_name.clone())
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            config.sample_ratio,
        ))))
        .build())
}
