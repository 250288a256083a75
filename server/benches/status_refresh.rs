//! Status refresh and dashboard time for many onboarded services, against a real OpenBao dev
//! server and SQLite. Each service has one generated KV secret and one issued PKI certificate;
//! one refresh reads every secret's metadata and every stored certificate. Set against, in the
//! same run, (a) the same reads through the `bao` CLI in a shell loop and (b) the raw limit: the
//! same GETs as concurrent keep-alive HTTP requests. Then the `/status` page is rendered through
//! the whole HTTP stack (session resolution, SSR) many times. Prints a table for the issue
//! notes; asserts nothing. Run: `cargo bench -p server --bench status_refresh`
//! (`MESHPORT_BENCH_SERVICES`, default 1000).

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use app::access::{Principal, Role, SignInMethod};
use app::onboarding::{
    Alphabet, CertificateSpec, OnboardingRequest, RequestStatus, SecretSource, SecretSpec,
};
use axum::body::Body;
use futures_util::{StreamExt, TryStreamExt, stream};
use meshport_server::artifacts::ServiceArtifacts;
use meshport_server::config::Config;
use meshport_server::dev::OpenBaoDevServer;
use meshport_server::store::{NewOnboardingRequest, NewUser, Store};
use meshport_server::vault::Vault;
use meshport_server::vault::provision::ProvidedValues;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use tower::ServiceExt;

static NONE: ProvidedValues = ProvidedValues::new();

/// Calls in flight for the raw baseline: what meshport has in flight at most (secrets and
/// certificates are read side by side, 32 each).
const RAW_CONCURRENCY: usize = 64;

fn bao_bin() -> String {
    std::env::var("MESHPORT_DEV__BAO_BIN").unwrap_or_else(|_| "bao".into())
}

fn request(i: usize) -> OnboardingRequest {
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
async fn store_services(
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
        let merged = tx
            .transition_request(stored.id, RequestStatus::Approved, RequestStatus::Merged)
            .await?;
        anyhow::ensure!(approved && merged, "the request could not be stored as merged");
    }
    tx.commit().await?;
    Ok(user)
}

/// GETs every path, `RAW_CONCURRENCY` at a time, over one keep-alive client.
async fn raw(addr: &str, token: &str, paths: Vec<String>) -> anyhow::Result<Duration> {
    let client = reqwest::Client::new();
    let started = Instant::now();
    let list = client
        .get(format!("{addr}/v1/pki/certs?list=true"))
        .header("X-Vault-Token", token)
        .send()
        .await?;
    anyhow::ensure!(list.status().is_success());
    list.bytes().await?;
    stream::iter(paths)
        .map(|path| {
            let client = client.clone();
            async move {
                let response = client
                    .get(format!("{addr}/v1/{path}"))
                    .header("X-Vault-Token", token)
                    .send()
                    .await?;
                anyhow::ensure!(response.status().is_success(), "{path}: {}", response.status());
                response.bytes().await?;
                Ok(())
            }
        })
        .buffer_unordered(RAW_CONCURRENCY)
        .try_collect::<()>()
        .await?;
    Ok(started.elapsed())
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    meshport_server::install_crypto_provider();
    let n =
        std::env::var("MESHPORT_BENCH_SERVICES").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
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
        .map(|a| vault.apply(a, &NONE, |_| {}))
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

    let state =
        meshport_server::web::AppState::new(&config, store.clone(), vault.clone(), false).await?;
    let board = state.status.clone();
    let now = chrono::Utc::now();
    let report = board.refresh(now).await;
    anyhow::ensure!(report.sources.iter().all(|s| s.reachable), "{:?}", report.sources);
    let kinds: std::collections::BTreeMap<_, usize> =
        report.items.iter().fold(Default::default(), |mut counts, item| {
            *counts.entry(item.kind.as_str()).or_default() += 1;
            counts
        });
    anyhow::ensure!(
        report.items.len() == 2 * n + 1,
        "{kinds:?} for {n} services: {:?}",
        report.items.iter().take(3).collect::<Vec<_>>()
    );
    let mut refreshes = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        board.refresh(now).await;
        refreshes.push(started.elapsed());
    }
    refreshes.sort();
    let meshport = refreshes[2].as_secs_f64();

    let mut script = String::from("set -e\nbao list -format=json pki/certs\n");
    for (a, serial) in artifacts.iter().zip(&serials) {
        let secret = &a.secrets[0];
        writeln!(
            script,
            "bao kv metadata get -mount={} -format=json {}",
            secret.mount, secret.path
        )?;
        writeln!(script, "bao read -format=json pki/cert/{serial}")?;
    }
    std::fs::write(folder.path().join("loop.sh"), &script)?;
    let bao_dir = Path::new(&bao_bin()).parent().map(Path::to_path_buf).unwrap_or_default();
    let started = Instant::now();
    let status = std::process::Command::new("bash")
        .arg(folder.path().join("loop.sh"))
        .env("PATH", format!("{}:{}", bao_dir.display(), std::env::var("PATH").unwrap_or_default()))
        .env("BAO_ADDR", &addr)
        .env("BAO_TOKEN", &token)
        .stdout(std::process::Stdio::null())
        .status()?;
    anyhow::ensure!(status.success(), "the CLI loop failed");
    let cli = started.elapsed().as_secs_f64();

    let mut paths: Vec<String> = artifacts.iter().map(|a| a.secrets[0].metadata_path()).collect();
    paths.extend(serials.iter().map(|s| format!("pki/cert/{s}")));
    let mut raws = Vec::new();
    for _ in 0..5 {
        raws.push(raw(&addr, &token, paths.clone()).await?);
    }
    raws.sort();
    let raw_time = raws[2].as_secs_f64();

    // The dashboard through the whole HTTP stack, as a signed-in developer with an API token.
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
    let router = meshport_server::web::router(state);
    let page = |path: &'static str| {
        let request = http::Request::get(path)
            .header(http::header::AUTHORIZATION, format!("Bearer {api_token}"))
            .body(Body::empty())
            .unwrap();
        let router = router.clone();
        async move {
            let started = Instant::now();
            let response = router.oneshot(request).await.unwrap();
            let status = response.status();
            let bytes = axum::body::to_bytes(response.into_body(), 50 * 1024 * 1024).await.unwrap();
            (started.elapsed(), status, bytes.len())
        }
    };
    let (_, status, size) = page("/status").await;
    anyhow::ensure!(status == http::StatusCode::OK, "/status answered {status}");
    let mut times = Vec::new();
    for _ in 0..300 {
        times.push(page("/status").await.0);
    }
    times.sort();
    let mut overview = Vec::new();
    for _ in 0..300 {
        let started = Instant::now();
        std::hint::black_box(board.overview());
        overview.push(started.elapsed());
    }
    overview.sort();

    println!("{:<58} {:>10} {:>12}", "", "seconds", "reads/s");
    let reads = 2 * n + 1;
    for (name, seconds) in [
        (format!("status refresh, {n} services: meshport (median of 5)"), meshport),
        (format!("status refresh, {n} services: bao CLI loop"), cli),
        (format!("status refresh, {n} services: raw HTTP (median of 5)"), raw_time),
    ] {
        println!("{name:<58} {seconds:>10.3} {:>12.0}", reads as f64 / seconds);
    }
    println!(
        "refresh: meshport is {:.0}x the CLI loop (goal >= 50x) and takes {:.2}x the raw time (goal <= 2x)",
        cli / meshport,
        meshport / raw_time
    );
    println!(
        "dashboard /status with {} items ({} KB): p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms (goal p50 < 10 ms); overview alone p50 {:.2} ms",
        report.items.len(),
        size / 1024,
        percentile(&times, 0.5),
        percentile(&times, 0.9),
        percentile(&times, 0.99),
        percentile(&overview, 0.5),
    );
    drop(vault);
    tokio::task::spawn_blocking(move || openbao.stop()).await?;
    Ok(())
}
