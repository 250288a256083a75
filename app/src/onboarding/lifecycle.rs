//! Where an onboarding request is in its lifecycle.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where an onboarding request is in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum RequestStatus {
    /// Waiting for a platform admin.
    Submitted,
    /// Approved; provisioning not started yet.
    Approved,
    /// Rejected by a platform admin, with a reason.
    Rejected,
    /// Vault objects and the pull request are being created.
    Provisioning,
    /// The pull request to the GitOps repository is open.
    PrOpen,
    /// The pull request was merged; ArgoCD deploys the service.
    Merged,
    /// A provisioning step failed; an admin may retry.
    Failed,
    /// The service was removed from the mesh.
    Offboarded,
}

impl RequestStatus {
    /// Every state, in lifecycle order.
    pub const ALL: [RequestStatus; 8] = [
        Self::Submitted,
        Self::Approved,
        Self::Rejected,
        Self::Provisioning,
        Self::PrOpen,
        Self::Merged,
        Self::Failed,
        Self::Offboarded,
    ];

    /// The stable name stored in the database and used in URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Submitted => "submitted",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Provisioning => "provisioning",
            Self::PrOpen => "pr_open",
            Self::Merged => "merged",
            Self::Failed => "failed",
            Self::Offboarded => "offboarded",
        }
    }
}

impl fmt::Display for RequestStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status name that is not one of [`RequestStatus::ALL`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownStatus(pub String);

impl fmt::Display for UnknownStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown request status `{}`", self.0)
    }
}

impl std::error::Error for UnknownStatus {}

impl FromStr for RequestStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_round_trip_through_str_and_serde() {
        for status in RequestStatus::ALL {
            assert_eq!(status.as_str().parse::<RequestStatus>(), Ok(status));
            // The serde name equals the database name, so JSON and SQL agree.
            assert_eq!(serde_json::to_string(&status).unwrap(), format!("\"{status}\""));
        }
        assert_eq!("archived".parse::<RequestStatus>(), Err(UnknownStatus("archived".to_owned())));
    }
}
