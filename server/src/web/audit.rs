//! The audit trail over HTTP, for auditors and platform admins: `GET /api/audit/export`
//! (streamed CSV, JSON Lines or OCSF; the export itself is recorded) and `GET /api/audit/verify`.

use app::access::Principal;
use axum::Extension;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use http::{StatusCode, header};
use serde::Deserialize;
use serde_json::json;

use super::{AppState, json_error};
use crate::audit::evidence;
use crate::audit::export::{self, Format, Period};
use crate::audit::{self, Action, Actor, NewEvent, Outcome, Target};

#[derive(Deserialize)]
pub struct ExportQuery {
    format: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

/// The caller, if they may read the audit trail; otherwise the 401 or 403 to answer.
fn auditor(principal: Option<Extension<Principal>>) -> Result<Principal, Response> {
    let Some(Extension(principal)) = principal else {
        return Err(json_error(
            StatusCode::UNAUTHORIZED,
            "sign_in_required",
            "Sign in to continue.",
        ));
    };
    match principal.may_read_audit() {
        Ok(()) => Ok(principal),
        Err(denied) => Err(json_error(StatusCode::FORBIDDEN, "forbidden", &denied.to_string())),
    }
}

/// A date (`2026-11-01`, midnight UTC) or an RFC 3339 instant.
fn instant(value: Option<&str>, field: &str) -> Result<Option<DateTime<Utc>>, Response> {
    let Some(value) = value.filter(|v| !v.is_empty()) else { return Ok(None) };
    let parsed = DateTime::parse_from_rfc3339(value).map(|t| t.with_timezone(&Utc)).or_else(|_| {
        chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d")
            .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc())
    });
    parsed.map(Some).map_err(|_| {
        json_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            &format!("`{field}` must be a date (2026-11-01) or an RFC 3339 instant."),
        )
    })
}

pub async fn export_events(
    State(state): State<AppState>,
    principal: Option<Extension<Principal>>,
    Query(query): Query<ExportQuery>,
) -> Response {
    let principal = match auditor(principal) {
        Ok(principal) => principal,
        Err(response) => return response,
    };
    let format: Format = match query.format.as_deref().unwrap_or("jsonl").parse() {
        Ok(format) => format,
        Err(message) => return json_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid", &message),
    };
    let period = match (instant(query.from.as_deref(), "from"), instant(query.to.as_deref(), "to"))
    {
        (Ok(from), Ok(to)) => Period { from, to },
        (Err(response), _) | (_, Err(response)) => return response,
    };
    let event = NewEvent {
        actor: Actor::from(&principal),
        action: Action::ExportPerformed,
        target: Target::new("audit_trail", "", format.extension()),
        request_id: None,
        details: json!({ "format": format.extension(), "from": period.from, "to": period.to }),
        outcome: Outcome::Success,
    };
    if let Err(error_) = audit::record_alone(&state.store, event).await {
        tracing::error!(error = %error_, "could not record an export");
        return json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "The export could not be recorded; try again.",
        );
    }
    let mut chunks = export::stream(state.store.clone(), period, format);
    let body = Body::from_stream(futures_util::stream::poll_fn(move |cx| chunks.poll_recv(cx)));
    let filename =
        format!("meshport-audit-{}.{}", Utc::now().format("%Y%m%dT%H%M%SZ"), format.extension());
    (
        [
            (header::CONTENT_TYPE, format.content_type().to_owned()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{filename}\"")),
        ],
        body,
    )
        .into_response()
}

pub async fn evidence_report(
    State(state): State<AppState>,
    principal: Option<Extension<Principal>>,
    Query(query): Query<ExportQuery>,
) -> Response {
    if let Err(response) = auditor(principal) {
        return response;
    }
    let format: Format = match query.format.as_deref().unwrap_or("csv").parse() {
        Ok(format) => format,
        Err(message) => return json_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid", &message),
    };
    let rows = match evidence::rows(&state.store).await {
        Ok(rows) => rows,
        Err(error_) => {
            tracing::error!(error = %error_, "could not build the evidence report");
            return json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "The report could not be built.",
            );
        }
    };
    match evidence::encode(&rows, format) {
        Ok(body) => (
            [
                (header::CONTENT_TYPE, format.content_type().to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!(
                        "attachment; filename=\"meshport-change-evidence.{}\"",
                        format.extension()
                    ),
                ),
            ],
            body,
        )
            .into_response(),
        Err(message) => json_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid", &message),
    }
}

pub async fn verify_chain(
    State(state): State<AppState>,
    principal: Option<Extension<Principal>>,
) -> Response {
    if let Err(response) = auditor(principal) {
        return response;
    }
    let trusted = state.audit_key.as_ref().map(|key| key.public_key());
    match audit::verify(&state.store, trusted.as_deref()).await {
        Ok(verification) => axum::Json(verification).into_response(),
        Err(error_) => {
            tracing::error!(error = %error_, "could not verify the audit trail");
            json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "The audit trail could not be read.",
            )
        }
    }
}
