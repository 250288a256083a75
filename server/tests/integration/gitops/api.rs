//! A request's pull requests and an admin's merge of a `local` one, over HTTP with API tokens,
//! against the real local bare repository.

use std::sync::Arc;

use app::access::{Principal, Role, SignInMethod};
use axum::body::Body;
use http::{Request, StatusCode, header};
use meshport_server::store::{NewUser, Store};
use meshport_server::vault::Vault;
use meshport_server::web::{AppState, router};

use super::{Remote, cart_request, git, proposal};
use crate::harness::{Backend, TestDatabase, openbao};

/// An API token of a user holding `roles` in `teams` (comma-separated).
pub(super) async fn token(store: &Store, subject: &str, roles: &str, teams: &str) -> String {
    let email = format!("{subject}@shop.example");
    let mut tx = store.begin().await.unwrap();
    let user = tx
        .upsert_user(&NewUser {
            issuer: "https://idp.example",
            subject,
            email: &email,
            display_name: subject,
        })
        .await
        .unwrap();
    tx.set_user_access(user.id, roles, teams).await.unwrap();
    let principal = Principal {
        user_id: user.id.to_string(),
        subject: subject.into(),
        email,
        name: subject.into(),
        roles: roles.split(',').filter_map(Role::from_name).collect(),
        teams: teams.split(',').filter(|t| !t.is_empty()).map(str::to_owned).collect(),
        method: SignInMethod::ApiToken,
    };
    let expires = chrono::Utc::now() + chrono::Duration::days(1);
    let (token, _) = meshport_server::identity::tokens::create(
        &mut tx,
        &principal,
        "test",
        &principal.roles,
        expires,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    token
}

async fn call(
    app: &axum::Router,
    method: &str,
    uri: &str,
    token: &str,
) -> (StatusCode, serde_json::Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let (status, _, bytes) = crate::harness::call(app, request).await;
    (status, serde_json::from_slice(&bytes).unwrap_or_default())
}

#[tokio::test]
async fn a_requests_pull_requests_are_shown_to_its_team_and_merged_by_an_admin() {
    let db = TestDatabase::new(Backend::Sqlite).await;
    let remote = Remote::new();
    let vault = Arc::new(Vault::new(&openbao()).unwrap());
    let state = AppState::new(&remote.config(), db.store.clone(), vault, false).await.unwrap();
    let request_id = cart_request(&db.store).await;
    let pr = state.gitops.propose(&proposal(request_id)).await.unwrap();
    let app = router(state);

    let developer = token(&db.store, "dana", "developer", "cart").await;
    let outsider = token(&db.store, "sam", "developer", "payments").await;
    let admin = token(&db.store, "alex", "platform-admin", "").await;

    let listed = format!("/api/requests/{request_id}/pull-requests");
    let (status, body) = call(&app, "GET", &listed, &developer).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body[0]["state"], "open");
    assert_eq!(body[0]["url"], pr.url.as_str());
    assert_eq!(body[0]["merge_commit_sha"], serde_json::Value::Null);
    let (status, _) = call(&app, "GET", &listed, &outsider).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another team's request is not shown");

    let merge = format!("/api/pull-requests/{}/merge", pr.id);
    let (status, body) = call(&app, "POST", &merge, &developer).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")));
    assert_eq!(git(&["rev-list", "--count", "main"], &remote.bare), "1", "nothing merged");

    let (status, body) = call(&app, "POST", &merge, &admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let main = git(&["rev-parse", "main"], &remote.bare);
    assert_eq!(
        (body["state"].as_str(), body["merge_commit_sha"].as_str()),
        (Some("merged"), Some(main.as_str()))
    );
    let (_, body) = call(&app, "GET", &listed, &developer).await;
    assert_eq!(body[0]["merge_commit_sha"], main.as_str());

    let unknown = format!("/api/pull-requests/{}/merge", uuid::Uuid::new_v4());
    assert_eq!(call(&app, "POST", &unknown, &admin).await.0, StatusCode::NOT_FOUND);
}
