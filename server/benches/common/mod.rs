//! What the status and load benchmarks share: a local OpenBao dev server with a PKI engine,
//! a SQLite database holding `n` onboarded services, each provisioned in Vault (one generated
//! KV secret) with an issued certificate, and an API token of a developer for the pages.

#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use app::access::{Principal, Role, SignInMethod};
use app::onboarding::{
    Alphabet, CertificateSpec, OnboardingRequest, RequestStatus, SecretSource, SecretSpec,
};
use futures_util::{StreamExt, TryStreamExt, stream};
use meshport_server::artifacts::ServiceArtifacts;
use meshport_server::config::Config;
use meshport_server::dev::OpenBaoDevServer;
use meshport_server::store::{NewOnboardingRequest, NewUser, Store};
use meshport_server::vault::Vault;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

/// The OpenBao CLI and server binary.
pub fn bao_bin() -> String {
    std::env::var("MESHPORT_DEV__BAO_BIN").unwrap_or_else(|_| "bao".into())
}

/// How many services a benchmark runs with: `MESHPORT_BENCH_SERVICES`, default 1000.
pub fn services_count() -> usize {
    std::env::var("MESHPORT_BENCH_SERVICES").ok().and_then(|v| v.parse().ok()).unwrap_or(1000)
}

/// A platform of onboarded services.
pub struct Platform {
    pub folder: tempfile::TempDir,
    pub openbao: OpenBaoDevServer,
    pub addr: String,
    pub token: String,
    pub config: Config,
    pub store: Store,
    pub vault: Arc<Vault>,
    pub artifacts: Vec<ServiceArtifacts>,
    /// The serial of each service's certificate, in the order of `artifacts`.
    pub serials: Vec<String>,
    /// A developer's API token (`Authorization: Bearer …`).
    pub api_token: String,
}

impl Platform {
    /// Stops OpenBao.
    pub async fn stop(self) -> anyhow::Result<()> {
        let openbao = self.openbao;
        tokio::task::spawn_blocking(move || openbao.stop()).await?;
        Ok(())
    }
}

pub fn request(i: usize) -> OnboardingRequest {
    OnboardingRequest {
        service: format!("svc-{i:04}"),
        team: "bench".into(),
        justification: "Benchmark service for the status figures.".into(),
        image: "ghcr.io/open-telemetry/demo:2.1.3-cart".into(),
        secrets: vec![SecretSpec {
            name: "api_key".into(),
            source: SecretSource::Generate { length: 32, alphabet: Alphabet::Alphanumeric },
        }],
        allowed_callers: vec!["frontend".into()],
        certificate: Some(CertificateSpec { ttl_hours: 72 }),
        ..OnboardingRequest::default()
    }
}

/// Stores `requests` as onboarded (merged) services, requested by a developer it returns.
pub async fn store_services(
    store: &Store,
    requests: &[OnboardingRequest],
) -> anyhow::Result<meshport_server::store::User> {
    let mut tx = store.begin().await?;
    let user = tx
        .upsert_user(&NewUser {
            issuer: "https://idp.example",
            subject: "bench",
            email: "bench@shop.example",
            display_name: "Bench",
        })
        .await?;
    tx.set_user_access(user.id, "developer", "bench").await?;
    // Four eyes: someone else approves.
    let admin = tx
        .upsert_user(&NewUser {
            issuer: "https://idp.example",
            subject: "admin",
            email: "admin@shop.example",
            display_name: "Admin",
        })
        .await?;
    for request in requests {
        let spec = serde_json::to_value(request.without_secret_values())?;
        let stored = tx
            .create_request(&NewOnboardingRequest {
                id: uuid::Uuid::new_v4(),
                kind: app::onboarding::ChangeKind::Onboard,
                base_change: None,
                digest: None,
                service_name: &request.service,
                namespace: &request.namespace,
                team: &request.team,
                requested_by: user.id,
                justification: &request.justification,
                spec: &spec,
            })
            .await?;
        let approved =
            tx.decide_request(stored.id, admin.id, RequestStatus::Approved, None).await?;
        // The lifecycle has no step from approved to merged: through provisioning.
        let provisioning = tx
            .transition_request(stored.id, RequestStatus::Approved, RequestStatus::Provisioning)
            .await?;
        let merged = provisioning
            && tx
                .transition_request(stored.id, RequestStatus::Provisioning, RequestStatus::Merged)
                .await?;
        anyhow::ensure!(approved && merged, "the request could not be stored as merged");
    }
    tx.commit().await?;
    Ok(user)
}

/// Starts OpenBao and onboards `n` services.
pub async fn platform(n: usize) -> anyhow::Result<Platform> {
    let folder = tempfile::tempdir()?;
    let openbao =
        OpenBaoDevServer::start(Path::new(&bao_bin()), &folder.path().join("openbao.log")).await?;
    let base = openbao.vault_config();
    let (addr, token) =
        (base.addr.clone(), base.token.as_ref().unwrap().expose_secret().to_owned());
    let http = reqwest::Client::new();
    let call = |method: reqwest::Method, path: String, body: Value| {
        let request =
            http.request(method, format!("{addr}/v1/{path}")).header("X-Vault-Token", &token);
        async move {
            let response = request.json(&body).send().await?;
            anyhow::ensure!(response.status().is_success(), "{path}: {}", response.status());
            Ok::<Value, anyhow::Error>(response.json().await.unwrap_or(Value::Null))
        }
    };
    let vault = Arc::new(Vault::new(&base)?);
    vault.ensure_mounts().await?;
    call(
        reqwest::Method::POST,
        "sys/mounts/pki".into(),
        json!({ "type": "pki", "config": { "max_lease_ttl": "87600h" } }),
    )
    .await?;
    call(
        reqwest::Method::POST,
        "pki/root/generate/internal".into(),
        json!({ "common_name": "bench CA", "ttl": "8760h", "key_type": "ec" }),
    )
    .await?;

    // n onboarded services: stored, provisioned, each with an issued certificate.
    let config =
        Config { vault: base.clone(), data_dir: folder.path().to_owned(), ..Config::default() };
    let store = meshport_server::open_store(&config).await?;
    let requests: Vec<OnboardingRequest> = (0..n).map(request).collect();
    let user = store_services(&store, &requests).await?;
    let settings = config.artifact_settings();
    let rules = config.onboarding_rules();
    let artifacts: Vec<ServiceArtifacts> = requests
        .iter()
        .map(|r| {
            let valid = app::onboarding::ValidRequest::new(r.clone(), &rules).expect("valid");
            ServiceArtifacts::build(&valid, &settings, None)
        })
        .collect();
    stream::iter(&artifacts)
        .map(|a| vault.apply(a, &store, uuid::Uuid::nil(), |_| {}))
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await?;
    let serials: Vec<String> = stream::iter(&artifacts)
        .map(|a| {
            let issue = a.pki_role.as_ref().unwrap().issue_path();
            let name = format!("{}.{}.svc", a.role.bound_service_account_names[0], "prod-app");
            call(reqwest::Method::POST, issue, json!({ "common_name": name, "ttl": "72h" }))
        })
        .buffer_unordered(16)
        .map_ok(|issued| issued["data"]["serial_number"].as_str().unwrap_or_default().to_owned())
        .try_collect()
        .await?;

    // A developer's API token for the pages.
    let principal = Principal {
        user_id: user.id.to_string(),
        subject: user.subject.clone(),
        email: user.email.clone(),
        name: user.display_name.clone(),
        roles: std::collections::BTreeSet::from([Role::Developer]),
        teams: std::collections::BTreeSet::from(["bench".to_owned()]),
        method: SignInMethod::Oidc,
    };
    let mut tx = store.begin().await?;
    let (api_token, _) = meshport_server::identity::tokens::create(
        &mut tx,
        &principal,
        "bench",
        &principal.roles,
        chrono::Utc::now() + chrono::TimeDelta::days(1),
    )
    .await?;
    tx.commit().await?;
    Ok(Platform {
        folder,
        openbao,
        addr,
        token,
        config,
        store,
        vault,
        artifacts,
        serials,
        api_token,
    })
}
