//! GitLab merge requests over the REST API v4
//! (<https://docs.gitlab.com/api/merge_requests/>), authenticated with `PRIVATE-TOKEN`. The
//! project is its numeric id or its full path (sent percent-encoded, as GitLab asks).

use http::Method;
use secrecy::SecretString;
use serde_json::{Value, json};

use super::forge_http::{ForgeHttp, number, text};
use super::{
    PrState, ProviderError, ProviderKind, PullRequestDraft, PullRequestProvider, RemotePullRequest,
};

const FORGE: &str = "GitLab";

/// A project on GitLab.
pub struct GitLab {
    http: ForgeHttp,
    project: String,
}

impl GitLab {
    /// `server_url` is the GitLab address (the API is under `/api/v4`); `project` its id or
    /// `group/name` path.
    pub fn new(
        server_url: &str,
        project: &str,
        token: &SecretString,
    ) -> Result<Self, ProviderError> {
        let api_url = format!("{}/api/v4", server_url.trim_end_matches('/'));
        let http = ForgeHttp::new(
            FORGE,
            &api_url,
            "private-token",
            token.clone(),
            &[("accept", "application/json")],
            format!("the project {project}"),
            "`gitops.project` and `gitops.api_url` (and that the token can see the project)",
        )?;
        Ok(Self { http, project: project.to_owned() })
    }

    fn merge_request(json: &Value) -> Result<RemotePullRequest, ProviderError> {
        parse_merge_request(json, "web_url")
    }

    /// GitLab asks for reviewers by user id: each configured user name is looked up.
    async fn reviewer_ids(&self, names: &[String]) -> Result<Vec<i64>, ProviderError> {
        let mut ids = Vec::with_capacity(names.len());
        for name in names {
            let users =
                self.http.call(Method::GET, &["users"], &[("username", name)], None).await?;
            let id = users.as_array().and_then(|u| u.first()).and_then(|u| u["id"].as_i64());
            ids.push(id.ok_or_else(|| ProviderError::NotFound {
                forge: FORGE,
                what: format!("the user `{name}`"),
                setting: "`gitops.reviewers`",
            })?);
        }
        Ok(ids)
    }

    /// The open merge request from `draft.head` into `draft.base`, if any.
    async fn open_from(
        &self,
        draft: &PullRequestDraft,
    ) -> Result<Option<RemotePullRequest>, ProviderError> {
        let list = self
            .http
            .call(
                Method::GET,
                &["projects", &self.project, "merge_requests"],
                &[
                    ("state", "opened"),
                    ("source_branch", &draft.head),
                    ("target_branch", &draft.base),
                ],
                None,
            )
            .await?;
        list.as_array().and_then(|l| l.first()).map(Self::merge_request).transpose()
    }
}

#[async_trait::async_trait]
impl PullRequestProvider for GitLab {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Gitlab
    }

    async fn open(&self, draft: &PullRequestDraft) -> Result<RemotePullRequest, ProviderError> {
        let body = json!({
            "source_branch": draft.head,
            "target_branch": draft.base,
            "title": draft.title,
            "description": draft.body,
            // GitLab takes labels as one comma-separated string.
            "labels": draft.labels.join(","),
            "reviewer_ids": self.reviewer_ids(&draft.reviewers).await?,
            "remove_source_branch": true,
        });
        let path = ["projects", self.project.as_str(), "merge_requests"];
        let answer = self.http.send(Method::POST, &path, &[], Some(&body)).await?;
        if answer.status.is_success() {
            return Self::merge_request(&answer.json);
        }
        // 409 "Another open merge request already exists for this source branch": reuse it.
        match self.open_from(draft).await? {
            Some(existing) => Ok(existing),
            None => Err(self.http.error(answer.status, &Default::default(), &answer.json)),
        }
    }

    async fn state(&self, number: i64) -> Result<RemotePullRequest, ProviderError> {
        let iid = number.to_string();
        let json = self
            .http
            .call(Method::GET, &["projects", &self.project, "merge_requests", &iid], &[], None)
            .await?;
        Self::merge_request(&json)
    }
}

/// A merge request as GitLab describes it: API answers carry its address in `web_url`, webhook
/// payloads' `object_attributes` in `url`. The source branch's head is `sha` (and
/// `diff_refs.head_sha`) in API answers, `last_commit.id` in webhook payloads.
pub(crate) fn parse_merge_request(
    json: &Value,
    url_key: &str,
) -> Result<RemotePullRequest, ProviderError> {
    let state = match text(json, "state", FORGE)?.as_str() {
        "opened" | "locked" => PrState::Open,
        "merged" => PrState::Merged,
        _ => PrState::Closed,
    };
    // A fast-forward merge has no merge commit: the branch's own head (or the squash
    // commit) is what landed.
    let landed = ["merge_commit_sha", "squash_commit_sha", "sha"]
        .iter()
        .find_map(|key| json.get(*key).and_then(Value::as_str))
        .map(str::to_owned);
    Ok(RemotePullRequest {
        number: number(json, "iid", FORGE)?,
        url: text(json, url_key, FORGE)?,
        state,
        merge_commit_sha: (state == PrState::Merged).then_some(landed).flatten(),
        head_sha: [&json["last_commit"]["id"], &json["sha"], &json["diff_refs"]["head_sha"]]
            .into_iter()
            .find_map(Value::as_str)
            .map(str::to_owned),
        updated_at: super::timestamp(json, "updated_at"),
    })
}
