//! The fleet's routes: the drift report and upgrade batches over the REST API
//! (`/api/v1/fleet…`), and the `/fleet` page's plain forms (`POST /fleet/…`), which work
//! without JavaScript and come back to the page with what happened. Every route checks the
//! caller's role on the server; inputs go through the one validator.

use std::collections::BTreeMap;

use app::access::{AppError, Principal, Role};
use app::fleet::{FleetReport, ServiceDrift, UpgradeBatch};
use app::onboarding::upgrade_selection;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::AppState;
use crate::errors::{ApiError, Caller, ErrorBody};

type ApiResult<T> = Result<T, ApiError>;

/// An upgrade batch to open: `scope` `all`, `namespace` or `team`; `value` names the
/// namespace or team; `decisions` maps `<namespace>/<service>` of hand-edited services to
/// `replace` or `adopt`.
#[derive(Deserialize, ToSchema)]
pub struct UpgradeRequest {
    pub scope: String,
    #[serde(default)]
    pub value: String,
    #[serde(default)]
    pub decisions: BTreeMap<String, String>,
}

/// A batch approval: every waiting change set's id and the digest the approver reviewed.
#[derive(Deserialize, ToSchema)]
pub struct BatchApproval {
    pub digests: BTreeMap<String, String>,
}

/// The last drift pass over the live services the caller may see.
#[utoipa::path(
    get, path = "/api/v1/fleet", tag = "fleet",
    responses(
        (status = 200, description = "The last report (null before the first pass)", body = Option<FleetReport>),
        (status = 401, description = "No valid token", body = ErrorBody),
    )
)]
pub async fn report(
    State(state): State<AppState>,
    Caller(principal): Caller,
) -> ApiResult<Json<Option<FleetReport>>> {
    Ok(Json(state.fleet.visible_report(&principal).await?))
}

/// Run a drift pass now (platform admins): one fetch, every live service compared.
#[utoipa::path(
    post, path = "/api/v1/fleet/check", tag = "fleet",
    responses(
        (status = 200, description = "The new report", body = FleetReport),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not a platform admin", body = ErrorBody),
        (status = 409, description = "The GitOps repository could not be read", body = ErrorBody),
    )
)]
pub async fn check(
    State(state): State<AppState>,
    Caller(principal): Caller,
) -> ApiResult<Json<FleetReport>> {
    may_check(&principal)?;
    Ok(Json(state.fleet.check().await.map_err(AppError::from)?))
}

/// One live service's files against today's rendering (last pass).
#[utoipa::path(
    get, path = "/api/v1/fleet/services/{namespace}/{service}", tag = "fleet",
    params(
        ("namespace" = String, Path, description = "The service's namespace"),
        ("service" = String, Path, description = "The service's name"),
    ),
    responses(
        (status = 200, description = "The service's files and their classes", body = ServiceDrift),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "Not in the last pass, or not visible to the caller", body = ErrorBody),
    )
)]
pub async fn service(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((namespace, service)): Path<(String, String)>,
) -> ApiResult<Json<ServiceDrift>> {
    Ok(Json(state.fleet.service(&principal, &namespace, &service).await?))
}

/// The newest upgrade batches.
#[utoipa::path(
    get, path = "/api/v1/fleet/upgrades", tag = "fleet",
    responses(
        (status = 200, description = "Batches, newest first", body = [UpgradeBatch]),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not a platform admin", body = ErrorBody),
    )
)]
pub async fn batches(
    State(state): State<AppState>,
    Caller(principal): Caller,
) -> ApiResult<Json<Vec<UpgradeBatch>>> {
    may_check(&principal)?;
    Ok(Json(state.fleet.batches().await?))
}

/// Open one upgrade change set per selected service that needs one (platform admins). A
/// service with hand edits needs a `replace` or `adopt` decision, else it is left out.
#[utoipa::path(
    post, path = "/api/v1/fleet/upgrades", tag = "fleet",
    request_body = UpgradeRequest,
    responses(
        (status = 201, description = "The batch and its change sets", body = UpgradeBatch),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not a platform admin", body = ErrorBody),
        (status = 409, description = "No selected service needs an upgrade it can get", body = ErrorBody),
        (status = 422, description = "The selection breaks a rule, naming the field", body = ErrorBody),
    )
)]
pub async fn propose(
    State(state): State<AppState>,
    Caller(principal): Caller,
    body: Result<Json<UpgradeRequest>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<UpgradeBatch>)> {
    let Json(request) = body?;
    let decisions: Vec<(String, String)> = request.decisions.into_iter().collect();
    let selection =
        upgrade_selection(&request.scope, &request.value, &decisions).map_err(AppError::from)?;
    let batch = state.fleet.propose_upgrades(&principal, &selection).await?;
    Ok((StatusCode::CREATED, Json(batch)))
}

/// One upgrade batch with its change sets and their digests.
#[utoipa::path(
    get, path = "/api/v1/fleet/upgrades/{id}", tag = "fleet",
    params(("id" = String, Path, description = "The batch's id")),
    responses(
        (status = 200, description = "The batch", body = UpgradeBatch),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not a platform admin", body = ErrorBody),
        (status = 404, description = "No such batch", body = ErrorBody),
    )
)]
pub async fn batch(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<UpgradeBatch>> {
    may_check(&principal)?;
    Ok(Json(state.fleet.batch(batch_id(&id)?).await?))
}

/// Approve every waiting change set of a batch (a platform admin other than its requester),
/// confirming each one's digest.
#[utoipa::path(
    post, path = "/api/v1/fleet/upgrades/{id}/approve", tag = "fleet",
    params(("id" = String, Path, description = "The batch's id")),
    request_body = BatchApproval,
    responses(
        (status = 204, description = "Approved; provisioning opens the pull requests"),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not a platform admin, or the batch's requester", body = ErrorBody),
        (status = 404, description = "No such batch", body = ErrorBody),
        (status = 409, description = "A digest differs from the confirmed one, or nothing waits", body = ErrorBody),
    )
)]
pub async fn approve(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
    body: Result<Json<BatchApproval>, JsonRejection>,
) -> ApiResult<StatusCode> {
    let Json(approval) = body?;
    state.fleet.approve_batch(&principal, batch_id(&id)?, &approval.digests).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn may_check(principal: &Principal) -> Result<(), AppError> {
    if principal.has(Role::PlatformAdmin) {
        Ok(())
    } else {
        Err(AppError::Forbidden("Only platform admins run drift passes and upgrades.".into()))
    }
}

fn batch_id(id: &str) -> Result<Uuid, AppError> {
    id.parse().map_err(|_| AppError::NotFound("No such upgrade batch.".into()))
}

/// `POST /fleet/check`: the page's "check now" button.
pub async fn post_check(State(state): State<AppState>, request: Request) -> Response {
    let principal = caller(&request);
    let outcome = async {
        let principal = principal.ok_or(AppError::SignInRequired)?;
        may_check(&principal)?;
        let report = state.fleet.check().await?;
        Ok::<_, AppError>(format!("Checked {} live services.", report.services.len()))
    };
    back(outcome.await)
}

/// `POST /fleet/upgrades`: the page's upgrade form (`scope`, `value`, and one
/// `decision:<namespace>/<service>` per hand-edited service).
pub async fn post_upgrades(
    State(state): State<AppState>,
    principal: Option<axum::Extension<Principal>>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let outcome = async {
        let axum::Extension(principal) = principal.ok_or(AppError::SignInRequired)?;
        let field = |name: &str| {
            fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap_or_default()
        };
        let decisions: Vec<(String, String)> = fields
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix("decision:")?.to_owned(), v.clone())))
            .collect();
        let selection = upgrade_selection(&field("scope"), &field("value"), &decisions)?;
        let batch = state.fleet.propose_upgrades(&principal, &selection).await?;
        Ok::<_, AppError>(format!(
            "Opened {} upgrade change set(s) in batch {}; another platform admin approves them.",
            batch.changes.len(),
            batch.id
        ))
    };
    back(outcome.await)
}

/// `POST /fleet/upgrades/{id}/approve`: the batch approval form, one `digest:<change set id>`
/// field per listed change set.
pub async fn post_approve(
    State(state): State<AppState>,
    principal: Option<axum::Extension<Principal>>,
    Path(id): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let outcome = async {
        let axum::Extension(principal) = principal.ok_or(AppError::SignInRequired)?;
        let digests: BTreeMap<String, String> = fields
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix("digest:")?.to_owned(), v.clone())))
            .collect();
        let approved = state.fleet.approve_batch(&principal, batch_id(&id)?, &digests).await?;
        Ok::<_, AppError>(format!("Approved {approved} upgrade change set(s)."))
    };
    back(outcome.await)
}

fn caller(request: &Request) -> Option<Principal> {
    request.extensions().get::<Principal>().cloned()
}

/// Back to the page with what happened (`done`) or what was refused (`problem`), with the
/// refusal's status: the page reads the message from its query.
fn back(outcome: Result<String, AppError>) -> Response {
    let encode =
        |text: &str| url::form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>();
    match outcome {
        Ok(done) => Redirect::to(&format!("/fleet?done={}", encode(&done))).into_response(),
        Err(AppError::SignInRequired) => Redirect::to("/signin").into_response(),
        Err(error) => {
            if let AppError::Forbidden(_) = error {
                // A refused privileged attempt is answered 403 so the refusal is recorded.
                return (StatusCode::FORBIDDEN, error.to_string()).into_response();
            }
            Redirect::to(&format!("/fleet?problem={}", encode(&error.to_string()))).into_response()
        }
    }
}
