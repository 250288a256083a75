//! `local`: meshport's stand-in for a forge over a bare repository on this machine (the
//! embedded default of `meshport dev`). A pull request is an entry in `meshport-pulls.json` in
//! the bare repository's folder; merging is a real `git merge --no-ff` of the branch into the
//! base branch, pushed to the bare repository.

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{
    PrState, ProviderError, ProviderKind, PullRequestDraft, PullRequestProvider, RemotePullRequest,
};
use crate::gitops::repository::GitRepository;
use nix::fcntl::{Flock, FlockArg};

/// The file in the bare repository's folder that lists its pull requests.
const REGISTRY: &str = "meshport-pulls.json";

/// Pull requests on a local bare repository.
pub struct LocalForge {
    repo: Arc<GitRepository>,
    /// The bare repository's folder.
    bare: PathBuf,
    /// One change of the registry at a time.
    lock: tokio::sync::Mutex<()>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Entry {
    number: i64,
    head: String,
    base: String,
    title: String,
    state: PrState,
    merge_commit_sha: Option<String>,
    /// The branch's head that was merged (registries written before it was kept lack it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    head_sha: Option<String>,
}

impl LocalForge {
    /// The forge of the bare repository at `bare`, which `repo` clones.
    pub fn new(repo: Arc<GitRepository>, bare: PathBuf) -> Self {
        Self { repo, bare, lock: tokio::sync::Mutex::new(()) }
    }

    fn remote(&self, entry: &Entry) -> RemotePullRequest {
        RemotePullRequest {
            number: entry.number,
            url: format!("file://{}#{}", self.bare.display(), entry.head),
            state: entry.state,
            merge_commit_sha: entry.merge_commit_sha.clone(),
            head_sha: entry.head_sha.clone(),
            // The local registry is changed under meshport's own lock: reports are in order.
            updated_at: None,
        }
    }

    async fn read(&self) -> Result<Vec<Entry>, ProviderError> {
        match tokio::fs::read(self.bare.join(REGISTRY)).await {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                ProviderError::Local(format!(
                    "{} is damaged: {e}",
                    self.bare.join(REGISTRY).display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(local(e)),
        }
    }

    /// Replaces the registry in one rename, so a crash leaves the old or the new one.
    async fn write(&self, entries: &[Entry]) -> Result<(), ProviderError> {
        let json = serde_json::to_vec_pretty(entries).map_err(local)?;
        let staging = self.bare.join(format!("{REGISTRY}.new"));
        tokio::fs::write(&staging, json).await.map_err(local)?;
        tokio::fs::rename(&staging, self.bare.join(REGISTRY)).await.map_err(local)
    }

    /// Holds the registry against this process's other tasks and against every other meshport
    /// process working on the same repository (replicas share it through a lock file).
    async fn exclusive(
        &self,
    ) -> Result<(tokio::sync::MutexGuard<'_, ()>, Flock<std::fs::File>), ProviderError> {
        let in_process = self.lock.lock().await;
        let path = self.bare.join(format!("{REGISTRY}.lock"));
        let across_processes = tokio::task::spawn_blocking(move || {
            let file =
                std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path)?;
            Flock::lock(file, FlockArg::LockExclusive)
                .map_err(|(_, errno)| std::io::Error::from(errno))
        })
        .await
        .map_err(local)?
        .map_err(local)?;
        Ok((in_process, across_processes))
    }

    fn not_found(number: i64) -> ProviderError {
        ProviderError::Local(format!("the local repository has no pull request {number}"))
    }
}

fn local(error: impl std::fmt::Display) -> ProviderError {
    ProviderError::Local(format!("local GitOps repository: {error}"))
}

#[async_trait::async_trait]
impl PullRequestProvider for LocalForge {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Local
    }

    async fn open(&self, draft: &PullRequestDraft) -> Result<RemotePullRequest, ProviderError> {
        let _one_at_a_time = self.exclusive().await?;
        let mut entries = self.read().await?;
        if let Some(open) =
            entries.iter().find(|e| e.head == draft.head && e.state == PrState::Open)
        {
            return Ok(self.remote(open));
        }
        let entry = Entry {
            number: entries.iter().map(|e| e.number).max().unwrap_or(0) + 1,
            head: draft.head.clone(),
            base: draft.base.clone(),
            title: draft.title.clone(),
            state: PrState::Open,
            merge_commit_sha: None,
            head_sha: None,
        };
        entries.push(entry.clone());
        self.write(&entries).await?;
        Ok(self.remote(&entry))
    }

    async fn state(&self, number: i64) -> Result<RemotePullRequest, ProviderError> {
        let entries = self.read().await?;
        let entry =
            entries.iter().find(|e| e.number == number).ok_or_else(|| Self::not_found(number))?;
        Ok(self.remote(entry))
    }

    #[tracing::instrument(skip_all, fields(number = number))]
    async fn merge(&self, number: i64, message: &str) -> Result<RemotePullRequest, ProviderError> {
        let _one_at_a_time = self.exclusive().await?;
        let mut entries = self.read().await?;
        let entry = entries
            .iter_mut()
            .find(|e| e.number == number)
            .ok_or_else(|| Self::not_found(number))?;
        match (entry.state, &entry.merge_commit_sha) {
            (PrState::Merged, Some(_)) => return Ok(self.remote(entry)),
            (PrState::Open, _) => {}
            _ => return Err(ProviderError::Local(format!("pull request {number} is closed"))),
        }
        let (repo, head, message) = (self.repo.clone(), entry.head.clone(), message.to_owned());
        let (sha, merged_head) = tokio::task::spawn_blocking(move || repo.merge(&head, &message))
            .await
            .map_err(local)?
            .map_err(local)?;
        entry.state = PrState::Merged;
        entry.merge_commit_sha = Some(sha);
        entry.head_sha = Some(merged_head);
        let merged = self.remote(entry);
        self.write(&entries).await?;
        Ok(merged)
    }
}
