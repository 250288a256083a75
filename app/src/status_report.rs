//! Certificate and rotation status as the pages see it: every item that expires or is due for
//! rotation (cert-manager certificates, the Linkerd trust anchor, identity issuer and trust
//! bundle, Vault PKI certificates, KV secrets), each judged with the one [`Judgement`] model, and
//! the health of the sources they were read from. The server refreshes these in the background;
//! the server functions only read the latest report.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::access::AppError;
use crate::rotation::{Judgement, RotationState};

/// What an item is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    /// A cert-manager `Certificate`.
    Certificate,
    /// The Linkerd trust anchor (root of the mesh identities).
    TrustAnchor,
    /// The Linkerd identity issuer (intermediate CA signing proxy certificates).
    IdentityIssuer,
    /// The trust bundle ConfigMap the proxies trust.
    TrustBundle,
    /// A certificate issued by Vault's PKI engine.
    VaultCertificate,
    /// A KV v2 secret with a rotation period.
    Secret,
}

impl ItemKind {
    /// The kind's name in keys, metrics and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Certificate => "certificate",
            Self::TrustAnchor => "trust_anchor",
            Self::IdentityIssuer => "identity_issuer",
            Self::TrustBundle => "trust_bundle",
            Self::VaultCertificate => "vault_certificate",
            Self::Secret => "secret",
        }
    }

    /// The kind for people.
    pub fn label(self) -> &'static str {
        match self {
            Self::Certificate => "Certificate",
            Self::TrustAnchor => "Linkerd trust anchor",
            Self::IdentityIssuer => "Linkerd identity issuer",
            Self::TrustBundle => "Linkerd trust bundle",
            Self::VaultCertificate => "Vault PKI certificate",
            Self::Secret => "KV secret",
        }
    }
}

/// One item that expires or is due for rotation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusItem {
    pub kind: ItemKind,
    /// Where it was read: a cluster's name, or `vault`.
    pub source: String,
    pub namespace: String,
    pub name: String,
    /// The onboarded service it belongs to, `namespace/service`, when known.
    pub service: Option<String>,
    /// Unix seconds: a certificate's `notAfter`, a secret's rotation due date.
    pub expires_at: Option<i64>,
    /// Unix seconds: when cert-manager renews a certificate (`renewalTime`).
    pub renews_at: Option<i64>,
    pub judgement: Judgement,
}

impl StatusItem {
    /// Identifies the item across refreshes (alerts are deduplicated by it).
    pub fn key(&self) -> String {
        format!("{}/{}/{}/{}", self.source, self.kind.as_str(), self.namespace, self.name)
    }

    /// The date that matters most: the renewal time if there is one, else the expiry.
    pub fn next_date(&self) -> Option<i64> {
        self.renews_at.or(self.expires_at)
    }
}

/// How reading one source went.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceHealth {
    /// A cluster's name, or `vault`.
    pub name: String,
    /// Whether the last attempt succeeded.
    pub reachable: bool,
    /// Why the last attempt failed.
    pub error: Option<String>,
    /// Unix seconds of the last successful read; its items are the ones shown.
    pub last_success: Option<i64>,
    /// Unix seconds of the next attempt, when backing off after failures.
    pub retry_at: Option<i64>,
}

/// Everything the status pages show, as of one refresh.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    /// Unix seconds of the refresh.
    pub generated_at: i64,
    pub sources: Vec<SourceHealth>,
    /// Worst state first, then soonest date.
    pub items: Vec<StatusItem>,
}

impl StatusReport {
    /// How many items are in each state, best first, every state listed.
    pub fn counts(&self) -> Vec<(RotationState, usize)> {
        RotationState::ALL
            .into_iter()
            .map(|state| (state, self.items.iter().filter(|i| i.judgement.state == state).count()))
            .collect()
    }
}

/// The platform overview.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusOverview {
    pub generated_at: i64,
    pub sources: Vec<SourceHealth>,
    pub counts: Vec<(RotationState, usize)>,
    /// Items not OK, worst first (at most [`StatusOverview::LISTED`]).
    pub attention: Vec<StatusItem>,
    /// The items whose renewal or expiry comes first (at most [`StatusOverview::LISTED`]).
    pub soonest: Vec<StatusItem>,
    /// The expiry timeline of the next 90 days, an SVG document rendered by the server.
    pub timeline_svg: String,
}

impl StatusOverview {
    /// How many items each list holds at most.
    pub const LISTED: usize = 20;
}

/// One service's status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceStatus {
    /// `namespace/service`.
    pub service: String,
    pub generated_at: i64,
    pub sources: Vec<SourceHealth>,
    pub items: Vec<StatusItem>,
    pub timeline_svg: String,
}

/// The platform overview. Everyone signed in may see it.
#[server(endpoint = "status_overview")]
pub async fn get_status_overview() -> Result<StatusOverview, AppError> {
    crate::access::ssr::require_principal()?;
    service()?.overview().await.map_err(crate::access::ssr::fail)
}

/// The platform overview as the status page's HTML. The board renders it once per report
/// and hands the same HTML to every caller until the next report: everyone signed in sees
/// the same overview, and no one else sees any of it.
#[server(endpoint = "status_overview_html")]
pub async fn status_overview_html() -> Result<String, AppError> {
    crate::access::ssr::require_principal()?;
    Ok(service()?.overview_html(&crate::pages::render_overview).to_string())
}

/// One service's certificates and secrets. Everyone signed in may see it.
#[server(endpoint = "service_status")]
pub async fn get_service_status(
    namespace: String,
    service: String,
) -> Result<ServiceStatus, AppError> {
    crate::access::ssr::require_principal()?;
    self::service()?.service(&namespace, &service).await.map_err(crate::access::ssr::fail)
}

#[cfg(feature = "ssr")]
fn service() -> Result<std::sync::Arc<dyn ssr::StatusService>, AppError> {
    use_context::<std::sync::Arc<dyn ssr::StatusService>>()
        .ok_or_else(|| AppError::Internal("The status service is not configured.".into()))
}

/// A Unix time as `YYYY-MM-DD HH:MM` UTC, without a date library in the browser bundle.
pub fn utc(seconds: i64) -> String {
    let (days, rest) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}", rest / 3600, rest % 3600 / 60)
}

/// The service the server implements.
#[cfg(feature = "ssr")]
pub mod ssr {
    use std::sync::Arc;

    use super::{ServiceStatus, StatusOverview};
    use crate::access::AppError;

    /// Reads the latest status report.
    #[async_trait::async_trait]
    pub trait StatusService: Send + Sync {
        async fn overview(&self) -> Result<StatusOverview, AppError>;
        /// The overview rendered by `render`, reused until the board publishes a new report.
        fn overview_html(&self, render: &dyn Fn(StatusOverview) -> String) -> Arc<str>;
        async fn service(&self, namespace: &str, service: &str) -> Result<ServiceStatus, AppError>;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_times_are_shown_as_utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00");
        assert_eq!(utc(1_795_956_330), "2026-11-29 12:45");
        assert_eq!(utc(-86_400), "1969-12-31 00:00");
    }
}
