//! The artifacts of three OpenTelemetry-demo services, each with different options, compared
//! with golden files in `server/tests/golden/` (reviewed like code; `MESHPORT_BLESS=1` rewrites
//! them), and validated like a cluster would: Kubernetes' strict schemas and Linkerd's CRDs.

use std::path::{Path, PathBuf};
use std::process::Command;

use app::onboarding::{
    Alphabet, CertificateSpec, EnvVar, OnboardingRequest, OnboardingRules, PortSpec, Protocol,
    Resources, SecretSource, SecretSpec, SecretValue, ValidRequest, WorkloadSecurity,
};
use meshport_server::artifacts::{ArtifactFile, ArtifactSettings, ServiceArtifacts};
use meshport_server::config::Config;
use uuid::Uuid;

pub(crate) fn golden_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn secret(name: &str, source: SecretSource) -> SecretSpec {
    SecretSpec { name: name.into(), source }
}

fn port(name: &str, number: u32, protocol: Protocol) -> PortSpec {
    PortSpec { name: name.into(), number, protocol, allowed_callers: None }
}

/// cart: one gRPC port, a generated Valkey password, two callers, HashiCorp Vault.
pub fn cart() -> (OnboardingRequest, ArtifactSettings) {
    let request = OnboardingRequest {
        service: "cart".into(),
        team: "cart".into(),
        justification: "Cart holds session baskets; mTLS between frontend and cart is required by PCI scope review.".into(),
        image: "ghcr.io/open-telemetry/demo:2.1.3-cart".into(),
        replicas: 2,
        ports: vec![port("grpc", 7070, Protocol::Grpc)],
        env: vec![
            EnvVar { name: "CART_PORT".into(), value: "7070".into() },
            EnvVar { name: "VALKEY_ADDR".into(), value: "valkey-cart:6379".into() },
        ],
        secrets: vec![secret("valkey_password", SecretSource::Generate { length: 32, alphabet: Alphabet::Alphanumeric })],
        allowed_callers: vec!["frontend".into(), "checkout".into()],
        ..OnboardingRequest::default()
    };
    (request, Config::default().artifact_settings())
}

/// checkout: gRPC and an HTTP metrics port with its own caller from another namespace, probes
/// on the metrics port's health path, a typed-in secret, a Vault PKI certificate, CPU limit.
pub fn checkout() -> (OnboardingRequest, ArtifactSettings) {
    let request = OnboardingRequest {
        service: "checkout".into(),
        team: "checkout".into(),
        justification: "Checkout talks to payment and Kafka; it needs its own certificate for the Kafka listener.".into(),
        image: "ghcr.io/open-telemetry/demo@sha256:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945".into(),
        replicas: 3,
        ports: vec![
            port("grpc", 5050, Protocol::Grpc),
            PortSpec {
                allowed_callers: Some(vec!["monitoring/prometheus".into()]),
                ..port("metrics", 9464, Protocol::Http)
            },
        ],
        resources: Resources {
            cpu_request: "250m".into(),
            memory_request: "256Mi".into(),
            cpu_limit: "1".into(),
            memory_limit: "512Mi".into(),
        },
        env: vec![EnvVar { name: "KAFKA_ADDR".into(), value: "kafka:9092".into() }],
        secrets: vec![secret(
            "kafka_password",
            SecretSource::Provided { value: SecretValue::new("typed-once-never-rendered") },
        )],
        allowed_callers: vec!["frontend".into()],
        certificate: Some(CertificateSpec { ttl_hours: 72 }),
        rotation_days: 14,
        health_check_path: Some("/healthz".into()),
        ..OnboardingRequest::default()
    };
    (request, Config::default().artifact_settings())
}

/// payment: OpenBao (the released chart's injector reads `vault.hashicorp.com/`), a name prefix,
/// roles bound to an audience (so the pod projects a token of it), an existing and a generated
/// secret, a TCP port, a 90-day rotation, a container that needs a writable root file system.
fn payment() -> (OnboardingRequest, ArtifactSettings) {
    let request = OnboardingRequest {
        service: "payment".into(),
        team: "payments".into(),
        justification: "Payment handles card tokens; only checkout may call it.".into(),
        image: "registry.internal:5000/shop/payment:1.12.0".into(),
        replicas: 2,
        ports: vec![port("grpc", 50051, Protocol::Grpc), port("admin", 9000, Protocol::Tcp)],
        secrets: vec![
            secret("stripe_api_key", SecretSource::Existing),
            secret(
                "webhook_signing_key",
                SecretSource::Generate { length: 64, alphabet: Alphabet::Hex },
            ),
        ],
        allowed_callers: vec!["checkout".into()],
        rotation_days: 90,
        security: WorkloadSecurity { read_only_root_filesystem: false, ..WorkloadSecurity::default() },
        ..OnboardingRequest::default()
    };
    let mut config = Config::default();
    config.vault.name_prefix = "mesh-".into();
    config.vault.role_audience = Some("openbao".into());
    (request, config.artifact_settings())
}

type Fixture = fn() -> (OnboardingRequest, ArtifactSettings);

const SERVICES: [(&str, Fixture, u128); 3] =
    [("cart", cart, 0x1001), ("checkout", checkout, 0x1002), ("payment", payment, 0x1003)];

fn render(fixture: Fixture, id: u128) -> Vec<ArtifactFile> {
    let (request, settings) = fixture();
    let valid = ValidRequest::new(request, &OnboardingRules::default()).expect("fixture is valid");
    let artifacts = ServiceArtifacts::build(&valid, &settings, Some(Uuid::from_u128(id)));
    let mut files = artifacts.gitops_files().unwrap();
    files.extend(artifacts.vault_files().unwrap());
    files
}

pub(crate) fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut folders = vec![root.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() { folders.push(path) } else { found.push(path) }
        }
    }
    found.sort();
    found
}

#[test]
fn rendered_services_match_their_golden_files() {
    for (service, fixture, id) in SERVICES {
        assert_golden(&golden_root().join(service), &render(fixture, id), service);
    }
}

/// Compares `files` with the golden files under `root`, which must hold nothing else;
/// `MESHPORT_BLESS=1` rewrites the folder first.
pub(crate) fn assert_golden(root: &Path, files: &[ArtifactFile], label: &str) {
    if std::env::var_os("MESHPORT_BLESS").is_some() {
        let _ = std::fs::remove_dir_all(root);
        for file in files {
            let path = root.join(&file.path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &file.contents).unwrap();
        }
    }
    for file in files {
        let path = root.join(&file.path);
        let golden = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!("{}: {e} (run with MESHPORT_BLESS=1 to create it)", path.display())
        });
        assert_eq!(file.contents, golden, "{label}: {} differs from its golden file", file.path);
    }
    let mut expected: Vec<PathBuf> = files.iter().map(|f| root.join(&f.path)).collect();
    expected.sort();
    assert_eq!(files_under(root), expected, "{label}: golden folder has other files");
}

#[test]
fn rendering_is_stable_and_orders_files_by_path() {
    for (_, fixture, id) in SERVICES {
        let files = render(fixture, id);
        assert_eq!(files, render(fixture, id));
        let manifests: Vec<&str> =
            files.iter().map(|f| f.path.as_str()).filter(|p| p.starts_with("manifests/")).collect();
        let mut sorted = manifests.clone();
        sorted.sort_unstable();
        assert_eq!(manifests, sorted);
    }
}

/// kubernetes-validate (strict, Kubernetes 1.33) for built-in kinds; Linkerd's published CRD
/// schemas, refusing unknown fields, for its policy kinds.
#[test]
fn every_generated_object_validates_against_kubernetes_and_linkerd_schemas() {
    let folder = tempfile::tempdir().unwrap();
    for (service, fixture, id) in SERVICES {
        for file in render(fixture, id).into_iter().filter(|f| f.path.ends_with(".yaml")) {
            let path = folder.path().join(service).join(&file.path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, file.contents).unwrap();
        }
    }
    let (valid, report) = validate_manifests(&[folder.path()]);
    assert!(valid, "schema validation failed:\n{report}");
    assert!(report.contains("Server") && report.contains("Deployment"), "{report}");
}

/// The validator itself: a broken object must fail, or the test above proves nothing.
#[test]
fn the_schema_validator_refuses_an_invalid_object() {
    let folder = tempfile::tempdir().unwrap();
    let files = render(cart, 1);
    let server = files.iter().find(|f| f.path.ends_with("server-grpc.yaml")).unwrap();
    std::fs::write(
        folder.path().join("server.yaml"),
        server.contents.replace("accessPolicy", "acessPolicy"),
    )
    .unwrap();
    let deployment = files.iter().find(|f| f.path.ends_with("deployment.yaml")).unwrap();
    std::fs::write(
        folder.path().join("deployment.yaml"),
        deployment.contents.replace("replicas: 2", "replicas: two"),
    )
    .unwrap();
    let (valid, report) = validate_manifests(&[folder.path()]);
    assert!(!valid, "{report}");
    assert_eq!(report.matches("INVALID").count(), 2, "{report}");
}

/// Runs `scripts/validate-manifests.py` on files and folders: whether all objects are valid, and
/// its report.
pub(crate) fn validate_manifests(paths: &[&Path]) -> (bool, String) {
    let python = std::env::var("MESHPORT_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/validate-manifests.py");
    let output =
        Command::new(&python).arg(&script).args(paths).output().unwrap_or_else(|e| {
            panic!("could not run {python} (scripts/setup.sh installs it): {e}")
        });
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), report)
}
