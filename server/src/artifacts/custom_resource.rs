//! A custom resource as typed data: `apiVersion`, `kind`, `metadata` and a typed spec. Linkerd's
//! policy objects and the platform's cert-manager, trust-manager and ArgoCD objects share it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

/// A spec type and the kind and version it is served as.
pub trait CustomResourceSpec {
    /// `kind` of the resource.
    const KIND: &'static str;
    /// `apiVersion` of the resource.
    const API_VERSION: &'static str;
}

/// A custom resource: apiVersion, kind, metadata and a typed spec.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CustomResource<S> {
    /// Always `S::API_VERSION`.
    pub api_version: String,
    /// Always `S::KIND`.
    pub kind: String,
    /// Name, namespace, labels.
    pub metadata: ObjectMeta,
    /// The resource's spec.
    pub spec: S,
}

impl<S: CustomResourceSpec> CustomResource<S> {
    /// A resource of kind `S::KIND`.
    pub fn new(metadata: ObjectMeta, spec: S) -> Self {
        Self { api_version: S::API_VERSION.to_owned(), kind: S::KIND.to_owned(), metadata, spec }
    }
}
