//! The load figures of the real `meshport serve` (release build), each against an anchor
//! measured in the same run:
//! - the `/status` dashboard with 1,000 onboarded services under `wrk`, against a bare axum
//!   server sending the same number of static bytes (throughput ratio, goal >= 25 %), and its
//!   latency with one connection (goal p50 < 10 ms);
//! - the resident memory of an idle `meshport serve`, fresh and with 1,000 services (goal
//!   <= 40 MB fresh);
//! - the list pages (`/status`, `/services`, `/requests`) with one connection (goal p50 < 10 ms
//!   each, also at 10,000 services);
//! - the WASM bundle in `target/site`, raw, gzip and brotli (goal <= 120 KB gzip), and the
//!   script and WASM bytes each page loads (a page without islands loads none);
//! - the time to interactive of `/onboard` in Chromium with the CPU slowed down 4x
//!   (`end2end/bench/tti.mjs`; `scripts/bench.sh` builds the site with `cargo leptos build
//!   --release` first).
//!
//! With `MESHPORT_BENCH_BASELINE` (a folder with an earlier build's `meshport` and `site/`;
//! `MESHPORT_BENCH_BASELINE_REV=<commit> scripts/bench.sh` makes it), the earlier build's
//! bundle, fresh idle memory and time to interactive are measured in the same run.
//!
//! Prints a table; asserts nothing. Run: `scripts/bench.sh`, or `cargo bench -p server --bench
//! load` (`MESHPORT_BENCH_SERVICES`, default 1000; `MESHPORT_BENCH_SECONDS`, default 10).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use meshport_server::dev::{ServiceProcess, free_loopback_port};
use nix::sys::signal::Signal;

mod common;

/// What `wrk` measured.
struct Load {
    requests_per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// Runs wrk against `url` and reads its summary.
fn wrk(url: &str, connections: u32, seconds: u64, header: Option<&str>) -> anyhow::Result<Load> {
    let mut command = Command::new("wrk");
    command.args(["--latency", "-t", if connections > 1 { "2" } else { "1" }]).args([
        "-c",
        &connections.to_string(),
        "-d",
        &format!("{seconds}s"),
    ]);
    if let Some(header) = header {
        command.args(["-H", header]);
    }
    let output = command.arg(url).output().map_err(|e| {
        anyhow::anyhow!("cannot run wrk ({e}); scripts/setup.sh installs it (apt-get install wrk)")
    })?;
    let text = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(output.status.success(), "wrk failed: {text}");
    anyhow::ensure!(!text.contains("Non-2xx"), "wrk saw errors: {text}");
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(|v| v.trim().to_owned()))
            .ok_or_else(|| anyhow::anyhow!("no {prefix:?} in wrk's output: {text}"))
    };
    Ok(Load {
        requests_per_second: field("Requests/sec:")?.parse()?,
        p50_ms: milliseconds(&field("50%")?)?,
        p99_ms: milliseconds(&field("99%")?)?,
    })
}

/// wrk's `1.23ms`, `870.00us` or `1.02s` in milliseconds.
fn milliseconds(text: &str) -> anyhow::Result<f64> {
    let (number, factor) = if let Some(n) = text.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1000.0)
    } else {
        anyhow::bail!("not a duration: {text}")
    };
    Ok(number.parse::<f64>()? * factor)
}

/// Resident memory of a process, in MB.
struct Memory {
    /// All of it (`VmRSS`).
    rss: f64,
    /// Its own, not the pages of the binary and libraries mapped from files (`RssAnon`).
    anonymous: f64,
    /// The most it held (`VmHWM`).
    peak: f64,
}

/// The resident memory of process `pid`.
fn memory(pid: u32) -> anyhow::Result<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb = |key: &str| -> anyhow::Result<f64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(key))
            .ok_or_else(|| anyhow::anyhow!("no {key}"))?;
        Ok(line.split_whitespace().nth(1).unwrap_or("0").parse::<f64>()? / 1024.0)
    };
    Ok(Memory { rss: kb("VmRSS:")?, anonymous: kb("RssAnon:")?, peak: kb("VmHWM:")? })
}

/// A build of meshport: the `meshport` binary and the site it serves (`pkg/` with the WASM).
struct Build {
    binary: PathBuf,
    site: PathBuf,
}

impl Build {
    /// This checkout's release build (`cargo leptos build --release`).
    fn current() -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        Self { binary: env!("CARGO_BIN_EXE_meshport").into(), site: root.join("target/site") }
    }

    /// The build `scripts/bench.sh` made of an earlier commit (`MESHPORT_BENCH_BASELINE`, a
    /// folder with `meshport` and `site/`), measured in the same run for the "before" figures.
    fn baseline() -> Option<Self> {
        let folder = PathBuf::from(std::env::var_os("MESHPORT_BENCH_BASELINE")?);
        Some(Self { binary: folder.join("meshport"), site: folder.join("site") })
    }

    /// The WASM bundle's raw, gzip and brotli sizes, if the site has one.
    fn wasm_sizes(&self) -> anyhow::Result<Option<(f64, f64, f64)>> {
        let wasm = self.site.join("pkg/meshport.wasm");
        std::fs::read(&wasm).ok().map(|bytes| sizes(&bytes)).transpose()
    }
}

/// Starts the release `meshport serve` of `build` on `port` with `env`, and waits until it is
/// ready.
async fn serve(
    build: &Build,
    data: &Path,
    port: u16,
    platform: &common::Platform,
    env: &[(&str, String)],
) -> anyhow::Result<ServiceProcess> {
    std::fs::create_dir_all(data)?;
    let log = std::fs::File::create(data.join("log"))?;
    let mut command = Command::new(&build.binary);
    command
        .arg("serve")
        .env("MESHPORT_SITE_ROOT", &build.site)
        .env("MESHPORT_LISTEN", format!("127.0.0.1:{port}"))
        .env("MESHPORT_DATA_DIR", data)
        .env("MESHPORT_VAULT__ADDR", &platform.addr)
        .env("MESHPORT_VAULT__TOKEN", &platform.token)
        .env("MESHPORT_JOBS__DRIFT_MINUTES", "0")
        .env("RUST_LOG", "warn")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    let process = ServiceProcess::spawn("meshport", command, Signal::SIGTERM)?;
    let client = reqwest::Client::new();
    let started = Instant::now();
    loop {
        let ready = client.get(format!("http://127.0.0.1:{port}/readyz")).send().await;
        if ready.is_ok_and(|r| r.status().is_success()) {
            return Ok(process);
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(60),
            "meshport serve did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The `/pkg/*.js` and `/pkg/*.wasm` files a page's HTML references, as paths.
fn bundle_files(html: &str) -> Vec<String> {
    let mut files: Vec<String> = html
        .match_indices("/pkg/")
        .filter_map(|(at, _)| {
            let rest = &html[at..];
            let end = rest.find(|c: char| c == '"' || c == '\'' || c.is_whitespace())?;
            Some(rest[..end].to_owned())
        })
        .filter(|file| file.ends_with(".js") || file.ends_with(".wasm"))
        .collect();
    files.sort();
    files.dedup();
    files
}

/// Raw, gzip -9 and brotli (quality 11) sizes of `bytes`, in KB.
fn sizes(bytes: &[u8]) -> anyhow::Result<(f64, f64, f64)> {
    use std::io::Write;
    let mut gzip = Command::new("gzip")
        .args(["-9", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut input = gzip.stdin.take().expect("piped");
    let owned = bytes.to_vec();
    let writer = std::thread::spawn(move || input.write_all(&owned));
    let gzipped = gzip.wait_with_output()?.stdout.len();
    writer.join().map_err(|_| anyhow::anyhow!("gzip writer panicked"))??;
    let mut brotli = brotli::CompressorWriter::new(Vec::new(), 4096, 11, 22);
    brotli.write_all(bytes)?;
    let brotlied = brotli.into_inner().len();
    let kb = |n: usize| n as f64 / 1024.0;
    Ok((kb(bytes.len()), kb(gzipped), kb(brotlied)))
}

/// The median time to interactive of `url` in Chromium with a 4x slower CPU, in ms.
fn time_to_interactive(url: &str, selector: &str) -> anyhow::Result<f64> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../end2end/bench/tti.mjs");
    let output = Command::new("node").arg(script).args([url, selector, "5"]).output()?;
    anyhow::ensure!(
        output.status.success(),
        "tti.mjs failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    line["median_ms"].as_f64().ok_or_else(|| anyhow::anyhow!("no median in {line}"))
}

/// A bare axum server answering every GET with `body`: the static-bytes anchor.
async fn bare_axum(body: bytes::Bytes) -> anyhow::Result<String> {
    let app = axum::Router::new().fallback(move || {
        let body = body.clone();
        async move { ([(http::header::CONTENT_TYPE, "text/html; charset=utf-8")], body) }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    meshport_server::install_crypto_provider();
    let n = common::services_count();
    let seconds: u64 =
        std::env::var("MESHPORT_BENCH_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let platform = common::platform(n).await?;

    let build = Build::current();
    let onboard_hydrated = r#"#onboard-form[data-hydrated="true"]"#;

    // The earlier build's figures that need no data of this run's schema: its bundle, its
    // fresh idle memory and its time to interactive.
    let mut before = None;
    if let Some(baseline) = Build::baseline() {
        let port = free_loopback_port()?;
        let mut fresh =
            serve(&baseline, &platform.folder.path().join("baseline"), port, &platform, &[])
                .await?;
        tokio::time::sleep(Duration::from_secs(20)).await;
        let rss = memory(fresh.id())?;
        let tti =
            time_to_interactive(&format!("http://127.0.0.1:{port}/onboard"), onboard_hydrated);
        tokio::task::spawn_blocking(move || fresh.stop(Duration::from_secs(10))).await?;
        before = Some((baseline.wasm_sizes()?, rss, tti));
    }

    // Idle memory of a fresh meshport (its own empty database) after 20 s of idling with the
    // status refresh, job polling and session clean-up running.
    let fresh_port = free_loopback_port()?;
    let mut fresh =
        serve(&build, &platform.folder.path().join("fresh"), fresh_port, &platform, &[]).await?;
    tokio::time::sleep(Duration::from_secs(20)).await;
    let fresh_memory = memory(fresh.id())?;
    tokio::task::spawn_blocking(move || fresh.stop(Duration::from_secs(10))).await?;

    // meshport over the platform's database: 1,000 services, 2,001 status items.
    let port = free_loopback_port()?;
    let database = platform.config.database_url();
    let env = [
        ("MESHPORT_DATABASE_URL", secrecy::ExposeSecret::expose_secret(&database).to_owned()),
        ("MESHPORT_STATUS__REFRESH_SECONDS", "30".to_owned()),
    ];
    let mut meshport =
        serve(&build, &platform.folder.path().join("loaded"), port, &platform, &env).await?;
    let client = reqwest::Client::new();
    let auth = format!("Bearer {}", platform.api_token);
    let url = format!("http://127.0.0.1:{port}/status");
    let started = Instant::now();
    let page = loop {
        let page = client.get(&url).header("authorization", &auth).send().await?.text().await?;
        if n == 0 || page.contains("svc-") {
            break page;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(60),
            "the status never showed the services"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    tokio::time::sleep(Duration::from_secs(5)).await;
    let loaded = memory(meshport.id())?;

    let header = format!("Authorization: {auth}");
    let dashboard = wrk(&url, 16, seconds, Some(&header))?;
    let dashboard_one = wrk(&url, 1, seconds, Some(&header))?;
    let mut lists = Vec::new();
    for path in ["/services", "/requests"] {
        let list_url = format!("http://127.0.0.1:{port}{path}");
        lists.push((path, wrk(&list_url, 1, seconds.div_ceil(2), Some(&header))?));
    }
    // What each page loads of the bundle: only pages with islands load any.
    let mut page_bundles = Vec::new();
    for path in ["/", "/onboard", "/status", "/services", "/requests", "/audit", "/account"] {
        let page_url = format!("http://127.0.0.1:{port}{path}");
        let html =
            client.get(&page_url).header("authorization", &auth).send().await?.text().await?;
        let mut bytes = Vec::new();
        let files = bundle_files(&html);
        for file in &files {
            bytes.extend(std::fs::read(build.site.join(file.trim_start_matches('/')))?);
        }
        page_bundles.push((path, files.len(), sizes(&bytes)?));
    }
    let tti = time_to_interactive(&format!("http://127.0.0.1:{port}/onboard"), onboard_hydrated);
    let after = memory(meshport.id())?;
    tokio::task::spawn_blocking(move || meshport.stop(Duration::from_secs(10))).await?;
    let bare_url = bare_axum(bytes::Bytes::from(page.clone())).await?;
    let bare = wrk(&bare_url, 16, seconds, None)?;

    let wasm_sizes = build.wasm_sizes()?;

    println!("{:<62} {:>14}", "", "measured");
    let row = |name: &str, value: String| println!("{name:<62} {value:>14}");
    row(
        &format!("/status, {n} services, 16 connections: requests/s"),
        format!("{:.0}", dashboard.requests_per_second),
    );
    row(
        &format!("bare axum, same {} KB static body: requests/s", page.len() / 1024),
        format!("{:.0}", bare.requests_per_second),
    );
    row(
        "/status, 16 connections: p50 / p99 ms",
        format!("{:.2} / {:.2}", dashboard.p50_ms, dashboard.p99_ms),
    );
    row(
        "/status, 1 connection: p50 / p99 ms",
        format!("{:.2} / {:.2}", dashboard_one.p50_ms, dashboard_one.p99_ms),
    );
    for (path, load) in &lists {
        row(
            &format!("{path} (first page), 1 connection: p50 / p99 ms"),
            format!("{:.2} / {:.2}", load.p50_ms, load.p99_ms),
        );
    }
    let mb = |m: &Memory| format!("{:.1} / {:.1} / {:.1}", m.rss, m.anonymous, m.peak);
    row("idle meshport serve, empty database: RSS / anonymous / peak MB", mb(&fresh_memory));
    row(&format!("idle meshport serve, {n} services: RSS / anonymous / peak MB"), mb(&loaded));
    row("after the load: RSS / anonymous / peak MB", mb(&after));
    let bundle = |sizes: Option<(f64, f64, f64)>| {
        sizes.map_or_else(
            || "missing".to_owned(),
            |(raw, gzip, brotli)| format!("{raw:.0} / {gzip:.0} / {brotli:.0}"),
        )
    };
    let tti_ms = |tti: &anyhow::Result<f64>| {
        tti.as_ref().map_or_else(|e| format!("failed: {e}"), |ms| format!("{ms:.0}"))
    };
    row("WASM bundle: raw / gzip -9 / brotli KB", bundle(wasm_sizes));
    for (path, files, (raw, gzip, brotli)) in &page_bundles {
        row(
            &format!("{path}: script + WASM files / raw / gzip / brotli KB"),
            format!("{files} / {raw:.0} / {gzip:.0} / {brotli:.0}"),
        );
    }
    row("/onboard time to interactive, CPU 4x slower: median ms", tti_ms(&tti));
    if let Some((wasm, rss, tti)) = &before {
        row("before (MESHPORT_BENCH_BASELINE): WASM raw / gzip / brotli KB", bundle(*wasm));
        row("before: idle meshport serve, empty database: RSS / anonymous / peak MB", mb(rss));
        row("before: /onboard time to interactive, CPU 4x slower: median ms", tti_ms(tti));
    }
    println!(
        "dashboard: {:.0} % of the static-bytes throughput (goal >= 25 %); p99 {:.2} ms under 16 connections (goal <= 10 ms); p50 {:.2} ms with one connection (goal < 10 ms)",
        100.0 * dashboard.requests_per_second / bare.requests_per_second,
        dashboard.p99_ms,
        dashboard_one.p50_ms
    );
    println!(
        "idle RSS: {:.1} MB fresh, {:.1} MB holding {n} services (goal <= 40 MB; of it the binary's mapped pages {:.1} MB); WASM gzip: {} (goal <= 120 KB)",
        fresh_memory.rss,
        loaded.rss,
        loaded.rss - loaded.anonymous,
        wasm_sizes.map_or("missing".into(), |(_, gzip, _)| format!("{gzip:.0} KB"))
    );
    platform.stop().await
}
