//! Approval binds to content: a pull request merged with commits pushed to its branch after
//! approval is flagged, its request is not recorded as merged, and only a platform admin other
//! than the requester can approve the merged head. Real git (the `local` provider's bare
//! repository), over HTTP with API tokens, on SQLite and PostgreSQL.

use std::sync::Arc;

use app::onboarding::RequestStatus;
use axum::body::Body;
use http::{Request, StatusCode, header};
use meshport_server::audit;
use meshport_server::store::Store;
use meshport_server::vault::Vault;
use meshport_server::web::{AppState, router};
use serde_json::{Value, json};
use uuid::Uuid;

use super::api::token;
use super::{Remote, cart_request, events, git, proposal};
use crate::harness::{Backend, TestDatabase, openbao};

on_both_backends!(
    a_commit_pushed_after_approval_holds_the_request_back_until_another_admin_approves_it,
    a_merge_of_the_approved_head_makes_the_request_merged,
);

async fn call(
    app: &axum::Router,
    method: &str,
    uri: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"));
    if body.is_some() {
        request = request.header(header::CONTENT_TYPE, "application/json");
    }
    let body = body.map_or_else(Body::empty, |json| Body::from(json.to_string()));
    let (status, _, bytes) = crate::harness::call(app, request.body(body).unwrap()).await;
    (status, serde_json::from_slice(&bytes).unwrap_or_default())
}

/// The web app over a fresh local repository, with Dana's `cart` request provisioned as far as
/// its open pull request.
struct Setup {
    remote: Remote,
    app: axum::Router,
    request_id: Uuid,
    pr: meshport_server::store::PullRequestRecord,
}

async fn setup(store: &Store) -> Setup {
    let remote = Remote::new();
    let vault = Arc::new(Vault::new(&openbao()).unwrap());
    let state = AppState::new(&remote.config(), store.clone(), vault, false).await.unwrap();
    let request_id = cart_request(store).await;
    // Approved and provisioned: what the job leaves before the pull request merges.
    for (from, to) in [
        (RequestStatus::Submitted, RequestStatus::Approved),
        (RequestStatus::Approved, RequestStatus::Provisioning),
        (RequestStatus::Provisioning, RequestStatus::PrOpen),
    ] {
        assert!(store.transition_request(request_id, from, to).await.unwrap());
    }
    let pr = state.gitops.propose(&proposal(request_id)).await.unwrap();
    // The approved head is the commit meshport pushed for the approved change.
    assert_eq!(pr.approved_head_sha, pr.head_sha);
    assert_eq!(pr.approved_head_sha, git(&["rev-parse", &pr.branch], &remote.bare));
    assert!(!pr.changed_after_approval);
    Setup { remote, app: router(state), request_id, pr }
}

async fn status_of(store: &Store, id: Uuid) -> RequestStatus {
    store.request(id).await.unwrap().unwrap().status
}

async fn a_commit_pushed_after_approval_holds_the_request_back_until_another_admin_approves_it(
    db: TestDatabase,
) {
    let Setup { remote, app, request_id, pr } = setup(&db.store).await;
    let admin = token(&db.store, "alex", "platform-admin", "").await;
    let other_admin = token(&db.store, "blake", "platform-admin", "").await;
    // Dana requested it; as a platform admin too she still may not approve her own change.
    let requester = token(&db.store, "dana", "developer,platform-admin", "cart").await;
    let developer = token(&db.store, "devin", "developer", "cart").await;

    // Someone pushes to the pull request's branch after the approval, then an admin merges.
    let theirs =
        remote.push_onto_branch(&pr.branch, "manifests/prod-app/cart/extra.yaml", "kind: Extra\n");
    let (status, merged) =
        call(&app, "POST", &format!("/api/pull-requests/{}/merge", pr.id), &admin, None).await;
    assert_eq!(status, StatusCode::OK, "{merged}");
    let main = git(&["rev-parse", "main"], &remote.bare);
    assert_eq!(git(&["rev-parse", "main^2"], &remote.bare), theirs, "their commit was merged");
    assert_eq!(
        (merged["state"].as_str(), merged["merge_commit_sha"].as_str()),
        (Some("merged"), Some(main.as_str()))
    );
    assert_eq!(merged["changed_after_approval"], true);
    assert_eq!(merged["merged_head_sha"], theirs.as_str());
    assert_eq!(merged["approved_head_sha"], pr.head_sha.as_str());

    // The request is not recorded as merged; the detail (page and REST API) says why.
    assert_eq!(status_of(&db.store, request_id).await, RequestStatus::PrOpen);
    let detail_uri = format!("/api/v1/requests/{request_id}");
    let (status, detail) = call(&app, "GET", &detail_uri, &developer, None).await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    assert_eq!(detail["request"]["status"], "pr_open");
    let shown = &detail["pull_requests"][0];
    assert_eq!(
        (&shown["changed_after_approval"], &shown["merged_head_sha"], &shown["approved_head_sha"]),
        (&json!(true), &json!(theirs), &json!(pr.head_sha))
    );

    // The audit trail records the merge and, in the same transaction, the change after approval.
    let flagged = events(&db.store, "pull_request_changed_after_approval").await;
    assert_eq!(flagged.len(), 1);
    assert_eq!(
        (flagged[0]["approved_head_sha"].as_str(), flagged[0]["merged_head_sha"].as_str()),
        (Some(pr.head_sha.as_str()), Some(theirs.as_str()))
    );
    assert_eq!(flagged[0]["source"], "merge");
    assert_eq!(events(&db.store, "pull_request_merged").await.len(), 1);
    let rows = audit::evidence::rows(&db.store).await.unwrap();
    assert!(rows[0].merged_head_differs, "the evidence report flags it");
    assert_eq!(
        (rows[0].outcome.as_str(), rows[0].commit_sha.as_str()),
        ("merged_unapproved_head", main.as_str())
    );

    // Neither the requester nor a developer can approve the merged head.
    let actions = format!("/api/v1/requests/{request_id}/actions");
    let approve_head = json!({ "action": "approve_head" });
    for (who, token) in [("requester", &requester), ("developer", &developer)] {
        let (status, body) = call(&app, "POST", &actions, token, Some(approve_head.clone())).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{who}: {body}");
    }
    assert_eq!(status_of(&db.store, request_id).await, RequestStatus::PrOpen);
    assert!(events(&db.store, "pull_request_head_approved").await.is_empty());

    // Another platform admin approves it: the flag clears and the request becomes merged.
    let (status, body) =
        call(&app, "POST", &actions, &other_admin, Some(approve_head.clone())).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(status_of(&db.store, request_id).await, RequestStatus::Merged);
    let now = db.store.pull_request(pr.id).await.unwrap().unwrap();
    assert_eq!(
        (
            now.approved_head_sha.as_str(),
            now.merged_head_sha.as_deref(),
            now.changed_after_approval
        ),
        (theirs.as_str(), Some(theirs.as_str()), false)
    );
    let approved = events(&db.store, "pull_request_head_approved").await;
    assert_eq!(approved.len(), 1);
    assert_eq!(
        (
            approved[0]["approved_head_sha"].as_str(),
            approved[0]["previously_approved_head_sha"].as_str()
        ),
        (Some(theirs.as_str()), Some(pr.head_sha.as_str()))
    );
    let (_, detail) = call(&app, "GET", &detail_uri, &developer, None).await;
    assert_eq!(detail["request"]["status"], "merged");
    assert_eq!(detail["pull_requests"][0]["changed_after_approval"], false);
    // The evidence keeps the fact that the merged change was not the one first approved.
    let rows = audit::evidence::rows(&db.store).await.unwrap();
    assert!(rows[0].merged_head_differs);
    assert_eq!(rows[0].outcome, "merged");

    // Nothing is left to approve.
    let (status, body) = call(&app, "POST", &actions, &other_admin, Some(approve_head)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
}

async fn a_merge_of_the_approved_head_makes_the_request_merged(db: TestDatabase) {
    let Setup { remote, app, request_id, pr } = setup(&db.store).await;
    let admin = token(&db.store, "alex", "platform-admin", "").await;
    let (status, merged) =
        call(&app, "POST", &format!("/api/pull-requests/{}/merge", pr.id), &admin, None).await;
    assert_eq!(status, StatusCode::OK, "{merged}");
    assert_eq!(merged["changed_after_approval"], false);
    assert_eq!(merged["merged_head_sha"], pr.head_sha.as_str());
    assert_eq!(git(&["rev-parse", "main^2"], &remote.bare), pr.head_sha);
    assert_eq!(status_of(&db.store, request_id).await, RequestStatus::Merged);
    assert!(events(&db.store, "pull_request_changed_after_approval").await.is_empty());
    assert!(!audit::evidence::rows(&db.store).await.unwrap()[0].merged_head_differs);

    // No head waits for approval.
    let actions = format!("/api/v1/requests/{request_id}/actions");
    let (status, body) =
        call(&app, "POST", &actions, &admin, Some(json!({ "action": "approve_head" }))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
}
