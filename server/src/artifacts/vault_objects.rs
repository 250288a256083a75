//! The Vault (or OpenBao) objects of one service, as typed data: its ACL policy, its
//! Kubernetes-auth role, its KV v2 secrets with their metadata, and an optional PKI role. The
//! policy is rendered to HCL in exactly one place ([`ServicePolicy::to_hcl`]), by an HCL
//! serialiser, so no input can break out of a quoted path.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A capability a policy rule grants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Capability {
    /// Create new data at a path.
    Create,
    /// Read data.
    Read,
    /// Change existing data.
    Update,
    /// List keys below a path.
    List,
    /// Remove data.
    Delete,
}

impl Capability {
    /// The name Vault uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Read => "read",
            Self::Update => "update",
            Self::List => "list",
            Self::Delete => "delete",
        }
    }
}

/// One `path "…" { capabilities = […] }` rule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRule {
    /// The path, ending in `/*` for a prefix.
    pub path: String,
    /// What may be done there.
    pub capabilities: Vec<Capability>,
    /// When not empty, the only request parameters allowed, each with the values it may take
    /// (none listed: any value; `*` globs at either end).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub allowed_parameters: BTreeMap<String, Vec<String>>,
    /// Parameter values refused even where allowed (`*` globs at either end).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub denied_parameters: BTreeMap<String, Vec<String>>,
}

impl PolicyRule {
    /// A rule granting `capabilities` on `path`, with no parameter limits.
    pub fn new(path: impl Into<String>, capabilities: Vec<Capability>) -> Self {
        Self { path: path.into(), capabilities, ..Self::default() }
    }
}

/// How services get their Vault policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PolicyMode {
    /// A policy of its own per service, written by meshport (`<prefix><namespace>-<service>`).
    #[default]
    PerService,
    /// One ACL-templated policy for every workload, keyed on the Kubernetes-auth alias
    /// metadata; meshport writes roles only and no policy at all.
    Templated,
}

impl PolicyMode {
    /// The setting's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PerService => "per-service",
            Self::Templated => "templated",
        }
    }
}

/// The service's own ACL policy: only its own secrets, and its PKI issue path when asked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServicePolicy {
    /// Policy name, `<prefix><namespace>-<service>`.
    pub name: String,
    /// Its rules, in a stable order.
    pub rules: Vec<PolicyRule>,
}

impl ServicePolicy {
    /// The policy as HCL, the form Vault stores and people review.
    pub fn to_hcl(&self) -> String {
        let mut body = hcl::Body::builder();
        // Parameter limits as `{ "name" = ["value", …] }`, every key and value quoted.
        let limits = |parameters: &BTreeMap<String, Vec<String>>| {
            let object: hcl::Object<hcl::ObjectKey, hcl::Expression> = parameters
                .iter()
                .map(|(name, values)| {
                    let values = values.iter().map(|v| hcl::Expression::from(v.as_str()));
                    (hcl::ObjectKey::from(name.as_str()), hcl::Expression::Array(values.collect()))
                })
                .collect();
            hcl::Expression::Object(object)
        };
        for rule in &self.rules {
            let capabilities: Vec<hcl::Expression> =
                rule.capabilities.iter().map(|c| hcl::Expression::from(c.as_str())).collect();
            let mut block = hcl::Block::builder("path")
                .add_label(rule.path.as_str())
                .add_attribute(("capabilities", hcl::Expression::Array(capabilities)));
            if !rule.allowed_parameters.is_empty() {
                block = block.add_attribute(("allowed_parameters", limits(&rule.allowed_parameters)));
            }
            if !rule.denied_parameters.is_empty() {
                block = block.add_attribute(("denied_parameters", limits(&rule.denied_parameters)));
            }
            body = body.add_block(block.build());
        }
        use hcl::format::Format;
        let mut formatter = hcl::format::Formatter::builder().compact_arrays(true).build_vec();
        body.build()
            .format_string(&mut formatter)
            .expect("an HCL body of strings always serialises")
    }
}

/// The Kubernetes-auth role that lets the service's pods log in with their service account.
/// Serialises to the body of `auth/<mount>/role/<name>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubernetesAuthRole {
    /// Mount path of the Kubernetes auth method, for example `kubernetes`.
    #[serde(skip)]
    pub mount: String,
    /// Role name, `<prefix><namespace>-<service>`.
    #[serde(skip)]
    pub name: String,
    /// The service's ServiceAccount.
    pub bound_service_account_names: Vec<String>,
    /// Its namespace.
    pub bound_service_account_namespaces: Vec<String>,
    /// The service's policy.
    pub token_policies: Vec<String>,
    /// Lifetime of a login token, in seconds.
    pub token_ttl: u64,
    /// Longest lifetime after renewals, in seconds.
    pub token_max_ttl: u64,
    /// Audience the service-account token must carry, when configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
}

/// Where a KV secret's value comes from, without the value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueSource {
    /// meshport generates it.
    Generated,
    /// The requester typed it; it is written once, at provisioning.
    Provided,
    /// It is already in Vault.
    Existing,
}

impl ValueSource {
    /// The source of a requested secret.
    pub fn of(source: &app::onboarding::SecretSource) -> Self {
        use app::onboarding::SecretSource;
        match source {
            SecretSource::Generate { .. } => Self::Generated,
            SecretSource::Provided { .. } => Self::Provided,
            SecretSource::Existing => Self::Existing,
        }
    }

    /// The name kept in the secret's `custom_metadata`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Generated => "generated",
            Self::Provided => "provided",
            Self::Existing => "existing",
        }
    }
}

/// One KV v2 secret of the service. It never holds the value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvSecret {
    /// KV v2 mount, for example `secret`.
    pub mount: String,
    /// Path below the mount, `<namespace>/<service>/<name>`.
    pub path: String,
    /// The key inside the secret's data, equal to its name.
    pub key: String,
    /// Where the value comes from.
    pub source: ValueSource,
    /// Owner, request and rotation period, set through `<mount>/metadata/<path>`.
    pub custom_metadata: BTreeMap<String, String>,
}

impl KvSecret {
    /// The API path of the value, `<mount>/data/<path>`.
    pub fn data_path(&self) -> String {
        format!("{}/data/{}", self.mount, self.path)
    }

    /// The API path of the metadata, `<mount>/metadata/<path>`.
    pub fn metadata_path(&self) -> String {
        format!("{}/metadata/{}", self.mount, self.path)
    }
}

/// A role of the PKI engine issuing certificates for the service's cluster DNS names only.
/// Serialises to the body of `<mount>/roles/<name>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PkiRole {
    /// Mount path of the PKI engine, for example `pki`.
    #[serde(skip)]
    pub mount: String,
    /// Role name, `<prefix><namespace>-<service>`.
    #[serde(skip)]
    pub name: String,
    /// `<service>`, `<service>.<namespace>`, `….svc`, `….svc.<cluster domain>`.
    pub allowed_domains: Vec<String>,
    /// The names themselves are allowed, not only subdomains.
    pub allow_bare_domains: bool,
    /// Subdomains of the names are not.
    pub allow_subdomains: bool,
    /// Wildcards are not.
    pub allow_wildcard_certificates: bool,
    /// Longest certificate lifetime, in seconds.
    pub max_ttl: u64,
    /// Default lifetime, in seconds.
    pub ttl: u64,
    /// `ec`: Linkerd and most TLS stacks prefer ECDSA.
    pub key_type: String,
    /// 256 for P-256.
    pub key_bits: u32,
    /// Server certificates…
    pub server_flag: bool,
    /// …and client certificates for the service calling out with the same identity.
    pub client_flag: bool,
    /// Issued certificates are stored, so `pki/certs` lists them for the status page.
    pub no_store: bool,
    /// No IP addresses in issued certificates: only the service's DNS names.
    pub allow_ip_sans: bool,
    /// No `localhost`, which any pod could claim.
    pub allow_localhost: bool,
}

impl PkiRole {
    /// The path a service issues its certificate from, `<mount>/issue/<name>`.
    pub fn issue_path(&self) -> String {
        format!("{}/issue/{}", self.mount, self.name)
    }
}
