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
        ("[a-z]{1,6}", number(1..=4000, 70000), prop::sample::select(Protocol::ALL.to_vec()))
            .prop_map(|(name, number, protocol)| PortSpec { name, number, protocol }),
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
            (format!("{}/metadata/{own}/*", settings.kv_mount), vec!["read", "list"]),
            (format!("{}/issue/{}{}-{}", settings.pki_mount, settings.name_prefix, valid.namespace, valid.service), vec!["create", "update"]),
        ];
        for (path, capabilities) in granted_paths(&artifacts.policy.to_hcl()) {
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
        ports: vec![PortSpec { name: "grpc".into(), number: 5050, protocol: Protocol::Grpc }],
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
    assert_eq!(artifacts.policy.rules.len(), 2, "its own KV paths only");
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
