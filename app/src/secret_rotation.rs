//! Acting on rotation status: a service's secrets with their versions, ages and next
//! rotations, how a new value reaches its pods, and "rotate now" for the owning team's
//! developers and platform admins. A provided secret's new value is write-only: it goes to
//! Vault and is never sent back.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::access::AppError;
use crate::onboarding::{Delivery, RotationPolicy};
use crate::rotation::Judgement;

/// One secret of a service as the status page shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct SecretRotation {
    /// The secret's name (its file under `/vault/secrets`).
    pub name: String,
    /// `generated`, `provided` or `existing`.
    pub source: String,
    /// The current KV version; 0 when no value was written yet.
    pub version: u64,
    /// Unix seconds when the current version was written.
    pub rotated_at: Option<i64>,
    /// Whole days since then.
    pub age_days: Option<i64>,
    /// Unix seconds when it is due by the rotation period.
    pub due_at: Option<i64>,
    /// Unix seconds of the next scheduled rotation (automatic policy, generated secrets).
    pub next_rotation: Option<i64>,
    /// The state and why.
    pub judgement: Judgement,
    /// Whether the running pods have the current version, where that can be known.
    pub pods: PodsVersion,
}

/// Whether the running pods have a secret's current version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", content = "detail", rename_all = "snake_case")]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum PodsVersion {
    /// The Deployment's `meshport.io/secret-versions` names the current version.
    Current,
    /// The Deployment still names an older version (the rollout is not merged or applied).
    Behind(u64),
    /// Cannot be known, and why (no cluster reader, or a delivery that does not record it).
    Unknown(String),
}

/// A restart rollout: rotations of one service gathered into one pull request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct RolloutSummary {
    /// `pending` (gathering rotations), `opened` or `failed`.
    pub state: String,
    /// Rotations it carries.
    pub rotations: i64,
    /// Unix seconds when the pull request is opened at the earliest.
    pub not_before: i64,
    /// The pull request, once opened.
    pub pull_request_url: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
}

/// The service's Vault PKI certificate, if it has one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct CertificatePlan {
    /// Lifetime of each issued certificate, in hours.
    pub ttl_hours: u32,
    /// How it is renewed.
    pub renewal: String,
    /// Set when the role's TTL is longer than the rotation period: the certificate outlives
    /// the policy.
    pub warning: Option<String>,
}

/// A service's secrets and how they rotate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ServiceSecrets {
    /// `namespace/service`.
    pub service: String,
    pub team: String,
    pub rotation_days: u32,
    pub policy: RotationPolicy,
    pub delivery: Delivery,
    pub reload_command: Option<String>,
    /// Whether the caller may rotate (the owning team's developers, platform admins).
    pub may_rotate: bool,
    pub secrets: Vec<SecretRotation>,
    /// The latest restart rollout, if any.
    pub rollout: Option<RolloutSummary>,
    pub certificate: Option<CertificatePlan>,
}

/// What a rotation did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Rotated {
    /// `namespace/service/secret`.
    pub secret: String,
    /// The version written.
    pub version: u64,
    /// How the pods get it, in a sentence.
    pub delivery: String,
}

/// A service's secrets with their rotation state. Everyone who may see the service.
#[server(endpoint = "service_secrets")]
pub async fn get_service_secrets(
    namespace: String,
    service: String,
) -> Result<ServiceSecrets, AppError> {
    use crate::access::ssr;
    let principal = ssr::require_principal()?;
    rotations()?.secrets(&principal, &namespace, &service).await.map_err(ssr::fail)
}

/// Rotates one secret now, with a reason: the owning team's developers and platform admins.
/// `value` is the new value of a provided secret (ignored as empty for generated ones).
#[server(endpoint = "rotate_secret")]
pub async fn rotate_secret(
    namespace: String,
    service: String,
    secret: String,
    reason: String,
    #[server(default)] value: String,
) -> Result<Rotated, AppError> {
    use crate::access::ssr;
    let principal = ssr::require_principal()?;
    let value = (!value.is_empty()).then(|| crate::onboarding::SecretValue::new(value));
    rotations()?
        .rotate(&principal, &namespace, &service, &secret, &reason, value)
        .await
        .map_err(ssr::fail)
}

#[cfg(feature = "ssr")]
fn rotations() -> Result<std::sync::Arc<dyn ssr::RotationService>, AppError> {
    use_context::<std::sync::Arc<dyn ssr::RotationService>>()
        .ok_or_else(|| AppError::Internal("Rotation is not configured.".into()))
}

/// The service the server implements.
#[cfg(feature = "ssr")]
pub mod ssr {
    use super::{Rotated, ServiceSecrets};
    use crate::access::{AppError, Principal};
    use crate::onboarding::SecretValue;

    /// Reads and rotates services' secrets; every call checks the caller.
    #[async_trait::async_trait]
    pub trait RotationService: Send + Sync {
        async fn secrets(
            &self,
            viewer: &Principal,
            namespace: &str,
            service: &str,
        ) -> Result<ServiceSecrets, AppError>;

        async fn rotate(
            &self,
            actor: &Principal,
            namespace: &str,
            service: &str,
            secret: &str,
            reason: &str,
            value: Option<SecretValue>,
        ) -> Result<Rotated, AppError>;
    }
}
