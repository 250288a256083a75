//! Onboarding requests as server functions: submit (developers, for their own teams), list
//! (what the caller may see) and decide (platform admins, never on their own request). Each
//! checks the caller on the server, then calls the service the server provides as context.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::access::AppError;
use crate::onboarding::{
    ChangeKind, OnboardForm, OnboardingRequest, OnboardingRules, RequestStatus, SpecDifference,
};

/// Which page of a long list: the items after the cursor `after` (the previous page's
/// [`Page::next`]; none: the first page), at most `limit` of them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::IntoParams))]
pub struct PageRequest {
    /// The cursor of the page to show: the previous page's `next`.
    pub after: Option<String>,
    /// At most this many items (each list has its default and its maximum).
    pub limit: Option<u32>,
}

/// One page of a list, in a stable order, and the cursor of the next page (none: the last).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// How many items a list page of the portal shows.
pub const PAGE_SIZE: u32 = 50;

/// A request in a list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct RequestSummary {
    pub id: String,
    /// What the change set does to its service.
    pub kind: ChangeKind,
    /// The change set whose spec it replaces (modify, offboard).
    pub base_change: Option<String>,
    /// SHA-256 over everything it writes: what an approval binds to.
    pub digest: Option<String>,
    /// The service version it became when merged.
    pub version: Option<i32>,
    pub service: String,
    pub namespace: String,
    pub team: String,
    /// User id of the requester.
    pub requested_by: String,
    pub status: RequestStatus,
    /// RFC 3339.
    pub created_at: String,
    /// User id of the deciding admin.
    pub decided_by: Option<String>,
    pub decision_reason: Option<String>,
}

/// A request with its provisioning: the summary, then each job (provisioning, offboarding)
/// with the steps it finished.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct RequestDetail {
    pub request: RequestSummary,
    pub jobs: Vec<JobSummary>,
    /// The latest drift check of a provisioned service.
    pub drift: Option<DriftSummary>,
    /// Its pull requests (onboarding, then offboarding), as the forge last reported them.
    pub pull_requests: Vec<PullRequestSummary>,
    /// What it changes in the spec it replaces (empty for an onboarding).
    pub differences: Vec<SpecDifference>,
    /// The files it adds, changes or removes against the rendering it replaces (every file
    /// for an onboarding; Vault objects named by their API path).
    pub files: Vec<PreviewFile>,
}

/// A service that is being onboarded or runs: its live spec, version and history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ServiceDetail {
    pub namespace: String,
    pub service: String,
    pub team: String,
    /// How many change sets have merged.
    pub version: i32,
    /// The spec Vault holds (without secret values); `None` until the onboarding is applied.
    #[cfg_attr(feature = "ssr", schema(value_type = Option<Object>))]
    pub spec: Option<OnboardingRequest>,
    /// The change set in flight, if any: a second one waits until it is merged or ends.
    pub open_change: Option<String>,
    /// Every change set of the service, newest first; merged ones carry their version.
    pub history: Vec<RequestSummary>,
}

/// What a proposed change of a live service would do, before it is submitted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ChangePreview {
    /// Spec fields that differ from the live version.
    pub differences: Vec<SpecDifference>,
    /// Files that differ from the live version's rendering; `change` is `added`, `changed` or
    /// `removed`, and `repository` says how each compares with the GitOps repository's file.
    pub files: Vec<PreviewFile>,
    /// Vault objects that the apply would write (`create` or `update`) or retire.
    pub vault: Vec<VaultDifference>,
}

/// One Vault object a change writes or retires, against what Vault holds now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct VaultDifference {
    pub path: String,
    /// `create`, `update` or `retire`.
    pub change: String,
}

/// A pull request meshport opened for the request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct PullRequestSummary {
    /// `onboarding` or `offboarding`.
    pub kind: String,
    pub url: String,
    pub branch: String,
    /// `open`, `merged` or `closed`.
    pub state: String,
    /// The commit that merged it.
    pub merge_commit_sha: Option<String>,
    /// The head commit the approval covers: the commit meshport pushed for the approved
    /// change, or a head a platform admin approved later.
    #[serde(default)]
    pub approved_head_sha: String,
    /// The branch's head when it was merged.
    #[serde(default)]
    pub merged_head_sha: Option<String>,
    /// Merged with commits pushed to the branch after approval: the request is not recorded
    /// as merged until a platform admin (not the requester) approves that head.
    #[serde(default)]
    pub changed_after_approval: bool,
}

/// What the latest drift check found: the Vault changes that would restore the approved state
/// (none: in sync).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct DriftSummary {
    /// RFC 3339.
    pub checked_at: String,
    /// Each change: `path`, `kind` (`create` or `update`) and the drifted `fields`.
    #[cfg_attr(feature = "ssr", schema(value_type = Vec<Object>))]
    pub changes: Vec<serde_json::Value>,
}

/// What a platform admin can do to a request after its approval.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AdminAction {
    /// Run a failed job again.
    Retry,
    /// Give up a queued or failed job.
    Cancel,
    /// Write the service's Vault objects again where they drifted.
    Reconcile,
    /// Remove the service: a pull request deleting its manifests, then its Vault role and
    /// policy.
    Offboard,
    /// Approve the head a pull request was merged with after commits were pushed to its branch
    /// following approval (never the requester); an onboarding's request then becomes merged.
    ApproveHead,
}

/// One provisioning or offboarding run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct JobSummary {
    pub id: String,
    /// `provision` or `offboard`.
    pub kind: String,
    /// `queued`, `running`, `done`, `failed` or `cancelled`.
    pub state: String,
    /// Runs so far.
    pub attempts: i32,
    /// The error that stopped the last run.
    pub last_error: Option<String>,
    /// When a queued job runs next (RFC 3339).
    pub next_run_at: String,
    pub steps: Vec<StepSummary>,
}

/// A finished step and what it did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct StepSummary {
    /// For example `vault_policy` or `pull_request`.
    pub name: String,
    /// RFC 3339.
    pub finished_at: String,
    /// What changed: Vault paths, the pull request's URL.
    #[cfg_attr(feature = "ssr", schema(value_type = Object))]
    pub detail: serde_json::Value,
}

/// An admin's decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum Decision {
    Approve,
    Reject,
}

/// Submits a request; returns its id. Developers only, for their own teams; the validator runs
/// again here whatever the browser said.
#[server(endpoint = "submit_request", input = leptos::server_fn::codec::Json)]
pub async fn submit_request(request: OnboardingRequest) -> Result<String, AppError> {
    use crate::access::ssr;
    let principal = ssr::require_principal()?;
    service()?.submit(&principal, request).await.map_err(ssr::fail)
}

/// The requests the caller may see: all for admins and auditors, their teams' for developers.
/// The newest 100; [`requests_page`] pages through all of them.
#[server(endpoint = "list_requests")]
pub async fn list_requests() -> Result<Vec<RequestSummary>, AppError> {
    use crate::access::ssr;
    let principal = ssr::require_principal()?;
    let page = service()?.list(&principal, PageRequest::default()).await.map_err(ssr::fail)?;
    Ok(page.items)
}

/// A page of the requests the caller may see, newest first, from the cursor `after`.
#[server(endpoint = "requests_page")]
pub async fn requests_page(after: Option<String>) -> Result<Page<RequestSummary>, AppError> {
    use crate::access::ssr;
    let principal = ssr::require_principal()?;
    let page = PageRequest { after, limit: Some(PAGE_SIZE) };
    service()?.list(&principal, page).await.map_err(ssr::fail)
}

/// Approves or rejects a submitted request (a rejection needs a reason). Platform admins only,
/// and never the request's own author.
#[server(endpoint = "decide_request", input = leptos::server_fn::codec::Json)]
pub async fn decide_request(
    id: String,
    decision: Decision,
    reason: String,
) -> Result<(), AppError> {
    use crate::access::{Role, ssr};
    let principal = ssr::require_role(Role::PlatformAdmin)?;
    service()?.decide(&principal, &id, decision, reason.trim()).await.map_err(ssr::fail)
}

/// A file a request would create: a manifest, or a Vault object named by its API path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct PreviewFile {
    pub path: String,
    pub contents: String,
    /// Against the GitOps repository's base branch: `added`, `changed`, `unchanged` or
    /// `removed` (manifests only; `None` for Vault objects or when the repository is out of
    /// reach). For a change set: against the rendering of the version it replaces.
    pub change: Option<String>,
    /// For a change set's manifests: against the GitOps repository's base branch
    /// (`unchanged`, `changed`, `missing`), so hand edits there show up.
    #[serde(default)]
    pub repository: Option<String>,
}

/// The rules the onboarding form is judged by, so the browser runs the same validator.
#[server(endpoint = "form_rules")]
pub async fn form_rules() -> Result<OnboardingRules, AppError> {
    Ok(service()?.rules())
}

/// Every artifact the form would create, rendered by the server. Only for a caller who may
/// submit for the form's team.
#[server(endpoint = "preview_form")]
pub async fn preview_form(form: OnboardForm) -> Result<Vec<PreviewFile>, AppError> {
    use crate::access::ssr;
    let principal = ssr::require_principal()?;
    let request = form
        .to_request()
        .map_err(|errors| ssr::fail(crate::onboarding::ValidationErrors(errors).into()))?;
    service()?.preview(&principal, request).await.map_err(ssr::fail)
}

/// Submits the onboarding form (a plain form post, so it works without JavaScript) and goes
/// to the new request's page. Developers only, for their own teams.
#[server(endpoint = "submit_form")]
pub async fn submit_form(form: OnboardForm) -> Result<String, AppError> {
    use crate::access::ssr;
    let principal = ssr::require_principal()?;
    let request = form
        .to_request()
        .map_err(|errors| ssr::fail(crate::onboarding::ValidationErrors(errors).into()))?;
    let id = service()?.submit(&principal, request).await.map_err(ssr::fail)?;
    leptos_axum::redirect(&format!("/requests/{id}"));
    Ok(id)
}

/// One request with its provisioning, for whoever may see it.
#[server(endpoint = "get_request")]
pub async fn get_request(id: String) -> Result<RequestDetail, AppError> {
    use crate::access::ssr;
    let principal = ssr::require_principal()?;
    service()?.detail(&principal, &id).await.map_err(ssr::fail)
}

/// Where a request's provisioning stands, as one string that changes whenever the request's
/// page would: its status, each job's state, attempts and finished steps, its pull requests'
/// states. The page's island compares it rather than fetching the whole [`RequestDetail`].
#[server(endpoint = "request_progress")]
pub async fn request_progress(id: String) -> Result<String, AppError> {
    Ok(get_request(id).await?.progress())
}

impl RequestDetail {
    /// See [`request_progress`].
    pub fn progress(&self) -> String {
        let jobs =
            self.jobs.iter().map(|j| format!("{}:{}:{}", j.state, j.attempts, j.steps.len()));
        let pulls = self.pull_requests.iter().map(|pr| pr.state.clone());
        std::iter::once(self.request.status.as_str().to_owned())
            .chain(jobs)
            .chain(pulls)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Whether provisioning may still change the page: approved, provisioning, or a job
    /// queued or running.
    pub fn running(&self) -> bool {
        matches!(self.request.status, RequestStatus::Approved | RequestStatus::Provisioning)
            || self.jobs.iter().any(|j| j.state == "queued" || j.state == "running")
    }
}

/// What the buttons of a request's page do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PageAction {
    Approve,
    Reject,
    Retry,
    Cancel,
    Reconcile,
    Offboard,
    ApproveHead,
}

/// A platform admin's decision or action from the request page. A plain form post, so it
/// works without JavaScript; the same checks as the API apply (four-eyes, states).
#[server(endpoint = "act_on_request")]
pub async fn act_on_request(
    id: String,
    action: PageAction,
    reason: String,
) -> Result<(), AppError> {
    use crate::access::{Role, ssr};
    let principal = ssr::require_role(Role::PlatformAdmin)?;
    let service = service()?;
    let done = match action {
        PageAction::Approve => {
            service.decide(&principal, &id, Decision::Approve, reason.trim()).await
        }
        PageAction::Reject => {
            service.decide(&principal, &id, Decision::Reject, reason.trim()).await
        }
        PageAction::Retry => service.act(&principal, &id, AdminAction::Retry).await,
        PageAction::Cancel => service.act(&principal, &id, AdminAction::Cancel).await,
        PageAction::Reconcile => service.act(&principal, &id, AdminAction::Reconcile).await,
        PageAction::Offboard => service.act(&principal, &id, AdminAction::Offboard).await,
        PageAction::ApproveHead => service.act(&principal, &id, AdminAction::ApproveHead).await,
    };
    done.map_err(ssr::fail)
}

/// The services being onboarded or live that the caller may see (all for admins and auditors,
/// their teams' for developers), without spec or history.
/// The first 1,000 by namespace and name; [`services_page`] pages through all of them.
#[server(endpoint = "list_services")]
pub async fn list_services() -> Result<Vec<ServiceDetail>, AppError> {
    use crate::access::ssr;
    let principal = ssr::require_principal()?;
    let page = requests()?.services(&principal, PageRequest::default()).await;
    Ok(page.map_err(ssr::fail)?.items)
}

/// A page of the services the caller may see, by namespace and name, from the cursor `after`.
#[server(endpoint = "services_page")]
pub async fn services_page(after: Option<String>) -> Result<Page<ServiceDetail>, AppError> {
    use crate::access::ssr;
    let principal = ssr::require_principal()?;
    let page = PageRequest { after, limit: Some(PAGE_SIZE) };
    requests()?.services(&principal, page).await.map_err(ssr::fail)
}

/// A service with its live spec and history, for whoever may see its team.
#[server(endpoint = "get_service")]
pub async fn get_service(namespace: String, service: String) -> Result<ServiceDetail, AppError> {
    use crate::access::ssr;
    let principal = ssr::require_principal()?;
    requests()?.service(&principal, &namespace, &service).await.map_err(ssr::fail)
}

/// What the change form would do to the live service: spec, files and Vault differences.
#[server(endpoint = "preview_change")]
pub async fn preview_change(
    namespace: String,
    service: String,
    form: OnboardForm,
) -> Result<ChangePreview, AppError> {
    use crate::access::ssr;
    let principal = ssr::require_principal()?;
    let request = form
        .to_request()
        .map_err(|errors| ssr::fail(crate::onboarding::ValidationErrors(errors).into()))?;
    requests()?.preview_change(&principal, &namespace, &service, request).await.map_err(ssr::fail)
}

/// Submits a change of a live service (a plain form post) and goes to the change set's page.
/// Developers of the service's team; a platform admin other than the requester approves it.
#[server(endpoint = "submit_change")]
pub async fn submit_change(
    namespace: String,
    service: String,
    form: OnboardForm,
) -> Result<String, AppError> {
    use crate::access::ssr;
    let principal = ssr::require_principal()?;
    let request = form
        .to_request()
        .map_err(|errors| ssr::fail(crate::onboarding::ValidationErrors(errors).into()))?;
    let id = requests()?
        .propose_change(&principal, &namespace, &service, request)
        .await
        .map_err(ssr::fail)?;
    leptos_axum::redirect(&format!("/requests/{id}"));
    Ok(id)
}

/// Asks for a service's offboarding (its team's developers or a platform admin); a second
/// platform admin approves it. Goes to the change set's page.
#[server(endpoint = "request_offboarding")]
pub async fn request_offboarding(
    namespace: String,
    service: String,
    justification: String,
) -> Result<String, AppError> {
    use crate::access::ssr;
    let principal = ssr::require_principal()?;
    let id = requests()?
        .propose_offboarding(&principal, &namespace, &service, justification.trim())
        .await
        .map_err(ssr::fail)?;
    leptos_axum::redirect(&format!("/requests/{id}"));
    Ok(id)
}

/// Withdraws a change set not yet applied: its requester while it waits for a decision, a
/// platform admin also after a cancelled or failed provisioning.
#[server(endpoint = "withdraw_request")]
pub async fn withdraw_request(id: String) -> Result<(), AppError> {
    use crate::access::ssr;
    let principal = ssr::require_principal()?;
    requests()?.withdraw(&principal, &id).await.map_err(ssr::fail)
}

#[cfg(feature = "ssr")]
fn requests() -> Result<std::sync::Arc<dyn ssr::RequestService>, AppError> {
    service()
}

#[cfg(feature = "ssr")]
fn service() -> Result<std::sync::Arc<dyn ssr::RequestService>, AppError> {
    use_context::<std::sync::Arc<dyn ssr::RequestService>>()
        .ok_or_else(|| AppError::Internal("The request service is not configured.".into()))
}

/// The service the server implements.
#[cfg(feature = "ssr")]
pub mod ssr {
    use super::{
        AdminAction, ChangePreview, Decision, RequestDetail, RequestSummary, ServiceDetail,
    };
    use crate::access::{AppError, Principal};
    use crate::onboarding::OnboardingRequest;

    /// Stores and moves requests; applies the rules that need stored data (visibility by team,
    /// four-eyes against the stored requester).
    #[async_trait::async_trait]
    pub trait RequestService: Send + Sync {
        /// The rules requests are judged by.
        fn rules(&self) -> crate::onboarding::OnboardingRules;
        /// Every file the request would create, for a caller who may submit for its team; the
        /// validator's errors if it is invalid.
        async fn preview(
            &self,
            requester: &Principal,
            request: OnboardingRequest,
        ) -> Result<Vec<super::PreviewFile>, AppError>;
        async fn submit(
            &self,
            requester: &Principal,
            request: OnboardingRequest,
        ) -> Result<String, AppError>;
        /// A page of the requests the viewer may see, newest first.
        async fn list(
            &self,
            viewer: &Principal,
            page: super::PageRequest,
        ) -> Result<super::Page<RequestSummary>, AppError>;
        /// One request the viewer may see, with its provisioning.
        async fn detail(&self, viewer: &Principal, id: &str) -> Result<RequestDetail, AppError>;
        /// A platform admin's action on a request after its approval.
        async fn act(
            &self,
            admin: &Principal,
            id: &str,
            action: AdminAction,
        ) -> Result<(), AppError>;
        async fn decide(
            &self,
            admin: &Principal,
            id: &str,
            decision: Decision,
            reason: &str,
        ) -> Result<(), AppError>;
        /// The services the viewer may see, without spec or history.
        async fn services(
            &self,
            viewer: &Principal,
            page: super::PageRequest,
        ) -> Result<super::Page<ServiceDetail>, AppError>;
        /// A service the viewer may see: live spec, version, history.
        async fn service(
            &self,
            viewer: &Principal,
            namespace: &str,
            service: &str,
        ) -> Result<ServiceDetail, AppError>;
        /// What a change of the live service would do; the validator's errors if invalid.
        async fn preview_change(
            &self,
            requester: &Principal,
            namespace: &str,
            service: &str,
            request: OnboardingRequest,
        ) -> Result<ChangePreview, AppError>;
        /// Submits a modify change set; returns its id.
        async fn propose_change(
            &self,
            requester: &Principal,
            namespace: &str,
            service: &str,
            request: OnboardingRequest,
        ) -> Result<String, AppError>;
        /// Submits an offboard change set; returns its id.
        async fn propose_offboarding(
            &self,
            requester: &Principal,
            namespace: &str,
            service: &str,
            justification: &str,
        ) -> Result<String, AppError>;
        /// Withdraws a change set that is not applied.
        async fn withdraw(&self, caller: &Principal, id: &str) -> Result<(), AppError>;
    }
}
