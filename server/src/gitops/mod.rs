//! The GitOps repository ArgoCD syncs from, and meshport's pull requests to it: a service's
//! manifests are committed on a branch of their own (`meshport/<service>-<request id>`) and
//! proposed through the configured [`PullRequestProvider`]; the pull request's state is
//! followed through webhooks and polling, which share one transition, recorded in the audit
//! trail in the same transaction. meshport never pushes to the base branch of a forge.

mod provider;
mod repository;
mod settings;
pub mod webhook;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use app::onboarding::RequestStatus;
use serde_json::json;
use uuid::Uuid;

pub use provider::{
    GitHub, GitLab, LocalForge, PrState, ProviderError, ProviderKind, PullRequestDraft,
    PullRequestProvider, RemotePullRequest,
};
pub use repository::{
    GitAuth, GitError, GitRepository, Person, ServiceCommit, init_local_repository,
};
pub use settings::{GitopsConfig, is_branch_name, local_repository};
pub use webhook::WebhookError;

use crate::artifacts::ArtifactFile;
use crate::audit::{self, Action, Actor, NewEvent, Outcome, Target};
use crate::store::{
    MergedAs, NewPullRequest, PullRequestKind, PullRequestRecord, Store, StoreError, Tx,
};

/// A GitOps operation failed.
#[derive(Debug, thiserror::Error)]
pub enum GitopsError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{field} `{value}` {rule}")]
    Invalid { field: &'static str, value: String, rule: &'static str },
    #[error("`{field}` {rule}")]
    Required { field: &'static str, rule: &'static str },
    #[error("no pull request {0} is known to meshport")]
    UnknownPullRequest(Uuid),
    #[error("the git work was interrupted: {0}")]
    Interrupted(String),
}

/// A service's manifests to propose, after an admin approved its request.
#[derive(Clone, Debug)]
pub struct ProposedChange {
    pub request_id: Uuid,
    pub namespace: String,
    pub service: String,
    /// `manifests/<namespace>/<service>/…` files, from `ServiceArtifacts::gitops_files`.
    pub files: Vec<ArtifactFile>,
    /// The requester, the commit's author.
    pub author: Person,
    /// The admin who approved, named in the commit and the pull request.
    pub approver: Person,
    /// What the request is for (its justification), for reviewers.
    pub summary: String,
    /// Whether the service is live already: the pull request changes it rather than adds it.
    pub changes_live: bool,
}

/// The removal of a service's manifests (offboarding).
#[derive(Clone, Debug)]
pub struct ProposedRemoval {
    pub request_id: Uuid,
    pub namespace: String,
    pub service: String,
    pub author: Person,
    pub approver: Person,
    pub summary: String,
}

/// What a state report (webhook or poll) did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transition {
    /// The pull request moved; the audit trail records it.
    Changed(Box<PullRequestRecord>),
    /// It already stood there (or was merged, which is final).
    Unchanged,
    /// meshport did not open this pull request.
    Unknown,
}

/// What a webhook delivery did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// A pull request event, applied.
    Applied(Transition),
    /// This delivery was applied before.
    Duplicate,
    /// Signed, but nothing for meshport (another event, another repository).
    Ignored(&'static str),
}

/// Labels, reviewers and links put on each pull request.
#[derive(Clone, Debug)]
struct Presentation {
    labels: Vec<String>,
    reviewers: Vec<String>,
    public_url: String,
}

/// The GitOps repository and its pull requests.
pub struct Gitops {
    repo: Arc<GitRepository>,
    provider: Arc<dyn PullRequestProvider>,
    store: Store,
    presentation: Presentation,
    /// Signs (or, for GitLab, is) the forge's webhook deliveries.
    webhook_secret: Option<secrecy::SecretString>,
    /// Names the configured repository goes by in webhook payloads.
    repository_names: Vec<String>,
    auto_merge: bool,
    /// How old the fetched base branch may be when a preview reads it.
    preview_fetch_age: std::time::Duration,
    /// Who hears of merges and of changes after approval.
    notifications: Arc<crate::notify::Notifications>,
}

impl std::fmt::Debug for Gitops {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gitops")
            .field("repo", &self.repo)
            .field("provider", &self.provider.kind())
            .finish_non_exhaustive()
    }
}

impl Gitops {
    /// The repository and provider `settings` describe, over `store`. A repository or working
    /// clone the settings leave unset lives in `data_dir`; links to requests start with
    /// `public_url`.
    pub fn from_config(
        settings: &GitopsConfig,
        data_dir: &Path,
        public_url: &str,
        store: Store,
    ) -> Result<Self, GitopsError> {
        let url = settings.repo_url_in(data_dir);
        let auth = match (&settings.token, &settings.ssh_key) {
            (_, Some(key)) if !url.starts_with("http") => GitAuth::SshKey(key.clone()),
            (Some(token), _) if url.starts_with("http") => {
                GitAuth::Token { username: settings.username.clone(), token: token.clone() }
            }
            _ => GitAuth::None,
        };
        let repo = Arc::new(GitRepository::new(
            &url,
            &settings.base_branch,
            &settings.cache_dir_in(data_dir),
            auth,
            settings.push_retries,
        ));
        let missing = |field: &'static str| GitopsError::Required {
            field,
            rule: "must be set for this provider",
        };
        let token = || settings.token.clone().ok_or_else(|| missing("gitops.token"));
        let text = |value: &Option<String>, field| value.clone().ok_or_else(|| missing(field));
        let (provider, repository_names): (Arc<dyn PullRequestProvider>, Vec<String>) =
            match settings.provider {
                ProviderKind::Local => {
                    let bare = PathBuf::from(url.strip_prefix("file://").unwrap_or(&url));
                    (Arc::new(LocalForge::new(repo.clone(), bare)), Vec::new())
                }
                ProviderKind::Github | ProviderKind::Gitea => {
                    let owner = text(&settings.owner, "gitops.owner")?;
                    let name = text(&settings.repo, "gitops.repo")?;
                    let forge = if settings.provider == ProviderKind::Github {
                        let api = settings.api_url.as_deref().unwrap_or("https://api.github.com");
                        GitHub::new(api, &owner, &name, &token()?)?
                    } else {
                        let api = text(&settings.api_url, "gitops.api_url")?;
                        GitHub::gitea(&api, &owner, &name, &token()?)?
                    };
                    (Arc::new(forge), vec![format!("{owner}/{name}")])
                }
                ProviderKind::Gitlab => {
                    let project = text(&settings.project, "gitops.project")?;
                    let api = text(&settings.api_url, "gitops.api_url")?;
                    (Arc::new(GitLab::new(&api, &project, &token()?)?), vec![project])
                }
            };
        Ok(Self::new(repo, provider, store, settings, public_url, repository_names))
    }

    /// The same service, telling people of merges and of changes after approval.
    pub fn with_notifications(self, notifications: Arc<crate::notify::Notifications>) -> Self {
        Self { notifications, ..self }
    }

    /// The service over an explicit repository and provider (tests give a provider of their
    /// own); the rest of the settings come from `settings`.
    pub fn new(
        repo: Arc<GitRepository>,
        provider: Arc<dyn PullRequestProvider>,
        store: Store,
        settings: &GitopsConfig,
        public_url: &str,
        repository_names: Vec<String>,
    ) -> Self {
        Self {
            repo,
            provider,
            store,
            presentation: Presentation {
                labels: settings.labels.clone(),
                reviewers: settings.reviewers.clone(),
                public_url: public_url.trim_end_matches('/').to_owned(),
            },
            webhook_secret: settings.webhook_secret.clone(),
            repository_names,
            auto_merge: settings.auto_merge,
            preview_fetch_age: std::time::Duration::from_secs(settings.preview_fetch_seconds),
            notifications: Arc::default(),
        }
    }

    /// Fetches from the GitOps repository this process made, for `/metrics`.
    pub fn fetches(&self) -> u64 {
        self.repo.fetches()
    }

    /// The provider's kind.
    pub fn provider_kind(&self) -> ProviderKind {
        self.provider.kind()
    }

    /// The files under `manifests/<namespace>/<service>/` on the base branch, fetched at most
    /// `gitops.preview_fetch_seconds` ago: for previews, which anyone signed in can repeat.
    pub async fn current_files(
        &self,
        namespace: &str,
        service: &str,
    ) -> Result<Vec<(String, String)>, GitopsError> {
        let repo = self.repo.clone();
        let directory = format!("manifests/{namespace}/{service}");
        let max_age = self.preview_fetch_age;
        blocking(move || repo.files_on_base(&directory, max_age)).await
    }

    /// One fetch of the base branch and every file under `manifests/` with its git blob id,
    /// for the fleet's drift pass. Returns the commit read and `(path, blob id)` pairs.
    pub async fn manifests_tree(&self) -> Result<(String, Vec<(String, String)>), GitopsError> {
        let repo = self.repo.clone();
        blocking(move || repo.tree_on_base("manifests/")).await
    }

    /// Commits the service's manifests on `meshport/<service>-<request id>` and opens a pull
    /// request. Idempotent per request: a second call returns the pull request already opened.
    #[tracing::instrument(skip_all, fields(request = %change.request_id))]
    pub async fn propose(&self, change: &ProposedChange) -> Result<PullRequestRecord, GitopsError> {
        if change.files.is_empty() {
            return Err(GitopsError::Required {
                field: "files",
                rule: "must hold the service's manifests (propose_removal removes them)",
            });
        }
        let branch = format!("meshport/{}-{}", change.service, change.request_id);
        self.open(PullRequestKind::Onboarding, &branch, change).await
    }

    /// Proposes the service's manifests with new secret versions in the pod template (restart
    /// delivery), on `meshport/rollout-<service>-<rollout id>`. `change.request_id` is the
    /// service's live change set, which the pull request is listed with.
    #[tracing::instrument(skip_all, fields(rollout = %rollout))]
    pub async fn propose_rollout(
        &self,
        rollout: Uuid,
        change: &ProposedChange,
    ) -> Result<PullRequestRecord, GitopsError> {
        let branch = format!("meshport/rollout-{}-{rollout}", change.service);
        self.open(PullRequestKind::Rollout, &branch, change).await
    }

    /// Proposes removing the service's folder, on `meshport/offboard-<service>-<request id>`.
    #[tracing::instrument(skip_all, fields(request = %removal.request_id))]
    pub async fn propose_removal(
        &self,
        removal: &ProposedRemoval,
    ) -> Result<PullRequestRecord, GitopsError> {
        let change = ProposedChange {
            request_id: removal.request_id,
            namespace: removal.namespace.clone(),
            service: removal.service.clone(),
            files: Vec::new(),
            author: removal.author.clone(),
            approver: removal.approver.clone(),
            summary: removal.summary.clone(),
            changes_live: true,
        };
        let branch = format!("meshport/offboard-{}-{}", removal.service, removal.request_id);
        self.open(PullRequestKind::Offboarding, &branch, &change).await
    }

    async fn open(
        &self,
        kind: PullRequestKind,
        branch: &str,
        change: &ProposedChange,
    ) -> Result<PullRequestRecord, GitopsError> {
        for (field, value) in [("namespace", &change.namespace), ("service", &change.service)] {
            if !app::onboarding::is_dns_label(value) {
                return Err(GitopsError::Invalid {
                    field,
                    value: value.clone(),
                    rule: "must be a DNS label (lowercase letters, digits, '-')",
                });
            }
        }
        if let Some(existing) = self.store.pull_request_on_branch(branch).await? {
            return Ok(existing);
        }
        let directory = format!("manifests/{}/{}", change.namespace, change.service);
        let (verb, preposition) = match kind {
            PullRequestKind::Onboarding if change.changes_live => ("Change", "in"),
            PullRequestKind::Onboarding => ("Onboard", "to"),
            PullRequestKind::Offboarding => ("Offboard", "from"),
            PullRequestKind::Rollout => ("Roll out rotated secrets of", "in"),
        };
        let title = format!(
            "{verb} {} {preposition} {} (request {})",
            change.service, change.namespace, change.request_id
        );
        let message = format!(
            "{title}\n\n{}\n\nRequested-by: {} <{}>\nApproved-by: {} <{}>\nMeshport-Request: {}\n",
            change.summary.trim(),
            change.author.name,
            change.author.email,
            change.approver.name,
            change.approver.email,
            change.request_id,
        );
        let head_sha = {
            let (repo, branch, directory, files, author, message) = (
                self.repo.clone(),
                branch.to_owned(),
                directory.clone(),
                change.files.clone(),
                change.author.clone(),
                message,
            );
            blocking(move || {
                repo.commit_and_push(&ServiceCommit {
                    branch: &branch,
                    directory: &directory,
                    files: &files,
                    author: &author,
                    message: &message,
                })
            })
            .await?
        };
        let draft = PullRequestDraft {
            title,
            body: self.body(kind, change, &directory),
            head: branch.to_owned(),
            base: self.repo.base_branch().to_owned(),
            labels: self.presentation.labels.clone(),
            reviewers: self.presentation.reviewers.clone(),
        };
        let remote = self.provider.open(&draft).await?;
        let mut tx = self.store.begin().await?;
        let created = tx
            .create_pull_request(&NewPullRequest {
                request_id: change.request_id,
                kind,
                namespace: &change.namespace,
                service_name: &change.service,
                provider: self.provider.kind().as_str(),
                number: remote.number,
                url: &remote.url,
                branch,
                head_sha: &head_sha,
            })
            .await;
        let record = match created {
            Ok(record) => record,
            // A concurrent proposal of the same request stored it first: the push and the
            // forge call above were idempotent, so that record is the answer.
            Err(error) if error.is_unique_violation() => {
                drop(tx);
                return self.store.pull_request_on_branch(branch).await?.ok_or(error.into());
            }
            Err(error) => return Err(error.into()),
        };
        audit::record(
            &mut tx,
            event(&record, Action::PullRequestOpened, Actor::system(), "meshport"),
        )
        .await?;
        tx.commit().await?;
        if self.auto_merge && self.provider.kind() == ProviderKind::Local {
            return self.merge(record.id, Actor::system()).await;
        }
        Ok(record)
    }

    /// The pull request's description: what, for whom, approved by whom, and where to look.
    fn body(&self, kind: PullRequestKind, change: &ProposedChange, directory: &str) -> String {
        let mut body = format!(
            "{}\n\n| | |\n|---|---|\n| Request | [{id}]({url}/requests/{id}) |\n| Service | `{}/{}` |\n\
             | Requested by | {} |\n| Approved by | {} |\n| Change | {} `{directory}/` |\n",
            change.summary.trim(),
            change.namespace,
            change.service,
            change.author.name,
            change.approver.name,
            match kind {
                PullRequestKind::Onboarding if change.changes_live => "changes",
                PullRequestKind::Onboarding => "adds",
                PullRequestKind::Offboarding => "removes",
                PullRequestKind::Rollout => "restarts the pods of",
            },
            id = change.request_id,
            url = self.presentation.public_url,
        );
        for file in &change.files {
            body.push_str(&format!("\n- `{}`", file.path));
        }
        body.push_str(
            "\n\nOpened by meshport after the request's approval; ArgoCD deploys it once merged.\n",
        );
        body
    }

    /// Merges a pull request of the `local` provider (an admin's merge in meshport, or
    /// auto-merge). Forges merge through their own review; their merge reaches meshport by
    /// webhook or polling.
    #[tracing::instrument(skip_all, fields(pull_request = %id))]
    pub async fn merge(&self, id: Uuid, actor: Actor) -> Result<PullRequestRecord, GitopsError> {
        let record =
            self.store.pull_request(id).await?.ok_or(GitopsError::UnknownPullRequest(id))?;
        let message = format!(
            "Merge {} (request {})\n\nMerged in meshport by {}.\n",
            record.branch,
            record.request_id,
            if actor.email.is_empty() { &actor.subject } else { &actor.email },
        );
        let remote = self.provider.merge(record.number, &message).await?;
        let mut tx = self.store.begin().await?;
        self.apply(&mut tx, &remote, actor, "merge").await?;
        tx.commit().await?;
        self.store.pull_request(id).await?.ok_or(GitopsError::UnknownPullRequest(id))
    }

    /// Asks the provider about every open pull request and applies what changed, the same way
    /// a webhook does. Returns how many moved. Stops early when the forge rate-limits.
    #[tracing::instrument(skip_all)]
    pub async fn poll(&self) -> Result<usize, GitopsError> {
        let mut moved = 0;
        for pr in self.store.open_pull_requests(self.provider.kind().as_str()).await? {
            let remote = match self.provider.state(pr.number).await {
                Ok(remote) => remote,
                Err(error @ ProviderError::RateLimited { .. }) => return Err(error.into()),
                Err(error) => {
                    tracing::warn!(%error, number = pr.number, "could not poll a pull request");
                    continue;
                }
            };
            let mut tx = self.store.begin().await?;
            if let Transition::Changed(_) =
                self.apply(&mut tx, &remote, Actor::system(), "poll").await?
            {
                moved += 1;
            }
            tx.commit().await?;
        }
        Ok(moved)
    }

    /// Polls every `interval` in the background until the process exits; waits longer when
    /// the forge asks to.
    pub fn spawn_polling(self: Arc<Self>, interval: Duration) {
        tokio::spawn(async move {
            loop {
                let wait = match self.poll().await {
                    Ok(_) => interval,
                    Err(GitopsError::Provider(error)) if error.retry_after().is_some() => {
                        tracing::warn!(%error, "polling pull requests paused");
                        error.retry_after().unwrap_or(interval).max(interval)
                    }
                    Err(error) => {
                        tracing::warn!(%error, "polling pull requests failed");
                        interval
                    }
                };
                tokio::time::sleep(wait).await;
            }
        });
    }

    /// Applies a webhook delivery of forge `kind`: refused unless signed with the configured
    /// secret; a replayed delivery (same id or same body) or one about another repository
    /// changes nothing, and a report older than the stored state is stale.
    #[tracing::instrument(skip_all, fields(provider = kind.as_str()))]
    pub async fn apply_webhook(
        &self,
        kind: ProviderKind,
        headers: &http::HeaderMap,
        body: &[u8],
    ) -> Result<WebhookOutcome, WebhookApplyError> {
        let secret = self
            .webhook_secret
            .as_ref()
            .filter(|_| kind == self.provider.kind())
            .ok_or(WebhookError::NotConfigured(kind.as_str()))?;
        let delivery = webhook::verify_and_read(kind, headers, body, secret)?;
        let Some(event) = delivery.event else {
            return Ok(WebhookOutcome::Ignored("not a pull request event"));
        };
        let ours = event.repository.iter().any(|name| {
            self.repository_names.iter().any(|configured| configured.eq_ignore_ascii_case(name))
        });
        if !ours {
            return Ok(WebhookOutcome::Ignored("unknown repository"));
        }
        let mut tx = self.store.begin().await?;
        // The signature covers the body, not the delivery id: a captured body re-sent under a
        // new id is a replay too.
        if !tx.record_webhook_delivery(kind.as_str(), &delivery.id, &delivery.body_sha256).await? {
            return Ok(WebhookOutcome::Duplicate);
        }
        let transition = self.apply(&mut tx, &event.pull, Actor::system(), "webhook").await?;
        tx.commit().await?;
        Ok(WebhookOutcome::Applied(transition))
    }

    /// The one transition webhooks, polling and merges share: moves the stored pull request to
    /// the reported state and records that in the audit trail, inside `tx`. Merged is final.
    ///
    /// Approval binds to content: a merge whose head is not the approved head (commits were
    /// pushed to the branch after approval, or the forge did not say which head it merged) is
    /// flagged as changed after approval, recorded as such in the audit trail, and does not
    /// move the request to `merged`; a platform admin's approval of that head does
    /// ([`approve_merged_head`]).
    async fn apply(
        &self,
        tx: &mut Tx,
        remote: &RemotePullRequest,
        actor: Actor,
        source: &str,
    ) -> Result<Transition, StoreError> {
        let provider = self.provider.kind().as_str();
        let Some(stored) = tx.pull_request_for_update(provider, remote.number).await? else {
            return Ok(Transition::Unknown);
        };
        if stored.state == remote.state || stored.state == PrState::Merged {
            return Ok(Transition::Unchanged);
        }
        // Deliveries and polls can arrive out of order: an older report never overrides a newer
        // state (merged stays final above whatever the times say).
        if let (Some(reported), Some(applied)) = (remote.updated_at, stored.remote_updated_at)
            && reported < applied
        {
            tracing::info!(pull_request = %stored.id, %reported, %applied, "stale pull request report ignored");
            return Ok(Transition::Unchanged);
        }
        let merged = remote.state == PrState::Merged;
        let head = remote.head_sha.as_deref().filter(|_| merged);
        let changed_after_approval = merged && head != Some(stored.approved_head_sha.as_str());
        let merged_as = MergedAs {
            merge_commit_sha: remote.merge_commit_sha.as_deref().filter(|_| merged),
            head_sha: head,
            changed_after_approval,
            remote_updated_at: remote.updated_at,
        };
        let Some(updated) =
            tx.set_pull_request_state(stored.id, stored.state, remote.state, &merged_as).await?
        else {
            return Ok(Transition::Unchanged);
        };
        let action = match remote.state {
            PrState::Open => Action::PullRequestOpened,
            PrState::Merged => Action::PullRequestMerged,
            PrState::Closed => Action::PullRequestClosed,
        };
        audit::record(tx, event(&updated, action, actor.clone(), source)).await?;
        if changed_after_approval {
            tracing::warn!(
                pull_request = %updated.id,
                approved = %updated.approved_head_sha,
                merged = updated.merged_head_sha.as_deref().unwrap_or("unknown"),
                "a pull request was merged with a head other than the approved one"
            );
            let flagged = event(&updated, Action::ChangedAfterApproval, actor, source);
            audit::record(tx, flagged).await?;
        }
        if merged
            && updated.kind != PullRequestKind::Rollout
            && let Some(request) = tx.request(updated.request_id).await?
        {
            let (pull_request, url) = (updated.id, updated.url.as_str());
            let event = if changed_after_approval {
                crate::notify::Event::ChangedAfterApproval { request: &request, pull_request, url }
            } else {
                crate::notify::Event::PullRequestMerged { request: &request, pull_request, url }
            };
            self.notifications.queue(tx, &event).await?;
        }
        // The request follows its onboarding pull request to "merged" (from "provisioning"
        // too: an auto-merge lands before the provisioning step records the open PR), unless
        // what was merged is not what was approved.
        if merged && !changed_after_approval && updated.kind == PullRequestKind::Onboarding {
            merge_request(tx, updated.request_id).await?;
        }
        // Upgrades wait for a free slot under `fleet.max_open_upgrade_prs`: one just ended.
        if matches!(remote.state, PrState::Merged | PrState::Closed) {
            tx.wake_upgrade_jobs().await?;
        }
        // An offboarding job waits for its removal to merge before it deletes Vault access.
        if remote.state == PrState::Merged && updated.kind == PullRequestKind::Offboarding {
            tx.wake_jobs(updated.request_id).await?;
        }
        Ok(Transition::Changed(Box::new(updated)))
    }
}

/// Moves a request to `merged` after its onboarding pull request merged with an approved head
/// (from "provisioning" too: an auto-merge lands before the provisioning step records the open
/// pull request). Returns whether it moved.
async fn merge_request(tx: &mut Tx, request_id: Uuid) -> Result<bool, StoreError> {
    for from in [RequestStatus::PrOpen, RequestStatus::Provisioning] {
        if tx.transition_request(request_id, from, RequestStatus::Merged).await? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A platform admin approves the head a flagged pull request was merged with, inside `tx`:
/// records it as the approved head, clears the flag, writes the audit event and, for an
/// onboarding pull request, moves its request to `merged`. Returns the updated pull request,
/// or `None`, changing nothing, when `pr` is not flagged or was merged with another head.
/// Who may approve (a platform admin other than the requester) is the caller's check.
pub async fn approve_merged_head(
    tx: &mut Tx,
    pr: &PullRequestRecord,
    actor: Actor,
) -> Result<Option<PullRequestRecord>, StoreError> {
    let Some(head) = pr.merged_head_sha.as_deref().filter(|_| pr.changed_after_approval) else {
        return Ok(None);
    };
    let Some(updated) = tx.approve_merged_head(pr.id, head).await? else {
        return Ok(None);
    };
    let mut approved = event(&updated, Action::HeadApproved, actor, "approve_head");
    approved.details["previously_approved_head_sha"] = json!(pr.approved_head_sha);
    audit::record(tx, approved).await?;
    match updated.kind {
        PullRequestKind::Onboarding => {
            merge_request(tx, updated.request_id).await?;
        }
        // The offboarding job waits for an approved removal.
        PullRequestKind::Offboarding => tx.wake_jobs(updated.request_id).await?,
        // A rollout changes no change set.
        PullRequestKind::Rollout => {}
    }
    Ok(Some(updated))
}

/// A webhook delivery was refused, or could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum WebhookApplyError {
    #[error(transparent)]
    Refused(#[from] WebhookError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The audit event of a pull request's step. The evidence report reads `url` from the
/// opened event, `commit_sha` from the merged one and notes a change after approval.
fn event(pr: &PullRequestRecord, action: Action, actor: Actor, source: &str) -> NewEvent {
    NewEvent {
        actor,
        action,
        target: Target::new("pull_request", &pr.namespace, &pr.service_name),
        request_id: Some(pr.request_id),
        details: json!({
            "url": pr.url,
            "commit_sha": pr.merge_commit_sha,
            "number": pr.number,
            "provider": pr.provider,
            "branch": pr.branch,
            "head_sha": pr.head_sha,
            "approved_head_sha": pr.approved_head_sha,
            "merged_head_sha": pr.merged_head_sha,
            "changed_after_approval": pr.changed_after_approval,
            "kind": pr.kind.as_str(),
            "source": source,
        }),
        outcome: Outcome::Success,
    }
}

/// Runs blocking git work on the blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, GitError> + Send + 'static,
) -> Result<T, GitopsError> {
    // The caller's span follows the work to the blocking thread, so git's spans nest in it.
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(work))
        .await
        .map_err(|e| GitopsError::Interrupted(e.to_string()))?
        .map_err(Into::into)
}
