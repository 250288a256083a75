//! The audit trail as the `/audit` page sees it: whether the chain verifies, and the newest
//! events. Downloads are plain links to the server's `/api/audit/*` routes.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::access::AppError;

/// One event, as listed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub seq: i64,
    pub occurred_at: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
}

/// The state of the trail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditSummary {
    pub events: u64,
    pub checkpoints: u64,
    /// `None` when the chain and its checkpoints verify; otherwise where and why not.
    pub broken: Option<(i64, String)>,
    /// The newest events, newest first.
    pub recent: Vec<AuditEntry>,
}

/// The trail's verification and newest events. Auditors and platform admins only.
#[server(endpoint = "audit_overview")]
pub async fn audit_overview() -> Result<AuditSummary, AppError> {
    use crate::access::ssr as access;
    let principal = access::require_principal()?;
    access::check(principal.may_read_audit())?;
    let service = use_context::<std::sync::Arc<dyn ssr::AuditService>>()
        .ok_or_else(|| AppError::Internal("The audit service is not configured.".into()))?;
    service.overview().await.map_err(access::fail)
}

/// The service the server implements.
#[cfg(feature = "ssr")]
pub mod ssr {
    use super::AuditSummary;
    use crate::access::AppError;

    /// Reads the audit trail.
    #[async_trait::async_trait]
    pub trait AuditService: Send + Sync {
        async fn overview(&self) -> Result<AuditSummary, AppError>;
    }
}
