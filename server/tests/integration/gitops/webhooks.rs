//! Pull request tracking: webhook deliveries (signatures, replays, unknown repositories) and
//! polling, which share one transition, on SQLite and PostgreSQL. The forge's API is a local
//! mock (wiremock), so these are contract tests; git is real.

use std::sync::Arc;

use app::onboarding::RequestStatus;
use axum::body::Body;
use http::{HeaderMap, Request, StatusCode};
use meshport_server::config::Config;
use meshport_server::gitops::webhook::sign;
use meshport_server::gitops::{
    Gitops, GitopsConfig, ProviderKind, Transition, WebhookApplyError, WebhookError, WebhookOutcome,
};
use meshport_server::store::PullRequestRecord;
use meshport_server::vault::Vault;
use meshport_server::web::{AppState, router};
use serde_json::json;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::{Remote, cart_request, events, open_gitops, proposal};
use crate::harness::{Backend, TestDatabase, openbao};

on_both_backends!(
    contract_github_webhooks_apply_signed_deliveries_once,
    contract_an_older_webhook_report_never_overrides_a_newer_state,
    contract_polling_applies_the_forges_state_like_a_webhook,
    contract_a_webhook_merge_of_a_head_pushed_after_approval_is_flagged,
);

const SECRET: &str = "hook-secret-5be1";

/// A forge-backed setup: the bare repository for git, the mock for the forge's API, and a pull
/// request meshport opened.
struct Forge {
    _remote: Remote,
    server: MockServer,
    gitops: Gitops,
    pr: PullRequestRecord,
    settings: GitopsConfig,
}

async fn forge(kind: ProviderKind, db: &TestDatabase) -> Forge {
    let remote = Remote::new();
    let server = MockServer::start().await;
    let mut settings = remote.settings();
    settings.provider = kind;
    settings.api_url = Some(server.uri());
    settings.token = Some("tok-123".to_owned().into());
    settings.webhook_secret = Some(SECRET.to_owned().into());
    match kind {
        ProviderKind::Gitlab => settings.project = Some("shop/gitops".into()),
        _ => {
            settings.owner = Some("shop".into());
            settings.repo = Some("gitops".into());
        }
    }
    let created = match kind {
        ProviderKind::Gitlab => json!({
            "iid": 7, "state": "opened", "web_url": "https://gitlab.example/shop/gitops/-/merge_requests/7",
        }),
        _ => {
            json!({ "number": 7, "state": "open", "html_url": "https://git.example/shop/gitops/pull/7" })
        }
    };
    Mock::given(method("POST"))
        .and(path_regex(r"/(pulls|merge_requests)$"))
        .respond_with(ResponseTemplate::new(201).set_body_json(created))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path_regex(r"/issues/7/labels$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&server)
        .await;
    let gitops = open_gitops(&settings, db.store.clone()).unwrap();
    let request_id = cart_request(&db.store).await;
    let pr = gitops.propose(&proposal(request_id)).await.unwrap();
    assert_eq!((pr.number, pr.provider.as_str(), pr.state.as_str()), (7, kind.as_str(), "open"));
    Forge { _remote: remote, server, gitops, pr, settings }
}

/// A GitHub (and Gitea) `pull_request` event; `head` is the branch's head commit.
fn github_body(repository: &str, number: i64, state: &str, merged: bool, head: &str) -> Vec<u8> {
    github_event(repository, number, state, merged, head).to_string().into_bytes()
}

/// The same event, with the forge's time of the change.
fn github_body_at(state: &str, head: &str, updated_at: &str) -> Vec<u8> {
    let mut event = github_event("shop/gitops", 7, state, false, head);
    event["pull_request"]["updated_at"] = json!(updated_at);
    event.to_string().into_bytes()
}

fn github_event(
    repository: &str,
    number: i64,
    state: &str,
    merged: bool,
    head: &str,
) -> serde_json::Value {
    json!({
        "action": if state == "open" { "reopened" } else { "closed" },
        "number": number,
        "pull_request": {
            "number": number,
            "state": state,
            "merged": merged,
            "merge_commit_sha": if merged { json!("9f1c2e") } else { json!(null) },
            "html_url": format!("https://git.example/{repository}/pull/{number}"),
            "head": { "ref": "meshport/cart", "sha": head },
        },
        "repository": { "full_name": repository },
    })
}

fn github_headers(delivery: &str, event: &str, signature: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("x-github-delivery", delivery.parse().unwrap());
    headers.insert("x-github-event", event.parse().unwrap());
    headers.insert("x-hub-signature-256", format!("sha256={signature}").parse().unwrap());
    headers
}

async fn deliver(
    forge: &Forge,
    delivery: &str,
    body: &[u8],
) -> Result<WebhookOutcome, WebhookApplyError> {
    let headers = github_headers(delivery, "pull_request", &sign(SECRET, body));
    forge.gitops.apply_webhook(ProviderKind::Github, &headers, body).await
}

async fn contract_github_webhooks_apply_signed_deliveries_once(db: TestDatabase) {
    let forge = forge(ProviderKind::Github, &db).await;
    // The pull request meshport opened tells reviewers what, for whom, approved by whom.
    let requests = forge.server.received_requests().await.unwrap();
    let opened: serde_json::Value = requests[0].body_json().unwrap();
    let id = forge.pr.request_id;
    assert_eq!(opened["title"], format!("Onboard cart to prod-app (request {id})"));
    assert_eq!(
        (opened["head"].as_str(), opened["base"].as_str()),
        (Some(forge.pr.branch.as_str()), Some("main"))
    );
    let description = opened["body"].as_str().unwrap();
    for expected in [
        "Cart holds baskets; frontend calls it over mTLS.",
        &format!("[{id}](http://127.0.0.1:3000/requests/{id})"),
        "| Requested by | Dana Developer |",
        "| Approved by | Alex Admin |",
        "adds `manifests/prod-app/cart/`",
        "- `manifests/prod-app/cart/deployment.yaml`",
    ] {
        assert!(description.contains(expected), "{expected} not in:\n{description}");
    }
    let merged = github_body("shop/gitops", 7, "closed", true, &forge.pr.head_sha);

    // A forged delivery is refused and leaves nothing behind, not even its delivery id.
    let forged = github_headers("d-1", "pull_request", &sign("guessed-secret", &merged));
    let refused = forge.gitops.apply_webhook(ProviderKind::Github, &forged, &merged).await;
    assert!(
        matches!(refused, Err(WebhookApplyError::Refused(WebhookError::BadSignature(_)))),
        "{refused:?}"
    );
    assert_eq!(db.store.pull_request(forge.pr.id).await.unwrap().unwrap().state, "open");

    let applied = deliver(&forge, "d-1", &merged).await.unwrap();
    let WebhookOutcome::Applied(Transition::Changed(pr)) = applied else { panic!("{applied:?}") };
    assert_eq!((pr.state.as_str(), pr.merge_commit_sha.as_deref()), ("merged", Some("9f1c2e")));
    // The approved head was merged: nothing to flag.
    assert_eq!(pr.merged_head_sha.as_deref(), Some(forge.pr.head_sha.as_str()));
    assert!(!pr.changed_after_approval);

    // The same delivery again (a replay) changes nothing, nor does the captured body re-sent
    // under a new delivery id (the signature covers the body only).
    assert_eq!(deliver(&forge, "d-1", &merged).await.unwrap(), WebhookOutcome::Duplicate);
    assert_eq!(deliver(&forge, "d-2", &merged).await.unwrap(), WebhookOutcome::Duplicate);
    // Merged is final: a late "closed" does not undo it.
    let closed = github_body("shop/gitops", 7, "closed", false, &forge.pr.head_sha);
    assert_eq!(
        deliver(&forge, "d-3", &closed).await.unwrap(),
        WebhookOutcome::Applied(Transition::Unchanged)
    );
    let merges = events(&db.store, "pull_request_merged").await;
    assert_eq!(merges.len(), 1);
    assert_eq!(
        (merges[0]["commit_sha"].as_str(), merges[0]["source"].as_str()),
        (Some("9f1c2e"), Some("webhook"))
    );

    // Signed, but not about meshport's repository or pull requests.
    let elsewhere = github_body("someone/else", 7, "closed", true, &forge.pr.head_sha);
    assert_eq!(
        deliver(&forge, "d-4", &elsewhere).await.unwrap(),
        WebhookOutcome::Ignored("unknown repository")
    );
    let unknown = github_body("Shop/GitOps", 99, "closed", true, &forge.pr.head_sha);
    assert_eq!(
        deliver(&forge, "d-5", &unknown).await.unwrap(),
        WebhookOutcome::Applied(Transition::Unknown)
    );
    let ping = github_headers("d-6", "ping", &sign(SECRET, b"{}"));
    assert_eq!(
        forge.gitops.apply_webhook(ProviderKind::Github, &ping, b"{}").await.unwrap(),
        WebhookOutcome::Ignored("not a pull request event")
    );
    // Deliveries claiming another forge are refused.
    let other = forge.gitops.apply_webhook(ProviderKind::Gitea, &HeaderMap::new(), &merged).await;
    assert!(matches!(other, Err(WebhookApplyError::Refused(WebhookError::NotConfigured("gitea")))));
}

async fn contract_an_older_webhook_report_never_overrides_a_newer_state(db: TestDatabase) {
    let forge = forge(ProviderKind::Github, &db).await;
    let head = forge.pr.head_sha.clone();
    let state = || async { db.store.pull_request(forge.pr.id).await.unwrap().unwrap().state };
    let closed = github_body_at("closed", &head, "2026-12-07T10:00:05Z");
    let applied = deliver(&forge, "c-1", &closed).await.unwrap();
    assert!(matches!(applied, WebhookOutcome::Applied(Transition::Changed(_))), "{applied:?}");
    // The "open" of before the close arrives late (forges retry failed deliveries).
    let earlier = github_body_at("open", &head, "2026-12-07T10:00:01Z");
    assert_eq!(
        deliver(&forge, "c-2", &earlier).await.unwrap(),
        WebhookOutcome::Applied(Transition::Unchanged)
    );
    assert_eq!(state().await.as_str(), "closed");
    // A reopening after the close is applied.
    let reopened = github_body_at("open", &head, "2026-12-07T10:00:09Z");
    let applied = deliver(&forge, "c-3", &reopened).await.unwrap();
    assert!(matches!(applied, WebhookOutcome::Applied(Transition::Changed(_))), "{applied:?}");
    assert_eq!(state().await.as_str(), "open");
    let moves = events(&db.store, "pull_request_closed").await.len()
        + events(&db.store, "pull_request_opened").await.len();
    assert_eq!(moves, 3, "opened by meshport, closed, reopened: the stale report left no event");
}

async fn contract_polling_applies_the_forges_state_like_a_webhook(db: TestDatabase) {
    let forge = forge(ProviderKind::Github, &db).await;
    let answer = |state: &str, merged: bool| {
        ResponseTemplate::new(200).set_body_json(json!({
            "number": 7, "state": state, "merged": merged,
            "merge_commit_sha": if merged { json!("77aa00") } else { json!(null) },
            "html_url": "https://git.example/shop/gitops/pull/7",
            "head": { "ref": forge.pr.branch, "sha": forge.pr.head_sha },
        }))
    };
    Mock::given(method("GET"))
        .and(path("/repos/shop/gitops/pulls/7"))
        .respond_with(answer("closed", false))
        .up_to_n_times(1)
        .mount(&forge.server)
        .await;
    assert_eq!(forge.gitops.poll().await.unwrap(), 1);
    let closed = db.store.pull_request(forge.pr.id).await.unwrap().unwrap();
    assert_eq!(closed.state, "closed");
    assert_eq!(forge.gitops.poll().await.unwrap(), 0, "closed ones are not polled");

    // Reopened on the forge: the webhook brings it back, then polling sees the merge.
    let reopened = github_body("shop/gitops", 7, "open", false, &forge.pr.head_sha);
    let back = deliver(&forge, "r-1", &reopened).await.unwrap();
    assert!(
        matches!(back, WebhookOutcome::Applied(Transition::Changed(ref pr)) if pr.state == "open"),
        "{back:?}"
    );
    Mock::given(method("GET"))
        .and(path("/repos/shop/gitops/pulls/7"))
        .respond_with(answer("closed", true))
        .mount(&forge.server)
        .await;
    assert_eq!(forge.gitops.poll().await.unwrap(), 1);
    let merged = db.store.pull_request(forge.pr.id).await.unwrap().unwrap();
    assert_eq!(
        (merged.state.as_str(), merged.merge_commit_sha.as_deref()),
        ("merged", Some("77aa00"))
    );

    let mut kinds = Vec::new();
    for action in ["pull_request_opened", "pull_request_closed", "pull_request_merged"] {
        kinds.push(events(&db.store, action).await.len());
    }
    assert_eq!(kinds, [2, 1, 1], "opened, reopened; closed; merged");
    let rows = meshport_server::audit::evidence::rows(&db.store).await.unwrap();
    assert_eq!(rows[0].commit_sha, "77aa00");
    assert_eq!(rows[0].pr_url, "https://git.example/shop/gitops/pull/7");
}

async fn contract_a_webhook_merge_of_a_head_pushed_after_approval_is_flagged(db: TestDatabase) {
    let github = forge(ProviderKind::Github, &db).await;
    let request_id = github.pr.request_id;
    for (from, to) in [
        (RequestStatus::Submitted, RequestStatus::Approved),
        (RequestStatus::Approved, RequestStatus::Provisioning),
        (RequestStatus::Provisioning, RequestStatus::PrOpen),
    ] {
        assert!(db.store.transition_request(request_id, from, to).await.unwrap());
    }
    // Someone pushed to the branch after approval; GitHub reports the head it merged.
    let theirs = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";
    let merged = github_body("shop/gitops", 7, "closed", true, theirs);
    let applied = deliver(&github, "c-1", &merged).await.unwrap();
    let WebhookOutcome::Applied(Transition::Changed(pr)) = applied else { panic!("{applied:?}") };
    assert_eq!(
        (pr.state.as_str(), pr.changed_after_approval, pr.merged_head_sha.as_deref()),
        ("merged", true, Some(theirs))
    );
    assert_eq!(
        pr.approved_head_sha, github.pr.head_sha,
        "the approval still covers meshport's push"
    );
    let request = db.store.request(request_id).await.unwrap().unwrap();
    assert_eq!(request.status, RequestStatus::PrOpen, "not recorded as merged");
    let flagged = events(&db.store, "pull_request_changed_after_approval").await;
    assert_eq!(flagged.len(), 1);
    assert_eq!(
        (flagged[0]["merged_head_sha"].as_str(), flagged[0]["source"].as_str()),
        (Some(theirs), Some("webhook"))
    );
    // A replayed or repeated delivery neither flags it twice nor moves the request.
    assert_eq!(deliver(&github, "c-1", &merged).await.unwrap(), WebhookOutcome::Duplicate);
    assert_eq!(deliver(&github, "c-2", &merged).await.unwrap(), WebhookOutcome::Duplicate);
    let mut again: serde_json::Value = serde_json::from_slice(&merged).unwrap();
    again["action"] = json!("edited");
    assert_eq!(
        deliver(&github, "c-3", again.to_string().as_bytes()).await.unwrap(),
        WebhookOutcome::Applied(Transition::Unchanged)
    );
    assert_eq!(events(&db.store, "pull_request_changed_after_approval").await.len(), 1);

    // A merge event without the head (a payload meshport cannot check) is flagged too.
    let db = TestDatabase::new(Backend::Sqlite).await;
    let github = forge(ProviderKind::Github, &db).await;
    let mut body: serde_json::Value =
        serde_json::from_slice(&github_body("shop/gitops", 7, "closed", true, "x")).unwrap();
    body["pull_request"].as_object_mut().unwrap().remove("head");
    let applied = deliver(&github, "c-3", body.to_string().as_bytes()).await.unwrap();
    let WebhookOutcome::Applied(Transition::Changed(pr)) = applied else { panic!("{applied:?}") };
    assert_eq!((pr.changed_after_approval, pr.merged_head_sha), (true, None));
}

#[tokio::test]
async fn contract_gitea_and_gitlab_deliveries_are_verified_their_own_way() {
    let db = TestDatabase::new(Backend::Sqlite).await;
    let gitea = forge(ProviderKind::Gitea, &db).await;
    let body = github_body("shop/gitops", 7, "closed", true, &gitea.pr.head_sha);
    let mut headers = HeaderMap::new();
    headers.insert("x-gitea-delivery", "g-1".parse().unwrap());
    headers.insert("x-gitea-event", "pull_request".parse().unwrap());
    // Gitea signs with the bare hex digest, without GitHub's `sha256=` prefix.
    headers.insert("x-gitea-signature", format!("sha256={}", sign(SECRET, &body)).parse().unwrap());
    let refused = gitea.gitops.apply_webhook(ProviderKind::Gitea, &headers, &body).await;
    assert!(matches!(
        refused,
        Err(WebhookApplyError::Refused(WebhookError::BadSignature("x-gitea-signature")))
    ));
    headers.insert("x-gitea-signature", sign(SECRET, &body).parse().unwrap());
    let applied = gitea.gitops.apply_webhook(ProviderKind::Gitea, &headers, &body).await.unwrap();
    assert!(
        matches!(applied, WebhookOutcome::Applied(Transition::Changed(ref pr)) if pr.state == "merged")
    );

    let db = TestDatabase::new(Backend::Sqlite).await;
    let gitlab = forge(ProviderKind::Gitlab, &db).await;
    let body = json!({
        "object_kind": "merge_request",
        "project": { "id": 5, "path_with_namespace": "shop/gitops" },
        "object_attributes": {
            "iid": 7, "state": "merged", "merge_commit_sha": "c0ffee",
            "url": "https://gitlab.example/shop/gitops/-/merge_requests/7",
            "last_commit": { "id": gitlab.pr.head_sha },
        },
    })
    .to_string();
    let mut headers = HeaderMap::new();
    headers.insert("idempotency-key", "k-1".parse().unwrap());
    headers.insert("x-gitlab-event", "Merge Request Hook".parse().unwrap());
    headers.insert("x-gitlab-token", "hook-secret".parse().unwrap());
    let refused =
        gitlab.gitops.apply_webhook(ProviderKind::Gitlab, &headers, body.as_bytes()).await;
    assert!(matches!(
        refused,
        Err(WebhookApplyError::Refused(WebhookError::BadSignature("x-gitlab-token")))
    ));
    headers.insert("x-gitlab-token", SECRET.parse().unwrap());
    let applied =
        gitlab.gitops.apply_webhook(ProviderKind::Gitlab, &headers, body.as_bytes()).await.unwrap();
    let WebhookOutcome::Applied(Transition::Changed(pr)) = applied else { panic!("{applied:?}") };
    assert_eq!(pr.merge_commit_sha.as_deref(), Some("c0ffee"));
    assert_eq!(pr.merged_head_sha.as_deref(), Some(gitlab.pr.head_sha.as_str()));
    assert!(!pr.changed_after_approval);
    let replay = gitlab.gitops.apply_webhook(ProviderKind::Gitlab, &headers, body.as_bytes()).await;
    assert_eq!(replay.unwrap(), WebhookOutcome::Duplicate);
}

#[tokio::test]
async fn the_webhook_route_takes_forge_posts_without_a_browser_origin() {
    let db = TestDatabase::new(Backend::Sqlite).await;
    let forge = forge(ProviderKind::Github, &db).await;
    let vault = Arc::new(Vault::new(&openbao()).unwrap());
    let config = Config { gitops: forge.settings.clone(), ..Config::default() };
    let app = router(AppState::new(&config, db.store.clone(), vault, false).await.unwrap());
    let post = |uri: &str, headers: HeaderMap, body: Vec<u8>| {
        let mut request = Request::post(uri).body(Body::from(body)).unwrap();
        *request.headers_mut() = headers;
        request
    };
    let send = |request: Request<Body>| {
        let app = app.clone();
        async move {
            let (status, _, bytes) = crate::harness::call(&app, request).await;
            (status, serde_json::from_slice::<serde_json::Value>(&bytes).unwrap())
        }
    };
    let body = github_body("shop/gitops", 7, "closed", true, &forge.pr.head_sha);

    let forged = github_headers("w-1", "pull_request", &sign("nope", &body));
    let (status, answer) = send(post("/api/webhooks/github", forged, body.clone())).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("bad_signature"))
    );
    // The forged delivery is a refused attempt in the audit trail: one event, the forge as actor.
    let refused: Vec<_> = db
        .store
        .recent_audit_events(100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "access_refused")
        .collect();
    assert_eq!(refused.len(), 1);
    assert_eq!(
        (refused[0].actor_subject.as_str(), refused[0].outcome.as_str()),
        ("webhook:github", "failure")
    );
    assert!(refused[0].details.contains("x-hub-signature-256"), "{}", refused[0].details);

    let signed = github_headers("w-1", "pull_request", &sign(SECRET, &body));
    let (status, answer) = send(post("/api/webhooks/github", signed.clone(), body.clone())).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["pull_request"]["state"], "merged");
    assert_eq!(answer["pull_request"]["merge_commit_sha"], "9f1c2e");

    let (status, answer) = send(post("/api/webhooks/github", signed, body.clone())).await;
    assert_eq!((status, answer["status"].as_str()), (StatusCode::OK, Some("duplicate")));

    let elsewhere = github_body("someone/else", 7, "closed", true, &forge.pr.head_sha);
    let headers = github_headers("w-2", "pull_request", &sign(SECRET, &elsewhere));
    let (status, answer) = send(post("/api/webhooks/github", headers, elsewhere)).await;
    assert_eq!(
        (status, answer["reason"].as_str()),
        (StatusCode::ACCEPTED, Some("unknown repository"))
    );

    let (status, answer) = send(post("/api/webhooks/gitlab", HeaderMap::new(), body.clone())).await;
    assert_eq!((status, answer["error"].as_str()), (StatusCode::NOT_FOUND, Some("not_configured")));
    let (status, _) = send(post("/api/webhooks/bitbucket", HeaderMap::new(), body)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
