//! meshport itself, as a small local chart in `charts/meshport/` (Helmfile installs it last):
//! its ServiceAccount, a ConfigMap with its configuration file, the Deployment and the Service.
//! meshport logs in to Vault with its ServiceAccount's Vault-audience token (Kubernetes auth,
//! role `meshport`, the least-privilege policy of `meshport vault policy`). Credentials (database
//! URL, OIDC client secret, audit signing key, the GitHub token and webhook secret as
//! `MESHPORT_GITOPS__TOKEN` / `MESHPORT_GITOPS__WEBHOOK_SECRET`) come from the Secret
//! `meshport-credentials`, which the operator creates; nothing secret is in git. Beside the chart,
//! meshport's own Vault policy and Kubernetes-auth role, as files under `vault/`.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EnvFromSource, EnvVar,
    HTTPGetAction, PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ProjectedVolumeSource,
    ResourceRequirements, SeccompProfile, SecretEnvSource, SecurityContext, Service,
    ServiceAccount, ServiceAccountTokenProjection, ServicePort, ServiceSpec, Volume, VolumeMount,
    VolumeProjection,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;

use super::config::BootstrapConfig;
use super::platform::{MESHPORT_NAMESPACE, VAULT_CA_BUNDLE};
use super::vault_server;
use crate::artifacts::vault_objects::KubernetesAuthRole;
use crate::artifacts::{ArtifactFile, RenderError, yaml_file};

/// Folder of the chart in the generated repository.
pub const CHART_FOLDER: &str = "charts/meshport";
/// The Secret with meshport's credentials, as `MESHPORT_*` variables.
pub const CREDENTIALS_SECRET: &str = "meshport-credentials";
/// meshport's ServiceAccount, Vault policy and role.
pub const MESHPORT_ACCOUNT: &str = "meshport";
const NAME: &str = "meshport";
const PORT: i32 = 3000;
const CONFIG_DIR: &str = "/etc/meshport";
const VAULT_CA_DIR: &str = "/etc/meshport/vault-ca";
/// meshport's own files (git work trees); the root file system is read-only.
const DATA_DIR: &str = "/var/lib/meshport";

/// `Chart.yaml`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Chart {
    api_version: &'static str,
    name: &'static str,
    description: &'static str,
    #[serde(rename = "type")]
    type_: &'static str,
    version: &'static str,
    app_version: String,
}

/// The part of meshport's configuration file the platform decides.
#[derive(Serialize)]
struct PortalConfig {
    listen: String,
    public_url: String,
    data_dir: &'static str,
    vault: PortalVault,
    gitops: PortalGitops,
    onboarding: PortalOnboarding,
}

#[derive(Serialize)]
struct PortalVault {
    addr: String,
    ca_cert: String,
    annotation_prefix: &'static str,
    /// Scopes meshport's own policy to the objects it creates.
    name_prefix: &'static str,
    /// Said only when not the default, `per-service`.
    #[serde(skip_serializing_if = "Option::is_none")]
    policy_mode: Option<&'static str>,
    login: PortalLogin,
}

/// meshport logs in with its ServiceAccount's Vault-audience token: no static Vault token.
#[derive(Serialize)]
struct PortalLogin {
    method: &'static str,
    role: &'static str,
    jwt_path: &'static str,
}

/// Prefix of every policy and role meshport creates.
const NAME_PREFIX: &str = "meshport-";
/// Where the Vault-audience token of meshport's ServiceAccount is mounted.
const VAULT_TOKEN_DIR: &str = "/var/run/secrets/vault";
const VAULT_TOKEN_PATH: &str = "/var/run/secrets/vault/token";

/// The configuration the chart gives meshport, as meshport reads it: the settings its own
/// Vault policy is rendered for.
pub fn portal_config(config: &BootstrapConfig) -> crate::config::Config {
    let mut portal = crate::config::Config::default();
    portal.vault.name_prefix = NAME_PREFIX.to_owned();
    portal.vault.annotation_prefix = config.secrets_backend.annotation_prefix().to_owned();
    portal.vault.policy_mode = config.vault_policy_mode;
    portal.onboarding.namespaces = config.application_namespaces.clone();
    portal.onboarding.cluster_domain = config.cluster_domain.clone();
    portal
}

/// meshport's own Vault identity: the least-privilege policy `meshport vault policy` renders
/// for the generated configuration, and the Kubernetes-auth role its ServiceAccount logs in
/// with (README, step 4). Never a root token.
pub fn vault_access_files(config: &BootstrapConfig) -> Result<Vec<ArtifactFile>, RenderError> {
    let settings = portal_config(config).artifact_settings();
    let policy =
        crate::vault::portal_policy(MESHPORT_ACCOUNT, &settings, &config.application_namespaces);
    let role = KubernetesAuthRole {
        mount: settings.kubernetes_auth_mount.clone(),
        name: MESHPORT_ACCOUNT.to_owned(),
        bound_service_account_names: vec![MESHPORT_ACCOUNT.to_owned()],
        bound_service_account_namespaces: vec![MESHPORT_NAMESPACE.to_owned()],
        token_policies: vec![policy.name.clone()],
        token_ttl: 3600,
        token_max_ttl: 4 * 3600,
        audience: Some(vault_server::SNAPSHOT_AUDIENCE.to_owned()),
    };
    let mut files = vault_server::access_files(&policy, &role)?;
    // Templated mode: the one workload policy, written once at set-up with the Kubernetes auth
    // mount's accessor in place of the placeholder (README, step 4).
    if settings.policy_mode == crate::artifacts::vault_objects::PolicyMode::Templated {
        let workloads = crate::artifacts::workload_policy(&settings, ACCESSOR_PLACEHOLDER);
        files.push(ArtifactFile {
            path: format!("vault/sys/policies/acl/{}.hcl", workloads.name),
            contents: workloads.to_hcl(),
        });
    }
    Ok(files)
}

/// Stands for the Kubernetes auth mount's accessor in the rendered workload policy; known only
/// once the mount exists.
pub const ACCESSOR_PLACEHOLDER: &str = "KUBERNETES_AUTH_ACCESSOR";

#[derive(Serialize)]
struct PortalGitops {
    repo_url: String,
    base_branch: String,
    /// The repository's workflows are GitHub Actions, so its pull requests are GitHub's.
    provider: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_url: Option<String>,
    owner: String,
    repo: String,
}

impl PortalGitops {
    /// The GitHub settings of `repo_url` (`https://HOST/OWNER/REPO(.git)` or
    /// `ssh://git@HOST/OWNER/REPO(.git)`); GitHub Enterprise hosts get their `/api/v3` URL.
    fn github(repo_url: &str, base_branch: &str) -> Result<Self, RenderError> {
        let invalid = || {
            RenderError::new(
                "meshport.toml",
                format!("`git.repo_url` {repo_url} names no OWNER/REPO"),
            )
        };
        let url = url::Url::parse(repo_url).map_err(|_| invalid())?;
        let host = url.host_str().ok_or_else(invalid)?;
        let mut segments = url.path_segments().ok_or_else(invalid)?.filter(|s| !s.is_empty());
        let (Some(owner), Some(repo), None) = (segments.next(), segments.next(), segments.next())
        else {
            return Err(invalid());
        };
        Ok(Self {
            repo_url: repo_url.to_owned(),
            base_branch: base_branch.to_owned(),
            provider: "github",
            api_url: (host != "github.com").then(|| format!("https://{host}/api/v3")),
            owner: owner.to_owned(),
            repo: repo.trim_end_matches(".git").to_owned(),
        })
    }
}

#[derive(Serialize)]
struct PortalOnboarding {
    namespaces: Vec<String>,
    cluster_domain: String,
}

/// The chart's files.
pub fn chart_files(config: &BootstrapConfig) -> Result<Vec<ArtifactFile>, RenderError> {
    let tag = app::onboarding::ImageReference::parse(&config.meshport.image)
        .ok()
        .and_then(|image| image.tag.or(image.digest))
        .unwrap_or(env!("CARGO_PKG_VERSION"))
        .to_owned();
    let chart = Chart {
        api_version: "v2",
        name: NAME,
        description: "meshport, the self-service onboarding portal of the service mesh",
        type_: "application",
        version: env!("CARGO_PKG_VERSION"),
        app_version: tag,
    };
    let portal = PortalConfig {
        listen: format!("0.0.0.0:{PORT}"),
        public_url: config.meshport.public_url.clone(),
        data_dir: DATA_DIR,
        vault: PortalVault {
            addr: config.secrets_backend_addr(),
            ca_cert: format!("{VAULT_CA_DIR}/{}", VAULT_CA_BUNDLE.1),
            annotation_prefix: config.secrets_backend.annotation_prefix(),
            name_prefix: NAME_PREFIX,
            policy_mode: (config.vault_policy_mode
                != crate::artifacts::vault_objects::PolicyMode::PerService)
                .then(|| config.vault_policy_mode.as_str()),
            login: PortalLogin {
                method: "kubernetes",
                role: MESHPORT_ACCOUNT,
                jwt_path: VAULT_TOKEN_PATH,
            },
        },
        gitops: PortalGitops::github(&config.git.repo_url, &config.git.branch)?,
        onboarding: PortalOnboarding {
            namespaces: config.application_namespaces.clone(),
            cluster_domain: config.cluster_domain.clone(),
        },
    };
    let toml =
        toml::to_string(&portal).map_err(|e| RenderError::new("meshport.toml", e.to_string()))?;
    let template = |name: &str| format!("{CHART_FOLDER}/templates/{name}.yaml");
    Ok(vec![
        yaml_file(format!("{CHART_FOLDER}/Chart.yaml"), &chart)?,
        yaml_file(
            template("serviceaccount"),
            &ServiceAccount {
                metadata: meta(),
                automount_service_account_token: Some(false),
                ..ServiceAccount::default()
            },
        )?,
        yaml_file(
            template("configmap"),
            &ConfigMap {
                metadata: meta(),
                data: Some(BTreeMap::from([("meshport.toml".to_owned(), toml)])),
                ..ConfigMap::default()
            },
        )?,
        yaml_file(template("deployment"), &deployment(config))?,
        yaml_file(
            template("service"),
            &Service {
                metadata: meta(),
                spec: Some(ServiceSpec {
                    selector: Some(selector()),
                    ports: Some(vec![ServicePort {
                        name: Some("http".to_owned()),
                        port: 80,
                        target_port: Some(IntOrString::String("http".to_owned())),
                        protocol: Some("TCP".to_owned()),
                        app_protocol: Some("http".to_owned()),
                        ..ServicePort::default()
                    }]),
                    ..ServiceSpec::default()
                }),
                ..Service::default()
            },
        )?,
    ])
}

fn meta() -> ObjectMeta {
    ObjectMeta {
        name: Some(NAME.to_owned()),
        namespace: Some(MESHPORT_NAMESPACE.to_owned()),
        labels: Some(selector()),
        ..ObjectMeta::default()
    }
}

fn selector() -> BTreeMap<String, String> {
    BTreeMap::from([("app.kubernetes.io/name".to_owned(), NAME.to_owned())])
}

fn quantities(pairs: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
    pairs.iter().map(|(name, value)| ((*name).to_owned(), Quantity((*value).to_owned()))).collect()
}

fn deployment(config: &BootstrapConfig) -> Deployment {
    let probe = |path: &str| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String("http".to_owned()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(10),
        ..Probe::default()
    };
    let container = Container {
        name: NAME.to_owned(),
        image: Some(config.meshport.image.clone()),
        args: Some(vec!["serve".to_owned()]),
        ports: Some(vec![ContainerPort {
            name: Some("http".to_owned()),
            container_port: PORT,
            protocol: Some("TCP".to_owned()),
            ..ContainerPort::default()
        }]),
        env: Some(vec![EnvVar {
            name: "MESHPORT_CONFIG".to_owned(),
            value: Some(format!("{CONFIG_DIR}/meshport.toml")),
            value_from: None,
        }]),
        env_from: Some(vec![EnvFromSource {
            secret_ref: Some(SecretEnvSource {
                name: CREDENTIALS_SECRET.to_owned(),
                optional: Some(false),
            }),
            ..EnvFromSource::default()
        }]),
        volume_mounts: Some(vec![
            VolumeMount {
                name: "config".to_owned(),
                mount_path: CONFIG_DIR.to_owned(),
                read_only: Some(true),
                ..VolumeMount::default()
            },
            VolumeMount {
                name: "vault-ca".to_owned(),
                mount_path: VAULT_CA_DIR.to_owned(),
                read_only: Some(true),
                ..VolumeMount::default()
            },
            VolumeMount {
                name: "vault-token".to_owned(),
                mount_path: VAULT_TOKEN_DIR.to_owned(),
                read_only: Some(true),
                ..VolumeMount::default()
            },
            VolumeMount {
                name: "data".to_owned(),
                mount_path: DATA_DIR.to_owned(),
                ..VolumeMount::default()
            },
            VolumeMount {
                name: "tmp".to_owned(),
                mount_path: "/tmp".to_owned(),
                ..VolumeMount::default()
            },
        ]),
        resources: Some(ResourceRequirements {
            requests: Some(quantities(&[("cpu", "100m"), ("memory", "128Mi")])),
            limits: Some(quantities(&[("memory", "512Mi")])),
            ..ResourceRequirements::default()
        }),
        readiness_probe: Some(probe("/readyz")),
        liveness_probe: Some(probe("/healthz")),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            ..SecurityContext::default()
        }),
        ..Container::default()
    };
    let config_map = |name: &str, config_map: &str| Volume {
        name: name.to_owned(),
        config_map: Some(ConfigMapVolumeSource {
            name: config_map.to_owned(),
            ..ConfigMapVolumeSource::default()
        }),
        ..Volume::default()
    };
    let empty_dir = |name: &str| Volume {
        name: name.to_owned(),
        empty_dir: Some(k8s_openapi::api::core::v1::EmptyDirVolumeSource::default()),
        ..Volume::default()
    };
    Deployment {
        metadata: meta(),
        spec: Some(DeploymentSpec {
            replicas: Some(2),
            selector: LabelSelector { match_labels: Some(selector()), match_expressions: None },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(selector()), ..ObjectMeta::default() }),
                spec: Some(PodSpec {
                    service_account_name: Some(NAME.to_owned()),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".to_owned(),
                            localhost_profile: None,
                        }),
                        ..PodSecurityContext::default()
                    }),
                    containers: vec![container],
                    volumes: Some(vec![
                        config_map("config", NAME),
                        config_map("vault-ca", VAULT_CA_BUNDLE.0),
                        // A short-lived token for Vault's audience only: meshport's Vault login.
                        Volume {
                            name: "vault-token".to_owned(),
                            projected: Some(ProjectedVolumeSource {
                                sources: Some(vec![VolumeProjection {
                                    service_account_token: Some(ServiceAccountTokenProjection {
                                        audience: Some(vault_server::SNAPSHOT_AUDIENCE.to_owned()),
                                        expiration_seconds: Some(3600),
                                        path: "token".to_owned(),
                                    }),
                                    ..VolumeProjection::default()
                                }]),
                                default_mode: None,
                            }),
                            ..Volume::default()
                        },
                        empty_dir("data"),
                        empty_dir("tmp"),
                    ]),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// The configuration file in the ConfigMap is one meshport itself accepts.
    #[test]
    fn the_generated_configuration_loads_in_meshport() {
        let files = chart_files(&BootstrapConfig::example()).unwrap();
        let config_map = files.iter().find(|f| f.path.ends_with("configmap.yaml")).unwrap();
        let config_map: ConfigMap = serde_saphyr::from_str(&config_map.contents).unwrap();
        let toml = config_map.data.unwrap().remove("meshport.toml").unwrap();
        figment::Jail::expect_with(|jail| {
            jail.create_file("meshport.toml", &toml)?;
            // From the `meshport-credentials` Secret in the cluster.
            jail.set_env("MESHPORT_GITOPS__TOKEN", "from-the-secret");
            let config = crate::config::Config::load(Some(Path::new("meshport.toml")))
                .map_err(|e| e.to_string())?;
            assert_eq!(config.vault.addr, "https://vault.vault.svc:8200");
            assert_eq!(
                (config.gitops.owner.as_deref(), config.gitops.repo.as_deref()),
                (Some("example-org"), Some("platform-gitops"))
            );
            assert_eq!(config.vault.name_prefix, NAME_PREFIX);
            assert!(
                matches!(&config.vault.login, crate::vault::VaultLogin::Kubernetes { role, jwt_path, .. }
                    if role == "meshport" && jwt_path == Path::new(VAULT_TOKEN_PATH)),
                "{:?}",
                config.vault.login
            );
            assert!(config.vault.token.is_none(), "no static Vault token");
            // The policy in the repository is the one meshport needs for this configuration.
            let files = vault_access_files(&BootstrapConfig::example()).unwrap();
            let expected = crate::vault::portal_policy(
                "meshport",
                &config.artifact_settings(),
                &config.onboarding.namespaces,
            );
            assert_eq!(files[0].path, "vault/sys/policies/acl/meshport.hcl");
            assert_eq!(files[0].contents, expected.to_hcl());
            assert_eq!(config.onboarding.namespaces, ["prod-app"]);
            assert_eq!(config.data_dir, Path::new(DATA_DIR));
            Ok(())
        });
    }
}
