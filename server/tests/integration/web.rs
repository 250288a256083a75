//! The HTTP application in-process, over SQLite and the real OpenBao.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use meshport_server::config::Config;
use meshport_server::vault::{Vault, VaultConfig};
use meshport_server::web::{AppState, router};
use tower::ServiceExt;

use crate::harness::{Backend, TestDatabase, openbao};

async fn app(vault: VaultConfig) -> (axum::Router, TestDatabase) {
    let db = TestDatabase::new(Backend::Sqlite).await;
    let state = AppState::new(
        &Config::default(),
        db.store.clone(),
        Arc::new(Vault::new(&vault).unwrap()),
        false,
    )
    .await
    .unwrap();
    (router(state), db)
}

async fn send(
    app: &axum::Router,
    request: Request<Body>,
) -> (StatusCode, header::HeaderMap, String) {
    let response = app.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 10 * 1024 * 1024).await.unwrap();
    (parts.status, parts.headers, String::from_utf8_lossy(&bytes).into_owned())
}

fn assert_json(body: &str, expected: serde_json::Value) {
    let actual: serde_json::Value = serde_json::from_str(body).expect("a JSON body");
    assert_eq!(actual, expected);
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn healthz_answers_while_the_process_is_up() {
    let (app, _db) = app(openbao()).await;
    let (status, _, body) = send(&app, get("/healthz")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
}

#[tokio::test]
async fn readyz_is_200_when_database_and_vault_answer() {
    let (app, _db) = app(openbao()).await;
    let (status, _, body) = send(&app, get("/readyz")).await;
    assert_eq!(status, StatusCode::OK);
    assert_json(&body, serde_json::json!({"database": "ok", "vault": "ok"}));
}

#[tokio::test]
async fn readyz_is_503_and_names_vault_when_vault_is_down() {
    let port = meshport_server::dev::free_loopback_port().unwrap();
    let (app, _db) =
        app(VaultConfig { addr: format!("http://127.0.0.1:{port}"), ..openbao() }).await;
    let (status, _, body) = send(&app, get("/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_json(&body, serde_json::json!({"database": "ok", "vault": "unavailable"}));
}

#[tokio::test]
async fn the_home_page_is_server_rendered_with_its_hydration_bundle() {
    let (app, _db) = app(openbao()).await;
    let (status, headers, body) = send(&app, get("/")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/html"));
    assert!(body.contains("Join the service mesh"), "{body}");
    assert!(body.contains("/pkg/meshport.js") && body.contains("/pkg/meshport.wasm"), "{body}");
    assert!(body.contains("/pkg/meshport.css"), "{body}");
    assert!(body.contains(r#"data-hydrated="false""#), "the server never marks a page hydrated");
}

#[tokio::test]
async fn responses_are_compressed_when_the_client_accepts_it() {
    let (app, _db) = app(openbao()).await;
    let request =
        Request::get("/").header(header::ACCEPT_ENCODING, "gzip").body(Body::empty()).unwrap();
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.headers()[header::CONTENT_ENCODING], "gzip");
}

#[tokio::test]
async fn the_platform_status_server_function_reports_readiness() {
    let (app, _db) = app(openbao()).await;
    let request = Request::post("/api/platform_status")
        .header("sec-fetch-site", "same-origin")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT, "application/json")
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = send(&app, request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_json(&body, serde_json::json!({"database": "ok", "vault": "ok"}));
}

#[tokio::test]
async fn an_unknown_page_is_404() {
    let (app, _db) = app(openbao()).await;
    let (status, _, body) = send(&app, get("/no/such/page")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("Page not found"), "{body}");
}

#[tokio::test]
async fn metrics_are_open_by_default_and_behind_the_token_when_one_is_set() {
    let (app, _db) = app(openbao()).await;
    let (status, headers, body) = send(&app, get("/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "text/plain; version=0.0.4; charset=utf-8");
    assert!(body.contains("# TYPE meshport_status_state gauge"), "{body}");

    let db = TestDatabase::new(Backend::Sqlite).await;
    let mut config = Config::default();
    config.status.metrics_token = Some("scrape-me".into());
    let vault = Arc::new(Vault::new(&openbao()).unwrap());
    let app = router(AppState::new(&config, db.store.clone(), vault, false).await.unwrap());
    let with = |token: &str| {
        Request::get("/metrics")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(send(&app, get("/metrics")).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(send(&app, with("scrape-mE")).await.0, StatusCode::UNAUTHORIZED);
    let (status, _, body) = send(&app, with("scrape-me")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("meshport_status_last_refresh_timestamp_seconds 0"), "{body}");
}

/// DNS rebinding: a page on another site whose name resolves to meshport's address sends its
/// own name as `Host` and is refused with 421, while meshport's own name, the probes and the
/// Prometheus scrape (which reach a pod by its address) still answer.
#[tokio::test]
async fn a_request_for_a_foreign_host_is_refused_as_misdirected() {
    let db = TestDatabase::new(Backend::Sqlite).await;
    let config =
        Config { public_url: Some("https://meshport.example.com".into()), ..Config::default() };
    let vault = Arc::new(Vault::new(&openbao()).unwrap());
    let app = router(AppState::new(&config, db.store.clone(), vault, false).await.unwrap());
    let to = |host: &str, path: &str| {
        Request::get(path).header(header::HOST, host).body(Body::empty()).unwrap()
    };
    let (status, _, body) = send(&app, to("rebind.evil.example:3000", "/")).await;
    assert_eq!(status, StatusCode::MISDIRECTED_REQUEST, "{body}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&body).unwrap()["error"], "misdirected");
    let refused = send(&app, to("127.0.0.1:3000", "/api/v1/requests")).await.0;
    assert_eq!(refused, StatusCode::MISDIRECTED_REQUEST, "loopback is not meshport's name here");
    assert_eq!(send(&app, to("meshport.example.com", "/")).await.0, StatusCode::OK);
    assert_eq!(send(&app, to("10.1.2.3:3000", "/healthz")).await.0, StatusCode::OK);
    assert_eq!(send(&app, to("10.1.2.3:3000", "/metrics")).await.0, StatusCode::OK);
}
