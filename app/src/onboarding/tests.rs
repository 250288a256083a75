//! The validator's rules, one by one, and a table of hostile inputs that must each be refused
//! with a message naming the field.

use super::*;

fn rules() -> OnboardingRules {
    OnboardingRules::default()
}

/// A request every rule accepts.
fn cart() -> OnboardingRequest {
    OnboardingRequest {
        service: "cart".into(),
        team: "checkout".into(),
        justification: "Cart moves to the mesh for mTLS.".into(),
        image: "ghcr.io/open-telemetry/demo:2.1.3-cart".into(),
        env: vec![EnvVar { name: "CART_PORT".into(), value: "8080".into() }],
        secrets: vec![
            SecretSpec {
                name: "valkey_password".into(),
                source: SecretSource::Generate { length: 32, alphabet: Alphabet::Alphanumeric },
            },
            SecretSpec {
                name: "api_key".into(),
                source: SecretSource::Provided { value: SecretValue::new("s3cr3t-value") },
            },
        ],
        allowed_callers: vec!["frontend".into(), "ingress-nginx/ingress-nginx".into()],
        ..OnboardingRequest::default()
    }
}

fn errors_of(request: &OnboardingRequest) -> Vec<(String, Rule)> {
    check(request, &rules()).into_iter().map(|e| (e.field, e.rule)).collect()
}

#[test]
fn a_complete_request_is_valid() {
    assert_eq!(check(&cart(), &rules()), vec![]);
    let valid = ValidRequest::new(cart(), &rules()).unwrap();
    assert_eq!(valid.service, "cart");
}

#[test]
fn an_empty_form_names_every_missing_field() {
    let errors = errors_of(&OnboardingRequest::default());
    for field in ["service", "team", "justification", "image", "allowed_callers"] {
        assert!(errors.contains(&(field.to_owned(), Rule::Required)), "{field}: {errors:?}");
    }
}

/// Each row: a change to a valid request, the field that must be blamed and the rule.
#[test]
fn hostile_and_wrong_inputs_are_refused_with_the_field_and_rule() {
    type Mutation = fn(&mut OnboardingRequest);
    let long = "a".repeat(64);
    let table: Vec<(&str, Mutation, &str, Rule)> = vec![
        ("path traversal in the name", |r| r.service = "../admin".into(), "service", Rule::Format),
        ("glob in the name", |r| r.service = "cart*".into(), "service", Rule::Format),
        ("slash in the name", |r| r.service = "prod-app/cart".into(), "service", Rule::Format),
        (
            "quote aimed at HCL",
            |r| r.service = "cart\" { capabilities".into(),
            "service",
            Rule::Format,
        ),
        (
            "newline aimed at YAML",
            |r| r.service = "cart\nkind: Secret".into(),
            "service",
            Rule::Format,
        ),
        ("HCL template", |r| r.service = "${path}".into(), "service", Rule::Format),
        ("Cyrillic look-alike", |r| r.service = "cаrt".into(), "service", Rule::Format),
        ("fullwidth look-alike", |r| r.service = "ｃart".into(), "service", Rule::Format),
        ("upper case", |r| r.service = "Cart".into(), "service", Rule::Format),
        ("leading digit", |r| r.service = "1cart".into(), "service", Rule::Format),
        ("trailing hyphen", |r| r.service = "cart-".into(), "service", Rule::Format),
        ("empty name", |r| r.service = String::new(), "service", Rule::Required),
        ("reserved name", |r| r.service = "vault".into(), "service", Rule::Reserved),
        ("reserved prefix", |r| r.service = "linkerd-proxy".into(), "service", Rule::Reserved),
        (
            "namespace not allowed",
            |r| r.namespace = "kube-system".into(),
            "namespace",
            Rule::NotAllowed,
        ),
        (
            "namespace traversal",
            |r| r.namespace = "../prod-app".into(),
            "namespace",
            Rule::NotAllowed,
        ),
        ("team with space", |r| r.team = "check out".into(), "team", Rule::Format),
        (
            "blank justification",
            |r| r.justification = " \n ".into(),
            "justification",
            Rule::Required,
        ),
        (
            "justification with NUL",
            |r| r.justification = "ok\0".into(),
            "justification",
            Rule::Format,
        ),
        (
            "over-long justification",
            |r| r.justification = "x".repeat(2001),
            "justification",
            Rule::TooLong,
        ),
        ("latest tag", |r| r.image = "ghcr.io/shop/cart:latest".into(), "image", Rule::NotAllowed),
        ("untagged image", |r| r.image = "ghcr.io/shop/cart".into(), "image", Rule::NotAllowed),
        ("image with newline", |r| r.image = "shop/cart:1\nx".into(), "image", Rule::Format),
        ("image with quote", |r| r.image = "shop/cart:1\"".into(), "image", Rule::Format),
        ("zero replicas", |r| r.replicas = 0, "replicas", Rule::OutOfRange),
        ("too many replicas", |r| r.replicas = 51, "replicas", Rule::OutOfRange),
        ("port 0", |r| r.ports[0].number = 0, "ports[0].number", Rule::OutOfRange),
        ("port above 65535", |r| r.ports[0].number = 70000, "ports[0].number", Rule::OutOfRange),
        ("Linkerd proxy port", |r| r.ports[0].number = 4191, "ports[0].number", Rule::Reserved),
        (
            "port name too long",
            |r| r.ports[0].name = "http-metrics-extra".into(),
            "ports[0].name",
            Rule::TooLong,
        ),
        (
            "port name digits only",
            |r| r.ports[0].name = "8080".into(),
            "ports[0].name",
            Rule::Format,
        ),
        (
            "port name double hyphen",
            |r| r.ports[0].name = "a--b".into(),
            "ports[0].name",
            Rule::Format,
        ),
        (
            "duplicate port",
            |r| {
                r.ports.push(PortSpec {
                    name: "http".into(),
                    number: 9090,
                    protocol: Protocol::Grpc,
                    allowed_callers: None,
                })
            },
            "ports[1].name",
            Rule::Duplicate,
        ),
        (
            "port with an empty caller list",
            |r| r.ports[0].allowed_callers = Some(Vec::new()),
            "ports[0].allowed_callers",
            Rule::Required,
        ),
        (
            "port caller not a service account",
            |r| r.ports[0].allowed_callers = Some(vec!["monitoring/Prom etheus".into()]),
            "ports[0].allowed_callers[0]",
            Rule::Format,
        ),
        (
            "port caller twice",
            |r| {
                r.ports[0].allowed_callers =
                    Some(vec!["frontend".into(), "prod-app/frontend".into()])
            },
            "ports[0].allowed_callers[1]",
            Rule::Duplicate,
        ),
        (
            "relative health-check path",
            |r| r.health_check_path = Some("healthz".into()),
            "health_check_path",
            Rule::Format,
        ),
        (
            "health-check path with a query or space",
            |r| r.health_check_path = Some("/health?x=1 y".into()),
            "health_check_path",
            Rule::Format,
        ),
        (
            "health-check path too long",
            |r| r.health_check_path = Some(format!("/{}", "a".repeat(200))),
            "health_check_path",
            Rule::TooLong,
        ),
        (
            "health check without an HTTP port",
            |r| {
                r.ports[0].protocol = Protocol::Grpc;
                r.health_check_path = Some("/healthz".into());
            },
            "health_check_path",
            Rule::Conflict,
        ),
        (
            "CPU not a quantity",
            |r| r.resources.cpu_request = "lots".into(),
            "resources.cpu_request",
            Rule::Format,
        ),
        (
            "memory missing",
            |r| r.resources.memory_request = String::new(),
            "resources.memory_request",
            Rule::Required,
        ),
        (
            "memory zero",
            |r| r.resources.memory_request = "0Mi".into(),
            "resources.memory_request",
            Rule::OutOfRange,
        ),
        (
            "limit below request",
            |r| r.resources.memory_limit = "64Mi".into(),
            "resources.memory_limit",
            Rule::Conflict,
        ),
        ("env name with dash", |r| r.env[0].name = "CART-PORT".into(), "env[0].name", Rule::Format),
        (
            "secret in env",
            |r| r.env[0].name = "DB_PASSWORD".into(),
            "env[0].name",
            Rule::NotAllowed,
        ),
        (
            "env value with newline",
            |r| r.env[0].value = "a\nb: c".into(),
            "env[0].value",
            Rule::Format,
        ),
        (
            "env shadows a secret file",
            |r| r.env[0].name = "API_KEY_FILE".into(),
            "env[0].name",
            Rule::Conflict,
        ),
        (
            "env shadows the certificate file",
            |r| {
                r.certificate = Some(CertificateSpec { ttl_hours: 24 });
                r.env[0].name = "TLS_PEM_FILE".into();
            },
            "env[0].name",
            Rule::Conflict,
        ),
        (
            "secret shadows the certificate file",
            |r| {
                r.certificate = Some(CertificateSpec { ttl_hours: 24 });
                r.secrets[0].name = "tls_pem".into();
            },
            "secrets[0].name",
            Rule::Conflict,
        ),
        (
            "env value over-long",
            |r| r.env[0].value = "v".repeat(4097),
            "env[0].value",
            Rule::TooLong,
        ),
        (
            "secret name traversal",
            |r| r.secrets[0].name = "../root".into(),
            "secrets[0].name",
            Rule::Format,
        ),
        (
            "secret name with dot",
            |r| r.secrets[0].name = "tls.pem".into(),
            "secrets[0].name",
            Rule::Format,
        ),
        (
            "secret name with glob",
            |r| r.secrets[0].name = "*".into(),
            "secrets[0].name",
            Rule::Format,
        ),
        (
            "secret name too long",
            |r| r.secrets[0].name = "a".repeat(42),
            "secrets[0].name",
            Rule::TooLong,
        ),
        (
            "duplicate secret",
            |r| r.secrets[1].name = "valkey_password".into(),
            "secrets[1].name",
            Rule::Duplicate,
        ),
        (
            "short generated secret",
            |r| r.secrets[0].source = SecretSource::Generate { length: 8, alphabet: Alphabet::Hex },
            "secrets[0].source.length",
            Rule::OutOfRange,
        ),
        (
            "empty provided secret",
            |r| r.secrets[1].source = SecretSource::Provided { value: SecretValue::default() },
            "secrets[1].source.value",
            Rule::Required,
        ),
        (
            "caller traversal",
            |r| r.allowed_callers[0] = "../frontend".into(),
            "allowed_callers[0]",
            Rule::Format,
        ),
        (
            "caller wildcard",
            |r| r.allowed_callers[0] = "*".into(),
            "allowed_callers[0]",
            Rule::Format,
        ),
        (
            "caller with three parts",
            |r| r.allowed_callers[0] = "a/b/c".into(),
            "allowed_callers[0]",
            Rule::Format,
        ),
        (
            "caller empty",
            |r| r.allowed_callers[0] = String::new(),
            "allowed_callers[0]",
            Rule::Required,
        ),
        (
            "caller repeated",
            |r| r.allowed_callers[1] = "prod-app/frontend".into(),
            "allowed_callers[1]",
            Rule::Duplicate,
        ),
        ("no callers", |r| r.allowed_callers.clear(), "allowed_callers", Rule::Required),
        (
            "certificate TTL zero",
            |r| r.certificate = Some(CertificateSpec { ttl_hours: 0 }),
            "certificate.ttl_hours",
            Rule::OutOfRange,
        ),
        ("rotation zero", |r| r.rotation_days = 0, "rotation_days", Rule::OutOfRange),
        ("rotation over a year", |r| r.rotation_days = 366, "rotation_days", Rule::OutOfRange),
    ];
    for (case, mutate, field, rule) in table {
        let mut request = cart();
        mutate(&mut request);
        let errors = check(&request, &rules());
        let error = errors
            .iter()
            .find(|e| e.field == field)
            .unwrap_or_else(|| panic!("{case}: no error on `{field}`, got {errors:?}"));
        assert_eq!(error.rule, rule, "{case}: {error:?}");
        assert!(
            error.message.len() > 10 && error.message.ends_with('.'),
            "{case}: {:?}",
            error.message
        );
        assert!(ValidRequest::new(request, &rules()).is_err(), "{case}");
    }
    let mut request = cart();
    request.service = long;
    assert_eq!(errors_of(&request), vec![("service".to_owned(), Rule::TooLong)]);
}

#[test]
fn the_latest_tag_is_accepted_only_when_the_platform_allows_it() {
    let mut request = cart();
    request.image = "ghcr.io/shop/cart:latest".into();
    let lenient = OnboardingRules { allow_latest_tag: true, ..rules() };
    assert_eq!(check(&request, &lenient), vec![]);
}

#[test]
fn messages_never_repeat_a_provided_secret() {
    let mut request = cart();
    let value = "x".repeat(super::validate::MAX_SECRET_VALUE + 1);
    request.secrets[1].source = SecretSource::Provided { value: SecretValue::new(value.clone()) };
    request.service = value.clone();
    let errors = check(&request, &rules());
    assert!(errors.iter().any(|e| e.field == "secrets[1].source.value" && e.rule == Rule::TooLong));
    assert!(errors.iter().all(|e| !e.message.contains("xxxx")));
    assert!(!format!("{:?}", cart()).contains("s3cr3t-value"), "Debug shows the value");
}

#[test]
fn stored_copies_carry_no_secret_values() {
    let stored = cart().without_secret_values();
    assert!(!serde_json::to_string(&stored).unwrap().contains("s3cr3t-value"));
    assert_eq!(stored.secrets[0], cart().secrets[0], "generated secrets keep their settings");
}

#[test]
fn stored_copies_validate_again_without_their_secret_values() {
    let stored = cart().without_secret_values();
    assert!(
        ValidRequest::new(stored.clone(), &rules()).is_err(),
        "a blank value is an error in a form"
    );
    assert!(
        ValidRequest::from_stored(stored.clone(), &rules()).is_ok(),
        "but expected in a stored copy"
    );
    let mut moved = stored;
    moved.namespace = "elsewhere".into();
    assert!(ValidRequest::from_stored(moved, &rules()).is_err(), "every other rule still applies");
}

#[test]
fn requests_round_trip_through_json() {
    let json = serde_json::to_string(&cart()).unwrap();
    assert!(json.contains(r#""source":{"kind":"provided","value":"s3cr3t-value"}"#), "{json}");
    assert_eq!(serde_json::from_str::<OnboardingRequest>(&json).unwrap(), cart());
}

#[test]
fn ports_with_their_own_callers_need_no_service_wide_callers() {
    let mut request = cart();
    request.allowed_callers.clear();
    assert!(errors_of(&request).contains(&("allowed_callers".to_owned(), Rule::Required)));
    request.ports[0].allowed_callers = Some(vec!["frontend".into()]);
    assert_eq!(errors_of(&request), vec![]);
    request.health_check_path = Some("/healthz".into());
    assert_eq!(errors_of(&request), vec![]);
}

#[test]
fn a_stored_request_without_the_newer_fields_reads_with_their_defaults() {
    let mut stored = serde_json::to_value(cart()).unwrap();
    let object = stored.as_object_mut().unwrap();
    object.remove("health_check_path");
    object.remove("security");
    let request: OnboardingRequest = serde_json::from_value(stored).unwrap();
    assert_eq!(request.security, WorkloadSecurity::default());
    assert!(request.security.run_as_non_root && request.security.read_only_root_filesystem);
    assert_eq!(request.health_check_path, None);
    assert_eq!(request.ports[0].allowed_callers, None);
}

#[test]
fn the_rotation_plan_is_judged_with_the_field_and_rule() {
    use crate::onboarding::{Delivery, RotationPlan, RotationPolicy};
    let with = |plan: RotationPlan| OnboardingRequest { rotation: plan, ..cart() };
    assert!(errors_of(&with(RotationPlan::default())).is_empty());
    let reload = RotationPlan {
        delivery: Delivery::Reload,
        reload_command: Some("kill -HUP 1".into()),
        policy: RotationPolicy::Automatic,
    };
    assert!(errors_of(&with(reload.clone())).is_empty());
    let stray = RotationPlan { delivery: Delivery::Restart, ..reload.clone() };
    assert_eq!(errors_of(&with(stray)), [("rotation.reload_command".to_owned(), Rule::Conflict)]);
    let multiline = RotationPlan { reload_command: Some("a\nb".into()), ..reload.clone() };
    assert_eq!(errors_of(&with(multiline)), [("rotation.reload_command".to_owned(), Rule::Format)]);
    let long = RotationPlan { reload_command: Some("x".repeat(501)), ..reload.clone() };
    assert_eq!(errors_of(&with(long)), [("rotation.reload_command".to_owned(), Rule::TooLong)]);
    let nothing = OnboardingRequest { secrets: Vec::new(), ..with(reload) };
    assert_eq!(
        errors_of(&nothing),
        [
            ("rotation.policy".to_owned(), Rule::Conflict),
            ("rotation.delivery".to_owned(), Rule::Conflict)
        ]
    );
}

#[test]
fn the_form_carries_the_rotation_plan_both_ways() {
    use crate::onboarding::{Delivery, OnboardForm, RotationPlan, RotationPolicy};
    let mut request = OnboardingRequest {
        rotation: RotationPlan {
            policy: RotationPolicy::Automatic,
            delivery: Delivery::Reload,
            reload_command: Some("kill -HUP 1".into()),
        },
        ..cart()
    };
    request.secrets.retain(|s| s.name == "valkey_password");
    let form = OnboardForm::from_request(&request);
    assert_eq!((form.rotation_policy.as_str(), form.delivery.as_str()), ("automatic", "reload"));
    assert_eq!(form.to_request().unwrap_or_else(|e| panic!("{e:?}")).rotation, request.rotation);
    let bad = OnboardForm { delivery: "sometimes".into(), ..form };
    let errors = bad.to_request().unwrap_err();
    assert!(errors.iter().any(|e| e.field == "rotation.delivery" && e.rule == Rule::Format));
}

#[test]
fn an_upgrade_selection_names_each_broken_field_and_rule() {
    use super::{HandEditDecision, UpgradeScope, upgrade_selection};
    let ok = upgrade_selection("team", "cart", &[("prod-app/cart".into(), "adopt".into())]);
    let ok = ok.unwrap();
    assert_eq!(ok.scope, UpgradeScope::Team("cart".into()));
    assert_eq!(ok.decisions["prod-app/cart"], HandEditDecision::Adopt);
    let undecided = upgrade_selection("all", "", &[("prod-app/cart".into(), String::new())]);
    assert!(undecided.unwrap().decisions.is_empty(), "an empty choice decides nothing");

    let errors = upgrade_selection("everything", "", &[]).unwrap_err();
    assert_eq!((errors.0[0].field.as_str(), errors.0[0].rule), ("scope", Rule::NotAllowed));
    let errors = upgrade_selection("namespace", "", &[]).unwrap_err();
    assert_eq!((errors.0[0].field.as_str(), errors.0[0].rule), ("value", Rule::Required));
    let errors = upgrade_selection("namespace", "Prod App", &[]).unwrap_err();
    assert_eq!(errors.0[0].rule, Rule::Format);
    let hostile = [("../etc".to_owned(), "replace".to_owned()), ("a/b".into(), "delete".into())];
    let errors = upgrade_selection("all", "", &hostile).unwrap_err();
    let fields: Vec<(&str, Rule)> = errors.0.iter().map(|e| (e.field.as_str(), e.rule)).collect();
    assert_eq!(fields, [("decisions[../etc]", Rule::Format), ("decisions[a/b]", Rule::NotAllowed)]);
}
