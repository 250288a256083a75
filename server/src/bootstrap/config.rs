//! The bootstrap configuration (`bootstrap.toml`): the few facts about one platform that the
//! generated repository depends on, read once and checked key by key. Every value ends up in
//! YAML, HCL, Markdown or a file path, so each is held to the narrow shape its consumer accepts
//! (a DNS name, an AWS region, an exact chart version); a value outside it stops the command with
//! the key and the rule, before anything is written.

use std::path::Path;

use app::onboarding::{ImageReference, is_dns_label};
use figment::Figment;
use figment::providers::{Format, Toml};
use serde::Deserialize;

use super::BootstrapError;

/// Everything `meshport bootstrap` needs to know about the platform.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootstrapConfig {
    /// Public DNS zone of the ingress names, for example `shop.example.com`. Let's Encrypt
    /// certificates are only requested for names below it.
    pub domain: String,
    /// Contact address registered with Let's Encrypt.
    pub acme_email: String,
    /// Name of the EKS cluster.
    pub cluster_name: String,
    /// The cluster's DNS domain. Default `cluster.local`.
    #[serde(default = "default_cluster_domain")]
    pub cluster_domain: String,
    /// AWS region of the cluster, the KMS key and the snapshot bucket, for example `us-east-1`.
    pub aws_region: String,
    /// The 12-digit AWS account id the IAM roles live in.
    pub aws_account_id: String,
    /// Route53 hosted zone id of `domain` (DNS-01 challenges), for example `Z0123456789ABC`.
    pub hosted_zone_id: String,
    /// KMS key alias Vault auto-unseals with, for example `alias/vault-unseal`.
    pub kms_key_alias: String,
    /// `vault` (HashiCorp Vault, default) or `openbao`.
    #[serde(default)]
    pub secrets_backend: SecretsBackend,
    /// How onboarded services get their Vault policy: `per-service` (default; meshport writes
    /// one per service) or `templated` (one ACL-templated workload policy written at set-up;
    /// meshport writes roles only).
    #[serde(default)]
    pub vault_policy_mode: crate::artifacts::vault_objects::PolicyMode,
    /// Namespaces services are onboarded into: meshed, mTLS enforced. Default `["prod-app"]`.
    #[serde(default = "default_application_namespaces")]
    pub application_namespaces: Vec<String>,
    /// The GitOps repository itself.
    pub git: GitSettings,
    /// Names of the IAM roles assumed through IRSA and GitHub's OIDC provider.
    #[serde(default)]
    pub iam: IamRoles,
    /// The daily raft snapshot.
    pub backup: BackupSettings,
    /// meshport's own deployment.
    pub meshport: MeshportSettings,
    /// Pinned versions of charts, images and CI tools.
    #[serde(default)]
    pub versions: Versions,
}

/// Vault or OpenBao: the same chart layout and API, different names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretsBackend {
    /// HashiCorp Vault, chart `hashicorp/vault`.
    #[default]
    Vault,
    /// OpenBao, chart `openbao/openbao`.
    Openbao,
}

impl SecretsBackend {
    /// Release, namespace, service and file-system prefix: `vault` or `openbao`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Vault => "vault",
            Self::Openbao => "openbao",
        }
    }

    /// The command-line tool in the server image.
    pub fn cli(self) -> &'static str {
        match self {
            Self::Vault => "vault",
            Self::Openbao => "bao",
        }
    }

    /// The agent injector's annotation prefix: `vault.hashicorp.com` for both, since the
    /// released OpenBao chart (openbao-helm 0.29.1 `values.yaml`, `injector.image`) runs
    /// HashiCorp's `vault-k8s` injector, which reads no other prefix.
    pub fn annotation_prefix(self) -> &'static str {
        "vault.hashicorp.com"
    }

    /// Prefix of the CLI's environment variables (`VAULT_ADDR`, `BAO_ADDR`).
    pub fn env_prefix(self) -> &'static str {
        match self {
            Self::Vault => "VAULT",
            Self::Openbao => "BAO",
        }
    }
}

/// Where the GitOps repository lives.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitSettings {
    /// Clone URL ArgoCD reads, `https://…` or `ssh://…`.
    pub repo_url: String,
    /// Branch ArgoCD syncs and the workflows deploy from. Default `main`.
    #[serde(default = "default_branch")]
    pub branch: String,
}

/// IAM role names; the ARNs are built from `aws_account_id` and the region's partition.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IamRoles {
    /// cert-manager's (IRSA): Route53 changes in the hosted zone. Default `cert-manager-route53`.
    pub cert_manager: String,
    /// Vault's (IRSA): encrypt and decrypt with the unseal key. Default `vault-kms-unseal`.
    pub vault: String,
    /// The snapshot job's (IRSA): put objects into the bucket. Default `vault-raft-snapshot`.
    pub snapshot: String,
    /// GitHub Actions' on pull requests: read the cluster for `helmfile diff`. Default
    /// `github-helmfile-diff`.
    pub github_diff: String,
    /// GitHub Actions' on the deploy branch: `helmfile apply`. Default `github-helmfile-apply`.
    pub github_apply: String,
}

impl Default for IamRoles {
    fn default() -> Self {
        Self {
            cert_manager: "cert-manager-route53".to_owned(),
            vault: "vault-kms-unseal".to_owned(),
            snapshot: "vault-raft-snapshot".to_owned(),
            github_diff: "github-helmfile-diff".to_owned(),
            github_apply: "github-helmfile-apply".to_owned(),
        }
    }
}

/// The daily raft snapshot to S3.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupSettings {
    /// S3 bucket receiving the snapshots.
    pub bucket: String,
    /// Key prefix inside the bucket. Default `raft/`.
    #[serde(default = "default_backup_prefix")]
    pub prefix: String,
    /// Cron schedule (UTC) of the snapshot job. Default `17 3 * * *`.
    #[serde(default = "default_backup_schedule")]
    pub schedule: String,
}

/// How meshport itself is deployed.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeshportSettings {
    /// meshport's container image, tagged or by digest, never `latest`.
    pub image: String,
    /// URL users reach meshport at, `https://…`.
    pub public_url: String,
}

/// Pinned versions. Chart versions are exact (no ranges), so a diff shows every upgrade.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Versions {
    /// Chart `linkerd-edge/linkerd-crds`.
    pub linkerd_crds: String,
    /// Chart `linkerd-edge/linkerd-control-plane`.
    pub linkerd_control_plane: String,
    /// Chart `jetstack/cert-manager`.
    pub cert_manager: String,
    /// Chart `jetstack/trust-manager`.
    pub trust_manager: String,
    /// Chart `hashicorp/vault`.
    pub vault_chart: String,
    /// Chart `openbao/openbao`.
    pub openbao_chart: String,
    /// Chart `argo/argo-cd`.
    pub argo_cd: String,
    /// Image with the Vault CLI, for the snapshot job.
    pub vault_image: String,
    /// Image with the OpenBao CLI, for the snapshot job.
    pub openbao_image: String,
    /// Image with the AWS CLI, for the snapshot upload.
    pub aws_cli_image: String,
    /// Helm, in the platform workflow.
    pub helm: String,
    /// Helmfile, in the platform workflow.
    pub helmfile: String,
    /// The helm-diff plugin, for `helmfile diff`.
    pub helm_diff: String,
    /// The ArgoCD CLI, in the application workflow.
    pub argocd_cli: String,
}

impl Default for Versions {
    fn default() -> Self {
        Self {
            // Linkerd's open-source releases are edge releases; these match the CRD schemas the
            // tests validate against (edge-26.8.3).
            linkerd_crds: "2026.8.3".to_owned(),
            linkerd_control_plane: "2026.8.3".to_owned(),
            cert_manager: "v1.19.1".to_owned(),
            trust_manager: "v0.24.0".to_owned(),
            vault_chart: "0.31.0".to_owned(),
            openbao_chart: "0.29.1".to_owned(),
            argo_cd: "9.5.14".to_owned(),
            vault_image: "hashicorp/vault:1.20.4".to_owned(),
            openbao_image: "quay.io/openbao/openbao:2.6.1".to_owned(),
            aws_cli_image: "amazon/aws-cli:2.31.8".to_owned(),
            helm: "v3.19.0".to_owned(),
            helmfile: "1.1.7".to_owned(),
            helm_diff: "v3.13.0".to_owned(),
            argocd_cli: "v3.2.0".to_owned(),
        }
    }
}

fn default_cluster_domain() -> String {
    "cluster.local".to_owned()
}

fn default_application_namespaces() -> Vec<String> {
    vec![app::onboarding::OnboardingRules::DEFAULT_NAMESPACE.to_owned()]
}

fn default_branch() -> String {
    "main".to_owned()
}

fn default_backup_prefix() -> String {
    "raft/".to_owned()
}

fn default_backup_schedule() -> String {
    "17 3 * * *".to_owned()
}

/// Namespaces the platform itself uses; services cannot be onboarded into them.
pub const PLATFORM_NAMESPACES: [&str; 9] = [
    "linkerd",
    "cert-manager",
    "vault",
    "openbao",
    "argocd",
    "meshport",
    "monitoring",
    "kube-system",
    "default",
];

impl BootstrapConfig {
    /// Reads and checks a `bootstrap.toml`.
    pub fn load(path: &Path) -> Result<Self, BootstrapError> {
        let config: Self = Figment::from(Toml::file_exact(path))
            .extract()
            .map_err(|e| BootstrapError::Parse(Box::new(e)))?;
        config.check()?;
        Ok(config)
    }

    /// The example platform of `docs/bootstrap.example.toml`, which `meshport dev` seeds its
    /// local repository with and the golden files show.
    pub fn example() -> Self {
        Self {
            domain: "shop.example.com".to_owned(),
            acme_email: "platform-team@example.com".to_owned(),
            cluster_name: "shop-prod".to_owned(),
            cluster_domain: default_cluster_domain(),
            aws_region: "us-east-1".to_owned(),
            aws_account_id: "123456789012".to_owned(),
            hosted_zone_id: "Z0123456789EXAMPLE".to_owned(),
            kms_key_alias: "alias/vault-unseal".to_owned(),
            secrets_backend: SecretsBackend::Vault,
            vault_policy_mode: crate::artifacts::vault_objects::PolicyMode::PerService,
            application_namespaces: default_application_namespaces(),
            git: GitSettings {
                repo_url: "https://github.com/example-org/platform-gitops.git".to_owned(),
                branch: default_branch(),
            },
            iam: IamRoles::default(),
            backup: BackupSettings {
                bucket: "example-org-vault-snapshots".to_owned(),
                prefix: default_backup_prefix(),
                schedule: default_backup_schedule(),
            },
            meshport: MeshportSettings {
                image: format!("ghcr.io/example-org/meshport:{}", env!("CARGO_PKG_VERSION")),
                public_url: "https://meshport.shop.example.com".to_owned(),
            },
            versions: Versions::default(),
        }
    }

    /// Checks every value against the shape its consumer accepts; the first that does not fit
    /// is reported with its key.
    pub fn check(&self) -> Result<(), BootstrapError> {
        let versions = &self.versions;
        let iam = &self.iam;
        let checks: Vec<(&'static str, bool, &'static str)> = vec![
            ("domain", is_dns_name(&self.domain) && self.domain.contains('.'), DNS_NAME),
            (
                "acme_email",
                is_email(&self.acme_email),
                "must be an e-mail address like `platform@example.com`",
            ),
            (
                "cluster_name",
                is_name(&self.cluster_name, 100, |b| {
                    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
                }) && self.cluster_name.as_bytes()[0].is_ascii_alphanumeric(),
                "must be an EKS cluster name: letters, digits, '-' and '_', starting with a letter or digit (at most 100)",
            ),
            ("cluster_domain", is_dns_name(&self.cluster_domain), DNS_NAME),
            (
                "aws_region",
                is_aws_region(&self.aws_region),
                "must be an AWS region such as `us-east-1` or `eu-central-1`",
            ),
            (
                "aws_account_id",
                self.aws_account_id.len() == 12
                    && self.aws_account_id.bytes().all(|b| b.is_ascii_digit()),
                "must be the 12-digit AWS account id",
            ),
            (
                "hosted_zone_id",
                is_name(&self.hosted_zone_id, 32, |b| b.is_ascii_uppercase() || b.is_ascii_digit())
                    && self.hosted_zone_id.starts_with('Z'),
                "must be a Route53 hosted zone id such as `Z0123456789ABC` (uppercase letters and digits, starting with Z)",
            ),
            (
                "kms_key_alias",
                self.kms_key_alias.strip_prefix("alias/").is_some_and(|name| {
                    !name.starts_with("aws/")
                        && is_name(name, 250, |b| b.is_ascii_alphanumeric() || b"/_-".contains(&b))
                }),
                "must be a customer-managed KMS alias such as `alias/vault-unseal`",
            ),
            (
                "application_namespaces",
                !self.application_namespaces.is_empty()
                    && self.application_namespaces.iter().all(|n| {
                        is_dns_label(n)
                            && n.len() <= 63
                            && !PLATFORM_NAMESPACES.contains(&n.as_str())
                    }),
                "must list at least one namespace, each a DNS label and none of the platform's own (linkerd, cert-manager, vault, openbao, argocd, meshport, monitoring, kube-system, default)",
            ),
            (
                "git.repo_url",
                is_url(&self.git.repo_url, &["https", "ssh"]),
                "must be an `https://` or `ssh://` clone URL",
            ),
            (
                "git.branch",
                is_branch(&self.git.branch),
                "must be a branch name of letters, digits, '.', '_', '-' and '/'",
            ),
            ("iam.cert_manager", is_role_name(&iam.cert_manager), ROLE_NAME),
            ("iam.vault", is_role_name(&iam.vault), ROLE_NAME),
            ("iam.snapshot", is_role_name(&iam.snapshot), ROLE_NAME),
            ("iam.github_diff", is_role_name(&iam.github_diff), ROLE_NAME),
            ("iam.github_apply", is_role_name(&iam.github_apply), ROLE_NAME),
            (
                "backup.bucket",
                (3..=63).contains(&self.backup.bucket.len())
                    && self.backup.bucket.split('.').all(is_dns_label),
                "must be an S3 bucket name: 3 to 63 lowercase letters, digits, '-' and '.'",
            ),
            (
                "backup.prefix",
                self.backup.prefix.is_empty()
                    || (is_name(&self.backup.prefix, 200, |b| {
                        b.is_ascii_alphanumeric() || b"/._-".contains(&b)
                    }) && !self.backup.prefix.starts_with('/')
                        && !self.backup.prefix.split('/').any(|part| part == "..")),
                "must be an S3 key prefix of letters, digits, '/', '.', '_' and '-', not starting with '/'",
            ),
            (
                "backup.schedule",
                is_cron(&self.backup.schedule),
                "must be a cron schedule of five fields such as `17 3 * * *`",
            ),
            ("meshport.image", is_pinned_image(&self.meshport.image), IMAGE),
            (
                "meshport.public_url",
                is_url(&self.meshport.public_url, &["https"]),
                "must be an `https://` URL",
            ),
            ("versions.linkerd_crds", is_exact_version(&versions.linkerd_crds), VERSION),
            (
                "versions.linkerd_control_plane",
                is_exact_version(&versions.linkerd_control_plane),
                VERSION,
            ),
            ("versions.cert_manager", is_exact_version(&versions.cert_manager), VERSION),
            ("versions.trust_manager", is_exact_version(&versions.trust_manager), VERSION),
            ("versions.vault_chart", is_exact_version(&versions.vault_chart), VERSION),
            ("versions.openbao_chart", is_exact_version(&versions.openbao_chart), VERSION),
            ("versions.argo_cd", is_exact_version(&versions.argo_cd), VERSION),
            ("versions.vault_image", is_pinned_image(&versions.vault_image), IMAGE),
            ("versions.openbao_image", is_pinned_image(&versions.openbao_image), IMAGE),
            ("versions.aws_cli_image", is_pinned_image(&versions.aws_cli_image), IMAGE),
            ("versions.helm", is_exact_version(&versions.helm), VERSION),
            ("versions.helmfile", is_exact_version(&versions.helmfile), VERSION),
            ("versions.helm_diff", is_exact_version(&versions.helm_diff), VERSION),
            ("versions.argocd_cli", is_exact_version(&versions.argocd_cli), VERSION),
        ];
        match checks.into_iter().find(|(_, ok, _)| !ok) {
            Some((key, _, rule)) => Err(BootstrapError::Value { key, rule }),
            None => Ok(()),
        }
    }

    /// The AWS partition of the region, for ARNs.
    fn partition(&self) -> &'static str {
        if self.aws_region.starts_with("cn-") {
            "aws-cn"
        } else if self.aws_region.starts_with("us-gov-") {
            "aws-us-gov"
        } else {
            "aws"
        }
    }

    /// The ARN of the IAM role named `name` in the configured account.
    pub fn role_arn(&self, name: &str) -> String {
        format!("arn:{}:iam::{}:role/{name}", self.partition(), self.aws_account_id)
    }

    /// Vault's (or OpenBao's) in-cluster service address, as meshport and the snapshot job
    /// reach it.
    pub fn secrets_backend_addr(&self) -> String {
        let name = self.secrets_backend.name();
        format!("https://{name}.{name}.svc:8200")
    }
}

const DNS_NAME: &str = "must be a lowercase DNS name such as `example.com`";
const ROLE_NAME: &str = "must be an IAM role name: 1 to 64 letters, digits and `+=,.@_-`";
const VERSION: &str = "must be an exact version such as `1.2.3` or `v1.2.3`, not a range";
const IMAGE: &str = "must be an image reference with a tag or digest other than `latest`";

/// `value` is 1 to `max` bytes, each allowed by `allowed`.
fn is_name(value: &str, max: usize, allowed: impl Fn(u8) -> bool) -> bool {
    !value.is_empty() && value.len() <= max && value.bytes().all(allowed)
}

fn is_dns_name(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 253
        && value.split('.').all(|l| is_dns_label(l) && l.len() <= 63)
}

fn is_email(value: &str) -> bool {
    value.split_once('@').is_some_and(|(local, domain)| {
        is_name(local, 64, |b| b.is_ascii_alphanumeric() || b"._%+-".contains(&b))
            && is_dns_name(domain)
            && domain.contains('.')
    })
}

/// `<area>-<direction>-<number>`, with the partition prefixes `us-gov-` and `cn-` allowed.
fn is_aws_region(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let (area, rest) = match parts.as_slice() {
        ["us", "gov", rest @ ..] => ("us", rest),
        [area, rest @ ..] => (*area, rest),
        [] => return false,
    };
    matches!(rest, [direction, number]
        if area.len() == 2
            && area.bytes().all(|b| b.is_ascii_lowercase())
            && !direction.is_empty()
            && direction.bytes().all(|b| b.is_ascii_lowercase())
            && !number.is_empty()
            && number.len() <= 2
            && number.bytes().all(|b| b.is_ascii_digit()))
}

fn is_url(value: &str, schemes: &[&str]) -> bool {
    !value.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        && url::Url::parse(value).is_ok_and(|url| {
            schemes.contains(&url.scheme()) && url.host_str().is_some_and(|h| !h.is_empty())
        })
}

fn is_branch(value: &str) -> bool {
    is_name(value, 200, |b| b.is_ascii_alphanumeric() || b"._-/".contains(&b))
        && !value.starts_with(['-', '/', '.'])
        && !value.ends_with(['/', '.'])
        && !value.contains("..")
        && !value.contains("//")
        && !value.ends_with(".lock")
}

fn is_role_name(value: &str) -> bool {
    is_name(value, 64, |b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}

/// Five fields of digits, `*`, `/`, `,` and `-`.
fn is_cron(value: &str) -> bool {
    let fields: Vec<&str> = value.split(' ').collect();
    fields.len() == 5
        && fields.iter().all(|f| is_name(f, 64, |b| b.is_ascii_digit() || b"*/,-".contains(&b)))
}

/// `[v]MAJOR.MINOR.PATCH[-PRERELEASE]`.
fn is_exact_version(value: &str) -> bool {
    let value = value.strip_prefix('v').unwrap_or(value);
    let (core, pre) = match value.split_once('-') {
        Some((core, pre)) => (core, Some(pre)),
        None => (value, None),
    };
    let numbers: Vec<&str> = core.split('.').collect();
    numbers.len() == 3
        && numbers.iter().all(|n| is_name(n, 10, |b| b.is_ascii_digit()))
        && pre
            .is_none_or(|pre| is_name(pre, 64, |b| b.is_ascii_alphanumeric() || b".-".contains(&b)))
}

fn is_pinned_image(value: &str) -> bool {
    ImageReference::parse(value).is_ok_and(|reference| !reference.is_latest())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(change: impl FnOnce(&mut BootstrapConfig)) -> String {
        let mut config = BootstrapConfig::example();
        change(&mut config);
        config.check().expect_err("the change must be refused").to_string()
    }

    #[test]
    fn the_example_is_valid_and_matches_the_documented_file() {
        BootstrapConfig::example().check().unwrap();
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/bootstrap.example.toml");
        assert_eq!(BootstrapConfig::load(&file).unwrap(), BootstrapConfig::example());
    }

    #[test]
    fn hostile_values_are_refused_naming_their_key() {
        type Change = Box<dyn FnOnce(&mut BootstrapConfig)>;
        let cases: Vec<(&str, Change)> = vec![
            ("`domain`", Box::new(|c| c.domain = String::new())),
            ("`domain`", Box::new(|c| c.domain = "example.com\nkind: Secret".into())),
            ("`domain`", Box::new(|c| c.domain = "localhost".into())),
            ("`aws_region`", Box::new(|c| c.aws_region = "us-east".into())),
            ("`aws_region`", Box::new(|c| c.aws_region = "US-EAST-1".into())),
            ("`aws_region`", Box::new(|c| c.aws_region = "us-east-1; rm -rf /".into())),
            (
                "`application_namespaces`",
                Box::new(|c| c.application_namespaces = vec!["../etc".into()]),
            ),
            (
                "`application_namespaces`",
                Box::new(|c| c.application_namespaces = vec!["linkerd".into()]),
            ),
            ("`application_namespaces`", Box::new(|c| c.application_namespaces = vec![])),
            ("`cluster_name`", Box::new(|c| c.cluster_name = "prod: {a: b}".into())),
            ("`hosted_zone_id`", Box::new(|c| c.hosted_zone_id = "Z123\"".into())),
            ("`kms_key_alias`", Box::new(|c| c.kms_key_alias = "vault-unseal".into())),
            ("`kms_key_alias`", Box::new(|c| c.kms_key_alias = "alias/aws/ebs".into())),
            ("`acme_email`", Box::new(|c| c.acme_email = "ops@example.com\" #".into())),
            ("`git.repo_url`", Box::new(|c| c.git.repo_url = "file:///etc/passwd".into())),
            ("`git.branch`", Box::new(|c| c.git.branch = "main\n  - x".into())),
            ("`git.branch`", Box::new(|c| c.git.branch = "../main".into())),
            ("`backup.bucket`", Box::new(|c| c.backup.bucket = "My_Bucket".into())),
            ("`backup.prefix`", Box::new(|c| c.backup.prefix = "raft/../../".into())),
            ("`backup.schedule`", Box::new(|c| c.backup.schedule = "@daily".into())),
            (
                "`meshport.image`",
                Box::new(|c| c.meshport.image = "ghcr.io/example/meshport".into()),
            ),
            (
                "`meshport.public_url`",
                Box::new(|c| c.meshport.public_url = "http://meshport".into()),
            ),
            ("`versions.cert_manager`", Box::new(|c| c.versions.cert_manager = "~1.19".into())),
            ("`versions.vault_chart`", Box::new(|c| c.versions.vault_chart = "0.31.x".into())),
            ("`versions.linkerd_crds`", Box::new(|c| c.versions.linkerd_crds = "".into())),
            ("`iam.vault`", Box::new(|c| c.iam.vault = "role/with/slashes".into())),
        ];
        for (key, change) in cases {
            let error = rejected(change);
            assert!(error.contains(key), "expected {key} in: {error}");
            assert!(error.contains("must"), "the rule is stated: {error}");
        }
    }

    #[test]
    fn unknown_keys_and_missing_keys_are_reported_by_name() {
        let folder = tempfile::tempdir().unwrap();
        let file = folder.path().join("bootstrap.toml");
        let example = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/bootstrap.example.toml"),
        )
        .unwrap();
        std::fs::write(&file, example.replace("domain = ", "domian = ")).unwrap();
        let error = BootstrapConfig::load(&file).unwrap_err().to_string();
        assert!(error.contains("domian"), "{error}");
        std::fs::write(&file, example.replace("acme_email = ", "# acme_email = ")).unwrap();
        let error = BootstrapConfig::load(&file).unwrap_err().to_string();
        assert!(error.contains("acme_email"), "{error}");
        std::fs::write(
            &file,
            example.replace("secrets_backend = \"vault\"", "secrets_backend = \"consul\""),
        )
        .unwrap();
        let error = BootstrapConfig::load(&file).unwrap_err().to_string();
        assert!(error.contains("secrets_backend") && error.contains("consul"), "{error}");
    }

    #[test]
    fn regions_and_arns() {
        for region in ["us-east-1", "eu-central-1", "ap-southeast-2", "us-gov-west-1", "cn-north-1"]
        {
            assert!(is_aws_region(region), "{region}");
        }
        let mut config = BootstrapConfig::example();
        assert_eq!(config.role_arn("x"), "arn:aws:iam::123456789012:role/x");
        config.aws_region = "cn-north-1".into();
        assert_eq!(config.role_arn("x"), "arn:aws-cn:iam::123456789012:role/x");
    }
}
