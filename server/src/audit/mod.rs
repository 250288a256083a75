//! The audit trail: who did what, to what, with which outcome, written in the same transaction
//! as the change it records. Events form a hash chain (each `hash` is SHA-256 over the event's
//! canonical encoding, which includes the previous event's hash), the table refuses UPDATE and
//! DELETE, and [`verify`] recomputes the chain and names the first event that does not fit.

pub mod checkpoint;
pub mod evidence;
pub mod export;
mod overview;
pub mod refusals;
pub mod sink;

pub use overview::{AuditReader, evidence_event};

use chrono::{SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use app::access::Principal;

pub use crate::store::AuditEvent;
use crate::store::{Store, StoreError, Tx};

/// The `prev_hash` of the first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    SignIn,
    SignOut,
    RequestSubmitted,
    RequestApproved,
    RequestRejected,
    RequestWithdrawn,
    ProvisioningStep,
    PullRequestOpened,
    PullRequestMerged,
    PullRequestClosed,
    /// A pull request was merged with a head other than the approved one: commits were pushed
    /// to its branch after approval.
    ChangedAfterApproval,
    /// A platform admin approved the head a pull request was merged with after such a change.
    HeadApproved,
    SecretRotated,
    ServiceOffboarded,
    ApiTokenCreated,
    ApiTokenRevoked,
    ExportPerformed,
    /// A platform admin adopted Vault objects meshport did not create for a service.
    VaultObjectAdopted,
    /// Re-validation at the identity provider found other roles or teams for a user.
    UserAccessChanged,
    /// Re-validation found a user disabled at the provider or without any meshport group: every
    /// session and token revoked.
    UserDeprovisioned,
    /// A platform admin disabled a user (every session and token revoked) or enabled them.
    UserDisabled,
    UserEnabled,
    /// A session was ended by an admin.
    SessionRevoked,
    /// A privileged attempt was refused (a forbidden call, a webhook with a bad signature).
    AccessRefused,
    /// One actor's refusals beyond the per-minute limit, summed up.
    AccessRefusalsSuppressed,
    /// A rejected request's staged secret values were deleted from Vault (paths only).
    VaultValuesDiscarded,
}

impl Action {
    /// The stable name stored and exported.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SignIn => "sign_in",
            Self::SignOut => "sign_out",
            Self::RequestSubmitted => "request_submitted",
            Self::RequestApproved => "request_approved",
            Self::RequestRejected => "request_rejected",
            Self::RequestWithdrawn => "request_withdrawn",
            Self::ProvisioningStep => "provisioning_step",
            Self::PullRequestOpened => "pull_request_opened",
            Self::PullRequestMerged => "pull_request_merged",
            Self::PullRequestClosed => "pull_request_closed",
            Self::ChangedAfterApproval => "pull_request_changed_after_approval",
            Self::HeadApproved => "pull_request_head_approved",
            Self::SecretRotated => "secret_rotated",
            Self::ServiceOffboarded => "service_offboarded",
            Self::ApiTokenCreated => "api_token_created",
            Self::ApiTokenRevoked => "api_token_revoked",
            Self::ExportPerformed => "export_performed",
            Self::VaultObjectAdopted => "vault_object_adopted",
            Self::UserAccessChanged => "user_access_changed",
            Self::UserDeprovisioned => "user_deprovisioned",
            Self::UserDisabled => "user_disabled",
            Self::UserEnabled => "user_enabled",
            Self::SessionRevoked => "session_revoked",
            Self::AccessRefused => "access_refused",
            Self::AccessRefusalsSuppressed => "access_refusals_suppressed",
            Self::VaultValuesDiscarded => "vault_values_discarded",
        }
    }
}

/// How it ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Failure,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
        }
    }
}

/// Who acted: a person (with the roles they held) or meshport itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    pub user_id: Option<String>,
    pub subject: String,
    pub email: String,
    pub roles: Vec<String>,
}

impl Actor {
    /// meshport acting on its own (provisioning, polling).
    pub fn system() -> Self {
        Self {
            user_id: None,
            subject: "meshport".into(),
            email: String::new(),
            roles: vec!["system".into()],
        }
    }
}

impl From<&Principal> for Actor {
    fn from(principal: &Principal) -> Self {
        Self {
            user_id: Some(principal.user_id.clone()),
            subject: principal.subject.clone(),
            email: principal.email.clone(),
            roles: principal.roles.iter().map(|r| r.as_str().to_owned()).collect(),
        }
    }
}

/// What was acted on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl Target {
    /// A target of `kind` named `name` in `namespace` (empty for cluster-wide things).
    pub fn new(kind: &str, namespace: &str, name: &str) -> Self {
        Self { kind: kind.to_owned(), namespace: namespace.to_owned(), name: name.to_owned() }
    }
}

/// An event about to be recorded. `details` must never hold a secret value.
#[derive(Clone, Debug)]
pub struct NewEvent {
    pub actor: Actor,
    pub action: Action,
    pub target: Target,
    pub request_id: Option<Uuid>,
    pub details: serde_json::Value,
    pub outcome: Outcome,
}

// The hash is the chain's rule, so it lives here beside `verify`, not with the row.
impl AuditEvent {
    /// SHA-256 (hex) over the canonical encoding: a JSON array of every field but `hash`, in a
    /// fixed order. Text fields are hashed exactly as stored.
    pub fn compute_hash(&self) -> String {
        let canonical = serde_json::json!([
            self.seq,
            self.id,
            self.occurred_at,
            self.actor_user_id,
            self.actor_subject,
            self.actor_email,
            self.actor_roles,
            self.action,
            self.target_kind,
            self.target_namespace,
            self.target_name,
            self.request_id,
            self.details,
            self.outcome,
            self.prev_hash,
        ]);
        let digest = Sha256::digest(canonical.to_string().as_bytes());
        digest.iter().map(|byte| format!("{byte:02x}")).collect()
    }
}

/// Appends `event` to the chain inside `tx`; it becomes visible when `tx` commits, together with
/// the change it records.
#[tracing::instrument(skip_all, fields(action = event.action.as_str()))]
pub async fn record(tx: &mut Tx, event: NewEvent) -> Result<AuditEvent, StoreError> {
    let (seq, prev_hash) = tx.advance_audit_head().await?;
    let mut stored = AuditEvent {
        seq,
        id: Uuid::new_v4().to_string(),
        occurred_at: Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true),
        actor_user_id: event.actor.user_id,
        actor_subject: event.actor.subject,
        actor_email: event.actor.email,
        actor_roles: event.actor.roles.join(","),
        action: event.action.as_str().to_owned(),
        target_kind: event.target.kind,
        target_namespace: event.target.namespace,
        target_name: event.target.name,
        request_id: event.request_id.map(|id| id.to_string()),
        details: event.details.to_string(),
        outcome: event.outcome.as_str().to_owned(),
        prev_hash,
        hash: String::new(),
    };
    stored.hash = stored.compute_hash();
    tx.append_audit_event(&stored).await?;
    Ok(stored)
}

/// Records `event` in a transaction of its own (for events that change nothing else).
pub async fn record_alone(store: &Store, event: NewEvent) -> Result<AuditEvent, StoreError> {
    let mut tx = store.begin().await?;
    let recorded = record(&mut tx, event).await?;
    tx.commit().await?;
    Ok(recorded)
}

/// What [`verify`] found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Verification {
    /// Events read.
    pub events: u64,
    /// The hash of the last event (the genesis hash when there are none).
    pub last_hash: String,
    /// Signed checkpoints checked.
    pub checkpoints: u64,
    /// The first event that breaks the chain, and why.
    pub first_broken: Option<BrokenEvent>,
    /// Events up to this number were verified by an earlier run and not recomputed (only the
    /// last of them was re-read); 0 for a full check.
    pub verified_before: i64,
    /// Checkpoints found in an external sink but not in the database (`verify --against`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deleted_checkpoints: Vec<i64>,
}

/// A prefix of the chain an earlier run verified: its last event's number and hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedPrefix {
    pub seq: i64,
    pub hash: String,
}

impl Verification {
    /// The prefix this run verified, if it found the chain intact.
    pub fn intact_prefix(&self) -> Option<VerifiedPrefix> {
        self.first_broken
            .is_none()
            .then(|| VerifiedPrefix { seq: self.events as i64, hash: self.last_hash.clone() })
    }
}

/// An event that does not fit the chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BrokenEvent {
    /// Its sequence number (or the number that was expected there).
    pub seq: i64,
    pub reason: String,
}

/// Recomputes the whole chain in sequence order, streaming (constant memory), and stops at the
/// first event whose number, link or hash is wrong, or that differs from a signed checkpoint.
/// Checkpoint signatures are checked against the `trusted` public keys (base64 Ed25519; each
/// checkpoint names its key), or, without any, against the key the first checkpoint carries.
/// A checkpoint past the last event shows a cut tail.
pub async fn verify(store: &Store, trusted: &[String]) -> Result<Verification, StoreError> {
    verify_after(store, trusted, None).await
}

/// [`verify`], trusting `prefix` (verified by an earlier run): only the events after it are
/// recomputed, so a page load costs the new events, not the whole chain. The prefix's last
/// event must still be there with the remembered hash, and every checkpoint is still checked;
/// an edit inside the prefix that keeps that last hash needs the full check to be found.
pub async fn verify_after(
    store: &Store,
    trusted: &[String],
    prefix: Option<&VerifiedPrefix>,
) -> Result<Verification, StoreError> {
    verify_with(store, trusted, prefix, &[]).await
}

/// A full [`verify`] that also uses the checkpoints of an external sink: one there but not in
/// the database was deleted from it (listed in `deleted_checkpoints`), one that differs shows a
/// rewrite, and the newest one shows a tail cut together with the database's checkpoints.
pub async fn verify_against(
    store: &Store,
    trusted: &[String],
    external: &[checkpoint::Checkpoint],
) -> Result<Verification, StoreError> {
    verify_with(store, trusted, None, external).await
}

#[tracing::instrument(skip_all)]
async fn verify_with(
    store: &Store,
    trusted: &[String],
    prefix: Option<&VerifiedPrefix>,
    external: &[checkpoint::Checkpoint],
) -> Result<Verification, StoreError> {
    let mut checkpoints = checkpoint::all(store).await?;
    let mut verification = Verification {
        events: 0,
        last_hash: GENESIS_HASH.to_owned(),
        checkpoints: checkpoints.len() as u64,
        first_broken: None,
        verified_before: 0,
        deleted_checkpoints: Vec::new(),
    };
    let broken = |seq: i64, reason: String| Some(BrokenEvent { seq, reason });
    let stored: std::collections::HashMap<i64, checkpoint::Checkpoint> =
        checkpoints.iter().map(|c| (c.seq, c.clone())).collect();
    for outside in external {
        match stored.get(&outside.seq) {
            Some(inside) if inside != outside => {
                verification.first_broken = broken(
                    outside.seq,
                    "the database's checkpoint of this event differs from the external sink's copy: the chain was rewritten".into(),
                );
                return Ok(verification);
            }
            Some(_) => {}
            None => {
                verification.deleted_checkpoints.push(outside.seq);
                checkpoints.push(outside.clone());
            }
        }
    }
    checkpoints.sort_by_key(|c| c.seq);
    // Without a trusted key, every checkpoint must at least carry the first one's key.
    let first_key = checkpoints.first().map(|c| c.public_key.clone()).unwrap_or_default();
    for point in &checkpoints {
        let checked = if trusted.is_empty() {
            checkpoint::signature_is_valid(point, &first_key).then_some(()).ok_or_else(|| {
                format!(
                    "the checkpoint signed at {} does not carry a valid signature of the first checkpoint's key",
                    point.signed_at
                )
            })
        } else {
            checkpoint::check_signature(point, trusted)
        };
        if let Err(reason) = checked {
            verification.first_broken = broken(point.seq, reason);
            return Ok(verification);
        }
    }
    let signed: std::collections::HashMap<i64, &checkpoint::Checkpoint> =
        checkpoints.iter().map(|c| (c.seq, c)).collect();
    let mut after = 0;
    if let Some(prefix) = prefix.filter(|p| p.seq > 0) {
        let last = store.audit_page(prefix.seq - 1, prefix.seq).await?;
        if last.first().is_none_or(|event| event.hash != prefix.hash) {
            verification.first_broken = broken(
                prefix.seq,
                "it is missing or its hash changed since it was verified: the chain was rewritten"
                    .into(),
            );
            return Ok(verification);
        }
        (verification.events, verification.last_hash) = (prefix.seq as u64, prefix.hash.clone());
        (verification.verified_before, after) = (prefix.seq, prefix.seq);
    }
    loop {
        let events = store.audit_page(after, i64::MAX).await?;
        let Some(last) = events.last() else { break };
        after = last.seq;
        for event in events {
            let expected = verification.events as i64 + 1;
            verification.first_broken = if event.seq != expected {
                broken(expected, format!("event {expected} is missing (found {} next)", event.seq))
            } else if event.prev_hash != verification.last_hash {
                broken(expected, "its prev_hash does not match the previous event's hash: an event before it was removed or reordered".into())
            } else if event.compute_hash() != event.hash {
                broken(expected, "its contents do not match its hash: the event was edited".into())
            } else if signed.get(&event.seq).is_some_and(|c| c.hash != event.hash) {
                broken(
                    expected,
                    "its hash differs from the signed checkpoint: the chain was rewritten".into(),
                )
            } else {
                None
            };
            if verification.first_broken.is_some() {
                return Ok(verification);
            }
            verification.events += 1;
            verification.last_hash = event.hash;
        }
    }
    if let Some(last) = checkpoints.last().filter(|c| c.seq > verification.events as i64) {
        let source =
            if stored.contains_key(&last.seq) { "" } else { " (kept in the external sink)" };
        verification.first_broken = broken(
            verification.events as i64 + 1,
            format!(
                "events after {} were removed: the checkpoint signed at {}{source} covers event {}",
                verification.events, last.signed_at, last.seq
            ),
        );
    } else if let Some(first) = verification.deleted_checkpoints.first() {
        verification.first_broken = broken(
            *first,
            format!(
                "the checkpoints of events {:?} are in the external sink but were deleted from the database",
                verification.deleted_checkpoints
            ),
        );
    }
    Ok(verification)
}
