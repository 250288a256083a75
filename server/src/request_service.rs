//! The change-set service behind the server functions and the REST API: onboardings, changes of
//! live services and offboardings are all change sets, validated by the one validator, stored
//! without secret values (typed values are staged in Vault), decided by a second person (checked
//! against the stored requester) and applied by the job engine, queued in the deciding
//! transaction. A service has at most one change set in flight.

use std::sync::Arc;

use app::access::Role;
use app::access::{AppError, Principal};
use app::onboarding::{
    ChangeKind, OnboardingRequest, OnboardingRules, RequestStatus, SecretSource, ValidRequest,
    spec_differences,
};
use app::request_api::ssr::RequestService;
use app::request_api::{
    AdminAction, ChangePreview, Decision, DriftSummary, JobSummary, Page, PageRequest, PreviewFile,
    PullRequestSummary, RequestDetail, RequestSummary, ServiceDetail, StepSummary, VaultDifference,
};
use serde_json::json;
use uuid::Uuid;

use crate::artifacts::{ArtifactSettings, ServiceArtifacts, change_digest, dropped_secrets};
use crate::audit::{self, Action, Actor, NewEvent, Outcome, Target};
use crate::errors::internal;
use crate::notify::{Event, Notifications};
use crate::store::{
    JobKind, JobState, NewOnboardingRequest, OnboardingRequestRecord, PullRequestRecord,
    RequestFilter, ServiceRecord, Store, StoreError, Tx,
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
    /// Queues who hears of submissions and decisions, in their transactions.
    pub notifications: Arc<Notifications>,
}

fn no_such_request() -> AppError {
    AppError::NotFound("No such request.".into())
}

fn no_such_service() -> AppError {
    AppError::NotFound("No such service.".into())
}

fn summary(record: OnboardingRequestRecord) -> RequestSummary {
    RequestSummary {
        id: record.id.to_string(),
        kind: record.kind,
        base_change: record.base_change.map(|id| id.to_string()),
        digest: record.digest,
        version: record.version,
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

    async fn preview(
        &self,
        requester: &Principal,
        request: OnboardingRequest,
    ) -> Result<Vec<PreviewFile>, AppError> {
        let valid = ValidRequest::new(request, &self.rules)?;
        requester.may_submit_for(&valid.team)?;
        let artifacts = ServiceArtifacts::build(&valid, &self.settings, None);
        // Compared only with the folder of a service the caller may see: another team's files,
        // or files no service owns, are not the caller's to read.
        let owned = self.store.service(&valid.namespace, &valid.service).await?;
        let visible = owned.is_some_and(|service| requester.may_view_team(&service.team));
        let current = match &self.gitops {
            Some(gitops) if visible => {
                match gitops.current_files(&valid.namespace, &valid.service).await {
                    Ok(files) => Some(files),
                    Err(error) => {
                        tracing::warn!(%error, "could not read the GitOps repository for a preview");
                        None
                    }
                }
            }
            Some(_) => Some(Vec::new()),
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
            files.push(PreviewFile {
                path: file.path,
                contents: file.contents,
                change,
                repository: None,
            });
        }
        for (path, contents) in current.into_iter().flatten() {
            if !files.iter().any(|f| f.path == path) {
                files.push(PreviewFile {
                    path,
                    contents,
                    change: Some("removed".to_owned()),
                    repository: None,
                });
            }
        }
        files.extend(artifacts.vault_files().map_err(internal)?.into_iter().map(|f| PreviewFile {
            path: f.path,
            contents: f.contents,
            change: None,
            repository: None,
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
        let id = Uuid::new_v4();
        let artifacts = ServiceArtifacts::build(&valid, &self.settings, Some(id));
        let digest = change_digest(ChangeKind::Onboard, &artifacts, None).map_err(internal)?;
        let tx = self.store.begin().await?;
        let record = self
            .store_change(tx, requester, &valid, ChangeKind::Onboard, None, id, &digest, &artifacts)
            .await?;
        Ok(record.id.to_string())
    }

    async fn list(
        &self,
        viewer: &Principal,
        page: PageRequest,
    ) -> Result<Page<RequestSummary>, AppError> {
        let limit = page.limit.unwrap_or(100).clamp(1, 500);
        let after = page.after.as_deref().map(cursor::parse_request).transpose()?;
        let filter = RequestFilter {
            teams: (!viewer.sees_all_teams()).then(|| viewer.teams.iter().cloned().collect()),
            // One more than shown: whether there is a next page.
            limit: Some(limit + 1),
            after,
            ..RequestFilter::default()
        };
        let records = self.store.list_requests(&filter).await?;
        let (records, next) = cursor::page(records, limit, |r| cursor::request(r.created_at, r.id));
        Ok(Page { items: records.into_iter().map(summary).collect(), next })
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
        let (differences, files) = self.change_contents(&record).await?;
        Ok(RequestDetail {
            request: summary(record),
            jobs,
            drift,
            pull_requests,
            differences,
            files,
        })
    }

    async fn act(&self, admin: &Principal, id: &str, action: AdminAction) -> Result<(), AppError> {
        if !admin.has(Role::PlatformAdmin) {
            return Err(AppError::Forbidden("Only platform admins act on provisioning.".into()));
        }
        let id: Uuid = id.parse().map_err(|_| no_such_request())?;
        let record = self.store.request(id).await?.ok_or_else(no_such_request)?;
        if action == AdminAction::Offboard {
            // Offboarding is a change set of its own, decided by a second admin.
            let justification = format!(
                "Offboarding of {}/{} asked for from change set {}.",
                record.namespace, record.service_name, record.id
            );
            self.propose_offboarding(
                admin,
                &record.namespace,
                &record.service_name,
                &justification,
            )
            .await?;
            return Ok(());
        }
        let last_job = self.store.jobs_of_request(id).await?.pop();
        let refused = |why: &str| Err(AppError::Conflict(format!("{why}; nothing was changed.")));
        let mut tx = self.store.begin().await?;
        match action {
            AdminAction::Retry => {
                let Some(job) =
                    last_job.filter(|j| matches!(j.state, JobState::Failed | JobState::Cancelled))
                else {
                    return refused("No failed or cancelled job to retry");
                };
                if job.kind != JobKind::Reconcile && record.status != RequestStatus::Failed {
                    return refused(&format!("The change set is {}", record.status));
                }
                tx.retry_job(job.id).await?;
                if job.kind != JobKind::Reconcile {
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
                // The change set waits as failed: an admin retries or withdraws it.
                for from in [RequestStatus::Approved, RequestStatus::Provisioning] {
                    if tx.transition_request(id, from, RequestStatus::Failed).await? {
                        break;
                    }
                }
            }
            AdminAction::Reconcile => {
                let live = matches!(record.status, RequestStatus::PrOpen | RequestStatus::Merged)
                    && record.kind != ChangeKind::Offboard;
                let busy = last_job
                    .is_some_and(|j| matches!(j.state, JobState::Queued | JobState::Running));
                if busy {
                    return refused("A job of this change set is still queued or running");
                }
                if !live {
                    return refused(&format!(
                        "The change set is {}: only applied ones can be reconciled",
                        record.status
                    ));
                }
                tx.enqueue_job(id, JobKind::Reconcile).await?;
            }
            AdminAction::ApproveHead => {
                // Four-eyes, as for the decision: never the requester.
                admin.may_decide(&record.requested_by.to_string())?;
                self.approve_merged_heads(&mut tx, admin, id).await?;
                return Ok(tx.commit().await?);
            }
            AdminAction::Offboard => unreachable!("handled above"),
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
        let id: Uuid = id.parse().map_err(|_| no_such_request())?;
        let record = self.store.request(id).await?.ok_or_else(no_such_request)?;
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
        let details = json!({
            "reason": reason,
            "requested_by": record.requested_by,
            "kind": record.kind,
            "digest": record.digest,
        });
        audit::record(&mut tx, request_event(admin, action, &record, details)).await?;
        let approved = decision == Decision::Approve;
        self.notifications
            .queue(&mut tx, &Event::Decided { request: &record, approved, reason })
            .await?;
        if decision == Decision::Approve {
            let job = match record.kind {
                // An upgrade's provisioning skips Vault: only its pull request runs.
                ChangeKind::Onboard | ChangeKind::Modify | ChangeKind::Upgrade => {
                    JobKind::Provision
                }
                ChangeKind::Offboard => JobKind::Offboard,
            };
            tx.enqueue_job(id, job).await?;
        }
        tx.commit().await?;
        if decision == Decision::Reject {
            self.discard_staged_values(admin, &record).await;
        }
        Ok(())
    }

    async fn services(
        &self,
        viewer: &Principal,
        page: PageRequest,
    ) -> Result<Page<ServiceDetail>, AppError> {
        let limit = page.limit.unwrap_or(1000).clamp(1, 1000);
        let after = page.after.as_deref().map(cursor::parse_service).transpose()?;
        let teams: Option<Vec<String>> =
            (!viewer.sees_all_teams()).then(|| viewer.teams.iter().cloned().collect());
        let after = after.as_ref().map(|(n, s)| (n.as_str(), s.as_str()));
        let records = self.store.services_page(teams.as_deref(), after, limit + 1).await?;
        let (records, next) =
            cursor::page(records, limit, |r| cursor::service(&r.namespace, &r.service_name));
        let items = records
            .into_iter()
            .map(|s| ServiceDetail {
                namespace: s.namespace,
                service: s.service_name,
                team: s.team,
                version: s.version,
                spec: None,
                open_change: s.open_change.map(|id| id.to_string()),
                history: Vec::new(),
            })
            .collect();
        Ok(Page { items, next })
    }

    async fn service(
        &self,
        viewer: &Principal,
        namespace: &str,
        service: &str,
    ) -> Result<ServiceDetail, AppError> {
        let history = self.store.changes_of_service(namespace, service).await?;
        let found = self.store.service(namespace, service).await?;
        let team = match (&found, history.first()) {
            (Some(found), _) => found.team.clone(),
            (None, Some(latest)) => latest.team.clone(),
            (None, None) => return Err(no_such_service()),
        };
        if !viewer.may_view_team(&team) {
            return Err(no_such_service());
        }
        let live = found.as_ref().and_then(|s| s.live_change);
        let spec = history.iter().find(|change| Some(change.id) == live).and_then(|change| {
            serde_json::from_value::<OnboardingRequest>(change.spec.clone()).ok()
        });
        Ok(ServiceDetail {
            namespace: namespace.to_owned(),
            service: service.to_owned(),
            team,
            version: found.as_ref().map_or(0, |s| s.version),
            spec,
            open_change: found.as_ref().and_then(|s| s.open_change).map(|id| id.to_string()),
            history: history.into_iter().map(summary).collect(),
        })
    }

    async fn preview_change(
        &self,
        requester: &Principal,
        namespace: &str,
        service: &str,
        request: OnboardingRequest,
    ) -> Result<ChangePreview, AppError> {
        let (found, live) = self.live_service(requester, namespace, service).await?;
        let live_spec = stored_spec(&live)?;
        let valid = ValidRequest::change_of(request, &live_spec, &self.rules)?;
        let proposed = self.artifacts_of(&found, &valid)?;
        let current = self.stored_artifacts(&found, &live)?;
        let differences = spec_differences(
            &live.spec,
            &serde_json::to_value(valid.without_secret_values()).map_err(internal)?,
        );
        let mut files = file_changes(&current, &proposed)?;
        if let Some(gitops) = &self.gitops {
            match gitops.current_files(namespace, service).await {
                Ok(repository) => {
                    for file in files.iter_mut().filter(|f| f.path.starts_with("manifests/")) {
                        let old = current_contents(&current, &file.path);
                        let on_base = repository.iter().find(|(path, _)| *path == file.path);
                        file.repository = Some(
                            match (on_base, old) {
                                (None, _) => "missing",
                                (Some((_, base)), Some(old))
                                    if crate::artifacts::same_object(base, &old) =>
                                {
                                    "unchanged"
                                }
                                (Some(_), _) => "changed",
                            }
                            .to_owned(),
                        );
                    }
                }
                Err(error) => tracing::warn!(%error, "could not read the GitOps repository"),
            }
        }
        let mut vault: Vec<VaultDifference> = self
            .vault
            .plan(&proposed, &self.store, found.origin)
            .await
            .map_err(internal)?
            .into_iter()
            .map(|change| VaultDifference {
                path: change.path,
                change: match change.kind {
                    crate::vault::provision::ChangeKind::Create => "create",
                    crate::vault::provision::ChangeKind::Update { .. } => "update",
                    crate::vault::provision::ChangeKind::Destroy => "destroy",
                }
                .to_owned(),
            })
            .collect();
        vault.extend(dropped_secrets(&current, &proposed).map(|secret| VaultDifference {
            path: secret.metadata_path(),
            change: "retire".to_owned(),
        }));
        Ok(ChangePreview { differences, files, vault })
    }

    async fn propose_change(
        &self,
        requester: &Principal,
        namespace: &str,
        service: &str,
        request: OnboardingRequest,
    ) -> Result<String, AppError> {
        let (found, live) = self.live_service(requester, namespace, service).await?;
        requester.may_submit_for(&found.team)?;
        let valid = ValidRequest::change_of(request, &stored_spec(&live)?, &self.rules)?;
        let proposed = self.artifacts_of(&found, &valid)?;
        let current = self.stored_artifacts(&found, &live)?;
        let digest =
            change_digest(ChangeKind::Modify, &proposed, Some(&current)).map_err(internal)?;
        let id = Uuid::new_v4();
        let tx = self.store.begin().await?;
        self.store_change(
            tx,
            requester,
            &valid,
            ChangeKind::Modify,
            Some(live.id),
            id,
            &digest,
            &proposed,
        )
        .await
        .map(|record| record.id.to_string())
    }

    async fn propose_offboarding(
        &self,
        requester: &Principal,
        namespace: &str,
        service: &str,
        justification: &str,
    ) -> Result<String, AppError> {
        let (found, live) = self.live_service(requester, namespace, service).await?;
        if !requester.has(Role::PlatformAdmin) {
            requester.may_submit_for(&found.team).map_err(|_| {
                AppError::Forbidden(
                    "Only the service's team or a platform admin asks for its offboarding.".into(),
                )
            })?;
        }
        if justification.is_empty() || justification.chars().count() > MAX_REASON {
            return Err(AppError::Invalid(format!(
                "justification: say why the service leaves the mesh, in at most {MAX_REASON} \
                 characters."
            )));
        }
        let spec =
            OnboardingRequest { justification: justification.to_owned(), ..stored_spec(&live)? };
        let valid = ValidRequest::from_stored(spec, &self.rules)?;
        let removed = self.artifacts_of(&found, &valid)?;
        let id = Uuid::new_v4();
        let tx = self.store.begin().await?;
        let digest = change_digest(ChangeKind::Offboard, &removed, None).map_err(internal)?;
        self.store_change(
            tx,
            requester,
            &valid,
            ChangeKind::Offboard,
            Some(live.id),
            id,
            &digest,
            &removed,
        )
        .await
        .map(|record| record.id.to_string())
    }

    async fn withdraw(&self, caller: &Principal, id: &str) -> Result<(), AppError> {
        let id: Uuid = id.parse().map_err(|_| no_such_request())?;
        let record = self.visible_request(caller, id).await?;
        let own = caller.user_id == record.requested_by.to_string();
        let admin = caller.has(Role::PlatformAdmin);
        let from = match record.status {
            RequestStatus::Submitted if own || admin => RequestStatus::Submitted,
            RequestStatus::Failed if admin => RequestStatus::Failed,
            RequestStatus::Submitted | RequestStatus::Failed => {
                return Err(AppError::Forbidden(
                    "Only its requester or a platform admin withdraws a change set.".into(),
                ));
            }
            status => {
                return Err(AppError::Conflict(format!(
                    "The change set is {status}: only one waiting for a decision, or a failed \
                     or cancelled one, can be withdrawn; nothing was changed."
                )));
            }
        };
        let busy = self
            .store
            .jobs_of_request(id)
            .await?
            .iter()
            .any(|j| matches!(j.state, JobState::Queued | JobState::Running));
        if busy {
            return Err(AppError::Conflict(
                "A job of this change set is queued or running: cancel it first; nothing was \
                 changed."
                    .into(),
            ));
        }
        let mut tx = self.store.begin().await?;
        if !tx.transition_request(id, from, RequestStatus::Withdrawn).await? {
            return Err(AppError::Conflict("The change set moved on; nothing was changed.".into()));
        }
        audit::record(&mut tx, request_event(caller, Action::RequestWithdrawn, &record, json!({})))
            .await?;
        tx.commit().await?;
        self.discard_staged_values(caller, &record).await;
        Ok(())
    }
}

/// The refusal of a second change set while one is in flight.
fn in_flight(namespace: &str, service: &str) -> AppError {
    AppError::Conflict(format!(
        "{namespace}/{service} has a change set in flight (or is not live yet): wait until it is \
         merged, rejected or withdrawn, then propose the change again."
    ))
}

/// A stored change set's spec.
fn stored_spec(record: &OnboardingRequestRecord) -> Result<OnboardingRequest, AppError> {
    serde_json::from_value(record.spec.clone()).map_err(internal)
}

/// The rendered contents of `path` in `artifacts`, if it renders that file.
fn current_contents(artifacts: &ServiceArtifacts, path: &str) -> Option<String> {
    artifacts.all_files().ok()?.into_iter().find(|f| f.path == path).map(|f| f.contents)
}

/// The files that differ from `current`'s rendering to `proposed`'s.
fn file_changes(
    current: &ServiceArtifacts,
    proposed: &ServiceArtifacts,
) -> Result<Vec<PreviewFile>, AppError> {
    let old = current.all_files().map_err(internal)?;
    let new = proposed.all_files().map_err(internal)?;
    let mut files = Vec::new();
    for file in &new {
        let change = match old.iter().find(|o| o.path == file.path) {
            None => "added",
            Some(o) if o.contents == file.contents => continue,
            Some(_) => "changed",
        };
        files.push(PreviewFile {
            path: file.path.clone(),
            contents: file.contents.clone(),
            change: Some(change.to_owned()),
            repository: None,
        });
    }
    for file in old.into_iter().filter(|o| !new.iter().any(|n| n.path == o.path)) {
        files.push(PreviewFile {
            path: file.path,
            contents: file.contents,
            change: Some("removed".to_owned()),
            repository: None,
        });
    }
    Ok(files)
}

impl Requests {
    /// Stores a change set (the service's row already claimed or opened in `tx`), its audit
    /// event, and stages its typed secret values in Vault before committing: if Vault refuses
    /// them, nothing of the change set remains.
    #[allow(clippy::too_many_arguments)]
    async fn store_change(
        &self,
        mut tx: Tx,
        requester: &Principal,
        valid: &ValidRequest,
        kind: ChangeKind,
        base_change: Option<Uuid>,
        id: Uuid,
        digest: &str,
        artifacts: &ServiceArtifacts,
    ) -> Result<OnboardingRequestRecord, AppError> {
        let requested_by: Uuid = requester.user_id.parse().map_err(internal)?;
        // Provided secret values never reach the database.
        let spec = serde_json::to_value(valid.without_secret_values()).map_err(internal)?;
        let record = tx
            .create_request(&NewOnboardingRequest {
                id,
                kind,
                base_change,
                digest: Some(digest),
                service_name: &valid.service,
                namespace: &valid.namespace,
                team: &valid.team,
                requested_by,
                justification: &valid.justification,
                spec: &spec,
            })
            .await
            .map_err(|error| match error {
                StoreError::ServiceBusy { .. } => in_flight(&valid.namespace, &valid.service),
                error if error.is_unique_violation() => AppError::Conflict(format!(
                    "{ns}/{svc} is already claimed by a live service or onboarding (or its Vault \
                     name `{ns}-{svc}` would clash with one's); change that service instead, or \
                     offboard it first.",
                    ns = valid.namespace,
                    svc = valid.service,
                )),
                error => internal(error),
            })?;
        let details = json!({
            "kind": kind,
            "team": valid.team,
            "image": valid.image,
            "justification": valid.justification,
            "digest": digest,
            "base_change": base_change,
        });
        audit::record(
            &mut tx,
            request_event(requester, Action::RequestSubmitted, &record, details),
        )
        .await?;
        self.notifications.queue(&mut tx, &Event::DecisionNeeded { request: &record }).await?;
        let provided: ProvidedValues = valid
            .secrets
            .iter()
            .filter_map(|secret| match &secret.source {
                SecretSource::Provided { value } if !value.is_empty() => {
                    Some((secret.name.clone(), value.expose().to_owned().into()))
                }
                _ => None,
            })
            .collect();
        if !provided.is_empty() {
            self.vault.stage_provided(id, artifacts, &provided).await.map_err(|error| {
                tracing::error!(%error, "could not write provided secret values to Vault");
                AppError::Internal(
                    "Vault did not take the secret values, so nothing was submitted; try again \
                     shortly, or tell the platform team."
                        .into(),
                )
            })?;
        }
        tx.commit().await?;
        Ok(record)
    }

    /// Stores an upgrade change set of the live service `namespace/service` (kind `upgrade`,
    /// its spec unchanged, rendered by the running generator), requested by `admin`. The
    /// fleet's batches call this; the decision and provisioning follow the change-set path.
    pub(crate) async fn propose_upgrade(
        &self,
        admin: &Principal,
        namespace: &str,
        service: &str,
        justification: &str,
    ) -> Result<OnboardingRequestRecord, AppError> {
        let (found, live) = self.live_service(admin, namespace, service).await?;
        let spec =
            OnboardingRequest { justification: justification.to_owned(), ..stored_spec(&live)? };
        let valid = ValidRequest::from_stored(spec, &self.rules)?;
        let proposed = self.artifacts_of(&found, &valid)?;
        let current = self.stored_artifacts(&found, &live)?;
        let digest =
            change_digest(ChangeKind::Upgrade, &proposed, Some(&current)).map_err(internal)?;
        let tx = self.store.begin().await?;
        self.store_change(
            tx,
            admin,
            &valid,
            ChangeKind::Upgrade,
            Some(live.id),
            Uuid::new_v4(),
            &digest,
            &proposed,
        )
        .await
    }

    /// A live service the caller may see, with the change set Vault holds.
    async fn live_service(
        &self,
        viewer: &Principal,
        namespace: &str,
        service: &str,
    ) -> Result<(ServiceRecord, OnboardingRequestRecord), AppError> {
        let found = self.store.service(namespace, service).await?.ok_or_else(no_such_service)?;
        if !viewer.may_view_team(&found.team) {
            return Err(no_such_service());
        }
        let live = match found.live_change {
            Some(id) => self.store.request(id).await?,
            None => None,
        };
        let live = live.ok_or_else(|| {
            AppError::Conflict(format!(
                "{namespace}/{service} is still being onboarded: change it once its pull request \
                 is open."
            ))
        })?;
        Ok((found, live))
    }

    /// The artifacts of a proposed spec for a service: rendered with the service's origin, so
    /// files that the change does not touch stay byte for byte the same.
    fn artifacts_of(
        &self,
        service: &ServiceRecord,
        valid: &ValidRequest,
    ) -> Result<ServiceArtifacts, AppError> {
        Ok(ServiceArtifacts::build(valid, &self.settings, Some(service.origin)))
    }

    /// The artifacts of a stored change set of `service`.
    fn stored_artifacts(
        &self,
        service: &ServiceRecord,
        change: &OnboardingRequestRecord,
    ) -> Result<ServiceArtifacts, AppError> {
        ServiceArtifacts::from_stored(&change.spec, &self.rules, &self.settings, service.origin)
            .map_err(internal)
    }

    /// What a change set changes: its spec differences and files against the change set it
    /// replaces (every file for an onboarding, every removed file for an offboarding).
    async fn change_contents(
        &self,
        record: &OnboardingRequestRecord,
    ) -> Result<(Vec<app::onboarding::SpecDifference>, Vec<PreviewFile>), AppError> {
        let origin = self.store.origin_of(record).await?;
        let render = |change: &OnboardingRequestRecord| {
            ServiceArtifacts::from_stored(&change.spec, &self.rules, &self.settings, origin)
        };
        let Ok(proposed) = render(record) else { return Ok((Vec::new(), Vec::new())) };
        let base = match record.base_change {
            Some(id) => self.store.request(id).await?,
            None => None,
        };
        let files =
            |artifacts: &ServiceArtifacts, change: &str| -> Result<Vec<PreviewFile>, AppError> {
                Ok(artifacts
                    .all_files()
                    .map_err(internal)?
                    .into_iter()
                    .map(|f| PreviewFile {
                        path: f.path,
                        contents: f.contents,
                        change: Some(change.to_owned()),
                        repository: None,
                    })
                    .collect())
            };
        match (record.kind, base) {
            (ChangeKind::Offboard, _) => Ok((Vec::new(), files(&proposed, "removed")?)),
            (ChangeKind::Modify, Some(base)) => {
                let Ok(current) = render(&base) else { return Ok((Vec::new(), Vec::new())) };
                Ok((spec_differences(&base.spec, &record.spec), file_changes(&current, &proposed)?))
            }
            _ => Ok((Vec::new(), files(&proposed, "added")?)),
        }
    }

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
    /// Destroys the provided values a rejected request staged in Vault (its staging folder
    /// only). A failure is logged: the values stay unreachable (no role reads the folder).
    /// Deletes a rejected or withdrawn request's staged secret values from Vault and records which paths
    /// went (or that the deletion failed: the values may still be there).
    async fn discard_staged_values(&self, admin: &Principal, record: &OnboardingRequestRecord) {
        let (details, outcome) = match self.vault.discard_staged(record.id).await {
            Ok(paths) if paths.is_empty() => return,
            Ok(paths) => (json!({ "paths": paths }), Outcome::Success),
            Err(error) => {
                tracing::error!(%error, request = %record.id, "could not destroy a rejected request's secret values");
                (json!({ "error": error.to_string() }), Outcome::Failure)
            }
        };
        let mut event = request_event(admin, Action::VaultValuesDiscarded, record, details);
        event.outcome = outcome;
        if let Err(error) = audit::record_alone(&self.store, event).await {
            tracing::error!(%error, request = %record.id, "could not record the deletion of secret values");
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

/// The cursors of the paged lists: where the previous page ended, as text a client hands back.
mod cursor {
    use app::access::AppError;
    use chrono::{DateTime, Utc};
    use uuid::Uuid;

    /// The first `limit` of `rows` (read one more than shown) and, when there were more, the
    /// cursor after the last one shown.
    pub fn page<R>(
        mut rows: Vec<R>,
        limit: u32,
        cursor: impl Fn(&R) -> String,
    ) -> (Vec<R>, Option<String>) {
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next = more.then(|| rows.last().map(cursor)).flatten();
        (rows, next)
    }

    fn invalid() -> AppError {
        AppError::Invalid("after: not a cursor of this list (use a page's `next`)".into())
    }

    /// A request's place: newest first, then by id.
    pub fn request(created_at: DateTime<Utc>, id: Uuid) -> String {
        format!("{}_{id}", created_at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))
    }

    pub fn parse_request(cursor: &str) -> Result<(DateTime<Utc>, Uuid), AppError> {
        let (at, id) = cursor.rsplit_once('_').ok_or_else(invalid)?;
        let at = DateTime::parse_from_rfc3339(at).map_err(|_| invalid())?.to_utc();
        Ok((at, id.parse().map_err(|_| invalid())?))
    }

    /// A service's place: by namespace, then name.
    pub fn service(namespace: &str, service: &str) -> String {
        format!("{namespace}/{service}")
    }

    pub fn parse_service(cursor: &str) -> Result<(String, String), AppError> {
        let (namespace, service) = cursor.split_once('/').ok_or_else(invalid)?;
        Ok((namespace.to_owned(), service.to_owned()))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn cursors_read_back_what_they_wrote_and_refuse_anything_else() {
            let at =
                DateTime::parse_from_rfc3339("2026-12-07T10:00:00.123456789Z").unwrap().to_utc();
            let id = Uuid::from_u128(7);
            assert_eq!(parse_request(&request(at, id)).unwrap(), (at, id));
            assert_eq!(
                parse_service(&service("prod-app", "cart")).unwrap(),
                ("prod-app".into(), "cart".into())
            );
            for bad in ["", "yesterday_0", "2026-12-07T10:00:00Z_not-a-uuid"] {
                assert!(parse_request(bad).is_err(), "{bad}");
            }
            assert!(parse_service("no-slash").is_err());
        }
    }
}
