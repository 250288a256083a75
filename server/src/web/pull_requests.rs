//! Pull requests over HTTP: the forges' webhooks (`POST /api/webhooks/{github,gitea,gitlab}`,
//! signed, exempt from the cross-site check since forges post them), a request's pull requests
//! (`GET /api/requests/{id}/pull-requests`) and an admin's merge of a `local` one
//! (`POST /api/pull-requests/{id}/merge`).
//!
//! Webhook answers: 200 when applied (or a replay, changing nothing), 202 when signed but not
//! for meshport (another event, an unknown repository or pull request) so the forge does not
//! retry it, 401 for a bad signature (nothing written), 404 when that forge is not configured.

use app::access::AppError;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use serde_json::json;
use uuid::Uuid;

use super::AppState;
use crate::audit::refusals::Refusal;
use crate::audit::{Actor, Target};
use crate::errors::{ApiError, Caller};
use crate::gitops::{ProviderKind, Transition, WebhookApplyError, WebhookError, WebhookOutcome};
use crate::store::PullRequestRecord;

/// The path prefix of the webhook routes, which the cross-site check lets through.
pub const WEBHOOK_PREFIX: &str = "/api/webhooks/";

fn json_of(pr: &PullRequestRecord) -> serde_json::Value {
    json!({
        "id": pr.id,
        "request_id": pr.request_id,
        "kind": pr.kind.as_str(),
        "provider": pr.provider,
        "number": pr.number,
        "url": pr.url,
        "branch": pr.branch,
        "state": pr.state.as_str(),
        "merge_commit_sha": pr.merge_commit_sha,
        "head_sha": pr.head_sha,
        "approved_head_sha": pr.approved_head_sha,
        "merged_head_sha": pr.merged_head_sha,
        "changed_after_approval": pr.changed_after_approval,
        "updated_at": pr.updated_at,
    })
}

/// `POST /api/webhooks/{provider}`.
pub async fn receive_webhook(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Some(kind) = ProviderKind::from_name(&provider).filter(|k| *k != ProviderKind::Local)
    else {
        return Err(AppError::NotFound(format!(
            "No webhook route for `{provider}`: use github, gitea or gitlab."
        ))
        .into());
    };
    let (status, body) = match state.gitops.apply_webhook(kind, &headers, &body).await {
        Ok(WebhookOutcome::Applied(Transition::Changed(pr))) => {
            (StatusCode::OK, json!({ "status": "applied", "pull_request": json_of(&pr) }))
        }
        Ok(WebhookOutcome::Applied(Transition::Unchanged)) => {
            (StatusCode::OK, json!({ "status": "unchanged" }))
        }
        Ok(WebhookOutcome::Applied(Transition::Unknown)) => (
            StatusCode::ACCEPTED,
            json!({ "status": "ignored", "reason": "meshport did not open this pull request" }),
        ),
        Ok(WebhookOutcome::Duplicate) => (StatusCode::OK, json!({ "status": "duplicate" })),
        Ok(WebhookOutcome::Ignored(reason)) => {
            (StatusCode::ACCEPTED, json!({ "status": "ignored", "reason": reason }))
        }
        Err(WebhookApplyError::Refused(error)) => {
            tracing::warn!(provider = kind.as_str(), %error, "webhook delivery refused");
            if matches!(error, WebhookError::BadSignature(_)) {
                // Whoever sent it is unknown: the forge it claims to be is the actor.
                let actor = Actor {
                    user_id: None,
                    subject: format!("webhook:{}", kind.as_str()),
                    email: String::new(),
                    roles: Vec::new(),
                };
                let refusal = Refusal {
                    actor,
                    target: Target::new("webhook", "", kind.as_str()),
                    reason: error.to_string(),
                    details: json!({ "provider": kind.as_str() }),
                };
                state.refusals.record(refusal).await;
            }
            return Err(error.into());
        }
        Err(WebhookApplyError::Store(error)) => return Err(error.into()),
    };
    Ok((status, axum::Json(body)).into_response())
}

/// `GET /api/requests/{id}/pull-requests`: open / merged / closed, with link and merge commit.
pub async fn of_request(
    State(state): State<AppState>,
    // Before the caller, so a malformed id is a 400 whoever asks.
    Path(id): Path<Uuid>,
    Caller(principal): Caller,
) -> Result<Response, ApiError> {
    let prs = state.requests.pull_requests(&principal, id).await?;
    Ok(axum::Json(prs.iter().map(json_of).collect::<Vec<_>>()).into_response())
}

/// `POST /api/pull-requests/{id}/merge`: a platform admin merges a `local` pull request.
pub async fn merge(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Caller(principal): Caller,
) -> Result<Response, ApiError> {
    principal.may_merge()?;
    let pr = state.gitops.merge(id, (&principal).into()).await?;
    Ok(axum::Json(json_of(&pr)).into_response())
}
