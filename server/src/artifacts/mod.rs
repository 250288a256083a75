//! What an onboarding request turns into: the Kubernetes manifests proposed to the GitOps
//! repository and the Vault objects created for the service. Everything here is typed data built
//! from a [`ValidRequest`] (k8s-openapi structs, small typed structs for Linkerd's CRDs, a typed
//! Vault policy), serialised by maintained YAML, JSON and HCL serialisers; nothing is assembled
//! from strings. `vault/` and `gitops/` apply what this module describes.

pub mod custom_resource;
mod kubernetes;
pub mod linkerd;
pub mod vault_objects;

use std::collections::BTreeMap;

use app::onboarding::{SecretSource, ValidRequest};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Service, ServiceAccount};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use self::kubernetes::{SECRET_VERSIONS_ANNOTATION, secret_versions_value};
use self::linkerd::{AuthorizationPolicy, MeshTlsAuthentication, Server};
use self::vault_objects::{
    Capability, KubernetesAuthRole, KvSecret, PkiRole, PolicyMode, PolicyRule, ServicePolicy,
    ValueSource,
};

/// Platform settings the artifacts depend on, from [`crate::config::Config::artifact_settings`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArtifactSettings {
    /// Annotation prefix of the injector: `vault.hashicorp.com` (also OpenBao's released chart).
    pub annotation_prefix: String,
    /// Mount of the KV v2 engine.
    pub kv_mount: String,
    /// Mount of the Kubernetes auth method.
    pub kubernetes_auth_mount: String,
    /// Mount of the PKI engine.
    pub pki_mount: String,
    /// Prefix of policy, role and PKI role names, which scopes meshport's own Vault policy.
    pub name_prefix: String,
    /// Login token lifetime of a service's role, in seconds.
    pub token_ttl: u64,
    /// Longest login token lifetime of a service's role, in seconds.
    pub token_max_ttl: u64,
    /// Audience bound to the service's role, when configured.
    pub audience: Option<String>,
    /// The cluster's DNS domain, for certificate names.
    pub cluster_domain: String,
    /// Port of Vault as pods reach it; the Vault Agent's traffic to it bypasses the proxy.
    pub vault_port: u16,
    /// Secret in the service's namespace holding the CA of Vault's TLS certificate, which the
    /// injector mounts at `/vault/tls` for the agent; `None` when Vault's certificate is
    /// publicly trusted (or served without TLS).
    pub tls_secret: Option<String>,
    /// The CA file the agent trusts, inside the mounted secret.
    pub ca_cert_path: String,
    /// A policy per service, or one templated policy for all.
    pub policy_mode: PolicyMode,
    /// How often the agent of a service with `reload` delivery re-renders static secrets, as
    /// the injector reads it (`60s`, `5m`).
    pub render_interval: String,
    /// Test builds only: an annotation `(key, value)` put on every manifest, a rendering rule
    /// that changes the generator's output (and its [`Self::generator_version`]) the way a new
    /// meshport release would. Never set from configuration.
    pub extra_annotation: Option<(String, String)>,
}

/// The revision of the manifest renderer: raised whenever a change to this module changes
/// what an unchanged spec renders to, so the fleet pass can tell an older rendering apart.
pub const GENERATOR_REVISION: u32 = 1;

impl ArtifactSettings {
    /// The version of the generator that renders with these settings: the crate's version and
    /// [`GENERATOR_REVISION`] (plus the test-only rule, when set). Digests of renderings are
    /// recorded under it, so a later version recognises an older rendering.
    pub fn generator_version(&self) -> String {
        let mut version = format!("{}+r{GENERATOR_REVISION}", env!("CARGO_PKG_VERSION"));
        if let Some((key, value)) = &self.extra_annotation {
            let digest = content_digest(
                "test",
                &[ArtifactFile { path: key.clone(), contents: value.clone() }],
            );
            version.push_str(&format!(".test-{}", &digest[..8]));
        }
        version
    }

    /// The one ACL-templated policy every workload's role carries in [`PolicyMode::Templated`].
    pub fn workload_policy_name(&self) -> String {
        format!("{}workloads", self.name_prefix)
    }
}

/// A Kubernetes object meshport proposes to the GitOps repository.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum KubeObject {
    /// The service's identity, used by Linkerd and by Vault's Kubernetes login.
    ServiceAccount(Box<ServiceAccount>),
    /// The cluster-internal address.
    Service(Box<Service>),
    /// The workload.
    Deployment(Box<Deployment>),
    /// One port under Linkerd policy.
    Server(Box<Server>),
    /// The callers' identities.
    MeshTlsAuthentication(Box<MeshTlsAuthentication>),
    /// Lets the callers reach a port.
    AuthorizationPolicy(Box<AuthorizationPolicy>),
}

impl KubeObject {
    /// The object's `kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::ServiceAccount(_) => "ServiceAccount",
            Self::Service(_) => "Service",
            Self::Deployment(_) => "Deployment",
            Self::Server(_) => "Server",
            Self::MeshTlsAuthentication(_) => "MeshTLSAuthentication",
            Self::AuthorizationPolicy(_) => "AuthorizationPolicy",
        }
    }

    /// The object's metadata.
    pub fn metadata_mut(
        &mut self,
    ) -> &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        match self {
            Self::ServiceAccount(object) => &mut object.metadata,
            Self::Service(object) => &mut object.metadata,
            Self::Deployment(object) => &mut object.metadata,
            Self::Server(object) => &mut object.metadata,
            Self::MeshTlsAuthentication(object) => &mut object.metadata,
            Self::AuthorizationPolicy(object) => &mut object.metadata,
        }
    }

    /// The object as YAML, one document ending in a newline.
    pub fn to_yaml(&self) -> Result<String, serde_saphyr::ser::Error> {
        yaml_document(self)
    }

    /// Reads an object of the given kind back from YAML.
    pub fn from_yaml(kind: &str, yaml: &str) -> Result<Self, String> {
        fn parse<T: serde::de::DeserializeOwned>(yaml: &str) -> Result<Box<T>, String> {
            serde_saphyr::from_str(yaml).map(Box::new).map_err(|e| e.to_string())
        }
        Ok(match kind {
            "ServiceAccount" => Self::ServiceAccount(parse(yaml)?),
            "Service" => Self::Service(parse(yaml)?),
            "Deployment" => Self::Deployment(parse(yaml)?),
            "Server" => Self::Server(parse(yaml)?),
            "MeshTLSAuthentication" => Self::MeshTlsAuthentication(parse(yaml)?),
            "AuthorizationPolicy" => Self::AuthorizationPolicy(parse(yaml)?),
            other => return Err(format!("meshport does not generate `{other}` objects")),
        })
    }
}

/// A Kubernetes object and its file in the GitOps repository.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// `manifests/<namespace>/<service>/<kind>[-<port>].yaml`.
    pub path: String,
    /// The object.
    pub object: KubeObject,
}

/// The annotation naming the request that wrote an object.
pub const REQUEST_ANNOTATION: &str = "meshport.io/request-id";

/// Whether two manifest files describe the same object apart from which request wrote them:
/// what a preview compares with the GitOps repository.
pub fn same_object(a: &str, b: &str) -> bool {
    fn without_request(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                if let Some(serde_json::Value::Object(annotations)) = map.get_mut("annotations") {
                    annotations.remove(REQUEST_ANNOTATION);
                    if annotations.is_empty() {
                        map.remove("annotations");
                    }
                }
                map.values_mut().for_each(without_request);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(without_request),
            _ => {}
        }
    }
    let parse = |yaml: &str| {
        serde_saphyr::from_str::<serde_json::Value>(yaml).ok().map(|mut value| {
            without_request(&mut value);
            value
        })
    };
    match (parse(a), parse(b)) {
        (Some(a), Some(b)) => a == b,
        _ => a.trim_end() == b.trim_end(),
    }
}

/// A file of the rendered output: its path and contents.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactFile {
    /// Path relative to the GitOps repository (manifests) or to a preview folder (Vault).
    pub path: String,
    /// Contents, ending in a newline.
    pub contents: String,
}

/// Everything one onboarded service consists of.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceArtifacts {
    /// `<namespace>/<service>`: the owner meshport records for every Vault object it writes.
    pub owner: String,
    /// The manifests, sorted by path.
    pub manifests: Vec<Manifest>,
    /// The service's own Vault policy; `None` in [`PolicyMode::Templated`], where its role
    /// carries the shared workload policy.
    pub policy: Option<ServicePolicy>,
    /// Its Kubernetes-auth role.
    pub role: KubernetesAuthRole,
    /// Its KV secrets (without values).
    pub secrets: Vec<KvSecret>,
    /// Its PKI role, when it asked for a certificate.
    pub pki_role: Option<PkiRole>,
}

/// A rendering step failed. Only possible through a serialiser bug, never through input.
#[derive(Debug, thiserror::Error)]
#[error("could not serialise {what}: {message}")]
pub struct RenderError {
    what: String,
    message: String,
}

impl RenderError {
    /// `what` could not be serialised, for the reason `message`.
    pub fn new(what: impl Into<String>, message: impl Into<String>) -> Self {
        Self { what: what.into(), message: message.into() }
    }
}

impl ServiceArtifacts {
    /// Builds every artifact of `request`. `request_id` is recorded in annotations and Vault
    /// metadata once the request exists; a preview passes `None`.
    pub fn build(
        request: &ValidRequest,
        settings: &ArtifactSettings,
        request_id: Option<Uuid>,
    ) -> Self {
        let names = Names::new(request, settings);
        let pki_role = request.certificate.as_ref().map(|certificate| PkiRole {
            mount: settings.pki_mount.clone(),
            name: names.vault.clone(),
            allowed_domains: cluster_dns_names(request, settings),
            allow_bare_domains: true,
            allow_subdomains: false,
            allow_wildcard_certificates: false,
            max_ttl: u64::from(certificate.ttl_hours) * 3600,
            ttl: u64::from(certificate.ttl_hours) * 3600,
            key_type: "ec".to_owned(),
            key_bits: 256,
            server_flag: true,
            client_flag: true,
            no_store: false,
            allow_ip_sans: false,
            allow_localhost: false,
        });
        let secrets: Vec<KvSecret> = request
            .secrets
            .iter()
            .map(|secret| KvSecret {
                mount: settings.kv_mount.clone(),
                path: format!("{}/{}", names.kv_prefix, secret.name),
                key: secret.name.clone(),
                source: ValueSource::of(&secret.source),
                custom_metadata: secret_metadata(request, &secret.source, request_id),
            })
            .collect();
        // The injected agent only reads `data/`; metadata stays meshport's business.
        let mut rules = vec![PolicyRule::new(
            format!("{}/data/{}/*", settings.kv_mount, names.kv_prefix),
            vec![Capability::Read],
        )];
        if let Some(pki_role) = &pki_role {
            rules.push(PolicyRule::new(
                pki_role.issue_path(),
                vec![Capability::Create, Capability::Update],
            ));
        }
        let policy = match settings.policy_mode {
            PolicyMode::PerService => Some(ServicePolicy { name: names.vault.clone(), rules }),
            PolicyMode::Templated => None,
        };
        let token_policy = match &policy {
            Some(policy) => policy.name.clone(),
            None => settings.workload_policy_name(),
        };
        let role = KubernetesAuthRole {
            mount: settings.kubernetes_auth_mount.clone(),
            name: names.vault.clone(),
            bound_service_account_names: vec![request.service.clone()],
            bound_service_account_namespaces: vec![request.namespace.clone()],
            token_policies: vec![token_policy],
            token_ttl: settings.token_ttl,
            token_max_ttl: settings.token_max_ttl,
            audience: settings.audience.clone(),
        };
        let mut manifests = kubernetes::manifests(
            request,
            settings,
            &names,
            &secrets,
            pki_role.as_ref(),
            request_id,
        );
        manifests.sort_by(|a, b| a.path.cmp(&b.path));
        if let Some((key, value)) = &settings.extra_annotation {
            for manifest in &mut manifests {
                let metadata = manifest.object.metadata_mut();
                metadata
                    .annotations
                    .get_or_insert_with(Default::default)
                    .insert(key.clone(), value.clone());
            }
        }
        let owner = format!("{}/{}", request.namespace, request.service);
        Self { owner, manifests, policy, role, secrets, pki_role }
    }

    /// The artifacts of a stored request (its form without secret values), judged by today's
    /// `rules` and rendered with today's `settings`.
    pub fn from_stored(
        spec: &serde_json::Value,
        rules: &app::onboarding::OnboardingRules,
        settings: &ArtifactSettings,
        request_id: Uuid,
    ) -> Result<Self, String> {
        let form: app::onboarding::OnboardingRequest = serde_json::from_value(spec.clone())
            .map_err(|e| format!("the stored request does not parse: {e}"))?;
        let valid = ValidRequest::from_stored(form, rules).map_err(|e| e.to_string())?;
        Ok(Self::build(&valid, settings, Some(request_id)))
    }

    /// Stamps the Deployment's pod template with the secrets' versions (restart delivery):
    /// a changed value rolls the pods when the manifest is applied.
    pub fn with_secret_versions(mut self, versions: &BTreeMap<String, u64>) -> Self {
        for manifest in &mut self.manifests {
            if let KubeObject::Deployment(deployment) = &mut manifest.object {
                let template = deployment.spec.get_or_insert_with(Default::default);
                let metadata = template.template.metadata.get_or_insert_with(Default::default);
                metadata.annotations.get_or_insert_with(Default::default).insert(
                    kubernetes::SECRET_VERSIONS_ANNOTATION.to_owned(),
                    kubernetes::secret_versions_value(versions),
                );
            }
        }
        self
    }

    /// The manifests as files for the GitOps repository.
    pub fn gitops_files(&self) -> Result<Vec<ArtifactFile>, RenderError> {
        self.manifests.iter().map(|manifest| yaml_file(&manifest.path, &manifest.object)).collect()
    }

    /// The Vault objects as files a person can review, each named after the API path it is
    /// written to: the policy as HCL, the role, the secrets' metadata and the PKI role as the
    /// JSON bodies meshport sends.
    pub fn vault_files(&self) -> Result<Vec<ArtifactFile>, RenderError> {
        let mut files: Vec<ArtifactFile> = self
            .policy
            .iter()
            .map(|policy| ArtifactFile {
                path: format!("vault/sys/policies/acl/{}.hcl", policy.name),
                contents: policy.to_hcl(),
            })
            .collect();
        files.push(json_file(
            format!("auth/{}/role/{}", self.role.mount, self.role.name),
            &self.role,
        )?);
        for secret in &self.secrets {
            let body = serde_json::json!({ "custom_metadata": secret.custom_metadata });
            files.push(json_file(secret.metadata_path(), &body)?);
        }
        if let Some(pki_role) = &self.pki_role {
            files.push(json_file(format!("{}/roles/{}", pki_role.mount, pki_role.name), pki_role)?);
        }
        Ok(files)
    }

    /// Every file the service's artifacts write: manifests, then Vault objects.
    pub fn all_files(&self) -> Result<Vec<ArtifactFile>, RenderError> {
        let mut files = self.gitops_files()?;
        files.extend(self.vault_files()?);
        Ok(files)
    }
}

/// The secrets `base` has and `proposed` drops: a change retires them.
pub fn dropped_secrets<'a>(
    base: &'a ServiceArtifacts,
    proposed: &'a ServiceArtifacts,
) -> impl Iterator<Item = &'a KvSecret> {
    base.secrets.iter().filter(|old| !proposed.secrets.iter().any(|new| new.path == old.path))
}

/// The digest of everything a change set writes: for an onboarding or a change, every file of
/// `proposed` and each secret it retires from `base`; for an offboarding, every file removed.
pub fn change_digest(
    kind: app::onboarding::ChangeKind,
    proposed: &ServiceArtifacts,
    base: Option<&ServiceArtifacts>,
) -> Result<String, RenderError> {
    // An upgrade writes the same spec's files, so it binds to them like a change does.
    let mut files = proposed.all_files()?;
    if kind == app::onboarding::ChangeKind::Offboard {
        return Ok(content_digest("remove", &files));
    }
    if let Some(base) = base {
        files.extend(dropped_secrets(base, proposed).map(|secret| ArtifactFile {
            path: format!("retire:{}", secret.metadata_path()),
            contents: String::new(),
        }));
    }
    Ok(content_digest("write", &files))
}

/// SHA-256 (hex) over `files` in path order, each path and contents length-prefixed, under a
/// label saying what is done with them (`write` or `remove`): the digest an approval binds to.
pub fn content_digest(label: &str, files: &[ArtifactFile]) -> String {
    use sha2::{Digest, Sha256};
    let mut sorted: Vec<&ArtifactFile> = files.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    let mut hasher = Sha256::new();
    hasher.update(label.as_bytes());
    for file in sorted {
        for part in [file.path.as_bytes(), file.contents.as_bytes()] {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part);
        }
    }
    hasher.finalize().iter().map(|byte| format!("{byte:02x}")).collect()
}

/// `value` as one YAML document ending in a newline. Long single-line values (image digests,
/// templates) stay on one line, not folded.
pub fn yaml_document<T: Serialize>(value: &T) -> Result<String, serde_saphyr::ser::Error> {
    let options = serde_saphyr::ser_options! { folded_wrap_chars: 4096 };
    let mut yaml = serde_saphyr::to_string_with_options(value, options)?;
    if !yaml.ends_with('\n') {
        yaml.push('\n');
    }
    Ok(yaml)
}

/// A file at `path` holding `value` as YAML.
pub fn yaml_file<T: Serialize>(
    path: impl Into<String>,
    value: &T,
) -> Result<ArtifactFile, RenderError> {
    let path = path.into();
    let contents = yaml_document(value)
        .map_err(|e| RenderError { what: path.clone(), message: e.to_string() })?;
    Ok(ArtifactFile { path, contents })
}

/// `vault/<api path>.json` holding `value` as pretty JSON.
pub(crate) fn json_file<T: Serialize>(
    api_path: String,
    value: &T,
) -> Result<ArtifactFile, RenderError> {
    let mut contents = serde_json::to_string_pretty(value)
        .map_err(|e| RenderError { what: api_path.clone(), message: e.to_string() })?;
    contents.push('\n');
    Ok(ArtifactFile { path: format!("vault/{api_path}.json"), contents })
}

/// The names derived from a request, computed once.
struct Names {
    /// Policy, role and PKI role name.
    vault: String,
    /// `<namespace>/<service>`, the service's KV prefix.
    kv_prefix: String,
}

impl Names {
    fn new(request: &ValidRequest, settings: &ArtifactSettings) -> Self {
        Self {
            vault: format!("{}{}-{}", settings.name_prefix, request.namespace, request.service),
            kv_prefix: format!("{}/{}", request.namespace, request.service),
        }
    }
}

/// The names the service answers to inside the cluster.
fn cluster_dns_names(request: &ValidRequest, settings: &ArtifactSettings) -> Vec<String> {
    let (service, namespace) = (&request.service, &request.namespace);
    vec![
        service.clone(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.{}", settings.cluster_domain),
    ]
}

/// The `custom_metadata` of a KV secret: who owns it, which request made it, when it is due.
/// `owner` (`<namespace>/<service>`) is what meshport checks before it overwrites or destroys it.
fn secret_metadata(
    request: &ValidRequest,
    source: &SecretSource,
    request_id: Option<Uuid>,
) -> BTreeMap<String, String> {
    let mut metadata = BTreeMap::from([
        ("managed_by".to_owned(), "meshport".to_owned()),
        ("owner".to_owned(), format!("{}/{}", request.namespace, request.service)),
        ("owner_team".to_owned(), request.team.clone()),
        ("rotation_period_days".to_owned(), request.rotation_days.to_string()),
        ("service".to_owned(), format!("{}/{}", request.namespace, request.service)),
    ]);
    metadata.insert("value_source".to_owned(), ValueSource::of(source).as_str().to_owned());
    if let SecretSource::Generate { length, alphabet } = source {
        metadata.insert("generator".to_owned(), format!("{}:{length}", alphabet.as_str()));
    }
    if let Some(id) = request_id {
        metadata.insert("request_id".to_owned(), id.to_string());
    }
    metadata
}

#[cfg(test)]
mod tests;

/// The ACL-templated policy of [`PolicyMode::Templated`]: each workload reads the KV data of its
/// own `<namespace>/<service>` and issues from its own PKI role, where namespace and service are
/// the Kubernetes-auth alias metadata of the login (`service_account_namespace`,
/// `service_account_name`; every service runs as the ServiceAccount of its name).
/// `accessor` is the Kubernetes auth mount's accessor (`bao auth list`).
pub fn workload_policy(settings: &ArtifactSettings, accessor: &str) -> ServicePolicy {
    let alias = |key: &str| format!("{{{{identity.entity.aliases.{accessor}.metadata.{key}}}}}");
    let (namespace, service) = (alias("service_account_namespace"), alias("service_account_name"));
    ServicePolicy {
        name: settings.workload_policy_name(),
        rules: vec![
            PolicyRule::new(
                format!("{}/data/{namespace}/{service}/*", settings.kv_mount),
                vec![Capability::Read],
            ),
            PolicyRule::new(
                format!(
                    "{}/issue/{}{namespace}-{service}",
                    settings.pki_mount, settings.name_prefix
                ),
                vec![Capability::Create, Capability::Update],
            ),
        ],
    }
}
