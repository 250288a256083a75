//! The engine's GitOps side over [`Gitops`]: the requester is the commit's author, the
//! approving admin is named in the commit and the pull request, the justification is the
//! summary reviewers read.

use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use super::{Proposal, Proposals, StepError};
use crate::artifacts::ArtifactFile;
use crate::gitops::{Gitops, GitopsError, Person, ProposedChange, ProposedRemoval};
use crate::store::{OnboardingRequestRecord, PrState, PullRequestKind, Store};

/// Proposals through the configured GitOps repository and forge.
pub struct GitopsProposals {
    pub gitops: Arc<Gitops>,
    pub store: Store,
}

impl GitopsProposals {
    async fn person(&self, id: Option<Uuid>) -> Result<Person, StepError> {
        let user = match id {
            Some(id) => {
                self.store.user(id).await.map_err(|e| StepError::transient(e.to_string()))?
            }
            None => None,
        };
        Ok(match user {
            Some(user) => Person { name: user.display_name, email: user.email },
            None => Person { name: "meshport".into(), email: "meshport@localhost".into() },
        })
    }

    async fn people(
        &self,
        request: &OnboardingRequestRecord,
    ) -> Result<(Person, Person), StepError> {
        Ok((self.person(Some(request.requested_by)).await?, self.person(request.decided_by).await?))
    }
}

/// Git and forge failures that may pass (a forge's rate limit or outage, a network error)
/// are retried; refusals (bad credentials, a missing repository) wait for an admin.
fn step_error(error: GitopsError) -> StepError {
    use crate::gitops::GitError;
    let retryable = match &error {
        GitopsError::Provider(provider) => provider.retry_after().is_some(),
        // A failed git command is mostly the network; credentials and conflicts are not.
        GitopsError::Git(GitError::Git { .. } | GitError::RetriesExhausted { .. }) => true,
        GitopsError::Interrupted(_) | GitopsError::Store(_) => true,
        _ => false,
    };
    StepError::new(error.to_string(), retryable)
}

#[async_trait]
impl Proposals for GitopsProposals {
    async fn propose(
        &self,
        request: &OnboardingRequestRecord,
        files: Vec<ArtifactFile>,
    ) -> Result<Proposal, StepError> {
        let (author, approver) = self.people(request).await?;
        let change = ProposedChange {
            request_id: request.id,
            namespace: request.namespace.clone(),
            service: request.service_name.clone(),
            files,
            author,
            approver,
            summary: request.justification.clone(),
            changes_live: matches!(
                request.kind,
                app::onboarding::ChangeKind::Modify | app::onboarding::ChangeKind::Upgrade
            ),
        };
        let pull_request = self.gitops.propose(&change).await.map_err(step_error)?;
        Ok(Proposal { url: pull_request.url })
    }

    async fn propose_removal(
        &self,
        request: &OnboardingRequestRecord,
    ) -> Result<Proposal, StepError> {
        let (author, approver) = self.people(request).await?;
        let removal = ProposedRemoval {
            request_id: request.id,
            namespace: request.namespace.clone(),
            service: request.service_name.clone(),
            author,
            approver,
            summary: match request.kind {
                app::onboarding::ChangeKind::Offboard => request.justification.clone(),
                _ => format!("Offboard {}/{}", request.namespace, request.service_name),
            },
        };
        let pull_request = self.gitops.propose_removal(&removal).await.map_err(step_error)?;
        Ok(Proposal { url: pull_request.url })
    }

    async fn removal_merged(&self, request: &OnboardingRequestRecord) -> Result<bool, StepError> {
        let pulls = self
            .store
            .pull_requests_of(request.id)
            .await
            .map_err(|e| StepError::transient(e.to_string()))?;
        let merged: Vec<_> = pulls
            .iter()
            .filter(|p| p.kind == PullRequestKind::Offboarding && p.state == PrState::Merged)
            .collect();
        if merged.iter().any(|p| p.changed_after_approval) {
            return Err(StepError::waiting(
                "the removal pull request was merged with commits pushed after approval: a \
                 second platform admin approves the merged head first",
            ));
        }
        Ok(!merged.is_empty())
    }
}
