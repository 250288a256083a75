//! The `[[clusters]]` settings: each cluster whose certificates are read, how it is reached,
//! where Linkerd's identity objects live, and the check that their names are DNS names.

use std::path::PathBuf;

use serde::Deserialize;

/// One cluster to read.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// The name shown and used in metrics, for example `prod`.
    pub name: String,
    /// The kubeconfig context. Default: the kubeconfig's current context, or in-cluster.
    pub context: Option<String>,
    /// The kubeconfig file. Default: `KUBECONFIG`, then `~/.kube/config`, then in-cluster.
    pub kubeconfig: Option<PathBuf>,
    /// Namespaces whose cert-manager Certificates are listed. Default: the onboarding
    /// namespaces.
    pub namespaces: Vec<String>,
    /// Where Linkerd's identity chain lives.
    pub linkerd: LinkerdConfig,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            name: "default".to_owned(),
            context: None,
            kubeconfig: None,
            namespaces: Vec::new(),
            linkerd: LinkerdConfig::default(),
        }
    }
}

/// The names of Linkerd's identity objects, as in Linkerd's documented cert-manager setup.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LinkerdConfig {
    /// Read the identity chain at all. Default true.
    pub enabled: bool,
    /// Linkerd's namespace, holding the issuer and the trust bundle. Default `linkerd`.
    pub namespace: String,
    /// The identity issuer's Certificate and `kubernetes.io/tls` secret. Default
    /// `linkerd-identity-issuer`.
    pub issuer: String,
    /// The namespace of the trust anchor. Default `cert-manager`.
    pub trust_anchor_namespace: String,
    /// The trust anchor's Certificate and secret. Default `linkerd-trust-anchor`.
    pub trust_anchor: String,
    /// The trust bundle ConfigMap (trust-manager's Bundle target). Default
    /// `linkerd-identity-trust-roots`.
    pub trust_bundle: String,
    /// Its key. Default `ca-bundle.crt`.
    pub trust_bundle_key: String,
}

impl Default for LinkerdConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            namespace: "linkerd".to_owned(),
            issuer: "linkerd-identity-issuer".to_owned(),
            trust_anchor_namespace: "cert-manager".to_owned(),
            trust_anchor: "linkerd-trust-anchor".to_owned(),
            trust_bundle: "linkerd-identity-trust-roots".to_owned(),
            trust_bundle_key: "ca-bundle.crt".to_owned(),
        }
    }
}

/// The clusters' problem, as (key, rule), unless cluster names are unique DNS labels (they name
/// metrics and alert keys) and every namespace and Linkerd object name is a DNS label or name.
pub fn clusters_problem(clusters: &[ClusterConfig]) -> Option<(&'static str, &'static str)> {
    let is_label = |n: &str| app::onboarding::is_dns_label(n) && n.len() <= 63;
    let mut names = std::collections::BTreeSet::new();
    let valid = clusters.iter().all(|cluster| {
        let linkerd = &cluster.linkerd;
        names.insert(cluster.name.as_str())
            && is_label(&cluster.name)
            && cluster.namespaces.iter().all(|n| is_label(n))
            && [&linkerd.namespace, &linkerd.trust_anchor_namespace].iter().all(|n| is_label(n))
            && [&linkerd.issuer, &linkerd.trust_anchor, &linkerd.trust_bundle]
                .iter()
                .all(|n| !n.is_empty() && n.split('.').all(is_label))
            && !linkerd.trust_bundle_key.is_empty()
    });
    (!valid)
        .then_some(("clusters", "each needs a unique name (a DNS label) and DNS-label namespaces"))
}
