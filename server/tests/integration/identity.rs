//! Sign-in and access control against the real OpenID provider (npm `oidc-provider`, started by
//! the harness): the full code flow at the HTTP level, refused callbacks (state, nonce, expired
//! or tampered ID tokens), session fixation, sign-out, forged server-function calls, cross-site
//! posts, API tokens, demo sign-ins and the security headers.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use meshport_server::config::Config;
use meshport_server::store::Store;
use meshport_server::vault::Vault;
use meshport_server::web::{AppState, router};
use serde_json::{Value, json};

use crate::harness::{
    Backend, OIDC_CLIENT_SECRET, TEST_PUBLIC_URL, TestDatabase, oidc_issuer, oidc_password, openbao,
};

/// The provider's test hook alters the next ID token it issues, so sign-ins run one at a time.
static SIGN_IN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Meshport {
    app: axum::Router,
    store: Store,
    identity: Arc<meshport_server::identity::Identity>,
    status: Arc<meshport_server::status::StatusBoard>,
    refusals: Arc<meshport_server::audit::refusals::Refusals>,
    _db: TestDatabase,
    /// meshport's data folder (the GitOps cache a drift pass clones into), not the source tree.
    _data: tempfile::TempDir,
}

async fn meshport_with(demo: bool, configure: impl FnOnce(&mut Config)) -> Meshport {
    meshport_on(Backend::Sqlite, demo, configure).await
}

async fn meshport_on(
    backend: Backend,
    demo: bool,
    configure: impl FnOnce(&mut Config),
) -> Meshport {
    let db = TestDatabase::new(backend).await;
    let mut config = Config::default();
    let data = tempfile::tempdir().unwrap();
    config.data_dir = data.path().to_owned();
    config.public_url = Some(TEST_PUBLIC_URL.into());
    config.identity.issuer_url = Some(oidc_issuer());
    config.identity.client_secret = Some(OIDC_CLIENT_SECRET.into());
    configure(&mut config);
    let vault = Arc::new(Vault::new(&openbao()).unwrap());
    let state = AppState::new(&config, db.store.clone(), vault, demo).await.unwrap();
    let status = state.status.clone();
    let (identity, refusals) = (state.identity.clone(), state.refusals.clone());
    let store = db.store.clone();
    Meshport { app: router(state), store, identity, status, refusals, _db: db, _data: data }
}

async fn meshport() -> Meshport {
    meshport_with(false, |_| {}).await
}

/// One answer of meshport.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: header::HeaderMap,
    body: String,
}

impl Answer {
    fn location(&self) -> String {
        self.headers.get(header::LOCATION).expect("a redirect").to_str().unwrap().to_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// The session cookie a browser would hold for meshport.
#[derive(Clone, Debug, Default)]
struct Jar(Option<String>);

impl Jar {
    fn take_from(&mut self, headers: &header::HeaderMap) {
        for cookie in headers.get_all(header::SET_COOKIE) {
            let cookie = cookie.to_str().unwrap();
            let pair = cookie.split(';').next().unwrap().trim().to_owned();
            let removed = cookie.contains("Max-Age=0") || pair.ends_with('=');
            self.0 = (!removed).then_some(pair);
        }
    }
}

async fn send(
    app: &axum::Router,
    jar: &mut Jar,
    request: http::request::Builder,
    body: Body,
) -> Answer {
    let request = match &jar.0 {
        Some(cookie) => request.header(header::COOKIE, cookie),
        None => request,
    };
    let (status, headers, bytes) = crate::harness::call(app, request.body(body).unwrap()).await;
    jar.take_from(&headers);
    Answer { status, headers, body: String::from_utf8_lossy(&bytes).into_owned() }
}

/// A server-function call as meshport's own page makes it: same-origin, JSON back.
async fn server_fn(app: &axum::Router, jar: &mut Jar, name: &str, args: Value) -> Answer {
    let request = Request::post(format!("/api/{name}"))
        .header("sec-fetch-site", "same-origin")
        .header(header::ORIGIN, TEST_PUBLIC_URL)
        .header(header::ACCEPT, "application/json")
        .header(header::CONTENT_TYPE, "application/json");
    send(app, jar, request, Body::from(args.to_string())).await
}

async fn whoami(app: &axum::Router, jar: &mut Jar) -> Value {
    let request = Request::post("/api/whoami")
        .header("sec-fetch-site", "same-origin")
        .header(header::ACCEPT, "application/json")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    let answer = send(app, jar, request, Body::empty()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    answer.json()
}

/// The browser's side at the provider: follows redirects, fills the login form, and returns
/// the callback path meshport is sent back to.
async fn at_provider(authorize_url: &str, login: &str) -> String {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap();
    let issuer = url::Url::parse(&oidc_issuer()).unwrap();
    let mut next = client.get(authorize_url);
    for _ in 0..10 {
        let response = next.send().await.unwrap();
        if let Some(location) = response.headers().get(header::LOCATION) {
            let target = issuer.join(location.to_str().unwrap()).unwrap().to_string();
            if let Some(path) = target.strip_prefix(TEST_PUBLIC_URL) {
                return path.to_owned();
            }
            next = client.get(target);
            continue;
        }
        let page = response.text().await.unwrap();
        let action = page
            .split("action=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("no login form at the provider: {page}"));
        next = client
            .post(issuer.join(action).unwrap())
            .form(&[("login", login.to_owned()), ("password", oidc_password(login))]);
    }
    panic!("the provider never sent the browser back to meshport");
}

/// Starts a sign-in at meshport: the provider URL it redirects to.
async fn begin(app: &axum::Router, jar: &mut Jar) -> String {
    let answer = send(app, jar, Request::get("/auth/login"), Body::empty()).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    let location = answer.location();
    assert!(location.starts_with(&oidc_issuer()), "{location}");
    for part in ["code_challenge_method=S256", "state=", "nonce=", "scope=openid"] {
        assert!(location.contains(part), "{part} missing in {location}");
    }
    location
}

async fn callback(app: &axum::Router, jar: &mut Jar, path: &str) -> Answer {
    send(app, jar, Request::get(path), Body::empty()).await
}

/// A complete sign-in; the jar then holds the signed-in session.
async fn sign_in(app: &axum::Router, login: &str) -> Jar {
    let _one_at_a_time = SIGN_IN.lock().await;
    let mut jar = Jar::default();
    let authorize = begin(app, &mut jar).await;
    let back = at_provider(&authorize, login).await;
    let answer = callback(app, &mut jar, &back).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    jar
}

/// A sign-in whose next ID token the provider alters as `change` says; returns the callback's
/// answer and the jar.
async fn sign_in_with_altered_token(app: &axum::Router, change: Value) -> (Answer, Jar) {
    let _one_at_a_time = SIGN_IN.lock().await;
    let hook = format!("{}/__test/next-id-token", oidc_issuer());
    reqwest::Client::new()
        .post(&hook)
        .json(&change)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    let mut jar = Jar::default();
    let authorize = begin(app, &mut jar).await;
    let back = at_provider(&authorize, "dana").await;
    let answer = callback(app, &mut jar, &back).await;
    reqwest::Client::new().delete(&hook).send().await.unwrap();
    (answer, jar)
}

fn cart_request(team: &str) -> Value {
    json!({ "request": {
        "service": "cart", "namespace": "prod-app", "team": team,
        "justification": "Cart joins the mesh.", "image": "ghcr.io/open-telemetry/demo:2.1.3-cart",
        "replicas": 2, "ports": [{ "name": "grpc", "number": 7070, "protocol": "grpc" }],
        "resources": { "cpu_request": "100m", "memory_request": "128Mi", "cpu_limit": "", "memory_limit": "256Mi" },
        "env": [], "allowed_callers": ["frontend"], "certificate": null, "rotation_days": 30,
        "secrets": [{ "name": "db_password", "source": { "kind": "provided", "value": "typed-once-9f8e" } }],
    }})
}

#[tokio::test]
async fn the_code_flow_signs_in_with_roles_and_teams_from_groups() {
    let meshport = meshport().await;
    let mut jar = sign_in(&meshport.app, "dana").await;
    let me = whoami(&meshport.app, &mut jar).await;
    assert_eq!(me["name"], "Dana Developer");
    assert_eq!(me["email"], "dana@shop.example");
    assert_eq!(me["roles"], json!(["developer"]));
    assert_eq!(me["teams"], json!(["cart"]));
    assert_eq!(me["method"], "oidc");
    let mut jar = sign_in(&meshport.app, "ari").await;
    assert_eq!(whoami(&meshport.app, &mut jar).await["roles"], json!(["auditor"]));
}

#[tokio::test]
async fn the_session_id_changes_at_sign_in_so_a_planted_id_stays_anonymous() {
    let meshport = meshport().await;
    let _one_at_a_time = SIGN_IN.lock().await;
    let mut jar = Jar::default();
    let authorize = begin(&meshport.app, &mut jar).await;
    let planted = jar.clone();
    assert!(planted.0.is_some(), "the pending sign-in lives in a session");
    let back = at_provider(&authorize, "dana").await;
    callback(&meshport.app, &mut jar, &back).await;
    assert_ne!(jar.0, planted.0, "the session id was not cycled");
    assert_eq!(whoami(&meshport.app, &mut planted.clone()).await, Value::Null);
    assert_eq!(whoami(&meshport.app, &mut jar).await["name"], "Dana Developer");
}

#[tokio::test]
async fn a_callback_with_the_wrong_state_or_replayed_is_refused() {
    let meshport = meshport().await;
    let _one_at_a_time = SIGN_IN.lock().await;
    let mut jar = Jar::default();
    let authorize = begin(&meshport.app, &mut jar).await;
    let back = at_provider(&authorize, "dana").await;
    let forged = back.replace("state=", "state=forged");
    let answer = callback(&meshport.app, &mut jar, &forged).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.body.contains("state mismatch"), "{}", answer.body);
    assert_eq!(whoami(&meshport.app, &mut jar).await, Value::Null);
    // A forged callback consumes nothing (#21): the genuine one still completes, once.
    let answer = callback(&meshport.app, &mut jar, &back).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    let mut replay_jar = Jar::default();
    let mut pending_jar = Jar::default();
    begin(&meshport.app, &mut pending_jar).await;
    replay_jar.0 = pending_jar.0.clone();
    let answer = callback(&meshport.app, &mut replay_jar, &back).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "a replayed callback: {}", answer.body);
    assert_eq!(whoami(&meshport.app, &mut replay_jar).await, Value::Null);
}

#[tokio::test]
async fn wrong_nonce_expired_or_tampered_id_tokens_are_refused() {
    let meshport = meshport().await;
    for (change, expected) in [
        (json!({ "claims": { "nonce": "someone-elses" } }), "nonce"),
        (json!({ "exp_offset": -60 }), "expired"),
        (json!({ "tamper": "signature" }), "signature"),
        (json!({ "tamper": "alg-none" }), "ID token"),
    ] {
        let (answer, mut jar) = sign_in_with_altered_token(&meshport.app, change.clone()).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{change}: {}", answer.body);
        assert!(
            answer.body.to_lowercase().contains(&expected.to_lowercase()),
            "{change}: {}",
            answer.body
        );
        assert_eq!(whoami(&meshport.app, &mut jar).await, Value::Null, "{change}");
    }
}

#[tokio::test]
async fn an_address_the_provider_says_is_unverified_is_not_used_as_identity() {
    let meshport = meshport().await;
    // The address would become the audit actor and the commit author: unverified, it could be
    // anyone's, so the subject names the person instead.
    let change = json!({ "claims": { "email": "blake@shop.example", "email_verified": false } });
    let (answer, mut jar) = sign_in_with_altered_token(&meshport.app, change).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    let me = whoami(&meshport.app, &mut jar).await;
    assert_eq!(me["email"], "", "{me}");
    assert_eq!(me["subject"], "dana");
    let sign_in = &meshport.store.recent_audit_events(1).await.unwrap()[0];
    assert_eq!((sign_in.action.as_str(), sign_in.actor_email.as_str()), ("sign_in", ""));
    assert_eq!(sign_in.actor_subject, "dana");
    // A verified one is used.
    let change = json!({ "claims": { "email": "dana@shop.example", "email_verified": true } });
    let (answer, mut jar) = sign_in_with_altered_token(&meshport.app, change).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    assert_eq!(whoami(&meshport.app, &mut jar).await["email"], "dana@shop.example");
}

/// Changes a test user at the provider, as its administrator would.
async fn at_provider_change(login: &str, change: Value) {
    reqwest::Client::new()
        .post(format!("{}/__test/users/{login}", oidc_issuer()))
        .json(&change)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
}

/// The audit events of `action`, newest first.
async fn events(store: &Store, action: &str) -> Vec<meshport_server::store::AuditEvent> {
    let events = store.recent_audit_events(1000).await.unwrap();
    events.into_iter().filter(|e| e.action == action).collect()
}

/// A same-origin call a page of meshport makes with the session (REST routes take sessions).
async fn with_session(
    app: &axum::Router,
    jar: &mut Jar,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Answer {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("sec-fetch-site", "same-origin")
        .header(header::ORIGIN, TEST_PUBLIC_URL)
        .header(header::ACCEPT, "application/json")
        .header(header::CONTENT_TYPE, "application/json");
    let body = body.map_or_else(Body::empty, |body| Body::from(body.to_string()));
    send(app, jar, request, body).await
}

#[tokio::test]
async fn access_follows_the_provider_a_removed_admin_and_a_disabled_user_lose_it() {
    let meshport = meshport().await;
    // Rhea is an admin with a session and an admin token.
    let mut rhea = sign_in(&meshport.app, "rhea").await;
    let rhea_id = whoami(&meshport.app, &mut rhea).await["user_id"].as_str().unwrap().to_owned();
    let answer = server_fn(
        &meshport.app,
        &mut rhea,
        "create_api_token",
        json!({ "name": "ops", "roles": ["platform-admin"], "days": null }),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let token = answer.json()["token"].as_str().unwrap().to_owned();
    assert_eq!(
        rest(&meshport.app, Some(&token), "GET", "/api/v1/users", None).await.status,
        StatusCode::OK
    );

    // The provider's admin takes her out of the admin group; one re-validation later her
    // session is a developer's and her admin token has nothing left.
    at_provider_change("rhea", json!({ "groups": ["developers", "team-cart"] })).await;
    let id = rhea_id.parse().unwrap();
    let outcome = meshport.identity.revalidate(id).await.unwrap();
    assert_eq!(outcome, meshport_server::identity::Revalidation::Confirmed);
    assert_eq!(whoami(&meshport.app, &mut rhea).await["roles"], json!(["developer"]));
    let answer = rest(&meshport.app, Some(&token), "GET", "/api/v1/users", None).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.body);
    let answer = with_session(&meshport.app, &mut rhea, "GET", "/api/v1/users", None).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.body);
    let changed = events(&meshport.store, "user_access_changed").await;
    assert_eq!(changed.len(), 1);
    assert!(changed[0].details.contains("developer,platform-admin"), "{}", changed[0].details);

    // Dex, a developer with a session and a token, is disabled at the provider: the next
    // re-validation ends both, and says so in the trail.
    let mut dex = sign_in(&meshport.app, "dex").await;
    let dex_id =
        whoami(&meshport.app, &mut dex).await["user_id"].as_str().unwrap().parse().unwrap();
    let dex_token = api_token(&meshport.app, "dex", &["developer"]).await;
    at_provider_change("dex", json!({ "disabled": true })).await;
    let outcome = meshport.identity.revalidate(dex_id).await.unwrap();
    assert_eq!(outcome, meshport_server::identity::Revalidation::Removed);
    assert_eq!(whoami(&meshport.app, &mut dex).await, Value::Null);
    let answer = rest(&meshport.app, Some(&dex_token), "GET", "/api/v1/requests", None).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.body);
    let removed = events(&meshport.store, "user_deprovisioned").await;
    assert_eq!(removed.len(), 1);
    let details: Value = serde_json::from_str(&removed[0].details).unwrap();
    assert_eq!(details["sessions_revoked"], 2, "both of Dex's sign-ins: {details}");
    assert_eq!(details["tokens_revoked"], 1, "{details}");
    at_provider_change("dex", json!({ "disabled": false })).await;
}

/// Sets back when the provider last confirmed a user, as time passing would.
async fn age_confirmation(store: &Store, user: uuid::Uuid) {
    let sql = "UPDATE users SET validated_at = $1 WHERE id = $2";
    let long_ago = chrono::Utc::now() - chrono::TimeDelta::hours(1);
    match store {
        Store::Sqlite(pool) => {
            sqlx::query(sql).bind(long_ago).bind(user).execute(pool).await.unwrap();
        }
        Store::Postgres(pool) => {
            sqlx::query(sql).bind(long_ago).bind(user).execute(pool).await.unwrap();
        }
    }
    // An hour on, no caller read before is remembered any more.
    meshport_server::identity::callers::access_changed();
}

#[tokio::test]
async fn the_scheduled_pass_and_a_change_both_ask_the_provider_first() {
    let meshport = meshport().await;
    let mut evan = sign_in(&meshport.app, "evan").await;
    let evan_id: uuid::Uuid =
        whoami(&meshport.app, &mut evan).await["user_id"].as_str().unwrap().parse().unwrap();
    // Confirmed at sign-in: nothing due.
    assert_eq!(meshport.identity.revalidate_due().await.unwrap(), 0);
    assert!(
        meshport
            .store
            .users_to_revalidate(chrono::Utc::now() - chrono::TimeDelta::minutes(15))
            .await
            .unwrap()
            .is_empty()
    );
    age_confirmation(&meshport.store, evan_id).await;
    assert_eq!(
        meshport
            .store
            .users_to_revalidate(chrono::Utc::now() - chrono::TimeDelta::minutes(15))
            .await
            .unwrap(),
        vec![evan_id]
    );
    // The pass confirms Evan (still in his groups) and records when.
    assert_eq!(meshport.identity.revalidate_due().await.unwrap(), 0);
    let user = meshport.store.user(evan_id).await.unwrap().unwrap();
    assert!(user.validated_at.unwrap() > chrono::Utc::now() - chrono::TimeDelta::minutes(1));

    // Evan leaves every meshport group; his confirmation is an hour old. The very next change
    // he attempts is checked at the provider first and refused; his session is over.
    at_provider_change("evan", json!({ "groups": ["marketing"] })).await;
    age_confirmation(&meshport.store, evan_id).await;
    let answer = server_fn(&meshport.app, &mut evan, "submit_request", cart_request("cart")).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.body);
    assert_eq!(whoami(&meshport.app, &mut evan).await, Value::Null);
    let removed = events(&meshport.store, "user_deprovisioned").await;
    assert_eq!(removed.len(), 1);
    assert!(
        removed[0].details.contains("no longer in any meshport group"),
        "{}",
        removed[0].details
    );
    assert!(
        meshport
            .store
            .recent_audit_events(100)
            .await
            .unwrap()
            .iter()
            .all(|e| e.action != "request_submitted")
    );
    at_provider_change("evan", json!({ "groups": ["developers", "team-cart"] })).await;
}

#[tokio::test]
async fn an_admin_lists_and_revokes_anyones_sessions_and_tokens_and_disables_a_user() {
    let meshport = meshport().await;
    let mut dana = sign_in(&meshport.app, "dana").await;
    let dana_id = whoami(&meshport.app, &mut dana).await["user_id"].as_str().unwrap().to_owned();
    let dana_token = api_token(&meshport.app, "dana", &["developer"]).await;
    // A developer cannot look at people, by page function or by API.
    let answer = with_session(&meshport.app, &mut dana, "GET", "/api/v1/users", None).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.body);
    let answer = server_fn(&meshport.app, &mut dana, "list_users", json!({})).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.body);

    let mut blake = sign_in(&meshport.app, "blake").await;
    let users = with_session(&meshport.app, &mut blake, "GET", "/api/v1/users", None).await;
    assert_eq!(users.status, StatusCode::OK, "{}", users.body);
    let listed = users.json();
    let row =
        listed.as_array().unwrap().iter().find(|u| u["id"] == dana_id.as_str()).unwrap().clone();
    assert_eq!(
        (row["live_sessions"].as_i64(), row["live_tokens"].as_i64()),
        (Some(2), Some(1)),
        "{row}"
    );
    let path = format!("/api/v1/users/{dana_id}");
    let detail = with_session(&meshport.app, &mut blake, "GET", &path, None).await.json();
    let live_session = |detail: &Value| {
        detail["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["ended"] == false)
            .map(|s| s["id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let sessions = live_session(&detail);
    assert_eq!(sessions.len(), 2, "{detail}");
    assert!(
        !detail.to_string().contains(dana.0.as_deref().unwrap().split('=').nth(1).unwrap()),
        "no cookie value"
    );

    // The admin pages show the same, with a button per live session and token; to a
    // developer they show nobody.
    let page = |jar: &mut Jar, path: String| {
        let (app, mut jar) = (meshport.app.clone(), jar.clone());
        async move { send(&app, &mut jar, Request::get(path), Body::empty()).await }
    };
    let listing = page(&mut blake, "/admin/users".into()).await;
    assert_eq!(listing.status, StatusCode::OK);
    assert!(listing.body.contains(&format!("/admin/users/{dana_id}")), "{}", listing.body);
    let person = page(&mut blake, format!("/admin/users/{dana_id}")).await;
    for session in &sessions {
        assert!(person.body.contains(&format!("end-session-{session}")), "{}", person.body);
    }
    assert!(
        person
            .body
            .contains(&format!("revoke-token-{}", detail["tokens"][0]["id"].as_str().unwrap()))
    );
    let refused = page(&mut dana, "/admin/users".into()).await;
    assert!(
        !refused.body.contains("blake@shop.example")
            && !refused.body.contains(&format!("/admin/users/{dana_id}")),
        "{}",
        refused.body
    );

    // End both sessions one by one, then the token.
    let actions = format!("/api/v1/users/{dana_id}/actions");
    for session in &sessions {
        let body = json!({ "action": "revoke_session", "target": session });
        let answer =
            with_session(&meshport.app, &mut blake, "POST", &actions, Some(body.clone())).await;
        assert_eq!(answer.status, StatusCode::NO_CONTENT, "{}", answer.body);
        let again = with_session(&meshport.app, &mut blake, "POST", &actions, Some(body)).await;
        assert_eq!(again.status, StatusCode::NOT_FOUND, "{}", again.body);
    }
    assert_eq!(whoami(&meshport.app, &mut dana).await, Value::Null);
    let token_id = detail["tokens"][0]["id"].as_str().unwrap();
    let body = json!({ "action": "revoke_token", "target": token_id });
    let answer = with_session(&meshport.app, &mut blake, "POST", &actions, Some(body)).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT, "{}", answer.body);
    let answer = rest(&meshport.app, Some(&dana_token), "GET", "/api/v1/requests", None).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(events(&meshport.store, "session_revoked").await.len(), 2);
    assert!(events(&meshport.store, "api_token_revoked").await[0].details.contains("by_admin"));

    // Disabling needs a reason; then sign-in is refused until enabled again.
    let answer = with_session(
        &meshport.app,
        &mut blake,
        "POST",
        &actions,
        Some(json!({ "action": "disable" })),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", answer.body);
    assert!(answer.body.contains("reason"), "{}", answer.body);
    let body = json!({ "action": "disable", "reason": "left the company" });
    let answer = with_session(&meshport.app, &mut blake, "POST", &actions, Some(body)).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT, "{}", answer.body);
    {
        let _one_at_a_time = SIGN_IN.lock().await;
        let mut jar = Jar::default();
        let authorize = begin(&meshport.app, &mut jar).await;
        let back = at_provider(&authorize, "dana").await;
        let answer = callback(&meshport.app, &mut jar, &back).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.body);
        assert!(answer.body.contains("left the company"), "{}", answer.body);
    }
    let body = json!({ "action": "enable" });
    let answer = with_session(&meshport.app, &mut blake, "POST", &actions, Some(body)).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT, "{}", answer.body);
    let mut dana = sign_in(&meshport.app, "dana").await;
    assert_eq!(whoami(&meshport.app, &mut dana).await["name"], "Dana Developer");
    assert_eq!(events(&meshport.store, "user_disabled").await.len(), 1);
    assert_eq!(events(&meshport.store, "user_enabled").await.len(), 1);
    // An admin cannot lock themselves out.
    let blake_id = whoami(&meshport.app, &mut blake).await["user_id"].as_str().unwrap().to_owned();
    let body = json!({ "action": "disable", "reason": "oops" });
    let own = format!("/api/v1/users/{blake_id}/actions");
    let answer = with_session(&meshport.app, &mut blake, "POST", &own, Some(body)).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.body);
}

#[tokio::test]
async fn admin_tokens_live_at_most_the_admin_lifetime() {
    let meshport = meshport_with(false, |config| config.identity.admin_token_days = 7).await;
    let mut blake = sign_in(&meshport.app, "blake").await;
    let create = |roles: Value, days: Value| json!({ "name": "t", "roles": roles, "days": days });
    let answer = server_fn(
        &meshport.app,
        &mut blake,
        "create_api_token",
        create(json!(["platform-admin"]), json!(30)),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", answer.body);
    assert!(answer.body.contains("at most 7 days"), "{}", answer.body);
    let answer = server_fn(
        &meshport.app,
        &mut blake,
        "create_api_token",
        create(json!(["platform-admin"]), Value::Null),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let expires: chrono::DateTime<chrono::Utc> =
        answer.json()["info"]["expires_at"].as_str().unwrap().parse().unwrap();
    let days = (expires - chrono::Utc::now()).num_hours() as f64 / 24.0;
    assert!((6.9..=7.0).contains(&days), "{days}");
}

#[tokio::test]
async fn an_account_without_any_meshport_role_is_refused_at_sign_in() {
    let meshport = meshport().await;
    let _one_at_a_time = SIGN_IN.lock().await;
    let mut jar = Jar::default();
    let authorize = begin(&meshport.app, &mut jar).await;
    let back = at_provider(&authorize, "nora").await;
    let answer = callback(&meshport.app, &mut jar, &back).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.body);
    for group in ["developers", "platform-admins", "auditors"] {
        assert!(answer.body.contains(group), "the page names {group}: {}", answer.body);
    }
    assert_eq!(whoami(&meshport.app, &mut jar).await, Value::Null);
    let refused = events(&meshport.store, "sign_in").await;
    assert_eq!((refused.len(), refused[0].outcome.as_str()), (1, "failure"));
}

#[tokio::test]
async fn a_signing_key_rotation_at_the_provider_needs_no_restart() {
    let meshport = meshport().await;
    let mut jar = sign_in(&meshport.app, "ari").await;
    assert_eq!(whoami(&meshport.app, &mut jar).await["name"], "Ari Auditor");
    // meshport holds the provider's keys from that sign-in; the provider now signs with a key
    // meshport has never seen.
    let _one_at_a_time = SIGN_IN.lock().await;
    let jwks = |body: Value| {
        body["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let discovery: Value =
        reqwest::get(format!("{}/.well-known/openid-configuration", oidc_issuer()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let keys_url = discovery["jwks_uri"].as_str().unwrap().to_owned();
    let before = jwks(reqwest::get(&keys_url).await.unwrap().json().await.unwrap());
    reqwest::Client::new()
        .post(format!("{}/__test/rotate-keys", oidc_issuer()))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    let after = jwks(reqwest::get(&keys_url).await.unwrap().json().await.unwrap());
    assert!(!before.contains(&after[0]), "a new signing key: {before:?} → {after:?}");
    let mut jar = Jar::default();
    let authorize = begin(&meshport.app, &mut jar).await;
    let back = at_provider(&authorize, "ari").await;
    let answer = callback(&meshport.app, &mut jar, &back).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    assert_eq!(whoami(&meshport.app, &mut jar).await["name"], "Ari Auditor");
}

#[tokio::test]
async fn sign_out_ends_the_session_and_the_provider_session() {
    let meshport = meshport().await;
    let mut jar = sign_in(&meshport.app, "dana").await;
    let kept = jar.clone();
    let request = Request::post("/auth/logout").header("sec-fetch-site", "same-origin");
    let answer = send(&meshport.app, &mut jar, request, Body::empty()).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    let location = answer.location();
    assert!(location.starts_with(&format!("{}/session/end", oidc_issuer())), "{location}");
    assert!(
        location.contains("id_token_hint=") && location.contains("post_logout_redirect_uri="),
        "{location}"
    );
    assert_eq!(jar.0, None, "the cookie is removed");
    assert_eq!(
        whoami(&meshport.app, &mut kept.clone()).await,
        Value::Null,
        "the old session is gone"
    );
}

#[tokio::test]
async fn forged_server_function_calls_are_refused_and_change_nothing() {
    let meshport = meshport().await;
    let app = &meshport.app;
    let (mut dana, mut alex, mut blake, mut ari) = (
        sign_in(app, "dana").await,
        sign_in(app, "alex").await,
        sign_in(app, "blake").await,
        sign_in(app, "ari").await,
    );

    // Nobody signed in.
    let answer = server_fn(app, &mut Jar::default(), "submit_request", cart_request("cart")).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.body);
    assert_eq!(answer.json()["error"], "sign_in_required");
    let answer = server_fn(app, &mut Jar::default(), "list_requests", json!({})).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);

    // A developer for another team, an auditor, an admin without the developer role.
    for (jar, who) in [(&mut dana, "dana"), (&mut ari, "ari"), (&mut blake, "blake")] {
        let team = if who == "dana" { "payments" } else { "cart" };
        let answer = server_fn(app, jar, "submit_request", cart_request(team)).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{who}: {}", answer.body);
    }
    assert_eq!(meshport.store.list_requests(&Default::default()).await.unwrap().len(), 0);

    // Invalid input is refused field by field, and nothing is stored.
    let mut invalid = cart_request("cart");
    invalid["request"]["service"] = json!("../etc");
    let answer = server_fn(app, &mut dana, "submit_request", invalid).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", answer.body);
    assert_eq!(answer.json()["detail"][0]["field"], "service");

    // The admin who is also a developer submits; the provided secret is not stored.
    let answer = server_fn(app, &mut alex, "submit_request", cart_request("cart")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let id: String = serde_json::from_str(&answer.body).unwrap();
    let stored = meshport.store.request(id.parse().unwrap()).await.unwrap().unwrap();
    assert!(!stored.spec.to_string().contains("typed-once-9f8e"), "a secret reached the database");

    let approve = json!({ "id": id, "decision": "approve", "reason": "" });
    // A developer, an auditor, and the request's own author (an admin) may not approve.
    for (jar, who) in [(&mut dana, "dana"), (&mut ari, "ari"), (&mut alex, "alex")] {
        let answer = server_fn(app, jar, "decide_request", approve.clone()).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{who}: {}", answer.body);
    }
    let unchanged = meshport.store.request(id.parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(unchanged.status.as_str(), "submitted");

    // A cross-site post carrying the admin's cookie is refused before it reaches the function.
    let request = Request::post("/api/decide_request")
        .header("sec-fetch-site", "cross-site")
        .header(header::ORIGIN, "https://evil.example")
        .header(header::CONTENT_TYPE, "application/json");
    let answer = send(app, &mut blake, request, Body::from(approve.to_string())).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.body);
    let request =
        Request::post("/api/decide_request").header(header::CONTENT_TYPE, "application/json");
    let answer = send(app, &mut blake, request, Body::from(approve.to_string())).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "no Origin, no Sec-Fetch-Site: refused");
    assert_eq!(
        meshport.store.request(id.parse().unwrap()).await.unwrap().unwrap().status.as_str(),
        "submitted"
    );

    // A rejection needs a reason; another admin decides.
    let reject = json!({ "id": id, "decision": "reject", "reason": " " });
    assert_eq!(
        server_fn(app, &mut blake, "decide_request", reject).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let answer = server_fn(app, &mut blake, "decide_request", approve.clone()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let decided = meshport.store.request(id.parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(decided.status.as_str(), "approved");
    assert_eq!(
        decided.decided_by.map(|u| u.to_string()),
        whoami(app, &mut blake).await["user_id"].as_str().map(String::from)
    );
    let answer = server_fn(app, &mut blake, "decide_request", approve).await;
    assert_eq!(answer.status, StatusCode::CONFLICT, "decided once only");

    // Auditors read everything; developers their teams' requests.
    let listed = server_fn(app, &mut ari, "list_requests", json!({})).await.json();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(
        server_fn(app, &mut dana, "list_requests", json!({}))
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Nobody else may claim the same service while it is live.
    let answer = server_fn(app, &mut dana, "submit_request", cart_request("cart")).await;
    assert_eq!(answer.status, StatusCode::CONFLICT, "{}", answer.body);

    // Every change is in the audit trail, by whom, and the chain holds.
    let Store::Sqlite(pool) = &meshport.store else { panic!("a SQLite store") };
    let trail: Vec<(String, String, Option<String>)> =
        sqlx::query_as("SELECT action, actor_subject, request_id FROM audit_events ORDER BY seq")
            .fetch_all(pool)
            .await
            .unwrap();
    let of = |action: &str| trail.iter().filter(|(a, ..)| a == action).cloned().collect::<Vec<_>>();
    assert_eq!(of("sign_in").len(), 4);
    assert_eq!(
        of("request_submitted"),
        vec![("request_submitted".into(), "alex".into(), Some(id.clone()))]
    );
    assert_eq!(
        of("request_approved"),
        vec![("request_approved".into(), "blake".into(), Some(id.clone()))]
    );
    assert!(
        !trail.iter().any(|(a, ..)| a == "request_rejected"),
        "refused attempts change nothing"
    );
    // Each refused call is one event naming who and what; the cross-site posts are refused
    // before anyone is identified (the cookie's owner did not necessarily send them).
    let refused: Vec<(String, String)> =
        sqlx::query_as("SELECT actor_subject, target_name FROM audit_events WHERE action = 'access_refused' AND outcome = 'failure' ORDER BY seq")
            .fetch_all(pool)
            .await
            .unwrap();
    let expected = [
        ("dana", "submit_request"),
        ("ari", "submit_request"),
        ("blake", "submit_request"),
        ("dana", "decide_request"),
        ("ari", "decide_request"),
        ("alex", "decide_request"),
    ]
    .map(|(who, function)| (who.to_owned(), format!("POST /api/{function}")));
    assert_eq!(refused, expected);
    let evidence = meshport_server::audit::evidence::rows(&meshport.store).await.unwrap();
    assert_eq!(evidence.len(), 1);
    assert_eq!(
        (evidence[0].requested_by.as_str(), evidence[0].decided_by.as_str()),
        ("alex@shop.example", "blake@shop.example")
    );
    assert_eq!(evidence[0].outcome, "approved");
    assert!(!evidence[0].approver_is_requester && !evidence[0].approved_after_merge);
    let csv_report =
        crate::audit::evidence_report(&meshport.store, meshport_server::audit::export::Format::Csv)
            .await;
    let parsed: Vec<csv::StringRecord> =
        csv::Reader::from_reader(csv_report.as_slice()).records().map(Result::unwrap).collect();
    assert_eq!((parsed.len(), &parsed[0][0], &parsed[1][0]), (2, id.as_str(), "trailer"));
    let verification = meshport_server::audit::verify(&meshport.store, &[]).await.unwrap();
    assert_eq!((verification.events, verification.first_broken), (trail.len() as u64, None));
}

#[tokio::test]
async fn a_burst_of_refused_calls_leaves_a_bounded_number_of_events() {
    let meshport = meshport().await;
    let app = &meshport.app;
    let dana = api_token(app, "dana", &["developer"]).await;
    for _ in 0..1000 {
        let answer = rest(app, Some(&dana), "GET", "/api/audit/verify", None).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.body);
    }
    let refused = events(&meshport.store, "access_refused").await;
    assert_eq!(refused.len(), 10, "audit.refusals_per_minute (default 10) a minute per actor");
    assert!(refused.iter().all(|e| e.actor_subject == "dana" && e.outcome == "failure"));
    let summaries = || events(&meshport.store, "access_refusals_suppressed");
    assert!(summaries().await.is_empty(), "summed up once the minute is over");
    meshport.refusals.flush(true).await;
    let summary = summaries().await;
    assert_eq!(summary.len(), 1);
    assert!(
        summary[0].details.contains("990 further refusals suppressed"),
        "{}",
        summary[0].details
    );
    // Someone else's refusal is recorded: the limit is per actor.
    let alex = api_token(app, "alex", &["developer"]).await;
    assert_eq!(
        rest(app, Some(&alex), "GET", "/api/audit/verify", None).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(events(&meshport.store, "access_refused").await.len(), 11);
}

#[tokio::test]
async fn api_tokens_carry_a_subset_of_roles_and_stop_working_when_revoked() {
    let meshport = meshport().await;
    let app = &meshport.app;
    let mut alex = sign_in(app, "alex").await;
    let answer = server_fn(
        app,
        &mut alex,
        "create_api_token",
        json!({ "name": "ci", "roles": ["auditor"], "days": 7 }),
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "alex is no auditor: {}", answer.body);
    let answer = server_fn(
        app,
        &mut alex,
        "create_api_token",
        json!({ "name": "ci", "roles": ["developer"], "days": 7 }),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let created = answer.json();
    let token = created["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("mpt_"));

    let bearer = |name: &str| {
        // Functions without JSON input take a form body, as leptos's client sends it.
        let content_type = if name == "list_requests" {
            "application/x-www-form-urlencoded"
        } else {
            "application/json"
        };
        Request::post(format!("/api/{name}"))
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::ACCEPT, "application/json")
            .header(header::CONTENT_TYPE, content_type)
    };
    let answer = send(app, &mut Jar::default(), bearer("list_requests"), Body::empty()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    // It acts as alex the developer while alex is one: it submits for alex's team.
    let answer = send(
        app,
        &mut Jar::default(),
        bearer("submit_request"),
        Body::from(cart_request("cart").to_string()),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    // Alex's next sign-in shows no developer group any more: the token loses the role too.
    let Store::Sqlite(pool) = &meshport.store else { panic!("a SQLite store") };
    sqlx::query("UPDATE users SET roles = 'platform-admin' WHERE subject = 'alex'")
        .execute(pool)
        .await
        .unwrap();
    // A sign-in that stores new roles tells the callers' cache (`identity::callers`) at once;
    // this direct write stands for it.
    meshport_server::identity::callers::access_changed();
    let mut other = cart_request("cart");
    other["request"]["service"] = json!("cart-two");
    let answer =
        send(app, &mut Jar::default(), bearer("submit_request"), Body::from(other.to_string()))
            .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.body);
    sqlx::query("UPDATE users SET roles = 'developer,platform-admin' WHERE subject = 'alex'")
        .execute(pool)
        .await
        .unwrap();
    meshport_server::identity::callers::access_changed();

    // The token is a developer only: no admin decisions, and it cannot mint tokens.
    let approve =
        json!({ "id": uuid::Uuid::new_v4().to_string(), "decision": "approve", "reason": "" });
    let answer =
        send(app, &mut Jar::default(), bearer("decide_request"), Body::from(approve.to_string()))
            .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    let answer = send(
        app,
        &mut Jar::default(),
        bearer("create_api_token"),
        Body::from(json!({ "name": "x", "roles": ["developer"], "days": 1 }).to_string()),
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);

    // Only the hash is stored.
    let tokens = server_fn(app, &mut alex, "list_api_tokens", json!({})).await.json();
    assert_eq!(tokens[0]["name"], "ci");
    assert!(!tokens.to_string().contains(&token));

    let answer =
        server_fn(app, &mut alex, "revoke_api_token", json!({ "id": created["info"]["id"] })).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let answer = send(app, &mut Jar::default(), bearer("list_requests"), Body::empty()).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    let forged =
        Request::post("/api/list_requests").header(header::AUTHORIZATION, "Bearer mpt_forged");
    assert_eq!(
        send(app, &mut Jar::default(), forged, Body::empty()).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn demo_sign_ins_exist_only_in_dev_mode_on_loopback() {
    let demo_form = || {
        Request::post("/auth/demo")
            .header("sec-fetch-site", "same-origin")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
    };
    let served = meshport().await;
    let answer =
        send(&served.app, &mut Jar::default(), demo_form(), Body::from("role=platform-admin"))
            .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "serve never offers demo sign-ins");

    let exposed =
        meshport_with(true, |config| config.listen = "0.0.0.0:3000".parse().unwrap()).await;
    let answer =
        send(&exposed.app, &mut Jar::default(), demo_form(), Body::from("role=platform-admin"))
            .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "not on a non-loopback address");

    let dev = meshport_with(true, |_| {}).await;
    let mut jar = Jar::default();
    let answer = send(&dev.app, &mut jar, demo_form(), Body::from("role=platform-admin")).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    let me = whoami(&dev.app, &mut jar).await;
    assert_eq!(
        (me["roles"].clone(), me["method"].clone()),
        (json!(["platform-admin"]), json!("demo"))
    );
}

#[tokio::test]
async fn pages_carry_a_nonced_csp_and_the_security_headers() {
    let meshport = meshport().await;
    let answer = send(&meshport.app, &mut Jar::default(), Request::get("/"), Body::empty()).await;
    assert_eq!(answer.status, StatusCode::OK);
    let csp = answer.headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap().to_owned();
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    let nonce =
        csp.split("'nonce-").nth(1).and_then(|n| n.split('\'').next()).expect("a nonce in the CSP");
    assert!(answer.body.contains(&format!("nonce=\"{nonce}\"")), "inline scripts carry the nonce");
    assert!(csp.contains(&format!("form-action 'self' {}", oidc_issuer())), "{csp}");
    assert_eq!(answer.headers[header::X_FRAME_OPTIONS], "DENY");
    assert_eq!(answer.headers[header::REFERRER_POLICY], "same-origin");
    assert!(answer.headers.get(header::STRICT_TRANSPORT_SECURITY).is_none(), "no HSTS over http");
    let again = send(&meshport.app, &mut Jar::default(), Request::get("/"), Body::empty()).await;
    assert_ne!(
        again.headers[header::CONTENT_SECURITY_POLICY],
        answer.headers[header::CONTENT_SECURITY_POLICY]
    );
}

#[tokio::test]
async fn sessions_live_in_postgres_too() {
    let meshport = meshport_on(Backend::Postgres, false, |_| {}).await;
    let mut jar = sign_in(&meshport.app, "blake").await;
    assert_eq!(whoami(&meshport.app, &mut jar).await["roles"], json!(["platform-admin"]));
    let Store::Postgres(pool) = &meshport.store else { panic!("a PostgreSQL store") };
    let sessions: i64 = sqlx::query_scalar("SELECT count(*) FROM tower_sessions.session")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(sessions, 1, "the signed-in session is stored in PostgreSQL");
    let request = Request::post("/auth/logout").header("sec-fetch-site", "same-origin");
    send(&meshport.app, &mut jar, request, Body::empty()).await;
    let sessions: i64 = sqlx::query_scalar("SELECT count(*) FROM tower_sessions.session")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(sessions, 0, "sign-out deletes it");
}

#[tokio::test]
async fn an_idle_session_ends_at_its_deadline() {
    let meshport = meshport_with(false, |config| {
        config.identity.session_idle_minutes = 15;
        config.identity.session_max_hours = 1;
    })
    .await;
    let mut jar = sign_in(&meshport.app, "dana").await;
    let Store::Sqlite(pool) = &meshport.store else { panic!("a SQLite store") };
    let expiry: i64 = sqlx::query_scalar(
        "SELECT CAST(strftime('%s', expiry_date) AS INTEGER) FROM tower_sessions",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    let now = chrono::Utc::now().timestamp();
    assert!(
        (now + 14 * 60..=now + 15 * 60).contains(&expiry),
        "idle deadline {expiry} not ~15 min from {now}"
    );
    // Fifteen idle minutes later (the deadline moved into the past), the session is gone.
    sqlx::query("UPDATE tower_sessions SET expiry_date = '2000-01-01 00:00:00.0 +00:00:00'")
        .execute(pool)
        .await
        .unwrap();
    assert_eq!(whoami(&meshport.app, &mut jar).await, Value::Null);
}

#[tokio::test]
async fn auditors_download_the_trail_and_others_cannot() {
    let dev = meshport_with(true, |_| {}).await;
    let demo = |role: &str| {
        let role = role.to_owned();
        let app = dev.app.clone();
        async move {
            let mut jar = Jar::default();
            let request = Request::post("/auth/demo")
                .header("sec-fetch-site", "same-origin")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
            send(&app, &mut jar, request, Body::from(format!("role={role}"))).await;
            jar
        }
    };
    let download =
        |format: &str| Request::get(format!("/api/audit/export?format={format}&from=2020-01-01"));
    let answer = send(&dev.app, &mut Jar::default(), download("csv"), Body::empty()).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    let answer = send(&dev.app, &mut demo("developer").await, download("csv"), Body::empty()).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);

    let mut auditor = demo("auditor").await;
    let answer = send(&dev.app, &mut auditor, download("csv"), Body::empty()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert!(answer.headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/csv"));
    assert!(answer.headers[header::CONTENT_DISPOSITION].to_str().unwrap().contains("attachment"));
    let rows: Vec<csv::StringRecord> =
        csv::Reader::from_reader(answer.body.as_bytes()).records().map(Result::unwrap).collect();
    let actions: Vec<&str> = rows.iter().map(|r| &r[7]).collect();
    assert_eq!(
        actions,
        ["sign_in", "access_refused", "sign_in", "export_performed", ""],
        "the developer's refused download, then the export itself, then the trailer"
    );
    assert_eq!(&rows[1][10], "GET /api/audit/export");
    assert_eq!(&rows[4][0], "trailer");

    let page = send(&dev.app, &mut auditor, Request::get("/audit"), Body::empty()).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Intact: 4 events"), "{}", page.body);
    let mut developer = demo("developer").await;
    let refused = server_fn(&dev.app, &mut developer, "audit_overview", json!({})).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert_eq!(events(&dev.store, "access_refused").await.len(), 2, "one event per refusal");
    let evidence =
        send(&dev.app, &mut auditor, Request::get("/api/audit/evidence?format=csv"), Body::empty())
            .await;
    assert_eq!(evidence.status, StatusCode::OK);
    assert!(evidence.body.starts_with("request_id,kind,namespace,service"), "{}", evidence.body);

    let answer = send(&dev.app, &mut auditor, download("xml"), Body::empty()).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    let answer =
        send(&dev.app, &mut auditor, Request::get("/api/audit/verify"), Body::empty()).await;
    assert_eq!(answer.json()["first_broken"], Value::Null);
    assert_eq!(
        answer.json()["events"],
        7,
        "four, the second developer's sign-in and refusal, the evidence report handed out"
    );
    let handed = events(&dev.store, "export_performed").await;
    assert_eq!(handed[0].target_kind, "evidence_report", "the newest export is the report");
}

/// An API token of `login` with `roles`, made through the token server function.
async fn api_token(app: &axum::Router, login: &str, roles: &[&str]) -> String {
    let mut jar = sign_in(app, login).await;
    let answer = server_fn(
        app,
        &mut jar,
        "create_api_token",
        json!({ "name": "automation", "roles": roles, "days": 1 }),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    answer.json()["token"].as_str().unwrap().to_owned()
}

/// A REST call with a bearer token (or none).
async fn rest(
    app: &axum::Router,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Answer {
    let mut request =
        Request::builder().method(method).uri(path).header(header::ACCEPT, "application/json");
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let body = match body {
        Some(body) => {
            request = request.header(header::CONTENT_TYPE, "application/json");
            Body::from(body.to_string())
        }
        None => Body::empty(),
    };
    send(app, &mut Jar::default(), request, body).await
}

#[tokio::test]
async fn the_rest_api_runs_submit_list_detail_and_decisions_with_api_tokens() {
    let meshport = meshport().await;
    let app = &meshport.app;
    let dana = api_token(app, "dana", &["developer"]).await;
    let blake = api_token(app, "blake", &["platform-admin"]).await;
    let ari = api_token(app, "ari", &["auditor"]).await;

    let request = cart_request("cart")["request"].clone();
    assert_eq!(
        rest(app, None, "GET", "/api/v1/requests", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    // A tokenless post is a cross-site form post as far as meshport can tell: refused.
    assert_eq!(
        rest(app, None, "POST", "/api/v1/requests", Some(request.clone())).await.status,
        StatusCode::FORBIDDEN
    );
    let mut invalid = request.clone();
    invalid["service"] = json!("Cart!");
    let answer = rest(app, Some(&dana), "POST", "/api/v1/requests", Some(invalid)).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", answer.body);
    assert_eq!(answer.json()["error"], "invalid_request");
    assert_eq!(answer.json()["detail"][0]["field"], "service", "{}", answer.body);
    let answer =
        rest(app, Some(&dana), "POST", "/api/v1/requests", Some(json!({ "service": 7 }))).await;
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a body of the wrong shape: {}",
        answer.body
    );
    assert_eq!(answer.json()["error"], "invalid");
    let mut other_team = request.clone();
    other_team["team"] = json!("payments");
    assert_eq!(
        rest(app, Some(&dana), "POST", "/api/v1/requests", Some(other_team)).await.status,
        StatusCode::FORBIDDEN
    );

    let answer = rest(app, Some(&dana), "POST", "/api/v1/requests", Some(request.clone())).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    let id = answer.json()["id"].as_str().unwrap().to_owned();
    assert!(!answer.body.contains("typed-once-9f8e"), "the provided value is not echoed");
    assert_eq!(
        rest(app, Some(&dana), "POST", "/api/v1/requests", Some(request)).await.status,
        StatusCode::CONFLICT
    );

    let listed = rest(app, Some(&ari), "GET", "/api/v1/requests", None).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.json()[0]["id"], id.as_str());
    let detail = rest(app, Some(&dana), "GET", &format!("/api/v1/requests/{id}"), None).await;
    assert_eq!(detail.status, StatusCode::OK, "{}", detail.body);
    assert_eq!(
        (
            detail.json()["request"]["status"].as_str(),
            detail.json()["jobs"].as_array().map(Vec::len)
        ),
        (Some("submitted"), Some(0))
    );
    assert!(!detail.body.contains("typed-once-9f8e"));
    assert_eq!(
        rest(app, Some(&dana), "GET", &format!("/api/v1/requests/{}", uuid::Uuid::new_v4()), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        rest(app, Some(&dana), "GET", "/api/v1/requests/not-an-id", None).await.status,
        StatusCode::NOT_FOUND
    );

    // Decisions: admins only; a rejection needs a reason.
    let approve = format!("/api/v1/requests/{id}/approve");
    assert_eq!(
        rest(app, Some(&dana), "POST", &approve, Some(json!({}))).await.status,
        StatusCode::FORBIDDEN
    );
    let answer = rest(
        app,
        Some(&blake),
        "POST",
        &format!("/api/v1/requests/{id}/reject"),
        Some(json!({ "reason": "  " })),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", answer.body);
    let answer = rest(app, Some(&blake), "POST", &approve, Some(json!({ "reason": "fine" }))).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT, "{}", answer.body);
    assert_eq!(
        rest(app, Some(&blake), "POST", &approve, Some(json!({}))).await.status,
        StatusCode::CONFLICT
    );
    // Approval queued the provisioning job.
    let detail =
        rest(app, Some(&blake), "GET", &format!("/api/v1/requests/{id}"), None).await.json();
    assert_eq!(detail["request"]["status"], "approved");
    assert_eq!(
        (detail["jobs"][0]["kind"].as_str(), detail["jobs"][0]["state"].as_str()),
        (Some("provision"), Some("queued"))
    );

    // Pages: `limit` items, newest first, the next page's URL in the `Link` header; a cursor
    // meshport did not hand out is refused.
    let mut second = cart_request("cart")["request"].clone();
    second["service"] = json!("cart-two");
    let answer = rest(app, Some(&dana), "POST", "/api/v1/requests", Some(second)).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    let first_page = rest(app, Some(&ari), "GET", "/api/v1/requests?limit=1", None).await;
    assert_eq!(first_page.json().as_array().map(Vec::len), Some(1), "{}", first_page.body);
    assert_eq!(first_page.json()[0]["service"], "cart-two");
    let link = first_page.headers.get(header::LINK).expect("a next page").to_str().unwrap();
    let next = link.strip_prefix('<').and_then(|l| l.strip_suffix(">; rel=\"next\"")).unwrap();
    let second_page = rest(app, Some(&ari), "GET", next, None).await;
    assert_eq!(second_page.json().as_array().map(Vec::len), Some(1), "{}", second_page.body);
    assert_eq!(second_page.json()[0]["id"], id.as_str());
    assert!(second_page.headers.get(header::LINK).is_none(), "the last page");
    let forged = rest(app, Some(&ari), "GET", "/api/v1/requests?after=yesterday", None).await;
    assert_eq!(forged.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", forged.body);
}

#[tokio::test]
async fn the_openapi_document_describes_every_route_and_the_token_scheme() {
    let meshport = meshport().await;
    let answer = rest(&meshport.app, None, "GET", "/api/openapi.json", None).await;
    assert_eq!(answer.status, StatusCode::OK);
    let document = answer.json();
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    let paths: Vec<&str> =
        document["paths"].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        paths,
        [
            "/api/audit/evidence",
            "/api/audit/export",
            "/api/audit/verify",
            "/api/v1/fleet",
            "/api/v1/fleet/check",
            "/api/v1/fleet/services/{namespace}/{service}",
            "/api/v1/fleet/upgrades",
            "/api/v1/fleet/upgrades/{id}",
            "/api/v1/fleet/upgrades/{id}/approve",
            "/api/v1/requests",
            "/api/v1/requests/{id}",
            "/api/v1/requests/{id}/actions",
            "/api/v1/requests/{id}/approve",
            "/api/v1/requests/{id}/reject",
            "/api/v1/requests/{id}/withdraw",
            "/api/v1/services/{namespace}/{service}",
            "/api/v1/services/{namespace}/{service}/adopt",
            "/api/v1/services/{namespace}/{service}/changes",
            "/api/v1/services/{namespace}/{service}/offboard",
            "/api/v1/services/{namespace}/{service}/preview",
            "/api/v1/services/{namespace}/{service}/secrets",
            "/api/v1/services/{namespace}/{service}/secrets/{secret}/rotate",
            "/api/v1/users",
            "/api/v1/users/{id}",
            "/api/v1/users/{id}/actions",
        ]
    );
    assert_eq!(document["components"]["securitySchemes"]["api_token"]["scheme"], "bearer");
    let schemas = document["components"]["schemas"].as_object().unwrap();
    for schema in ["OnboardingRequest", "SecretSource", "RequestDetail", "ErrorBody"] {
        assert!(schemas.contains_key(schema), "{schema} is described");
    }
    let export = &document["paths"]["/api/audit/export"]["get"];
    let complete = export["responses"]["200"]["description"].as_str().unwrap();
    assert!(complete.contains("trailer") && complete.contains("check-export"), "{complete}");
}

/// schemathesis (PyPI), from the venv of `scripts/setup.sh`.
fn schemathesis() -> std::path::PathBuf {
    let python = std::env::var_os("MESHPORT_PYTHON").unwrap_or_else(|| "python3".into());
    std::path::Path::new(&python).with_file_name("schemathesis")
}

#[tokio::test]
async fn schemathesis_finds_no_server_error_in_the_rest_api() {
    let meshport = meshport().await;
    // alex is a developer of team cart and a platform admin: every route is in reach.
    let token = api_token(&meshport.app, "alex", &["developer", "platform-admin"]).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = meshport.app.clone();
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let output = tokio::process::Command::new(schemathesis())
        .arg("run")
        .arg(format!("http://{address}/api/openapi.json"))
        .args(["--checks", "not_a_server_error", "--max-examples", "40", "--seed", "7"])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--request-timeout", "20"])
        .env("NO_COLOR", "1")
        .kill_on_drop(true)
        .output()
        .await
        .expect("schemathesis runs (scripts/setup.sh installs it)");
    server.abort();
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "schemathesis found failures:\n{report}");
    assert!(report.contains("/api/v1/requests"), "it tested the API:\n{report}");
}

#[tokio::test]
async fn status_pages_and_their_server_functions_need_a_signed_in_caller() {
    let meshport = meshport().await;
    meshport.status.refresh(chrono::Utc::now()).await;
    let answer = server_fn(&meshport.app, &mut Jar::default(), "status_overview", json!({})).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.body);
    let service_status = |jar: Jar| {
        let app = meshport.app.clone();
        async move {
            let request = Request::post("/api/service_status")
                .header("sec-fetch-site", "same-origin")
                .header(header::ACCEPT, "application/json")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
            send(&app, &mut jar.clone(), request, Body::from("namespace=prod-app&service=cart"))
                .await
        }
    };
    let answer = service_status(Jar::default()).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.body);

    let mut jar = sign_in(&meshport.app, "dana").await;
    let overview = server_fn(&meshport.app, &mut jar, "status_overview", json!({})).await;
    assert_eq!(overview.status, StatusCode::OK, "{}", overview.body);
    let overview = overview.json();
    assert!(overview["timeline_svg"].as_str().unwrap().starts_with("<svg"), "{overview}");
    assert_eq!(overview["sources"][0]["name"], "vault");
    assert_eq!(overview["sources"][0]["reachable"], true, "{overview}");
    let service = service_status(jar.clone()).await;
    assert_eq!(service.json()["service"], "prod-app/cart", "{}", service.body);

    let page = send(&meshport.app, &mut jar, Request::get("/status"), Body::empty()).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Certificates and rotation"), "{}", page.body);
    assert!(
        page.body.contains(r#"id="status-counts""#) && page.body.contains("<svg"),
        "{}",
        page.body
    );
    let page =
        send(&meshport.app, &mut jar, Request::get("/status/prod-app/cart"), Body::empty()).await;
    assert!(page.body.contains("prod-app/cart: certificates and secrets"), "{}", page.body);
}

/// `/status` serves the overview the board rendered once per report: the same HTML until the
/// board publishes a new report, then the new one; a caller who is not signed in gets none of
/// it, even while it is cached.
#[tokio::test]
async fn the_cached_status_overview_follows_the_board_and_is_never_shown_to_anonymous_callers() {
    let meshport = meshport().await;
    let ten = chrono::DateTime::parse_from_rfc3339("2026-12-07T10:00:00Z").unwrap().to_utc();
    meshport.status.refresh(ten).await;
    let mut jar = sign_in(&meshport.app, "dana").await;
    let page = send(&meshport.app, &mut jar, Request::get("/status"), Body::empty()).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("As of 2026-12-07 10:00 UTC."), "{}", page.body);
    assert!(page.body.contains(r#"data-source="vault""#), "{}", page.body);

    let anonymous = send(&meshport.app, &mut Jar::default(), Request::get("/status"), Body::empty()).await;
    for shown in ["As of", "data-source", "status-counts", "status-overview"] {
        assert!(!anonymous.body.contains(shown), "{shown} shown to an anonymous caller: {}", anonymous.body);
    }
    assert!(anonymous.body.contains(r#"id="sign-in""#), "{}", anonymous.body);

    // The page is cached once for everyone; each caller gets their own account corner (an
    // admin's with the decision count), and nothing of another's.
    let mut blake = sign_in(&meshport.app, "blake").await;
    let admin = send(&meshport.app, &mut blake, Request::get("/status"), Body::empty()).await;
    let page = send(&meshport.app, &mut jar, Request::get("/status"), Body::empty()).await;
    assert!(admin.body.contains("As of 2026-12-07 10:00 UTC."), "{}", admin.body);
    assert!(admin.body.contains("Blake Admin") && admin.body.contains(r#"id="decision-queue-count""#));
    assert!(admin.body.contains(r#"id="admin-users""#), "{}", admin.body);
    assert!(page.body.contains("Dana Developer") && !page.body.contains("Blake"), "{}", page.body);
    assert!(!page.body.contains("decision-queue") && !page.body.contains("admin-users"));
    for answer in [&page, &admin] {
        assert!(!answer.body.contains("meshport-account-menu"), "the slot is filled: {}", answer.body);
        assert!(!answer.body.contains("nonce="), "no per-response nonce is shared: {}", answer.body);
        assert_eq!(answer.body.matches(r#"id="signed-in-as""#).count(), 1, "{}", answer.body);
    }

    // A new report: the page shows it.
    meshport.status.refresh(ten + chrono::TimeDelta::hours(2)).await;
    let page = send(&meshport.app, &mut jar, Request::get("/status"), Body::empty()).await;
    assert!(page.body.contains("As of 2026-12-07 12:00 UTC."), "{}", page.body);
    assert!(!page.body.contains("As of 2026-12-07 10:00 UTC."), "{}", page.body);

    // Rendered once per report: a second view reuses it, a new report renders again.
    use std::sync::atomic::{AtomicUsize, Ordering};
    let renders = AtomicUsize::new(0);
    let render = |overview: app::status_report::StatusOverview| {
        renders.fetch_add(1, Ordering::SeqCst);
        format!("as of {}", overview.generated_at)
    };
    let board = &meshport.status;
    board.refresh(ten + chrono::TimeDelta::hours(3)).await;
    let first = board.overview_html(&render);
    assert_eq!(board.overview_html(&render), first);
    assert_eq!(renders.load(Ordering::SeqCst), 1);
    board.refresh(ten + chrono::TimeDelta::hours(4)).await;
    assert_ne!(board.overview_html(&render), first);
    assert_eq!(renders.load(Ordering::SeqCst), 2);
}

/// A callback that does not carry the pending sign-in's state is refused before anything in it
/// is shown (the provider's `error_description` included), and it leaves the real sign-in
/// pending: the genuine callback still completes.
#[tokio::test]
async fn a_callback_with_a_foreign_state_shows_nothing_and_consumes_nothing() {
    let meshport = meshport().await;
    let _one_at_a_time = SIGN_IN.lock().await;
    let mut jar = Jar::default();
    let authorize = begin(&meshport.app, &mut jar).await;
    let forged = "/auth/callback?state=forged&error=access_denied&error_description=Call%20evil.example%20now";
    let answer = callback(&meshport.app, &mut jar, forged).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(!answer.body.contains("evil.example"), "{}", answer.body);
    let back = at_provider(&authorize, "dana").await;
    let answer = callback(&meshport.app, &mut jar, &back).await;
    assert_eq!(
        answer.status,
        StatusCode::SEE_OTHER,
        "the real sign-in was still pending: {}",
        answer.body
    );
    assert_eq!(whoami(&meshport.app, &mut jar).await["name"], "Dana Developer");
}

/// `return_to=/%C3%A9` (not ASCII) is replaced by `/`: the redirect after sign-in cannot fail.
#[tokio::test]
async fn a_non_ascii_return_path_does_not_break_the_sign_in() {
    let meshport = meshport().await;
    let _one_at_a_time = SIGN_IN.lock().await;
    let mut jar = Jar::default();
    let answer =
        send(&meshport.app, &mut jar, Request::get("/auth/login?return_to=/%C3%A9"), Body::empty())
            .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    let back = at_provider(&answer.location(), "dana").await;
    let answer = callback(&meshport.app, &mut jar, &back).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    assert_eq!(answer.location(), "/");
}

#[tokio::test]
async fn malformed_server_function_calls_answer_400_not_500() {
    let meshport = meshport().await;
    let app = &meshport.app;
    let mut dana = sign_in(app, "dana").await;
    // Arguments that do not decode: the wrong shape, not JSON at all, a missing argument.
    for body in [json!({ "request": { "service": 7 } }), json!("cart"), json!({})] {
        let answer = server_fn(app, &mut dana, "submit_request", body.clone()).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}: {}", answer.body);
        assert_eq!(answer.json()["error"], "server_fn", "{}", answer.body);
    }
    let request = Request::post("/api/decide_request")
        .header("sec-fetch-site", "same-origin")
        .header(header::CONTENT_TYPE, "application/json");
    let answer = send(app, &mut dana, request, Body::from("{not json")).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
    assert_eq!(meshport.store.list_requests(&Default::default()).await.unwrap().len(), 0);
}

/// A plain form post to a server function, as `ActionForm` sends it; JSON back.
async fn form_fn(app: &axum::Router, jar: &mut Jar, name: &str, form: &str) -> Answer {
    let request = Request::post(format!("/api/{name}"))
        .header("sec-fetch-site", "same-origin")
        .header(header::ORIGIN, TEST_PUBLIC_URL)
        .header(header::ACCEPT, "application/json")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    send(app, jar, request, Body::from(form.to_owned())).await
}

#[tokio::test]
async fn each_person_mutes_only_their_own_notifications_and_admins_alone_see_failures_and_the_queue()
 {
    let meshport = meshport().await;
    let app = &meshport.app;
    let mut dana = sign_in(app, "dana").await;
    let mut blake = sign_in(app, "blake").await;
    let muted = |settings: Value| {
        let list = settings.as_array().unwrap().clone();
        list.iter().filter(|s| s["muted"] == true).map(|s| s["kind"].clone()).collect::<Vec<_>>()
    };

    let answer = form_fn(app, &mut dana, "set_notification_muted", "kind=decided&muted=true").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let dana_settings = form_fn(app, &mut dana, "notification_settings", "").await.json();
    assert_eq!(dana_settings.as_array().unwrap().len(), 6);
    assert_eq!(muted(dana_settings), [json!("decided")]);
    let blake_settings = form_fn(app, &mut blake, "notification_settings", "").await.json();
    assert!(muted(blake_settings).is_empty(), "a mute is the caller's own");

    let answer = form_fn(app, &mut dana, "set_notification_muted", "kind=secrets&muted=true").await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", answer.body);
    assert!(answer.body.contains("kind: must be one of"), "{}", answer.body);
    let answer = form_fn(app, &mut Jar::default(), "notification_settings", "").await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);

    let answer = form_fn(app, &mut dana, "failed_notifications", "").await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.body);
    let answer = form_fn(app, &mut blake, "failed_notifications", "").await;
    assert_eq!((answer.status, answer.json()), (StatusCode::OK, json!([])));

    let answer = form_fn(app, &mut dana, "decision_queue_count", "").await;
    assert_eq!((answer.status, answer.json()), (StatusCode::OK, Value::Null), "not for developers");
    let answer = form_fn(app, &mut blake, "decision_queue_count", "").await;
    assert_eq!((answer.status, answer.json()), (StatusCode::OK, json!(0)));

    let page = send(app, &mut dana, Request::get("/account"), Body::empty()).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("id=\"notify-decided\""), "{}", page.body);
    assert!(!page.body.contains("failed-notifications"), "admins only");
    assert!(!page.body.contains("decision-queue-count"), "deciders only");
    let page = send(app, &mut blake, Request::get("/account"), Body::empty()).await;
    assert!(page.body.contains("id=\"failed-notifications\""), "{}", page.body);
    assert!(page.body.contains("id=\"decision-queue-count\""), "{}", page.body);
}
