//! The `[vault]` settings: how meshport reaches Vault or OpenBao, how it logs in, the mounts and
//! names of the objects it creates for services, and the checks that refuse values which would
//! end up malformed in Vault paths, policy names or annotations.

use std::path::PathBuf;

use secrecy::SecretString;
use serde::Deserialize;

/// How meshport reaches Vault or OpenBao.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VaultConfig {
    /// Base URL of the Vault API. Default `http://127.0.0.1:8200`.
    pub addr: String,
    /// Token meshport authenticates with. Default: unset (then `VAULT_TOKEN` is used).
    pub token: Option<SecretString>,
    /// Vault Enterprise / OpenBao namespace. Default: none.
    pub namespace: Option<String>,
    /// PEM file of a CA that signs Vault's TLS certificate. Default: the system roots.
    pub ca_cert: Option<PathBuf>,
    /// Mount path of the KV version 2 secrets engine. Default `secret`.
    pub kv_mount: String,
    /// Mount path of the Kubernetes auth method. Default `kubernetes`.
    pub kubernetes_auth_mount: String,
    /// Mount path of the PKI secrets engine for service certificates. Default `pki`.
    pub pki_mount: String,
    /// Annotation prefix of the agent injector. Default `vault.hashicorp.com`, for Vault and for
    /// OpenBao alike: the released OpenBao chart runs HashiCorp's `vault-k8s` injector. Only the
    /// unreleased openbao-k8s fork reads `openbao.openbao.org`.
    pub annotation_prefix: String,
    /// Prefix of every policy and role meshport creates (`<prefix><namespace>-<service>`), so
    /// meshport's own policy can be scoped to it. Default: none.
    pub name_prefix: String,
    /// Lifetime of a service's Vault login token, in seconds. Default 3600.
    pub role_token_ttl: u64,
    /// Longest lifetime of a service's Vault login token, in seconds. Default 14400.
    pub role_token_max_ttl: u64,
    /// Audience bound to services' Kubernetes-auth roles. Default: none.
    pub role_audience: Option<String>,
    /// Port Vault listens on as pods reach it; the Vault Agent's traffic bypasses the Linkerd
    /// proxy there. Default 8200.
    pub agent_port: u16,
    /// Secret in each application namespace with the CA of Vault's TLS certificate, mounted for
    /// the injected agent (`tls-secret` annotation). Default `vault-ca`, which `meshport
    /// bootstrap`'s trust-manager Bundle provides; empty when Vault's certificate is publicly
    /// trusted.
    pub tls_secret: String,
    /// The CA file inside that secret as the agent sees it (`ca-cert` annotation). Default
    /// `/vault/tls/ca.crt` (the injector mounts the secret at `/vault/tls`).
    pub ca_cert_path: String,
    /// `per-service` (default): meshport writes a policy per service. `templated`: one
    /// ACL-templated workload policy, written once at set-up; meshport writes roles only.
    pub policy_mode: crate::artifacts::vault_objects::PolicyMode,
    /// How meshport itself logs in. Default: the configured token.
    pub login: VaultLogin,
    /// What offboarding does with a service's KV secrets. Default `keep`.
    pub offboard_secrets: SecretRetention,
}

/// How meshport obtains its own Vault token.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum VaultLogin {
    /// `vault.token` (or `VAULT_TOKEN`): development and tests.
    #[default]
    Token,
    /// AppRole: for meshport running outside Kubernetes.
    #[serde(rename = "approle")]
    AppRole {
        /// Mount of the AppRole auth method. Default `approle`.
        #[serde(default = "default_approle_mount")]
        mount: String,
        /// The role id.
        role_id: String,
        /// The secret id.
        secret_id: SecretString,
    },
    /// Kubernetes: meshport's own service-account token, read afresh at every login because
    /// projected tokens rotate.
    Kubernetes {
        /// Mount of the Kubernetes auth method meshport logs in through. Default `kubernetes`.
        #[serde(default = "default_kubernetes_mount")]
        mount: String,
        /// meshport's role there.
        role: String,
        /// The token file. Default the pod's projected service-account token.
        #[serde(default = "default_jwt_path")]
        jwt_path: PathBuf,
    },
}

fn default_approle_mount() -> String {
    "approle".to_owned()
}

fn default_kubernetes_mount() -> String {
    "kubernetes".to_owned()
}

fn default_jwt_path() -> PathBuf {
    PathBuf::from("/var/run/secrets/kubernetes.io/serviceaccount/token")
}

/// What happens to an offboarded service's KV secrets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretRetention {
    /// Kept (marked offboarded in their metadata), for a later restore or an audit.
    #[default]
    Keep,
    /// Every version destroyed.
    Destroy,
}

impl Default for VaultConfig {
    fn default() -> Self {
        Self {
            addr: "http://127.0.0.1:8200".to_owned(),
            token: None,
            namespace: None,
            ca_cert: None,
            kv_mount: "secret".to_owned(),
            kubernetes_auth_mount: "kubernetes".to_owned(),
            pki_mount: "pki".to_owned(),
            annotation_prefix: "vault.hashicorp.com".to_owned(),
            name_prefix: String::new(),
            role_token_ttl: 3600,
            role_token_max_ttl: 4 * 3600,
            role_audience: None,
            agent_port: 8200,
            tls_secret: "vault-ca".to_owned(),
            ca_cert_path: "/vault/tls/ca.crt".to_owned(),
            policy_mode: crate::artifacts::vault_objects::PolicyMode::default(),
            login: VaultLogin::default(),
            offboard_secrets: SecretRetention::default(),
        }
    }
}

impl VaultConfig {
    /// The first setting that would end up malformed in a Vault path, policy name or
    /// annotation, as (dotted key, rule).
    pub fn problem(&self) -> Option<(&'static str, &'static str)> {
        let is_label = app::onboarding::is_dns_label;
        let checks: [(&'static str, bool, &'static str); 8] = [
            ("vault.kv_mount", is_mount(&self.kv_mount), "must be a mount path like `secret`"),
            (
                "vault.kubernetes_auth_mount",
                is_mount(&self.kubernetes_auth_mount),
                "must be a mount path like `kubernetes`",
            ),
            ("vault.pki_mount", is_mount(&self.pki_mount), "must be a mount path like `pki`"),
            (
                "vault.login.mount",
                match &self.login {
                    VaultLogin::Token => true,
                    VaultLogin::AppRole { mount, .. } | VaultLogin::Kubernetes { mount, .. } => {
                        is_mount(mount)
                    }
                },
                "must be a mount path like `approle` or `kubernetes`",
            ),
            (
                "vault.annotation_prefix",
                !self.annotation_prefix.is_empty()
                    && self.annotation_prefix.split('.').all(is_label),
                "must be a DNS name such as `vault.hashicorp.com` or `openbao.openbao.org`",
            ),
            (
                "vault.name_prefix",
                self.name_prefix
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && self.name_prefix.len() <= 32,
                "may only hold lowercase letters, digits and '-' (at most 32)",
            ),
            (
                "vault.tls_secret",
                self.tls_secret.is_empty()
                    || (self.tls_secret.len() <= 253
                        && self.tls_secret.split('.').all(is_label)),
                "must be a Secret name (a DNS name), or empty for none",
            ),
            (
                "vault.ca_cert_path",
                self.ca_cert_path.starts_with('/')
                    && self.ca_cert_path.len() <= 255
                    && self.ca_cert_path.bytes().all(|b| {
                        b.is_ascii_alphanumeric() || b"-._/".contains(&b)
                    }),
                "must be an absolute file path such as `/vault/tls/ca.crt`",
            ),
        ];
        checks.into_iter().find(|(_, ok, _)| !ok).map(|(key, _, rule)| (key, rule))
    }
}

/// Whether `value` is a mount path: `/`-separated parts of letters, digits, `-` and `_`.
fn is_mount(value: &str) -> bool {
    !value.is_empty()
        && value.split('/').all(|part| {
            !part.is_empty()
                && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}
