//! Properties of the renderers over generated requests (hostile values included): whatever the
//! validator accepts renders to a policy that grants nothing outside the service's own paths and
//! to YAML that reads back as the same objects. Plus the facts reviewers check by eye.

use app::onboarding::{
    Alphabet, CertificateSpec, EnvVar, OnboardingRequest, OnboardingRules, PortSpec, Protocol,
    Resources, SecretSource, SecretSpec, SecretValue, ValidRequest,
};
use proptest::prelude::*;

use super::*;
use crate::config::Config;

fn settings(openbao: bool) -> ArtifactSettings {
    let mut settings = Config::default().artifact_settings();
    if openbao {
        settings.annotation_prefix = "openbao.openbao.org".to_owned();
        settings.name_prefix = "mesh-".to_owned();
    }
    settings
}

fn rules() -> OnboardingRules {
    OnboardingRules {
        namespaces: vec!["prod-app".into(), "staging".into()],
        allow_latest_tag: false,
    }
}

/// Mostly well-formed names with hostile ones mixed in, so both paths are exercised.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        30 => "[a-z][a-z0-9-]{0,12}[a-z0-9]",
        1 => "\\PC{0,16}",
        1 => prop::sample::select(vec!["..", "*", "a/b", "a\"b", "a\nb", "${x}", "cаrt", "a b", ""]).prop_map(String::from),
    ]
}

/// A number mostly inside `valid`, sometimes anywhere below `max`.
fn number(valid: std::ops::RangeInclusive<u32>, max: u32) -> impl Strategy<Value = u32> {
    prop_oneof![20 => valid, 1 => 0..max]
}

fn request() -> impl Strategy<Value = OnboardingRequest> {
    let ports = prop::collection::vec(
        (
            "[a-z]{1,6}",
            number(1..=4000, 70000),
            prop::sample::select(Protocol::ALL.to_vec()),
            prop::option::of(prop::collection::vec(name(), 0..3)),
        )
            .prop_map(|(name, number, protocol, allowed_callers)| PortSpec {
                name,
                number,
                protocol,
                allowed_callers,
            }),
        0..3,
    );
    let env = prop::collection::vec(
        ("[A-Z][A-Z0-9_]{0,8}", "\\PC{0,24}").prop_map(|(name, value)| EnvVar { name, value }),
        0..4,
    );
    let source = prop_oneof![
        (number(16..=128, 200), prop::sample::select(Alphabet::ALL.to_vec()))
            .prop_map(|(length, alphabet)| SecretSource::Generate { length, alphabet }),
        "\\PC{1,12}".prop_map(|value| SecretSource::Provided { value: SecretValue::new(value) }),
        Just(SecretSource::Existing),
    ];
    let secrets = prop::collection::vec(
        (prop_oneof![20 => "[a-z][a-z0-9_]{0,12}", 1 => name()], source)
            .prop_map(|(name, source)| SecretSpec { name, source }),
        0..3,
    );
    let callers = prop::collection::vec(
        prop_oneof![3 => name(), 1 => (name(), name()).prop_map(|(ns, n)| format!("{ns}/{n}"))],
        1..3,
    );
    let namespace = prop_oneof![10 => Just("prod-app"), 10 => Just("staging"), 1 => Just("other"), 1 => Just("../x")];
    let image =
        prop_oneof![20 => "[a-z]{1,8}(/[a-z0-9]{1,8})?:[0-9]\\.[0-9]{1,2}", 1 => "\\PC{0,20}"];
    (
        (
            name(),
            namespace,
            name(),
            prop_oneof![20 => "[A-Za-z][A-Za-z .,'\"{}:#&*!|>%@`-]{0,40}", 1 => "\\PC{0,40}"],
        ),
        (image, number(1..=50, 60)),
        (ports, env, secrets, callers),
        (prop::option::of(number(1..=2160, 3000)), number(1..=365, 400)),
    )
        .prop_map(
            |(
                (service, namespace, team, justification),
                (image, replicas),
                (ports, env, secrets, allowed_callers),
                (ttl, rotation_days),
            )| {
                OnboardingRequest {
                    service,
                    namespace: namespace.to_owned(),
                    team,
                    justification,
                    image,
                    replicas,
                    ports,
                    resources: Resources::default(),
                    env,
                    secrets,
                    allowed_callers,
                    certificate: ttl.map(|ttl_hours| CertificateSpec { ttl_hours }),
                    rotation_days,
                    health_check_path: None,
                    security: Default::default(),
                    rotation: Default::default(),
                }
            },
        )
}

/// Every `path` the policy grants, with its capabilities, read back from the HCL text.
fn granted_paths(hcl_text: &str) -> Vec<(String, Vec<String>)> {
    let body: hcl::Body = hcl::parse(hcl_text).expect("the policy parses as HCL");
    assert_eq!(body.attributes().count(), 0, "only path blocks: {hcl_text}");
    body.blocks()
        .map(|block| {
            assert_eq!(block.identifier(), "path", "{hcl_text}");
            assert_eq!(block.labels().len(), 1, "{hcl_text}");
            let path = block.labels()[0].as_str().to_owned();
            let attributes: Vec<_> = block.body().attributes().collect();
            assert_eq!(attributes.len(), 1, "{hcl_text}");
            assert_eq!(attributes[0].key(), "capabilities");
            let hcl::Expression::Array(values) = attributes[0].expr() else { panic!("{hcl_text}") };
            let capabilities = values
                .iter()
                .map(|value| match value {
                    hcl::Expression::String(s) => s.clone(),
                    other => panic!("capability is not a string: {other:?}"),
                })
                .collect();
            (path, capabilities)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn accepted_requests_get_least_privilege_and_yaml_that_reads_back(request in request(), openbao in any::<bool>()) {
        let Ok(valid) = ValidRequest::new(request, &rules()) else { return Ok(()) };
        let settings = settings(openbao);
        let artifacts = ServiceArtifacts::build(&valid, &settings, Some(Uuid::nil()));
        let own = format!("{}/{}", valid.namespace, valid.service);
        let allowed = [
            (format!("{}/data/{own}/*", settings.kv_mount), vec!["read"]),
            (format!("{}/issue/{}{}-{}", settings.pki_mount, settings.name_prefix, valid.namespace, valid.service), vec!["create", "update"]),
        ];
        for (path, capabilities) in granted_paths(&artifacts.policy.as_ref().unwrap().to_hcl()) {
            let grant = allowed.iter().find(|(p, _)| *p == path);
            prop_assert!(grant.is_some(), "policy grants `{}` outside {}", path, own);
            prop_assert!(capabilities.iter().all(|c| grant.unwrap().1.contains(&c.as_str())), "{:?}", capabilities);
        }
        for secret in &artifacts.secrets {
            let prefix = format!("{}/data/{}/", settings.kv_mount, own);
            prop_assert!(secret.data_path().starts_with(&prefix));
            prop_assert!(!secret.path.split('/').any(|part| part == ".." || part == "." || part.is_empty()));
        }
        for manifest in &artifacts.manifests {
            let yaml = manifest.object.to_yaml().unwrap();
            let back = KubeObject::from_yaml(manifest.object.kind(), &yaml);
            prop_assert_eq!(back.as_ref(), Ok(&manifest.object), "YAML:\n{}", yaml);
            let folder = format!("manifests/{}/", own);
            prop_assert!(manifest.path.starts_with(&folder));
        }
    }
}

fn checkout() -> ValidRequest {
    let request = OnboardingRequest {
        service: "checkout".into(),
        team: "checkout".into(),
        justification: "Joins the mesh.".into(),
        image: "ghcr.io/open-telemetry/demo:2.1.3-checkout".into(),
        ports: vec![PortSpec {
            name: "grpc".into(),
            number: 5050,
            protocol: Protocol::Grpc,
            allowed_callers: None,
        }],
        secrets: vec![SecretSpec {
            name: "kafka_password".into(),
            source: SecretSource::Provided { value: SecretValue::new("hunter2-typed-once") },
        }],
        allowed_callers: vec!["frontend".into()],
        certificate: Some(CertificateSpec { ttl_hours: 72 }),
        ..OnboardingRequest::default()
    };
    ValidRequest::new(request, &rules()).unwrap()
}

fn pod_annotations(artifacts: &ServiceArtifacts) -> BTreeMap<String, String> {
    artifacts
        .manifests
        .iter()
        .find_map(|m| match &m.object {
            KubeObject::Deployment(d) => {
                d.spec.as_ref()?.template.metadata.as_ref()?.annotations.clone()
            }
            _ => None,
        })
        .expect("a deployment with pod annotations")
}

#[test]
fn the_pod_is_meshed_and_gets_real_vault_agent_annotations() {
    let artifacts = ServiceArtifacts::build(&checkout(), &settings(false), None);
    let annotations = pod_annotations(&artifacts);
    let get = |key: &str| annotations.get(key).map(String::as_str);
    assert_eq!(get("linkerd.io/inject"), Some("enabled"));
    assert_eq!(get("config.linkerd.io/default-inbound-policy"), Some("all-authenticated"));
    assert_eq!(get("config.linkerd.io/skip-outbound-ports"), Some("8200"));
    assert_eq!(get("config.linkerd.io/proxy-enable-native-sidecar"), Some("true"));
    assert_eq!(get("vault.hashicorp.com/tls-secret"), Some("vault-ca"));
    assert_eq!(get("vault.hashicorp.com/ca-cert"), Some("/vault/tls/ca.crt"));
    assert_eq!(get("vault.hashicorp.com/agent-inject"), Some("true"));
    assert_eq!(get("vault.hashicorp.com/role"), Some("prod-app-checkout"));
    assert_eq!(
        get("vault.hashicorp.com/agent-inject-secret-kafka_password"),
        Some("secret/data/prod-app/checkout/kafka_password")
    );
    assert_eq!(
        get("vault.hashicorp.com/agent-inject-template-kafka_password"),
        Some(
            r#"{{- with secret "secret/data/prod-app/checkout/kafka_password" -}}{{ .Data.data.kafka_password }}{{- end }}"#
        )
    );
    assert_eq!(
        get("vault.hashicorp.com/agent-inject-secret-tls.pem"),
        Some("pki/issue/prod-app-checkout")
    );
    assert!(
        !annotations.keys().any(|k| k.ends_with("/agent-inject-status")),
        "written by the injector only"
    );
    for key in annotations.keys() {
        let name = key.rsplit('/').next().unwrap();
        assert!(name.len() <= 63, "annotation name too long: {key}");
    }
}

#[test]
fn no_artifact_contains_a_provided_secret_value() {
    let artifacts = ServiceArtifacts::build(&checkout(), &settings(false), None);
    let files =
        artifacts.gitops_files().unwrap().into_iter().chain(artifacts.vault_files().unwrap());
    for file in files {
        assert!(!file.contents.contains("hunter2"), "{} carries the secret", file.path);
        assert!(file.contents.ends_with('\n'), "{} lacks a trailing newline", file.path);
    }
}

#[test]
fn openbao_prefix_replaces_the_vault_one() {
    let artifacts = ServiceArtifacts::build(&checkout(), &settings(true), None);
    let annotations = pod_annotations(&artifacts);
    assert!(annotations.keys().all(|k| !k.starts_with("vault.hashicorp.com/")));
    assert_eq!(
        annotations.get("openbao.openbao.org/role").map(String::as_str),
        Some("mesh-prod-app-checkout")
    );
}

#[test]
fn a_service_without_secrets_gets_no_agent() {
    let mut request = checkout().into_inner();
    request.secrets.clear();
    request.certificate = None;
    let artifacts = ServiceArtifacts::build(
        &ValidRequest::new(request, &rules()).unwrap(),
        &settings(false),
        None,
    );
    assert!(pod_annotations(&artifacts).keys().all(|k| !k.starts_with("vault.hashicorp.com/")));
    assert_eq!(artifacts.policy.as_ref().unwrap().rules.len(), 1, "its own KV data path only");
}

/// The property above only means something if the generator produces valid requests often.
#[test]
fn the_generator_yields_enough_valid_requests_for_the_property_to_bite() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = request();
    let accepted = (0..1000)
        .filter(|_| {
            ValidRequest::new(strategy.new_tree(&mut runner).unwrap().current(), &rules()).is_ok()
        })
        .count();
    eprintln!("{accepted} of 1000 generated requests are valid");
    assert!(accepted >= 100, "only {accepted} of 1000 generated requests are valid");
}

fn deployment(artifacts: &ServiceArtifacts) -> &k8s_openapi::api::apps::v1::Deployment {
    artifacts
        .manifests
        .iter()
        .find_map(|m| match &m.object {
            KubeObject::Deployment(d) => Some(d.as_ref()),
            _ => None,
        })
        .expect("a deployment")
}

/// Contract with the injector, which cannot run here: every annotation meshport writes under
/// the injector's prefix is one `vault-k8s` reads, as listed in the fixture (its source named
/// there), and none is one the injector writes itself.
#[test]
fn contract_every_vault_annotation_is_one_the_vault_k8s_injector_defines() {
    let fixture = include_str!("../../tests/fixtures/vault-k8s-annotations.txt");
    let known: Vec<&str> =
        fixture.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).collect();
    assert!(known.contains(&"tls-secret") && known.contains(&"agent-inject-secret-<file>"));
    let mut settings = settings(false);
    settings.audience = Some("vault".into());
    // Reload delivery adds the render interval and a command per rendered file.
    let mut request = checkout().into_inner();
    request.rotation = app::onboarding::RotationPlan {
        delivery: app::onboarding::Delivery::Reload,
        reload_command: Some("wget -qO- http://127.0.0.1:5050/-/reload".into()),
        ..Default::default()
    };
    let request = ValidRequest::new(request, &rules()).unwrap();
    let artifacts = ServiceArtifacts::build(&request, &settings, None);
    let files: Vec<String> = artifacts
        .secrets
        .iter()
        .map(|s| s.key.clone())
        .chain([super::kubernetes::CERTIFICATE_FILE.to_owned()])
        .collect();
    let annotations = pod_annotations(&artifacts);
    let ours: Vec<&str> =
        annotations.keys().filter_map(|k| k.strip_prefix("vault.hashicorp.com/")).collect();
    assert!(ours.len() >= 12, "{ours:?}");
    assert!(ours.contains(&"template-static-secret-render-interval"), "{ours:?}");
    assert!(ours.contains(&"agent-inject-command-kafka_password"), "{ours:?}");
    for name in ours {
        assert_ne!(name, "agent-inject-status", "written by the injector only");
        let defined = known.contains(&name)
            || known.iter().filter_map(|k| k.strip_suffix("<file>")).any(|prefix| {
                name.strip_prefix(prefix).is_some_and(|file| files.iter().any(|f| f == file))
            });
        assert!(defined, "`vault.hashicorp.com/{name}` is not an annotation vault-k8s reads");
    }
}

/// Restart delivery stamps only the pod template, with versions and never values; the default
/// plan renders exactly what services onboarded before the plan existed had.
#[test]
fn secret_versions_go_into_the_pod_template_and_the_default_plan_adds_nothing() {
    let plain = ServiceArtifacts::build(&checkout(), &settings(false), None);
    let annotations = pod_annotations(&plain);
    assert!(annotations.keys().all(|k| !k.contains("command") && !k.contains("render-interval")));
    let versions = BTreeMap::from([("kafka_password".to_owned(), 3), ("a_key".to_owned(), 12)]);
    let stamped = plain.clone().with_secret_versions(&versions);
    let annotations = pod_annotations(&stamped);
    assert_eq!(annotations["meshport.io/secret-versions"], "a_key=12,kafka_password=3");
    let changed: Vec<_> = plain
        .gitops_files()
        .unwrap()
        .into_iter()
        .zip(stamped.gitops_files().unwrap())
        .filter(|(a, b)| a != b)
        .map(|(a, _)| a.path)
        .collect();
    assert_eq!(changed, ["manifests/prod-app/checkout/deployment.yaml"]);
}

/// Contract with `agent-inject/agent/agent.go` (`serviceaccount`, vault-k8s v1.7.6): the volume
/// named by `agent-service-account-token-volume-name` must be a pod volume projecting a
/// service-account token; the agent logs in with it. With no audience set, the agent uses the
/// pod's default token and the role must not require an audience.
#[test]
fn contract_an_audience_comes_with_the_projected_token_the_agent_logs_in_with() {
    let plain = ServiceArtifacts::build(&checkout(), &settings(false), None);
    assert_eq!(plain.role.audience, None);
    let annotations = pod_annotations(&plain);
    assert!(!annotations.contains_key("vault.hashicorp.com/agent-service-account-token-volume-name"));
    let volumes = deployment(&plain).spec.as_ref().unwrap().template.spec.as_ref().unwrap().volumes.clone();
    assert!(volumes.unwrap_or_default().iter().all(|v| v.projected.is_none()));

    let mut settings = settings(false);
    settings.audience = Some("vault".into());
    let bound = ServiceArtifacts::build(&checkout(), &settings, None);
    assert_eq!(bound.role.audience.as_deref(), Some("vault"));
    let annotations = pod_annotations(&bound);
    let volume_name = annotations
        .get("vault.hashicorp.com/agent-service-account-token-volume-name")
        .expect("the agent is told which token to use");
    let pod = deployment(&bound).spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    let volume = pod.volumes.iter().flatten().find(|v| &v.name == volume_name).expect("the volume exists");
    let token = volume.projected.as_ref().unwrap().sources.as_ref().unwrap()[0]
        .service_account_token
        .as_ref()
        .expect("a projected service-account token");
    assert_eq!(token.audience.as_deref(), Some("vault"));
    assert_eq!(token.path, "token");
}

#[test]
fn each_port_admits_only_its_own_callers() {
    let mut request = checkout().into_inner();
    request.ports.push(PortSpec {
        name: "metrics".into(),
        number: 9464,
        protocol: Protocol::Http,
        allowed_callers: Some(vec!["monitoring/prometheus".into()]),
    });
    let artifacts =
        ServiceArtifacts::build(&ValidRequest::new(request, &rules()).unwrap(), &settings(false), None);
    let mut policies = BTreeMap::new();
    let mut authentications = BTreeMap::new();
    for manifest in &artifacts.manifests {
        match &manifest.object {
            KubeObject::AuthorizationPolicy(p) => {
                let spec = &p.spec;
                assert_eq!(spec.target_ref.name, p.metadata.name.clone().unwrap());
                policies.insert(spec.target_ref.name.clone(), spec.required_authentication_refs[0].name.clone());
            }
            KubeObject::MeshTlsAuthentication(a) => {
                let callers: Vec<String> = a
                    .spec
                    .identity_refs
                    .iter()
                    .map(|r| format!("{}/{}", r.namespace.clone().unwrap_or_default(), r.name))
                    .collect();
                authentications.insert(a.metadata.name.clone().unwrap(), callers);
            }
            _ => {}
        }
    }
    assert_eq!(policies.len(), 2, "one policy per port");
    assert_eq!(policies["checkout-5050"], "checkout-5050");
    assert_eq!(policies["checkout-9464"], "checkout-9464");
    assert_eq!(authentications["checkout-5050"], ["prod-app/frontend"]);
    assert_eq!(authentications["checkout-9464"], ["monitoring/prometheus"]);
}

#[test]
fn pki_roles_refuse_ip_sans_and_localhost() {
    let artifacts = ServiceArtifacts::build(&checkout(), &settings(false), None);
    let role = artifacts.pki_role.unwrap();
    assert!(!role.allow_ip_sans && !role.allow_localhost);
    let body = serde_json::to_value(&role).unwrap();
    assert_eq!((body["allow_ip_sans"].clone(), body["allow_localhost"].clone()), (false.into(), false.into()));
}

#[test]
fn probes_and_the_container_security_follow_the_form() {
    let mut request = checkout().into_inner();
    request.ports[0].protocol = Protocol::Http;
    request.ports[0].name = "http".into();
    request.health_check_path = Some("/healthz".into());
    let artifacts =
        ServiceArtifacts::build(&ValidRequest::new(request.clone(), &rules()).unwrap(), &settings(false), None);
    let pod = deployment(&artifacts).spec.clone().unwrap().template.spec.unwrap();
    let container = &pod.containers[0];
    for probe in [&container.readiness_probe, &container.liveness_probe] {
        let get = probe.as_ref().unwrap().http_get.as_ref().unwrap();
        assert_eq!(get.path.as_deref(), Some("/healthz"));
        assert_eq!(get.port, k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String("http".into()));
    }
    let security = container.security_context.as_ref().unwrap();
    assert_eq!((security.run_as_non_root, security.read_only_root_filesystem), (Some(true), Some(true)));
    assert_eq!(container.volume_mounts.as_ref().unwrap()[0].mount_path, "/tmp", "a writable /tmp");
    assert!(pod.volumes.unwrap().iter().any(|v| v.name == "tmp" && v.empty_dir.is_some()));

    request.health_check_path = None;
    request.security.read_only_root_filesystem = false;
    request.security.run_as_non_root = false;
    let artifacts =
        ServiceArtifacts::build(&ValidRequest::new(request, &rules()).unwrap(), &settings(false), None);
    let pod = deployment(&artifacts).spec.clone().unwrap().template.spec.unwrap();
    let container = &pod.containers[0];
    assert!(container.readiness_probe.is_none() && container.liveness_probe.is_none());
    let security = container.security_context.as_ref().unwrap();
    assert_eq!((security.run_as_non_root, security.read_only_root_filesystem), (Some(false), Some(false)));
    assert!(container.volume_mounts.is_none());
}

#[test]
fn no_tls_secret_means_no_tls_annotations() {
    let mut settings = settings(false);
    settings.tls_secret = None;
    let annotations = pod_annotations(&ServiceArtifacts::build(&checkout(), &settings, None));
    assert!(!annotations.contains_key("vault.hashicorp.com/tls-secret"));
    assert!(!annotations.contains_key("vault.hashicorp.com/ca-cert"));
}
