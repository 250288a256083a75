//! The local GitOps repository, checked with the real git CLI.

use std::path::Path;
use std::process::Command;

use meshport_server::gitops::init_local_repository;

fn git(args: &[&str], dir: &Path) -> String {
    let output = Command::new("git").args(args).current_dir(dir).output().unwrap();
    assert!(output.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn the_local_repository_is_created_once_with_the_argocd_layout() {
    let folder = tempfile::tempdir().unwrap();
    let repo = folder.path().join("data/gitops.git");
    assert!(init_local_repository(&repo, "main", &[]).unwrap());
    assert!(!init_local_repository(&repo, "main", &[]).unwrap(), "a second call changes nothing");

    assert_eq!(git(&["rev-parse", "--is-bare-repository"], &repo).trim(), "true");
    let files = git(&["ls-tree", "-r", "--name-only", "main"], &repo);
    assert_eq!(files.lines().collect::<Vec<_>>(), ["README.md", "manifests/.gitkeep"]);
    assert_eq!(git(&["rev-list", "--count", "main"], &repo).trim(), "1");

    // It is a usable remote: a clone checks out `main`.
    let clone = folder.path().join("clone");
    git(&["clone", "--quiet", repo.to_str().unwrap(), clone.to_str().unwrap()], folder.path());
    assert!(clone.join("manifests/.gitkeep").is_file());
    assert_eq!(git(&["branch", "--show-current"], &clone).trim(), "main");
}

#[test]
fn a_folder_that_is_not_a_finished_repository_is_reported_not_reused() {
    let folder = tempfile::tempdir().unwrap();
    let repo = folder.path().join("gitops.git");
    // A bare repository without the branch, as an interrupted older setup could leave.
    std::fs::create_dir_all(&repo).unwrap();
    git(&["init", "--quiet", "--bare"], &repo);
    let error = init_local_repository(&repo, "main", &[]).unwrap_err().to_string();
    assert!(error.contains("refs/heads/main"), "{error}");
}
