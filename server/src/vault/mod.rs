//! meshport's connection to Vault or OpenBao (both speak the same API): the client built from
//! configuration, health, and the mounts meshport relies on.

use std::collections::HashMap;

use secrecy::ExposeSecret;
use vaultrs::api::sys::requests::EnableEngineRequestBuilder;
use vaultrs::client::{VaultClient, VaultClientSettingsBuilder};
use vaultrs::error::ClientError;

use crate::config::VaultConfig;
use crate::telemetry::with_sources;

/// How long one Vault request may take before it fails.
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A Vault API call failed.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("invalid Vault settings: {0}")]
    Settings(String),
    #[error("Vault request failed: {}", with_sources(.0))]
    Client(#[from] ClientError),
}

/// A Vault client together with the mount paths meshport uses.
pub struct Vault {
    client: VaultClient,
    kv_mount: String,
    kubernetes_auth_mount: String,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("address", &self.client.settings.address.as_str())
            .field("kv_mount", &self.kv_mount)
            .field("kubernetes_auth_mount", &self.kubernetes_auth_mount)
            .finish_non_exhaustive()
    }
}

impl Vault {
    /// Builds a client from configuration. Without a configured token, `VAULT_TOKEN` is used;
    /// no other `VAULT_*` variable is read.
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
            client: VaultClient::new(settings)?,
            kv_mount: config.kv_mount.clone(),
            kubernetes_auth_mount: config.kubernetes_auth_mount.clone(),
        })
    }

    /// The underlying API client.
    pub fn client(&self) -> &VaultClient {
        &self.client
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
        vaultrs::token::lookup_self(&self.client).await?;
        Ok(())
    }

    /// Enables the KV version 2 engine and the Kubernetes auth method at the configured paths
    /// where they are missing. Used by `meshport dev`; production mounts are the platform's.
    #[tracing::instrument(skip_all)]
    pub async fn ensure_mounts(&self) -> Result<(), VaultError> {
        let mounts = vaultrs::sys::mount::list(&self.client).await?;
        if !mounts.contains_key(&mount_key(&self.kv_mount)) {
            let options = HashMap::from([("version".to_owned(), "2".to_owned())]);
            vaultrs::sys::mount::enable(
                &self.client,
                &self.kv_mount,
                "kv",
                Some(EnableEngineRequestBuilder::default().options(options)),
            )
            .await?;
        }
        let auths = vaultrs::sys::auth::list(&self.client).await?;
        if !auths.contains_key(&mount_key(&self.kubernetes_auth_mount)) {
            vaultrs::sys::auth::enable(
                &self.client,
                &self.kubernetes_auth_mount,
                "kubernetes",
                None,
            )
            .await?;
        }
        Ok(())
    }
}

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
}
