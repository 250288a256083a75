//! meshport's connection to Vault or OpenBao (both speak the same API): the client built from
//! configuration, meshport's own login and token renewal, and the raw calls the provisioning
//! ([`provision`]), status ([`status`]) and rotation code is built on.

mod api;
mod generate;
mod login;
mod portal_policy;
pub mod provision;
pub mod rotation_status;
mod settings;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use secrecy::ExposeSecret;
use serde_json::Value;
use vaultrs::api::sys::requests::EnableEngineRequestBuilder;
use vaultrs::client::{VaultClient, VaultClientSettingsBuilder};
use vaultrs::error::ClientError;

use crate::error_chain::with_sources;

pub use generate::generate_secret;
pub use login::TokenLease;
pub use portal_policy::portal_policy;
pub use settings::{SecretRetention, VaultConfig, VaultLogin};

/// How long one Vault request may take before it fails.
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A Vault call failed.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("invalid Vault settings: {0}")]
    Settings(String),
    #[error("Vault request failed: {}", with_sources(.0))]
    Client(#[from] ClientError),
    /// Vault answered with an error status.
    #[error("Vault refused `{path}` with status {status}: {}", errors.join("; "))]
    Api { path: String, status: u16, errors: Vec<String> },
    /// No answer: Vault is down, restarting or unreachable.
    #[error("Vault did not answer `{path}`: {message}")]
    Unreachable { path: String, message: String },
    /// An answer of an unexpected shape.
    #[error("unexpected answer from Vault at `{path}`: {message}")]
    Unexpected { path: String, message: String },
    /// A mount meshport needs is missing (or meshport's policy grants nothing below it).
    #[error(
        "{what} mount `{mount}` is missing, or meshport's policy grants nothing below it; \
         create it with `{command}`"
    )]
    MissingMount { what: &'static str, mount: String, command: String },
    /// A mount exists but is not set up for what meshport does with it.
    #[error("{problem}; set it up with `{command}`")]
    NotSetUp { problem: String, command: String },
    /// A secret the request says exists (or a provided value) is not there.
    #[error("secret `{path}`: {message}")]
    Secret { path: String, message: String },
    #[error("could not read {path}: {source}")]
    File { path: String, source: std::io::Error },
    /// An object meshport would overwrite or delete exists and is not recorded as the
    /// service's: made by hand, or by meshport for another service.
    #[error(
        "`{path}` exists and meshport did not create it for {owner}; a platform admin can adopt it"
    )]
    NotOwned { path: String, owner: String },
    /// meshport's record of who owns its Vault objects could not be read or written.
    #[error("meshport's record of Vault object owners failed: {0}")]
    Ledger(#[from] crate::store::StoreError),
}

impl VaultError {
    /// Whether the same call may succeed later unchanged: Vault was unreachable, sealed,
    /// restarting or rate-limiting. Refusals (permissions, bad input) are not retryable.
    pub fn is_retryable(&self) -> bool {
        let retryable_status = |status: u16| status == 429 || status >= 500;
        match self {
            Self::Unreachable { .. } => true,
            // The database: down or busy, as a rule.
            Self::Ledger(_) => true,
            Self::Api { status, .. } => retryable_status(*status),
            Self::Client(ClientError::APIError { code, .. }) => retryable_status(*code),
            Self::Client(ClientError::RestClientError { source }) => match source {
                rustify::errors::ClientError::ServerResponseError { code, .. } => {
                    retryable_status(*code)
                }
                rustify::errors::ClientError::RequestError { .. } => true,
                _ => false,
            },
            _ => false,
        }
    }
}

/// A Vault client together with the mount paths meshport uses. The client is replaced, not
/// mutated, when meshport logs in again, so calls in flight keep the token they started with.
pub struct Vault {
    client: RwLock<Arc<VaultClient>>,
    login: VaultLogin,
    kv_mount: String,
    kubernetes_auth_mount: String,
    pki_mount: String,
    retention: SecretRetention,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("address", &self.client().settings.address.as_str())
            .field("kv_mount", &self.kv_mount)
            .field("kubernetes_auth_mount", &self.kubernetes_auth_mount)
            .finish_non_exhaustive()
    }
}

impl Vault {
    /// Builds a client from configuration, without calling Vault. With `vault.login` =
    /// `token`, the configured token is used, else `VAULT_TOKEN`; no other `VAULT_*` variable
    /// is read. Other login methods need [`Vault::login`] before the first call.
    pub fn new(config: &VaultConfig) -> Result<Self, VaultError> {
        let mut settings = VaultClientSettingsBuilder::default();
        // The builder panics on an unparsable address, so check it first.
        match url::Url::parse(&config.addr) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => {
                settings.address(&config.addr);
            }
            _ => {
                return Err(VaultError::Settings(format!(
                    "vault.addr `{}` is not a URL such as https://vault.example:8200",
                    config.addr
                )));
            }
        }
        if let Some(token) = &config.token {
            settings.token(token.expose_secret());
        } else if !matches!(config.login, VaultLogin::Token) {
            // Not VAULT_TOKEN: the login supplies the token.
            settings.token("");
        }
        if let Some(namespace) = &config.namespace {
            settings.set_namespace(namespace.clone());
        }
        // Set explicitly, or vaultrs would fall back to VAULT_SKIP_VERIFY, VAULT_CACERT and the
        // client-certificate variables behind the configuration's back.
        settings
            .verify(true)
            .ca_certs(config.ca_cert.iter().map(|path| path.display().to_string()).collect())
            .identity(None)
            .timeout(Some(REQUEST_TIMEOUT));
        let settings = settings.build().map_err(|e| VaultError::Settings(e.to_string()))?;
        Ok(Self {
            client: RwLock::new(Arc::new(VaultClient::new(settings)?)),
            login: config.login.clone(),
            kv_mount: config.kv_mount.clone(),
            kubernetes_auth_mount: config.kubernetes_auth_mount.clone(),
            pki_mount: config.pki_mount.clone(),
            retention: config.offboard_secrets,
        })
    }

    /// [`Vault::new`] followed by the configured login.
    pub async fn connect(config: &VaultConfig) -> Result<Arc<Self>, VaultError> {
        let vault = Arc::new(Self::new(config)?);
        vault.login().await?;
        Ok(vault)
    }

    /// The underlying API client, with the current token.
    pub fn client(&self) -> Arc<VaultClient> {
        self.client.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Mount path of the KV version 2 engine.
    pub fn kv_mount(&self) -> &str {
        &self.kv_mount
    }

    /// Succeeds when Vault answers, is unsealed and accepts meshport's token. (A token lookup
    /// rather than `sys/health`: vaultrs' health response needs fields OpenBao does not send, and
    /// a portal whose token expired is not ready either.)
    #[tracing::instrument(skip_all)]
    pub async fn health(&self) -> Result<(), VaultError> {
        vaultrs::token::lookup_self(&*self.client()).await?;
        Ok(())
    }

    /// Enables the KV version 2 engine and the Kubernetes auth method at the configured paths
    /// where they are missing. Used by `meshport dev`; production mounts are the platform's.
    #[tracing::instrument(skip_all)]
    pub async fn ensure_mounts(&self) -> Result<(), VaultError> {
        let client = self.client();
        let mounts = vaultrs::sys::mount::list(&*client).await?;
        if !mounts.contains_key(&mount_key(&self.kv_mount)) {
            let options = HashMap::from([("version".to_owned(), "2".to_owned())]);
            vaultrs::sys::mount::enable(
                &*client,
                &self.kv_mount,
                "kv",
                Some(EnableEngineRequestBuilder::default().options(options)),
            )
            .await?;
        }
        let auths = vaultrs::sys::auth::list(&*client).await?;
        if !auths.contains_key(&mount_key(&self.kubernetes_auth_mount)) {
            vaultrs::sys::auth::enable(&*client, &self.kubernetes_auth_mount, "kubernetes", None)
                .await?;
        }
        Ok(())
    }

    /// Checks that the mounts meshport writes to exist with the right type, before anything is
    /// written: the KV v2 engine, the Kubernetes auth method and, when `pki` is true, the PKI
    /// engine. Uses `sys/internal/ui/mounts`, which every token may call for the mounts its
    /// policy reaches.
    #[tracing::instrument(skip_all)]
    pub async fn preflight(&self, pki: bool) -> Result<(), VaultError> {
        let kv = self.mount_info(&self.kv_mount).await?;
        let kv_version = kv.as_ref().and_then(|m| m.pointer("/options/version")?.as_str());
        if kv.as_ref().and_then(|m| m["type"].as_str()) != Some("kv") || kv_version != Some("2") {
            return Err(VaultError::MissingMount {
                what: "KV version 2",
                mount: self.kv_mount.clone(),
                command: format!("bao secrets enable -path={} kv-v2", self.kv_mount),
            });
        }
        let auth = self.mount_info(&format!("auth/{}", self.kubernetes_auth_mount)).await?;
        if auth.as_ref().and_then(|m| m["type"].as_str()) != Some("kubernetes") {
            return Err(VaultError::MissingMount {
                what: "Kubernetes auth",
                mount: self.kubernetes_auth_mount.clone(),
                command: format!("bao auth enable -path={} kubernetes", self.kubernetes_auth_mount),
            });
        }
        if pki {
            self.pki_preflight().await?;
        }
        Ok(())
    }

    /// The PKI engine can issue service certificates: mounted, with an issuer (a CA) and the
    /// URLs that issued certificates name for their CA and CRL.
    async fn pki_preflight(&self) -> Result<(), VaultError> {
        let mount = &self.pki_mount;
        let engine = self.mount_info(mount).await?;
        if engine.as_ref().and_then(|m| m["type"].as_str()) != Some("pki") {
            return Err(VaultError::MissingMount {
                what: "PKI",
                mount: mount.clone(),
                command: format!("bao secrets enable -path={mount} pki"),
            });
        }
        // 0 is the server's default, 768h on OpenBao: shorter than the form's longest certificate.
        let max_ttl = engine.as_ref().and_then(|m| m.pointer("/config/max_lease_ttl")?.as_u64());
        if max_ttl.unwrap_or(0) < LONGEST_CERTIFICATE_SECONDS {
            return Err(VaultError::NotSetUp {
                problem: format!(
                    "the PKI mount `{mount}` allows shorter lifetimes than the 2160 hours a service may ask for"
                ),
                command: format!("bao secrets tune -max-lease-ttl=87600h {mount}"),
            });
        }
        // Without an issuer, OpenBao answers 400 ("no default issuer").
        let ca = match self.read(&format!("{mount}/cert/ca")).await {
            Err(VaultError::Api { status: 400, .. }) => None,
            other => other?,
        };
        if ca.as_ref().and_then(|c| c["certificate"].as_str()).is_none_or(str::is_empty) {
            return Err(VaultError::NotSetUp {
                problem: format!("the PKI mount `{mount}` has no issuer (CA) to sign with"),
                command: format!(
                    "bao write {mount}/root/generate/internal common_name=\"services CA\" key_type=ec ttl=87600h"
                ),
            });
        }
        let urls = self.read(&format!("{mount}/config/urls")).await?;
        let issuing = urls.as_ref().and_then(|u| u["issuing_certificates"].as_array());
        if issuing.is_none_or(Vec::is_empty) {
            return Err(VaultError::NotSetUp {
                problem: format!("the PKI mount `{mount}` names no issuing-certificate URL"),
                command: format!(
                    "bao write {mount}/config/urls issuing_certificates=<vault>/v1/{mount}/ca crl_distribution_points=<vault>/v1/{mount}/crl"
                ),
            });
        }
        Ok(())
    }

    /// A mount's description, or `None` when it is missing or out of meshport's reach (Vault
    /// answers both with 403).
    async fn mount_info(&self, path: &str) -> Result<Option<Value>, VaultError> {
        match self.read(&format!("sys/internal/ui/mounts/{path}")).await {
            Err(VaultError::Api { status: 403, .. }) => Ok(None),
            other => other,
        }
    }
}

/// The longest certificate lifetime the onboarding form allows (2160 hours), in seconds.
const LONGEST_CERTIFICATE_SECONDS: u64 = 2160 * 3600;

/// Vault lists mounts with a trailing slash.
fn mount_key(path: &str) -> String {
    format!("{}/", path.trim_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_address_is_refused_with_the_setting_named() {
        let config = VaultConfig { addr: "vault:8200".into(), ..VaultConfig::default() };
        let error = Vault::new(&config).unwrap_err().to_string();
        assert!(error.contains("vault.addr"), "{error}");
    }

    #[test]
    fn mount_keys_carry_one_trailing_slash() {
        assert_eq!(mount_key("secret"), "secret/");
        assert_eq!(mount_key("/kubernetes/"), "kubernetes/");
    }

    #[test]
    fn only_transient_failures_are_retryable() {
        let api = |status| VaultError::Api { path: "p".into(), status, errors: vec![] };
        assert!(api(503).is_retryable(), "sealed or standby");
        assert!(api(429).is_retryable(), "rate limited");
        assert!(!api(403).is_retryable(), "permission denied needs a policy change");
        assert!(!api(400).is_retryable());
        let down = VaultError::Unreachable { path: "p".into(), message: "refused".into() };
        assert!(down.is_retryable());
        let missing = VaultError::Secret { path: "p".into(), message: "missing".into() };
        assert!(!missing.is_retryable());
        let foreign = VaultError::NotOwned { path: "p".into(), owner: "prod-app/x".into() };
        assert!(!foreign.is_retryable(), "an admin adopts it first");
    }
}
