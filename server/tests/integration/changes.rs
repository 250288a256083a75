//! Change sets against real OpenBao, git, SQLite and PostgreSQL: a live service changed by a
//! modify change set (only the difference written: Vault objects, a pull request holding only
//! the changed files, a dropped secret retired), one change set at a time, colliding Vault names
//! refused inside the submitting transaction, and a modify that survives OpenBao going away
//! between two of its steps.

use std::sync::Arc;
use std::time::Duration;

use app::access::{AppError, Principal, Role};
use app::onboarding::{
    Alphabet, ChangeKind, OnboardingRequest, OnboardingRules, SecretSource, SecretSpec,
};
use app::request_api::Decision;
use app::request_api::ssr::RequestService;
use meshport_server::audit::Actor;
use meshport_server::gitops::Gitops;
use meshport_server::jobs::{Engine, GitopsProposals};
use meshport_server::request_service::Requests;
use meshport_server::vault::{Vault, VaultConfig};
use secrecy::SecretString;

use crate::artifacts::cart;
use crate::gitops::{Remote, git, open_gitops};
use crate::harness::{Backend, TestDatabase, person};
use crate::provisioning::{PersistentOpenBao, Platform, call};

/// A portal over one database, OpenBao and a bare GitOps repository: the request service, the
/// engine, a developer (dana) and two platform admins (alex, blake).
pub(crate) struct Portal {
    pub(crate) db: TestDatabase,
    pub(crate) remote: Remote,
    pub(crate) gitops: Arc<Gitops>,
    pub(crate) engine: Engine,
    pub(crate) requests: Requests,
    pub(crate) dana: Principal,
    pub(crate) alex: Principal,
    pub(crate) blake: Principal,
}

impl Portal {
    pub(crate) async fn new(backend: Backend, vault: Arc<Vault>, platform: &Platform) -> Self {
        let db = TestDatabase::new(backend).await;
        let remote = Remote::new();
        let gitops = Arc::new(open_gitops(&remote.settings(), db.store.clone()).unwrap());
        let rules = OnboardingRules {
            namespaces: vec!["prod-app".into(), "prod".into()],
            ..OnboardingRules::default()
        };
        let engine = Engine::new(
            db.store.clone(),
            vault.clone(),
            Arc::new(GitopsProposals { gitops: gitops.clone(), store: db.store.clone() }),
            platform.settings.clone(),
            rules.clone(),
        );
        let requests = Requests {
            store: db.store.clone(),
            rules,
            vault,
            settings: platform.settings.clone(),
            gitops: Some(gitops.clone()),
            notifications: Default::default(),
        };
        let (_, dana) = person(&db.store, "dana", &[Role::Developer]).await;
        let (_, alex) = person(&db.store, "alex", &[Role::PlatformAdmin]).await;
        let (_, blake) = person(&db.store, "blake", &[Role::PlatformAdmin]).await;
        Self { db, remote, gitops, engine, requests, dana, alex, blake }
    }

    /// Runs the engine until no job is due.
    pub(crate) async fn run(&self) {
        while self.engine.run_next().await.unwrap().is_some() {}
    }

    /// Merges the change set's pull request, as an admin's merge in meshport would.
    pub(crate) async fn merge(&self, change: &str) {
        let pulls = self.db.store.pull_requests_of(change.parse().unwrap()).await.unwrap();
        let pr = pulls.last().expect("a pull request");
        self.gitops.merge(pr.id, Actor::from(&self.alex)).await.unwrap();
    }

    /// The files the change set's branch changes against main.
    fn changed_files(&self, branch: &str) -> Vec<String> {
        let out = git(&["diff", "--name-only", "main", branch], &self.remote.bare);
        out.lines().map(str::to_owned).collect()
    }

    /// dana onboards `form`, alex approves, the engine provisions, the PR merges.
    pub(crate) async fn live(&self, form: OnboardingRequest) -> String {
        let id = self.requests.submit(&self.dana, form).await.unwrap();
        self.requests.decide(&self.alex, &id, Decision::Approve, "").await.unwrap();
        self.run().await;
        self.merge(&id).await;
        id
    }
}

/// A KV secret's metadata, read with the root token.
pub(crate) async fn metadata(platform: &Platform, path: &str) -> serde_json::Value {
    let url = format!("{}/metadata/{path}", platform.config.kv_mount);
    call(&platform.addr, &platform.root, "GET", url, None).await.1["data"].clone()
}

#[tokio::test]
async fn a_live_service_changes_by_a_second_persons_approval_and_only_the_difference_lands() {
    let platform = Platform::new().await;
    let portal = Portal::new(Backend::Sqlite, platform.meshport.clone(), &platform).await;
    let requests = &portal.requests;
    let (form, _) = cart();
    let onboarding = portal.live(form.clone()).await;
    let service = requests.service(&portal.dana, "prod-app", "cart").await.unwrap();
    assert_eq!((service.version, service.open_change.as_deref()), (1, None));

    // dana adds a caller and a secret and bumps the image.
    let mut changed = service.spec.clone().unwrap();
    changed.justification = "Payment now calls cart; a session key for the new API.".into();
    changed.allowed_callers.push("payment".into());
    changed.image = "ghcr.io/open-telemetry/demo:2.1.4-cart".into();
    changed.secrets.push(SecretSpec {
        name: "session_key".into(),
        source: SecretSource::Generate { length: 48, alphabet: Alphabet::Alphanumeric },
    });
    let preview = requests.preview_change(&portal.dana, "prod-app", "cart", changed.clone()).await;
    let preview = preview.unwrap();
    let fields: Vec<&str> = preview.differences.iter().map(|d| d.field.as_str()).collect();
    assert_eq!(fields, ["allowed_callers", "image", "secrets[session_key]"]);
    assert!(preview.vault.iter().any(|v| v.change == "create" && v.path.ends_with("session_key")));
    assert!(preview.files.iter().all(|f| f.path != "manifests/prod-app/cart/service.yaml"));
    let unchanged = requests.propose_change(&portal.dana, "prod-app", "cart", form.clone()).await;
    assert!(matches!(unchanged, Err(AppError::InvalidRequest(_))), "nothing differs");

    let change = requests.propose_change(&portal.dana, "prod-app", "cart", changed.clone()).await;
    let change = change.unwrap();
    // One change set at a time.
    let second = requests.propose_change(&portal.dana, "prod-app", "cart", changed.clone()).await;
    assert!(matches!(second, Err(AppError::Conflict(_))), "{second:?}");
    let detail = requests.detail(&portal.dana, &change).await.unwrap();
    assert_eq!(detail.request.kind, ChangeKind::Modify);
    assert_eq!(detail.request.base_change.as_deref(), Some(onboarding.as_str()));
    assert_eq!(detail.differences.len(), 3);
    assert!(detail.request.digest.as_ref().is_some_and(|d| d.len() == 64));
    assert!(portal.engine.run_next().await.unwrap().is_none(), "nothing before the decision");

    // The requester cannot approve, even as an admin; another admin does.
    let (_, dana_admin) = person(&portal.db.store, "dana", &[Role::PlatformAdmin]).await;
    let own = requests.decide(&dana_admin, &change, Decision::Approve, "").await;
    assert!(matches!(own, Err(AppError::Forbidden(_))), "{own:?}");
    requests.decide(&portal.blake, &change, Decision::Approve, "looks right").await.unwrap();
    portal.run().await;
    let detail = requests.detail(&portal.dana, &change).await.unwrap();
    assert_eq!(detail.request.status.as_str(), "pr_open", "{detail:#?}");

    // The new secret exists once; the old one kept its only version.
    let session = metadata(&platform, "prod-app/cart/session_key").await;
    assert_eq!(session["current_version"], 1);
    assert_eq!(metadata(&platform, "prod-app/cart/valkey_password").await["current_version"], 1);
    // The pull request holds only the changed files.
    let branch = detail.pull_requests[0].branch.clone();
    let files = portal.changed_files(&branch);
    assert!(files.contains(&"manifests/prod-app/cart/deployment.yaml".to_owned()), "{files:?}");
    for untouched in ["serviceaccount.yaml", "service.yaml", "server-grpc.yaml"] {
        let path = format!("manifests/prod-app/cart/{untouched}");
        assert!(!files.contains(&path), "{path} is unchanged but in {files:?}");
    }
    portal.merge(&change).await;
    let service = requests.service(&portal.dana, "prod-app", "cart").await.unwrap();
    assert_eq!(service.version, 2);
    assert_eq!(service.spec.as_ref().unwrap().image, changed.image);
    let versions: Vec<(ChangeKind, Option<i32>)> =
        service.history.iter().map(|c| (c.kind, c.version)).collect();
    assert_eq!(versions, [(ChangeKind::Modify, Some(2)), (ChangeKind::Onboard, Some(1))]);

    // A second change drops the secret: retired per `vault.offboard_secrets` (kept, marked).
    let mut dropped = changed.clone();
    dropped.secrets.retain(|s| s.name != "session_key");
    dropped.justification = "The session key moved to the platform.".into();
    let third = requests.propose_change(&portal.dana, "prod-app", "cart", dropped).await.unwrap();
    requests.decide(&portal.alex, &third, Decision::Approve, "").await.unwrap();
    portal.run().await;
    let retired = metadata(&platform, "prod-app/cart/session_key").await;
    assert!(retired["custom_metadata"]["offboarded_at"].is_string(), "{retired}");
    assert_eq!(retired["current_version"], 1, "kept, not rewritten");
    let detail = requests.detail(&portal.dana, &third).await.unwrap();
    let retire = detail.jobs[0].steps.iter().find(|s| s.name == "vault_retire_secrets").unwrap();
    assert_eq!(retire.detail["retired"].as_array().unwrap().len(), 1, "{retire:?}");
}

#[tokio::test]
async fn an_offboarding_needs_a_second_admin_and_frees_the_name() {
    let platform = Platform::new().await;
    let portal = Portal::new(Backend::Sqlite, platform.meshport.clone(), &platform).await;
    let requests = &portal.requests;
    portal.live(cart().0).await;
    let asked = requests.propose_offboarding(&portal.alex, "prod-app", "cart", "").await;
    assert!(matches!(asked, Err(AppError::Invalid(_))), "a justification is required");
    let id = requests
        .propose_offboarding(&portal.alex, "prod-app", "cart", "cart moved to the new platform")
        .await
        .unwrap();
    let own = requests.decide(&portal.alex, &id, Decision::Approve, "").await;
    assert!(matches!(own, Err(AppError::Forbidden(_))), "{own:?}");
    requests.decide(&portal.blake, &id, Decision::Approve, "").await.unwrap();
    portal.run().await;
    let detail = requests.detail(&portal.alex, &id).await.unwrap();
    assert_eq!(detail.request.status.as_str(), "pr_open");
    portal.merge(&id).await;
    portal.run().await;
    let detail = requests.detail(&portal.alex, &id).await.unwrap();
    assert_eq!(detail.request.status.as_str(), "merged", "{detail:#?}");
    assert!(portal.db.store.service("prod-app", "cart").await.unwrap().is_none());
    // The name is free again.
    requests.submit(&portal.dana, cart().0).await.unwrap();
}

/// Two onboardings whose Vault names are both `prod-app-cart` (`prod-app/cart` and
/// `prod/app-cart`), submitted at the same moment: the database lets exactly one through.
async fn colliding_vault_names_are_refused_inside_the_transaction(backend: Backend) {
    let platform = Platform::new().await;
    let portal = Arc::new(Portal::new(backend, platform.meshport.clone(), &platform).await);
    for _ in 0..3 {
        let a = OnboardingRequest { namespace: "prod-app".into(), ..cart().0 };
        let b =
            OnboardingRequest { namespace: "prod".into(), service: "app-cart".into(), ..cart().0 };
        let (pa, pb) = (portal.clone(), portal.clone());
        let (ra, rb) = tokio::join!(
            tokio::spawn(async move { pa.requests.submit(&pa.dana, a).await }),
            tokio::spawn(async move { pb.requests.submit(&pb.dana, b).await }),
        );
        let results = [ra.unwrap(), rb.unwrap()];
        let won: Vec<&String> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(won.len(), 1, "{results:?}");
        let lost = results.iter().find_map(|r| r.as_ref().err()).unwrap();
        assert!(matches!(lost, AppError::Conflict(m) if m.contains("prod-app-cart")), "{lost:?}");
        // Free the name for the next round.
        portal.requests.withdraw(&portal.dana, won[0]).await.unwrap();
    }
}

#[tokio::test]
async fn colliding_vault_names_on_postgres() {
    colliding_vault_names_are_refused_inside_the_transaction(Backend::Postgres).await;
}

#[tokio::test]
async fn colliding_vault_names_on_sqlite() {
    colliding_vault_names_are_refused_inside_the_transaction(Backend::Sqlite).await;
}

#[tokio::test]
async fn openbao_killed_between_two_steps_of_a_modify_ends_in_exactly_the_approved_state() {
    let platform = Platform::new().await;
    let bao = PersistentOpenBao::start().await;
    let config = VaultConfig {
        addr: bao.addr(),
        token: Some(SecretString::from(bao.root_token.clone())),
        ..platform.config.clone()
    };
    let vault = Arc::new(Vault::new(&config).unwrap());
    vault.ensure_mounts().await.unwrap();
    let portal = Portal::new(Backend::Sqlite, vault.clone(), &platform).await;
    let requests = &portal.requests;
    // cart without a PKI certificate: this OpenBao has no PKI engine.
    let form = OnboardingRequest { certificate: None, ..cart().0 };
    portal.live(form.clone()).await;
    let mut changed = form.clone();
    changed.justification = "a token for the new API".into();
    changed.secrets.push(SecretSpec {
        name: "api_token".into(),
        source: SecretSource::Generate { length: 32, alphabet: Alphabet::Alphanumeric },
    });
    changed.allowed_callers.push("payment".into());
    let id = requests.propose_change(&portal.dana, "prod-app", "cart", changed).await.unwrap();
    requests.decide(&portal.alex, &id, Decision::Approve, "").await.unwrap();

    // OpenBao goes away once the first step of the change set is recorded: a later step
    // fails, and is retried after a backoff.
    let job = portal.db.store.jobs_of_request(id.parse().unwrap()).await.unwrap().pop().unwrap();
    let steps = |job: uuid::Uuid| {
        let store = portal.db.store.clone();
        async move {
            store.job_steps(job).await.unwrap().into_iter().map(|s| s.step).collect::<Vec<_>>()
        }
    };
    let bao = Arc::new(std::sync::Mutex::new(bao));
    let killer = {
        let (bao, store) = (bao.clone(), portal.db.store.clone());
        tokio::spawn(async move {
            while store.job_steps(job.id).await.unwrap().is_empty() {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            bao.lock().unwrap().kill();
        })
    };
    portal.engine.run_next().await.unwrap();
    killer.await.unwrap();
    let job = portal.db.store.jobs_of_request(id.parse().unwrap()).await.unwrap().pop().unwrap();
    let before = steps(job.id).await;
    assert_eq!(job.state, meshport_server::store::JobState::Queued, "{job:?} after {before:?}");
    assert!(job.last_error.as_deref().is_some_and(|e| e.contains("did not answer")), "{job:?}");
    let mut bao = Arc::into_inner(bao).unwrap().into_inner().unwrap();
    bao.run().await;
    bao.unseal().await;
    tokio::time::sleep(
        job.next_run_at.signed_duration_since(chrono::Utc::now()).to_std().unwrap_or_default()
            + Duration::from_millis(100),
    )
    .await;
    portal.run().await;
    let job = portal.db.store.jobs_of_request(id.parse().unwrap()).await.unwrap().pop().unwrap();
    assert_eq!(job.state, meshport_server::store::JobState::Done, "{:?}", job.last_error);
    let after = steps(job.id).await;
    assert!(after.len() > before.len(), "{before:?} then {after:?}");
    // Exactly the approved state: one version of the new secret, nothing left to change.
    let url = format!("{}/metadata/prod-app/cart/api_token", config.kv_mount);
    let (_, token) = call(&bao.addr(), &bao.root_token, "GET", url, None).await;
    assert_eq!(token["data"]["current_version"], 1, "{token}");
    let detail = requests.detail(&portal.dana, &id).await.unwrap();
    assert_eq!(detail.request.status.as_str(), "pr_open");
    let artifacts = meshport_server::artifacts::ServiceArtifacts::from_stored(
        &portal.db.store.request(id.parse().unwrap()).await.unwrap().unwrap().spec,
        &portal.requests.rules,
        &portal.requests.settings,
        portal.db.store.service("prod-app", "cart").await.unwrap().unwrap().origin,
    )
    .unwrap();
    let drift = vault.plan(&artifacts, &portal.db.store, id.parse().unwrap()).await.unwrap();
    assert!(drift.is_empty(), "nothing half-applied: {drift:?}");
}
