//! Provisioning services' Vault objects against a real OpenBao, as meshport runs in production:
//! with a token that holds only meshport's own policy (`meshport vault policy`), never root.
//! Root is used only to play the platform operator: mounts, meshport's policy and token, and
//! tokens standing in for the services' Kubernetes logins.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use app::onboarding::{
    CertificateSpec, OnboardingRequest, OnboardingRules, SecretSource, SecretSpec, SecretValue,
    ValidRequest,
};
use app::rotation::RotationState;
use chrono::{TimeDelta, Utc};
use meshport_server::artifacts::vault_objects::PolicyMode;
use meshport_server::artifacts::{ArtifactSettings, ServiceArtifacts};
use meshport_server::config::Config;
use meshport_server::dev::{ServiceProcess, free_loopback_port_pair};
use meshport_server::vault::provision::{ChangeKind, ProvidedValues};
use meshport_server::vault::{
    SecretRetention, Vault, VaultConfig, VaultError, VaultLogin, portal_policy,
};
use nix::sys::signal::Signal;
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::artifacts::{cart, checkout};
use crate::harness::{Backend, TestDatabase, openbao};

/// A call to Vault's HTTP API as the operator (or any token): status and JSON body.
pub async fn call(
    addr: &str,
    token: &str,
    method: &str,
    path: impl std::fmt::Display,
    body: Option<Value>,
) -> (u16, Value) {
    let client = reqwest::Client::new();
    let url = format!("{addr}/v1/{path}");
    let request = match method {
        "GET" => client.get(&url),
        "LIST" => client.get(format!("{url}?list=true")),
        "DELETE" => client.delete(&url),
        "PUT" => client.put(&url),
        _ => client.post(&url),
    };
    let request = request.header("X-Vault-Token", token);
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// One test's Vault: mounts and names of its own on the shared OpenBao, meshport's policy, and
/// a client holding a token with only that policy.
pub struct Platform {
    pub addr: String,
    pub root: String,
    pub config: VaultConfig,
    pub settings: ArtifactSettings,
    /// meshport's own policy.
    pub portal_policy: String,
    pub meshport: Arc<Vault>,
    /// meshport's database, where it records who owns the policies and roles it creates.
    pub db: TestDatabase,
}

/// The change (onboarding request) every test service is provisioned for.
pub const CHANGE: uuid::Uuid = uuid::Uuid::from_u128(7);

impl Platform {
    pub async fn new() -> Self {
        Self::with_policy_mode(PolicyMode::PerService).await
    }

    /// A platform whose services get their policies as `mode` says; meshport's own policy is
    /// the one `meshport vault policy` renders for that mode.
    pub async fn with_policy_mode(mode: PolicyMode) -> Self {
        let suffix = &uuid::Uuid::new_v4().simple().to_string()[..10];
        let root_config = VaultConfig {
            kv_mount: format!("kv-{suffix}"),
            kubernetes_auth_mount: format!("k8s-{suffix}"),
            pki_mount: format!("pki-{suffix}"),
            name_prefix: format!("t{suffix}-"),
            policy_mode: mode,
            ..openbao()
        };
        let addr = root_config.addr.clone();
        let root =
            secrecy::ExposeSecret::expose_secret(root_config.token.as_ref().unwrap()).to_owned();
        Vault::new(&root_config).unwrap().ensure_mounts().await.unwrap();
        let (status, _) = call(
            &addr,
            &root,
            "POST",
            &format!("sys/mounts/{}", root_config.pki_mount),
            Some(json!({ "type": "pki", "config": { "max_lease_ttl": "87600h" } })),
        )
        .await;
        assert_eq!(status, 204);
        let (status, _) = call(
            &addr,
            &root,
            "POST",
            &format!("{}/root/generate/internal", root_config.pki_mount),
            Some(json!({ "common_name": "meshport test CA", "ttl": "8760h", "key_type": "ec" })),
        )
        .await;
        assert_eq!(status, 200);
        let pki = &root_config.pki_mount;
        let urls = json!({ "issuing_certificates": [format!("{addr}/v1/{pki}/ca")], "crl_distribution_points": [format!("{addr}/v1/{pki}/crl")] });
        let (status, body) =
            call(&addr, &root, "POST", &format!("{pki}/config/urls"), Some(urls)).await;
        assert!(status == 200 || status == 204, "{body}");

        let settings =
            Config { vault: root_config.clone(), ..Config::default() }.artifact_settings();
        let policy =
            portal_policy(&format!("meshport-{suffix}"), &settings, &["prod-app".to_owned()]);
        let (status, _) = call(
            &addr,
            &root,
            "POST",
            &format!("sys/policies/acl/{}", policy.name),
            Some(json!({ "policy": policy.to_hcl() })),
        )
        .await;
        assert_eq!(status, 204);
        let token = token_with(&addr, &root, &policy.name).await;
        let config = VaultConfig { token: Some(SecretString::from(token)), ..root_config };
        let meshport = Arc::new(Vault::new(&config).unwrap());
        let db = TestDatabase::new(Backend::Sqlite).await;
        Self { addr, root, config, settings, portal_policy: policy.name, meshport, db }
    }

    /// meshport's record of owners.
    pub fn ledger(&self) -> &meshport_server::store::Store {
        &self.db.store
    }

    /// Stages `values` as a submission of [`CHANGE`] does, then provisions as its job does.
    pub async fn stage_and_apply(
        &self,
        artifacts: &ServiceArtifacts,
        values: &ProvidedValues,
    ) -> Vec<meshport_server::vault::provision::Change> {
        self.meshport.stage_provided(CHANGE, artifacts, values).await.unwrap();
        self.meshport.apply(artifacts, self.ledger(), CHANGE, |_| {}).await.unwrap()
    }

    pub fn artifacts(&self, request: OnboardingRequest) -> ServiceArtifacts {
        let valid = ValidRequest::new(request, &OnboardingRules::default()).unwrap();
        ServiceArtifacts::build(&valid, &self.settings, Some(CHANGE))
    }

    async fn root_call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        call(&self.addr, &self.root, method, path, body).await
    }

    /// A token with `policy`, as a pod's Kubernetes login with its role would get.
    async fn service_token(&self, artifacts: &ServiceArtifacts) -> String {
        token_with(&self.addr, &self.root, &artifacts.policy.as_ref().unwrap().name).await
    }

    fn kv(&self) -> &str {
        &self.config.kv_mount
    }

    /// Points the Kubernetes auth mount at `api`, a TokenReview stand-in.
    async fn trust_kubernetes(&self, api: &str) {
        // Any CA will do for the plain-HTTP stand-in; OpenBao insists on one.
        let (_, ca) =
            self.root_call("GET", &format!("{}/cert/ca", self.config.pki_mount), None).await;
        let ca = ca["data"]["certificate"].clone();
        let config = json!({ "kubernetes_host": api, "kubernetes_ca_cert": ca, "disable_local_ca_jwt": true });
        let mount = &self.config.kubernetes_auth_mount;
        let (status, body) =
            self.root_call("POST", &format!("auth/{mount}/config"), Some(config)).await;
        assert_eq!(status, 204, "{body}");
    }

    /// Logs `jwt` in with `role` as the injected agent does: status and body.
    async fn login(&self, role: &str, jwt: &str) -> (u16, Value) {
        let mount = &self.config.kubernetes_auth_mount;
        let body = json!({ "role": role, "jwt": jwt });
        call(&self.addr, "", "POST", format!("auth/{mount}/login"), Some(body)).await
    }
}

/// A token with `policy` only: not even the `default` policy.
pub async fn token_with(addr: &str, root: &str, policy: &str) -> String {
    let (status, body) = call(
        addr,
        root,
        "POST",
        "auth/token/create",
        Some(json!({ "policies": [policy], "no_default_policy": true, "ttl": "1h" })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["auth"]["client_token"].as_str().unwrap().to_owned()
}

pub fn provided(name: &str, value: &str) -> ProvidedValues {
    BTreeMap::from([(name.to_owned(), SecretString::from(value.to_owned()))])
}

#[tokio::test]
async fn each_service_reads_only_its_own_secrets_with_meshport_holding_only_its_policy() {
    let platform = Platform::new().await;
    let vault = &platform.meshport;
    vault.preflight(true).await.unwrap();

    let cart = platform.artifacts(cart().0);
    let checkout = platform.artifacts(checkout().0);
    let made = vault.apply(&cart, platform.ledger(), CHANGE, |_| {}).await.unwrap();
    // Policy, role, the secret's metadata and first value.
    assert_eq!(made.len(), 4, "{made:#?}");
    assert!(made.iter().all(|c| c.kind == ChangeKind::Create));
    platform.stage_and_apply(&checkout, &provided("kafka_password", "typed-once")).await;

    let kv = platform.kv();
    let cart_token = platform.service_token(&cart).await;
    let as_cart = |method, path: String| call(&platform.addr, &cart_token, method, path, None);
    let (status, body) = as_cart("GET", format!("{kv}/data/prod-app/cart/valkey_password")).await;
    assert_eq!(status, 200);
    let generated = body["data"]["data"]["valkey_password"].as_str().unwrap();
    assert_eq!(generated.len(), 32, "the requested length");
    assert!(generated.bytes().all(|b| b.is_ascii_alphanumeric()));
    assert_eq!(as_cart("GET", format!("{kv}/data/prod-app/checkout/kafka_password")).await.0, 403);
    assert_eq!(
        as_cart("LIST", format!("{kv}/metadata/prod-app/")).await.0,
        403,
        "no listing of other services"
    );
    assert_eq!(
        as_cart("LIST", format!("{kv}/metadata/prod-app/cart/")).await.0,
        403,
        "not even its own metadata: the injected agent reads `data/` only"
    );
    assert_eq!(as_cart("GET", "sys/mounts".to_owned()).await.0, 403);
    assert_eq!(as_cart("LIST", "sys/policies/acl".to_owned()).await.0, 403);
    assert_eq!(
        as_cart("POST", format!("{kv}/data/prod-app/cart/valkey_password")).await.0,
        403,
        "read only"
    );

    // The provided value went to Vault as typed; checkout's token reads it.
    let checkout_token = platform.service_token(&checkout).await;
    let (status, body) = call(
        &platform.addr,
        &checkout_token,
        "GET",
        &format!("{kv}/data/prod-app/checkout/kafka_password"),
        None,
    )
    .await;
    assert_eq!(
        (status, body["data"]["data"]["kafka_password"].as_str()),
        (200, Some("typed-once"))
    );

    // meshport itself writes values but never reads them, and has no reach outside its scope.
    let meshport_token =
        secrecy::ExposeSecret::expose_secret(platform.config.token.as_ref().unwrap()).to_owned();
    let as_meshport =
        |method, path: String| call(&platform.addr, &meshport_token, method, path, None);
    assert_eq!(as_meshport("GET", format!("{kv}/data/prod-app/cart/valkey_password")).await.0, 403);
    assert_eq!(as_meshport("GET", "sys/policies/acl/root".to_owned()).await.0, 403);
    assert_eq!(as_meshport("GET", format!("{kv}/metadata/other-ns/x")).await.0, 403);
    assert_eq!(as_meshport("GET", "sys/mounts".to_owned()).await.0, 403);

    // The role reads back as specified.
    let (status, role) = platform
        .root_call("GET", &format!("auth/{}/role/{}", cart.role.mount, cart.role.name), None)
        .await;
    assert_eq!(status, 200);
    let role = &role["data"];
    assert_eq!(role["bound_service_account_names"], json!(["cart"]));
    assert_eq!(role["bound_service_account_namespaces"], json!(["prod-app"]));
    assert_eq!(role["token_policies"], json!([cart.policy.as_ref().unwrap().name]));
    assert_eq!(
        (role["token_ttl"].as_u64(), role["token_max_ttl"].as_u64()),
        (Some(3600), Some(14400))
    );
    // The PKI role issues only the service's cluster names.
    let pki_role = checkout.pki_role.as_ref().unwrap();
    let (_, read) = platform
        .root_call("GET", &format!("{}/roles/{}", pki_role.mount, pki_role.name), None)
        .await;
    assert_eq!(read["data"]["allowed_domains"], json!(pki_role.allowed_domains));
    assert_eq!(read["data"]["allow_subdomains"], json!(false));

    // Applying again changes nothing, and the secret keeps its first value.
    assert_eq!(vault.plan(&cart, platform.ledger(), CHANGE).await.unwrap(), vec![]);
    assert_eq!(vault.apply(&cart, platform.ledger(), CHANGE, |_| {}).await.unwrap(), vec![]);
    // A value typed again does not replace the first: it only leaves the staging folder.
    let again = platform.stage_and_apply(&checkout, &provided("kafka_password", "other")).await;
    let summary: Vec<(&str, &ChangeKind)> =
        again.iter().map(|c| (c.path.as_str(), &c.kind)).collect();
    let staged = format!("{kv}/metadata/meshport-staging/{CHANGE}/kafka_password");
    assert_eq!(summary, [(staged.as_str(), &ChangeKind::Destroy)]);
    assert_eq!(vault.apply(&checkout, platform.ledger(), CHANGE, |_| {}).await.unwrap(), vec![]);
    let (_, body) = call(
        &platform.addr,
        &checkout_token,
        "GET",
        format!("{kv}/data/prod-app/checkout/kafka_password"),
        None,
    )
    .await;
    assert_eq!(body["data"]["data"]["kafka_password"], "typed-once");
    let (_, body) = as_cart("GET", format!("{kv}/data/prod-app/cart/valkey_password")).await;
    assert_eq!(body["data"]["metadata"]["version"], 1);
}

#[tokio::test]
async fn drift_is_reported_field_by_field_and_apply_repairs_it() {
    let platform = Platform::new().await;
    let vault = &platform.meshport;
    let cart = platform.artifacts(cart().0);
    vault.apply(&cart, platform.ledger(), CHANGE, |_| {}).await.unwrap();

    // Someone widens the policy and changes the role's TTL by hand.
    let policy_path = format!("sys/policies/acl/{}", cart.policy.as_ref().unwrap().name);
    let wide = format!(
        "{}\npath \"{}/data/*\" {{ capabilities = [\"read\"] }}\n",
        cart.policy.as_ref().unwrap().to_hcl(),
        platform.kv()
    );
    platform.root_call("POST", &policy_path, Some(json!({ "policy": wide }))).await;
    let role_path = format!("auth/{}/role/{}", cart.role.mount, cart.role.name);
    let mut edited = serde_json::to_value(&cart.role).unwrap();
    edited["token_ttl"] = json!(9999);
    edited["audience"] = json!("added-by-hand");
    assert_eq!(platform.root_call("POST", &role_path, Some(edited)).await.0, 204);

    let drift = vault.plan(&cart, platform.ledger(), CHANGE).await.unwrap();
    let summary: Vec<(&str, &ChangeKind)> =
        drift.iter().map(|c| (c.path.as_str(), &c.kind)).collect();
    assert_eq!(
        summary,
        vec![
            (policy_path.as_str(), &ChangeKind::Update { fields: vec!["policy".into()] }),
            (
                role_path.as_str(),
                &ChangeKind::Update { fields: vec!["audience".into(), "token_ttl".into()] }
            ),
        ]
    );
    vault.apply(&cart, platform.ledger(), CHANGE, |_| {}).await.unwrap();
    assert_eq!(vault.plan(&cart, platform.ledger(), CHANGE).await.unwrap(), vec![]);
    let (_, role) = platform.root_call("GET", &role_path, None).await;
    assert_eq!(role["data"]["token_ttl"], 3600);
}

#[tokio::test]
async fn offboarding_deletes_role_and_policy_and_keeps_or_destroys_secrets() {
    let platform = Platform::new().await;
    let cart = platform.artifacts(cart().0);
    let checkout = platform.artifacts(checkout().0);
    let vault = &platform.meshport;
    vault.apply(&cart, platform.ledger(), CHANGE, |_| {}).await.unwrap();
    platform.stage_and_apply(&checkout, &provided("kafka_password", "typed-once")).await;

    let removed = vault.remove(&cart, platform.ledger()).await.unwrap();
    assert_eq!(removed.len(), 3, "{removed:?}");
    assert_eq!(
        vault.remove(&cart, platform.ledger()).await.unwrap(),
        Vec::<String>::new(),
        "nothing more the second time"
    );
    let role_path = format!("auth/{}/role/{}", cart.role.mount, cart.role.name);
    assert_eq!(platform.root_call("GET", &role_path, None).await.0, 404);
    assert_eq!(
        platform
            .root_call(
                "GET",
                &format!("sys/policies/acl/{}", cart.policy.as_ref().unwrap().name),
                None
            )
            .await
            .0,
        404
    );
    // Kept by default, marked, still holding its value.
    let (_, metadata) = platform.root_call("GET", &cart.secrets[0].metadata_path(), None).await;
    assert!(metadata["data"]["custom_metadata"]["offboarded_at"].is_string());
    assert_eq!(metadata["data"]["current_version"], 1);
    // checkout is untouched.
    assert_eq!(vault.plan(&checkout, platform.ledger(), CHANGE).await.unwrap(), vec![]);

    // With `destroy`, every version goes.
    let destroying = Vault::new(&VaultConfig {
        offboard_secrets: SecretRetention::Destroy,
        ..platform.config.clone()
    })
    .unwrap();
    destroying.remove(&checkout, platform.ledger()).await.unwrap();
    assert_eq!(platform.root_call("GET", &checkout.secrets[0].metadata_path(), None).await.0, 404);
    let pki_role = checkout.pki_role.as_ref().unwrap();
    assert_eq!(
        platform
            .root_call("GET", &format!("{}/roles/{}", pki_role.mount, pki_role.name), None)
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn preflight_names_the_missing_mount_and_the_command_that_creates_it() {
    let platform = Platform::new().await;
    for (field, broken) in [
        ("kv_mount", VaultConfig { kv_mount: "no-such-kv".into(), ..platform.config.clone() }),
        (
            "kubernetes_auth_mount",
            VaultConfig { kubernetes_auth_mount: "no-such-auth".into(), ..platform.config.clone() },
        ),
        ("pki_mount", VaultConfig { pki_mount: "no-such-pki".into(), ..platform.config.clone() }),
    ] {
        let error = Vault::new(&broken).unwrap().preflight(true).await.unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, VaultError::MissingMount { .. }), "{field}: {message}");
        assert!(message.contains("no-such-") && message.contains("bao "), "{field}: {message}");
    }
    // A KV version 1 engine is not a KV v2 one.
    let v1 = format!("kv1-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    platform
        .root_call(
            "POST",
            &format!("sys/mounts/{v1}"),
            Some(json!({ "type": "kv", "options": { "version": "1" } })),
        )
        .await;
    let error = Vault::new(&VaultConfig { kv_mount: v1.clone(), ..openbao() })
        .unwrap()
        .preflight(false)
        .await
        .unwrap_err();
    assert!(error.to_string().contains(&format!("bao secrets enable -path={v1} kv-v2")), "{error}");
}

#[tokio::test]
async fn secret_status_follows_the_rotation_period_and_rotation_writes_a_version_and_an_audit_event()
 {
    let platform = Platform::new().await;
    let vault = &platform.meshport;
    let cart = platform.artifacts(cart().0); // rotation every 30 days (the default)
    let checkout = platform.artifacts(checkout().0); // 14 days, a provided secret
    vault.apply(&cart, platform.ledger(), CHANGE, |_| {}).await.unwrap();
    platform.stage_and_apply(&checkout, &provided("kafka_password", "typed-once")).await;

    let namespaces = ["prod-app".to_owned()];
    let now = Utc::now();
    let states = |statuses: Vec<meshport_server::vault::rotation_status::SecretStatus>| {
        statuses.into_iter().map(|s| (s.path, s.judgement.state)).collect::<Vec<_>>()
    };
    let at = |days| vault.secret_statuses(&namespaces, now + TimeDelta::days(days));
    assert_eq!(
        states(at(0).await.unwrap()),
        [
            ("prod-app/cart/valkey_password".to_owned(), RotationState::Ok),
            ("prod-app/checkout/kafka_password".to_owned(), RotationState::Ok)
        ]
    );
    assert_eq!(
        states(at(12).await.unwrap())[1].1,
        RotationState::DueSoon,
        "14-day period, 2 days left"
    );
    let later = at(31).await.unwrap();
    assert_eq!(later[0].judgement.state, RotationState::Overdue);
    assert!(
        later[0].judgement.reason.contains("the period is 30 days"),
        "{}",
        later[0].judgement.reason
    );
    assert_eq!((later[0].current_version, later[0].source.as_deref()), (1, Some("generated")));

    // Rotation: a new version, recorded; the status is OK again.
    let db = TestDatabase::new(Backend::Sqlite).await;
    let actor = meshport_server::audit::Actor::system();
    let path = "prod-app/cart/valkey_password";
    let version = meshport_server::rotation::rotate_secret(vault, &db.store, actor.clone(), path)
        .await
        .unwrap();
    assert_eq!(version, 2);
    let cart_token = platform.service_token(&cart).await;
    let (_, body) =
        call(&platform.addr, &cart_token, "GET", &format!("{}/data/{path}", platform.kv()), None)
            .await;
    assert_eq!(body["data"]["metadata"]["version"], 2);
    let status = &vault
        .secret_statuses(&["prod-app/cart".to_owned()], now + TimeDelta::days(31))
        .await
        .unwrap()[0];
    assert_eq!((status.current_version, status.versions), (2, 2));
    assert_eq!(
        status.judgement.state,
        RotationState::Overdue,
        "31 days ahead, measured from the new version"
    );
    let fresh = &vault.secret_statuses(&["prod-app/cart".to_owned()], Utc::now()).await.unwrap()[0];
    assert_eq!(fresh.judgement.state, RotationState::Ok);

    // A provided secret is its owner's to rotate.
    let refused = meshport_server::rotation::rotate_secret(
        vault,
        &db.store,
        actor,
        "prod-app/checkout/kafka_password",
    )
    .await;
    assert!(refused.unwrap_err().to_string().contains("only the secrets it generated"));

    let events = crate::audit::exported(
        &db.store,
        Default::default(),
        meshport_server::audit::export::Format::Jsonl,
    )
    .await;
    let rotations: Vec<(String, Value)> = String::from_utf8(events)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|e| e["action"] == "secret_rotated")
        .map(|e| {
            let details = match &e["details"] {
                Value::String(text) => serde_json::from_str(text).unwrap(),
                other => other.clone(),
            };
            (e["outcome"].as_str().unwrap().to_owned(), details["version"].clone())
        })
        .collect();
    assert_eq!(rotations, [("success".to_owned(), json!(2)), ("failure".to_owned(), Value::Null)]);
}

#[tokio::test]
async fn pki_certificates_turn_due_soon_then_expired_as_time_passes() {
    let platform = Platform::new().await;
    let mut request = checkout().0;
    request.certificate = Some(CertificateSpec { ttl_hours: 1 });
    let checkout = platform.artifacts(request);
    platform.stage_and_apply(&checkout, &provided("kafka_password", "typed-once")).await;

    // The service issues its certificate with its own policy, as the Vault Agent would.
    let token = platform.service_token(&checkout).await;
    let issue = checkout.pki_role.as_ref().unwrap().issue_path();
    let (status, issued) = call(
        &platform.addr,
        &token,
        "POST",
        &issue,
        Some(json!({ "common_name": "checkout.prod-app.svc", "ttl": "1h" })),
    )
    .await;
    assert_eq!(status, 200, "{issued}");
    let (status, _) = call(
        &platform.addr,
        &token,
        "POST",
        &issue,
        Some(json!({ "common_name": "payment.prod-app.svc" })),
    )
    .await;
    assert_eq!(status, 400, "another service's name is refused");
    let serial = issued["data"]["serial_number"].as_str().unwrap();

    let now = Utc::now();
    let state_at = |minutes| {
        let vault = platform.meshport.clone();
        let serial = serial.to_owned();
        async move {
            let certificates =
                vault.pki_certificates(now + TimeDelta::minutes(minutes)).await.unwrap();
            let ours = certificates.iter().find(|c| c.serial == serial).expect("listed").clone();
            (ours.judgement.state, certificates)
        }
    };
    let (state, certificates) = state_at(0).await;
    assert_eq!(state, RotationState::Ok);
    let ours = certificates.iter().find(|c| c.serial == serial).unwrap();
    assert_eq!(ours.common_name, "checkout.prod-app.svc");
    assert!(ours.dns_names.contains(&"checkout.prod-app.svc".to_owned()));
    assert!(!ours.is_ca);
    assert!(certificates.iter().any(|c| c.is_ca), "the engine's CA is listed too");
    assert_eq!(state_at(45).await.0, RotationState::DueSoon);
    assert_eq!(state_at(61).await.0, RotationState::Expired);

    let (status, _) = platform
        .root_call(
            "POST",
            &format!("{}/revoke", platform.config.pki_mount),
            Some(json!({ "serial_number": serial })),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(state_at(0).await.0, RotationState::Failing, "revoked");
}

#[tokio::test]
async fn approle_login_is_renewed_and_repeated_before_the_token_expires() {
    let platform = Platform::new().await;
    let mount = format!("approle-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    platform
        .root_call("POST", &format!("sys/auth/{mount}"), Some(json!({ "type": "approle" })))
        .await;
    let meshport_policy = &platform.portal_policy;
    // Tokens live 3 s, at most 5 s: renewals, then a new login, within the test.
    let (status, _) = platform.root_call("POST", &format!("auth/{mount}/role/meshport"), Some(json!({ "token_policies": [meshport_policy], "token_ttl": "3s", "token_max_ttl": "5s" }))).await;
    assert_eq!(status, 204);
    let (_, role_id) =
        platform.root_call("GET", &format!("auth/{mount}/role/meshport/role-id"), None).await;
    let (_, secret_id) =
        platform.root_call("POST", &format!("auth/{mount}/role/meshport/secret-id"), None).await;
    let config = VaultConfig {
        token: None,
        login: VaultLogin::AppRole {
            mount,
            role_id: role_id["data"]["role_id"].as_str().unwrap().to_owned(),
            secret_id: SecretString::from(
                secret_id["data"]["secret_id"].as_str().unwrap().to_owned(),
            ),
        },
        ..platform.config.clone()
    };
    let kept = Vault::connect(&config).await.unwrap();
    let lease = kept.login().await.unwrap();
    assert!(lease.renewable && lease.ttl <= Duration::from_secs(3));
    kept.keep_logged_in(Some(lease));
    let lapsed = Vault::connect(&config).await.unwrap();
    kept.preflight(true).await.unwrap();

    tokio::time::sleep(Duration::from_secs(8)).await;
    kept.health().await.expect("renewed, then logged in again after the maximum lifetime");
    kept.preflight(true).await.unwrap();
    assert!(lapsed.health().await.is_err(), "without renewal the token has expired");
}

/// An OpenBao with on-disk storage that survives restarts (the dev server forgets everything).
pub struct PersistentOpenBao {
    folder: tempfile::TempDir,
    port: u16,
    process: Option<ServiceProcess>,
    unseal_key: String,
    pub root_token: String,
}

impl PersistentOpenBao {
    pub async fn start() -> Self {
        let folder = tempfile::tempdir().unwrap();
        let port = free_loopback_port_pair().unwrap();
        // Integrated storage: OpenBao has no file storage.
        let data = folder.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let config = format!(
            "storage \"raft\" {{\n  path = \"{data}\"\n  node_id = \"test\"\n}}\n\
             listener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  cluster_address = \"127.0.0.1:{cluster}\"\n  tls_disable = true\n}}\n\
             api_addr = \"http://127.0.0.1:{port}\"\ncluster_addr = \"http://127.0.0.1:{cluster}\"\n",
            data = data.display(),
            cluster = port + 1,
        );
        std::fs::write(folder.path().join("config.hcl"), config).unwrap();
        let mut bao = Self {
            folder,
            port,
            process: None,
            unseal_key: String::new(),
            root_token: String::new(),
        };
        bao.run().await;
        let (status, init) = call(
            &bao.addr(),
            "",
            "PUT",
            "sys/init",
            Some(json!({ "secret_shares": 1, "secret_threshold": 1 })),
        )
        .await;
        assert_eq!(status, 200, "{init}");
        bao.unseal_key = init["keys_base64"][0].as_str().unwrap().to_owned();
        bao.root_token = init["root_token"].as_str().unwrap().to_owned();
        bao.unseal().await;
        bao
    }

    pub fn addr(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub async fn run(&mut self) {
        let bin = std::env::var_os("MESHPORT_DEV__BAO_BIN").unwrap_or_else(|| "bao".into());
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(self.folder.path().join("bao.log"))
            .unwrap();
        let mut command = std::process::Command::new(bin);
        command
            .arg("server")
            .arg(format!("-config={}", self.folder.path().join("config.hcl").display()))
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        self.process = Some(ServiceProcess::spawn("openbao", command, Signal::SIGTERM).unwrap());
        for _ in 0..100 {
            if reqwest::get(format!("{}/v1/sys/seal-status", self.addr())).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("OpenBao did not start");
    }

    pub async fn unseal(&self) {
        let (status, body) =
            call(&self.addr(), "", "PUT", "sys/unseal", Some(json!({ "key": self.unseal_key })))
                .await;
        assert_eq!((status, body["sealed"].as_bool()), (200, Some(false)), "{body}");
        // Wait until the mounts answer (the node becomes active after unsealing).
        for _ in 0..100 {
            if call(&self.addr(), &self.root_token, "GET", "sys/mounts", None).await.0 == 200 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("OpenBao did not become active");
    }

    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.stop(Duration::ZERO);
        }
    }
}

impl Drop for PersistentOpenBao {
    fn drop(&mut self) {
        self.kill();
    }
}

#[tokio::test]
async fn openbao_stopped_mid_apply_gives_a_retryable_error_and_a_rerun_finishes_without_duplicates()
{
    let bao = Mutex::new(PersistentOpenBao::start().await);
    let config = {
        let bao = bao.lock().unwrap();
        VaultConfig {
            addr: bao.addr(),
            token: Some(SecretString::from(bao.root_token.clone())),
            ..VaultConfig::default()
        }
    };
    let vault = Vault::new(&config).unwrap();
    vault.ensure_mounts().await.unwrap();
    let db = TestDatabase::new(Backend::Sqlite).await;
    let settings = Config { vault: config.clone(), ..Config::default() }.artifact_settings();
    let (request, _) = cart();
    let valid = ValidRequest::new(request, &OnboardingRules::default()).unwrap();
    let cart = ServiceArtifacts::build(&valid, &settings, None);

    // OpenBao dies right after the first write.
    let error =
        vault.apply(&cart, &db.store, CHANGE, |_| bao.lock().unwrap().kill()).await.unwrap_err();
    assert!(error.is_retryable(), "{error}");
    assert_eq!(error.applied.len(), 1, "{error}");
    assert!(matches!(error.source, VaultError::Unreachable { .. }), "{error}");
    assert!(
        error.to_string().contains(&format!("auth/kubernetes/role/{}", cart.role.name)),
        "{error}"
    );

    // Restarted (and unsealed), the same apply finishes what was left.
    let mut bao = bao.into_inner().unwrap();
    bao.run().await;
    bao.unseal().await;
    let rest = vault.apply(&cart, &db.store, CHANGE, |_| {}).await.unwrap();
    assert_eq!(rest.len(), 3, "role, metadata and value; the policy was written before: {rest:#?}");
    assert_eq!(vault.plan(&cart, &db.store, CHANGE).await.unwrap(), vec![]);
    let (_, metadata) =
        call(&config.addr, &bao.root_token, "GET", &cart.secrets[0].metadata_path(), None).await;
    assert_eq!(metadata["data"]["current_version"], 1, "one value, written once");
}

#[tokio::test]
async fn a_provided_secret_value_reaches_no_log_line_and_no_database_row() {
    use app::request_api::ssr::RequestService;
    use meshport_server::request_service::Requests;

    const VALUE: &str = "pr0vided-S3CRET-value-7f3a9c";
    let logs = Arc::new(Mutex::new(Vec::<u8>::new()));
    let writer = {
        let logs = logs.clone();
        move || CapturedLog(logs.clone())
    };
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(writer)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    // Callsites another test's thread hit first may still cache "no interest"; other tests run
    // side by side, so ask every callsite again now that this thread has a subscriber.
    tracing::callsite::rebuild_interest_cache();

    let platform = Platform::new().await;
    let db = TestDatabase::new(Backend::Sqlite).await;
    let (_, dana) =
        crate::harness::person(&db.store, "dana", &[app::access::Role::Developer]).await;
    let dana = app::access::Principal { teams: ["checkout".to_owned()].into(), ..dana };
    let mut request = checkout().0;
    request.secrets = vec![SecretSpec {
        name: "kafka_password".into(),
        source: SecretSource::Provided { value: SecretValue::new(VALUE) },
    }];
    let requests = Requests {
        store: db.store.clone(),
        rules: OnboardingRules::default(),
        vault: platform.meshport.clone(),
        settings: platform.settings.clone(),
        gitops: None,
        notifications: Default::default(),
    };
    // Submission stages the value in Vault, away from the service's path; provisioning adds
    // metadata, policy and role and moves the value into place.
    let id: uuid::Uuid = requests.submit(&dana, request.clone()).await.unwrap().parse().unwrap();
    let artifacts = platform.artifacts(request);
    let live = artifacts.secrets[0].data_path();
    assert_eq!(platform.root_call("GET", &live, None).await.0, 404, "not live before approval");
    let made = platform.meshport.apply(&artifacts, platform.ledger(), id, |_| {}).await.unwrap();
    assert!(made.iter().any(|c| c.path == live), "moved into place: {made:#?}");
    let staged = format!("{}/metadata/meshport-staging/{id}/kafka_password", platform.kv());
    assert_eq!(platform.root_call("GET", &staged, None).await.0, 404, "staging destroyed");
    tracing::info!(?made, ?artifacts, "everything a careless log line could print");

    let token = platform.service_token(&artifacts).await;
    let (_, body) = call(
        &platform.addr,
        &token,
        "GET",
        &format!("{}/data/prod-app/checkout/kafka_password", platform.kv()),
        None,
    )
    .await;
    assert_eq!(body["data"]["data"]["kafka_password"], VALUE, "it did reach Vault");

    let logs = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("vault object written"), "the capture works: {logs}");
    assert!(!logs.contains(VALUE), "the value is in a log line");
    db.store.close().await;
    for entry in std::fs::read_dir(db.folder().unwrap()).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !bytes.windows(VALUE.len()).any(|w| w == VALUE.as_bytes()),
            "the value is in {}",
            path.display()
        );
    }
}

/// A log writer into a shared buffer.
struct CapturedLog(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLog {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A stand-in for the Kubernetes API's TokenReview (no API server runs here): it answers for
/// the service-account tokens the test registered and refuses every other token.
async fn token_review_contract_server(tokens: Vec<(String, &'static str, &'static str)>) -> String {
    use axum::{Json, Router, routing::post};
    let tokens = Arc::new(tokens);
    let review = move |body: bytes::Bytes| {
        let tokens = tokens.clone();
        async move {
            let review: Value = serde_json::from_slice(&body).unwrap_or_default();
            let token = review["spec"]["token"].as_str().unwrap_or_default();
            // As the API server does: the token must carry one of the audiences asked about,
            // by default the API server's own; the answer names those it matched.
            let asked: Vec<String> = review["spec"]["audiences"]
                .as_array()
                .filter(|a| !a.is_empty())
                .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
                .unwrap_or_else(|| vec![API_SERVER_AUDIENCE.to_owned()]);
            let carried = token_audiences(token);
            let matched: Vec<&String> = asked.iter().filter(|a| carried.contains(a)).collect();
            let status = match tokens.iter().find(|(t, _, _)| t == token) {
                Some(_) if matched.is_empty() => json!({
                    "authenticated": false,
                    "error": "token audiences are invalid for the target audiences",
                }),
                Some((_, namespace, name)) => json!({
                    "authenticated": true,
                    "audiences": matched,
                    "user": {
                        "username": format!("system:serviceaccount:{namespace}:{name}"),
                        "uid": format!("uid-{namespace}-{name}"),
                        "groups": ["system:serviceaccounts", format!("system:serviceaccounts:{namespace}")],
                    },
                }),
                None => json!({ "authenticated": false, "error": "invalid bearer token" }),
            };
            Json(
                json!({ "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "status": status }),
            )
        }
    };
    let app = Router::new().route("/apis/authentication.k8s.io/v1/tokenreviews", post(review));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// The audience of a pod's default service-account token.
const API_SERVER_AUDIENCE: &str = "https://kubernetes.default.svc";

/// The `aud` claim of a token made by [`service_account_jwt_for`].
fn token_audiences(jwt: &str) -> Vec<String> {
    use base64::Engine;
    let claims = jwt.split('.').nth(1).unwrap_or_default();
    let claims: Value = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(claims)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    claims["aud"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str().map(str::to_owned))
        .collect()
}

/// A pod's default service-account token (audience: the API server).
fn service_account_jwt(namespace: &str, name: &str) -> String {
    service_account_jwt_for(namespace, name, API_SERVER_AUDIENCE)
}

/// A service-account token as Kubernetes projects it, for `audience` (claims only; the
/// signature is the API server's to check, through the TokenReview).
fn service_account_jwt_for(namespace: &str, name: &str, audience: &str) -> String {
    use base64::Engine;
    let encode =
        |value: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string());
    let now = Utc::now().timestamp();
    let header = encode(json!({ "alg": "RS256", "kid": "test" }));
    let claims = encode(json!({
        "aud": [audience],
        "exp": now + 3600, "iat": now, "nbf": now,
        "iss": "https://kubernetes.default.svc.cluster.local",
        "sub": format!("system:serviceaccount:{namespace}:{name}"),
        "kubernetes.io": { "namespace": namespace, "serviceaccount": { "name": name, "uid": format!("uid-{namespace}-{name}") } },
    }));
    format!("{header}.{claims}.c2lnbmF0dXJl")
}

#[tokio::test]
async fn contract_kubernetes_logins_bind_each_role_to_its_service_account() {
    let platform = Platform::new().await;
    let cart_jwt = service_account_jwt("prod-app", "cart");
    let checkout_jwt = service_account_jwt("prod-app", "checkout");
    let meshport_jwt = service_account_jwt("meshport", "meshport");
    let api = token_review_contract_server(vec![
        (cart_jwt.clone(), "prod-app", "cart"),
        (checkout_jwt.clone(), "prod-app", "checkout"),
        (meshport_jwt.clone(), "meshport", "meshport"),
    ])
    .await;
    let mount = platform.config.kubernetes_auth_mount.clone();
    platform.trust_kubernetes(&api).await;

    let cart = platform.artifacts(cart().0);
    platform.meshport.apply(&cart, platform.ledger(), CHANGE, |_| {}).await.unwrap();
    let login = |jwt: String| {
        let (addr, mount, role) = (platform.addr.clone(), mount.clone(), cart.role.name.clone());
        async move {
            call(
                &addr,
                "",
                "POST",
                format!("auth/{mount}/login"),
                Some(json!({ "role": role, "jwt": jwt })),
            )
            .await
        }
    };
    // The cart pod logs in with its role and reads its secret, as the Vault Agent does.
    let (status, body) = login(cart_jwt).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["auth"]["token_policies"],
        json!(["default", cart.policy.as_ref().unwrap().name])
    );
    let token = body["auth"]["client_token"].as_str().unwrap().to_owned();
    let (status, _) = call(
        &platform.addr,
        &token,
        "GET",
        format!("{}/data/prod-app/cart/valkey_password", platform.kv()),
        None,
    )
    .await;
    assert_eq!(status, 200);
    // Another service's account may not use cart's role; an unknown token is refused.
    assert_eq!(login(checkout_jwt).await.0, 403);
    assert_eq!(login(service_account_jwt("prod-app", "intruder")).await.0, 403);

    // meshport itself logs in the same way, from its projected token file.
    let role = format!("meshport-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let (status, _) = platform.root_call("POST", &format!("auth/{mount}/role/{role}"), Some(json!({ "bound_service_account_names": ["meshport"], "bound_service_account_namespaces": ["meshport"], "token_policies": [platform.portal_policy], "token_ttl": 600 }))).await;
    assert_eq!(status, 204);
    let folder = tempfile::tempdir().unwrap();
    let jwt_path = folder.path().join("token");
    std::fs::write(&jwt_path, format!("{meshport_jwt}\n")).unwrap();
    let config = VaultConfig {
        token: None,
        login: VaultLogin::Kubernetes { mount, role, jwt_path },
        ..platform.config.clone()
    };
    let meshport = Vault::connect(&config).await.unwrap();
    meshport.preflight(true).await.unwrap();
    assert_eq!(
        meshport.plan(&cart, platform.ledger(), CHANGE).await.unwrap(),
        vec![],
        "it sees what it made"
    );
}

#[tokio::test]
async fn vault_over_tls_is_trusted_through_the_configured_ca_only() {
    let folder = tempfile::tempdir().unwrap();
    let port = free_loopback_port_pair().unwrap();
    let bin = std::env::var_os("MESHPORT_DEV__BAO_BIN").unwrap_or_else(|| "bao".into());
    let mut command = std::process::Command::new(bin);
    command
        .args(["server", "-dev", "-dev-tls", "-dev-root-token-id=tls-root"])
        .arg(format!("-dev-tls-cert-dir={}", folder.path().display()))
        .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let _bao = ServiceProcess::spawn("openbao-tls", command, Signal::SIGTERM).unwrap();
    let ca = folder.path().join("vault-ca.pem");
    let config = VaultConfig {
        addr: format!("https://127.0.0.1:{port}"),
        token: Some(SecretString::from("tls-root".to_owned())),
        ca_cert: Some(ca.clone()),
        ..VaultConfig::default()
    };
    let mut answered = false;
    for _ in 0..100 {
        if ca.exists() && Vault::new(&config).unwrap().health().await.is_ok() {
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(answered, "OpenBao answers over TLS with its CA configured");
    let untrusted = Vault::new(&VaultConfig { ca_cert: None, ..config }).unwrap();
    assert!(untrusted.health().await.is_err(), "the system roots do not trust a private CA");
}

/// The injected agent logs in with the pod's default ServiceAccount token, whose audience is the
/// API server's: a role without an audience admits it. A role bound to an audience refuses it,
/// and admits the projected token of that audience the generated Deployment then mounts (the
/// TokenReview stand-in checks audiences as the API server does).
#[tokio::test]
async fn contract_the_agent_logs_in_with_the_default_token_or_the_projected_one_of_the_audience() {
    let platform = Platform::new().await;
    let cart_jwt = service_account_jwt("prod-app", "cart");
    let cart_vault_jwt = service_account_jwt_for("prod-app", "cart", "vault");
    let api = token_review_contract_server(vec![
        (cart_jwt.clone(), "prod-app", "cart"),
        (cart_vault_jwt.clone(), "prod-app", "cart"),
    ])
    .await;
    platform.trust_kubernetes(&api).await;

    let plain = platform.artifacts(cart().0);
    assert_eq!(plain.role.audience, None, "no audience by default");
    platform.meshport.apply(&plain, platform.ledger(), CHANGE, |_| {}).await.unwrap();
    let (status, body) = platform.login(&plain.role.name, &cart_jwt).await;
    assert_eq!(status, 200, "the pod's own token logs in: {body}");

    let mut settings = platform.settings.clone();
    settings.audience = Some("vault".to_owned());
    let valid = ValidRequest::new(cart().0, &OnboardingRules::default()).unwrap();
    let bound = ServiceArtifacts::build(&valid, &settings, Some(uuid::Uuid::from_u128(8)));
    platform.meshport.apply(&bound, platform.ledger(), CHANGE, |_| {}).await.unwrap();
    let (status, _) = platform.login(&bound.role.name, &cart_jwt).await;
    assert_eq!(status, 403, "a role with an audience refuses the default token");
    let (status, body) = platform.login(&bound.role.name, &cart_vault_jwt).await;
    assert_eq!(status, 200, "the projected token of the audience logs in: {body}");
}

/// Templated mode: no per-service policy exists; one ACL-templated policy, keyed on the
/// Kubernetes-auth alias metadata, lets each workload read only its own secrets; and meshport's
/// own token can write no policy and no role outside its limits (each a 403 from OpenBao).
#[tokio::test]
async fn templated_policies_keep_workloads_apart_and_meshport_cannot_escalate() {
    let platform = Platform::with_policy_mode(PolicyMode::Templated).await;
    let (cart_jwt, checkout_jwt) =
        (service_account_jwt("prod-app", "cart"), service_account_jwt("prod-app", "checkout"));
    let api = token_review_contract_server(vec![
        (cart_jwt.clone(), "prod-app", "cart"),
        (checkout_jwt.clone(), "prod-app", "checkout"),
    ])
    .await;
    platform.trust_kubernetes(&api).await;
    let mount = &platform.config.kubernetes_auth_mount;
    let (_, auths) = platform.root_call("GET", "sys/auth", None).await;
    let accessor = auths["data"][format!("{mount}/")]["accessor"].as_str().unwrap().to_owned();
    let workloads = meshport_server::artifacts::workload_policy(&platform.settings, &accessor);
    let (status, _) = platform
        .root_call(
            "POST",
            &format!("sys/policies/acl/{}", workloads.name),
            Some(json!({ "policy": workloads.to_hcl() })),
        )
        .await;
    assert_eq!(status, 204);

    let cart = platform.artifacts(cart().0);
    let checkout_request = OnboardingRequest {
        service: "checkout".into(),
        secrets: vec![SecretSpec {
            name: "kafka_password".into(),
            source: SecretSource::Generate { length: 24, alphabet: app::onboarding::Alphabet::Hex },
        }],
        certificate: None,
        ..checkout().0
    };
    let checkout = platform.artifacts(checkout_request);
    assert!(cart.policy.is_none() && checkout.policy.is_none(), "no policy per service");
    assert_eq!(cart.role.token_policies, [workloads.name.clone()]);
    for service in [&cart, &checkout] {
        platform.meshport.apply(service, platform.ledger(), CHANGE, |_| {}).await.unwrap();
    }
    let (status, body) = platform.login(&cart.role.name, &cart_jwt).await;
    assert_eq!(status, 200, "{body}");
    let token = body["auth"]["client_token"].as_str().unwrap().to_owned();
    let read = |path: String| {
        let (addr, token) = (platform.addr.clone(), token.clone());
        async move { call(&addr, &token, "GET", path, None).await.0 }
    };
    assert_eq!(read(format!("{}/data/prod-app/cart/valkey_password", platform.kv())).await, 200);
    assert_eq!(read(format!("{}/data/prod-app/checkout/kafka_password", platform.kv())).await, 403);
    assert_eq!(
        read(format!("{}/metadata/prod-app/cart/valkey_password", platform.kv())).await,
        403
    );

    // meshport's own token, limited by its templated-mode policy.
    let meshport_token =
        secrecy::ExposeSecret::expose_secret(platform.config.token.as_ref().unwrap()).to_owned();
    let as_meshport = |path: String, body: Value| {
        let (addr, token) = (platform.addr.clone(), meshport_token.clone());
        async move { call(&addr, &token, "POST", path, Some(body)).await }
    };
    let prefix = &platform.settings.name_prefix;
    for name in [format!("{prefix}prod-app-evil"), workloads.name.clone(), "evil".to_owned()] {
        let (status, _) = as_meshport(
            format!("sys/policies/acl/{name}"),
            json!({ "policy": "path \"*\" { capabilities = [\"sudo\", \"read\"] }" }),
        )
        .await;
        assert_eq!(status, 403, "meshport may write no policy ({name})");
    }
    let role = format!("auth/{mount}/role/{prefix}prod-app-evil");
    let workload_policy = workloads.name.as_str();
    for (what, body) in [
        (
            "bound to meshport's own account",
            json!({ "bound_service_account_names": "meshport", "bound_service_account_namespaces": "meshport", "token_policies": workload_policy }),
        ),
        (
            "bound to a namespace outside the list",
            json!({ "bound_service_account_names": "cart", "bound_service_account_namespaces": "default", "token_policies": workload_policy }),
        ),
        (
            "a second namespace smuggled in",
            json!({ "bound_service_account_names": "cart", "bound_service_account_namespaces": "prod-app,meshport", "token_policies": workload_policy }),
        ),
        (
            "a policy meshport does not name",
            json!({ "bound_service_account_names": "cart", "bound_service_account_namespaces": "prod-app", "token_policies": "root" }),
        ),
        (
            "a second policy smuggled in",
            json!({ "bound_service_account_names": "cart", "bound_service_account_namespaces": "prod-app", "token_policies": format!("{workload_policy},root") }),
        ),
        (
            "a policy as a list",
            json!({ "bound_service_account_names": "cart", "bound_service_account_namespaces": "prod-app", "token_policies": [workload_policy, "root"] }),
        ),
        (
            "a parameter meshport never sends",
            json!({ "bound_service_account_names": "cart", "bound_service_account_namespaces": "prod-app", "token_policies": workload_policy, "policies": "root" }),
        ),
    ] {
        assert_eq!(as_meshport(role.clone(), body).await.0, 403, "a role {what}");
    }
    let (status, body) = as_meshport(role, json!({ "bound_service_account_names": "cart", "bound_service_account_namespaces": "prod-app", "token_policies": workload_policy, "token_ttl": 600 })).await;
    assert_eq!(status, 204, "the limits still let meshport write what it writes: {body}");
}

/// Per-service mode: meshport writes its services' policies, but binds roles only to the
/// onboarding namespaces and to policies of its own names.
#[tokio::test]
async fn per_service_roles_are_limited_to_the_onboarding_namespaces_and_meshports_names() {
    let platform = Platform::new().await;
    let meshport_token =
        secrecy::ExposeSecret::expose_secret(platform.config.token.as_ref().unwrap()).to_owned();
    let mount = &platform.config.kubernetes_auth_mount;
    let prefix = &platform.settings.name_prefix;
    let role = format!("auth/{mount}/role/{prefix}prod-app-evil");
    let own = format!("{prefix}prod-app-evil");
    for (what, body) in [
        (
            "bound to meshport's own account",
            json!({ "bound_service_account_names": "meshport", "bound_service_account_namespaces": "meshport", "token_policies": own }),
        ),
        (
            "bound to every namespace",
            json!({ "bound_service_account_names": "cart", "bound_service_account_namespaces": "*", "token_policies": own }),
        ),
        (
            "carrying root",
            json!({ "bound_service_account_names": "cart", "bound_service_account_namespaces": "prod-app", "token_policies": "root" }),
        ),
        (
            "carrying a second policy",
            json!({ "bound_service_account_names": "cart", "bound_service_account_namespaces": "prod-app", "token_policies": format!("{own},root") }),
        ),
    ] {
        let (status, _) = call(&platform.addr, &meshport_token, "POST", &role, Some(body)).await;
        assert_eq!(status, 403, "a role {what}");
    }
}

/// A service's PKI role issues certificates for its cluster names only, through the service's
/// own token: no IP SANs, no `localhost`.
#[tokio::test]
async fn pki_roles_issue_for_the_service_names_only() {
    let platform = Platform::new().await;
    let (request, _) = checkout();
    let checkout = platform.artifacts(OnboardingRequest { secrets: Vec::new(), ..request });
    platform.meshport.apply(&checkout, platform.ledger(), CHANGE, |_| {}).await.unwrap();
    let token = platform.service_token(&checkout).await;
    let issue = checkout.pki_role.as_ref().unwrap().issue_path();
    let ask = |body: Value| {
        let (addr, token, issue) = (platform.addr.clone(), token.clone(), issue.clone());
        async move { call(&addr, &token, "POST", issue, Some(body)).await }
    };
    let (status, body) = ask(json!({ "common_name": "checkout.prod-app.svc" })).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["data"]["certificate"].as_str().unwrap().starts_with("-----BEGIN CERTIFICATE-----")
    );
    let (status, body) =
        ask(json!({ "common_name": "checkout.prod-app.svc", "ip_sans": "10.0.0.7" })).await;
    assert_eq!(status, 400, "an IP SAN is refused: {body}");
    let (status, body) = ask(json!({ "common_name": "localhost" })).await;
    assert_eq!(status, 400, "localhost is refused: {body}");
    let (status, body) = ask(json!({ "common_name": "payment.prod-app.svc" })).await;
    assert_eq!(status, 400, "another service's name is refused: {body}");
}

/// `meshport vault preflight --pki` names what the PKI engine lacks and the command that sets
/// it up: the mount, an issuer, the issuing URLs.
#[tokio::test]
async fn the_pki_preflight_names_the_missing_issuer_and_urls() {
    let platform = Platform::new().await;
    let pki = platform.config.pki_mount.clone();
    assert_eq!(platform.root_call("DELETE", &format!("sys/mounts/{pki}"), None).await.0, 204);
    let error = platform.meshport.preflight(true).await.unwrap_err().to_string();
    assert!(error.contains(&format!("bao secrets enable -path={pki} pki")), "{error}");
    assert_eq!(
        platform
            .root_call("POST", &format!("sys/mounts/{pki}"), Some(json!({ "type": "pki" })))
            .await
            .0,
        204
    );
    let error = platform.meshport.preflight(true).await.unwrap_err().to_string();
    assert!(error.contains(&format!("secrets tune -max-lease-ttl=87600h {pki}")), "{error}");
    let tune = json!({ "max_lease_ttl": "87600h" });
    assert_eq!(
        platform.root_call("POST", &format!("sys/mounts/{pki}/tune"), Some(tune)).await.0,
        204
    );
    let error = platform.meshport.preflight(true).await.unwrap_err().to_string();
    assert!(error.contains("no issuer") && error.contains("root/generate/internal"), "{error}");
    let root = json!({ "common_name": "services CA", "ttl": "8760h", "key_type": "ec" });
    assert_eq!(
        platform.root_call("POST", &format!("{pki}/root/generate/internal"), Some(root)).await.0,
        200
    );
    let error = platform.meshport.preflight(true).await.unwrap_err().to_string();
    assert!(error.contains("issuing-certificate URL") && error.contains("config/urls"), "{error}");
    let urls = json!({ "issuing_certificates": ["https://vault.vault.svc:8200/v1/pki/ca"] });
    let status = platform.root_call("POST", &format!("{pki}/config/urls"), Some(urls)).await.0;
    assert!(status == 200 || status == 204);
    platform.meshport.preflight(true).await.unwrap();
}

/// Typed values never touch a live path before approval: a secret someone put at
/// `prod-app/legacy/db_password` (two versions) stays exactly as it was, versions and data,
/// through a submission of service `legacy` with a typed `db_password`, its rejection, and an
/// approved resubmission (refused: meshport did not create it). The staged value is gone after
/// the rejection, and nothing outside the request's staging folder is deleted.
#[tokio::test]
async fn a_typed_value_is_staged_and_a_rejection_leaves_an_existing_secret_untouched() {
    use app::access::Role;
    use app::request_api::Decision;
    use app::request_api::ssr::RequestService;
    use meshport_server::request_service::Requests;

    let platform = Platform::new().await;
    let kv = platform.kv().to_owned();
    let live_data = format!("{kv}/data/prod-app/legacy/db_password");
    let live_metadata = format!("{kv}/metadata/prod-app/legacy/db_password");
    for value in ["first-by-hand", "second-by-hand"] {
        let body = json!({ "data": { "db_password": value } });
        assert_eq!(platform.root_call("POST", &live_data, Some(body)).await.0, 200);
    }
    // A secret of another request in the staging folder, which a rejection must not touch.
    let other = format!("{kv}/data/meshport-staging/{}/db_password", uuid::Uuid::from_u128(99));
    let body = json!({ "data": { "db_password": "someone-elses" } });
    assert_eq!(platform.root_call("POST", &other, Some(body)).await.0, 200);
    let snapshot = || async {
        let (_, metadata) = platform.root_call("GET", &live_metadata, None).await;
        let (_, data) = platform.root_call("GET", &live_data, None).await;
        let (_, first) = platform.root_call("GET", &format!("{live_data}?version=1"), None).await;
        (metadata["data"].clone(), data["data"].clone(), first["data"]["data"].clone())
    };
    let before = snapshot().await;
    assert_eq!(before.0["current_version"], 2);
    assert_eq!(before.0["versions"].as_object().unwrap().len(), 2);
    assert_eq!(before.1["data"]["db_password"], "second-by-hand");

    let requests = Requests {
        store: platform.db.store.clone(),
        rules: OnboardingRules::default(),
        vault: platform.meshport.clone(),
        settings: platform.settings.clone(),
        gitops: None,
        notifications: Default::default(),
    };
    let (_, dana) = crate::harness::person(&platform.db.store, "dana", &[Role::Developer]).await;
    let (_, alex) =
        crate::harness::person(&platform.db.store, "alex", &[Role::PlatformAdmin]).await;
    let form = OnboardingRequest {
        service: "legacy".into(),
        secrets: vec![SecretSpec {
            name: "db_password".into(),
            source: SecretSource::Provided { value: SecretValue::new("typed-by-dana") },
        }],
        certificate: None,
        ..cart().0
    };

    let id = requests.submit(&dana, form.clone()).await.unwrap();
    assert_eq!(snapshot().await, before, "the submission left the live secret alone");
    let staged_data = format!("{kv}/data/meshport-staging/{id}/db_password");
    let staged_metadata = format!("{kv}/metadata/meshport-staging/{id}/db_password");
    let (status, staged) = platform.root_call("GET", &staged_data, None).await;
    assert_eq!((status, &staged["data"]["data"]["db_password"]), (200, &json!("typed-by-dana")));

    requests.decide(&alex, &id, Decision::Reject, "not this way").await.unwrap();
    assert_eq!(snapshot().await, before, "the rejection left the live secret alone");
    assert_eq!(platform.root_call("GET", &staged_metadata, None).await.0, 404, "staging destroyed");
    let folder = format!("{kv}/metadata/meshport-staging/{id}/");
    assert_eq!(platform.root_call("LIST", &folder, None).await.0, 404, "nothing left staged");
    // The deletion is in the audit trail, by the admin who rejected: paths, never the value.
    let discarded: Vec<_> = platform.ledger().recent_audit_events(100).await.unwrap();
    let discarded: Vec<_> =
        discarded.into_iter().filter(|e| e.action == "vault_values_discarded").collect();
    assert_eq!(discarded.len(), 1);
    assert_eq!(
        (discarded[0].actor_subject.as_str(), discarded[0].outcome.as_str()),
        ("alex", "success")
    );
    assert!(discarded[0].details.contains(&staged_metadata), "{}", discarded[0].details);
    assert!(!discarded[0].details.contains("typed-by-dana"));
    assert_eq!(
        platform.root_call("GET", &other, None).await.0,
        200,
        "another change's value stays"
    );

    // Submitted again and provisioned: meshport refuses to overwrite what it did not create.
    let id: uuid::Uuid = requests.submit(&dana, form.clone()).await.unwrap().parse().unwrap();
    let artifacts = platform.artifacts(form);
    let error =
        platform.meshport.apply(&artifacts, platform.ledger(), id, |_| {}).await.unwrap_err();
    assert!(matches!(error.source, VaultError::NotOwned { .. }), "{error}");
    let message = error.to_string();
    assert!(
        message.contains(&live_metadata)
            && message.contains("did not create it for prod-app/legacy"),
        "{message}"
    );
    assert!(!error.is_retryable());
    assert_eq!(snapshot().await, before, "provisioning left the live secret alone");
    // Offboarding retires only what is the service's.
    let destroying = Vault::new(&VaultConfig {
        offboard_secrets: SecretRetention::Destroy,
        ..platform.config.clone()
    })
    .unwrap();
    assert_eq!(destroying.retire_secrets(&artifacts.secrets).await.unwrap(), Vec::<String>::new());
    assert_eq!(snapshot().await, before, "offboarding left the live secret alone");
}

/// A provided value is moved into place once: a step repeated after a crash that came after the
/// live write (its staged copy still there) writes no second version and only cleans up.
#[tokio::test]
async fn moving_a_staged_value_into_place_is_idempotent() {
    let platform = Platform::new().await;
    let kv = platform.kv().to_owned();
    let checkout = platform.artifacts(checkout().0);
    platform.stage_and_apply(&checkout, &provided("kafka_password", "typed-once")).await;
    let staged = format!("{kv}/metadata/meshport-staging/{CHANGE}/kafka_password");
    assert_eq!(platform.root_call("GET", &staged, None).await.0, 404);
    // The crash: the value is live, its staged copy is back.
    platform
        .meshport
        .stage_provided(CHANGE, &checkout, &provided("kafka_password", "again"))
        .await
        .unwrap();
    let service = platform.service_token(&checkout).await;
    let staged_data = format!("{kv}/data/meshport-staging/{CHANGE}/kafka_password");
    let (status, _) = call(&platform.addr, &service, "GET", &staged_data, None).await;
    assert_eq!(status, 403, "no workload reads the staging folder");
    let again =
        platform.meshport.apply(&checkout, platform.ledger(), CHANGE, |_| {}).await.unwrap();
    assert_eq!(again.iter().map(|c| c.path.as_str()).collect::<Vec<_>>(), [staged.as_str()]);
    assert_eq!(platform.root_call("GET", &staged, None).await.0, 404);
    let (_, metadata) = platform.root_call("GET", &checkout.secrets[0].metadata_path(), None).await;
    assert_eq!(metadata["data"]["current_version"], 1, "one value, written once");
    assert_eq!(metadata["data"]["custom_metadata"]["owner"], "prod-app/checkout");
    // The portal policy lets meshport read the staging folder but still not the service's values.
    let token =
        secrecy::ExposeSecret::expose_secret(platform.config.token.as_ref().unwrap()).to_owned();
    let (status, _) = call(
        &platform.addr,
        &token,
        "GET",
        format!("{kv}/data/prod-app/checkout/kafka_password"),
        None,
    )
    .await;
    assert_eq!(status, 403);
}
