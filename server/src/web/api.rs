//! The JSON REST API for automation, `/api/v1/…`: the flows of the onboarding pages (submit,
//! list, detail, approve, reject) over the same services and access rules, authenticated by
//! an API token (`Authorization: Bearer mpt_…`) or a session. Described by the OpenAPI
//! document at `/api/openapi.json`, derived from the types it uses.

use app::onboarding::OnboardingRequest;
use app::onboarding::SecretValue;
use app::request_api::ssr::RequestService;
use app::request_api::{
    AdminAction, ChangePreview, Decision, PageRequest, RequestDetail, RequestSummary, ServiceDetail,
};
use app::secret_rotation::ssr::RotationService;
use app::secret_rotation::{Rotated, ServiceSecrets};
use app::users::ssr::UserAdminService;
use app::users::{UserAction, UserDetail, UserSummary};
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use super::AppState;
use crate::errors::{ApiError, Caller, ErrorBody};

/// The id of a new request.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Created {
    pub id: String,
}

/// An admin's reason: optional to approve, required to reject (at most 1000 characters).
#[derive(Deserialize, ToSchema)]
pub struct Reason {
    #[serde(default)]
    pub reason: String,
}

/// The API's OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(title = "meshport API", description = "Onboard services to the Linkerd + Vault mesh."),
    paths(
        submit, list, detail, approve, reject, act, withdraw, service, preview_change,
        propose_change, propose_offboarding, adopt, secrets, rotate, users, user, act_on_user,
        super::audit::export_events, super::audit::evidence_report, super::audit::verify_chain,
        super::fleet::report, super::fleet::check, super::fleet::service, super::fleet::batches,
        super::fleet::propose, super::fleet::batch, super::fleet::approve
    ),
    components(schemas(
        ErrorBody, Created, Reason, ActionBody, Justification, Adopted, UserActionBody,
        RotateBody, super::fleet::UpgradeRequest, super::fleet::BatchApproval
    )),
    modifiers(&BearerToken),
    security(("api_token" = [])),
    tags(
        (name = "requests", description = "Change sets: onboardings, changes, offboardings"),
        (name = "services", description = "Live services, their versions and changes"),
        (name = "fleet", description = "Repository drift of live services and generator upgrades"),
        (name = "users", description = "People's sessions and tokens (platform admins)"),
        (name = "audit", description = "The audit trail: exports, the change-evidence report, verification (auditors, platform admins)"),
    )
)]
pub struct ApiDoc;

struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_token",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// `GET /api/openapi.json`.
pub async fn openapi() -> Response {
    Json(ApiDoc::openapi()).into_response()
}

type ApiResult<T> = Result<T, ApiError>;

/// Submit an onboarding request (developers, for their own teams).
#[utoipa::path(
    post, path = "/api/v1/requests", tag = "requests",
    request_body = OnboardingRequest,
    responses(
        (status = 201, description = "Submitted", body = Created),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not a developer of the team", body = ErrorBody),
        (status = 409, description = "The service is claimed by a live request", body = ErrorBody),
        (status = 422, description = "The request breaks a rule; each field error names the field and the rule", body = ErrorBody),
    )
)]
pub async fn submit(
    State(state): State<AppState>,
    Caller(principal): Caller,
    body: Result<Json<OnboardingRequest>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<Created>)> {
    let Json(request) = body?;
    let id = state.requests.submit(&principal, request).await?;
    Ok((StatusCode::CREATED, Json(Created { id })))
}

/// The requests the caller may see, newest first: a page of `limit` (default 100, at most
/// 500) after the cursor `after`; the next page's URL is in the `Link` header (`rel="next"`).
#[utoipa::path(
    get, path = "/api/v1/requests", tag = "requests",
    params(PageRequest),
    responses(
        (status = 200, description = "Requests", body = [RequestSummary]),
        (status = 400, description = "Not a cursor of this list", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Query(page): Query<PageRequest>,
) -> ApiResult<Response> {
    let limit = page.limit;
    let page = state.requests.list(&principal, page).await?;
    let mut response = Json(page.items).into_response();
    if let Some(next) = page.next {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query.append_pair("after", &next);
        if let Some(limit) = limit {
            query.append_pair("limit", &limit.to_string());
        }
        let link = format!("</api/v1/requests?{}>; rel=\"next\"", query.finish());
        if let Ok(value) = http::HeaderValue::from_str(&link) {
            response.headers_mut().insert(http::header::LINK, value);
        }
    }
    Ok(response)
}

/// One request with its provisioning jobs and their finished steps.
#[utoipa::path(
    get, path = "/api/v1/requests/{id}", tag = "requests",
    params(("id" = String, Path, description = "The request's id")),
    responses(
        (status = 200, description = "The request", body = RequestDetail),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such request, or not visible to the caller", body = ErrorBody),
    )
)]
pub async fn detail(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<RequestDetail>> {
    Ok(Json(state.requests.detail(&principal, &id).await?))
}

/// Approve a submitted request (platform admins; never the requester). Provisioning starts.
#[utoipa::path(
    post, path = "/api/v1/requests/{id}/approve", tag = "requests",
    params(("id" = String, Path, description = "The request's id")),
    request_body = Reason,
    responses(
        (status = 204, description = "Approved; provisioning is queued"),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not a platform admin, or the requester", body = ErrorBody),
        (status = 404, description = "No such request", body = ErrorBody),
        (status = 409, description = "Not waiting for a decision", body = ErrorBody),
        (status = 422, description = "Reason too long", body = ErrorBody),
    )
)]
pub async fn approve(
    state: State<AppState>,
    caller: Caller,
    id: Path<String>,
    body: Result<Json<Reason>, JsonRejection>,
) -> ApiResult<StatusCode> {
    decide(state, caller, id, body, Decision::Approve).await
}

/// Reject a submitted request with a reason (platform admins; never the requester).
#[utoipa::path(
    post, path = "/api/v1/requests/{id}/reject", tag = "requests",
    params(("id" = String, Path, description = "The request's id")),
    request_body = Reason,
    responses(
        (status = 204, description = "Rejected"),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not a platform admin, or the requester", body = ErrorBody),
        (status = 404, description = "No such request", body = ErrorBody),
        (status = 409, description = "Not waiting for a decision", body = ErrorBody),
        (status = 422, description = "No reason, or too long", body = ErrorBody),
    )
)]
pub async fn reject(
    state: State<AppState>,
    caller: Caller,
    id: Path<String>,
    body: Result<Json<Reason>, JsonRejection>,
) -> ApiResult<StatusCode> {
    decide(state, caller, id, body, Decision::Reject).await
}

/// A platform admin's action on an approved request.
#[derive(Deserialize, ToSchema)]
pub struct ActionBody {
    pub action: AdminAction,
}

/// Retry or cancel a request's provisioning, reconcile its drifted Vault objects, offboard
/// the service, or approve the head a pull request was merged with after commits were pushed to
/// its branch following approval (`approve_head`: then the request becomes merged). Platform
/// admins; `approve_head` never by the requester. A request's pull requests, with
/// `approved_head_sha`, `merged_head_sha` and `changed_after_approval`, are in its detail.
#[utoipa::path(
    post, path = "/api/v1/requests/{id}/actions", tag = "requests",
    params(("id" = String, Path, description = "The request's id")),
    request_body = ActionBody,
    responses(
        (status = 202, description = "Accepted; the job runs in the background (`approve_head`: done)"),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not a platform admin, or the requester approving a head", body = ErrorBody),
        (status = 404, description = "No such request", body = ErrorBody),
        (status = 409, description = "The action does not fit the request's state", body = ErrorBody),
        (status = 422, description = "Not a known action", body = ErrorBody),
    )
)]
pub async fn act(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
    body: Result<Json<ActionBody>, JsonRejection>,
) -> ApiResult<StatusCode> {
    let Json(ActionBody { action }) = body?;
    state.requests.act(&principal, &id, action).await?;
    Ok(StatusCode::ACCEPTED)
}

async fn decide(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
    body: Result<Json<Reason>, JsonRejection>,
    decision: Decision,
) -> ApiResult<StatusCode> {
    let Json(Reason { reason }) = body?;
    state.requests.decide(&principal, &id, decision, reason.trim()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Withdraw a change set not yet applied (its requester while it waits for a decision; a
/// platform admin also after a failed or cancelled provisioning).
#[utoipa::path(
    post, path = "/api/v1/requests/{id}/withdraw", tag = "requests",
    params(("id" = String, Path, description = "The change set's id")),
    responses(
        (status = 204, description = "Withdrawn; staged secret values are destroyed"),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Neither its requester nor a platform admin", body = ErrorBody),
        (status = 404, description = "No such change set", body = ErrorBody),
        (status = 409, description = "Applied already, or a job runs", body = ErrorBody),
    )
)]
pub async fn withdraw(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.requests.withdraw(&principal, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A service: its live spec (without secret values), version and every change set.
#[utoipa::path(
    get, path = "/api/v1/services/{namespace}/{service}", tag = "services",
    params(
        ("namespace" = String, Path, description = "The service's namespace"),
        ("service" = String, Path, description = "The service's name"),
    ),
    responses(
        (status = 200, description = "The service", body = ServiceDetail),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such service, or not visible to the caller", body = ErrorBody),
    )
)]
pub async fn service(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((namespace, service)): Path<(String, String)>,
) -> ApiResult<Json<ServiceDetail>> {
    Ok(Json(state.requests.service(&principal, &namespace, &service).await?))
}

/// A live service's secrets: versions, ages, next rotations, delivery, rollout.
#[utoipa::path(
    get, path = "/api/v1/services/{namespace}/{service}/secrets", tag = "services",
    params(
        ("namespace" = String, Path, description = "The service's namespace"),
        ("service" = String, Path, description = "The service's name"),
    ),
    responses(
        (status = 200, description = "The service's secrets", body = ServiceSecrets),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No live service, or not visible to the caller", body = ErrorBody),
    )
)]
pub async fn secrets(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((namespace, service)): Path<(String, String)>,
) -> ApiResult<Json<ServiceSecrets>> {
    Ok(Json(state.rotations.secrets(&principal, &namespace, &service).await?))
}

/// Why a secret is rotated and, for a provided secret, its new value (write-only).
#[derive(Deserialize, ToSchema)]
pub struct RotateBody {
    /// Why, at most 1000 characters; recorded in the audit trail.
    pub reason: String,
    /// The new value of a provided secret; absent for generated ones.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Password)]
    pub value: Option<SecretValue>,
}

/// Rotates one secret now (the owning team's developers and platform admins).
#[utoipa::path(
    post, path = "/api/v1/services/{namespace}/{service}/secrets/{secret}/rotate", tag = "services",
    params(
        ("namespace" = String, Path, description = "The service's namespace"),
        ("service" = String, Path, description = "The service's name"),
        ("secret" = String, Path, description = "The secret's name"),
    ),
    request_body = RotateBody,
    responses(
        (status = 200, description = "Rotated: the new version", body = Rotated),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not a developer of the owning team nor a platform admin", body = ErrorBody),
        (status = 404, description = "No such live service or secret", body = ErrorBody),
        (status = 409, description = "An existing secret, or rotated meanwhile", body = ErrorBody),
        (status = 422, description = "No reason, or a value where none belongs (or none where one does)", body = ErrorBody),
    )
)]
pub async fn rotate(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((namespace, service, secret)): Path<(String, String, String)>,
    body: Result<Json<RotateBody>, JsonRejection>,
) -> ApiResult<Json<Rotated>> {
    let Json(body) = body?;
    let value = body.value.filter(|v| !v.is_empty());
    let rotated = state
        .rotations
        .rotate(&principal, &namespace, &service, &secret, &body.reason, value)
        .await?;
    Ok(Json(rotated))
}

/// What a change of a live service would do (the full proposed spec): spec differences, files
/// against the live rendering and the repository, Vault objects written or retired.
#[utoipa::path(
    post, path = "/api/v1/services/{namespace}/{service}/preview", tag = "services",
    params(
        ("namespace" = String, Path, description = "The service's namespace"),
        ("service" = String, Path, description = "The service's name"),
    ),
    request_body = OnboardingRequest,
    responses(
        (status = 200, description = "The differences", body = ChangePreview),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such service", body = ErrorBody),
        (status = 409, description = "Not live yet", body = ErrorBody),
        (status = 422, description = "The proposal breaks a rule", body = ErrorBody),
    )
)]
pub async fn preview_change(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((namespace, service)): Path<(String, String)>,
    body: Result<Json<OnboardingRequest>, JsonRejection>,
) -> ApiResult<Json<ChangePreview>> {
    let Json(request) = body?;
    Ok(Json(state.requests.preview_change(&principal, &namespace, &service, request).await?))
}

/// Propose a change of a live service: the full proposed spec (typed values only for new
/// provided secrets). A platform admin other than the requester approves it.
#[utoipa::path(
    post, path = "/api/v1/services/{namespace}/{service}/changes", tag = "services",
    params(
        ("namespace" = String, Path, description = "The service's namespace"),
        ("service" = String, Path, description = "The service's name"),
    ),
    request_body = OnboardingRequest,
    responses(
        (status = 201, description = "Submitted", body = Created),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not a developer of the service's team", body = ErrorBody),
        (status = 404, description = "No such service", body = ErrorBody),
        (status = 409, description = "Another change set is in flight, or not live yet", body = ErrorBody),
        (status = 422, description = "The proposal breaks a rule, or changes nothing", body = ErrorBody),
    )
)]
pub async fn propose_change(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((namespace, service)): Path<(String, String)>,
    body: Result<Json<OnboardingRequest>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<Created>)> {
    let Json(request) = body?;
    let id = state.requests.propose_change(&principal, &namespace, &service, request).await?;
    Ok((StatusCode::CREATED, Json(Created { id })))
}

/// Why a service leaves the mesh.
#[derive(Deserialize, ToSchema)]
pub struct Justification {
    pub justification: String,
}

/// Propose offboarding a live service (its team's developers or a platform admin); a second
/// platform admin approves it.
#[utoipa::path(
    post, path = "/api/v1/services/{namespace}/{service}/offboard", tag = "services",
    params(
        ("namespace" = String, Path, description = "The service's namespace"),
        ("service" = String, Path, description = "The service's name"),
    ),
    request_body = Justification,
    responses(
        (status = 201, description = "Submitted", body = Created),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Neither of the team nor a platform admin", body = ErrorBody),
        (status = 404, description = "No such service", body = ErrorBody),
        (status = 409, description = "Another change set is in flight", body = ErrorBody),
        (status = 422, description = "No justification", body = ErrorBody),
    )
)]
pub async fn propose_offboarding(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((namespace, service)): Path<(String, String)>,
    body: Result<Json<Justification>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<Created>)> {
    let Json(Justification { justification }) = body?;
    let id = state
        .requests
        .propose_offboarding(&principal, &namespace, &service, justification.trim())
        .await?;
    Ok((StatusCode::CREATED, Json(Created { id })))
}

/// The Vault objects an adoption made the service's (empty: there was nothing to adopt).
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Adopted {
    pub adopted: Vec<String>,
}

/// Adopt the Vault objects of a service's approved spec that exist but meshport did not create
/// for it (platform admins), so provisioning may overwrite them. Recorded in the audit trail.
#[utoipa::path(
    post, path = "/api/v1/services/{namespace}/{service}/adopt", tag = "services",
    params(
        ("namespace" = String, Path, description = "The service's namespace"),
        ("service" = String, Path, description = "The service's name"),
    ),
    responses(
        (status = 200, description = "Adopted (or nothing to adopt)", body = Adopted),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not a platform admin", body = ErrorBody),
        (status = 404, description = "No approved request for the service", body = ErrorBody),
    )
)]
pub async fn adopt(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((namespace, service)): Path<(String, String)>,
) -> ApiResult<Json<Adopted>> {
    let requests = &state.requests;
    let adoption = crate::adoption::Adoption {
        vault: &requests.vault,
        store: &requests.store,
        rules: &requests.rules,
        settings: &requests.settings,
    };
    let adopted = adoption
        .adopt_as(&principal, &namespace, &service)
        .await
        .map_err(app::access::AppError::from)?;
    Ok(Json(Adopted { adopted }))
}

/// Every user with their confirmed roles and live session and token counts (platform admins).
#[utoipa::path(
    get, path = "/api/v1/users", tag = "users",
    responses(
        (status = 200, description = "Users", body = [UserSummary]),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not a platform admin", body = ErrorBody),
    )
)]
pub async fn users(
    State(state): State<AppState>,
    Caller(principal): Caller,
) -> ApiResult<Json<Vec<UserSummary>>> {
    Ok(Json(state.users.list(&principal).await?))
}

/// One user with their sessions and API tokens (platform admins).
#[utoipa::path(
    get, path = "/api/v1/users/{id}", tag = "users",
    params(("id" = String, Path, description = "The user's id")),
    responses(
        (status = 200, description = "The user", body = UserDetail),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not a platform admin", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
    )
)]
pub async fn user(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<UserDetail>> {
    Ok(Json(state.users.detail(&principal, &id).await?))
}

/// An admin's action on a user.
#[derive(Deserialize, ToSchema)]
pub struct UserActionBody {
    pub action: UserAction,
    /// The session's or token's id, for `revoke_session` and `revoke_token`.
    #[serde(default)]
    pub target: String,
    /// Required to `disable` (at most 1000 characters).
    #[serde(default)]
    pub reason: String,
}

/// Revoke one of a user's sessions or tokens, disable the user (every session and token ends;
/// sign-in refused) or enable them again (platform admins; audited).
#[utoipa::path(
    post, path = "/api/v1/users/{id}/actions", tag = "users",
    params(("id" = String, Path, description = "The user's id")),
    request_body = UserActionBody,
    responses(
        (status = 204, description = "Done"),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not a platform admin, or disabling oneself", body = ErrorBody),
        (status = 404, description = "No such user, live session or token", body = ErrorBody),
        (status = 409, description = "Already disabled / not disabled", body = ErrorBody),
        (status = 422, description = "No reason to disable, or not a known action", body = ErrorBody),
    )
)]
pub async fn act_on_user(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
    body: Result<Json<UserActionBody>, JsonRejection>,
) -> ApiResult<StatusCode> {
    let Json(body) = body?;
    let reason = body.reason.trim();
    state.users.act(&principal, &id, body.action, &body.target, reason).await?;
    Ok(StatusCode::NO_CONTENT)
}
