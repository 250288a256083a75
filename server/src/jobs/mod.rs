//! The durable provisioning engine. An approval queues a job; any meshport process claims it
//! with a lease and runs its steps in order (Vault policy, role, secrets, PKI role, then the
//! GitOps commit and pull request). Each finished step is recorded with its audit event in the
//! transaction that checks the lease, so a process that lost its lease records nothing, and a
//! process that died is replaced at the first unrecorded step. Every step is idempotent (Vault
//! by plan and apply, the pull request by request id), so repeating one after a crash changes
//! nothing twice. Transient failures retry with exponential backoff; others stop the job until
//! an admin retries it.

mod gitops;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use app::onboarding::{ChangeKind, OnboardingRules, RequestStatus};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::artifacts::{ArtifactFile, ArtifactSettings, ServiceArtifacts};
use crate::audit::{self, Action, Actor, NewEvent, Outcome, Target};
use crate::notify::{Event, Notifications};
use crate::store::{Job, JobKind, JobState, OnboardingRequestRecord, Store, StoreError};
use crate::vault::Vault;
use crate::vault::provision::Part;

pub use gitops::GitopsProposals;

/// First retry delay; doubled per attempt up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// How often a waiting step looks again (a merge wakes it at once).
const WAIT: TimeDelta = TimeDelta::seconds(60);
/// Attempts before a job with transient failures is marked failed.
const MAX_ATTEMPTS: i32 = 8;

/// A step's failure: its message (shown to admins) and whether a later retry may succeed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepError {
    pub message: String,
    pub retryable: bool,
    /// Not a failure: the step waits for something outside meshport (a merge), is tried
    /// again without limit, and is woken early when that happens.
    pub waiting: bool,
}

impl StepError {
    /// A failure, retryable or not.
    pub fn new(message: impl Into<String>, retryable: bool) -> Self {
        Self { message: message.into(), retryable, waiting: false }
    }

    /// A failure a retry cannot fix without a change elsewhere.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self { message: message.into(), retryable: false, waiting: false }
    }

    /// A failure that may pass by itself.
    pub fn transient(message: impl Into<String>) -> Self {
        Self { message: message.into(), retryable: true, waiting: false }
    }

    /// A wait for something outside meshport.
    pub fn waiting(message: impl Into<String>) -> Self {
        Self { message: message.into(), retryable: true, waiting: true }
    }
}

/// What opening a pull request gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    /// Where reviewers find it.
    pub url: String,
}

/// The GitOps side of a job: commits the service's manifests (or their removal) and opens a
/// pull request. Idempotent per request: a repeated call returns the pull request already open.
#[async_trait::async_trait]
pub trait Proposals: Send + Sync {
    /// Proposes adding the service's manifests.
    async fn propose(
        &self,
        request: &OnboardingRequestRecord,
        files: Vec<ArtifactFile>,
    ) -> Result<Proposal, StepError>;

    /// Proposes removing the service's folder.
    async fn propose_removal(
        &self,
        request: &OnboardingRequestRecord,
    ) -> Result<Proposal, StepError>;

    /// Whether the request's removal pull request has been merged.
    async fn removal_merged(&self, request: &OnboardingRequestRecord) -> Result<bool, StepError>;
}

/// One step of a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// A part of the service's Vault objects.
    Vault(Part),
    /// A change of a live service: the secrets it drops, retired per `vault.offboard_secrets`.
    RetireSecrets,
    /// The manifests committed on a branch and the pull request opened.
    PullRequest,
    /// Offboarding: the service's folder removed by a pull request.
    RemovalPullRequest,
    /// Offboarding: role, policy and PKI role deleted; secrets kept or destroyed.
    RemoveVault,
}

impl Step {
    /// The name recorded and shown.
    pub fn name(self) -> &'static str {
        match self {
            Self::Vault(Part::Policy) => "vault_policy",
            Self::Vault(Part::Role) => "vault_role",
            Self::Vault(Part::Secrets) => "vault_secrets",
            Self::Vault(Part::Pki) => "vault_pki",
            Self::RetireSecrets => "vault_retire_secrets",
            Self::PullRequest => "pull_request",
            Self::RemovalPullRequest => "removal_pull_request",
            Self::RemoveVault => "vault_remove",
        }
    }

    /// Whether the step runs for a change set of `kind`: an upgrade changes no Vault object,
    /// only the rendered files.
    pub fn applies_to(self, kind: ChangeKind) -> bool {
        kind != ChangeKind::Upgrade || matches!(self, Self::PullRequest)
    }

    /// The steps of a kind of job, in order. Offboarding proposes the removal first, so the
    /// workload stops using Vault before its role and policy go.
    pub fn of(kind: JobKind) -> &'static [Step] {
        const PROVISION: [Step; 6] = [
            Step::Vault(Part::Policy),
            Step::Vault(Part::Role),
            Step::Vault(Part::Secrets),
            Step::Vault(Part::Pki),
            Step::RetireSecrets,
            Step::PullRequest,
        ];
        const OFFBOARD: [Step; 2] = [Step::RemovalPullRequest, Step::RemoveVault];
        const RECONCILE: [Step; 4] = [
            Step::Vault(Part::Policy),
            Step::Vault(Part::Role),
            Step::Vault(Part::Secrets),
            Step::Vault(Part::Pki),
        ];
        match kind {
            JobKind::Provision => &PROVISION,
            JobKind::Offboard => &OFFBOARD,
            JobKind::Reconcile => &RECONCILE,
        }
    }
}

/// The engine of one meshport process.
pub struct Engine {
    store: Store,
    vault: Arc<Vault>,
    proposals: Arc<dyn Proposals>,
    settings: ArtifactSettings,
    rules: OnboardingRules,
    /// This process's name in leases.
    owner: String,
    /// How long a claim lasts without renewal; renewed every third of it while a step runs.
    lease: Duration,
    /// Who hears of a job that stopped for good.
    notifications: Arc<Notifications>,
    /// Upgrade pull requests open at once (`fleet.max_open_upgrade_prs`).
    max_open_upgrades: u32,
}

impl Engine {
    pub fn new(
        store: Store,
        vault: Arc<Vault>,
        proposals: Arc<dyn Proposals>,
        settings: ArtifactSettings,
        rules: OnboardingRules,
    ) -> Self {
        let owner = format!("{}-{}", std::process::id(), Uuid::new_v4().simple());
        Self {
            store,
            vault,
            proposals,
            settings,
            rules,
            owner,
            lease: Duration::from_secs(60),
            notifications: Arc::default(),
            max_open_upgrades: 5,
        }
    }

    /// The same engine, opening at most `limit` upgrade pull requests at once.
    pub fn with_max_open_upgrades(self, limit: u32) -> Self {
        Self { max_open_upgrades: limit.max(1), ..self }
    }

    /// The same engine, telling the requester and admins when a job stops for good.
    pub fn with_notifications(self, notifications: Arc<Notifications>) -> Self {
        Self { notifications, ..self }
    }

    /// The same engine with claims lasting `lease` (`jobs.lease_seconds`).
    pub fn with_lease(self, lease: Duration) -> Self {
        Self { lease, ..self }
    }

    /// Runs jobs until the process ends: claims the next runnable one, or waits `idle`.
    pub fn spawn(self: Arc<Self>, idle: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                match self.run_next().await {
                    Ok(Some(_)) => continue,
                    Ok(None) => {}
                    Err(error) => tracing::error!(%error, "the provisioning queue failed"),
                }
                tokio::time::sleep(idle).await;
            }
        })
    }

    /// Claims the next runnable job and runs it as far as it goes. Returns its id, or `None`
    /// when no job was due.
    pub async fn run_next(&self) -> Result<Option<Uuid>, StoreError> {
        let now = Utc::now();
        let Some(job) = self.store.claim_job(&self.owner, now, now + self.lease).await? else {
            return Ok(None);
        };
        let id = job.id;
        let waited = (now - job.next_run_at).to_std().unwrap_or_default();
        crate::process_metrics::metrics().job_wait.observe(&[job.kind.as_str()], waited);
        self.run(job).await?;
        Ok(Some(id))
    }

    async fn run(&self, job: Job) -> Result<(), StoreError> {
        let Some(request) = self.store.request(job.request_id).await? else {
            return self
                .stop(&job, None, StepError::permanent("the request no longer exists"))
                .await;
        };
        if job.kind != JobKind::Reconcile {
            let mut tx = self.store.begin().await?;
            if tx
                .transition_request(
                    request.id,
                    RequestStatus::Approved,
                    RequestStatus::Provisioning,
                )
                .await?
            {
                audit::record(
                    &mut tx,
                    event(
                        &request,
                        Action::ProvisioningStep,
                        json!({ "step": "started" }),
                        Outcome::Success,
                    ),
                )
                .await?;
            }
            tx.commit().await?;
        }
        let artifacts = match self.artifacts(&request).await {
            Ok(artifacts) => artifacts,
            Err(error) => return self.stop(&job, Some(&request), error).await,
        };
        let done: HashSet<String> =
            self.store.job_steps(job.id).await?.into_iter().map(|s| s.step).collect();
        for &step in Step::of(job.kind) {
            if done.contains(step.name()) || !step.applies_to(request.kind) {
                continue;
            }
            let started = std::time::Instant::now();
            let outcome = tokio::select! {
                outcome = self.execute(step, &request, &artifacts) => outcome,
                () = self.hold_lease(job.id) => {
                    tracing::warn!(job = %job.id, step = step.name(), "lease lost; another process takes over");
                    return Ok(());
                }
            };
            let result = match &outcome {
                Ok(_) => "ok",
                Err(e) if e.waiting => "waiting",
                Err(e) if e.retryable => "retryable",
                Err(_) => "failed",
            };
            crate::process_metrics::metrics()
                .job_steps
                .observe(&[job.kind.as_str(), step.name(), result], started.elapsed());
            let detail = match outcome {
                Ok(detail) => detail,
                Err(error) => {
                    let error = StepError {
                        message: format!("{}: {}", step.name(), error.message),
                        ..error
                    };
                    return self.stop(&job, Some(&request), error).await;
                }
            };
            let mut tx = self.store.begin().await?;
            if !tx.finish_job_step(job.id, &self.owner, step.name(), &detail).await? {
                return Ok(());
            }
            let mut details = json!({ "step": step.name(), "attempt": job.attempts });
            details
                .as_object_mut()
                .expect("an object")
                .extend(detail.as_object().cloned().unwrap_or_default());
            audit::record(
                &mut tx,
                event(&request, Action::ProvisioningStep, details, Outcome::Success),
            )
            .await?;
            let opened = step == Step::PullRequest
                || (step == Step::RemovalPullRequest && request.kind == ChangeKind::Offboard);
            if opened {
                tx.transition_request(
                    request.id,
                    RequestStatus::Provisioning,
                    RequestStatus::PrOpen,
                )
                .await?;
            }
            tx.commit().await?;
        }
        let mut tx = self.store.begin().await?;
        if !tx.end_job_run(job.id, &self.owner, JobState::Done, None, None).await? {
            return Ok(());
        }
        if job.kind == JobKind::Offboard {
            // An offboard change set lands; the change set that was live ends with it.
            // (Before change sets, an offboarding job ran on the onboarding request itself.)
            let live = match request.kind {
                ChangeKind::Offboard => {
                    tx.transition_request(request.id, RequestStatus::PrOpen, RequestStatus::Merged)
                        .await?;
                    request.base_change
                }
                _ => Some(request.id),
            };
            for from in [RequestStatus::Merged, RequestStatus::PrOpen, RequestStatus::Failed] {
                let Some(live) = live else { break };
                if tx.transition_request(live, from, RequestStatus::Offboarded).await? {
                    break;
                }
            }
            audit::record(
                &mut tx,
                event(&request, Action::ServiceOffboarded, json!({}), Outcome::Success),
            )
            .await?;
        }
        tx.commit().await
    }

    /// Runs one step; its detail for the record.
    async fn execute(
        &self,
        step: Step,
        request: &OnboardingRequestRecord,
        artifacts: &ServiceArtifacts,
    ) -> Result<Value, StepError> {
        match step {
            Step::Vault(part) => {
                // Typed values come from the staging folder of this request.
                let changes = self
                    .vault
                    .apply_part(artifacts, &self.store, request.id, part)
                    .await
                    .map_err(|e| StepError::new(e.to_string(), e.is_retryable()))?;
                let paths: Vec<&str> = changes.iter().map(|c| c.path.as_str()).collect();
                Ok(json!({ "changed": paths }))
            }
            Step::RetireSecrets => {
                let Some(base) = self.base_artifacts(request).await? else {
                    return Ok(json!({ "retired": [] }));
                };
                let dropped: Vec<_> =
                    crate::artifacts::dropped_secrets(&base, artifacts).cloned().collect();
                let retired = self
                    .vault
                    .retire_secrets(&dropped)
                    .await
                    .map_err(|e| StepError::new(e.to_string(), e.is_retryable()))?;
                Ok(json!({ "retired": retired }))
            }
            Step::PullRequest => {
                let mut files =
                    artifacts.gitops_files().map_err(|e| StepError::permanent(e.to_string()))?;
                // What this version renders is recorded before it is proposed, so a later
                // version tells this rendering from a hand edit.
                let renderings = crate::fleet::renderings_of(
                    &request.namespace,
                    &request.service_name,
                    &request.spec,
                    &self.settings.generator_version(),
                    &files,
                );
                self.store
                    .record_renderings(&renderings)
                    .await
                    .map_err(|e| StepError::transient(e.to_string()))?;
                if request.kind == ChangeKind::Upgrade {
                    files = self.upgrade_files(request, files).await?;
                }
                let proposal = self.proposals.propose(request, files).await?;
                Ok(json!({ "url": proposal.url }))
            }
            Step::RemovalPullRequest => {
                let proposal = self.proposals.propose_removal(request).await?;
                Ok(json!({ "url": proposal.url }))
            }
            Step::RemoveVault => {
                // The workload keeps its Vault access until ArgoCD has removed it.
                if !self.proposals.removal_merged(request).await? {
                    return Err(StepError::waiting(
                        "waiting for the removal pull request to be merged",
                    ));
                }
                let removed = self
                    .vault
                    .remove(artifacts, &self.store)
                    .await
                    .map_err(|e| StepError::new(e.to_string(), e.is_retryable()))?;
                Ok(json!({ "removed": removed }))
            }
        }
    }

    /// An upgrade's files: waits while `fleet.max_open_upgrade_prs` upgrade pull requests are
    /// open (a merge or close wakes it), and keeps the repository's version of adopted hand
    /// edits.
    async fn upgrade_files(
        &self,
        request: &OnboardingRequestRecord,
        mut files: Vec<ArtifactFile>,
    ) -> Result<Vec<ArtifactFile>, StepError> {
        let transient = |e: StoreError| StepError::transient(e.to_string());
        let open = self.store.open_upgrade_pull_requests().await.map_err(transient)?;
        if open >= i64::from(self.max_open_upgrades) {
            return Err(StepError::waiting(format!(
                "queued: {open} upgrade pull requests are open (fleet.max_open_upgrade_prs = {})",
                self.max_open_upgrades
            )));
        }
        let kept = match self.store.upgrade_change(request.id).await.map_err(transient)? {
            Some(change) => serde_json::from_str::<Vec<ArtifactFile>>(&change.kept)
                .map_err(|e| StepError::permanent(format!("the kept files do not parse: {e}")))?,
            None => Vec::new(),
        };
        for keep in kept {
            files.retain(|file| file.path != keep.path);
            files.push(keep);
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }

    /// Compares every provisioned service's Vault objects with its approved state and records
    /// the changes that would repair it (its drift). Returns how many services drifted.
    pub async fn check_drift(&self) -> Result<usize, StoreError> {
        let mut drifted = 0;
        for (service, request) in self.store.live_services().await? {
            let Ok(artifacts) = ServiceArtifacts::from_stored(
                &request.spec,
                &self.rules,
                &self.settings,
                service.origin,
            ) else {
                continue;
            };
            match self.vault.plan(&artifacts, &self.store, request.id).await {
                Ok(changes) => {
                    drifted += usize::from(!changes.is_empty());
                    let changes = serde_json::to_value(&changes).unwrap_or_default();
                    self.store.record_drift(request.id, Utc::now(), &changes).await?;
                }
                Err(error) => {
                    tracing::warn!(%error, request = %request.id, "drift check failed");
                }
            }
        }
        Ok(drifted)
    }

    /// Checks drift every `every`, for as long as the process runs.
    pub fn spawn_drift_checks(self: Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                match self.check_drift().await {
                    Ok(0) => {}
                    Ok(drifted) => {
                        tracing::warn!(drifted, "services drifted from their approved Vault state")
                    }
                    Err(error) => tracing::error!(%error, "drift check failed"),
                }
            }
        })
    }

    /// Renews the lease while a step runs; returns only when it is lost.
    async fn hold_lease(&self, job: Uuid) {
        loop {
            tokio::time::sleep(self.lease / 3).await;
            match self.store.renew_job_lease(job, &self.owner, Utc::now() + self.lease).await {
                Ok(true) => {}
                Ok(false) => return,
                // The database is unreachable: keep working; the step record will tell.
                Err(error) => tracing::warn!(%error, "could not renew a job lease"),
            }
        }
    }

    /// Ends a run on an error: queued again after a backoff when it may pass, else failed (and
    /// the request with it).
    async fn stop(
        &self,
        job: &Job,
        request: Option<&OnboardingRequestRecord>,
        error: StepError,
    ) -> Result<(), StoreError> {
        let retry = error.waiting || (error.retryable && job.attempts < MAX_ATTEMPTS);
        let mut tx = self.store.begin().await?;
        let (state, retry_at) = match (retry, error.waiting) {
            (true, true) => (JobState::Queued, Some(Utc::now() + WAIT)),
            (true, false) => (JobState::Queued, Some(retry_at(job.attempts, Utc::now()))),
            (false, _) => (JobState::Failed, None),
        };
        if !tx.end_job_run(job.id, &self.owner, state, Some(&error.message), retry_at).await? {
            return Ok(());
        }
        if error.waiting {
            return tx.commit().await;
        }
        if let Some(request) = request {
            let details =
                json!({ "error": error.message, "retry_at": retry_at, "attempt": job.attempts });
            audit::record(
                &mut tx,
                event(request, Action::ProvisioningStep, details, Outcome::Failure),
            )
            .await?;
            if !retry && job.kind != JobKind::Reconcile {
                tx.transition_request(
                    request.id,
                    RequestStatus::Provisioning,
                    RequestStatus::Failed,
                )
                .await?;
                let failed = Event::ProvisioningFailed {
                    request,
                    error: &error.message,
                    job: job.id,
                    attempt: job.attempts,
                };
                self.notifications.queue(&mut tx, &failed).await?;
            }
        }
        tracing::warn!(job = %job.id, retry, error = %error.message, "provisioning step failed");
        tx.commit().await
    }

    /// The artifacts of a stored change set, rendered with today's settings and its service's
    /// origin (so a change rewrites only what it changes). An approved change set must still
    /// render to what was approved: a different digest stops the job (the settings changed
    /// since; an admin re-submits).
    async fn artifacts(
        &self,
        request: &OnboardingRequestRecord,
    ) -> Result<ServiceArtifacts, StepError> {
        let origin =
            self.store.origin_of(request).await.map_err(|e| StepError::transient(e.to_string()))?;
        let artifacts =
            ServiceArtifacts::from_stored(&request.spec, &self.rules, &self.settings, origin)
                .map_err(StepError::permanent)?;
        if let Some(approved) = &request.digest {
            let base = self.base_artifacts(request).await?;
            let digest = crate::artifacts::change_digest(request.kind, &artifacts, base.as_ref())
                .map_err(|e| StepError::permanent(e.to_string()))?;
            if &digest != approved {
                return Err(StepError::permanent(format!(
                    "the change set now renders to digest {digest}, not the approved {approved}: \
                     meshport's settings changed since the approval; withdraw it and submit it \
                     again"
                )));
            }
        }
        Ok(artifacts)
    }

    /// The artifacts of the change set `request` replaces, if any.
    async fn base_artifacts(
        &self,
        request: &OnboardingRequestRecord,
    ) -> Result<Option<ServiceArtifacts>, StepError> {
        let transient = |e: StoreError| StepError::transient(e.to_string());
        let Some(base) = request.base_change else { return Ok(None) };
        let Some(base) = self.store.request(base).await.map_err(transient)? else {
            return Ok(None);
        };
        let origin = self.store.origin_of(&base).await.map_err(transient)?;
        ServiceArtifacts::from_stored(&base.spec, &self.rules, &self.settings, origin)
            .map(Some)
            .map_err(StepError::permanent)
    }
}

/// When attempt `attempts` (1 for the first run) is retried: 5 s, 10 s, 20 s, … up to 5 min.
fn retry_at(attempts: i32, now: DateTime<Utc>) -> DateTime<Utc> {
    let doublings = u32::try_from(attempts.saturating_sub(1)).unwrap_or(0).min(16);
    let delay = FIRST_BACKOFF.saturating_mul(1 << doublings).min(MAX_BACKOFF);
    now + TimeDelta::from_std(delay).unwrap_or(TimeDelta::MAX)
}

fn event(
    request: &OnboardingRequestRecord,
    action: Action,
    details: Value,
    outcome: Outcome,
) -> NewEvent {
    NewEvent {
        actor: Actor::system(),
        action,
        target: Target::new("service", &request.namespace, &request.service_name),
        request_id: Some(request.id),
        details,
        outcome,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_up_to_five_minutes() {
        let now = Utc::now();
        let delay = |attempt| (retry_at(attempt, now) - now).num_seconds();
        assert_eq!([delay(1), delay(2), delay(3), delay(4)], [5, 10, 20, 40]);
        assert_eq!(delay(8), 300);
        assert_eq!(delay(1000), 300);
    }

    #[test]
    fn every_step_has_its_own_name_and_offboarding_reverses_provisioning() {
        let names: HashSet<&str> = [JobKind::Provision, JobKind::Offboard, JobKind::Reconcile]
            .into_iter()
            .flat_map(|kind| Step::of(kind).iter().map(|s| s.name()))
            .collect();
        assert_eq!(names.len(), 8, "reconciling repeats provisioning's Vault steps");
        assert!(
            Step::of(JobKind::Reconcile).iter().all(|s| Step::of(JobKind::Provision).contains(s))
        );
        assert_eq!(Step::of(JobKind::Offboard).last(), Some(&Step::RemoveVault));
    }
}
