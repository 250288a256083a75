//! The one judgement of everything that expires or is due for rotation: certificates, Vault PKI
//! certificates and KV secrets alike get a [`RotationState`] and a reason a person can act on,
//! and the rule that judges a certificate by its validity ([`judge_certificate`]), which the
//! Vault PKI scan and the cluster readers (cert-manager, Linkerd) share.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How an expiring item stands, from best to worst.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
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

/// Judges a certificate by its validity: due soon once less than a third of its lifetime is
/// left (where cert-manager and the Vault Agent renew by default), expired after `notAfter`.
pub fn judge_certificate(
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Judgement {
    if now >= not_after {
        let ago = (now - not_after).num_hours();
        return Judgement::new(RotationState::Expired, format!("expired {ago} hours ago"));
    }
    if let Some(revoked) = revoked_at {
        return Judgement::new(
            RotationState::Failing,
            format!("revoked at {}", revoked.to_rfc3339()),
        );
    }
    let left = not_after - now;
    let hours = left.num_hours();
    if left * 3 <= not_after - not_before {
        return Judgement::new(
            RotationState::DueSoon,
            format!("expires in {hours} hours, under a third of its lifetime"),
        );
    }
    Judgement::new(RotationState::Ok, format!("expires in {hours} hours"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    #[test]
    fn certificates_are_due_with_a_third_of_their_life_left() {
        let (start, end) = (at("2026-01-01T00:00:00Z"), at("2026-01-04T00:00:00Z"));
        let judge = |now, revoked| judge_certificate(start, end, revoked, at(now)).state;
        assert_eq!(judge("2026-01-02T00:00:00Z", None), RotationState::Ok);
        assert_eq!(judge("2026-01-03T00:00:00Z", None), RotationState::DueSoon);
        assert_eq!(judge("2026-01-04T00:00:00Z", None), RotationState::Expired);
        let revoked = Some(at("2026-01-01T12:00:00Z"));
        assert_eq!(judge("2026-01-02T00:00:00Z", revoked), RotationState::Failing);
    }
}
