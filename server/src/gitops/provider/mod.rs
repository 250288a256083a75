//! Where pull requests live: a [`PullRequestProvider`] per forge (GitHub, Gitea/Forgejo,
//! GitLab) over its REST API, and `local`, meshport's own stand-in for a forge over the bare
//! repository of `meshport dev`.

mod forge_http;
mod github;
mod gitlab;
mod local;

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use github::GitHub;
pub(crate) use github::parse_pull;
pub use gitlab::GitLab;
pub(crate) use gitlab::parse_merge_request;
pub use local::LocalForge;

/// The states the forges report are the stored ones.
pub use crate::store::PrState;

/// The kinds of forge meshport opens pull requests on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// No forge: the bare repository of `meshport dev`; an admin merges in meshport.
    #[default]
    Local,
    /// GitHub or GitHub Enterprise Server.
    Github,
    /// Gitea or Forgejo.
    Gitea,
    /// GitLab (merge requests).
    Gitlab,
}

impl ProviderKind {
    /// The stable name stored and used in webhook routes.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Github => "github",
            Self::Gitea => "gitea",
            Self::Gitlab => "gitlab",
        }
    }

    /// The kind named `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Local, Self::Github, Self::Gitea, Self::Gitlab]
            .into_iter()
            .find(|k| k.as_str() == name)
    }
}

/// A pull request about to be opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullRequestDraft {
    pub title: String,
    /// Markdown: the request summary and links.
    pub body: String,
    /// The branch meshport pushed.
    pub head: String,
    /// The branch ArgoCD syncs.
    pub base: String,
    pub labels: Vec<String>,
    /// Forge user names asked to review.
    pub reviewers: Vec<String>,
}

/// A pull request as the forge knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemotePullRequest {
    /// The forge's number (GitLab: the merge request's `iid`).
    pub number: i64,
    /// Where a person reviews it.
    pub url: String,
    pub state: PrState,
    /// Set once merged.
    pub merge_commit_sha: Option<String>,
    /// The branch's head commit (at the merge, for a merged one), where the forge says.
    /// Compared with the approved head: approval binds to content.
    pub head_sha: Option<String>,
    /// When the forge last changed it (`updated_at`), where it says: a report older than
    /// the state already applied is stale.
    pub updated_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A forge's timestamp at `key`: RFC 3339 (GitHub, Gitea, GitLab's API) or GitLab's older
/// webhook form `2024-01-02 03:04:05 UTC`.
pub(crate) fn timestamp(
    json: &serde_json::Value,
    key: &str,
) -> Option<chrono::DateTime<chrono::Utc>> {
    let text = json.get(key)?.as_str()?;
    chrono::DateTime::parse_from_rfc3339(text)
        .or_else(|_| chrono::DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S %z"))
        .map(|time| time.to_utc())
        .ok()
        .or_else(|| {
            let naive = text.strip_suffix(" UTC")?;
            chrono::NaiveDateTime::parse_from_str(naive, "%Y-%m-%d %H:%M:%S")
                .ok()
                .map(|t| t.and_utc())
        })
}

/// A forge call failed. Messages name the setting to fix where there is one.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("{forge} refused meshport's token (401): check `gitops.token`")]
    Unauthorized { forge: &'static str },
    #[error(
        "{forge} denied the request (403): {message}; `gitops.token` needs write access to pull requests"
    )]
    Forbidden { forge: &'static str, message: String },
    #[error("{forge} does not know {what} (404): check {setting}")]
    NotFound { forge: &'static str, what: String, setting: &'static str },
    #[error("{forge} rejected the request ({status}): {message}")]
    Rejected { forge: &'static str, status: u16, message: String },
    #[error("{forge} rate-limits meshport: retry in {} s", retry_after.as_secs())]
    RateLimited { forge: &'static str, retry_after: Duration },
    #[error("could not reach {forge}: {message}")]
    Unreachable { forge: &'static str, message: String },
    #[error("unexpected answer from {forge} ({status}): {message}")]
    Unexpected { forge: &'static str, status: u16, message: String },
    #[error("{0}")]
    Local(String),
    #[error("{forge} pull requests are merged on {forge}, through its review, not by meshport")]
    MergeUnsupported { forge: &'static str },
}

impl ProviderError {
    /// How long to wait before trying again, when waiting helps.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. } => Some(*retry_after),
            Self::Unreachable { .. } => Some(Duration::from_secs(30)),
            _ => None,
        }
    }
}

/// A forge meshport opens pull requests on.
#[async_trait::async_trait]
pub trait PullRequestProvider: Send + Sync {
    /// Which forge this is.
    fn kind(&self) -> ProviderKind;

    /// Opens a pull request of `draft.head` into `draft.base`, with labels and reviewers.
    /// Idempotent: when one is already open for the branch, that one is returned.
    async fn open(&self, draft: &PullRequestDraft) -> Result<RemotePullRequest, ProviderError>;

    /// The pull request's current state (polling, and the webhook fallback).
    async fn state(&self, number: i64) -> Result<RemotePullRequest, ProviderError>;

    /// Merges the pull request and returns it merged, with the merge commit and the head that
    /// was merged. Only `local` merges; forges merge through their own review and branch
    /// protection.
    async fn merge(&self, number: i64, message: &str) -> Result<RemotePullRequest, ProviderError> {
        let _ = (number, message);
        Err(ProviderError::MergeUnsupported { forge: self.kind().as_str() })
    }
}
