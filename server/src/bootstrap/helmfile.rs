//! `helmfile.yaml`: every chart of the platform at an exact version, and the platform's own
//! manifest folders as releases, ordered with `needs` so each piece finds what it depends on
//! (CRDs before objects of their kinds, the identity issuer before Linkerd, Vault's TLS
//! certificate before Vault).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::argocd;
use super::config::{BootstrapConfig, SecretsBackend};
use super::platform::{
    CERT_MANAGER_NAMESPACE, LINKERD_NAMESPACE, MESHPORT_NAMESPACE, VAULT_CA_BUNDLE,
};
use super::{PLATFORM_MANIFESTS, meshport, vault_server};

/// The whole file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Helmfile {
    /// Defaults of every release.
    pub helm_defaults: HelmDefaults,
    /// Chart repositories.
    pub repositories: Vec<Repository>,
    /// The releases.
    pub releases: Vec<Release>,
}

/// Defaults of every release.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HelmDefaults {
    /// Wait until the release's resources are ready.
    pub wait: bool,
    /// Seconds to wait.
    pub timeout: u32,
    /// Namespaces come from the namespaces release, with their labels, never implicitly.
    pub create_namespace: bool,
    /// Roll back a failed upgrade's new resources.
    pub cleanup_on_fail: bool,
}

/// A chart repository.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Repository {
    /// Name used as the chart prefix.
    pub name: String,
    /// Its URL.
    pub url: String,
}

/// A Helm release.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Release {
    /// Release name.
    pub name: String,
    /// Namespace the release (and its record) lives in.
    pub namespace: String,
    /// `<repository>/<chart>`, or a local folder (`./…`): a chart, or plain manifests.
    pub chart: String,
    /// Exact chart version; absent only for local folders, which the repository pins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Releases (`<namespace>/<name>`) installed before this one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub needs: Vec<String>,
    /// Values, inline.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<Value>,
    /// Commands run around the release.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<Hook>,
}

/// A command Helmfile runs at a point of a release's life.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hook {
    /// `presync`, `postsync`, …
    pub events: Vec<String>,
    /// Print the command's output.
    pub showlogs: bool,
    /// The executable.
    pub command: String,
    /// Its arguments, one by one (no shell).
    pub args: Vec<String>,
}

impl Hook {
    /// After the release is applied, `kubectl wait` until every platform `resource` (labelled
    /// `app.kubernetes.io/part-of=meshport-platform`) has `condition`: Helm's own wait knows
    /// Deployments, not certificates or bundles, and an application's failing certificate
    /// must not block the platform.
    fn wait_for(resource: &str, condition: &str) -> Self {
        Self {
            events: vec!["postsync".to_owned()],
            showlogs: true,
            command: "kubectl".to_owned(),
            args: [
                "wait",
                &format!("--for=condition={condition}"),
                resource,
                "--selector=app.kubernetes.io/part-of=meshport-platform",
                "--all-namespaces",
                "--timeout=300s",
            ]
            .map(str::to_owned)
            .to_vec(),
        }
    }
}

impl Release {
    fn remote(name: &str, namespace: &str, chart: &str, version: &str) -> Self {
        Self {
            name: name.to_owned(),
            namespace: namespace.to_owned(),
            chart: chart.to_owned(),
            version: Some(version.to_owned()),
            needs: Vec::new(),
            values: Vec::new(),
            hooks: Vec::new(),
        }
    }

    fn local(name: &str, namespace: &str, folder: &str) -> Self {
        Self {
            name: name.to_owned(),
            namespace: namespace.to_owned(),
            chart: format!("./{folder}"),
            version: None,
            needs: Vec::new(),
            values: Vec::new(),
            hooks: Vec::new(),
        }
    }

    fn needs(mut self, releases: &[&Release]) -> Self {
        self.needs = releases.iter().map(|r| format!("{}/{}", r.namespace, r.name)).collect();
        self
    }

    fn values(mut self, values: Value) -> Self {
        self.values = vec![values];
        self
    }
}

/// The platform's Helmfile for `config`.
pub fn helmfile(config: &BootstrapConfig) -> Helmfile {
    let versions = &config.versions;
    let backend = config.secrets_backend;
    let repository =
        |name: &str, url: &str| Repository { name: name.to_owned(), url: url.to_owned() };
    let (backend_repository, backend_chart, backend_version) = match backend {
        SecretsBackend::Vault => (
            repository("hashicorp", "https://helm.releases.hashicorp.com"),
            "hashicorp/vault",
            &versions.vault_chart,
        ),
        SecretsBackend::Openbao => (
            repository("openbao", "https://openbao.github.io/openbao-helm"),
            "openbao/openbao",
            &versions.openbao_chart,
        ),
    };
    let platform = |folder: &str| format!("{PLATFORM_MANIFESTS}/{folder}");

    let namespaces = Release::local("platform-namespaces", "kube-system", &platform("namespaces"));
    let cert_manager = Release::remote(
        "cert-manager",
        CERT_MANAGER_NAMESPACE,
        "jetstack/cert-manager",
        &versions.cert_manager,
    )
    .needs(&[&namespaces])
    .values(json!({
        "crds": { "enabled": true, "keep": true },
        "replicaCount": 2,
        "prometheus": { "enabled": true },
        // Route53 for DNS-01 through IRSA: no access keys anywhere.
        "serviceAccount": {
            "annotations": {
                "eks.amazonaws.com/role-arn": config.role_arn(&config.iam.cert_manager),
            },
        },
    }));
    let trust_manager = Release::remote(
        "trust-manager",
        CERT_MANAGER_NAMESPACE,
        "jetstack/trust-manager",
        &versions.trust_manager,
    )
    .needs(&[&cert_manager])
    .values(json!({
        "app": { "trust": { "namespace": CERT_MANAGER_NAMESPACE } },
        // Vault's CA also as a Secret, which the agent injector's `tls-secret` annotation mounts.
        "secretTargets": { "enabled": true, "authorizedSecrets": [VAULT_CA_BUNDLE.0] },
    }));
    let mut pki = Release::local("platform-pki", CERT_MANAGER_NAMESPACE, &platform("pki"))
        .needs(&[&cert_manager, &trust_manager]);
    // Linkerd's identity service starts only once its issuer secret and trust roots exist.
    pki.hooks = vec![
        Hook::wait_for("certificates.cert-manager.io", "Ready"),
        Hook::wait_for("bundles.trust.cert-manager.io", "Synced"),
    ];
    let linkerd_crds = Release::remote(
        "linkerd-crds",
        LINKERD_NAMESPACE,
        "linkerd-edge/linkerd-crds",
        &versions.linkerd_crds,
    )
    .needs(&[&namespaces])
    .values(json!({ "installGatewayAPI": true }));
    let linkerd = Release::remote(
        "linkerd-control-plane",
        LINKERD_NAMESPACE,
        "linkerd-edge/linkerd-control-plane",
        &versions.linkerd_control_plane,
    )
    .needs(&[&linkerd_crds, &pki])
    .values(json!({
        // The identity issuer is cert-manager's Certificate and the trust roots trust-manager's
        // Bundle; the chart creates neither.
        "identity": {
            "externalCA": true,
            "issuer": { "scheme": "kubernetes.io/tls" },
        },
        "clusterDomain": config.cluster_domain,
        // High availability, as the chart's values-ha.yaml.
        "controllerReplicas": 3,
        "enablePodAntiAffinity": true,
        "enablePodDisruptionBudget": true,
        "webhookFailurePolicy": "Fail",
        "deploymentStrategy": {
            "rollingUpdate": { "maxUnavailable": 1, "maxSurge": "25%" },
        },
    }));
    let secrets = Release::remote(backend.name(), backend.name(), backend_chart, backend_version)
        .needs(&[&pki])
        .values(vault_server::chart_values(config));
    let backup =
        Release::local("raft-snapshot", backend.name(), &platform("backup")).needs(&[&secrets]);
    let argo_cd = Release::remote("argo-cd", argocd::NAMESPACE, "argo/argo-cd", &versions.argo_cd)
        .needs(&[&namespaces]);
    let root =
        // The services ArgoCD deploys must meet both injectors (Linkerd's proxy, the Vault
        // agent) ready, or the first pods start unmeshed and without their secrets.
        Release::local("argocd-root", argocd::NAMESPACE, "argocd/bootstrap")
            .needs(&[&argo_cd, &linkerd, &secrets]);
    let meshport = Release::local("meshport", MESHPORT_NAMESPACE, meshport::CHART_FOLDER)
        .needs(&[&secrets, &linkerd]);

    Helmfile {
        helm_defaults: HelmDefaults {
            wait: true,
            timeout: 600,
            create_namespace: false,
            cleanup_on_fail: true,
        },
        repositories: vec![
            repository("linkerd-edge", "https://helm.linkerd.io/edge"),
            repository("jetstack", "https://charts.jetstack.io"),
            backend_repository,
            repository("argo", "https://argoproj.github.io/argo-helm"),
        ],
        releases: vec![
            namespaces,
            cert_manager,
            trust_manager,
            pki,
            linkerd_crds,
            linkerd,
            secrets,
            backup,
            argo_cd,
            root,
            meshport,
        ],
    }
}
