//! Adoption: a platform admin makes meshport the owner of Vault objects it did not create for a
//! service (made by hand, or before meshport recorded owners), so provisioning, reconciling and
//! offboarding may overwrite and delete them. It covers every object of the service's approved
//! spec that exists and is not the service's; the ownership records and the audit event naming
//! them are written in one transaction. Secrets declared `existing` stay their owner's.

use app::access::{AppError, Principal, Role};
use app::onboarding::{OnboardingRules, RequestStatus};
use serde_json::json;

use crate::artifacts::{ArtifactSettings, ServiceArtifacts};
use crate::audit::{self, Action, Actor, NewEvent, Outcome, Target};
use crate::store::{Store, StoreError};
use crate::vault::{Vault, VaultError};

/// An adoption that could not be done.
#[derive(Debug, thiserror::Error)]
pub enum AdoptError {
    /// The caller is not a platform admin.
    #[error("only platform admins adopt Vault objects")]
    Forbidden,
    /// No approved request describes the service.
    #[error("{0} has no approved onboarding request whose objects could be adopted")]
    NoApprovedRequest(String),
    /// The stored request no longer renders.
    #[error("the approved request of {service} does not render: {message}")]
    Render { service: String, message: String },
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<AdoptError> for AppError {
    fn from(error: AdoptError) -> Self {
        match error {
            AdoptError::Forbidden => Self::Forbidden(error.to_string()),
            AdoptError::NoApprovedRequest(_) => Self::NotFound(error.to_string()),
            other => crate::errors::internal(other),
        }
    }
}

/// What adoption works with: meshport's Vault client and database, and how stored requests
/// render.
pub struct Adoption<'a> {
    pub vault: &'a Vault,
    pub store: &'a Store,
    pub rules: &'a OnboardingRules,
    pub settings: &'a ArtifactSettings,
}

impl Adoption<'_> {
    /// [`Adoption::adopt`] on behalf of `caller`, who must be a platform admin.
    pub async fn adopt_as(
        &self,
        caller: &Principal,
        namespace: &str,
        service: &str,
    ) -> Result<Vec<String>, AdoptError> {
        if !caller.has(Role::PlatformAdmin) {
            return Err(AdoptError::Forbidden);
        }
        self.adopt(Actor::from(caller), namespace, service).await
    }

    /// Records as `<namespace>/<service>`'s every object of its approved spec that exists in
    /// Vault without being its own, with an audit event listing them (none when there is
    /// nothing to adopt). Adopted KV secrets get their `owner` metadata as well. Returns the
    /// adopted paths. Who may adopt is the caller's business ([`Adoption::adopt_as`]).
    pub async fn adopt(
        &self,
        actor: Actor,
        namespace: &str,
        service: &str,
    ) -> Result<Vec<String>, AdoptError> {
        let name = format!("{namespace}/{service}");
        // The approved change set in flight (its provisioning waits for the adoption), else the
        // one Vault holds.
        let found = self.store.service(namespace, service).await?;
        let mut request = None;
        let candidates: Vec<uuid::Uuid> = match &found {
            Some(found) => [found.open_change, found.live_change].into_iter().flatten().collect(),
            None => Vec::new(),
        };
        for id in candidates {
            match self.store.request(id).await? {
                Some(change) if change.status != RequestStatus::Submitted => {
                    request = Some(change);
                    break;
                }
                _ => {}
            }
        }
        let (Some(request), Some(found)) = (request, found) else {
            return Err(AdoptError::NoApprovedRequest(name));
        };
        let artifacts =
            ServiceArtifacts::from_stored(&request.spec, self.rules, self.settings, found.origin)
                .map_err(|message| AdoptError::Render { service: name.clone(), message })?;
        let paths = self.vault.conflicts(&artifacts, self.store).await?;
        if paths.is_empty() {
            return Ok(paths);
        }
        let adopted_by = actor.user_id.clone().unwrap_or_else(|| actor.subject.clone());
        let mut tx = self.store.begin().await?;
        for path in &paths {
            tx.adopt_vault_object(path, &artifacts.owner, &adopted_by).await?;
        }
        let event = NewEvent {
            actor,
            action: Action::VaultObjectAdopted,
            target: Target::new("service", namespace, service),
            request_id: Some(request.id),
            details: json!({ "paths": paths }),
            outcome: Outcome::Success,
        };
        audit::record(&mut tx, event).await?;
        tx.commit().await?;
        // The record makes them the service's; the metadata says so in Vault too (else the next
        // provisioning writes it).
        let kv_metadata = format!("{}/metadata/", self.vault.kv_mount());
        for path in paths.iter().filter(|p| p.starts_with(&kv_metadata)) {
            if let Err(error) = self.vault.mark_kv_owner(path, &artifacts.owner).await {
                tracing::warn!(%error, path, "adopted; the owner metadata follows at provisioning");
            }
        }
        Ok(paths)
    }
}
