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
/// syncs (`manifests/`) and the `seed` files (which replace the default README), unless a
/// repository with that branch is already there. Returns true
/// when it created one. The repository is built beside `path` and renamed into place, so a
/// failure half way leaves nothing that a later run would mistake for a finished repository.
/// Blocking: call it off the async runtime.
pub fn init_local_repository(
    path: &Path,
    branch: &str,
    seed: &[crate::artifacts::ArtifactFile],
) -> Result<bool, GitopsError> {
    let branch_ref = format!("refs/heads/{branch}");
    if path.join("HEAD").is_file() {
        git(path, ["rev-parse", "--quiet", "--verify", &branch_ref])?;
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
    git(&bare, ["init", "--quiet", "--bare", &initial_branch])?;
    git(&work, ["init", "--quiet", &initial_branch])?;
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
    git(&work, ["add", "--all"])?;
    git(&work, ["commit", "--quiet", "--no-verify", "-m", "Initial layout"])?;
    let refspec = format!("HEAD:{branch_ref}");
    git(
        &work,
        [OsStr::new("push"), OsStr::new("--quiet"), bare.as_os_str(), OsStr::new(&refspec)],
    )?;
    std::fs::rename(&bare, &path)?;
    Ok(true)
}

/// Runs git in `dir` with meshport as author and committer, without prompts.
fn git<S: AsRef<OsStr>>(dir: &Path, args: impl IntoIterator<Item = S>) -> Result<(), GitopsError> {
    let args: Vec<S> = args.into_iter().collect();
    let output = Command::new("git")
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", COMMITTER_NAME)
        .env("GIT_AUTHOR_EMAIL", COMMITTER_EMAIL)
        .env("GIT_COMMITTER_NAME", COMMITTER_NAME)
        .env("GIT_COMMITTER_EMAIL", COMMITTER_EMAIL)
        // Neither the system's nor the user's git configuration (signing, hooks, templates)
        // applies to meshport's own commits.
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
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
