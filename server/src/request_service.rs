//! The onboarding-request service behind the server functions: validates with the one
//! validator, stores requests without secret values (typed values go straight to Vault), lists
//! what the caller may see and records admins' decisions (four-eyes checked against the stored
//! requester); an approval queues the provisioning job in the same transaction.

use std::sync::Arc;

use app::access::{AppError, Principal};
use app::onboarding::{
    OnboardingRequest, OnboardingRules, RequestStatus, SecretSource, ValidRequest,
};
use app::request_api::ssr::RequestService;
use app::request_api::{
    AdminAction, Decision, DriftSummary, JobSummary, PreviewFile, PullRequestSummary,
    RequestDetail, RequestSummary, StepSummary,
};
use serde_json::json;
use uuid::Uuid;

use crate::artifacts::{ArtifactSettings, ServiceArtifacts};
use crate::audit::{self, Action, Actor, NewEvent, Outcome, Target};
use crate::errors::internal;
use crate::store::{
    JobKind, JobState, NewOnboardingRequest, OnboardingRequestRecord, PullRequestRecord,
    RequestFilter, Store,
};
use crate::vault::Vault;
use crate::vault::provision::ProvidedValues;

/// Longest reason an admin may give.
const MAX_REASON: usize = 1000;

/// Requests over meshport's store.
pub struct Requests {
    pub store: Store,
    pub rules: OnboardingRules,
    /// Where provided secret values go at submission.
    pub vault: Arc<Vault>,
    /// How requests render to Vault paths.
    pub settings: ArtifactSettings,
    /// The GitOps repository previews are compared with, when there is one.
    pub gitops: Option<Arc<crate::gitops::Gitops>>,
}

fn no_such_request() -> AppError {
    AppError::NotFound("No such request.".into())
}

fn summary(record: OnboardingRequestRecord) -> RequestSummary {
    RequestSummary {
        id: record.id.to_string(),
        service: record.service_name,
        namespace: record.namespace,
        team: record.team,
        requested_by: record.requested_by.to_string(),
        status: record.status,
        created_at: record.created_at.to_rfc3339(),
        decided_by: record.decided_by.map(|id| id.to_string()),
        decision_reason: record.decision_reason,
    }
}

#[async_trait::async_trait]
impl RequestService for Requests {
    fn rules(&self) -> OnboardingRules {
        self.rules.clone()
    }

    async fn preview(&self, request: OnboardingRequest) -> Result<Vec<PreviewFile>, AppError> {
        let valid = ValidRequest::new(request, &self.rules)?;
        let artifacts = ServiceArtifacts::build(&valid, &self.settings, None);
        let current = match &self.gitops {
            Some(gitops) => match gitops.current_files(&valid.namespace, &valid.service).await {
                Ok(files) => Some(files),
                Err(error) => {
                    tracing::warn!(%error, "could not read the GitOps repository for a preview");
                    None
                }
            },
            None => None,
        };
        let mut files: Vec<PreviewFile> = Vec::new();
        for file in artifacts.gitops_files().map_err(internal)? {
            let change = current.as_ref().map(|current| {
                match current.iter().find(|(path, _)| *path == file.path) {
                    None => "added",
                    Some((_, old)) if crate::artifacts::same_object(old, &file.contents) => {
                        "unchanged"
                    }
                    Some(_) => "changed",
                }
                .to_owned()
            });
            files.push(PreviewFile { path: file.path, contents: file.contents, change });
        }
        for (path, contents) in current.into_iter().flatten() {
            if !files.iter().any(|f| f.path == path) {
                files.push(PreviewFile { path, contents, change: Some("removed".to_owned()) });
            }
        }
        files.extend(artifacts.vault_files().map_err(internal)?.into_iter().map(|f| PreviewFile {
            path: f.path,
            contents: f.contents,
            change: None,
        }));
        Ok(files)
    }

    async fn submit(
        &self,
        requester: &Principal,
        request: OnboardingRequest,
    ) -> Result<String, AppError> {
        requester.may_submit_for(&request.team)?;
        let valid = ValidRequest::new(request, &self.rules)?;
        let requested_by: Uuid = requester.user_id.parse().map_err(internal)?;
        // Provided secret values never reach the database.
        let spec = serde_json::to_value(valid.without_secret_values()).map_err(internal)?;
        let taken = || {
            AppError::Conflict(format!(
                "{}/{} is already claimed by a live onboarding request (or its Vault names would \
                 clash with one); offboard or reject that first.",
                valid.namespace, valid.service
            ))
        };
        let claimed = self.store.live_request_claiming(&valid.namespace, &valid.service).await?;
        if claimed.is_some() {
            return Err(taken());
        }
        let mut tx = self.store.begin().await?;
        let record = tx
            .create_request(&NewOnboardingRequest {
                service_name: &valid.service,
                namespace: &valid.namespace,
                team: &valid.team,
                requested_by,
                justification: &valid.justification,
                spec: &spec,
            })
            .await
            .map_err(|e| if e.is_unique_violation() { taken() } else { internal(e) })?;
        let details = json!({ "team": valid.team, "image": valid.image, "justification": valid.justification });
        let event = request_event(requester, Action::RequestSubmitted, &record, details);
        audit::record(&mut tx, event).await?;
        // Typed values go to Vault before the request is committed: if Vault refuses them,
        // nothing of the request remains.
        let provided: ProvidedValues = valid
            .secrets
            .iter()
            .filter_map(|secret| match &secret.source {
                SecretSource::Provided { value } => {
                    Some((secret.name.clone(), value.expose().to_owned().into()))
                }
                _ => None,
            })
            .collect();
        if !provided.is_empty() {
            let artifacts = ServiceArtifacts::build(&valid, &self.settings, Some(record.id));
            self.vault.stage_provided(&artifacts, &provided).await.map_err(|error| {
                tracing::error!(%error, "could not write provided secret values to Vault");
                AppError::Internal(
                    "Vault did not take the secret values, so nothing was submitted; try again \
                     shortly, or tell the platform team."
                        .into(),
                )
            })?;
        }
        tx.commit().await?;
        Ok(record.id.to_string())
    }

    async fn list(&self, viewer: &Principal) -> Result<Vec<RequestSummary>, AppError> {
        let filter = RequestFilter {
            teams: (!viewer.sees_all_teams()).then(|| viewer.teams.iter().cloned().collect()),
            ..RequestFilter::default()
        };
        let records = self.store.list_requests(&filter).await?;
        Ok(records.into_iter().map(summary).collect())
    }

    async fn detail(&self, viewer: &Principal, id: &str) -> Result<RequestDetail, AppError> {
        let id: Uuid = id.parse().map_err(|_| no_such_request())?;
        let record = self.visible_request(viewer, id).await?;
        let mut jobs = Vec::new();
        for job in self.store.jobs_of_request(id).await? {
            let steps = self.store.job_steps(job.id).await?;
            jobs.push(JobSummary {
                id: job.id.to_string(),
                kind: job.kind.as_str().to_owned(),
                state: job.state.as_str().to_owned(),
                attempts: job.attempts,
                last_error: job.last_error,
                next_run_at: job.next_run_at.to_rfc3339(),
                steps: steps
                    .into_iter()
                    .map(|step| StepSummary {
                        name: step.step,
                        finished_at: step.finished_at.to_rfc3339(),
                        detail: step.detail,
                    })
                    .collect(),
            });
        }
        let drift = self.store.drift(id).await?.map(|(at, changes)| DriftSummary {
            checked_at: at.to_rfc3339(),
            changes: changes.as_array().cloned().unwrap_or_default(),
        });
        let pull_requests = self
            .store
            .pull_requests_of(id)
            .await?
            .into_iter()
            .map(|pr| PullRequestSummary {
                kind: pr.kind.as_str().to_owned(),
                url: pr.url,
                branch: pr.branch,
                state: pr.state.as_str().to_owned(),
                merge_commit_sha: pr.merge_commit_sha,
                approved_head_sha: pr.approved_head_sha,
                merged_head_sha: pr.merged_head_sha,
                changed_after_approval: pr.changed_after_approval,
            })
            .collect();
        Ok(RequestDetail { request: summary(record), jobs, drift, pull_requests })
    }

    async fn act(&self, admin: &Principal, id: &str, action: AdminAction) -> Result<(), AppError> {
        use app::access::Role;
        if !admin.has(Role::PlatformAdmin) {
            return Err(AppError::Forbidden("Only platform admins act on provisioning.".into()));
        }
        let not_found = || AppError::NotFound("No such request.".into());
        let id: Uuid = id.parse().map_err(|_| not_found())?;
        let record = self.store.request(id).await?.ok_or_else(not_found)?;
        let last_job = self.store.jobs_of_request(id).await?.pop();
        let refused = |why: &str| Err(AppError::Conflict(format!("{why}; nothing was changed.")));
        let mut tx = self.store.begin().await?;
        match action {
            AdminAction::Retry => {
                let Some(job) = last_job.filter(|j| j.state == JobState::Failed) else {
                    return refused("No failed job to retry");
                };
                tx.retry_job(job.id).await?;
                if job.kind == JobKind::Provision {
                    tx.transition_request(id, RequestStatus::Failed, RequestStatus::Provisioning)
                        .await?;
                }
            }
            AdminAction::Cancel => {
                let cancelled = match &last_job {
                    Some(job) => tx.cancel_job(job.id).await?,
                    None => false,
                };
                if !cancelled {
                    return refused("No queued or failed job to cancel");
                }
            }
            AdminAction::Reconcile | AdminAction::Offboard => {
                let live = matches!(record.status, RequestStatus::PrOpen | RequestStatus::Merged)
                    || (action == AdminAction::Offboard && record.status == RequestStatus::Failed);
                let busy = last_job
                    .is_some_and(|j| matches!(j.state, JobState::Queued | JobState::Running));
                if busy {
                    return refused("A job of this request is still queued or running");
                }
                if !live {
                    return refused(&format!(
                        "The request is {}: only provisioned services can be reconciled or \
                         offboarded",
                        record.status
                    ));
                }
                let kind = if action == AdminAction::Offboard {
                    JobKind::Offboard
                } else {
                    JobKind::Reconcile
                };
                tx.enqueue_job(id, kind).await?;
            }
            AdminAction::ApproveHead => {
                // Four-eyes, as for the decision: never the requester.
                admin.may_decide(&record.requested_by.to_string())?;
                self.approve_merged_heads(&mut tx, admin, id).await?;
                return Ok(tx.commit().await?);
            }
        }
        let details = json!({ "action": action });
        audit::record(&mut tx, request_event(admin, Action::ProvisioningStep, &record, details))
            .await?;
        Ok(tx.commit().await?)
    }

    async fn decide(
        &self,
        admin: &Principal,
        id: &str,
        decision: Decision,
        reason: &str,
    ) -> Result<(), AppError> {
        admin.may_make_decisions()?;
        let not_found = || AppError::NotFound("No such request.".into());
        let id: Uuid = id.parse().map_err(|_| not_found())?;
        let record = self.store.request(id).await?.ok_or_else(not_found)?;
        admin.may_decide(&record.requested_by.to_string())?;
        if decision == Decision::Reject && reason.is_empty() {
            return Err(AppError::Invalid(
                "Give a reason for the rejection; the requester reads it.".into(),
            ));
        }
        if reason.chars().count() > MAX_REASON {
            return Err(AppError::Invalid(format!(
                "Keep the reason under {MAX_REASON} characters."
            )));
        }
        let to = match decision {
            Decision::Approve => RequestStatus::Approved,
            Decision::Reject => RequestStatus::Rejected,
        };
        let admin_id: Uuid = admin.user_id.parse().map_err(internal)?;
        let reason = (!reason.is_empty()).then_some(reason);
        let mut tx = self.store.begin().await?;
        if !tx.decide_request(id, admin_id, to, reason).await? {
            return Err(AppError::Conflict(format!(
                "The request is {} already; nothing was changed.",
                record.status
            )));
        }
        let action = match decision {
            Decision::Approve => Action::RequestApproved,
            Decision::Reject => Action::RequestRejected,
        };
        let details = json!({ "reason": reason, "requested_by": record.requested_by });
        audit::record(&mut tx, request_event(admin, action, &record, details)).await?;
        if decision == Decision::Approve {
            tx.enqueue_job(id, JobKind::Provision).await?;
        }
        tx.commit().await?;
        if decision == Decision::Reject {
            self.discard_staged_values(&record).await;
        }
        Ok(())
    }
}

impl Requests {
    /// The request `id` if `viewer` may see it. Invisible and missing look alike, so ids of
    /// other teams' requests are not confirmed.
    async fn visible_request(
        &self,
        viewer: &Principal,
        id: Uuid,
    ) -> Result<OnboardingRequestRecord, AppError> {
        match self.store.request(id).await? {
            Some(record) if viewer.may_view_team(&record.team) => Ok(record),
            _ => Err(no_such_request()),
        }
    }

    /// The pull requests of a request `viewer` may see, oldest first.
    pub async fn pull_requests(
        &self,
        viewer: &Principal,
        id: Uuid,
    ) -> Result<Vec<PullRequestRecord>, AppError> {
        self.visible_request(viewer, id).await?;
        Ok(self.store.pull_requests_of(id).await?)
    }

    /// Approves, inside `tx`, the heads the request's pull requests were merged with after
    /// commits were pushed to their branches following approval; a conflict when none waits.
    async fn approve_merged_heads(
        &self,
        tx: &mut crate::store::Tx,
        admin: &Principal,
        id: Uuid,
    ) -> Result<(), AppError> {
        let flagged: Vec<PullRequestRecord> = self
            .store
            .pull_requests_of(id)
            .await?
            .into_iter()
            .filter(|pr| pr.changed_after_approval)
            .collect();
        if flagged.iter().any(|pr| pr.merged_head_sha.is_none()) {
            return Err(AppError::Conflict(
                "The forge did not report which head was merged, so there is no head to approve; \
                 nothing was changed."
                    .into(),
            ));
        }
        let mut approved = 0;
        for pr in &flagged {
            if crate::gitops::approve_merged_head(tx, pr, Actor::from(admin)).await?.is_some() {
                approved += 1;
            }
        }
        if approved == 0 {
            return Err(AppError::Conflict(
                "No pull request of this request was merged with a head awaiting approval; \
                 nothing was changed."
                    .into(),
            ));
        }
        Ok(())
    }

    /// Destroys the provided values a rejected request staged in Vault. A failure is logged:
    /// the values stay unreachable (no role reads them) and an offboarding removes them.
    async fn discard_staged_values(&self, record: &OnboardingRequestRecord) {
        let Ok(artifacts) =
            ServiceArtifacts::from_stored(&record.spec, &self.rules, &self.settings, record.id)
        else {
            return;
        };
        if let Err(error) = self.vault.discard_staged(&artifacts).await {
            tracing::error!(%error, request = %record.id, "could not destroy a rejected request's secret values");
        }
    }
}

fn request_event(
    actor: &Principal,
    action: Action,
    record: &OnboardingRequestRecord,
    details: serde_json::Value,
) -> NewEvent {
    NewEvent {
        actor: Actor::from(actor),
        action,
        target: Target::new("service", &record.namespace, &record.service_name),
        request_id: Some(record.id),
        details,
        outcome: Outcome::Success,
    }
}
