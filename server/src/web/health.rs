//! `/healthz` (the process answers) and `/readyz` (its database and Vault answer too).

use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// A report is reused for this long, so that visitors and probes cannot make meshport call
/// Vault (and fill its audit log) on every request.
const REPORT_TTL: Duration = Duration::from_secs(5);

/// Checks the real database and Vault, at most once per [`REPORT_TTL`].
pub struct DependencyProbe {
    store: Store,
    vault: Arc<Vault>,
    /// The last report and when it was made; the lock also makes concurrent callers share one
    /// check.
    last: tokio::sync::Mutex<Option<(Instant, Readiness)>>,
}

impl DependencyProbe {
    pub fn new(store: Store, vault: Arc<Vault>) -> Self {
        Self { store, vault, last: tokio::sync::Mutex::new(None) }
    }
}

#[async_trait::async_trait]
impl ReadinessProbe for DependencyProbe {
    async fn check(&self) -> Readiness {
        let mut last = self.last.lock().await;
        if let Some((made, report)) = last.as_ref()
            && made.elapsed() < REPORT_TTL
        {
            return report.clone();
        }
        let (database, vault) =
            tokio::join!(judge("database", self.store.ping()), judge("vault", self.vault.health()));
        let report = Readiness { database, vault };
        *last = Some((Instant::now(), report.clone()));
        report
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
