//! `manifests/platform/`: the objects under the services, each folder applied by Helmfile as
//! one release in dependency order: the namespaces with their Linkerd settings; the PKI
//! (Let's Encrypt for public names, Linkerd's trust anchor and identity issuer, the internal CA
//! of Vault's TLS certificate, the trust bundles); the daily raft snapshot.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{
    Container, EmptyDirVolumeSource, EnvVar, KeyToPath, Namespace, PodSecurityContext, PodSpec,
    PodTemplateSpec, ProjectedVolumeSource, SeccompProfile, SecretVolumeSource, SecurityContext,
    ServiceAccount, ServiceAccountTokenProjection, Volume, VolumeMount, VolumeProjection,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::cert_manager::{
    Acme, AcmeSolver, Bundle, BundleSource, BundleSpec, BundleTarget, Certificate, CertificateSpec,
    ClusterIssuer, ConfigMapKey, Dns01, IssuerRef, IssuerSpec, PrivateKey, Route53, SecretKey,
    SecretRef, SolverSelector, match_labels,
};
use super::config::BootstrapConfig;
use super::{PLATFORM_MANIFESTS, vault_server};
use crate::artifacts::custom_resource::CustomResource;
use crate::artifacts::{ArtifactFile, RenderError, yaml_file};

/// cert-manager's namespace, also trust-manager's trust namespace: the CA secrets live here.
pub const CERT_MANAGER_NAMESPACE: &str = "cert-manager";
/// Linkerd's control-plane namespace.
pub const LINKERD_NAMESPACE: &str = "linkerd";
/// meshport's namespace.
pub const MESHPORT_NAMESPACE: &str = "meshport";
/// Label of the namespaces that receive Vault's CA bundle.
pub const VAULT_CLIENT_LABEL: &str = "meshport.io/vault-client";
/// The ConfigMap (and key) trust-manager writes Vault's CA into.
pub const VAULT_CA_BUNDLE: (&str, &str) = ("vault-ca", "ca.crt");

/// Names of the PKI objects, shared by the manifests and the Helm values that read them.
const SELF_SIGNED_ISSUER: &str = "selfsigned";
const LETSENCRYPT_ISSUER: &str = "letsencrypt-prod";
const TRUST_ANCHOR: &str = "linkerd-trust-anchor";
const IDENTITY_ISSUER: &str = "linkerd-identity-issuer";
const TRUST_ROOTS_BUNDLE: &str = "linkerd-identity-trust-roots";
const VAULT_CA: &str = "vault-ca";

/// The folders of `manifests/platform/`, in the order Helmfile applies them.
pub const FOLDERS: [&str; 3] = ["namespaces", "pki", "backup"];

/// Every file of `manifests/platform/`.
pub fn files(config: &BootstrapConfig) -> Result<Vec<ArtifactFile>, RenderError> {
    let mut files = Vec::new();
    for namespace in namespaces(config) {
        let name = namespace.metadata.name.clone().unwrap_or_default();
        files.push(yaml_file(format!("{PLATFORM_MANIFESTS}/namespaces/{name}.yaml"), &namespace)?);
    }
    let pki = |name: &str| format!("{PLATFORM_MANIFESTS}/pki/{name}.yaml");
    files.push(yaml_file(pki("clusterissuer-selfsigned"), &self_signed_issuer())?);
    files.push(yaml_file(pki("clusterissuer-letsencrypt"), &letsencrypt_issuer(config))?);
    files.push(yaml_file(pki("certificate-linkerd-trust-anchor"), &linkerd_trust_anchor())?);
    files.push(yaml_file(pki("clusterissuer-linkerd-trust-anchor"), &ca_issuer(TRUST_ANCHOR))?);
    files.push(yaml_file(
        pki("certificate-linkerd-identity-issuer"),
        &linkerd_identity_issuer(config),
    )?);
    files.push(yaml_file(
        pki("bundle-linkerd-identity-trust-roots"),
        &bundle(
            TRUST_ROOTS_BUNDLE,
            TRUST_ANCHOR,
            "ca-bundle.crt",
            &[("linkerd.io/is-control-plane", "true")],
            false,
        )
        .with_previous(PREVIOUS_ANCHOR_LABEL),
    )?);
    files.push(yaml_file(pki("certificate-vault-ca"), &vault_ca())?);
    files.push(yaml_file(pki("clusterissuer-vault-ca"), &ca_issuer(VAULT_CA))?);
    files.push(yaml_file(pki("certificate-vault-tls"), &vault_tls(config))?);
    files.push(yaml_file(
        pki("bundle-vault-ca"),
        &bundle(
            VAULT_CA_BUNDLE.0,
            VAULT_CA,
            VAULT_CA_BUNDLE.1,
            &[(VAULT_CLIENT_LABEL, "true")],
            true,
        ),
    )?);
    let backup = |name: &str| format!("{PLATFORM_MANIFESTS}/backup/{name}.yaml");
    files.push(yaml_file(backup("serviceaccount"), &snapshot_service_account(config))?);
    files.push(yaml_file(backup("cronjob"), &snapshot_cron_job(config))?);
    Ok(files)
}

/// Name, namespace and the `managed-by` label of a platform object.
fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: namespace.map(str::to_owned),
        labels: Some(BTreeMap::from([(
            "app.kubernetes.io/part-of".to_owned(),
            "meshport-platform".to_owned(),
        )])),
        ..ObjectMeta::default()
    }
}

fn pairs(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
    (!pairs.is_empty())
        .then(|| pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect())
}

/// The namespaces and how Linkerd treats them. Helm keeps them when a release is removed, so
/// uninstalling the namespaces release cannot delete everything in them.
const NO_INJECTOR_WEBHOOK: (&str, &str) = ("config.linkerd.io/admission-webhooks", "disabled");

pub fn namespaces(config: &BootstrapConfig) -> Vec<Namespace> {
    let backend = config.secrets_backend.name();
    let vault_client = (VAULT_CLIENT_LABEL, "true");
    // (name, labels, annotations)
    type Labels<'a> = Vec<(&'a str, &'a str)>;
    let mut specs: Vec<(&str, Labels, Labels)> = vec![
        (
            LINKERD_NAMESPACE,
            // The labels `linkerd install` sets: the injector skips its own control plane, and
            // the trust bundle finds it.
            vec![
                ("linkerd.io/is-control-plane", "true"),
                ("config.linkerd.io/admission-webhooks", "disabled"),
                ("linkerd.io/control-plane-ns", LINKERD_NAMESPACE),
            ],
            vec![("linkerd.io/inject", "disabled")],
        ),
        // The API server calls cert-manager's webhook without mTLS; it stays outside the mesh.
        (CERT_MANAGER_NAMESPACE, vec![], vec![("linkerd.io/inject", "disabled")]),
        // Vault terminates its own TLS (and raft peers speak TLS to each other); clients skip
        // the proxy for port 8200 instead.
        // Outside the mesh, and outside the proxy injector's webhook too: their pods must start
        // while Linkerd is down (the webhook fails closed).
        (backend, vec![NO_INJECTOR_WEBHOOK], vec![("linkerd.io/inject", "disabled")]),
        ("argocd", vec![NO_INJECTOR_WEBHOOK], vec![("linkerd.io/inject", "disabled")]),
        ("monitoring", vec![], vec![("linkerd.io/inject", "enabled")]),
        (
            MESHPORT_NAMESPACE,
            vec![vault_client],
            vec![
                ("linkerd.io/inject", "enabled"),
                ("config.linkerd.io/skip-outbound-ports", "8200"),
            ],
        ),
    ];
    for namespace in &config.application_namespaces {
        specs.push((
            namespace,
            vec![vault_client],
            vec![
                ("linkerd.io/inject", "enabled"),
                // Plaintext and unauthenticated callers are refused, not only encrypted when
                // both sides are meshed.
                ("config.linkerd.io/default-inbound-policy", "all-authenticated"),
            ],
        ));
    }
    specs
        .into_iter()
        .map(|(name, labels, annotations)| {
            let mut metadata = meta(name, None);
            if let Some(extra) = pairs(&labels) {
                metadata.labels.get_or_insert_with(BTreeMap::new).extend(extra);
            }
            let mut annotations = pairs(&annotations).unwrap_or_default();
            annotations.insert("helm.sh/resource-policy".to_owned(), "keep".to_owned());
            metadata.annotations = Some(annotations);
            Namespace { metadata, ..Namespace::default() }
        })
        .collect()
}

fn self_signed_issuer() -> ClusterIssuer {
    CustomResource::new(meta(SELF_SIGNED_ISSUER, None), IssuerSpec::self_signed())
}

fn ca_issuer(secret: &str) -> ClusterIssuer {
    CustomResource::new(meta(secret, None), IssuerSpec::ca(secret))
}

/// Let's Encrypt for public ingress names under `domain` only: DNS-01 through Route53 with the
/// IRSA role on cert-manager's ServiceAccount, no keys in the cluster.
fn letsencrypt_issuer(config: &BootstrapConfig) -> ClusterIssuer {
    CustomResource::new(
        meta(LETSENCRYPT_ISSUER, None),
        IssuerSpec::acme(Acme {
            server: "https://acme-v02.api.letsencrypt.org/directory".to_owned(),
            email: config.acme_email.clone(),
            private_key_secret_ref: SecretRef { name: format!("{LETSENCRYPT_ISSUER}-account") },
            solvers: vec![AcmeSolver {
                selector: SolverSelector { dns_zones: vec![config.domain.clone()] },
                dns01: Dns01 {
                    route53: Route53 {
                        region: config.aws_region.clone(),
                        hosted_zone_id: config.hosted_zone_id.clone(),
                    },
                },
            }],
        }),
    )
}

/// A CA certificate issued by the self-signed issuer, kept in cert-manager's namespace where
/// the CA ClusterIssuer and trust-manager read it.
fn root_certificate(
    name: &str,
    common_name: &str,
    duration: &str,
    renew_before: &str,
) -> Certificate {
    CustomResource::new(
        meta(name, Some(CERT_MANAGER_NAMESPACE)),
        CertificateSpec {
            secret_name: name.to_owned(),
            common_name: Some(common_name.to_owned()),
            duration: Some(duration.to_owned()),
            renew_before: Some(renew_before.to_owned()),
            dns_names: Vec::new(),
            ip_addresses: Vec::new(),
            is_ca: true,
            private_key: Some(PrivateKey::ecdsa_p256()),
            usages: Vec::new(),
            issuer_ref: IssuerRef::cluster_issuer(SELF_SIGNED_ISSUER),
        },
    )
}

/// Linkerd's trust anchor, as Linkerd's cert-manager guide sets it up: self-signed, ECDSA,
/// CN `root.linkerd.cluster.local`.
fn linkerd_trust_anchor() -> Certificate {
    root_certificate(TRUST_ANCHOR, "root.linkerd.cluster.local", "87600h", "8760h")
}

/// The identity issuer Linkerd's identity service signs proxy certificates with: ECDSA P-256
/// (Linkerd refuses RSA and P-521), short-lived, `kubernetes.io/tls` in `linkerd`.
fn linkerd_identity_issuer(config: &BootstrapConfig) -> Certificate {
    let name = format!("identity.linkerd.{}", config.cluster_domain);
    CustomResource::new(
        meta(IDENTITY_ISSUER, Some(LINKERD_NAMESPACE)),
        CertificateSpec {
            secret_name: IDENTITY_ISSUER.to_owned(),
            common_name: Some(name.clone()),
            dns_names: vec![name],
            duration: Some("48h".to_owned()),
            renew_before: Some("25h".to_owned()),
            is_ca: true,
            private_key: Some(PrivateKey::ecdsa_p256()),
            usages: ["cert sign", "crl sign", "server auth", "client auth"]
                .map(String::from)
                .to_vec(),
            ip_addresses: Vec::new(),
            issuer_ref: IssuerRef::cluster_issuer(TRUST_ANCHOR),
        },
    )
}

/// The root of Vault's TLS: a CA the platform owns (ACME never issues CAs or cluster names).
fn vault_ca() -> Certificate {
    root_certificate(VAULT_CA, "vault-ca.meshport.internal", "43800h", "8760h")
}

/// Vault's serving certificate: every name clients and raft peers use, and 127.0.0.1 for the
/// CLI inside the pods.
fn vault_tls(config: &BootstrapConfig) -> Certificate {
    let backend = config.secrets_backend.name();
    let cluster = &config.cluster_domain;
    let internal = format!("{backend}-internal");
    let mut dns_names = vec![
        backend.to_owned(),
        format!("{backend}.{backend}"),
        format!("{backend}.{backend}.svc"),
        format!("{backend}.{backend}.svc.{cluster}"),
        format!("{backend}-active.{backend}.svc"),
        format!("*.{internal}"),
        format!("*.{internal}.{backend}.svc"),
        format!("*.{internal}.{backend}.svc.{cluster}"),
    ];
    dns_names.extend((0..vault_server::REPLICAS).map(|i| vault_server::peer_host(config, i)));
    CustomResource::new(
        meta(vault_server::TLS_SECRET, Some(backend)),
        CertificateSpec {
            secret_name: vault_server::TLS_SECRET.to_owned(),
            common_name: Some(format!("{backend}.{backend}.svc")),
            dns_names,
            ip_addresses: vec!["127.0.0.1".to_owned()],
            duration: Some("2160h".to_owned()),
            renew_before: Some("720h".to_owned()),
            is_ca: false,
            private_key: Some(PrivateKey::ecdsa_p256()),
            usages: ["server auth", "client auth", "digital signature", "key encipherment"]
                .map(String::from)
                .to_vec(),
            issuer_ref: IssuerRef::cluster_issuer(VAULT_CA),
        },
    )
}

/// Labels the copy of the trust anchor kept while a new one takes over (README, operating
/// notes): the Linkerd bundle trusts both until the copy is deleted.
pub const PREVIOUS_ANCHOR_LABEL: &str = "meshport.io/linkerd-previous-anchor";

/// A trust-manager bundle copying `ca.crt` of `secret` into ConfigMap `name` (key `key`), and
/// also a Secret `name` when `as_secret`, in the namespaces labelled `labels`.
fn bundle(name: &str, secret: &str, key: &str, labels: &[(&str, &str)], as_secret: bool) -> Bundle {
    CustomResource::new(
        meta(name, None),
        BundleSpec {
            sources: vec![BundleSource {
                secret: SecretKey {
                    name: Some(secret.to_owned()),
                    selector: None,
                    key: "ca.crt".to_owned(),
                },
            }],
            target: BundleTarget {
                config_map: ConfigMapKey { key: key.to_owned() },
                secret: as_secret.then(|| ConfigMapKey { key: key.to_owned() }),
                namespace_selector: match_labels(labels),
            },
        },
    )
}

/// The snapshot job's identity: its IRSA role may put objects into the bucket, its Vault role
/// may read `sys/storage/raft/snapshot` and nothing else.
fn snapshot_service_account(config: &BootstrapConfig) -> ServiceAccount {
    let mut metadata = meta(vault_server::SNAPSHOT_ACCOUNT, Some(config.secrets_backend.name()));
    metadata.annotations = Some(BTreeMap::from([(
        "eks.amazonaws.com/role-arn".to_owned(),
        config.role_arn(&config.iam.snapshot),
    )]));
    ServiceAccount { metadata, ..ServiceAccount::default() }
}

/// Logs in with a ServiceAccount token minted for Vault's audience and saves a snapshot. The
/// values come from the environment, so nothing from the configuration is spliced into the
/// script.
const SNAPSHOT_SCRIPT: &str = r#"token="$("$CLI" write -field=token "auth/$AUTH_PATH/login" role="$ROLE" jwt=@/var/run/secrets/vault/token)"
VAULT_TOKEN="$token" BAO_TOKEN="$token" "$CLI" operator raft snapshot save /snapshot/raft.snap
"#;

/// Uploads the snapshot under a UTC timestamp, encrypted with the bucket's KMS key.
const UPLOAD_SCRIPT: &str = r#"aws s3 cp /snapshot/raft.snap "s3://$BUCKET/${PREFIX}$(date -u +%Y-%m-%dT%H%M%SZ).snap" --sse aws:kms
"#;

fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar { name: name.to_owned(), value: Some(value.into()), value_from: None }
}

/// The daily raft snapshot: an init container saves it with the Vault (or OpenBao) CLI, then
/// the AWS CLI uploads it to S3. Not meshed: a Job's proxy would keep the pod running.
fn snapshot_cron_job(config: &BootstrapConfig) -> CronJob {
    let backend = config.secrets_backend;
    let prefix = backend.env_prefix();
    let image = match backend {
        super::config::SecretsBackend::Vault => &config.versions.vault_image,
        super::config::SecretsBackend::Openbao => &config.versions.openbao_image,
    };
    let mount = |name: &str, path: &str| VolumeMount {
        name: name.to_owned(),
        mount_path: path.to_owned(),
        read_only: Some(path != "/snapshot"),
        ..VolumeMount::default()
    };
    let hardened = Some(SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        capabilities: Some(k8s_openapi::api::core::v1::Capabilities {
            drop: Some(vec!["ALL".to_owned()]),
            add: None,
        }),
        ..SecurityContext::default()
    });
    let snapshot = Container {
        name: "snapshot".to_owned(),
        image: Some(image.clone()),
        command: Some(vec!["/bin/sh".to_owned(), "-ec".to_owned(), SNAPSHOT_SCRIPT.to_owned()]),
        env: Some(vec![
            env("CLI", backend.cli()),
            env(
                &format!("{prefix}_ADDR"),
                format!("https://{0}-active.{0}.svc:8200", backend.name()),
            ),
            env(&format!("{prefix}_CACERT"), "/tls/ca.crt"),
            env("AUTH_PATH", "kubernetes"),
            env("ROLE", vault_server::SNAPSHOT_ACCOUNT),
            env("HOME", "/snapshot"),
        ]),
        volume_mounts: Some(vec![
            mount("snapshot", "/snapshot"),
            mount("tls", "/tls"),
            mount("vault-token", "/var/run/secrets/vault"),
        ]),
        security_context: hardened.clone(),
        ..Container::default()
    };
    let upload = Container {
        name: "upload".to_owned(),
        image: Some(config.versions.aws_cli_image.clone()),
        command: Some(vec!["/bin/sh".to_owned(), "-ec".to_owned(), UPLOAD_SCRIPT.to_owned()]),
        env: Some(vec![
            env("BUCKET", config.backup.bucket.clone()),
            env("PREFIX", config.backup.prefix.clone()),
            env("AWS_REGION", config.aws_region.clone()),
            env("HOME", "/snapshot"),
        ]),
        volume_mounts: Some(vec![mount("snapshot", "/snapshot")]),
        security_context: hardened,
        ..Container::default()
    };
    let pod = PodSpec {
        service_account_name: Some(vault_server::SNAPSHOT_ACCOUNT.to_owned()),
        // Only the Vault-audience token above (and the IRSA token EKS adds) is mounted.
        automount_service_account_token: Some(false),
        restart_policy: Some("OnFailure".to_owned()),
        init_containers: Some(vec![snapshot]),
        containers: vec![upload],
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(65534),
            run_as_group: Some(65534),
            fs_group: Some(65534),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".to_owned(),
                localhost_profile: None,
            }),
            ..PodSecurityContext::default()
        }),
        volumes: Some(vec![
            Volume {
                name: "snapshot".to_owned(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Volume::default()
            },
            Volume {
                name: "vault-token".to_owned(),
                projected: Some(ProjectedVolumeSource {
                    sources: Some(vec![VolumeProjection {
                        service_account_token: Some(ServiceAccountTokenProjection {
                            audience: Some(vault_server::SNAPSHOT_AUDIENCE.to_owned()),
                            expiration_seconds: Some(600),
                            path: "token".to_owned(),
                        }),
                        ..VolumeProjection::default()
                    }]),
                    default_mode: None,
                }),
                ..Volume::default()
            },
            Volume {
                name: "tls".to_owned(),
                secret: Some(SecretVolumeSource {
                    secret_name: Some(vault_server::TLS_SECRET.to_owned()),
                    items: Some(vec![KeyToPath {
                        key: "ca.crt".to_owned(),
                        path: "ca.crt".to_owned(),
                        mode: None,
                    }]),
                    ..SecretVolumeSource::default()
                }),
                ..Volume::default()
            },
        ]),
        ..PodSpec::default()
    };
    CronJob {
        metadata: meta("raft-snapshot", Some(backend.name())),
        spec: Some(CronJobSpec {
            schedule: config.backup.schedule.clone(),
            time_zone: Some("Etc/UTC".to_owned()),
            concurrency_policy: Some("Forbid".to_owned()),
            successful_jobs_history_limit: Some(3),
            failed_jobs_history_limit: Some(3),
            job_template: JobTemplateSpec {
                metadata: None,
                spec: Some(JobSpec {
                    backoff_limit: Some(2),
                    active_deadline_seconds: Some(1800),
                    template: PodTemplateSpec {
                        metadata: Some(ObjectMeta {
                            annotations: Some(BTreeMap::from([(
                                "linkerd.io/inject".to_owned(),
                                "disabled".to_owned(),
                            )])),
                            ..ObjectMeta::default()
                        }),
                        spec: Some(pod),
                    },
                    ..JobSpec::default()
                }),
            },
            ..CronJobSpec::default()
        }),
        ..CronJob::default()
    }
}

impl Bundle {
    /// Adds the Secrets labelled `label` as a second source: the previous trust anchor during a
    /// rotation, so proxies keep trusting certificates of the old chain until they roll.
    fn with_previous(mut self, label: &str) -> Self {
        self.spec.sources.push(BundleSource {
            secret: SecretKey {
                name: None,
                selector: Some(match_labels(&[(label, "true")])),
                key: "ca.crt".to_owned(),
            },
        });
        self
    }
}
