//! The audit service: the `/audit` page's verification and newest events, and for the
//! `/api/audit/*` routes the recorded export, the evidence report and the chain's verification,
//! incremental after the first run.

use app::access::{AppError, Principal};
use app::audit::ssr::AuditService;
use app::audit::{AuditEntry, AuditSummary};
use bytes::Bytes;
use serde_json::json;
use tokio::sync::mpsc;

use super::checkpoint::{self, CheckpointKey};
use super::evidence;
use super::export::{self, Format, Period};
use super::{
    Action, Actor, NewEvent, Outcome, Target, Verification, VerifiedPrefix, record_alone,
    verify_after,
};
use crate::store::{Store, StoreError};

/// How many events the page lists.
const RECENT: i64 = 50;

/// Reads the trail over meshport's store.
pub struct AuditReader {
    pub store: Store,
    /// Public keys (base64) checkpoints may be signed with; empty when meshport has none.
    pub trusted: Vec<String>,
    /// Signs the verified prefix, so that it is also recorded in the database and outlives the
    /// process (without a key it is kept in memory only: an unsigned value in the database
    /// could be edited with the chain).
    pub key: Option<CheckpointKey>,
    /// The prefix this process verified last, so the next verification recomputes only newer
    /// events.
    pub verified: std::sync::Mutex<Option<VerifiedPrefix>>,
}

/// The event of a change-evidence report handed out as `format`, by `actor`.
pub fn evidence_event(actor: Actor, format: Format) -> NewEvent {
    NewEvent {
        actor,
        action: Action::ExportPerformed,
        target: Target::new("evidence_report", "", format.extension()),
        request_id: None,
        details: json!({ "report": "change_evidence", "format": format.extension() }),
        outcome: Outcome::Success,
    }
}

/// Logs `error` as `what` and answers with `message`.
fn failed(error: StoreError, what: &str, message: &str) -> AppError {
    tracing::error!(%error, "{what}");
    AppError::Internal(message.into())
}

impl AuditReader {
    /// Records that `auditor` exports `period` as `format`, then starts the export; nothing is
    /// exported unless the record is written.
    pub async fn export(
        &self,
        auditor: &Principal,
        period: Period,
        format: Format,
    ) -> Result<mpsc::Receiver<Result<Bytes, StoreError>>, AppError> {
        let event = NewEvent {
            actor: Actor::from(auditor),
            action: Action::ExportPerformed,
            target: Target::new("audit_trail", "", format.extension()),
            request_id: None,
            details: json!({ "format": format.extension(), "from": period.from, "to": period.to }),
            outcome: Outcome::Success,
        };
        record_alone(&self.store, event).await.map_err(|error| {
            failed(
                error,
                "could not record an export",
                "The export could not be recorded; try again.",
            )
        })?;
        Ok(export::stream(self.store.clone(), period, format))
    }

    /// Records that `auditor` downloads the change-evidence report as `format`, then starts it,
    /// streamed; nothing is sent unless the record is written.
    pub async fn evidence(
        &self,
        auditor: &Principal,
        format: Format,
    ) -> Result<mpsc::Receiver<Result<Bytes, StoreError>>, AppError> {
        if format == Format::Ocsf {
            return evidence::stream(self.store.clone(), format).map_err(AppError::Invalid);
        }
        record_alone(&self.store, evidence_event(Actor::from(auditor), format)).await.map_err(
            |error| {
                failed(
                    error,
                    "could not record an evidence report",
                    "The report could not be recorded; try again.",
                )
            },
        )?;
        evidence::stream(self.store.clone(), format).map_err(AppError::Invalid)
    }

    /// A reader that has verified nothing yet in this process.
    pub fn new(store: Store, trusted: Vec<String>, key: Option<CheckpointKey>) -> Self {
        Self { store, trusted, key, verified: std::sync::Mutex::default() }
    }

    /// The chain verified against the trusted key when there is one: in `full`, recomputed from
    /// the first event; otherwise only the events after the prefix verified last time.
    pub async fn verify(&self, full: bool) -> Result<Verification, AppError> {
        let prefix = if full { None } else { self.prefix().await };
        let verification =
            verify_after(&self.store, &self.trusted, prefix.as_ref()).await.map_err(|error| {
                failed(
                    error,
                    "could not verify the audit trail",
                    "The audit trail could not be read.",
                )
            })?;
        let (grew, broke) = {
            let mut remembered = self.verified.lock().unwrap_or_else(|e| e.into_inner());
            let old = remembered.as_ref().map_or(0, |old| old.seq);
            match (verification.intact_prefix(), &verification.first_broken) {
                // Runs overlap: keep the longest prefix.
                (Some(new), _) if old <= new.seq => {
                    *remembered = Some(new.clone());
                    (Some(new).filter(|new| new.seq > old), false)
                }
                // A break inside what was remembered: start again from the first event.
                (_, Some(broken)) if broken.seq <= old => {
                    *remembered = None;
                    (None, true)
                }
                _ => (None, false),
            }
        };
        let recorded = match (&self.key, grew) {
            (Some(key), Some(new)) => Some(
                self.store
                    .record_verified_prefix(&key.sign_verified_prefix(new.seq, new.hash))
                    .await,
            ),
            _ if broke => Some(self.store.forget_verified_prefix().await),
            _ => None,
        };
        if let Some(Err(error)) = recorded {
            tracing::warn!(%error, "could not record the verified prefix of the audit trail");
        }
        Ok(verification)
    }

    /// Where verification may start: the prefix this process verified, or (after a restart)
    /// the recorded one if a trusted key signed it.
    async fn prefix(&self) -> Option<VerifiedPrefix> {
        if let Some(prefix) = self.verified.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            return Some(prefix);
        }
        let recorded = match self.store.verified_prefix().await {
            Ok(recorded) => recorded?,
            Err(error) => {
                tracing::warn!(%error, "could not read the verified prefix of the audit trail");
                return None;
            }
        };
        match checkpoint::check_verified_prefix(&recorded, &self.trusted) {
            Ok(()) => Some(VerifiedPrefix { seq: recorded.seq, hash: recorded.hash }),
            Err(reason) => {
                tracing::warn!(%reason, "the recorded verified prefix is not trusted: verifying the whole audit trail");
                None
            }
        }
    }
}

#[async_trait::async_trait]
impl AuditService for AuditReader {
    async fn overview(&self) -> Result<AuditSummary, AppError> {
        let verification = self.verify(false).await?;
        let events = self.store.recent_audit_events(RECENT).await?;
        Ok(AuditSummary {
            events: verification.events,
            checkpoints: verification.checkpoints,
            broken: verification.first_broken.map(|b| (b.seq, b.reason)),
            recent: events
                .into_iter()
                .map(|e| AuditEntry {
                    seq: e.seq,
                    occurred_at: e.occurred_at,
                    actor: if e.actor_email.is_empty() { e.actor_subject } else { e.actor_email },
                    action: e.action,
                    target: [e.target_kind, e.target_namespace, e.target_name]
                        .into_iter()
                        .filter(|part| !part.is_empty())
                        .collect::<Vec<_>>()
                        .join(" "),
                    outcome: e.outcome,
                })
                .collect(),
        })
    }
}
