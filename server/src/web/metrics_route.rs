//! `/metrics`: Prometheus text exposition of the status report, meshport's own histograms
//! (requests, provisioning steps, queue wait) and the job queue's depth.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, header};
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use super::AppState;

/// The metrics, behind `status.metrics_token` when one is set.
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(token) = &state.metrics_token {
        let sent = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !bool::from(sent.as_bytes().ct_eq(token.expose_secret().as_bytes())) {
            return (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], "")
                .into_response();
        }
    }
    let mut body = crate::status::prometheus::render(&state.status.report());
    crate::process_metrics::render(&mut body);
    crate::process_metrics::family(
        &mut body,
        "meshport_jobs",
        "Jobs by state (queued and running: the queue's depth).",
        "gauge",
    );
    crate::process_metrics::family(
        &mut body,
        "meshport_gitops_fetches_total",
        "Fetches from the GitOps repository (previews share one per interval).",
        "counter",
    );
    body.push_str(&format!("meshport_gitops_fetches_total {}\n", state.gitops.fetches()));
    if let Err(error) = state.fleet.metrics(&mut body).await {
        tracing::warn!(%error, "cannot read the fleet report for /metrics");
    }
    match state.status.job_counts().await {
        Ok(counts) => {
            for (job_state, count) in counts {
                let job_state = crate::process_metrics::escape(&job_state);
                body.push_str(&format!("meshport_jobs{{state=\"{job_state}\"}} {count}\n"));
            }
        }
        Err(error) => tracing::warn!(%error, "cannot count jobs for /metrics"),
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response()
}
