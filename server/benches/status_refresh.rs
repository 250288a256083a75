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
use std::time::{Duration, Instant};

use axum::body::Body;
use futures_util::{StreamExt, TryStreamExt, stream};
use tower::ServiceExt;

use common::bao_bin;

mod common;

/// Calls in flight for the raw baseline: what meshport has in flight at most (secrets and
/// certificates are read side by side, 32 each).
const RAW_CONCURRENCY: usize = 64;

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
    let n = common::services_count();
    let platform = common::platform(n).await?;
    let (addr, token, api_token) =
        (platform.addr.clone(), platform.token.clone(), platform.api_token.clone());
    let (config, store, vault) =
        (platform.config.clone(), platform.store.clone(), platform.vault.clone());
    let (artifacts, serials) = (&platform.artifacts, &platform.serials);
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

    // At 10,000 services the CLI loop takes most of an hour: `MESHPORT_BENCH_CLI_LOOP=0` skips it.
    let cli_loop = std::env::var("MESHPORT_BENCH_CLI_LOOP").map_or(true, |v| v != "0");
    let cli = if cli_loop {
        let mut script = String::from("set -e\nbao list -format=json pki/certs\n");
        for (a, serial) in artifacts.iter().zip(serials.iter()) {
            let secret = &a.secrets[0];
            writeln!(
                script,
                "bao kv metadata get -mount={} -format=json {}",
                secret.mount, secret.path
            )?;
            writeln!(script, "bao read -format=json pki/cert/{serial}")?;
        }
        std::fs::write(platform.folder.path().join("loop.sh"), &script)?;
        let bao_dir = Path::new(&bao_bin()).parent().map(Path::to_path_buf).unwrap_or_default();
        let started = Instant::now();
        let status = std::process::Command::new("bash")
            .arg(platform.folder.path().join("loop.sh"))
            .env(
                "PATH",
                format!("{}:{}", bao_dir.display(), std::env::var("PATH").unwrap_or_default()),
            )
            .env("BAO_ADDR", &addr)
            .env("BAO_TOKEN", &token)
            .stdout(std::process::Stdio::null())
            .status()?;
        anyhow::ensure!(status.success(), "the CLI loop failed");
        Some(started.elapsed().as_secs_f64())
    } else {
        None
    };

    let mut paths: Vec<String> = artifacts.iter().map(|a| a.secrets[0].metadata_path()).collect();
    paths.extend(serials.iter().map(|s| format!("pki/cert/{s}")));
    let mut raws = Vec::new();
    for _ in 0..5 {
        raws.push(raw(&addr, &token, paths.clone()).await?);
    }
    raws.sort();
    let raw_time = raws[2].as_secs_f64();

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
        (format!("status refresh, {n} services: meshport (median of 5)"), Some(meshport)),
        (format!("status refresh, {n} services: bao CLI loop"), cli),
        (format!("status refresh, {n} services: raw HTTP (median of 5)"), Some(raw_time)),
    ] {
        match seconds {
            Some(seconds) => {
                println!("{name:<58} {seconds:>10.3} {:>12.0}", reads as f64 / seconds)
            }
            None => println!("{name:<58} {:>10} {:>12}", "skipped", "–"),
        }
    }
    println!(
        "refresh: meshport is {} the CLI loop (goal >= 50x) and takes {:.2}x the raw time (goal <= 2x)",
        cli.map_or_else(|| "(not measured)".to_owned(), |cli| format!("{:.0}x", cli / meshport)),
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
    drop((vault, store));
    platform.stop().await
}
