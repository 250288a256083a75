//! Linkerd's policy resources (group `policy.linkerd.io`) as small typed structs, following the
//! CRD schemas Linkerd publishes: a `Server` per port denies everything not authorised, a
//! `MeshTLSAuthentication` names the callers' service accounts, and an `AuthorizationPolicy`
//! joins the two.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::{Deserialize, Serialize};

pub use super::custom_resource::{
    CustomResource as PolicyResource, CustomResourceSpec as PolicySpec,
};

/// The API group of Linkerd's policy resources.
pub const GROUP: &str = "policy.linkerd.io";

/// `Server`: one port of the service's pods; traffic not authorised by a policy is denied.
pub type Server = PolicyResource<ServerSpec>;
/// `MeshTLSAuthentication`: the mTLS identities allowed to call.
pub type MeshTlsAuthentication = PolicyResource<MeshTlsAuthenticationSpec>;
/// `AuthorizationPolicy`: lets the authenticated callers reach a `Server`.
pub type AuthorizationPolicy = PolicyResource<AuthorizationPolicySpec>;

/// Spec of a `Server` (policy.linkerd.io/v1beta3).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServerSpec {
    /// The service's pods.
    pub pod_selector: LabelSelector,
    /// The container port's name.
    pub port: String,
    /// `HTTP/1`, `HTTP/2`, `gRPC`, `opaque`, `TLS` or `unknown`.
    pub proxy_protocol: String,
    /// What happens to traffic no policy matches; meshport always says `deny`.
    pub access_policy: String,
}

impl PolicySpec for ServerSpec {
    const KIND: &'static str = "Server";
    const API_VERSION: &'static str = "policy.linkerd.io/v1beta3";
}

/// Spec of a `MeshTLSAuthentication` (policy.linkerd.io/v1alpha1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MeshTlsAuthenticationSpec {
    /// The callers' service accounts; Linkerd derives their mTLS identities.
    pub identity_refs: Vec<ObjectReference>,
}

impl PolicySpec for MeshTlsAuthenticationSpec {
    const KIND: &'static str = "MeshTLSAuthentication";
    const API_VERSION: &'static str = "policy.linkerd.io/v1alpha1";
}

/// Spec of an `AuthorizationPolicy` (policy.linkerd.io/v1alpha1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthorizationPolicySpec {
    /// The `Server` this policy opens.
    pub target_ref: ObjectReference,
    /// Authentications a caller must all satisfy.
    pub required_authentication_refs: Vec<ObjectReference>,
}

impl PolicySpec for AuthorizationPolicySpec {
    const KIND: &'static str = "AuthorizationPolicy";
    const API_VERSION: &'static str = "policy.linkerd.io/v1alpha1";
}

/// A reference to another object, as Linkerd's policy CRDs spell it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectReference {
    /// API group; absent for the core group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind of the referent.
    pub kind: String,
    /// Name of the referent.
    pub name: String,
    /// Namespace of the referent; absent for the policy's own namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

impl ObjectReference {
    /// A reference to a Linkerd policy object in the same namespace.
    pub fn policy(kind: &str, name: &str) -> Self {
        Self {
            group: Some(GROUP.to_owned()),
            kind: kind.to_owned(),
            name: name.to_owned(),
            namespace: None,
        }
    }

    /// A reference to a ServiceAccount.
    pub fn service_account(namespace: &str, name: &str) -> Self {
        Self {
            group: None,
            kind: "ServiceAccount".to_owned(),
            name: name.to_owned(),
            namespace: Some(namespace.to_owned()),
        }
    }
}
