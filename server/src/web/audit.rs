//! The audit trail over HTTP, for auditors and platform admins: `GET /api/audit/export`
//! (streamed CSV, CSV for spreadsheets, JSON Lines or OCSF; the export itself is recorded),
//! `GET /api/audit/evidence` and `GET /api/audit/verify`. Every export and report ends with a
//! trailer record; [`TRAILER_RULE`] says how to check it.

use app::access::AppError;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use http::header;
use serde::Deserialize;

use super::AppState;
use crate::audit::export::{Format, Period};
use crate::errors::{ApiError, Auditor, ErrorBody};

/// How a client tells a complete download from one cut off, as the API documents it.
pub const TRAILER_RULE: &str = "The last record is a trailer: in CSV, a row whose first cell is \
`trailer` and whose second cell is JSON; in JSON Lines and OCSF, a line `{\"trailer\":{…}}`. \
It holds `count` (records before it), `first_seq` and `last_seq` (the first and last event), \
`last_hash` (the last event's hash). A download is complete only if it ends with the trailer \
and these match the records before it; `meshport audit check-export FILE --format F` checks \
that. A download without a trailer was cut off.";

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// `csv` (exact, for hash verification and tools), `csv-excel` (for spreadsheets: cells
    /// starting with `=`, `+`, `-`, `@`, tab or CR get a leading `'`), `jsonl` or `ocsf`. The
    /// evidence report takes `csv` (always escaped) or `jsonl`.
    format: Option<String>,
    /// First instant included: a date (2026-11-01) or RFC 3339.
    from: Option<String>,
    /// First instant excluded: a date or RFC 3339.
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

/// The events of a period, streamed (default format `jsonl`); the export is itself recorded.
/// Ends with a trailer (see the description of the response).
#[utoipa::path(
    get, path = "/api/audit/export", tag = "audit",
    params(ExportQuery),
    responses(
        (status = 200, description = TRAILER_RULE),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not an auditor or platform admin", body = ErrorBody),
        (status = 422, description = "An unknown format or a malformed instant", body = ErrorBody),
    )
)]
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

/// The change-evidence report, one row per request (default format `csv`). Ends with a trailer
/// whose `count` is the number of rows and whose `last_seq` and `last_hash` are the chain's head
/// the report was read from (check with `meshport audit check-export FILE --format F --evidence`).
#[utoipa::path(
    get, path = "/api/audit/evidence", tag = "audit",
    params(ExportQuery),
    responses(
        (status = 200, description = TRAILER_RULE),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not an auditor or platform admin", body = ErrorBody),
        (status = 422, description = "An unknown format", body = ErrorBody),
    )
)]
pub async fn evidence_report(
    State(state): State<AppState>,
    Query(query): Query<ExportQuery>,
    Auditor(principal): Auditor,
) -> Result<Response, ApiError> {
    let format = format(&query, "csv")?;
    let mut chunks = state.audit.evidence(&principal, format).await?;
    let body = Body::from_stream(futures_util::stream::poll_fn(move |cx| chunks.poll_recv(cx)));
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

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VerifyQuery {
    /// `true` recomputes the whole chain; otherwise only the events after the prefix this
    /// server verified last (`verified_before` in the answer).
    full: Option<bool>,
}

/// The chain verified: events, checkpoints, and the first event that does not fit. After the
/// first run only new events are recomputed; `full=true` recomputes them all.
#[utoipa::path(
    get, path = "/api/audit/verify", tag = "audit",
    params(VerifyQuery),
    responses(
        (status = 200, description = "The verification: `events`, `last_hash`, `checkpoints`, `first_broken` (null when intact), `verified_before` (events trusted from an earlier run; 0 for a full check)"),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not an auditor or platform admin", body = ErrorBody),
    )
)]
pub async fn verify_chain(
    State(state): State<AppState>,
    Query(query): Query<VerifyQuery>,
    _: Auditor,
) -> Result<Response, ApiError> {
    Ok(axum::Json(state.audit.verify(query.full.unwrap_or(false)).await?).into_response())
}
