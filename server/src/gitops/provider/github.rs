//! GitHub and GitHub Enterprise Server pull requests over the REST API
//! (<https://docs.github.com/en/rest/pulls/pulls>), and Gitea/Forgejo, whose API under
//! `/api/v1` has the same shape (<https://gitea.com/api/swagger>): the same paths and fields,
//! `Authorization: token …` instead of `Bearer`, and 409 for a pull request that exists.
//! octocrab is not used: its errors drop the response headers, and the wait a rate limit asks
//! for (`retry-after`, `x-ratelimit-reset`) is needed; one small client serves every forge.

use http::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::forge_http::{ForgeHttp, number, text};
use super::{
    PrState, ProviderError, ProviderKind, PullRequestDraft, PullRequestProvider, RemotePullRequest,
};

/// Settings a 404 points at.
const REPO_SETTINGS: &str = "`gitops.owner`, `gitops.repo` and `gitops.api_url` (and that the token can see the repository)";

/// A repository on GitHub, or on Gitea/Forgejo.
pub struct GitHub {
    http: ForgeHttp,
    owner: String,
    repo: String,
    kind: ProviderKind,
}

impl GitHub {
    /// `api_url` is `https://api.github.com`, or `https://HOST/api/v3` for GitHub Enterprise.
    pub fn new(
        api_url: &str,
        owner: &str,
        repo: &str,
        token: &SecretString,
    ) -> Result<Self, ProviderError> {
        let http = ForgeHttp::new(
            "GitHub",
            api_url,
            "authorization",
            format!("Bearer {}", token.expose_secret()).into(),
            &[("accept", "application/vnd.github+json"), ("x-github-api-version", "2022-11-28")],
            format!("the repository {owner}/{repo}"),
            REPO_SETTINGS,
        )?;
        Ok(Self {
            http,
            owner: owner.to_owned(),
            repo: repo.to_owned(),
            kind: ProviderKind::Github,
        })
    }

    /// A repository on Gitea or Forgejo; `server_url` is the server's address (the API is under
    /// `/api/v1`).
    pub fn gitea(
        server_url: &str,
        owner: &str,
        repo: &str,
        token: &SecretString,
    ) -> Result<Self, ProviderError> {
        let api_url = format!("{}/api/v1", server_url.trim_end_matches('/'));
        let http = ForgeHttp::new(
            "Gitea",
            &api_url,
            "authorization",
            format!("token {}", token.expose_secret()).into(),
            &[("accept", "application/json")],
            format!("the repository {owner}/{repo}"),
            REPO_SETTINGS,
        )?;
        Ok(Self { http, owner: owner.to_owned(), repo: repo.to_owned(), kind: ProviderKind::Gitea })
    }

    /// `repos/{owner}/{repo}/…rest`.
    fn path<'a>(&'a self, rest: &[&'a str]) -> Vec<&'a str> {
        [["repos", self.owner.as_str(), self.repo.as_str()].as_slice(), rest].concat()
    }

    fn pull(&self, json: &Value) -> Result<RemotePullRequest, ProviderError> {
        parse_pull(json, self.http.forge)
    }

    /// The open pull request from `branch`, if any. GitHub filters by `head`; Gitea ignores
    /// that parameter, so the list is also filtered here (its 50 newest open ones).
    async fn open_from(&self, branch: &str) -> Result<Option<RemotePullRequest>, ProviderError> {
        let head = format!("{}:{branch}", self.owner);
        let list = self
            .http
            .call(
                Method::GET,
                &self.path(&["pulls"]),
                &[("head", &head), ("state", "open"), ("limit", "50"), ("per_page", "50")],
                None,
            )
            .await?;
        let from_branch = |pull: &&Value| pull["head"]["ref"].as_str() == Some(branch);
        list.as_array()
            .and_then(|pulls| pulls.iter().find(from_branch))
            .map(|pull| self.pull(pull))
            .transpose()
    }
}

#[async_trait::async_trait]
impl PullRequestProvider for GitHub {
    fn kind(&self) -> ProviderKind {
        self.kind
    }

    async fn open(&self, draft: &PullRequestDraft) -> Result<RemotePullRequest, ProviderError> {
        let body = json!({
            "title": draft.title,
            "head": draft.head,
            "base": draft.base,
            "body": draft.body,
            "maintainer_can_modify": false,
        });
        let answer = self.http.send(Method::POST, &self.path(&["pulls"]), &[], Some(&body)).await?;
        let pull = if answer.status.is_success() {
            self.pull(&answer.json)?
        } else {
            // GitHub's 422 and Gitea's 409 say a pull request for the branch exists: opening is
            // idempotent, so that one is reused.
            match self.open_from(&draft.head).await? {
                Some(existing) => existing,
                None => {
                    return Err(self.http.error(answer.status, &Default::default(), &answer.json));
                }
            }
        };
        let number = pull.number.to_string();
        if !draft.labels.is_empty() {
            // Labels of pull requests are issue labels on both (Gitea 1.20+ takes names).
            let path = self.path(&["issues", &number, "labels"]);
            self.http
                .call(Method::POST, &path, &[], Some(&json!({ "labels": draft.labels })))
                .await?;
        }
        if !draft.reviewers.is_empty() {
            let path = self.path(&["pulls", &number, "requested_reviewers"]);
            self.http
                .call(Method::POST, &path, &[], Some(&json!({ "reviewers": draft.reviewers })))
                .await?;
        }
        Ok(pull)
    }

    async fn state(&self, number: i64) -> Result<RemotePullRequest, ProviderError> {
        let number = number.to_string();
        let json = self.http.call(Method::GET, &self.path(&["pulls", &number]), &[], None).await?;
        self.pull(&json)
    }
}

/// A pull request as GitHub and Gitea describe it, in API answers and webhook payloads alike.
pub(crate) fn parse_pull(
    json: &Value,
    forge: &'static str,
) -> Result<RemotePullRequest, ProviderError> {
    let state = if json.get("merged").and_then(Value::as_bool) == Some(true)
        || json.get("merged_at").is_some_and(|v| !v.is_null())
    {
        PrState::Merged
    } else if text(json, "state", forge)? == "open" {
        PrState::Open
    } else {
        PrState::Closed
    };
    Ok(RemotePullRequest {
        number: number(json, "number", forge)?,
        url: text(json, "html_url", forge)?,
        state,
        merge_commit_sha: (state == PrState::Merged)
            .then(|| json.get("merge_commit_sha").and_then(Value::as_str).map(str::to_owned))
            .flatten(),
        // The head branch's last commit; for a merged pull request, the head that was merged.
        head_sha: json["head"]["sha"].as_str().map(str::to_owned),
        updated_at: super::timestamp(json, "updated_at"),
    })
}
