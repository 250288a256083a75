//! Readiness of the platform meshport depends on (its database and Vault): the shared report
//! type, the server function the home page calls, and the probe trait the server implements.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// Whether one dependency answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckState {
    Ok,
    Unavailable,
}

/// The readiness of each dependency. Details of a failure go to the server log, not here:
/// this report is shown to anyone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Readiness {
    pub database: CheckState,
    pub vault: CheckState,
}

impl Readiness {
    /// Ready when every dependency answered.
    pub fn is_ready(&self) -> bool {
        self.database == CheckState::Ok && self.vault == CheckState::Ok
    }
}

/// Reports the readiness of meshport's dependencies.
#[server(endpoint = "platform_status")]
pub async fn platform_status() -> Result<Readiness, ServerFnError> {
    let probe = use_context::<std::sync::Arc<dyn ssr::ReadinessProbe>>()
        .ok_or_else(|| ServerFnError::new("the readiness probe is not configured"))?;
    Ok(probe.check().await)
}

#[cfg(feature = "ssr")]
pub mod ssr {
    use super::Readiness;

    /// Checks meshport's dependencies; implemented by the server, provided as context.
    #[async_trait::async_trait]
    pub trait ReadinessProbe: Send + Sync {
        async fn check(&self) -> Readiness;
    }
}
