//! The audit service behind the `/audit` page: verification and the newest events.

use app::access::AppError;
use app::audit::ssr::AuditService;
use app::audit::{AuditEntry, AuditSummary};

use super::verify;
use crate::requests::internal;
use crate::store::Store;

/// How many events the page lists.
const RECENT: i64 = 50;

/// Reads the trail over meshport's store.
pub struct AuditReader {
    pub store: Store,
    /// Public key checkpoints must be signed with (base64), when meshport has one.
    pub trusted_key: Option<String>,
}

#[async_trait::async_trait]
impl AuditService for AuditReader {
    async fn overview(&self) -> Result<AuditSummary, AppError> {
        let verification =
            verify(&self.store, self.trusted_key.as_deref()).await.map_err(internal)?;
        let events = self.store.recent_audit_events(RECENT).await.map_err(internal)?;
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
