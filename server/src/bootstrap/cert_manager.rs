//! cert-manager's `Certificate`, `Issuer` and `ClusterIssuer` (cert-manager.io/v1) and
//! trust-manager's `Bundle` (trust.cert-manager.io/v1alpha1) as small typed structs holding the
//! fields the platform uses, named as the published CRD schemas name them.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::{Deserialize, Serialize};

use crate::artifacts::custom_resource::{CustomResource, CustomResourceSpec};

/// `Certificate`: a key pair and certificate kept in a Secret and renewed by cert-manager.
pub type Certificate = CustomResource<CertificateSpec>;
/// `Issuer`: issues certificates in its own namespace.
pub type Issuer = CustomResource<IssuerSpec<IssuerMarker>>;
/// `ClusterIssuer`: issues certificates in every namespace.
pub type ClusterIssuer = CustomResource<IssuerSpec<ClusterIssuerMarker>>;
/// `Bundle`: trust-manager copies CA certificates into a ConfigMap in selected namespaces.
pub type Bundle = CustomResource<BundleSpec>;

/// Spec of a `Certificate`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CertificateSpec {
    /// Secret the key pair is written to.
    pub secret_name: String,
    /// Subject common name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common_name: Option<String>,
    /// Subject alternative DNS names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_names: Vec<String>,
    /// Subject alternative IP addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_addresses: Vec<String>,
    /// Lifetime, as a Go duration (`48h`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// How long before expiry it is renewed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renew_before: Option<String>,
    /// Whether it is a CA certificate.
    #[serde(default, rename = "isCA", skip_serializing_if = "std::ops::Not::not")]
    pub is_ca: bool,
    /// The key's algorithm and rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<PrivateKey>,
    /// Key usages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub usages: Vec<String>,
    /// The issuer.
    pub issuer_ref: IssuerRef,
}

impl CustomResourceSpec for CertificateSpec {
    const KIND: &'static str = "Certificate";
    const API_VERSION: &'static str = "cert-manager.io/v1";
}

/// The private key of a `Certificate`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrivateKey {
    /// `ECDSA`, `RSA` or `Ed25519`.
    pub algorithm: String,
    /// Key size; 256 means P-256 for ECDSA.
    pub size: u32,
    /// `Always`: a new key at every renewal.
    pub rotation_policy: String,
}

impl PrivateKey {
    /// ECDSA P-256, rotated at every renewal: what Linkerd accepts for its issuer and the
    /// sensible default elsewhere.
    pub fn ecdsa_p256() -> Self {
        Self { algorithm: "ECDSA".to_owned(), size: 256, rotation_policy: "Always".to_owned() }
    }
}

/// A reference to an `Issuer` or `ClusterIssuer`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IssuerRef {
    /// Issuer name.
    pub name: String,
    /// `Issuer` or `ClusterIssuer`.
    pub kind: String,
    /// `cert-manager.io`.
    pub group: String,
}

impl IssuerRef {
    /// The `ClusterIssuer` named `name`.
    pub fn cluster_issuer(name: &str) -> Self {
        Self { name: name.to_owned(), kind: "ClusterIssuer".to_owned(), group: GROUP.to_owned() }
    }
}

/// cert-manager's API group.
const GROUP: &str = "cert-manager.io";

/// Tells `Issuer` and `ClusterIssuer` apart at the type level; they share one spec.
pub trait IssuerKind {
    /// `Issuer` or `ClusterIssuer`.
    const KIND: &'static str;
}

/// Marker of `Issuer`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IssuerMarker;
/// Marker of `ClusterIssuer`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterIssuerMarker;

impl IssuerKind for IssuerMarker {
    const KIND: &'static str = "Issuer";
}

impl IssuerKind for ClusterIssuerMarker {
    const KIND: &'static str = "ClusterIssuer";
}

/// Spec of an `Issuer` or `ClusterIssuer`: exactly one of its fields is set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IssuerSpec<K> {
    /// Signs certificates with their own key: only for roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_signed: Option<SelfSigned>,
    /// Signs with a CA key pair held in a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<CaIssuer>,
    /// An ACME server such as Let's Encrypt: end-entity certificates for public names only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acme: Option<Acme>,
    #[serde(skip)]
    kind: std::marker::PhantomData<K>,
}

impl<K: IssuerKind> CustomResourceSpec for IssuerSpec<K> {
    const KIND: &'static str = K::KIND;
    const API_VERSION: &'static str = "cert-manager.io/v1";
}

impl<K> IssuerSpec<K> {
    /// A self-signing issuer.
    pub fn self_signed() -> Self {
        Self {
            self_signed: Some(SelfSigned {}),
            ca: None,
            acme: None,
            kind: std::marker::PhantomData,
        }
    }

    /// A CA issuer signing with the key pair in `secret_name`.
    pub fn ca(secret_name: &str) -> Self {
        Self {
            self_signed: None,
            ca: Some(CaIssuer { secret_name: secret_name.to_owned() }),
            acme: None,
            kind: std::marker::PhantomData,
        }
    }

    /// An ACME issuer.
    pub fn acme(acme: Acme) -> Self {
        Self { self_signed: None, ca: None, acme: Some(acme), kind: std::marker::PhantomData }
    }
}

/// The (empty) settings of a self-signing issuer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelfSigned {}

/// A CA issuer's key pair.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CaIssuer {
    /// Secret holding `tls.crt` and `tls.key` of the CA.
    pub secret_name: String,
}

/// An ACME account and how challenges are solved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Acme {
    /// Directory URL of the ACME server.
    pub server: String,
    /// Contact address of the account.
    pub email: String,
    /// Secret holding the account key.
    pub private_key_secret_ref: SecretRef,
    /// Challenge solvers.
    pub solvers: Vec<AcmeSolver>,
}

/// A reference to a Secret by name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    /// Secret name.
    pub name: String,
}

/// One ACME challenge solver.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AcmeSolver {
    /// Which names this solver is used for.
    pub selector: SolverSelector,
    /// The DNS-01 provider.
    pub dns01: Dns01,
}

/// The names a solver handles.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SolverSelector {
    /// DNS zones whose names (and subdomains) use this solver.
    pub dns_zones: Vec<String>,
}

/// A DNS-01 provider.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dns01 {
    /// Route53, with the controller's ambient (IRSA) credentials.
    pub route53: Route53,
}

/// Route53 without static keys: cert-manager's ServiceAccount carries the IRSA role.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Route53 {
    /// AWS region (a hint for the credential scope).
    pub region: String,
    /// The hosted zone, so no zone lookup is needed.
    #[serde(rename = "hostedZoneID")]
    pub hosted_zone_id: String,
}

/// Spec of a trust-manager `Bundle`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BundleSpec {
    /// Where the CA certificates come from.
    pub sources: Vec<BundleSource>,
    /// Where the bundle is written.
    pub target: BundleTarget,
}

impl CustomResourceSpec for BundleSpec {
    const KIND: &'static str = "Bundle";
    const API_VERSION: &'static str = "trust.cert-manager.io/v1alpha1";
}

/// One source of a bundle: a key of a Secret (by name, or every Secret a selector matches) in
/// trust-manager's trust namespace.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleSource {
    /// The Secret and key.
    pub secret: SecretKey,
}

/// A key of a Secret named `name`, or of the Secrets `selector` matches (none is not an error:
/// trust-manager `pkg/bundle/internal/source/source.go` adds nothing for an empty match, while a
/// missing named Secret stops the bundle).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretKey {
    /// Secret name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Labels of the Secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// Key inside its data.
    pub key: String,
}

/// The ConfigMap a bundle is written to, and in which namespaces.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BundleTarget {
    /// The key inside a ConfigMap named after the bundle.
    pub config_map: ConfigMapKey,
    /// The key inside a Secret named after the bundle too (what the Vault Agent Injector can
    /// mount); trust-manager must be allowed to write that Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<ConfigMapKey>,
    /// Namespaces that receive it.
    pub namespace_selector: LabelSelector,
}

/// A key of the target ConfigMap or Secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigMapKey {
    /// Key name.
    pub key: String,
}

/// A label selector matching `labels` exactly.
pub fn match_labels(labels: &[(&str, &str)]) -> LabelSelector {
    LabelSelector {
        match_labels: Some(
            labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
        ),
        match_expressions: None,
    }
}
