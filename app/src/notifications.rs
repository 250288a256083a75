//! Notifications as people see them: the kinds meshport sends, each person's muted kinds (the
//! account page), failed deliveries (platform admins) and the decision queue's count in the
//! navigation. Each server function checks the caller on the server; the service behind it is
//! provided by the server as context.

use serde::{Deserialize, Serialize};

use crate::access::AppError;
use leptos::prelude::*;

/// What a notification is about. Each person can mute each kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    /// A change set waits for a decision (platform admins).
    DecisionNeeded,
    /// A change set was approved or rejected (its requester).
    Decided,
    /// Provisioning failed after its retries, or needs an admin (requester and admins).
    ProvisioningFailed,
    /// The change set's pull request was merged (requester and admins).
    PullRequestMerged,
    /// Commits were pushed to the pull request after its approval (requester and admins).
    ChangedAfterApproval,
    /// A secret or certificate of the team's services needs attention (the owning team).
    RotationDue,
}

impl NotificationKind {
    pub const ALL: [Self; 6] = [
        Self::DecisionNeeded,
        Self::Decided,
        Self::ProvisioningFailed,
        Self::PullRequestMerged,
        Self::ChangedAfterApproval,
        Self::RotationDue,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DecisionNeeded => "decision_needed",
            Self::Decided => "decided",
            Self::ProvisioningFailed => "provisioning_failed",
            Self::PullRequestMerged => "pull_request_merged",
            Self::ChangedAfterApproval => "changed_after_approval",
            Self::RotationDue => "rotation_due",
        }
    }

    /// The kind a stored name names.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// What the account page calls it.
    pub fn label(self) -> &'static str {
        match self {
            Self::DecisionNeeded => "A change set waits for a decision (platform admins)",
            Self::Decided => "Your change set was approved or rejected",
            Self::ProvisioningFailed => "Provisioning failed or needs an admin",
            Self::PullRequestMerged => "A pull request was merged",
            Self::ChangedAfterApproval => "A pull request changed after its approval",
            Self::RotationDue => "A secret or certificate of your team needs attention",
        }
    }
}

/// One kind on the account page: whether the caller muted it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationSetting {
    pub kind: NotificationKind,
    pub muted: bool,
}

/// A delivery that gave up, as platform admins see it (never a secret: messages carry none).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedNotification {
    pub id: String,
    pub kind: String,
    /// `email` or `webhook`.
    pub channel: String,
    /// An e-mail address, or the webhook's name (`platform`, `team:<name>`).
    pub recipient: String,
    pub subject: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    /// RFC 3339.
    pub updated_at: String,
}

/// The caller's notification kinds and which they muted. Signed-in people only.
#[server(endpoint = "notification_settings")]
pub async fn notification_settings() -> Result<Vec<NotificationSetting>, AppError> {
    let principal = crate::access::ssr::require_principal()?;
    ssr_service()?.settings(&principal).await.map_err(crate::access::ssr::fail)
}

/// Mutes (or unmutes) one kind for the caller. Signed-in people only.
#[server(endpoint = "set_notification_muted")]
pub async fn set_notification_muted(kind: String, muted: bool) -> Result<(), AppError> {
    let principal = crate::access::ssr::require_principal()?;
    let Some(kind) = NotificationKind::from_name(&kind) else {
        let names: Vec<&str> = NotificationKind::ALL.iter().map(|k| k.as_str()).collect();
        return Err(crate::access::ssr::fail(AppError::Invalid(format!(
            "kind: must be one of {}.",
            names.join(", ")
        ))));
    };
    ssr_service()?.set_muted(&principal, kind, muted).await.map_err(crate::access::ssr::fail)
}

/// Deliveries that gave up after their retries. Platform admins only.
#[server(endpoint = "failed_notifications")]
pub async fn failed_notifications() -> Result<Vec<FailedNotification>, AppError> {
    let principal = crate::access::ssr::require_role(crate::access::Role::PlatformAdmin)?;
    ssr_service()?.failed(&principal).await.map_err(crate::access::ssr::fail)
}

/// How many change sets wait for a decision: a number for those who decide, `None` for others.
#[server(endpoint = "decision_queue_count")]
pub async fn decision_queue_count() -> Result<Option<u64>, AppError> {
    let Some(principal) = crate::access::ssr::principal() else { return Ok(None) };
    ssr::decisions_waiting(ssr_service()?.as_ref(), &principal)
        .await
        .map_err(crate::access::ssr::fail)
}

#[cfg(feature = "ssr")]
fn ssr_service() -> Result<std::sync::Arc<dyn ssr::NotificationService>, AppError> {
    use_context::<std::sync::Arc<dyn ssr::NotificationService>>()
        .ok_or_else(|| AppError::Internal("The notification service is not configured.".into()))
}

/// The service the server implements.
#[cfg(feature = "ssr")]
pub mod ssr {
    use super::{FailedNotification, NotificationKind, NotificationSetting};
    use crate::access::{AppError, Principal};

    /// Notification settings and deliveries; authorisation is done by the server functions.
    #[async_trait::async_trait]
    pub trait NotificationService: Send + Sync {
        async fn settings(&self, caller: &Principal) -> Result<Vec<NotificationSetting>, AppError>;
        async fn set_muted(
            &self,
            caller: &Principal,
            kind: NotificationKind,
            muted: bool,
        ) -> Result<(), AppError>;
        async fn failed(&self, admin: &Principal) -> Result<Vec<FailedNotification>, AppError>;
        async fn decision_queue(&self, admin: &Principal) -> Result<u64, AppError>;
    }

    /// The header's decision count of `caller`: a number for those who decide, `None` for
    /// others.
    pub async fn decisions_waiting(
        service: &dyn NotificationService,
        caller: &Principal,
    ) -> Result<Option<u64>, AppError> {
        if caller.may_make_decisions().is_err() {
            return Ok(None);
        }
        service.decision_queue(caller).await.map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_own_stored_name() {
        for kind in NotificationKind::ALL {
            assert_eq!(NotificationKind::from_name(kind.as_str()), Some(kind));
        }
        assert_eq!(NotificationKind::from_name("secret_value"), None);
    }
}
