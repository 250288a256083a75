//! The GitOps repository and meshport's pull requests, with the real git CLI against bare
//! repositories (over `file://` here, over smart HTTP in `smart_http`), on SQLite and
//! PostgreSQL. Forge APIs are mocked only in the `contract_…` tests.

mod api;
mod approval;
mod contracts;
mod smart_http;
mod webhooks;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use app::onboarding::{OnboardingRequest, OnboardingRules, PortSpec, Protocol, ValidRequest};
use meshport_server::artifacts::{ArtifactFile, ServiceArtifacts};
use meshport_server::audit::{self, Actor};
use meshport_server::config::Config;
use meshport_server::gitops::{
    GitAuth, GitError, GitRepository, Gitops, GitopsConfig, GitopsError, Person, ProposedChange,
    ProposedRemoval, ServiceCommit, init_local_repository,
};
use meshport_server::store::{NewOnboardingRequest, NewUser, Store};
use uuid::Uuid;

use crate::harness::{Backend, TestDatabase};

on_both_backends!(
    a_proposal_commits_exactly_the_service_files_and_opens_a_pull_request,
    an_admin_merge_lands_on_the_base_branch_and_the_evidence_shows_it,
    auto_merge_merges_right_after_opening,
);

pub fn git(args: &[&str], dir: &Path) -> String {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Riley Reviewer")
        .env("GIT_AUTHOR_EMAIL", "riley@shop.example")
        .env("GIT_COMMITTER_NAME", "Riley Reviewer")
        .env("GIT_COMMITTER_EMAIL", "riley@shop.example")
        .output()
        .unwrap();
    assert!(output.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

pub fn dana() -> Person {
    Person { name: "Dana Developer".into(), email: "dana@shop.example".into() }
}

pub fn alex() -> Person {
    Person { name: "Alex Admin".into(), email: "alex@shop.example".into() }
}

/// The manifests of a small `cart` service, as #3 renders them.
pub fn cart_files(request_id: Uuid) -> Vec<ArtifactFile> {
    let request = OnboardingRequest {
        service: "cart".into(),
        team: "cart".into(),
        justification: "Cart holds baskets; frontend calls it over mTLS.".into(),
        image: "ghcr.io/open-telemetry/demo:2.1.3-cart".into(),
        ports: vec![PortSpec {
            name: "grpc".into(),
            number: 7070,
            protocol: Protocol::Grpc,
            allowed_callers: None,
        }],
        allowed_callers: vec!["frontend".into()],
        ..OnboardingRequest::default()
    };
    let valid = ValidRequest::new(request, &OnboardingRules::default()).unwrap();
    ServiceArtifacts::build(&valid, &Config::default().artifact_settings(), Some(request_id))
        .gitops_files()
        .unwrap()
}

/// A stored onboarding request for `cart` by Dana; pull requests refer to it.
pub async fn cart_request(store: &Store) -> Uuid {
    let mut tx = store.begin().await.unwrap();
    let dana = tx
        .upsert_user(&NewUser {
            issuer: "https://idp.example",
            subject: "dana",
            email: "dana@shop.example",
            display_name: "Dana Developer",
        })
        .await
        .unwrap();
    let spec = serde_json::json!({});
    let request = tx
        .create_request(&NewOnboardingRequest {
            id: uuid::Uuid::new_v4(),
            kind: app::onboarding::ChangeKind::Onboard,
            base_change: None,
            digest: None,
            service_name: "cart",
            namespace: "prod-app",
            team: "cart",
            requested_by: dana.id,
            justification: "Cart holds baskets.",
            spec: &spec,
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    request.id
}

pub fn proposal(request_id: Uuid) -> ProposedChange {
    ProposedChange {
        changes_live: false,
        request_id,
        namespace: "prod-app".into(),
        service: "cart".into(),
        files: cart_files(request_id),
        author: dana(),
        approver: alex(),
        summary: "Cart holds baskets; frontend calls it over mTLS.".into(),
    }
}

/// The address links in pull requests start with: meshport's default public URL.
pub const PUBLIC_URL: &str = "http://127.0.0.1:3000";

/// The GitOps service `settings` describe (they name the repository and working clone), with
/// links to [`PUBLIC_URL`].
pub fn open_gitops(settings: &GitopsConfig, store: Store) -> Result<Gitops, GitopsError> {
    Gitops::from_config(settings, Path::new("data"), PUBLIC_URL, store)
}

/// A folder with a fresh local bare repository (`main` holds the initial layout).
pub struct Remote {
    pub folder: tempfile::TempDir,
    pub bare: PathBuf,
}

impl Remote {
    pub fn new() -> Self {
        let folder = tempfile::tempdir().unwrap();
        let bare = folder.path().join("gitops.git");
        init_local_repository(&bare, "main", &[]).unwrap();
        Self { folder, bare }
    }

    /// Settings of the `local` provider over this repository.
    pub fn settings(&self) -> GitopsConfig {
        GitopsConfig {
            repo_url: Some(self.bare.display().to_string()),
            cache_dir: Some(self.folder.path().join("cache")),
            ..GitopsConfig::default()
        }
    }

    /// The whole configuration, for the web layer: these settings, defaults elsewhere.
    pub fn config(&self) -> Config {
        Config { gitops: self.settings(), ..Config::default() }
    }

    /// Someone else (a reviewer) commits `path` with `contents` on top of `main` and pushes
    /// that to `branch` behind meshport's back. Returns their commit.
    pub fn push_as_someone_else(&self, branch: &str, path: &str, contents: &str) -> String {
        let other = self.folder.path().join(format!("other-{}", Uuid::new_v4().simple()));
        let (bare, clone) = (self.bare.to_str().unwrap(), other.to_str().unwrap());
        git(&["clone", "--quiet", bare, clone], self.folder.path());
        let file = other.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, contents).unwrap();
        git(&["add", "--all"], &other);
        git(&["commit", "--quiet", "-m", "Someone else's change"], &other);
        git(&["push", "--quiet", "origin", &format!("HEAD:refs/heads/{branch}")], &other);
        git(&["rev-parse", "HEAD"], &other)
    }

    /// Someone else (a reviewer) adds a commit changing `path` on top of `branch` and pushes it
    /// there, as a push to an open pull request's branch. Returns their commit.
    pub fn push_onto_branch(&self, branch: &str, path: &str, contents: &str) -> String {
        let other = self.folder.path().join(format!("other-{}", Uuid::new_v4().simple()));
        let (bare, clone) = (self.bare.to_str().unwrap(), other.to_str().unwrap());
        git(&["clone", "--quiet", "--branch", branch, bare, clone], self.folder.path());
        let file = other.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, contents).unwrap();
        git(&["add", "--all"], &other);
        git(&["commit", "--quiet", "-m", "A change after approval"], &other);
        git(&["push", "--quiet", "origin", &format!("HEAD:refs/heads/{branch}")], &other);
        git(&["rev-parse", "HEAD"], &other)
    }

    /// The paths changed between `from` and `to`, with their status letter.
    pub fn diff(&self, from: &str, to: &str) -> Vec<String> {
        let out = git(&["diff", "--name-status", from, to], &self.bare);
        out.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect()
    }
}

fn added(files: &[ArtifactFile]) -> Vec<String> {
    let mut paths: Vec<String> = files.iter().map(|f| format!("A {}", f.path)).collect();
    paths.sort();
    paths
}

async fn events(store: &Store, action: &str) -> Vec<serde_json::Value> {
    let verification = audit::verify(store, &[]).await.unwrap();
    assert!(verification.first_broken.is_none(), "{verification:?}");
    let mut found = Vec::new();
    let mut after = 0;
    loop {
        let page = audit_page(store, after).await;
        let Some(last) = page.last() else { break };
        after = last.0;
        found.extend(
            page.into_iter()
                .filter(|(_, a, _)| a == action)
                .map(|(_, _, details)| serde_json::from_str(&details).unwrap()),
        );
    }
    found
}

async fn audit_page(store: &Store, after: i64) -> Vec<(i64, String, String)> {
    let sql = "SELECT seq, action, details FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT 500";
    match store {
        Store::Sqlite(pool) => sqlx::query_as(sql).bind(after).fetch_all(pool).await.unwrap(),
        Store::Postgres(pool) => sqlx::query_as(sql).bind(after).fetch_all(pool).await.unwrap(),
    }
}

async fn a_proposal_commits_exactly_the_service_files_and_opens_a_pull_request(db: TestDatabase) {
    let remote = Remote::new();
    let gitops = open_gitops(&remote.settings(), db.store.clone()).unwrap();
    let request_id = cart_request(&db.store).await;
    let change = proposal(request_id);

    let pr = gitops.propose(&change).await.unwrap();
    let branch = format!("meshport/cart-{request_id}");
    assert_eq!(
        (pr.branch.as_str(), pr.state.as_str(), pr.provider.as_str()),
        (branch.as_str(), "open", "local")
    );
    assert_eq!(
        (pr.kind.as_str(), pr.number, pr.merge_commit_sha.as_deref()),
        ("onboarding", 1, None)
    );

    // Exactly the service's files, in one commit on top of main, which is untouched.
    assert_eq!(remote.diff("main", &branch), added(&change.files));
    assert_eq!(git(&["rev-list", "--count", &format!("main..{branch}")], &remote.bare), "1");
    assert_eq!(git(&["rev-list", "--count", "main"], &remote.bare), "1");
    for file in &change.files {
        let shown = git(&["show", &format!("{branch}:{}", file.path)], &remote.bare);
        assert_eq!(shown, file.contents.trim_end());
    }
    let who = git(&["log", "-1", "--format=%an <%ae>|%cn <%ce>", &branch], &remote.bare);
    assert_eq!(who, "Dana Developer <dana@shop.example>|meshport <meshport@localhost>");
    let message = git(&["log", "-1", "--format=%B", &branch], &remote.bare);
    assert!(
        message.starts_with(&format!("Onboard cart to prod-app (request {request_id})")),
        "{message}"
    );
    assert!(message.contains("Approved-by: Alex Admin <alex@shop.example>"), "{message}");
    assert_eq!(pr.head_sha, git(&["rev-parse", &branch], &remote.bare));

    // Opened is in the audit trail with the link the evidence report reads.
    let opened = events(&db.store, "pull_request_opened").await;
    assert_eq!(opened.len(), 1);
    assert_eq!(opened[0]["url"], pr.url.as_str());
    assert_eq!(opened[0]["branch"], branch.as_str());

    // Proposing again (a retried job) returns the same pull request and pushes nothing.
    let again = gitops.propose(&change).await.unwrap();
    assert_eq!(again.id, pr.id);
    assert_eq!(git(&["rev-list", "--count", &format!("main..{branch}")], &remote.bare), "1");
    assert_eq!(db.store.pull_requests_of(request_id).await.unwrap(), vec![pr]);
}

async fn an_admin_merge_lands_on_the_base_branch_and_the_evidence_shows_it(db: TestDatabase) {
    let remote = Remote::new();
    let gitops = open_gitops(&remote.settings(), db.store.clone()).unwrap();
    let request_id = cart_request(&db.store).await;
    let change = proposal(request_id);
    let pr = gitops.propose(&change).await.unwrap();

    let admin = Actor {
        user_id: Some(Uuid::new_v4().to_string()),
        subject: "alex".into(),
        email: "alex@shop.example".into(),
        roles: vec!["platform-admin".into()],
    };
    let merged = gitops.merge(pr.id, admin.clone()).await.unwrap();
    let main = git(&["rev-parse", "main"], &remote.bare);
    assert_eq!(
        (merged.state.as_str(), merged.merge_commit_sha.as_deref()),
        ("merged", Some(main.as_str()))
    );
    let parents = git(&["log", "-1", "--format=%P", "main"], &remote.bare);
    assert_eq!(parents.split(' ').count(), 2, "a merge commit: {parents}");
    assert_eq!(remote.diff("main~1", "main"), added(&change.files));

    // Merging again changes nothing; the merge is recorded once, by the admin.
    assert_eq!(gitops.merge(pr.id, admin).await.unwrap().merge_commit_sha, merged.merge_commit_sha);
    let merges = events(&db.store, "pull_request_merged").await;
    assert_eq!(merges.len(), 1);
    assert_eq!(merges[0]["commit_sha"], main.as_str());
    assert_eq!(merges[0]["source"], "merge");

    // Offboarding removes the service's folder, and nothing else.
    let removal = ProposedRemoval {
        request_id,
        namespace: "prod-app".into(),
        service: "cart".into(),
        author: dana(),
        approver: alex(),
        summary: "cart is retired".into(),
    };
    let offboarding = gitops.propose_removal(&removal).await.unwrap();
    assert_eq!(offboarding.kind, "offboarding");
    assert_eq!(offboarding.branch, format!("meshport/offboard-cart-{request_id}"));
    let mut deleted: Vec<String> = change.files.iter().map(|f| format!("D {}", f.path)).collect();
    deleted.sort();
    assert_eq!(remote.diff("main", &offboarding.branch), deleted);
    gitops.merge(offboarding.id, Actor::system()).await.unwrap();
    let left = git(&["ls-tree", "-r", "--name-only", "main"], &remote.bare);
    assert_eq!(left.lines().collect::<Vec<_>>(), ["README.md", "manifests/.gitkeep"]);

    // The evidence shows the onboarding's link and merge commit, not the removal's.
    let rows = audit::evidence::rows(&db.store).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].pr_url.as_str(), rows[0].commit_sha.as_str()),
        (pr.url.as_str(), main.as_str())
    );

    // Nothing left to remove: a clear error before anything is pushed or stored.
    let again = ProposedRemoval { request_id: Uuid::new_v4(), ..removal };
    let error = gitops.propose_removal(&again).await.unwrap_err().to_string();
    assert!(
        error.contains("nothing to commit") && error.contains("manifests/prod-app/cart"),
        "{error}"
    );
}

async fn auto_merge_merges_right_after_opening(db: TestDatabase) {
    let remote = Remote::new();
    let settings = GitopsConfig { auto_merge: true, ..remote.settings() };
    let gitops = open_gitops(&settings, db.store.clone()).unwrap();
    let request_id = cart_request(&db.store).await;
    let pr = gitops.propose(&proposal(request_id)).await.unwrap();
    assert_eq!(pr.state, "merged");
    assert_eq!(pr.merge_commit_sha.unwrap(), git(&["rev-parse", "main"], &remote.bare));
    assert!(
        git(&["ls-tree", "-r", "--name-only", "main"], &remote.bare)
            .contains("manifests/prod-app/cart/")
    );
}

/// A repository handle over `remote` with `retries`, without a database.
fn repository(remote: &Remote, retries: u32) -> Arc<GitRepository> {
    let cache = remote.folder.path().join(format!("cache-{}", Uuid::new_v4().simple()));
    Arc::new(GitRepository::new(
        &format!("file://{}", remote.bare.display()),
        "main",
        &cache,
        GitAuth::None,
        retries,
    ))
}

static DANA: std::sync::LazyLock<Person> = std::sync::LazyLock::new(dana);

fn commit<'a>(branch: &'a str, files: &'a [ArtifactFile], message: &'a str) -> ServiceCommit<'a> {
    ServiceCommit { branch, directory: "manifests/prod-app/cart", files, author: &DANA, message }
}

#[test]
fn a_push_refused_because_someone_else_pushed_is_rebased_and_retried() {
    let remote = Remote::new();
    let repo = repository(&remote, 3);
    let files = cart_files(Uuid::new_v4());
    let branch = "meshport/cart-concurrent";

    // A reviewer pushes a note to the branch before meshport's push lands.
    let theirs = remote.push_as_someone_else(branch, "docs/review-notes.md", "Looks fine.\n");

    let head = repo.commit_and_push(&commit(branch, &files, "Onboard cart")).unwrap();
    assert_eq!(head, git(&["rev-parse", branch], &remote.bare));
    // Their commit is kept underneath meshport's, which still adds exactly the files.
    assert_eq!(git(&["rev-parse", &format!("{branch}~1")], &remote.bare), theirs);
    assert_eq!(remote.diff(&format!("{branch}~1"), branch), added(&files));
    let who = git(&["log", "-1", "--format=%an|%cn", branch], &remote.bare);
    assert_eq!(who, "Dana Developer|meshport");
}

#[test]
fn retries_are_bounded() {
    let remote = Remote::new();
    let repo = repository(&remote, 0);
    remote.push_as_someone_else("meshport/cart-bounded", "docs/notes.md", "n\n");
    let error = repo
        .commit_and_push(&commit("meshport/cart-bounded", &cart_files(Uuid::new_v4()), "m"))
        .unwrap_err();
    assert!(matches!(error, GitError::RetriesExhausted { attempts: 1, .. }), "{error}");
}

#[test]
fn a_conflicting_branch_of_someone_else_is_never_force_pushed() {
    let remote = Remote::new();
    let repo = repository(&remote, 3);
    let files = cart_files(Uuid::new_v4());
    let branch = "meshport/cart-theirs";
    let theirs = remote.push_as_someone_else(branch, &files[0].path, "someone else's version\n");

    let error = repo.commit_and_push(&commit(branch, &files, "Onboard cart")).unwrap_err();
    assert!(matches!(error, GitError::BranchConflict { .. }), "{error}");
    assert!(error.to_string().contains("never force-pushes"), "{error}");
    assert_eq!(git(&["rev-parse", branch], &remote.bare), theirs, "their branch is untouched");
}

#[test]
fn meshports_own_stale_branch_is_replaced_with_a_lease() {
    let remote = Remote::new();
    let repo = repository(&remote, 3);
    let branch = "meshport/cart-stale";
    let mut files = cart_files(Uuid::new_v4());
    let first = repo.commit_and_push(&commit(branch, &files, "first")).unwrap();
    files[0].contents.push_str("# changed\n");
    // A fresh cache (another meshport replica) pushes a different version of the same files.
    let second = repository(&remote, 3).commit_and_push(&commit(branch, &files, "second")).unwrap();
    assert_ne!(first, second);
    assert_eq!(git(&["rev-parse", branch], &remote.bare), second);
    assert_eq!(git(&["rev-list", "--count", &format!("main..{branch}")], &remote.bare), "1");
    assert_eq!(
        git(&["show", &format!("{branch}:{}", files[0].path)], &remote.bare),
        files[0].contents.trim_end()
    );
}

#[test]
fn files_outside_the_service_folder_are_refused() {
    let remote = Remote::new();
    let repo = repository(&remote, 0);
    for path in [
        "manifests/prod-app/cart/../../../etc/passwd",
        "manifests/prod-app/other/a.yaml",
        "README.md",
    ] {
        let files = [ArtifactFile { path: path.into(), contents: "x\n".into() }];
        let error = repo.commit_and_push(&commit("meshport/cart-escape", &files, "m")).unwrap_err();
        assert!(matches!(error, GitError::OutsideDirectory { .. }), "{path}: {error}");
    }
    assert!(git(&["branch", "--list", "meshport/*"], &remote.bare).is_empty());
}

#[test]
fn the_local_repository_is_created_once_with_the_argocd_layout() {
    let folder = tempfile::tempdir().unwrap();
    let repo = folder.path().join("data/gitops.git");
    assert!(init_local_repository(&repo, "main", &[]).unwrap());
    assert!(!init_local_repository(&repo, "main", &[]).unwrap(), "a second call changes nothing");

    assert_eq!(git(&["rev-parse", "--is-bare-repository"], &repo), "true");
    let files = git(&["ls-tree", "-r", "--name-only", "main"], &repo);
    assert_eq!(files.lines().collect::<Vec<_>>(), ["README.md", "manifests/.gitkeep"]);
    assert_eq!(git(&["rev-list", "--count", "main"], &repo), "1");

    // It is a usable remote: a clone checks out `main`.
    let clone = folder.path().join("clone");
    git(&["clone", "--quiet", repo.to_str().unwrap(), clone.to_str().unwrap()], folder.path());
    assert!(clone.join("manifests/.gitkeep").is_file());
    assert_eq!(git(&["branch", "--show-current"], &clone), "main");
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

#[tokio::test]
async fn a_proposal_with_a_bad_name_or_no_files_is_refused_before_any_git_work() {
    let db = TestDatabase::new(Backend::Sqlite).await;
    let remote = Remote::new();
    let gitops = open_gitops(&remote.settings(), db.store.clone()).unwrap();
    let mut bad = proposal(Uuid::new_v4());
    bad.service = "../cart".into();
    let error = gitops.propose(&bad).await.unwrap_err().to_string();
    assert!(error.contains("service `../cart`") && error.contains("DNS label"), "{error}");
    let mut empty = proposal(Uuid::new_v4());
    empty.files.clear();
    let error = gitops.propose(&empty).await.unwrap_err().to_string();
    assert!(error.starts_with("`files` must hold"), "{error}");
    assert!(git(&["branch", "--list", "meshport/*"], &remote.bare).is_empty());
    assert!(!remote.folder.path().join("cache").exists(), "no clone was made");
}

#[test]
fn a_cache_left_in_the_middle_of_a_rebase_is_recovered() {
    let remote = Remote::new();
    let repo = repository(&remote, 3);
    let files = cart_files(Uuid::new_v4());
    let branch = "meshport/cart-interrupted";
    remote.push_as_someone_else(branch, &files[0].path, "someone else's version\n");
    assert!(repo.commit_and_push(&commit(branch, &files, "first")).is_err());
    // As if meshport had died before `rebase --abort`: start a conflicting rebase by hand.
    let cache = std::fs::read_dir(remote.folder.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("cache-"))
        .unwrap();
    let rebase = Command::new("git")
        .args(["rebase", &format!("refs/remotes/origin/{branch}")])
        .current_dir(&cache)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .unwrap();
    assert!(!rebase.status.success() && cache.join(".git/rebase-merge").exists());
    // The next proposal needs a rebase of its own, which a leftover one would block.
    let theirs = remote.push_as_someone_else("meshport/cart-next", "docs/notes.md", "n\n");
    let head = repo.commit_and_push(&commit("meshport/cart-next", &files, "next")).unwrap();
    assert_eq!(git(&["rev-parse", "meshport/cart-next"], &remote.bare), head);
    assert_eq!(git(&["rev-parse", "meshport/cart-next~1"], &remote.bare), theirs);
}
