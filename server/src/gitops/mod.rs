//! The GitOps repository ArgoCD syncs from. For now: the local bare repository `meshport dev`
//! uses in place of a forge.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

/// A git operation failed.
#[derive(Debug, thiserror::Error)]
pub enum GitopsError {
    #[error("could not run git: {0}")]
    Spawn(#[from] std::io::Error),
    #[error("`git {args}` failed: {stderr}")]
    Git { args: String, stderr: String },
}

/// The committer meshport writes as.
const COMMITTER_NAME: &str = "meshport";
const COMMITTER_EMAIL: &str = "meshport@localhost";

/// Creates a bare repository at `path` with one commit on `branch` holding the layout ArgoCD
/// syncs (`manifests/`), unless a repository is already there. Returns true when it created one.
/// Blocking: call it off the async runtime.
pub fn init_local_repository(path: &Path, branch: &str) -> Result<bool, GitopsError> {
    if path.join("HEAD").is_file() {
        return Ok(false);
    }
    std::fs::create_dir_all(path)?;
    let path = std::path::absolute(path)?;
    let initial_branch = format!("--initial-branch={branch}");
    git(&path, ["init", "--quiet", "--bare", &initial_branch])?;

    let work = tempfile::tempdir()?;
    let work = work.path();
    git(work, ["init", "--quiet", &initial_branch])?;
    std::fs::create_dir_all(work.join("manifests"))?;
    std::fs::write(work.join("manifests/.gitkeep"), "")?;
    std::fs::write(
        work.join("README.md"),
        "# GitOps repository\n\nArgoCD syncs `manifests/`. meshport proposes each onboarded \
         service's manifests as a pull request under `manifests/<namespace>/<service>/`.\n",
    )?;
    git(work, ["add", "--all"])?;
    git(work, ["commit", "--quiet", "-m", "Initial layout"])?;
    let refspec = format!("HEAD:refs/heads/{branch}");
    git(work, [OsStr::new("push"), OsStr::new("--quiet"), path.as_os_str(), OsStr::new(&refspec)])?;
    Ok(true)
}

/// Runs git in `dir` with meshport as author and committer and no system or user prompts.
fn git<S: AsRef<OsStr>>(dir: &Path, args: impl IntoIterator<Item = S>) -> Result<(), GitopsError> {
    let args: Vec<S> = args.into_iter().collect();
    let output = Command::new("git")
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", COMMITTER_NAME)
        .env("GIT_AUTHOR_EMAIL", COMMITTER_EMAIL)
        .env("GIT_COMMITTER_NAME", COMMITTER_NAME)
        .env("GIT_COMMITTER_EMAIL", COMMITTER_EMAIL)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .args(&args)
        .output()?;
    if output.status.success() {
        Ok(())
    } else {
        let args: Vec<_> = args.iter().map(|a| a.as_ref().to_string_lossy().into_owned()).collect();
        Err(GitopsError::Git {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}
