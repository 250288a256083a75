//! ArgoCD's `Application` and `AppProject` (argoproj.io/v1alpha1) as small typed structs, and
//! the two-level app of apps: `argocd/bootstrap/root.yaml` (applied once by Helmfile) syncs
//! `argocd/apps/`, which holds the project and the Application syncing the services meshport
//! proposes under `manifests/`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

use super::config::BootstrapConfig;
use super::{PLATFORM_MANIFESTS, SERVICE_MANIFESTS};
use crate::artifacts::custom_resource::{CustomResource, CustomResourceSpec};

/// `Application`: a source in git synced to a destination in the cluster.
pub type Application = CustomResource<ApplicationSpec>;
/// `AppProject`: what the Applications of a project may deploy, and where.
pub type AppProject = CustomResource<AppProjectSpec>;

/// ArgoCD's namespace.
pub const NAMESPACE: &str = "argocd";
/// The in-cluster API server, as ArgoCD names it.
const IN_CLUSTER: &str = "https://kubernetes.default.svc";
/// Deletes an Application's resources when the Application is deleted.
const RESOURCES_FINALIZER: &str = "resources-finalizer.argocd.argoproj.io";

/// Spec of an `Application`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApplicationSpec {
    /// The AppProject it belongs to.
    pub project: String,
    /// Where the manifests come from.
    pub source: ApplicationSource,
    /// Where they go.
    pub destination: ApplicationDestination,
    /// When and how ArgoCD syncs.
    pub sync_policy: SyncPolicy,
}

impl CustomResourceSpec for ApplicationSpec {
    const KIND: &'static str = "Application";
    const API_VERSION: &'static str = "argoproj.io/v1alpha1";
}

/// A folder of plain manifests in a git repository.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApplicationSource {
    /// Clone URL.
    #[serde(rename = "repoURL")]
    pub repo_url: String,
    /// Branch.
    pub target_revision: String,
    /// Folder inside the repository.
    pub path: String,
    /// How the folder is read.
    pub directory: DirectorySource,
}

/// How ArgoCD reads a folder of manifests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DirectorySource {
    /// Whether sub-folders are read too.
    pub recurse: bool,
    /// Glob of paths (relative to the folder) left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude: Option<String>,
}

/// The cluster and default namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApplicationDestination {
    /// API server URL.
    pub server: String,
    /// Namespace for objects that name none.
    pub namespace: String,
}

/// Automated sync with pruning and self-healing, retried with back-off.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SyncPolicy {
    /// Sync on every change in git.
    pub automated: AutomatedSync,
    /// `CreateNamespace=false` and friends.
    pub sync_options: Vec<String>,
    /// Retries of a failed sync.
    pub retry: RetryStrategy,
}

/// Automated sync options.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AutomatedSync {
    /// Delete what was removed from git.
    pub prune: bool,
    /// Undo changes made in the cluster by hand.
    pub self_heal: bool,
}

/// Retry policy of a sync.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryStrategy {
    /// Attempts.
    pub limit: i64,
    /// Back-off between them.
    pub backoff: Backoff,
}

/// Exponential back-off.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Backoff {
    /// First wait (`10s`).
    pub duration: String,
    /// Growth factor.
    pub factor: i64,
    /// Longest wait.
    pub max_duration: String,
}

/// Spec of an `AppProject`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppProjectSpec {
    /// What the project is for.
    pub description: String,
    /// Repositories its Applications may read.
    pub source_repos: Vec<String>,
    /// Clusters and namespaces they may deploy to.
    pub destinations: Vec<ApplicationDestination>,
    /// Cluster-scoped kinds they may create; empty: none.
    pub cluster_resource_whitelist: Vec<GroupKind>,
}

impl CustomResourceSpec for AppProjectSpec {
    const KIND: &'static str = "AppProject";
    const API_VERSION: &'static str = "argoproj.io/v1alpha1";
}

/// An API group and kind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupKind {
    /// API group.
    pub group: String,
    /// Kind.
    pub kind: String,
}

/// The root Application, the project of the services and the Application syncing them.
pub struct AppOfApps {
    /// `argocd/bootstrap/root.yaml`: syncs `argocd/apps/`.
    pub root: Application,
    /// `argocd/apps/appproject-services.yaml`.
    pub project: AppProject,
    /// `argocd/apps/application-services.yaml`: syncs `manifests/` recursively, except the
    /// platform's own folder, which Helmfile applies in order.
    pub services: Application,
}

/// The Application name of the services.
pub const SERVICES_APPLICATION: &str = "services";

impl AppOfApps {
    /// The Applications for `config`.
    pub fn new(config: &BootstrapConfig) -> Self {
        let meta = |name: &str, finalizer: bool| ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(NAMESPACE.to_owned()),
            finalizers: finalizer.then(|| vec![RESOURCES_FINALIZER.to_owned()]),
            ..ObjectMeta::default()
        };
        let source = |path: &str, recurse: bool, exclude: Option<String>| ApplicationSource {
            repo_url: config.git.repo_url.clone(),
            target_revision: config.git.branch.clone(),
            path: path.to_owned(),
            directory: DirectorySource { recurse, exclude },
        };
        let sync_policy = SyncPolicy {
            automated: AutomatedSync { prune: true, self_heal: true },
            // Namespaces are the platform's (Helmfile), so a typo cannot create one.
            sync_options: vec!["CreateNamespace=false".to_owned(), "PruneLast=true".to_owned()],
            retry: RetryStrategy {
                limit: 5,
                backoff: Backoff {
                    duration: "10s".to_owned(),
                    factor: 2,
                    max_duration: "5m".to_owned(),
                },
            },
        };
        let in_cluster = |namespace: &str| ApplicationDestination {
            server: IN_CLUSTER.to_owned(),
            namespace: namespace.to_owned(),
        };
        let platform_folder = PLATFORM_MANIFESTS
            .strip_prefix(SERVICE_MANIFESTS)
            .and_then(|rest| rest.strip_prefix('/'))
            .expect("the platform folder is inside the services folder");
        Self {
            root: CustomResource::new(
                meta("root", false),
                ApplicationSpec {
                    project: "default".to_owned(),
                    source: source("argocd/apps", false, None),
                    destination: in_cluster(NAMESPACE),
                    sync_policy: sync_policy.clone(),
                },
            ),
            project: CustomResource::new(
                meta(SERVICES_APPLICATION, false),
                AppProjectSpec {
                    description: "Services onboarded through meshport: namespaced objects in the \
                                  application namespaces only."
                        .to_owned(),
                    source_repos: vec![config.git.repo_url.clone()],
                    destinations: config
                        .application_namespaces
                        .iter()
                        .map(|namespace| in_cluster(namespace))
                        .collect(),
                    cluster_resource_whitelist: Vec::new(),
                },
            ),
            services: CustomResource::new(
                meta(SERVICES_APPLICATION, true),
                ApplicationSpec {
                    project: SERVICES_APPLICATION.to_owned(),
                    source: source(SERVICE_MANIFESTS, true, Some(format!("{platform_folder}/**"))),
                    destination: in_cluster(&config.application_namespaces[0]),
                    sync_policy,
                },
            ),
        }
    }
}
