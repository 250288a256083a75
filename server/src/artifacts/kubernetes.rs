//! The Kubernetes manifests of one service: ServiceAccount, Service, Deployment (meshed by
//! Linkerd, with the Vault Agent injector's annotations) and, per port, the Linkerd policy
//! objects that admit only that port's callers.

use std::collections::BTreeMap;

use app::onboarding::{CERTIFICATE_FILE_ENV, Delivery, Protocol, ValidRequest, secret_file_env};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EmptyDirVolumeSource, EnvVar, HTTPGetAction, PodSecurityContext,
    PodSpec, PodTemplateSpec, Probe, ProjectedVolumeSource, ResourceRequirements, SeccompProfile,
    SecurityContext, Service, ServiceAccount, ServiceAccountTokenProjection, ServicePort,
    ServiceSpec, Volume, VolumeMount, VolumeProjection,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use uuid::Uuid;

use super::linkerd::{
    AuthorizationPolicy, AuthorizationPolicySpec, MeshTlsAuthentication, MeshTlsAuthenticationSpec,
    ObjectReference, Server, ServerSpec,
};
use super::vault_objects::{KvSecret, PkiRole};
use super::{ArtifactSettings, KubeObject, Manifest, Names};

/// Where the Vault Agent writes secrets in the pod (the injector's default).
pub const SECRETS_DIR: &str = "/vault/secrets";
/// The file holding the PKI certificate, key and CA chain.
pub const CERTIFICATE_FILE: &str = "tls.pem";

/// Every manifest of the service, unsorted.
pub(super) fn manifests(
    request: &ValidRequest,
    settings: &ArtifactSettings,
    names: &Names,
    secrets: &[KvSecret],
    pki_role: Option<&PkiRole>,
    request_id: Option<Uuid>,
) -> Vec<Manifest> {
    let service = &request.service;
    let meta = |name: &str| ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(request.namespace.clone()),
        labels: Some(labels(request)),
        annotations: request_id
            .map(|id| BTreeMap::from([(super::REQUEST_ANNOTATION.to_owned(), id.to_string())])),
        ..ObjectMeta::default()
    };
    let file = |name: &str| format!("manifests/{}/{service}/{name}.yaml", request.namespace);

    let mut manifests = vec![
        Manifest {
            path: file("serviceaccount"),
            object: KubeObject::ServiceAccount(Box::new(ServiceAccount {
                metadata: meta(service),
                ..ServiceAccount::default()
            })),
        },
        Manifest {
            path: file("deployment"),
            object: KubeObject::Deployment(Box::new(deployment(
                request,
                settings,
                names,
                secrets,
                pki_role,
                meta(service),
            ))),
        },
    ];
    if request.ports.is_empty() {
        return manifests;
    }
    manifests.push(Manifest {
        path: file("service"),
        object: KubeObject::Service(Box::new(Service {
            metadata: meta(service),
            spec: Some(ServiceSpec {
                selector: Some(selector(request)),
                ports: Some(
                    request
                        .ports
                        .iter()
                        .map(|port| ServicePort {
                            name: Some(port.name.clone()),
                            port: port.number as i32,
                            target_port: Some(IntOrString::String(port.name.clone())),
                            protocol: Some("TCP".to_owned()),
                            app_protocol: Some(app_protocol(port.protocol).to_owned()),
                            ..ServicePort::default()
                        })
                        .collect(),
                ),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        })),
    });

    for port in &request.ports {
        // By number: numbers hold no `-`, so `<service>-<number>` cannot collide with another
        // service's (`cart` + `grpc-web` and `cart-grpc` + `web` would). Server, callers and
        // policy share the name: each port has its own callers, so a caller allowed on one
        // port is not thereby allowed on another.
        let name = format!("{service}-{}", port.number);
        manifests.push(Manifest {
            path: file(&format!("server-{}", port.name)),
            object: KubeObject::Server(Box::new(Server::new(
                meta(&name),
                ServerSpec {
                    pod_selector: LabelSelector {
                        match_labels: Some(selector(request)),
                        match_expressions: None,
                    },
                    port: port.name.clone(),
                    proxy_protocol: proxy_protocol(port.protocol).to_owned(),
                    access_policy: "deny".to_owned(),
                },
            ))),
        });
        manifests.push(Manifest {
            path: file(&format!("meshtlsauthentication-{}", port.name)),
            object: KubeObject::MeshTlsAuthentication(Box::new(MeshTlsAuthentication::new(
                meta(&name),
                MeshTlsAuthenticationSpec {
                    identity_refs: port
                        .callers(request)
                        .iter()
                        .map(|caller| match caller.split_once('/') {
                            Some((namespace, name)) => {
                                ObjectReference::service_account(namespace, name)
                            }
                            None => ObjectReference::service_account(&request.namespace, caller),
                        })
                        .collect(),
                },
            ))),
        });
        manifests.push(Manifest {
            path: file(&format!("authorizationpolicy-{}", port.name)),
            object: KubeObject::AuthorizationPolicy(Box::new(AuthorizationPolicy::new(
                meta(&name),
                AuthorizationPolicySpec {
                    target_ref: ObjectReference::policy("Server", &name),
                    required_authentication_refs: vec![ObjectReference::policy(
                        "MeshTLSAuthentication",
                        &name,
                    )],
                },
            ))),
        });
    }
    manifests
}

fn deployment(
    request: &ValidRequest,
    settings: &ArtifactSettings,
    names: &Names,
    secrets: &[KvSecret],
    pki_role: Option<&PkiRole>,
    metadata: ObjectMeta,
) -> Deployment {
    let mut env: Vec<EnvVar> = request
        .env
        .iter()
        .map(|var| EnvVar {
            name: var.name.clone(),
            value: Some(var.value.clone()),
            value_from: None,
        })
        .collect();
    // The Vault Agent writes files; the app finds each through `<NAME>_FILE`.
    env.extend(secrets.iter().map(|secret| EnvVar {
        name: secret_file_env(&secret.key),
        value: Some(format!("{SECRETS_DIR}/{}", secret.key)),
        value_from: None,
    }));
    if pki_role.is_some() {
        env.push(EnvVar {
            name: CERTIFICATE_FILE_ENV.to_owned(),
            value: Some(format!("{SECRETS_DIR}/{CERTIFICATE_FILE}")),
            value_from: None,
        });
    }
    let resources = &request.resources;
    let quantities = |pairs: [(&str, &str); 2]| {
        let map: BTreeMap<String, Quantity> = pairs
            .into_iter()
            .filter(|(_, value)| !value.is_empty())
            .map(|(name, value)| (name.to_owned(), Quantity(value.to_owned())))
            .collect();
        (!map.is_empty()).then_some(map)
    };
    let container = Container {
        name: request.service.clone(),
        image: Some(request.image.clone()),
        ports: (!request.ports.is_empty()).then(|| {
            request
                .ports
                .iter()
                .map(|port| ContainerPort {
                    name: Some(port.name.clone()),
                    container_port: port.number as i32,
                    protocol: Some("TCP".to_owned()),
                    ..ContainerPort::default()
                })
                .collect()
        }),
        env: (!env.is_empty()).then_some(env),
        resources: Some(ResourceRequirements {
            requests: quantities([
                ("cpu", &resources.cpu_request),
                ("memory", &resources.memory_request),
            ]),
            limits: quantities([
                ("cpu", &resources.cpu_limit),
                ("memory", &resources.memory_limit),
            ]),
            ..ResourceRequirements::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            run_as_non_root: Some(request.security.run_as_non_root),
            read_only_root_filesystem: Some(request.security.read_only_root_filesystem),
            ..SecurityContext::default()
        }),
        readiness_probe: health_probe(request, 5, 3),
        liveness_probe: health_probe(request, 10, 6),
        volume_mounts: request.security.read_only_root_filesystem.then(|| {
            vec![VolumeMount {
                name: TMP_VOLUME.to_owned(),
                mount_path: "/tmp".to_owned(),
                ..VolumeMount::default()
            }]
        }),
        ..Container::default()
    };
    let mut volumes = Vec::new();
    if request.security.read_only_root_filesystem {
        volumes.push(Volume {
            name: TMP_VOLUME.to_owned(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        });
    }
    if let Some(audience) = agent_audience(settings, secrets, pki_role) {
        volumes.push(Volume {
            name: VAULT_TOKEN_VOLUME.to_owned(),
            projected: Some(ProjectedVolumeSource {
                sources: Some(vec![VolumeProjection {
                    service_account_token: Some(ServiceAccountTokenProjection {
                        audience: Some(audience.to_owned()),
                        expiration_seconds: Some(3600),
                        path: "token".to_owned(),
                    }),
                    ..VolumeProjection::default()
                }]),
                ..ProjectedVolumeSource::default()
            }),
            ..Volume::default()
        });
    }
    Deployment {
        metadata,
        spec: Some(DeploymentSpec {
            replicas: Some(request.replicas as i32),
            selector: LabelSelector {
                match_labels: Some(selector(request)),
                match_expressions: None,
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(request)),
                    annotations: Some(pod_annotations(request, settings, names, secrets, pki_role)),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(request.service.clone()),
                    security_context: Some(PodSecurityContext {
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".to_owned(),
                            localhost_profile: None,
                        }),
                        ..PodSecurityContext::default()
                    }),
                    containers: vec![container],
                    volumes: (!volumes.is_empty()).then_some(volumes),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

/// The pod template's annotations: Linkerd injection with enforced mTLS, and the Vault Agent
/// injector's when the service has secrets or a certificate.
fn pod_annotations(
    request: &ValidRequest,
    settings: &ArtifactSettings,
    names: &Names,
    secrets: &[KvSecret],
    pki_role: Option<&PkiRole>,
) -> BTreeMap<String, String> {
    let mut annotations = BTreeMap::from([
        ("linkerd.io/inject".to_owned(), "enabled".to_owned()),
        ("config.linkerd.io/default-inbound-policy".to_owned(), "all-authenticated".to_owned()),
        // A native sidecar proxy starts before every init container, `vault-agent-init`
        // included (the default since edge-26.5.2; said per pod for older control planes).
        ("config.linkerd.io/proxy-enable-native-sidecar".to_owned(), "true".to_owned()),
        // Vault is outside the mesh: the agent's TLS goes to it directly, protected by Vault's
        // own certificate, and still works where the proxy would start after the agent.
        ("config.linkerd.io/skip-outbound-ports".to_owned(), settings.vault_port.to_string()),
    ]);
    if secrets.is_empty() && pki_role.is_none() {
        return annotations;
    }
    let vault = |name: &str| format!("{}/{name}", settings.annotation_prefix);
    annotations.insert(vault("agent-inject"), "true".to_owned());
    annotations.insert(vault("role"), names.vault.clone());
    annotations.insert(vault("auth-path"), format!("auth/{}", settings.kubernetes_auth_mount));
    // Vault serves a certificate of the platform's internal CA: without its CA the agent
    // fails with an unknown authority and the pod never leaves Init.
    if let Some(secret) = &settings.tls_secret {
        annotations.insert(vault("tls-secret"), secret.clone());
        annotations.insert(vault("ca-cert"), settings.ca_cert_path.clone());
    }
    // A role bound to an audience refuses the pod's default token (audience: the API
    // server); the agent then logs in with a projected token of that audience.
    if agent_audience(settings, secrets, pki_role).is_some() {
        annotations.insert(
            vault("agent-service-account-token-volume-name"),
            VAULT_TOKEN_VOLUME.to_owned(),
        );
    }
    for secret in secrets {
        let path = secret.data_path();
        annotations.insert(vault(&format!("agent-inject-secret-{}", secret.key)), path.clone());
        annotations.insert(
            vault(&format!("agent-inject-template-{}", secret.key)),
            format!(
                "{{{{- with secret \"{path}\" -}}}}{{{{ .Data.data.{} }}}}{{{{- end }}}}",
                secret.key
            ),
        );
    }
    if let Some(pki_role) = pki_role {
        let issue = pki_role.issue_path();
        let common_name = format!("{}.{}.svc", request.service, request.namespace);
        annotations
            .insert(vault(&format!("agent-inject-secret-{CERTIFICATE_FILE}")), issue.clone());
        // One template for certificate, key and chain: a second `secret` call would issue a
        // second certificate whose key does not match.
        annotations.insert(
            vault(&format!("agent-inject-template-{CERTIFICATE_FILE}")),
            format!(
                "{{{{- with secret \"{issue}\" \"common_name={common_name}\" -}}}}\n\
                 {{{{ .Data.certificate }}}}\n{{{{ .Data.private_key }}}}\n{{{{ .Data.issuing_ca }}}}\n\
                 {{{{- end }}}}\n"
            ),
        );
    }
    // Reload delivery: the agent re-renders static secrets at the platform's interval (instead
    // of its five-minute default) and runs the owner's command after each file it rewrote.
    if request.rotation.delivery == Delivery::Reload {
        annotations.insert(
            vault("template-static-secret-render-interval"),
            settings.render_interval.clone(),
        );
        if let Some(command) = &request.rotation.reload_command {
            let files = secrets.iter().map(|s| s.key.as_str());
            let certificate = pki_role.map(|_| CERTIFICATE_FILE);
            for file in files.chain(certificate) {
                annotations.insert(vault(&format!("agent-inject-command-{file}")), command.clone());
            }
        }
    }
    annotations
}

/// The pod-template annotation of restart delivery: the secrets' versions (never values), so a
/// rotation changes the template and the Deployment rolls its pods.
pub const SECRET_VERSIONS_ANNOTATION: &str = "meshport.io/secret-versions";

/// The annotation's value: `name=version` pairs in name order, comma-separated.
pub fn secret_versions_value(versions: &BTreeMap<String, u64>) -> String {
    versions.iter().map(|(name, version)| format!("{name}={version}")).collect::<Vec<_>>().join(",")
}

/// The volume of the agent's projected service-account token, when roles carry an audience.
pub const VAULT_TOKEN_VOLUME: &str = "vault-token";
/// The writable `/tmp` of a container with a read-only root file system.
const TMP_VOLUME: &str = "tmp";

/// The audience of the agent's login token: the roles' audience, when the pod runs an agent.
fn agent_audience<'a>(
    settings: &'a ArtifactSettings,
    secrets: &[KvSecret],
    pki_role: Option<&PkiRole>,
) -> Option<&'a str> {
    let agent = !secrets.is_empty() || pki_role.is_some();
    settings.audience.as_deref().filter(|_| agent)
}

/// An HTTP probe of the health-check path on the first HTTP port, when the form gives one.
fn health_probe(request: &ValidRequest, period_seconds: i32, failures: i32) -> Option<Probe> {
    let path = request.health_check_path.as_ref()?;
    let port = request.ports.iter().find(|p| p.protocol == Protocol::Http)?;
    Some(Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.clone()),
            port: IntOrString::String(port.name.clone()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period_seconds),
        failure_threshold: Some(failures),
        ..Probe::default()
    })
}

/// Labels on every object: the recommended `app.kubernetes.io` ones and the owning team.
fn labels(request: &ValidRequest) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), request.service.clone()),
        ("app.kubernetes.io/managed-by".to_owned(), "meshport".to_owned()),
        ("meshport.io/team".to_owned(), request.team.clone()),
    ])
}

/// The labels that select the service's pods.
fn selector(request: &ValidRequest) -> BTreeMap<String, String> {
    BTreeMap::from([("app.kubernetes.io/name".to_owned(), request.service.clone())])
}

/// The Service port's `appProtocol`, which Linkerd and gateways read.
fn app_protocol(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Http => "http",
        Protocol::Grpc => "kubernetes.io/h2c",
        Protocol::Tcp => "linkerd.io/opaque",
    }
}

/// The `Server`'s `proxyProtocol`.
fn proxy_protocol(protocol: Protocol) -> &'static str {
    match protocol {
        // Detection tells HTTP/1 from HTTP/2.
        Protocol::Http => "unknown",
        Protocol::Grpc => "gRPC",
        Protocol::Tcp => "opaque",
    }
}
