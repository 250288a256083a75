//! Where a change set (an onboarding, a modification or an offboarding of a service) is in its
//! lifecycle, and the one table of moves between states that the store enforces.

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
    /// The service was removed from the mesh (set on the change set that was live).
    Offboarded,
    /// Given up before it was applied, by its requester or an admin.
    Withdrawn,
}

impl RequestStatus {
    /// Every state, in lifecycle order.
    pub const ALL: [RequestStatus; 9] = [
        Self::Submitted,
        Self::Approved,
        Self::Rejected,
        Self::Provisioning,
        Self::PrOpen,
        Self::Merged,
        Self::Failed,
        Self::Offboarded,
        Self::Withdrawn,
    ];

    /// Every allowed move, `(from, to, why)`: the lifecycle in one table. The store refuses any
    /// move not listed here.
    pub const TRANSITIONS: [(RequestStatus, RequestStatus, &'static str); 14] = [
        (Self::Submitted, Self::Approved, "a second person approves it"),
        (Self::Submitted, Self::Rejected, "a platform admin rejects it, with a reason"),
        (Self::Submitted, Self::Withdrawn, "its requester or an admin withdraws it"),
        (Self::Approved, Self::Provisioning, "the job engine starts applying it"),
        (Self::Approved, Self::Failed, "its queued job was cancelled"),
        (Self::Provisioning, Self::PrOpen, "Vault is applied and the pull request is open"),
        (Self::Provisioning, Self::Merged, "the pull request merged before its step was recorded"),
        (Self::Provisioning, Self::Failed, "a step failed for good, or its job was cancelled"),
        (Self::Failed, Self::Provisioning, "an admin retries it"),
        (Self::Failed, Self::Withdrawn, "an admin gives it up"),
        (Self::PrOpen, Self::Merged, "its pull request merged with the approved head"),
        (Self::PrOpen, Self::Offboarded, "an offboarding of the service completed"),
        (Self::Merged, Self::Offboarded, "an offboarding of the service completed"),
        (Self::Failed, Self::Offboarded, "an offboarding of the service completed"),
    ];

    /// Whether the lifecycle allows moving from `self` to `to`.
    pub fn may_move_to(self, to: RequestStatus) -> bool {
        Self::TRANSITIONS.iter().any(|&(from, next, _)| from == self && next == to)
    }

    /// Whether nothing can happen to it any more.
    pub fn is_final(self) -> bool {
        !Self::TRANSITIONS.iter().any(|&(from, _, _)| from == self)
    }

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
            Self::Withdrawn => "withdrawn",
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

/// What a change set does to its service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum ChangeKind {
    /// The service joins the mesh: its first version.
    Onboard,
    /// A live service changes: the proposed spec replaces the live one.
    Modify,
    /// The service leaves the mesh.
    Offboard,
    /// A live service's files rendered again by a newer generator: the spec is unchanged, no
    /// Vault object changes, the pull request holds only the re-rendered files.
    Upgrade,
}

impl ChangeKind {
    pub const ALL: [ChangeKind; 4] = [Self::Onboard, Self::Modify, Self::Offboard, Self::Upgrade];

    /// The stable name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Onboard => "onboard",
            Self::Modify => "modify",
            Self::Offboard => "offboard",
            Self::Upgrade => "upgrade",
        }
    }
}

impl fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ChangeKind {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| UnknownStatus(s.to_owned()))
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
        for kind in ChangeKind::ALL {
            assert_eq!(kind.as_str().parse::<ChangeKind>(), Ok(kind));
        }
    }

    #[test]
    fn the_lifecycle_table_reaches_every_state_and_ends_in_final_ones() {
        use RequestStatus::*;
        assert!(Submitted.may_move_to(Approved));
        assert!(!Submitted.may_move_to(Merged), "nothing lands without a decision");
        assert!(!Rejected.may_move_to(Approved), "a rejection is final");
        assert!(!Merged.may_move_to(Submitted));
        for status in RequestStatus::ALL {
            let reached = status == Submitted
                || RequestStatus::TRANSITIONS.iter().any(|&(_, to, _)| to == status);
            assert!(reached, "{status} is unreachable");
        }
        let finals: Vec<_> = RequestStatus::ALL.into_iter().filter(|s| s.is_final()).collect();
        assert_eq!(finals, [Rejected, Offboarded, Withdrawn]);
        // Each move is listed once.
        for (i, a) in RequestStatus::TRANSITIONS.iter().enumerate() {
            assert!(RequestStatus::TRANSITIONS[i + 1..].iter().all(|b| (a.0, a.1) != (b.0, b.1)));
        }
    }
}
