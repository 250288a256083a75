//! The one judgement of everything that expires or is due for rotation: certificates, Vault PKI
//! certificates and KV secrets alike get a [`RotationState`] and a reason a person can act on.

use serde::{Deserialize, Serialize};

/// How an expiring item stands, from best to worst.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RotationState {
    /// Nothing to do.
    Ok,
    /// Renewal or rotation is near.
    DueSoon,
    /// The rotation period has passed (still valid, but out of policy).
    Overdue,
    /// Renewal is failing, or the item is unusable (revoked, deleted, never written).
    Failing,
    /// Past its expiry.
    Expired,
}

impl RotationState {
    /// Every state, best first.
    pub const ALL: [RotationState; 5] =
        [Self::Ok, Self::DueSoon, Self::Overdue, Self::Failing, Self::Expired];

    /// The state's name in metrics and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::DueSoon => "due_soon",
            Self::Overdue => "overdue",
            Self::Failing => "failing",
            Self::Expired => "expired",
        }
    }

    /// Whether moving into this state is worth telling someone.
    pub fn needs_attention(self) -> bool {
        self != Self::Ok
    }

    /// The label shown in the UI.
    pub fn label(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::DueSoon => "Due soon",
            Self::Overdue => "Overdue",
            Self::Failing => "Failing",
            Self::Expired => "Expired",
        }
    }
}

/// A state with the reason for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Judgement {
    /// The state.
    pub state: RotationState,
    /// Why, in a sentence.
    pub reason: String,
}

impl Judgement {
    /// A judgement of `state` because of `reason`.
    pub fn new(state: RotationState, reason: impl Into<String>) -> Self {
        Self { state, reason: reason.into() }
    }
}
