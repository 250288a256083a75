//! The audit trail over HTTP, for auditors and platform admins: `GET /api/audit/export`
//! (streamed CSV, JSON Lines or OCSF; the export itself is recorded) and `GET /api/audit/verify`.

use app::access::AppError;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use http::header;
use serde::Deserialize;

use super::AppState;
use crate::audit::evidence;
use crate::audit::export::{Format, Period};
use crate::errors::{ApiError, Auditor};

#[derive(Deserialize)]
pub struct ExportQuery {
    format: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

/// A date (`2026-11-01`, midnight UTC) or an RFC 3339 instant.
fn instant(value: Option<&str>, field: &str) -> Result<Option<DateTime<Utc>>, AppError> {
    let Some(value) = value.filter(|v| !v.is_empty()) else { return Ok(None) };
    let parsed = DateTime::parse_from_rfc3339(value).map(|t| t.with_timezone(&Utc)).or_else(|_| {
        chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d")
            .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc())
    });
    parsed.map(Some).map_err(|_| {
        AppError::Invalid(format!("`{field}` must be a date (2026-11-01) or an RFC 3339 instant."))
    })
}

/// The export format asked for, `default` when none is.
fn format(query: &ExportQuery, default: &str) -> Result<Format, AppError> {
    query.format.as_deref().unwrap_or(default).parse().map_err(AppError::Invalid)
}

// The query is extracted before the caller, so a malformed one is a 400 whoever asks.

pub async fn export_events(
    State(state): State<AppState>,
    Query(query): Query<ExportQuery>,
    Auditor(principal): Auditor,
) -> Result<Response, ApiError> {
    let format = format(&query, "jsonl")?;
    let from = instant(query.from.as_deref(), "from")?;
    let to = instant(query.to.as_deref(), "to")?;
    let mut chunks = state.audit.export(&principal, Period { from, to }, format).await?;
    let body = Body::from_stream(futures_util::stream::poll_fn(move |cx| chunks.poll_recv(cx)));
    let filename =
        format!("meshport-audit-{}.{}", Utc::now().format("%Y%m%dT%H%M%SZ"), format.extension());
    Ok((
        [
            (header::CONTENT_TYPE, format.content_type().to_owned()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{filename}\"")),
        ],
        body,
    )
        .into_response())
}

pub async fn evidence_report(
    State(state): State<AppState>,
    Query(query): Query<ExportQuery>,
    _: Auditor,
) -> Result<Response, ApiError> {
    let format = format(&query, "csv")?;
    let rows = state.audit.evidence().await?;
    let body = evidence::encode(&rows, format).map_err(AppError::Invalid)?;
    Ok((
        [
            (header::CONTENT_TYPE, format.content_type().to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"meshport-change-evidence.{}\"", format.extension()),
            ),
        ],
        body,
    )
        .into_response())
}

pub async fn verify_chain(State(state): State<AppState>, _: Auditor) -> Result<Response, ApiError> {
    Ok(axum::Json(state.audit.verify().await?).into_response())
}
