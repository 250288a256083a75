//! What the clusters say about certificates: cert-manager `Certificate`s (and the failed
//! `CertificateRequest`s of the revision being issued) in the configured namespaces, and
//! Linkerd's identity chain (trust anchor, identity issuer, trust bundle). Each cluster is
//! reached through a kubeconfig context (or in-cluster); a cluster that cannot be reached is an
//! error for the caller to show, never a crash.

pub mod cert_manager;
pub mod linkerd;
mod settings;

use std::collections::BTreeMap;
use std::time::Duration;

use app::rotation::Judgement;
use app::status_report::{ItemKind, StatusItem};
use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ListParams};

use cert_manager::{Certificate, CertificateRequest};
use linkerd::ParsedCertificate;
pub use settings::{ClusterConfig, LinkerdConfig, clusters_problem};

/// How long one cluster read may take before it counts as unreachable.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a cluster could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot load the kubeconfig: {0}")]
    Config(String),
    #[error("{0}")]
    Api(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// One cluster and its client, built on first use (and again after a failure to build).
pub struct Cluster {
    pub config: ClusterConfig,
    client: tokio::sync::Mutex<Option<kube::Client>>,
}

impl Cluster {
    /// A cluster reached through its kubeconfig settings.
    pub fn new(config: ClusterConfig) -> Self {
        Self { config, client: tokio::sync::Mutex::new(None) }
    }

    /// A cluster reached through `client` (tests hand in kube-fake-client's).
    pub fn with_client(config: ClusterConfig, client: kube::Client) -> Self {
        Self { config, client: tokio::sync::Mutex::new(Some(client)) }
    }

    /// The cluster's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    async fn client(&self) -> Result<kube::Client, ClusterError> {
        let mut slot = self.client.lock().await;
        if let Some(client) = slot.as_ref() {
            return Ok(client.clone());
        }
        crate::install_crypto_provider();
        let mut config = match (&self.config.kubeconfig, &self.config.context) {
            (None, None) => {
                kube::Config::infer().await.map_err(|e| ClusterError::Config(e.to_string()))?
            }
            (file, context) => {
                let kubeconfig = match file {
                    Some(path) => kube::config::Kubeconfig::read_from(path),
                    None => kube::config::Kubeconfig::read(),
                }
                .map_err(|e| ClusterError::Config(e.to_string()))?;
                let options = kube::config::KubeConfigOptions {
                    context: context.clone(),
                    ..Default::default()
                };
                kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                    .await
                    .map_err(|e| ClusterError::Config(e.to_string()))?
            }
        };
        config.read_timeout = Some(READ_TIMEOUT);
        let client =
            kube::Client::try_from(config).map_err(|e| ClusterError::Config(e.to_string()))?;
        *slot = Some(client.clone());
        Ok(client)
    }

    /// The pod-template annotation `key` of the Deployment `namespace/name`: empty when the
    /// Deployment has none, `None` when there is no such Deployment.
    pub async fn deployment_annotation(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
    ) -> Result<Option<String>, ClusterError> {
        let api: Api<Deployment> = Api::namespaced(self.client().await?, namespace);
        let read = tokio::time::timeout(READ_TIMEOUT, api.get_opt(name))
            .await
            .map_err(|_| ClusterError::Timeout(READ_TIMEOUT))?
            .map_err(|e| ClusterError::Api(e.to_string()))?;
        Ok(read.map(|deployment| {
            let annotations = deployment.spec.and_then(|s| s.template.metadata?.annotations);
            annotations.and_then(|mut a| a.remove(key)).unwrap_or_default()
        }))
    }

    /// Everything this cluster says, judged at `now`.
    pub async fn read(
        &self,
        namespaces: &[String],
        services: &(dyn ServiceOwner + Sync),
        now: DateTime<Utc>,
    ) -> Result<Vec<StatusItem>, ClusterError> {
        let client = self.client().await?;
        let reading = async {
            let mut items = Vec::new();
            let linkerd = &self.config.linkerd;
            let identity = [
                (&linkerd.trust_anchor_namespace, &linkerd.trust_anchor),
                (&linkerd.namespace, &linkerd.issuer),
            ];
            for namespace in namespaces {
                let certificates = list::<Certificate>(&client, namespace, "certificates").await?;
                let requests =
                    list::<CertificateRequest>(&client, namespace, "certificaterequests").await?;
                for certificate in &certificates {
                    let name = certificate.metadata.name.clone().unwrap_or_default();
                    // Linkerd's own certificates are judged with their secrets below.
                    if linkerd.enabled && identity.contains(&(namespace, &name)) {
                        continue;
                    }
                    let judgement = judge_with_requests(certificate, &requests, now);
                    let labels = certificate.metadata.labels.clone().unwrap_or_default();
                    items.push(self.item(
                        ItemKind::Certificate,
                        namespace,
                        &name,
                        services.owner(namespace, &name, &labels),
                        certificate,
                        judgement,
                    ));
                }
            }
            if linkerd.enabled {
                items.extend(self.read_linkerd(&client, now).await?);
            }
            Ok::<_, ClusterError>(items)
        };
        tokio::time::timeout(READ_TIMEOUT, reading)
            .await
            .map_err(|_| ClusterError::Timeout(READ_TIMEOUT))?
    }

    /// The trust anchor, identity issuer and trust bundle.
    async fn read_linkerd(
        &self,
        client: &kube::Client,
        now: DateTime<Utc>,
    ) -> Result<Vec<StatusItem>, ClusterError> {
        let linkerd = &self.config.linkerd;
        let bundle_map: Option<ConfigMap> =
            get(client, &linkerd.namespace, &linkerd.trust_bundle).await?;
        let bundle = bundle_map
            .as_ref()
            .map(|map| {
                let text = map.data.as_ref().and_then(|d| d.get(&linkerd.trust_bundle_key));
                text.ok_or_else(|| format!("has no key {}", linkerd.trust_bundle_key))
                    .and_then(|text| linkerd::parse_pem_bundle(text.as_bytes()))
            })
            .transpose();
        let mut items = Vec::new();
        let bundle_judgement = match &bundle {
            Ok(Some(certificates)) => linkerd::judge_bundle(certificates, now),
            Ok(None) => missing("ConfigMap", &linkerd.namespace, &linkerd.trust_bundle),
            Err(error) => failing(format!("the trust bundle {error}")),
        };
        let bundle_expiry = bundle
            .as_ref()
            .ok()
            .and_then(Option::as_ref)
            .and_then(|b| b.iter().map(|c| c.not_after).max());
        items.push(StatusItem {
            kind: ItemKind::TrustBundle,
            source: self.config.name.clone(),
            namespace: linkerd.namespace.clone(),
            name: linkerd.trust_bundle.clone(),
            service: None,
            expires_at: bundle_expiry.map(|t| t.timestamp()),
            renews_at: None,
            judgement: bundle_judgement,
        });
        let bundle = bundle.ok().flatten();
        for (kind, namespace, name) in [
            (ItemKind::TrustAnchor, &linkerd.trust_anchor_namespace, &linkerd.trust_anchor),
            (ItemKind::IdentityIssuer, &linkerd.namespace, &linkerd.issuer),
        ] {
            let certificate: Option<Certificate> = get(client, namespace, name).await?;
            let secret: Option<Secret> = get(client, namespace, name).await?;
            let parsed = secret.as_ref().map(tls_certificate).transpose();
            let from_secret = match &parsed {
                Ok(Some(parsed)) => match kind {
                    ItemKind::TrustAnchor => linkerd::judge_anchor(parsed, bundle.as_deref(), now),
                    _ => linkerd::judge_issuer(parsed, bundle.as_deref(), now),
                },
                Ok(None) => missing("secret", namespace, name),
                Err(error) => failing(format!("the secret {namespace}/{name} {error}")),
            };
            // The worse of what cert-manager reports and what the secret really holds.
            let judgement = match &certificate {
                Some(c) => worse(judge_with_requests(c, &[], now), from_secret),
                None => from_secret,
            };
            let parsed = parsed.ok().flatten();
            let renews_at = certificate
                .as_ref()
                .and_then(|c| c.status.as_ref())
                .and_then(|s| cert_manager::parse_time(s.renewal_time.as_deref()));
            items.push(StatusItem {
                kind,
                source: self.config.name.clone(),
                namespace: namespace.clone(),
                name: name.clone(),
                service: None,
                expires_at: parsed.map(|p| p.not_after.timestamp()),
                renews_at: renews_at.map(|t| t.timestamp()),
                judgement,
            });
        }
        Ok(items)
    }

    fn item(
        &self,
        kind: ItemKind,
        namespace: &str,
        name: &str,
        service: Option<String>,
        certificate: &Certificate,
        judgement: Judgement,
    ) -> StatusItem {
        let status = certificate.status.as_ref();
        let time = |value: Option<&String>| {
            cert_manager::parse_time(value.map(String::as_str)).map(|t| t.timestamp())
        };
        StatusItem {
            kind,
            source: self.config.name.clone(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            service,
            expires_at: time(status.and_then(|s| s.not_after.as_ref())),
            renews_at: time(status.and_then(|s| s.renewal_time.as_ref())),
            judgement,
        }
    }
}

/// A certificate judged with the failure of the request for the revision being issued.
fn judge_with_requests(
    certificate: &Certificate,
    requests: &[CertificateRequest],
    now: DateTime<Utc>,
) -> Judgement {
    let name = certificate.metadata.name.as_deref().unwrap_or_default();
    let status = certificate.status.as_ref();
    let next_revision = status.and_then(|s| s.revision).unwrap_or(0) + 1;
    let failure = requests
        .iter()
        .filter(|r| r.made_for() == Some((name, next_revision)))
        .find_map(CertificateRequest::failure);
    cert_manager::judge(status, failure.as_deref(), now)
}

/// The leaf certificate of a `kubernetes.io/tls` secret (`tls.crt`).
fn tls_certificate(secret: &Secret) -> Result<ParsedCertificate, String> {
    let pem = secret.data.as_ref().and_then(|data| data.get("tls.crt")).ok_or("has no tls.crt")?;
    linkerd::parse_pem_bundle(&pem.0).map(|mut certificates| certificates.remove(0))
}

fn worse(a: Judgement, b: Judgement) -> Judgement {
    if b.state > a.state { b } else { a }
}

fn failing(reason: String) -> Judgement {
    Judgement::new(app::rotation::RotationState::Failing, reason)
}

fn missing(what: &str, namespace: &str, name: &str) -> Judgement {
    failing(format!("the {what} {namespace}/{name} does not exist"))
}

/// A namespaced kind meshport reads.
trait Namespaced:
    kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
    + Clone
    + serde::de::DeserializeOwned
    + std::fmt::Debug
{
}

impl<K> Namespaced for K where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
{
}

/// Lists `K` in `namespace`, with an error that says what is missing or forbidden.
async fn list<K: Namespaced>(
    client: &kube::Client,
    namespace: &str,
    plural: &str,
) -> Result<Vec<K>, ClusterError> {
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    api.list(&ListParams::default())
        .await
        .map(|list| list.items)
        .map_err(|e| api_error(e, &format!("list {plural} in {namespace}")))
}

/// Gets one object; `None` when it does not exist.
async fn get<K: Namespaced>(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<Option<K>, ClusterError> {
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    match api.get_opt(name).await {
        Ok(object) => Ok(object),
        // No such resource type (cert-manager not installed): as good as no object.
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(None),
        Err(error) => Err(api_error(error, &format!("get {}/{namespace}/{name}", K::kind(&())))),
    }
}

fn api_error(error: kube::Error, doing: &str) -> ClusterError {
    match error {
        kube::Error::Api(status) if status.code == 403 => ClusterError::Api(format!(
            "forbidden to {doing}: meshport's identity needs get and list on it ({})",
            status.message
        )),
        kube::Error::Api(status) if status.code == 404 => ClusterError::Api(format!(
            "cannot {doing}: the resource type is not installed (is cert-manager installed?)"
        )),
        error => ClusterError::Api(format!("cannot {doing}: {error}")),
    }
}

/// The labels that name a workload, most specific first.
pub(crate) const SERVICE_LABELS: [&str; 2] = ["app.kubernetes.io/name", "app"];

/// Labels of an object, for [`ServiceOwner::owner`].
pub type Labels = BTreeMap<String, String>;

/// Which onboarded service an object belongs to: the status board's index of services answers,
/// so this module does not depend on the status board.
pub trait ServiceOwner {
    /// `namespace/service` of the object `name` in `namespace` with `labels`, if it is a
    /// service's.
    fn owner(&self, namespace: &str, name: &str, labels: &Labels) -> Option<String>;
}
