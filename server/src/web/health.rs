//! `/healthz` (the process answers) and `/readyz` (its database and Vault answer too).

use std::sync::Arc;
use std::time::Duration;

use app::platform::{CheckState, Readiness, ssr::ReadinessProbe};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::AppState;
use crate::store::Store;
use crate::vault::Vault;

/// How long one dependency may take to answer a readiness check.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// Liveness: the process is up and serving.
pub async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: 200 when the database and Vault answer, 503 otherwise, with a JSON report.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let report = state.readiness.check().await;
    let status = if report.is_ready() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(report))
}

/// Checks the real database and Vault.
pub struct DependencyProbe {
    store: Store,
    vault: Arc<Vault>,
}

impl DependencyProbe {
    pub fn new(store: Store, vault: Arc<Vault>) -> Self {
        Self { store, vault }
    }
}

#[async_trait::async_trait]
impl ReadinessProbe for DependencyProbe {
    async fn check(&self) -> Readiness {
        let (database, vault) =
            tokio::join!(judge("database", self.store.ping()), judge("vault", self.vault.health()));
        Readiness { database, vault }
    }
}

/// Runs one check with a timeout; failures are logged here and reported only as unavailable.
async fn judge<E: std::fmt::Display>(
    name: &str,
    check: impl Future<Output = Result<(), E>>,
) -> CheckState {
    match tokio::time::timeout(CHECK_TIMEOUT, check).await {
        Ok(Ok(())) => CheckState::Ok,
        Ok(Err(error)) => {
            tracing::warn!(dependency = name, %error, "readiness check failed");
            CheckState::Unavailable
        }
        Err(_) => {
            tracing::warn!(dependency = name, timeout = ?CHECK_TIMEOUT, "readiness check timed out");
            CheckState::Unavailable
        }
    }
}
