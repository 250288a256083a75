//! Contract tests of the forge clients against a local HTTP mock (wiremock): each asserts the
//! method, path, headers and body the forge's REST documentation prescribes, and how 401, 404,
//! 409/422 (an existing pull request, reused) and rate limits are handled.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use meshport_server::gitops::{
    GitHub, GitLab, PrState, ProviderError, PullRequestDraft, PullRequestProvider,
};
use secrecy::SecretString;
use serde_json::json;
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const BRANCH: &str = "meshport/cart-0c1e";

fn token() -> SecretString {
    SecretString::from("tok-123")
}

fn draft() -> PullRequestDraft {
    PullRequestDraft {
        title: "Onboard cart to prod-app (request 0c1e)".into(),
        body: "Cart holds baskets.".into(),
        head: BRANCH.into(),
        base: "main".into(),
        labels: vec!["meshport".into(), "mesh".into()],
        reviewers: vec!["alex".into()],
    }
}

fn github(server: &MockServer) -> GitHub {
    // As for GitHub Enterprise: the API lives under /api/v3 of the server.
    GitHub::new(&format!("{}/api/v3", server.uri()), "shop", "gitops", &token()).unwrap()
}

fn gitea(server: &MockServer) -> GitHub {
    GitHub::gitea(&server.uri(), "shop", "gitops", &token()).unwrap()
}

fn gitlab(server: &MockServer) -> GitLab {
    GitLab::new(&server.uri(), "shop/gitops", &token()).unwrap()
}

fn pull_json(number: i64, state: &str, merged: bool) -> serde_json::Value {
    json!({
        "number": number,
        "state": state,
        "merged": merged,
        "merge_commit_sha": if merged { json!("9f1c2e") } else { json!(null) },
        "html_url": format!("https://git.example/shop/gitops/pull/{number}"),
        "head": { "ref": BRANCH, "sha": "e5a0c1" },
    })
}

/// Mounts the three calls GitHub and Gitea document for opening a labelled pull request with
/// reviewers, each expected once with `authorization` and the draft's body: create
/// (`POST …/pulls`), label (`POST …/issues/{n}/labels`), ask for review
/// (`POST …/pulls/{n}/requested_reviewers`).
async fn mount_pull_request_calls(
    server: &MockServer,
    repo_path: &str,
    authorization: &str,
    number: i64,
) {
    let calls = [
        (
            format!("{repo_path}/pulls"),
            json!({
                "title": "Onboard cart to prod-app (request 0c1e)",
                "head": BRANCH,
                "base": "main",
                "body": "Cart holds baskets.",
                "maintainer_can_modify": false,
            }),
            ResponseTemplate::new(201).set_body_json(pull_json(number, "open", false)),
        ),
        (
            format!("{repo_path}/issues/{number}/labels"),
            json!({ "labels": ["meshport", "mesh"] }),
            ResponseTemplate::new(200).set_body_json(json!([])),
        ),
        (
            format!("{repo_path}/pulls/{number}/requested_reviewers"),
            json!({ "reviewers": ["alex"] }),
            ResponseTemplate::new(201).set_body_json(pull_json(number, "open", false)),
        ),
    ];
    for (call_path, body, response) in calls {
        Mock::given(method("POST"))
            .and(path(call_path))
            .and(header("authorization", authorization))
            .and(body_json(body))
            .respond_with(response)
            .expect(1)
            .mount(server)
            .await;
    }
}

#[tokio::test]
async fn contract_github_opens_a_pull_request_with_labels_and_reviewers() {
    let server = MockServer::start().await;
    mount_pull_request_calls(&server, "/api/v3/repos/shop/gitops", "Bearer tok-123", 7).await;

    let pull = github(&server).open(&draft()).await.unwrap();
    assert_eq!((pull.number, pull.state), (7, PrState::Open));
    assert_eq!(pull.url, "https://git.example/shop/gitops/pull/7");
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 3);
    for request in requests {
        let header =
            |name: &str| request.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        assert!(
            header("user-agent").is_some_and(|a| a.starts_with("meshport/")),
            "GitHub requires a User-Agent"
        );
        assert_eq!(header("accept").as_deref(), Some("application/vnd.github+json"));
        assert_eq!(header("x-github-api-version").as_deref(), Some("2022-11-28"));
    }
}

#[tokio::test]
async fn contract_github_reuses_the_open_pull_request_when_one_exists() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v3/repos/shop/gitops/pulls"))
        .respond_with(ResponseTemplate::new(422).set_body_json(json!({
            "message": "Validation Failed",
            "errors": [{ "resource": "PullRequest", "code": "custom",
                         "message": format!("A pull request already exists for shop:{BRANCH}.") }],
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v3/repos/shop/gitops/pulls"))
        .and(query_param("head", format!("shop:{BRANCH}")))
        .and(query_param("state", "open"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!([pull_json(5, "open", false)])),
        )
        .expect(1)
        .mount(&server)
        .await;
    let mut draft = draft();
    draft.labels.clear();
    draft.reviewers.clear();
    let pull = github(&server).open(&draft).await.unwrap();
    assert_eq!(pull.number, 5);
}

#[tokio::test]
async fn contract_github_pull_request_states() {
    let server = MockServer::start().await;
    for (number, state, merged) in [(1, "open", false), (2, "closed", true), (3, "closed", false)] {
        Mock::given(method("GET"))
            .and(path(format!("/api/v3/repos/shop/gitops/pulls/{number}")))
            .and(header("authorization", "Bearer tok-123"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(pull_json(number, state, merged)),
            )
            .mount(&server)
            .await;
    }
    let forge = github(&server);
    assert_eq!(forge.state(1).await.unwrap().state, PrState::Open);
    let merged = forge.state(2).await.unwrap();
    assert_eq!(
        (merged.state, merged.merge_commit_sha.as_deref(), merged.head_sha.as_deref()),
        (PrState::Merged, Some("9f1c2e"), Some("e5a0c1"))
    );
    assert_eq!(forge.state(3).await.unwrap().state, PrState::Closed);
}

/// Every forge maps error answers alike; `call` runs one provider call against the mock.
async fn error_for(
    status: u16,
    headers: &[(&str, String)],
    body: serde_json::Value,
) -> ProviderError {
    let server = MockServer::start().await;
    let mut response = ResponseTemplate::new(status).set_body_json(body);
    for (name, value) in headers {
        response = response.insert_header(*name, value.as_str());
    }
    Mock::given(method("GET")).respond_with(response).mount(&server).await;
    github(&server).state(7).await.unwrap_err()
}

#[tokio::test]
async fn contract_github_errors_name_the_setting_or_the_wait() {
    let unauthorized = error_for(401, &[], json!({"message": "Bad credentials"})).await;
    assert!(matches!(unauthorized, ProviderError::Unauthorized { .. }), "{unauthorized}");
    assert!(unauthorized.to_string().contains("gitops.token"), "{unauthorized}");
    assert!(!unauthorized.to_string().contains("tok-123"));

    let missing = error_for(404, &[], json!({"message": "Not Found"})).await;
    assert!(matches!(missing, ProviderError::NotFound { .. }), "{missing}");
    assert!(
        missing.to_string().contains("shop/gitops") && missing.to_string().contains("gitops.owner"),
        "{missing}"
    );

    let reset = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + 90;
    let primary = error_for(
        403,
        &[("x-ratelimit-remaining", "0".into()), ("x-ratelimit-reset", reset.to_string())],
        json!({"message": "API rate limit exceeded"}),
    )
    .await;
    let wait = primary.retry_after().unwrap();
    assert!(matches!(primary, ProviderError::RateLimited { .. }), "{primary}");
    assert!((Duration::from_secs(85)..=Duration::from_secs(90)).contains(&wait), "{wait:?}");

    let secondary =
        error_for(429, &[("retry-after", "30".into())], json!({"message": "slow down"})).await;
    assert_eq!(secondary.retry_after(), Some(Duration::from_secs(30)));

    let forbidden = error_for(
        403,
        &[("x-ratelimit-remaining", "4999".into())],
        json!({"message": "Resource not accessible by integration"}),
    )
    .await;
    assert!(matches!(forbidden, ProviderError::Forbidden { .. }), "{forbidden}");
    assert!(forbidden.to_string().contains("Resource not accessible"), "{forbidden}");
    assert_eq!(forbidden.retry_after(), None);
}

#[tokio::test]
async fn contract_github_a_refused_pull_request_without_an_open_one_is_an_error() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v3/repos/shop/gitops/pulls"))
        .respond_with(ResponseTemplate::new(422).set_body_json(json!({
            "message": "Validation Failed",
            "errors": [{ "resource": "PullRequest", "field": "base", "code": "invalid" }],
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v3/repos/shop/gitops/pulls"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&server)
        .await;
    let error = github(&server).open(&draft()).await.unwrap_err();
    assert!(matches!(error, ProviderError::Rejected { status: 422, .. }), "{error}");
    assert!(
        error.to_string().contains("Validation Failed") && error.to_string().contains("base"),
        "{error}"
    );
}

#[tokio::test]
async fn contract_gitea_opens_a_pull_request_with_its_token_header() {
    let server = MockServer::start().await;
    mount_pull_request_calls(&server, "/api/v1/repos/shop/gitops", "token tok-123", 3).await;
    let pull = gitea(&server).open(&draft()).await.unwrap();
    assert_eq!((pull.number, pull.state), (3, PrState::Open));
}

#[tokio::test]
async fn contract_gitea_reuses_the_open_pull_request_on_409() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/repos/shop/gitops/pulls"))
        .respond_with(ResponseTemplate::new(409).set_body_json(json!({
            "message": "pull request already exists for these targets",
        })))
        .mount(&server)
        .await;
    let mut other = pull_json(2, "open", false);
    other["head"]["ref"] = json!("someone/else");
    Mock::given(method("GET"))
        .and(path("/api/v1/repos/shop/gitops/pulls"))
        .and(query_param("state", "open"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!([other, pull_json(4, "open", false)])),
        )
        .mount(&server)
        .await;
    let mut draft = draft();
    draft.labels.clear();
    draft.reviewers.clear();
    assert_eq!(
        gitea(&server).open(&draft).await.unwrap().number,
        4,
        "the one from meshport's branch"
    );
}

#[tokio::test]
async fn contract_gitea_unknown_repository_is_a_clear_404() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/repos/shop/gitops/pulls"))
        .respond_with(
            ResponseTemplate::new(404).set_body_json(json!({"message": "GetRepositoryByName"})),
        )
        .mount(&server)
        .await;
    let error = gitea(&server).open(&draft()).await.unwrap_err();
    assert!(matches!(error, ProviderError::NotFound { .. }), "{error}");
    assert!(
        error.to_string().starts_with("Gitea does not know the repository shop/gitops"),
        "{error}"
    );
}

fn merge_request_json(iid: i64, state: &str) -> serde_json::Value {
    json!({
        "iid": iid,
        "id": 1000 + iid,
        "state": state,
        "web_url": format!("https://gitlab.example/shop/gitops/-/merge_requests/{iid}"),
        "sha": "aaa111",
        "merge_commit_sha": if state == "merged" { json!("bbb222") } else { json!(null) },
        "squash_commit_sha": null,
        "source_branch": BRANCH,
    })
}

#[tokio::test]
async fn contract_gitlab_opens_a_merge_request_with_reviewer_ids() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v4/users"))
        .and(query_param("username", "alex"))
        .and(header("private-token", "tok-123"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!([{ "id": 42, "username": "alex" }])),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        // The project path is one URL-encoded segment.
        .and(path("/api/v4/projects/shop%2Fgitops/merge_requests"))
        .and(header("private-token", "tok-123"))
        .and(body_json(json!({
            "source_branch": BRANCH,
            "target_branch": "main",
            "title": "Onboard cart to prod-app (request 0c1e)",
            "description": "Cart holds baskets.",
            "labels": "meshport,mesh",
            "reviewer_ids": [42],
            "remove_source_branch": true,
        })))
        .respond_with(ResponseTemplate::new(201).set_body_json(merge_request_json(9, "opened")))
        .expect(1)
        .mount(&server)
        .await;
    let pull = gitlab(&server).open(&draft()).await.unwrap();
    assert_eq!((pull.number, pull.state), (9, PrState::Open));
    assert_eq!(pull.url, "https://gitlab.example/shop/gitops/-/merge_requests/9");
}

#[tokio::test]
async fn contract_gitlab_reuses_the_open_merge_request_and_reads_states() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v4/projects/shop%2Fgitops/merge_requests"))
        .respond_with(ResponseTemplate::new(409).set_body_json(json!({
            "message": ["Another open merge request already exists for this source branch: !8"],
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v4/projects/shop%2Fgitops/merge_requests"))
        .and(query_param("state", "opened"))
        .and(query_param("source_branch", BRANCH))
        .and(query_param("target_branch", "main"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!([merge_request_json(8, "opened")])),
        )
        .expect(1)
        .mount(&server)
        .await;
    for (iid, state) in [(8, "merged"), (10, "closed"), (11, "locked")] {
        Mock::given(method("GET"))
            .and(path(format!("/api/v4/projects/shop%2Fgitops/merge_requests/{iid}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(merge_request_json(iid, state)))
            .mount(&server)
            .await;
    }
    let forge = gitlab(&server);
    let mut draft = draft();
    draft.reviewers.clear();
    assert_eq!(forge.open(&draft).await.unwrap().number, 8);
    let merged = forge.state(8).await.unwrap();
    assert_eq!(
        (merged.state, merged.merge_commit_sha.as_deref(), merged.head_sha.as_deref()),
        (PrState::Merged, Some("bbb222"), Some("aaa111"))
    );
    assert_eq!(forge.state(10).await.unwrap().state, PrState::Closed);
    assert_eq!(forge.state(11).await.unwrap().state, PrState::Open, "locked is still open");
}

#[tokio::test]
async fn contract_gitlab_errors_name_the_setting_or_the_wait() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v4/users"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&server)
        .await;
    let error = gitlab(&server).open(&draft()).await.unwrap_err();
    assert!(
        error.to_string().contains("`alex`") && error.to_string().contains("gitops.reviewers"),
        "{error}"
    );

    let server = MockServer::start().await;
    let answers = [
        ResponseTemplate::new(429)
            .insert_header("ratelimit-remaining", "0")
            .insert_header("retry-after", "12")
            .set_body_string("Retry later"),
        ResponseTemplate::new(401).set_body_json(json!({"message": "401 Unauthorized"})),
        ResponseTemplate::new(404).set_body_json(json!({"message": "404 Project Not Found"})),
    ];
    for (iid, answer) in (1..).zip(answers) {
        Mock::given(method("GET"))
            .and(path(format!("/api/v4/projects/shop%2Fgitops/merge_requests/{iid}")))
            .respond_with(answer)
            .mount(&server)
            .await;
    }
    let forge = gitlab(&server);
    let limited = forge.state(1).await.unwrap_err();
    assert!(matches!(limited, ProviderError::RateLimited { .. }), "{limited}");
    assert_eq!(limited.retry_after(), Some(Duration::from_secs(12)));
    assert!(forge.state(2).await.unwrap_err().to_string().contains("gitops.token"));
    let missing = forge.state(3).await.unwrap_err().to_string();
    assert!(missing.contains("shop/gitops") && missing.contains("gitops.project"), "{missing}");
}

/// A forge (or something in front of it) answering with a redirect to another host never gets
/// the token sent on: the GitLab and GitHub clients follow no redirects, and the call fails.
#[tokio::test]
async fn contract_a_redirecting_forge_never_forwards_the_token_to_another_host() {
    let elsewhere = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .mount(&elsewhere)
        .await;
    let forge = MockServer::start().await;
    let target = format!("{}/stolen", elsewhere.uri());
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(302).insert_header("location", target.as_str()))
        .mount(&forge)
        .await;
    assert!(gitlab(&forge).state(1).await.is_err(), "GitLab: a redirect is an error");
    assert!(github(&forge).state(1).await.is_err(), "GitHub: a redirect is an error");
    let received = elsewhere.received_requests().await.unwrap_or_default();
    assert!(received.is_empty(), "the second host got {} request(s)", received.len());
}
