//! Pull requests over HTTP: the forges' webhooks (`POST /api/webhooks/{github,gitea,gitlab}`,
//! signed, exempt from the cross-site check since forges post them), a request's pull requests
//! (`GET /api/requests/{id}/pull-requests`) and an admin's merge of a `local` one
//! (`POST /api/pull-requests/{id}/merge`).
//!
//! Webhook answers: 200 when applied (or a replay, changing nothing), 202 when signed but not
//! for meshport (another event, an unknown repository or pull request) so the forge does not
//! retry it, 401 for a bad signature (nothing written), 404 when that forge is not configured.

use app::access::{Principal, Role};
use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use serde_json::json;
use uuid::Uuid;

use super::{AppState, json_error};
use crate::gitops::{
    GitopsError, ProviderError, ProviderKind, Transition, WebhookApplyError, WebhookError,
    WebhookOutcome,
};
use crate::store::PullRequestRecord;

/// The path prefix of the webhook routes, which the cross-site check lets through.
pub const WEBHOOK_PREFIX: &str = "/api/webhooks/";

fn json_of(pr: &PullRequestRecord) -> serde_json::Value {
    json!({
        "id": pr.id,
        "request_id": pr.request_id,
        "kind": pr.kind,
        "provider": pr.provider,
        "number": pr.number,
        "url": pr.url,
        "branch": pr.branch,
        "state": pr.state,
        "merge_commit_sha": pr.merge_commit_sha,
        "updated_at": pr.updated_at,
    })
}

/// `POST /api/webhooks/{provider}`.
pub async fn receive_webhook(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(kind) = ProviderKind::from_name(&provider).filter(|k| *k != ProviderKind::Local)
    else {
        return json_error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("No webhook route for `{provider}`: use github, gitea or gitlab."),
        );
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
            let (status, code) = match &error {
                WebhookError::NotConfigured(_) => (StatusCode::NOT_FOUND, "not_configured"),
                WebhookError::BadSignature(_) => (StatusCode::UNAUTHORIZED, "bad_signature"),
                WebhookError::MissingDeliveryId(_) | WebhookError::Malformed { .. } => {
                    (StatusCode::BAD_REQUEST, "invalid")
                }
            };
            tracing::warn!(provider = kind.as_str(), %error, "webhook delivery refused");
            return json_error(status, code, &error.to_string());
        }
        Err(WebhookApplyError::Store(error)) => return internal(error),
    };
    (status, axum::Json(body)).into_response()
}

/// `GET /api/requests/{id}/pull-requests`: open / merged / closed, with link and merge commit.
pub async fn of_request(
    State(state): State<AppState>,
    principal: Option<Extension<Principal>>,
    Path(id): Path<Uuid>,
) -> Response {
    let Some(Extension(principal)) = principal else { return sign_in() };
    let request = match state.store.request(id).await {
        Ok(request) => request,
        Err(error) => return internal(error),
    };
    match request {
        Some(request) if principal.may_view_team(&request.team) => {}
        _ => return json_error(StatusCode::NOT_FOUND, "not_found", "No such request."),
    }
    match state.store.pull_requests_of(id).await {
        Ok(prs) => axum::Json(prs.iter().map(json_of).collect::<Vec<_>>()).into_response(),
        Err(error) => internal(error),
    }
}

/// `POST /api/pull-requests/{id}/merge`: a platform admin merges a `local` pull request.
pub async fn merge(
    State(state): State<AppState>,
    principal: Option<Extension<Principal>>,
    Path(id): Path<Uuid>,
) -> Response {
    let Some(Extension(principal)) = principal else { return sign_in() };
    if !principal.has(Role::PlatformAdmin) {
        return json_error(StatusCode::FORBIDDEN, "forbidden", "Only platform admins merge.");
    }
    match state.gitops.merge(id, (&principal).into()).await {
        Ok(pr) => axum::Json(json_of(&pr)).into_response(),
        Err(GitopsError::UnknownPullRequest(_)) => {
            json_error(StatusCode::NOT_FOUND, "not_found", "No such pull request.")
        }
        Err(GitopsError::Provider(error @ ProviderError::MergeUnsupported { .. })) => {
            json_error(StatusCode::CONFLICT, "conflict", &error.to_string())
        }
        Err(error @ GitopsError::Provider(ProviderError::Local(_))) => {
            json_error(StatusCode::CONFLICT, "conflict", &error.to_string())
        }
        Err(error) => internal(error),
    }
}

fn sign_in() -> Response {
    json_error(StatusCode::UNAUTHORIZED, "sign_in_required", "Sign in to continue.")
}

fn internal(error: impl std::fmt::Display) -> Response {
    tracing::error!(%error, "pull request call failed");
    json_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "Something failed on the server; try again, or tell the platform team.",
    )
}
