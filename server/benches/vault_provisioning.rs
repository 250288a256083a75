//! Vault provisioning and status throughput against a real OpenBao dev server, each figure set
//! against, in the same run, (a) the same writes or reads through the `bao` CLI in a shell loop
//! and (b) the raw limit: the same calls as concurrent keep-alive HTTP requests. Prints a table
//! for the issue notes; asserts nothing. Run: `cargo bench -p server --bench vault_provisioning`
//! (`MESHPORT_BENCH_SERVICES`, default 100, and `MESHPORT_BENCH_SECRETS`, default 1000).

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use app::onboarding::{
    Alphabet, OnboardingRequest, OnboardingRules, SecretSource, SecretSpec, ValidRequest,
};
use futures_util::{StreamExt, TryStreamExt, stream};
use meshport_server::artifacts::ServiceArtifacts;
use meshport_server::config::Config;
use meshport_server::dev::OpenBaoDevServer;
use meshport_server::store::Store;
use meshport_server::vault::{Vault, VaultConfig, generate_secret};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

/// Calls in flight at once, for meshport and for the raw baseline alike.
const CONCURRENCY: usize = 16;

fn count(variable: &str, default: usize) -> usize {
    std::env::var(variable).ok().and_then(|n| n.parse().ok()).unwrap_or(default)
}

/// One test's mounts and names, so the three contenders write to separate places.
fn phase_config(base: &VaultConfig, phase: &str) -> VaultConfig {
    VaultConfig {
        kv_mount: format!("kv-{phase}"),
        kubernetes_auth_mount: format!("k8s-{phase}"),
        name_prefix: format!("{phase}-"),
        ..base.clone()
    }
}

/// `services` onboarding requests, one generated secret each, rendered for `config`.
fn services(config: &VaultConfig, services: usize) -> Vec<ServiceArtifacts> {
    let settings = Config { vault: config.clone(), ..Config::default() }.artifact_settings();
    (0..services)
        .map(|i| {
            let request = OnboardingRequest {
                service: format!("svc-{i:04}"),
                team: "bench".into(),
                justification: "Benchmark service for the provisioning figures.".into(),
                image: "ghcr.io/open-telemetry/demo:2.1.3-cart".into(),
                secrets: vec![SecretSpec {
                    name: "api_key".into(),
                    source: SecretSource::Generate { length: 32, alphabet: Alphabet::Alphanumeric },
                }],
                allowed_callers: vec!["frontend".into()],
                ..OnboardingRequest::default()
            };
            let valid = ValidRequest::new(request, &OnboardingRules::default()).expect("valid");
            ServiceArtifacts::build(&valid, &settings, None)
        })
        .collect()
}

/// The writes of one service as (method, API path, JSON body): the same four calls meshport
/// makes for a new service.
fn writes(artifacts: &ServiceArtifacts) -> Vec<(String, Value)> {
    let secret = &artifacts.secrets[0];
    let value = generate_secret(32, Alphabet::Alphanumeric);
    vec![
        (
            format!("sys/policies/acl/{}", artifacts.policy.as_ref().unwrap().name),
            json!({ "policy": artifacts.policy.as_ref().unwrap().to_hcl() }),
        ),
        (
            format!("auth/{}/role/{}", artifacts.role.mount, artifacts.role.name),
            serde_json::to_value(&artifacts.role).unwrap(),
        ),
        (secret.metadata_path(), json!({ "custom_metadata": secret.custom_metadata })),
        (
            secret.data_path(),
            json!({ "options": { "cas": 0 }, "data": { &secret.key: value.expose_secret() } }),
        ),
    ]
}

/// Runs `script` with bash and the CLI pointed at the dev server; returns the wall time.
fn shell_loop(script: &str, folder: &Path, addr: &str, token: &str) -> anyhow::Result<Duration> {
    let file = folder.join("loop.sh");
    std::fs::write(&file, script)?;
    let bao_dir = Path::new(&bao_bin()).parent().map(Path::to_path_buf).unwrap_or_default();
    let path = format!("{}:{}", bao_dir.display(), std::env::var("PATH").unwrap_or_default());
    let started = Instant::now();
    let status = std::process::Command::new("bash")
        .arg(&file)
        .env("PATH", path)
        .env("BAO_ADDR", addr)
        .env("BAO_TOKEN", token)
        .env("VAULT_ADDR", addr)
        .env("VAULT_TOKEN", token)
        .current_dir(folder)
        .stdout(std::process::Stdio::null())
        .status()?;
    anyhow::ensure!(status.success(), "the CLI loop failed");
    Ok(started.elapsed())
}

fn bao_bin() -> String {
    std::env::var("MESHPORT_DEV__BAO_BIN").unwrap_or_else(|_| "bao".into())
}

/// Sends every call, `CONCURRENCY` at a time (each service's calls in order), over one
/// keep-alive client.
async fn raw(
    addr: &str,
    token: &str,
    batches: Vec<Vec<(String, Option<Value>)>>,
) -> anyhow::Result<Duration> {
    let client = reqwest::Client::new();
    let started = Instant::now();
    stream::iter(batches)
        .map(|calls| {
            let client = client.clone();
            async move {
                for (path, body) in calls {
                    let url = format!("{addr}/v1/{path}");
                    let request = match &body {
                        Some(body) => client.post(url).json(body),
                        None => client.get(url),
                    };
                    let response = request.header("X-Vault-Token", token).send().await?;
                    anyhow::ensure!(
                        response.status().is_success(),
                        "{path}: {}",
                        response.status()
                    );
                    response.bytes().await?;
                }
                Ok(())
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<()>()
        .await?;
    Ok(started.elapsed())
}

/// Provisions `services` through meshport, `CONCURRENCY` at a time, recording the owners of
/// what it creates in `ledger`. No values are staged: the benchmark's secrets are generated.
async fn apply_all(
    vault: &Vault,
    ledger: &Store,
    services: &[ServiceArtifacts],
) -> anyhow::Result<()> {
    stream::iter(services)
        .map(|service| vault.apply(service, ledger, uuid::Uuid::nil(), |_| {}))
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(())
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n_services = count("MESHPORT_BENCH_SERVICES", 100);
    let n_secrets = count("MESHPORT_BENCH_SECRETS", 1000);
    let folder = tempfile::tempdir()?;
    let openbao =
        OpenBaoDevServer::start(Path::new(&bao_bin()), &folder.path().join("openbao.log")).await?;
    let base = openbao.vault_config();
    let addr = base.addr.clone();
    let token = base.token.as_ref().unwrap().expose_secret().to_owned();
    // meshport's database, where it records the owners of the policies and roles it creates.
    let url = format!("sqlite://{}", folder.path().join("meshport.db").display());
    let ledger = Store::connect(&url.into()).await?;
    ledger.migrate().await?;
    let mut table = String::new();
    writeln!(table, "{:<44} {:>10} {:>12}", "", "seconds", "per second")?;
    let mut row = |name: &str, calls: usize, took: Duration| {
        let seconds = took.as_secs_f64();
        writeln!(table, "{name:<44} {seconds:>10.3} {:>12.0}", calls as f64 / seconds).unwrap();
        seconds
    };

    // Provisioning: policy + role + one KV secret (metadata and value) per service.
    for phase in ["mesh", "cli", "raw", "stat"] {
        Vault::new(&phase_config(&base, phase))?.ensure_mounts().await?;
    }
    let mesh_config = phase_config(&base, "mesh");
    let vault = Vault::new(&mesh_config)?;
    let artifacts = services(&mesh_config, n_services);
    let started = Instant::now();
    apply_all(&vault, &ledger, &artifacts).await?;
    let meshport =
        row(&format!("provision {n_services} services: meshport"), n_services, started.elapsed());
    let started = Instant::now();
    apply_all(&vault, &ledger, &artifacts).await?;
    row(&format!("  re-apply (no change) {n_services} services"), n_services, started.elapsed());

    let mut script = String::from("set -e\n");
    for (i, service) in services(&phase_config(&base, "cli"), n_services).iter().enumerate() {
        let calls = writes(service);
        std::fs::write(folder.path().join(format!("policy-{i}.hcl")), service.policy.as_ref().unwrap().to_hcl())?;
        std::fs::write(folder.path().join(format!("role-{i}.json")), calls[1].1.to_string())?;
        let secret = &service.secrets[0];
        let metadata: Vec<String> = secret
            .custom_metadata
            .iter()
            .map(|(k, v)| format!("-custom-metadata={}", shell_quote(&format!("{k}={v}"))))
            .collect();
        let value = calls[3].1["data"][&secret.key].as_str().unwrap().to_owned();
        writeln!(script, "bao policy write {} policy-{i}.hcl", service.policy.as_ref().unwrap().name)?;
        writeln!(script, "bao write {} @role-{i}.json", calls[1].0)?;
        writeln!(
            script,
            "bao kv metadata put -mount={} {} {}",
            secret.mount,
            metadata.join(" "),
            secret.path
        )?;
        writeln!(
            script,
            "bao kv put -mount={} -cas=0 {} {}={}",
            secret.mount,
            secret.path,
            secret.key,
            shell_quote(&value)
        )?;
    }
    let cli = row(
        &format!("provision {n_services} services: bao CLI loop"),
        n_services,
        shell_loop(&script, folder.path(), &addr, &token)?,
    );

    let batches = services(&phase_config(&base, "raw"), n_services)
        .iter()
        .map(|service| writes(service).into_iter().map(|(path, body)| (path, Some(body))).collect())
        .collect();
    let raw_time = row(
        &format!("provision {n_services} services: raw HTTP"),
        n_services,
        raw(&addr, &token, batches).await?,
    );
    let provisioning = (cli / meshport, meshport / raw_time);

    // Status: 1,000 secrets' metadata.
    let stat_config = phase_config(&base, "stat");
    let stat = Vault::new(&stat_config)?;
    let secrets = services(&stat_config, n_secrets);
    apply_all(&stat, &ledger, &secrets).await?;
    let paths: Vec<String> = secrets.iter().map(|s| s.secrets[0].path.clone()).collect();
    let now = chrono::Utc::now();
    let started = Instant::now();
    let statuses = stat.secrets_at(&paths, now).await?;
    let took = started.elapsed();
    anyhow::ensure!(statuses.len() == n_secrets, "every secret judged");
    let meshport_status =
        row(&format!("status of {n_secrets} secrets: meshport (by path)"), n_secrets, took);
    let started = Instant::now();
    let walked = stat.secret_statuses(&["prod-app".to_owned()], now).await?;
    anyhow::ensure!(walked.len() == n_secrets, "every secret found");
    row(
        &format!("status of {n_secrets} secrets: meshport (listing)"),
        n_secrets,
        started.elapsed(),
    );

    let mut script = String::from("set -e\n");
    for path in &paths {
        writeln!(
            script,
            "bao kv metadata get -mount={} -format=json {path}",
            stat_config.kv_mount
        )?;
    }
    let cli_status = row(
        &format!("status of {n_secrets} secrets: bao CLI loop"),
        n_secrets,
        shell_loop(&script, folder.path(), &addr, &token)?,
    );
    let batches = paths
        .iter()
        .map(|path| vec![(format!("{}/metadata/{path}", stat_config.kv_mount), None)])
        .collect();
    let raw_status = row(
        &format!("status of {n_secrets} secrets: raw HTTP"),
        n_secrets,
        raw(&addr, &token, batches).await?,
    );

    print!("{table}");
    println!(
        "provisioning: meshport is {:.0}x the CLI loop (goal >= 50x) and takes {:.2}x the raw time (goal <= 2x)",
        provisioning.0, provisioning.1
    );
    println!(
        "status:       meshport is {:.0}x the CLI loop (goal >= 50x) and takes {:.2}x the raw time (goal <= 2x)",
        cli_status / meshport_status,
        meshport_status / raw_status
    );
    drop(vault);
    tokio::task::spawn_blocking(move || openbao.stop()).await?;
    Ok(())
}
