//! What a developer asks for when a service joins the mesh: the onboarding form as data. The same
//! types travel from the browser to the server; [`super::validate`] decides whether they are
//! acceptable.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One service joining the mesh, exactly as the onboarding form describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct OnboardingRequest {
    /// Name of the Deployment, Service and ServiceAccount (a DNS-1035 label).
    pub service: String,
    /// Kubernetes namespace, one of the configured [`OnboardingRules::namespaces`].
    pub namespace: String,
    /// The team that owns the service.
    pub team: String,
    /// Why the service needs to join the mesh; shown to the approving admin and auditors.
    pub justification: String,
    /// Container image as an OCI reference, `registry/repository:tag` or `…@sha256:…`.
    pub image: String,
    /// Pod replicas, 1 to 50.
    pub replicas: u32,
    /// Ports the container listens on; each gets a Service port and a Linkerd `Server`.
    pub ports: Vec<PortSpec>,
    /// CPU and memory requests and limits of the container.
    pub resources: Resources,
    /// Plain (non-secret) environment variables.
    pub env: Vec<EnvVar>,
    /// Secrets kept in Vault's KV store and rendered by the Vault Agent under `/vault/secrets`.
    pub secrets: Vec<SecretSpec>,
    /// Service accounts allowed to call this service over mTLS: `name` (a service in the same
    /// namespace) or `namespace/name`.
    pub allowed_callers: Vec<String>,
    /// A TLS certificate issued by Vault's PKI engine, when the service terminates TLS itself.
    pub certificate: Option<CertificateSpec>,
    /// Days after which the service's secrets count as due for rotation. Default 30.
    pub rotation_days: u32,
    /// HTTP path that answers 2xx while the service is healthy, for readiness and liveness
    /// probes on its first HTTP port (Linkerd keeps kubelet probes authorised). `None`: no
    /// probes.
    #[serde(default)]
    pub health_check_path: Option<String>,
    /// How the container runs; safe by default.
    #[serde(default)]
    pub security: WorkloadSecurity,
    /// Who rotates the secrets and how a new value reaches the running pods.
    #[serde(default)]
    pub rotation: RotationPlan,
}

/// Who rotates a service's secrets and how a new value reaches its running pods. The default
/// (manual, no delivery) renders exactly what services onboarded before it had.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct RotationPlan {
    /// Who rotates.
    pub policy: RotationPolicy,
    /// How a new value reaches the pods.
    pub delivery: Delivery,
    /// `reload` only: the command the Vault Agent runs after it re-rendered a secret's file,
    /// for example an HTTP call to the application's reload endpoint. It runs in the agent's
    /// container, which shares the pod's network but not its processes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reload_command: Option<String>,
}

/// Who rotates a service's secrets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum RotationPolicy {
    /// Someone of the owning team (or an admin) rotates, from the status page or the API.
    #[default]
    Manual,
    /// meshport rotates generated secrets when they become due, inside the maintenance window;
    /// provided ones still ask the owner.
    Automatic,
}

impl RotationPolicy {
    /// Every policy, in the order the form offers them.
    pub const ALL: [RotationPolicy; 2] = [Self::Manual, Self::Automatic];

    /// The name used in the form and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Manual => "manual",
            Self::Automatic => "automatic",
        }
    }
}

/// How a rotated value reaches the running pods.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum Delivery {
    /// Nothing beyond the agent's default re-rendering (about every five minutes); the
    /// application reads the file when it wants.
    #[default]
    None,
    /// The agent re-renders at the platform's render interval and runs the owner's command.
    Reload,
    /// meshport opens a pull request that changes the pod template's
    /// `meshport.io/secret-versions` annotation, so the rollout goes through git; rotations
    /// close together share one pull request.
    Restart,
}

impl Delivery {
    /// Every delivery, in the order the form offers them.
    pub const ALL: [Delivery; 3] = [Self::None, Self::Reload, Self::Restart];

    /// The name used in the form and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Reload => "reload",
            Self::Restart => "restart",
        }
    }
}

/// The container's security options. Both default to the safe choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct WorkloadSecurity {
    /// Refuse to start the container as root (`runAsNonRoot`). Default `true`.
    pub run_as_non_root: bool,
    /// Mount the container's root file system read-only, with a writable `/tmp`. Default `true`.
    pub read_only_root_filesystem: bool,
}

impl Default for WorkloadSecurity {
    fn default() -> Self {
        Self { run_as_non_root: true, read_only_root_filesystem: true }
    }
}

/// The protocol a port speaks; it decides Linkerd's protocol handling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum Protocol {
    /// HTTP/1.1 (Linkerd also detects HTTP/2).
    Http,
    /// gRPC over HTTP/2.
    Grpc,
    /// Any other TCP protocol; Linkerd treats it as opaque.
    Tcp,
}

impl Protocol {
    /// Every protocol, in the order the form offers them.
    pub const ALL: [Protocol; 3] = [Self::Http, Self::Grpc, Self::Tcp];

    /// The name used in the form and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Grpc => "grpc",
            Self::Tcp => "tcp",
        }
    }
}

/// One container port.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct PortSpec {
    /// Port name (an IANA service name: at most 15 characters), referenced by the Service.
    pub name: String,
    /// Port number, 1 to 65535, not one of the Linkerd proxy's own ports.
    pub number: u32,
    /// What the port speaks.
    pub protocol: Protocol,
    /// Service accounts allowed to call this port (`name` or `namespace/name`); `None`: the
    /// service's [`OnboardingRequest::allowed_callers`]. Each port gets its own Linkerd
    /// authorization, so a caller of one port cannot call another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_callers: Option<Vec<String>>,
}

impl PortSpec {
    /// The callers of this port: its own, or the service's.
    pub fn callers<'a>(&'a self, request: &'a OnboardingRequest) -> &'a [String] {
        self.allowed_callers.as_deref().unwrap_or(&request.allowed_callers)
    }
}

/// Container resources as Kubernetes quantities. Requests are required; an empty limit means
/// none is set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Resources {
    /// CPU request, for example `100m` or `0.5`.
    pub cpu_request: String,
    /// Memory request, for example `128Mi`.
    pub memory_request: String,
    /// CPU limit, or empty for none (the usual choice: CPU limits cause throttling).
    pub cpu_limit: String,
    /// Memory limit, or empty for none.
    pub memory_limit: String,
}

impl Default for Resources {
    fn default() -> Self {
        Self {
            cpu_request: "100m".to_owned(),
            memory_request: "128Mi".to_owned(),
            cpu_limit: String::new(),
            memory_limit: "256Mi".to_owned(),
        }
    }
}

/// A plain environment variable. Secrets belong in [`SecretSpec`], never here.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct EnvVar {
    /// Variable name, a C identifier.
    pub name: String,
    /// Its value.
    pub value: String,
}

/// One secret of the service: a KV v2 entry at `<kv mount>/data/<namespace>/<service>/<name>`,
/// rendered by the Vault Agent to the file `/vault/secrets/<name>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct SecretSpec {
    /// Key name: lowercase letters, digits and `_`; also the file name.
    pub name: String,
    /// Where the value comes from.
    pub source: SecretSource,
}

/// Where a secret's value comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum SecretSource {
    /// meshport generates a random value.
    Generate {
        /// Number of characters, 16 to 128.
        length: u32,
        /// Characters to draw from.
        alphabet: Alphabet,
    },
    /// The requester types the value once; it goes to Vault and nowhere else.
    Provided {
        /// The value, write-only.
        value: SecretValue,
    },
    /// The value already exists in Vault at the service's path; meshport leaves it alone.
    Existing,
}

/// Characters a generated secret is drawn from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum Alphabet {
    /// `A–Z a–z 0–9`.
    Alphanumeric,
    /// Alphanumeric plus `-_.~!#%^*+=`, symbols safe in URLs' userinfo-free parts and shells.
    AlphanumericSymbols,
    /// `0–9 a–f`.
    Hex,
}

impl Alphabet {
    /// Every alphabet, in the order the form offers them.
    pub const ALL: [Alphabet; 3] = [Self::Alphanumeric, Self::AlphanumericSymbols, Self::Hex];

    /// The name used in the form, in JSON and in the secret's Vault metadata.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Alphanumeric => "alphanumeric",
            Self::AlphanumericSymbols => "alphanumeric_symbols",
            Self::Hex => "hex",
        }
    }

    /// The characters, as bytes.
    pub fn characters(self) -> &'static [u8] {
        match self {
            Self::Alphanumeric => b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
            Self::AlphanumericSymbols => {
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~!#%^*+="
            }
            Self::Hex => b"0123456789abcdef",
        }
    }
}

/// A secret value typed by a person. It serialises (it must reach the server), but `Debug` never
/// shows it, and [`OnboardingRequest::without_secret_values`] removes it before anything is
/// stored.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ssr", schema(value_type = String, format = Password))]
pub struct SecretValue(String);

impl SecretValue {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the one place that writes it to Vault.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the value is empty (for example after redaction).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue([redacted])")
    }
}

/// A certificate from Vault's PKI engine for the service's cluster DNS names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct CertificateSpec {
    /// Lifetime of each issued certificate in hours, 1 to 2160 (90 days).
    pub ttl_hours: u32,
}

impl OnboardingRequest {
    /// The request with every user-provided secret value blanked: the form that may be stored,
    /// logged or shown again.
    pub fn without_secret_values(&self) -> Self {
        let mut request = self.clone();
        for secret in &mut request.secrets {
            if let SecretSource::Provided { value } = &mut secret.source {
                *value = SecretValue::default();
            }
        }
        request
    }
}

impl Default for OnboardingRequest {
    /// The form as a developer first sees it.
    fn default() -> Self {
        Self {
            service: String::new(),
            namespace: OnboardingRules::DEFAULT_NAMESPACE.to_owned(),
            team: String::new(),
            justification: String::new(),
            image: String::new(),
            replicas: 2,
            ports: vec![PortSpec {
                name: "http".to_owned(),
                number: 8080,
                protocol: Protocol::Http,
                allowed_callers: None,
            }],
            resources: Resources::default(),
            env: Vec::new(),
            secrets: Vec::new(),
            allowed_callers: Vec::new(),
            certificate: None,
            rotation_days: OnboardingRules::DEFAULT_ROTATION_DAYS,
            health_check_path: None,
            security: WorkloadSecurity::default(),
            rotation: RotationPlan::default(),
        }
    }
}

/// The platform's settings that the validator applies; the server reads them from its
/// configuration and hands them to the browser, so both judge a form the same way.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnboardingRules {
    /// Namespaces services may be onboarded into.
    pub namespaces: Vec<String>,
    /// Whether images tagged `latest` (or untagged) are accepted.
    pub allow_latest_tag: bool,
}

impl OnboardingRules {
    /// The shop's application namespace.
    pub const DEFAULT_NAMESPACE: &str = "prod-app";
    /// Rotation period when the form does not say otherwise.
    pub const DEFAULT_ROTATION_DAYS: u32 = 30;
}

impl Default for OnboardingRules {
    fn default() -> Self {
        Self { namespaces: vec![Self::DEFAULT_NAMESPACE.to_owned()], allow_latest_tag: false }
    }
}
