//! The real `meshport serve` sends its traces to an OpenTelemetry collector over OTLP/HTTP when
//! `telemetry.otlp_endpoint` is set, and counts its requests in `/metrics`. The collector here
//! is a plain HTTP receiver recording what it is sent.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use meshport_server::dev::{ServiceProcess, free_loopback_port};
use nix::sys::signal::Signal;
use secrecy::ExposeSecret;

use crate::harness::openbao;

/// A stand-in OTLP/HTTP collector: the bodies posted to `/v1/traces`.
async fn collector() -> (String, Arc<Mutex<Vec<(String, Vec<u8>)>>>) {
    let received = Arc::new(Mutex::new(Vec::new()));
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |headers: http::HeaderMap, body: axum::body::Bytes| {
            let sink = sink.clone();
            async move {
                let kind = headers
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                sink.lock().unwrap().push((kind, body.to_vec()));
                http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn serve_sends_request_vault_and_database_spans_over_otlp_and_counts_requests() {
    let (endpoint, received) = collector().await;
    let folder = tempfile::tempdir().unwrap();
    let vault = openbao();
    let port = free_loopback_port().unwrap();
    let log = std::fs::File::create(folder.path().join("log")).unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_meshport"));
    command
        .arg("serve")
        .env("MESHPORT_LISTEN", format!("127.0.0.1:{port}"))
        .env("MESHPORT_DATA_DIR", folder.path())
        .env("MESHPORT_VAULT__ADDR", &vault.addr)
        .env("MESHPORT_VAULT__TOKEN", vault.token.as_ref().unwrap().expose_secret())
        .env("MESHPORT_TELEMETRY__OTLP_ENDPOINT", &endpoint)
        .env("MESHPORT_TELEMETRY__SERVICE_NAME", "meshport-under-test")
        .env("MESHPORT_JOBS__DRIFT_MINUTES", "0")
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    let mut meshport = ServiceProcess::spawn("meshport", command, Signal::SIGTERM).unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let started = Instant::now();
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(30), "meshport serve did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ready = client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let metrics = client.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains(r#"meshport_http_request_duration_seconds_count{method="GET",route="/readyz",status="200"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains("# TYPE meshport_jobs gauge"), "{metrics}");

    // SIGTERM: meshport drains, then flushes the spans it still holds.
    tokio::task::spawn_blocking(move || meshport.stop(Duration::from_secs(20))).await.unwrap();
    let received = received.lock().unwrap().clone();
    let log = std::fs::read_to_string(folder.path().join("log")).unwrap();
    assert!(!received.is_empty(), "no traces were sent; log:\n{log}");
    assert!(received.iter().all(|(kind, _)| kind == "application/x-protobuf"), "{received:?}");
    let all: Vec<u8> = received.into_iter().flat_map(|(_, body)| body).collect();
    for name in
        ["meshport-under-test", "request", "/readyz", "health", "ping", "vault", "pki/certs"]
    {
        assert!(contains(&all, name), "no {name:?} in the exported spans; log:\n{log}");
    }
}
