//! The `[gitops]` settings: the GitOps repository meshport proposes manifests to, the forge its
//! pull requests live on, how they are presented and followed, and the checks that refuse
//! settings which cannot work (a forge without its token, a branch name git refuses, …).

use std::path::{Path, PathBuf};

use secrecy::SecretString;
use serde::Deserialize;

use super::ProviderKind;

/// The GitOps repository meshport proposes manifests to, and the forge its pull requests live on.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GitopsConfig {
    /// Clone URL (https, ssh, file path). Default: `<data_dir>/gitops.git`, the local repository.
    pub repo_url: Option<String>,
    /// Branch ArgoCD syncs from; meshport never pushes to it (only `local` merges into it).
    /// Default `main`.
    pub base_branch: String,
    /// Folder of meshport's working clone. Default `<data_dir>/gitops-cache`.
    pub cache_dir: Option<PathBuf>,
    /// Where pull requests are opened: `local` (default; the local bare repository, merged in
    /// meshport), `github`, `gitea` (also Forgejo) or `gitlab`.
    pub provider: ProviderKind,
    /// The forge's address: GitHub's API URL (default `https://api.github.com`; GitHub
    /// Enterprise `https://HOST/api/v3`), or the Gitea or GitLab server URL (required there).
    pub api_url: Option<String>,
    /// Owner (user or organisation) of the repository on GitHub or Gitea.
    pub owner: Option<String>,
    /// Name of the repository on GitHub or Gitea.
    pub repo: Option<String>,
    /// GitLab project: its numeric id or `group/name` path.
    pub project: Option<String>,
    /// Token for the forge's API and for https pushes (sent as basic-auth password).
    pub token: Option<SecretString>,
    /// User name of https pushes with the token. Default `x-access-token` (GitHub; GitLab
    /// accepts `oauth2`, Gitea any name).
    pub username: String,
    /// SSH private key for ssh repository URLs. Default: none.
    pub ssh_key: Option<PathBuf>,
    /// Secret the forge signs webhook deliveries with (GitLab: the secret token). Without it
    /// webhooks are refused and only polling tracks pull requests.
    pub webhook_secret: Option<SecretString>,
    /// Labels put on each pull request. Default `["meshport"]`.
    pub labels: Vec<String>,
    /// Forge user names asked to review each pull request. Default: none.
    pub reviewers: Vec<String>,
    /// Seconds between asking the forge about open pull requests (the webhook fallback); 0
    /// turns polling off. Default 300.
    pub poll_seconds: u64,
    /// Previews compare with the base branch fetched at most this many seconds ago, so
    /// repeated previews fetch at most once per interval. Default 30, at most 3600.
    pub preview_fetch_seconds: u64,
    /// How often a refused push is retried after fetching and rebasing. Default 3, at most 10.
    pub push_retries: u32,
    /// `local` only: merge each pull request right after opening it. Default `false`.
    pub auto_merge: bool,
}

impl Default for GitopsConfig {
    fn default() -> Self {
        Self {
            repo_url: None,
            base_branch: "main".to_owned(),
            cache_dir: None,
            provider: ProviderKind::Local,
            api_url: None,
            owner: None,
            repo: None,
            project: None,
            token: None,
            username: "x-access-token".to_owned(),
            ssh_key: None,
            webhook_secret: None,
            labels: vec!["meshport".to_owned()],
            reviewers: Vec::new(),
            poll_seconds: 300,
            preview_fetch_seconds: 30,
            push_retries: 3,
            auto_merge: false,
        }
    }
}

impl GitopsConfig {
    /// The first setting that cannot work, as (dotted key, rule).
    pub fn problem(&self) -> Option<(&'static str, &'static str)> {
        let forge = self.provider != ProviderKind::Local;
        let is_name = |v: &str| {
            !v.is_empty()
                && !v.starts_with(['-', '.'])
                && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        };
        let http_url = |v: &str| {
            url::Url::parse(v).is_ok_and(|u| matches!(u.scheme(), "https" | "http") && u.has_host())
        };
        let present = |v: &Option<String>| v.as_deref().is_some_and(|v| !v.trim().is_empty());
        // A token inside an https URL would end up in logs and `Debug` output.
        let carries_credentials = |v: &str| {
            url::Url::parse(v).is_ok_and(|u| {
                matches!(u.scheme(), "https" | "http")
                    && (!u.username().is_empty() || u.password().is_some())
            })
        };
        let checks: [(&'static str, bool, &'static str); 14] = [
            (
                "gitops.base_branch",
                is_branch_name(&self.base_branch),
                "must be a branch name such as `main` (no spaces, `..`, `~^:?*[\\` or leading `-`)",
            ),
            (
                "gitops.repo_url",
                self.repo_url
                    .as_deref()
                    .is_none_or(|u| !u.trim().is_empty() && !u.starts_with('-')),
                "must be a clone URL (https://, ssh://, git@host:path, file://) or a path",
            ),
            (
                "gitops.repo_url",
                forge
                    || self
                        .repo_url
                        .as_deref()
                        .is_none_or(|u| !u.contains("://") || u.starts_with("file://")),
                "must be a local path or file:// URL with `gitops.provider = \"local\"`",
            ),
            (
                "gitops.repo_url",
                !self.repo_url.as_deref().is_some_and(carries_credentials),
                "must not carry credentials: set `gitops.token` (and `gitops.username`) instead",
            ),
            (
                "gitops.repo_url",
                !forge || present(&self.repo_url),
                "must be set when `gitops.provider` names a forge",
            ),
            (
                "gitops.api_url",
                self.api_url.as_deref().is_none_or(http_url),
                "must be an http(s) URL",
            ),
            (
                "gitops.api_url",
                !matches!(self.provider, ProviderKind::Gitea | ProviderKind::Gitlab)
                    || present(&self.api_url),
                "must be set to the server's URL for `gitea` and `gitlab`",
            ),
            (
                "gitops.owner",
                !matches!(self.provider, ProviderKind::Github | ProviderKind::Gitea)
                    || (self.owner.as_deref().is_some_and(is_name)
                        && self.repo.as_deref().is_some_and(is_name)),
                "and `gitops.repo` must be set to the repository's owner and name for `github` and `gitea`",
            ),
            (
                "gitops.project",
                self.provider != ProviderKind::Gitlab || present(&self.project),
                "must be set to the project's id or `group/name` path for `gitlab`",
            ),
            (
                "gitops.token",
                !forge || self.token.is_some(),
                "must be set when `gitops.provider` names a forge (its API needs it)",
            ),
            (
                "gitops.labels",
                self.labels
                    .iter()
                    .all(|l| !l.trim().is_empty() && !l.contains(',') && l.len() <= 50),
                "must be non-empty names without commas (GitLab separates labels by commas)",
            ),
            ("gitops.push_retries", self.push_retries <= 10, "must be at most 10"),
            (
                "gitops.preview_fetch_seconds",
                self.preview_fetch_seconds <= 3600,
                "must be at most 3600",
            ),
            (
                "gitops.poll_seconds",
                self.poll_seconds == 0 || self.poll_seconds >= 10,
                "must be 0 (off) or at least 10",
            ),
        ];
        let bad = checks.into_iter().find(|(_, ok, _)| !ok).map(|(key, _, rule)| (key, rule));
        bad.or_else(|| {
            let quoted = self.ssh_key.as_ref().is_some_and(|k| k.to_string_lossy().contains('\''));
            quoted.then_some(("gitops.ssh_key", "must be a path without `'`"))
        })
        .or_else(|| {
            (self.auto_merge && forge).then_some((
                "gitops.auto_merge",
                "works with `gitops.provider = \"local\"` only: forges merge through their review",
            ))
        })
        .or_else(|| {
            self.reviewers.iter().any(|r| !is_name(r)).then_some((
                "gitops.reviewers",
                "must be forge user names (letters, digits, `-`, `_`, `.`)",
            ))
        })
    }
}

/// Whether `name` is a branch name git and every forge accept (a subset of
/// `git check-ref-format --branch`).
pub fn is_branch_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && !name.starts_with(['-', '/', '.'])
        && !name.ends_with(['/', '.'])
        && !name.ends_with(".lock")
        && !name.contains("..")
        && !name.contains("//")
        && !name.contains("@{")
        && !name.bytes().any(|b| b.is_ascii_control() || b" ~^:?*[\\".contains(&b))
}

impl GitopsConfig {
    /// The repository URL: the configured one, or the local repository in `data_dir`.
    pub fn repo_url_in(&self, data_dir: &Path) -> String {
        self.repo_url.clone().unwrap_or_else(|| local_repository(data_dir).display().to_string())
    }

    /// meshport's working clone: the configured folder, or `gitops-cache` in `data_dir`.
    pub fn cache_dir_in(&self, data_dir: &Path) -> PathBuf {
        self.cache_dir.clone().unwrap_or_else(|| data_dir.join("gitops-cache"))
    }
}

/// The local bare GitOps repository in `data_dir` (`meshport dev`'s, and the default).
pub fn local_repository(data_dir: &Path) -> PathBuf {
    data_dir.join("gitops.git")
}
