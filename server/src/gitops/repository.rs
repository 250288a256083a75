//! The GitOps repository through the git CLI: a cache clone meshport commits in, branches
//! pushed with token (https) or key (ssh) authentication, bounded fetch-rebase-retry when a push
//! is refused, and the local bare repository `meshport dev` uses in place of a forge. Every
//! function here blocks: call it off the async runtime.

use std::ffi::OsStr;
use std::path::{Component, Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use secrecy::{ExposeSecret, SecretString};

use crate::artifacts::ArtifactFile;

/// A git operation failed.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("could not run git: {0}")]
    Spawn(#[from] std::io::Error),
    #[error("`git {args}` failed: {stderr}")]
    Git { args: String, stderr: String },
    #[error(
        "the GitOps repository refused meshport's credentials: check `gitops.token` (and \
         `gitops.username`) or `gitops.ssh_key`: {stderr}"
    )]
    Auth { stderr: String },
    #[error("nothing to commit: {directory} already holds exactly these files on the base branch")]
    NothingToCommit { directory: String },
    #[error("file `{path}` is outside `{directory}/`: meshport writes only the service's folder")]
    OutsideDirectory { path: String, directory: String },
    #[error(
        "branch `{branch}` holds commits by someone else that conflict with meshport's change; \
         meshport never force-pushes a branch it did not create: resolve or delete the branch"
    )]
    BranchConflict { branch: String },
    #[error(
        "the push of `{branch}` was still refused after {attempts} attempts (others keep pushing)"
    )]
    RetriesExhausted { branch: String, attempts: u32 },
    #[error("merging `{branch}` into `{base}` conflicts: resolve it in the repository")]
    MergeConflict { branch: String, base: String },
    #[error("branch `{branch}` does not exist in the GitOps repository")]
    NoSuchBranch { branch: String },
}

/// Name and e-mail address of a commit's author.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Person {
    pub name: String,
    pub email: String,
}

/// How meshport authenticates to the GitOps repository.
#[derive(Clone, Debug, Default)]
pub enum GitAuth {
    /// None: a local path or `file://` URL, or a remote that needs none.
    #[default]
    None,
    /// HTTP basic authentication with a token as password, sent as a header.
    Token { username: String, token: SecretString },
    /// An SSH private key file.
    SshKey(PathBuf),
}

/// The committer meshport writes as.
const COMMITTER_NAME: &str = "meshport";
const COMMITTER_EMAIL: &str = "meshport@localhost";

/// One commit meshport proposes: the service's folder replaced by `files` (none: removed).
#[derive(Clone, Debug)]
pub struct ServiceCommit<'a> {
    pub branch: &'a str,
    /// `manifests/<namespace>/<service>`, relative to the repository root.
    pub directory: &'a str,
    pub files: &'a [ArtifactFile],
    pub author: &'a Person,
    pub message: &'a str,
}

/// A cache clone of the GitOps repository. Operations on it are serialised.
#[derive(Debug)]
pub struct GitRepository {
    url: String,
    base_branch: String,
    cache: PathBuf,
    auth: GitAuth,
    retries: u32,
    /// One operation at a time in the cache clone's work tree.
    lock: Mutex<()>,
    /// One fetch at a time (git locks the refs it updates), and when the base branch was last
    /// fetched: previews read the fetched base without the work tree's lock.
    remote: Mutex<Option<Instant>>,
    /// Fetches from the remote, for `/metrics` (forges rate-limit them).
    fetches: AtomicU64,
}

/// Why a push came back.
enum Pushed {
    Done,
    /// Refused because the remote branch moved (non-fast-forward): fetch and try again.
    Behind,
}

impl GitRepository {
    /// A repository at `url` (https, ssh, `file://` or a path) whose `base_branch` ArgoCD syncs,
    /// cloned into `cache`; a refused push is retried at most `retries` times.
    pub fn new(url: &str, base_branch: &str, cache: &Path, auth: GitAuth, retries: u32) -> Self {
        Self {
            url: url.to_owned(),
            base_branch: base_branch.to_owned(),
            cache: cache.to_owned(),
            auth,
            retries,
            lock: Mutex::new(()),
            remote: Mutex::new(None),
            fetches: AtomicU64::new(0),
        }
    }

    /// How many fetches this process made.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// The base branch.
    pub fn base_branch(&self) -> &str {
        &self.base_branch
    }

    /// Commits `commit` on a new branch from the latest base branch and pushes it. When the
    /// push is refused because the branch moved on the remote (someone pushed to it), fetches,
    /// rebases onto it and pushes again, at most `retries` times. Returns the pushed commit.
    #[tracing::instrument(skip_all)]
    pub fn commit_and_push(&self, commit: &ServiceCommit<'_>) -> Result<String, GitError> {
        let _one_at_a_time = self.lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        self.fetch_base()?;
        let base = self.remote_ref(&self.base_branch);
        self.git(["checkout", "--quiet", "--force", "-B", commit.branch, &base])?;
        self.git(["clean", "--quiet", "-fdx"])?;
        self.write_directory(commit.directory, commit.files)?;
        let nothing = || GitError::NothingToCommit { directory: commit.directory.to_owned() };
        // Removing a folder the base branch does not have: git would refuse the path.
        let tracked = self.git(["ls-files", "--", commit.directory])?;
        if tracked.is_empty() && !self.cache.join(commit.directory).exists() {
            return Err(nothing());
        }
        self.git(["add", "--all", "--", commit.directory])?;
        if self.git(["diff", "--cached", "--quiet"]).is_ok() {
            return Err(nothing());
        }
        self.run(
            ["commit", "--quiet", "--no-verify", "-m", commit.message],
            &[("GIT_AUTHOR_NAME", &commit.author.name), ("GIT_AUTHOR_EMAIL", &commit.author.email)],
        )?;
        let refspec = format!("HEAD:refs/heads/{}", commit.branch);
        for _ in 0..=self.retries {
            if let Pushed::Done = self.push(&refspec)? {
                return self.git(["rev-parse", "HEAD"]);
            }
            tracing::info!(branch = commit.branch, "push refused (the branch moved); rebasing");
            self.fetch_branch(commit.branch)?;
            let theirs = self.remote_ref(commit.branch);
            if self.git(["rebase", "--quiet", &theirs]).is_err() {
                let _ = self.git(["rebase", "--abort"]);
                return self.replace_own_branch(commit.branch, &theirs);
            }
        }
        Err(GitError::RetriesExhausted {
            branch: commit.branch.to_owned(),
            attempts: self.retries + 1,
        })
    }

    /// The files under `directory` on the base branch, path and contents: what a proposal
    /// would change. Empty when the folder does not exist there. The base is fetched again only
    /// when the last fetch is older than `max_age`, and the work tree's lock is not taken: a
    /// loop of previews neither floods the forge nor stalls provisioning.
    #[tracing::instrument(skip_all)]
    pub fn files_on_base(
        &self,
        directory: &str,
        max_age: Duration,
    ) -> Result<Vec<(String, String)>, GitError> {
        let base = self.base_commit(max_age)?;
        let listing = self.git(["ls-tree", "-r", "--name-only", &base, "--", directory])?;
        listing
            .lines()
            .filter(|path| !path.is_empty())
            .map(|path| Ok((path.to_owned(), self.git(["show", &format!("{base}:{path}")])?)))
            .collect()
    }

    /// The base branch's commit, fetched first unless the last fetch is younger than `max_age`
    /// (`Duration::ZERO`: always). Callers read everything from this one commit, whatever a
    /// concurrent fetch does to the ref meanwhile.
    fn base_commit(&self, max_age: Duration) -> Result<String, GitError> {
        {
            let mut fetched = self.remote.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if fetched.is_none_or(|at| at.elapsed() >= max_age) {
                self.fetch_base_locked(&mut fetched)?;
            }
        }
        self.git([
            "rev-parse",
            "--verify",
            &format!("{}^{{commit}}", self.remote_ref(&self.base_branch)),
        ])
    }

    /// Fetches the base branch once and lists every file under `prefix` with its blob id
    /// (`git ls-tree -r`): the fleet's drift pass compares these ids with the renderings'
    /// without a checkout and without reading a file. Returns the commit read and
    /// `(path, blob id)` pairs in path order. The work tree's lock is not taken.
    #[tracing::instrument(skip_all)]
    pub fn tree_on_base(&self, prefix: &str) -> Result<(String, Vec<(String, String)>), GitError> {
        let base = self.base_commit(Duration::ZERO)?;
        let listing = self.git(["ls-tree", "-r", "--full-tree", &base, "--", prefix])?;
        let files = listing
            .lines()
            .filter_map(|line| {
                // `<mode> <type> <id>\t<path>`; only blobs (not submodules).
                let (meta, path) = line.split_once('\t')?;
                let mut fields = meta.split(' ');
                let (_mode, kind, id) = (fields.next()?, fields.next()?, fields.next()?);
                (kind == "blob").then(|| (path.to_owned(), id.to_owned()))
            })
            .collect();
        Ok((base, files))
    }

    /// Merges `branch` into the base branch (a merge commit with `message`) and pushes the base
    /// branch, redoing the merge on the latest base when the push is refused. Returns the merge
    /// commit and the branch's head that was merged. Only for the local repository, which has
    /// no forge to merge.
    #[tracing::instrument(skip_all)]
    pub fn merge(&self, branch: &str, message: &str) -> Result<(String, String), GitError> {
        let _one_at_a_time = self.lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let theirs = self.remote_ref(branch);
        let base = self.remote_ref(&self.base_branch);
        for _ in 0..=self.retries {
            self.fetch_base()?;
            self.fetch_branch(branch)?;
            // The exact commit merged, whatever the branch does meanwhile.
            let head = self.git(["rev-parse", "--verify", &format!("{theirs}^{{commit}}")])?;
            self.git(["checkout", "--quiet", "--force", "-B", &self.base_branch, &base])?;
            if self.git(["merge", "--quiet", "--no-ff", "--no-edit", "-m", message, &head]).is_err()
            {
                let _ = self.git(["merge", "--abort"]);
                return Err(GitError::MergeConflict {
                    branch: branch.to_owned(),
                    base: self.base_branch.clone(),
                });
            }
            if let Pushed::Done = self.push(&format!("HEAD:refs/heads/{}", self.base_branch))? {
                return Ok((self.git(["rev-parse", "HEAD"])?, head));
            }
        }
        Err(GitError::RetriesExhausted {
            branch: self.base_branch.clone(),
            attempts: self.retries + 1,
        })
    }

    /// After a rebase conflict: force-pushes (with a lease on what was fetched) only when every
    /// commit the branch has beyond the base was committed by meshport, that is, when meshport
    /// created the branch and nobody else added to it.
    fn replace_own_branch(&self, branch: &str, theirs: &str) -> Result<String, GitError> {
        let range = format!("{}..{theirs}", self.remote_ref(&self.base_branch));
        let committers = self.git(["log", "--format=%ce", &range])?;
        if committers.lines().any(|email| email != COMMITTER_EMAIL) {
            return Err(GitError::BranchConflict { branch: branch.to_owned() });
        }
        // `rebase --abort` left HEAD at meshport's fresh commit on the latest base.
        let expected = self.git(["rev-parse", theirs])?;
        let lease = format!("--force-with-lease=refs/heads/{branch}:{expected}");
        self.git_remote([
            "push",
            "--quiet",
            &lease,
            "origin",
            &format!("HEAD:refs/heads/{branch}"),
        ])?;
        self.git(["rev-parse", "HEAD"])
    }

    /// Replaces `directory` in the work tree with `files`.
    fn write_directory(&self, directory: &str, files: &[ArtifactFile]) -> Result<(), GitError> {
        let outside = |path: &str| GitError::OutsideDirectory {
            path: path.to_owned(),
            directory: directory.to_owned(),
        };
        if !is_plain_relative(directory) {
            return Err(outside(directory));
        }
        let folder = self.cache.join(directory);
        if folder.exists() {
            std::fs::remove_dir_all(&folder)?;
        }
        for file in files {
            let inside = file
                .path
                .strip_prefix(directory)
                .and_then(|rest| rest.strip_prefix('/'))
                .is_some_and(|rest| !rest.is_empty() && is_plain_relative(rest));
            if !inside {
                return Err(outside(&file.path));
            }
            let path = self.cache.join(&file.path);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(path, &file.contents)?;
        }
        Ok(())
    }

    /// Creates the cache clone if needed and fetches the base branch. Under the work tree's
    /// lock: a crash in the middle of a rebase or merge is cleaned up first.
    fn fetch_base(&self) -> Result<(), GitError> {
        let git_dir = self.cache.join(".git");
        // A crash in the middle of a rebase or merge must not wedge every later operation.
        if git_dir.join("rebase-merge").exists() || git_dir.join("rebase-apply").exists() {
            let _ = self.git(["rebase", "--abort"]);
        }
        if git_dir.join("MERGE_HEAD").exists() {
            let _ = self.git(["merge", "--abort"]);
        }
        let mut fetched = self.remote.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        self.fetch_base_locked(&mut fetched)
    }

    /// Creates the cache clone if needed and fetches the base branch; `fetched` is the
    /// remote's lock, held.
    fn fetch_base_locked(&self, fetched: &mut Option<Instant>) -> Result<(), GitError> {
        if !self.cache.join(".git").is_dir() {
            std::fs::create_dir_all(&self.cache)?;
            self.git(["init", "--quiet"])?;
            self.git(["remote", "add", "origin", &self.url])?;
        } else {
            // The configured URL wins over one an earlier configuration left.
            self.git(["remote", "set-url", "origin", &self.url])?;
        }
        self.fetch_branch_locked(&self.base_branch)?;
        *fetched = Some(Instant::now());
        Ok(())
    }

    fn fetch_branch(&self, branch: &str) -> Result<(), GitError> {
        let _fetching = self.remote.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        self.fetch_branch_locked(branch)
    }

    fn fetch_branch_locked(&self, branch: &str) -> Result<(), GitError> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let refspec = format!("+refs/heads/{branch}:{}", self.remote_ref(branch));
        self.git_remote(["fetch", "--quiet", "--no-tags", "origin", &refspec]).map_err(
            |e| match e {
                GitError::Git { stderr, .. } if stderr.contains("couldn't find remote ref") => {
                    GitError::NoSuchBranch { branch: branch.to_owned() }
                }
                other => other,
            },
        )?;
        Ok(())
    }

    /// Pushes without force; a refusal because the remote moved is [`Pushed::Behind`].
    fn push(&self, refspec: &str) -> Result<Pushed, GitError> {
        match self.git_remote(["push", "--quiet", "--porcelain", "origin", refspec]) {
            Ok(_) => Ok(Pushed::Done),
            Err(GitError::Git { stderr, .. })
                if stderr.contains("[rejected]")
                    && (stderr.contains("fetch first") || stderr.contains("non-fast-forward")) =>
            {
                Ok(Pushed::Behind)
            }
            Err(other) => Err(other),
        }
    }

    fn remote_ref(&self, branch: &str) -> String {
        format!("refs/remotes/origin/{branch}")
    }

    /// Runs git in the cache clone with the remote's credentials; failed authentication is
    /// told apart so the message can name the setting.
    fn git_remote<S: AsRef<OsStr>>(
        &self,
        args: impl IntoIterator<Item = S>,
    ) -> Result<String, GitError> {
        let mut env: Vec<(&str, String)> = Vec::new();
        match &self.auth {
            GitAuth::None => {}
            GitAuth::Token { username, token } => {
                // The token travels as a header set through the environment: never in the URL,
                // the command line or git's messages. Scoped to the repository's URL, so a
                // redirect elsewhere does not receive it.
                let basic = base64::engine::general_purpose::STANDARD
                    .encode(format!("{username}:{}", token.expose_secret()));
                env.push(("GIT_CONFIG_COUNT", "1".into()));
                env.push(("GIT_CONFIG_KEY_0", format!("http.{}.extraHeader", self.url)));
                env.push(("GIT_CONFIG_VALUE_0", format!("Authorization: Basic {basic}")));
            }
            GitAuth::SshKey(key) => env.push((
                "GIT_SSH_COMMAND",
                format!("ssh -i '{}' -o IdentitiesOnly=yes -o BatchMode=yes", key.display()),
            )),
        }
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.run(args, &env).map_err(|e| match e {
            GitError::Git { stderr, .. } if is_auth_failure(&stderr) => GitError::Auth { stderr },
            other => other,
        })
    }

    fn git<S: AsRef<OsStr>>(&self, args: impl IntoIterator<Item = S>) -> Result<String, GitError> {
        self.run(args, &[])
    }

    fn run<S: AsRef<OsStr>>(
        &self,
        args: impl IntoIterator<Item = S>,
        env: &[(&str, &str)],
    ) -> Result<String, GitError> {
        git_with(&self.cache, args, env)
    }
}

/// Whether git's message says the remote refused the credentials.
fn is_auth_failure(stderr: &str) -> bool {
    [
        "Authentication failed",
        "terminal prompts disabled",
        "returned error: 401",
        "returned error: 403",
        "Permission denied (publickey",
    ]
    .iter()
    .any(|sign| stderr.contains(sign))
}

/// A relative path of plain names only (no `..`, no root, no `.`).
fn is_plain_relative(path: &str) -> bool {
    !path.is_empty() && Path::new(path).components().all(|c| matches!(c, Component::Normal(_)))
}

/// Creates a bare repository at `path` with one commit on `branch` holding the layout ArgoCD
/// syncs (`manifests/`) and the `seed` files (which may replace the default README), unless a
/// repository with that branch is already there. Returns true
/// when it created one. The repository is built beside `path` and renamed into place, so a
/// failure half way leaves nothing that a later run would mistake for a finished repository.
pub fn init_local_repository(
    path: &Path,
    branch: &str,
    seed: &[crate::artifacts::ArtifactFile],
) -> Result<bool, GitError> {
    let branch_ref = format!("refs/heads/{branch}");
    if path.join("HEAD").is_file() {
        git_with(path, ["rev-parse", "--quiet", "--verify", &branch_ref], &[])?;
        return Ok(false);
    }
    let path = std::path::absolute(path)?;
    let parent = path.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(parent)?;
    let staging = tempfile::Builder::new().prefix(".gitops-init-").tempdir_in(parent)?;
    let bare = staging.path().join("repo.git");
    let work = staging.path().join("work");
    let initial_branch = format!("--initial-branch={branch}");
    std::fs::create_dir_all(&bare)?;
    std::fs::create_dir_all(work.join("manifests"))?;
    git_with(&bare, ["init", "--quiet", "--bare", &initial_branch], &[])?;
    git_with(&work, ["init", "--quiet", &initial_branch], &[])?;
    std::fs::write(work.join("manifests/.gitkeep"), "")?;
    std::fs::write(
        work.join("README.md"),
        "# GitOps repository\n\nArgoCD syncs `manifests/`. meshport proposes each onboarded \
         service's manifests as a pull request under `manifests/<namespace>/<service>/`.\n",
    )?;
    for file in seed {
        let target = work.join(&file.path);
        std::fs::create_dir_all(target.parent().unwrap_or(&work))?;
        std::fs::write(target, &file.contents)?;
    }
    git_with(&work, ["add", "--all"], &[])?;
    git_with(&work, ["commit", "--quiet", "--no-verify", "-m", "Initial layout"], &[])?;
    let refspec = format!("HEAD:{branch_ref}");
    git_with(
        &work,
        [OsStr::new("push"), OsStr::new("--quiet"), bare.as_os_str(), OsStr::new(&refspec)],
        &[],
    )?;
    std::fs::rename(&bare, &path)?;
    Ok(true)
}

/// Runs git in `dir` with meshport as committer (and author, unless `env` says otherwise),
/// without prompts, and returns its trimmed standard output.
fn git_with<S: AsRef<OsStr>>(
    dir: &Path,
    args: impl IntoIterator<Item = S>,
    env: &[(&str, &str)],
) -> Result<String, GitError> {
    let args: Vec<S> = args.into_iter().collect();
    // The subcommand only: other arguments can name branches and paths, never credentials
    // (those travel in the environment), but a span needs no more.
    let command = args.first().map(|a| a.as_ref().to_string_lossy().into_owned());
    let _span =
        tracing::info_span!("git", command = command.as_deref().unwrap_or_default()).entered();
    let output = Command::new("git")
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", COMMITTER_NAME)
        .env("GIT_AUTHOR_EMAIL", COMMITTER_EMAIL)
        .env("GIT_COMMITTER_NAME", COMMITTER_NAME)
        .env("GIT_COMMITTER_EMAIL", COMMITTER_EMAIL)
        // Neither the system's nor the user's git configuration (signing, hooks, templates,
        // credential helpers) applies to meshport's own work.
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env_remove("GIT_ASKPASS")
        .env_remove("SSH_ASKPASS")
        .envs(env.iter().copied())
        .args(&args)
        .output()?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    } else {
        let args: Vec<_> = args.iter().map(|a| a.as_ref().to_string_lossy().into_owned()).collect();
        // `--porcelain` pushes report refusals on standard output.
        let mut stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !stdout.trim().is_empty() {
            stderr = format!("{stderr}\n{}", stdout.trim());
        }
        Err(GitError::Git { args: args.join(" "), stderr })
    }
}
