//! The HTTP application in-process, over SQLite and the real OpenBao.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use meshport_server::config::Config;
use meshport_server::vault::{Vault, VaultConfig};
use meshport_server::web::{AppState, router};

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
    let (status, headers, bytes) = crate::harness::call(app, request).await;
    (status, headers, String::from_utf8_lossy(&bytes).into_owned())
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
    let (_, headers, _) = crate::harness::call(&app, request).await;
    assert_eq!(headers[header::CONTENT_ENCODING], "gzip");
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

/// meshport in dev mode, with the demo developer (team `shop`) signed in: the app and the
/// session cookie.
async fn signed_in_developer() -> (axum::Router, String, TestDatabase) {
    let db = TestDatabase::new(Backend::Sqlite).await;
    let vault = Arc::new(Vault::new(&openbao()).unwrap());
    let app =
        router(AppState::new(&Config::default(), db.store.clone(), vault, true).await.unwrap());
    let (status, headers, body) = send(&app, form_post("/auth/demo", "", "role=developer")).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let cookie = headers[header::SET_COOKIE].to_str().unwrap().split(';').next().unwrap();
    (app, cookie.to_owned(), db)
}

/// A same-origin form post, as a browser without JavaScript sends it.
fn form_post(uri: &str, cookie: &str, body: &str) -> Request<Body> {
    Request::post(uri)
        .header("sec-fetch-site", "same-origin")
        .header(header::ACCEPT, "text/html")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::COOKIE, cookie)
        .body(Body::from(body.to_owned()))
        .unwrap()
}

/// The onboarding form as the browser posts it: cart with two ports (the second with its own
/// callers), a variable and a typed secret; `extra` adds or overrides fields.
fn cart_form(extra: &[(&str, &str)]) -> String {
    let mut fields = vec![
        ("form[service]", "cart"),
        ("form[team]", "shop"),
        ("form[namespace]", "prod-app"),
        ("form[image]", "ghcr.io/open-telemetry/demo:2.1.3-cart"),
        ("form[replicas]", "2"),
        ("form[rotation_days]", "30"),
        ("form[justification]", "Cart joins the mesh for mTLS."),
        ("form[ports][0][name]", "grpc"),
        ("form[ports][0][number]", "7070"),
        ("form[ports][0][protocol]", "grpc"),
        ("form[ports][0][callers]", ""),
        ("form[ports][1][name]", "metrics"),
        ("form[ports][1][number]", "9464"),
        ("form[ports][1][protocol]", "http"),
        ("form[ports][1][callers]", "monitoring/prometheus"),
        ("form[callers]", "frontend"),
        ("form[cpu_request]", "100m"),
        ("form[memory_request]", "128Mi"),
        ("form[cpu_limit]", ""),
        ("form[memory_limit]", "256Mi"),
        ("form[env][0][name]", "VALKEY_ADDR"),
        ("form[env][0][value]", "valkey-cart:6379"),
        ("form[certificate_ttl_hours]", ""),
        ("form[health_check_path]", ""),
        ("form[run_as_non_root]", "true"),
        ("form[read_only_root_filesystem]", "false"),
        ("form[secrets][0][name]", "api_key"),
        ("form[secrets][0][source]", "provided"),
        ("form[secrets][0][value]", "typed-once-9f8e"),
        ("form[secrets][0][length]", "32"),
        ("form[secrets][0][alphabet]", "alphanumeric"),
    ];
    for (name, value) in extra {
        fields.retain(|(n, _)| n != name);
        fields.push((name, value));
    }
    url::form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish()
}

/// The `value` of the input named `name` in a rendered page.
fn input_value(page: &str, name: &str) -> Option<String> {
    let tag = page.split(&format!(r#"name="{name}""#)).nth(1)?.split('>').next()?;
    Some(tag.split(r#"value=""#).nth(1)?.split('"').next()?.to_owned())
}

/// The option selected in the select named `name` in a rendered page.
fn selected(page: &str, name: &str) -> Option<String> {
    let select = page.split(&format!(r#"name="{name}""#)).nth(1)?.split("</select>").next()?;
    let option = select.split("<option").find(|option| option.contains(" selected"))?;
    Some(option.split(r#"value=""#).nth(1)?.split('"').next()?.to_owned())
}

/// What the page shows of the typed values, whichever way it came back.
fn assert_typed_values_kept(page: &str) {
    for (name, value) in [
        ("form[ports][1][name]", "metrics"),
        ("form[ports][1][callers]", "monitoring/prometheus"),
        ("form[env][0][name]", "VALKEY_ADDR"),
        ("form[env][0][value]", "valkey-cart:6379"),
        ("form[secrets][0][name]", "api_key"),
    ] {
        assert_eq!(input_value(page, name).as_deref(), Some(value), "{name} in {page}");
    }
    assert_eq!(selected(page, "form[secrets][0][source]").as_deref(), Some("provided"));
    assert_eq!(selected(page, "form[read_only_root_filesystem]").as_deref(), Some("false"));
    assert_eq!(input_value(page, "form[secrets][0][value]"), None, "the value input is empty");
    assert!(page.contains("data-retype"), "the secret's row asks for its value again");
    assert!(!page.contains("typed-once-9f8e"), "a typed secret value never comes back");
}

#[tokio::test]
async fn without_javascript_a_row_button_brings_the_form_back_with_a_row_more_or_less() {
    let (app, cookie, _db) = signed_in_developer().await;
    let (status, _, page) = send(
        &app,
        Request::get("/onboard").header(header::COOKIE, &cookie).body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    for control in [
        r#"name="form[ports][0][number]""#,
        r#"name="row" value="add ports""#,
        r#"name="row" value="remove ports 0""#,
    ] {
        assert!(page.contains(control), "{control} missing in {page}");
    }
    assert!(!page.contains("form[ports][1]"), "one port row at first");

    let added = cart_form(&[("row", "add ports")]);
    let (status, _, body) = send(&app, form_post("/onboard", &cookie, &added)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_typed_values_kept(&body);
    assert!(body.contains(r#"name="form[ports][2][name]""#), "a third port row: {body}");
    assert!(!body.contains("form[ports][3]"), "{body}");
    assert!(!body.contains("data-rule="), "a row button submits nothing, so nothing is refused");

    let removed = cart_form(&[("row", "remove ports 0")]);
    let (status, _, body) = send(&app, form_post("/onboard", &cookie, &removed)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(input_value(&body, "form[ports][0][name]").as_deref(), Some("metrics"));
    assert!(!body.contains("form[ports][1]"), "{body}");
}

#[tokio::test]
async fn without_javascript_a_refused_submission_comes_back_typed_but_without_its_secret() {
    let (app, cookie, _db) = signed_in_developer().await;
    let refused = cart_form(&[("form[service]", "Cart!"), ("form[ports][1][number]", "4191")]);
    let (status, _, body) = send(&app, form_post("/onboard", &cookie, &refused)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_typed_values_kept(&body);
    assert_eq!(input_value(&body, "form[service]").as_deref(), Some("Cart!"));
    assert!(body.contains(r#"data-field="service" data-rule="format""#), "{body}");
    assert!(body.contains(r#"data-field="ports[1].number" data-rule="reserved""#), "{body}");
    assert!(body.contains("Linkerd proxy"), "the validator's message: {body}");

    let accepted = cart_form(&[]);
    let (status, headers, body) = send(&app, form_post("/onboard", &cookie, &accepted)).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let location = headers[header::LOCATION].to_str().unwrap();
    assert!(location.starts_with("/requests/"), "{location}");
}
