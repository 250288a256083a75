//! The audit service: the `/audit` page's verification and newest events, and for the
//! `/api/audit/*` routes the recorded export, the evidence report and the chain's verification.

use app::access::{AppError, Principal};
use app::audit::ssr::AuditService;
use app::audit::{AuditEntry, AuditSummary};
use bytes::Bytes;
use serde_json::json;
use tokio::sync::mpsc;

use super::evidence::Report;
use super::export::{self, Format, Period};
use super::{Action, Actor, NewEvent, Outcome, Target, Verification, record_alone, verify};
use crate::store::{Store, StoreError};

/// How many events the page lists.
const RECENT: i64 = 50;

/// Reads the trail over meshport's store.
pub struct AuditReader {
    pub store: Store,
    /// Public key checkpoints must be signed with (base64), when meshport has one.
    pub trusted_key: Option<String>,
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

    /// The change-evidence report.
    pub async fn evidence(&self) -> Result<Report, AppError> {
        Report::read(&self.store).await.map_err(|error| {
            failed(error, "could not build the evidence report", "The report could not be built.")
        })
    }

    /// The whole chain recomputed, against the trusted key when there is one.
    pub async fn verify(&self) -> Result<Verification, AppError> {
        verify(&self.store, self.trusted_key.as_deref()).await.map_err(|error| {
            failed(error, "could not verify the audit trail", "The audit trail could not be read.")
        })
    }
}

#[async_trait::async_trait]
impl AuditService for AuditReader {
    async fn overview(&self) -> Result<AuditSummary, AppError> {
        let verification = verify(&self.store, self.trusted_key.as_deref()).await?;
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
