//! The provisioning engine against real OpenBao and both databases: jobs claimed under leases
//! by several engines at once, resumed after a crash, retried after Vault went away. These use
//! reconcile jobs (Vault steps only); the GitOps steps are tested with provisioning jobs in
//! `journeys`.

use std::sync::Arc;
use std::time::Duration;

use app::onboarding::{OnboardingRequest, OnboardingRules};
use chrono::Utc;
use meshport_server::artifacts::ArtifactFile;
use meshport_server::config::Config;
use meshport_server::jobs::{Engine, Proposal, Proposals, StepError};
use meshport_server::store::{
    JobKind, JobState, NewOnboardingRequest, OnboardingRequestRecord, Store,
};
use meshport_server::vault::{Vault, VaultConfig};
use secrecy::SecretString;
use serde_json::json;
use uuid::Uuid;

use crate::artifacts::cart;
use crate::harness::{Backend, TestDatabase};
use crate::provisioning::{PersistentOpenBao, Platform, call};

/// Reconcile jobs never reach the GitOps side.
struct NoGitops;

#[async_trait::async_trait]
impl Proposals for NoGitops {
    async fn propose(
        &self,
        _: &OnboardingRequestRecord,
        _: Vec<ArtifactFile>,
    ) -> Result<Proposal, StepError> {
        unreachable!("reconcile jobs open no pull requests")
    }

    async fn propose_removal(&self, _: &OnboardingRequestRecord) -> Result<Proposal, StepError> {
        unreachable!("reconcile jobs open no pull requests")
    }

    async fn removal_merged(&self, _: &OnboardingRequestRecord) -> Result<bool, StepError> {
        unreachable!("reconcile jobs open no pull requests")
    }
}

fn engine(store: Store, vault: Arc<Vault>, config: &VaultConfig) -> Engine {
    let settings = Config { vault: config.clone(), ..Config::default() }.artifact_settings();
    Engine::new(store, vault, Arc::new(NoGitops), settings, OnboardingRules::default())
}

/// `count` stored requests for services `svc-000`… (cart's form otherwise), each with a
/// queued job of `kind`; provisioning jobs come after an approval by alex, as approvals leave
/// them.
async fn stored_services(store: &Store, count: usize, kind: JobKind) -> Vec<Uuid> {
    let (dana, _) = crate::harness::person(store, "dana", &[]).await;
    let (alex, _) = crate::harness::person(store, "alex", &[]).await;
    let mut ids = Vec::new();
    for i in 0..count {
        let form = OnboardingRequest { service: format!("svc-{i:03}"), ..cart().0 };
        let spec = serde_json::to_value(form.without_secret_values()).unwrap();
        let mut tx = store.begin().await.unwrap();
        let request = tx
            .create_request(&NewOnboardingRequest {
                id: uuid::Uuid::new_v4(),
                kind: app::onboarding::ChangeKind::Onboard,
                base_change: None,
                digest: None,
                service_name: &form.service,
                namespace: &form.namespace,
                team: &form.team,
                requested_by: dana.id,
                justification: &form.justification,
                spec: &spec,
            })
            .await
            .unwrap();
        if kind == JobKind::Provision {
            let approved = app::onboarding::RequestStatus::Approved;
            assert!(tx.decide_request(request.id, alex.id, approved, None).await.unwrap());
        }
        tx.enqueue_job(request.id, kind).await.unwrap();
        tx.commit().await.unwrap();
        ids.push(request.id);
    }
    ids
}

/// Requests with queued reconcile jobs (Vault steps only).
async fn queued_services(store: &Store, count: usize) -> Vec<Uuid> {
    stored_services(store, count, JobKind::Reconcile).await
}

/// Runs engines until none finds a due job.
async fn drain(engines: &[Arc<Engine>]) {
    let runs = engines.iter().map(|engine| {
        let engine = engine.clone();
        tokio::spawn(async move { while engine.run_next().await.unwrap().is_some() {} })
    });
    for run in runs.collect::<Vec<_>>() {
        run.await.unwrap();
    }
}

/// Audit events of one action name, as exported.
async fn audit_actions(store: &Store) -> Vec<serde_json::Value> {
    let events = crate::audit::exported(
        store,
        Default::default(),
        meshport_server::audit::export::Format::Jsonl,
    )
    .await;
    String::from_utf8(events).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn details(event: &serde_json::Value) -> serde_json::Value {
    match &event["details"] {
        serde_json::Value::String(text) => serde_json::from_str(text).unwrap(),
        other => other.clone(),
    }
}

#[tokio::test]
async fn three_engines_on_postgres_run_fifty_jobs_with_each_step_exactly_once() {
    let platform = Platform::new().await;
    let db = TestDatabase::new(Backend::Postgres).await;
    let ids = queued_services(&db.store, 50).await;
    // Three engines with pools of their own, as three meshport processes would have.
    let mut engines = Vec::new();
    for _ in 0..3 {
        let store = Store::connect(&SecretString::from(db.url.clone())).await.unwrap();
        engines.push(Arc::new(engine(store, platform.meshport.clone(), &platform.config)));
    }
    drain(&engines).await;

    let mut steps = 0;
    for id in &ids {
        let jobs = db.store.jobs_of_request(*id).await.unwrap();
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].state, JobState::Done, "{:?}", jobs[0].last_error);
        assert_eq!(jobs[0].attempts, 1, "claimed once");
        steps += db.store.job_steps(jobs[0].id).await.unwrap().len();
    }
    assert_eq!(steps, 50 * 4);
    let events = audit_actions(&db.store).await;
    let step_events: Vec<_> =
        events.iter().filter(|e| e["action"] == "provisioning_step").collect();
    assert_eq!(step_events.len(), 50 * 4, "one audit event per step");
    let mut seen = std::collections::HashSet::new();
    for event in &step_events {
        let key = (event["request_id"].clone().to_string(), details(event)["step"].to_string());
        assert!(seen.insert(key), "a step recorded twice: {event}");
    }
    // Vault: every secret got one value, written once.
    for i in [0, 17, 49] {
        let path =
            format!("{}/metadata/prod-app/svc-{i:03}/valkey_password", platform.config.kv_mount);
        let (status, metadata) = call(&platform.addr, &platform.root, "GET", path, None).await;
        assert_eq!((status, metadata["data"]["current_version"].as_u64()), (200, Some(1)));
    }
}

#[tokio::test]
async fn a_run_whose_process_died_is_resumed_at_its_first_unrecorded_step() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let platform = Platform::new().await;
        let db = TestDatabase::new(backend).await;
        let ids = queued_services(&db.store, 1).await;
        // A process claims the job with a short lease, finishes one step, and dies.
        let now = Utc::now();
        let job = db
            .store
            .claim_job("dead-process", now, now + chrono::TimeDelta::seconds(1))
            .await
            .unwrap()
            .unwrap();
        let mut tx = db.store.begin().await.unwrap();
        assert!(
            tx.finish_job_step(job.id, "dead-process", "vault_policy", &json!({ "changed": [] }))
                .await
                .unwrap()
        );
        tx.commit().await.unwrap();
        let survivor = engine(db.store.clone(), platform.meshport.clone(), &platform.config);
        assert_eq!(survivor.run_next().await.unwrap(), None, "the lease still holds");
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(survivor.run_next().await.unwrap(), Some(job.id), "taken over after the lease");

        let job = db.store.jobs_of_request(ids[0]).await.unwrap().pop().unwrap();
        assert_eq!((job.state, job.attempts), (JobState::Done, 2));
        let steps: Vec<String> =
            db.store.job_steps(job.id).await.unwrap().into_iter().map(|s| s.step).collect();
        assert_eq!(steps.len(), 4, "{steps:?}");
        // The dead process's lease is gone: it can record nothing more.
        let mut tx = db.store.begin().await.unwrap();
        assert!(
            !tx.finish_job_step(job.id, "dead-process", "vault_pki", &json!({})).await.unwrap()
        );
    }
}

#[tokio::test]
async fn vault_stopped_between_steps_fails_the_step_visibly_and_a_retry_completes() {
    let bao = std::sync::Mutex::new(PersistentOpenBao::start().await);
    let config = {
        let bao = bao.lock().unwrap();
        VaultConfig {
            addr: bao.addr(),
            token: Some(SecretString::from(bao.root_token.clone())),
            ..VaultConfig::default()
        }
    };
    let vault = Arc::new(Vault::new(&config).unwrap());
    vault.ensure_mounts().await.unwrap();
    let db = TestDatabase::new(Backend::Sqlite).await;
    let ids = queued_services(&db.store, 1).await;
    let engine = engine(db.store.clone(), vault.clone(), &config);

    bao.lock().unwrap().kill();
    engine.run_next().await.unwrap();
    let job = db.store.jobs_of_request(ids[0]).await.unwrap().pop().unwrap();
    assert_eq!(job.state, JobState::Queued, "a transient failure is retried");
    let error = job.last_error.clone().unwrap();
    assert!(error.starts_with("vault_policy:") && error.contains("did not answer"), "{error}");
    assert!(job.next_run_at > Utc::now(), "after a backoff");
    let failures: Vec<_> =
        audit_actions(&db.store).await.into_iter().filter(|e| e["outcome"] == "failure").collect();
    assert_eq!(failures.len(), 1, "the failure is in the audit trail");
    assert_eq!(engine.run_next().await.unwrap(), None, "not before the backoff");

    let mut bao = bao.into_inner().unwrap();
    bao.run().await;
    bao.unseal().await;
    tokio::time::sleep(
        job.next_run_at.signed_duration_since(Utc::now()).to_std().unwrap_or_default(),
    )
    .await;
    assert_eq!(engine.run_next().await.unwrap(), Some(job.id));
    let job = db.store.jobs_of_request(ids[0]).await.unwrap().pop().unwrap();
    assert_eq!((job.state, job.attempts), (JobState::Done, 2), "{:?}", job.last_error);
    assert_eq!(db.store.job_steps(job.id).await.unwrap().len(), 4);
}

#[tokio::test]
async fn a_request_runs_from_submission_through_approval_provisioning_and_merge_to_offboarding() {
    use app::access::Role;
    use app::onboarding::{SecretSource, SecretSpec, SecretValue};
    use app::request_api::ssr::RequestService;
    use app::request_api::{AdminAction, Decision};
    use meshport_server::jobs::GitopsProposals;
    use meshport_server::request_service::Requests;

    let platform = Platform::new().await;
    let db = TestDatabase::new(Backend::Sqlite).await;
    let remote = crate::gitops::Remote::new();
    let gitops =
        Arc::new(crate::gitops::open_gitops(&remote.settings(), db.store.clone()).unwrap());
    let engine = Engine::new(
        db.store.clone(),
        platform.meshport.clone(),
        Arc::new(GitopsProposals { gitops: gitops.clone(), store: db.store.clone() }),
        platform.settings.clone(),
        OnboardingRules::default(),
    );
    let requests = Requests {
        store: db.store.clone(),
        rules: OnboardingRules::default(),
        vault: platform.meshport.clone(),
        settings: platform.settings.clone(),
        gitops: Some(gitops.clone()),
        notifications: Default::default(),
    };
    let (_, dana) = crate::harness::person(&db.store, "dana", &[Role::Developer]).await;
    let (_, alex) = crate::harness::person(&db.store, "alex", &[Role::PlatformAdmin]).await;
    let (_, blake) = crate::harness::person(&db.store, "blake", &[Role::PlatformAdmin]).await;
    let (dana, alex) = (&dana, &alex);

    // dana submits cart with one generated and one provided secret.
    let mut form = cart().0;
    form.secrets.push(SecretSpec {
        name: "api_key".into(),
        source: SecretSource::Provided { value: SecretValue::new("typed-by-dana") },
    });
    let id = requests.submit(dana, form.clone()).await.unwrap();
    assert!(requests.decide(dana, &id, Decision::Approve, "").await.is_err(), "not her own");
    requests.decide(alex, &id, Decision::Approve, "ok").await.unwrap();

    // The engine provisions Vault and opens the pull request.
    assert!(engine.run_next().await.unwrap().is_some());
    let detail = requests.detail(dana, &id).await.unwrap();
    assert_eq!(detail.request.status.as_str(), "pr_open", "{detail:#?}");
    let steps: Vec<&str> = detail.jobs[0].steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        steps,
        [
            "vault_policy",
            "vault_role",
            "vault_secrets",
            "vault_pki",
            "vault_retire_secrets",
            "pull_request"
        ]
    );
    let artifacts = platform.artifacts(form.clone());
    let token = {
        let (_, body) = call(
            &platform.addr,
            &platform.root,
            "POST",
            "auth/token/create",
            Some(json!({ "policies": [artifacts.policy.as_ref().unwrap().name] })),
        )
        .await;
        body["auth"]["client_token"].as_str().unwrap().to_owned()
    };
    let read = |name: &str| {
        let path = format!("{}/data/prod-app/cart/{name}", platform.config.kv_mount);
        let (addr, token) = (platform.addr.clone(), token.clone());
        async move { call(&addr, &token, "GET", path, None).await.1["data"]["data"].clone() }
    };
    assert_eq!(read("api_key").await["api_key"], "typed-by-dana");
    assert_eq!(read("valkey_password").await["valkey_password"].as_str().unwrap().len(), 32);

    // The branch holds exactly the service's files; the request follows the merge.
    let pulls = db.store.pull_requests_of(id.parse().unwrap()).await.unwrap();
    assert_eq!(pulls.len(), 1);
    let files = crate::gitops::git(
        &["ls-tree", "-r", "--name-only", &pulls[0].branch, "manifests/prod-app/cart"],
        &remote.bare,
    );
    let mut expected: Vec<String> =
        artifacts.gitops_files().unwrap().into_iter().map(|f| f.path).collect();
    expected.sort();
    assert_eq!(files.lines().collect::<Vec<_>>(), expected);
    gitops.merge(pulls[0].id, meshport_server::audit::Actor::from(alex)).await.unwrap();
    let detail = requests.detail(dana, &id).await.unwrap();
    assert_eq!(detail.request.status.as_str(), "merged");
    assert_eq!(detail.pull_requests[0].state, "merged");
    assert!(detail.pull_requests[0].merge_commit_sha.is_some(), "the merge commit is shown");
    // A preview now compares with what is merged: a changed replica count changes one file.
    let mut changed = form.clone();
    changed.replicas = 3;
    let preview = requests.preview(dana, changed.clone()).await.unwrap();
    let changes: Vec<(&str, Option<&str>)> = preview
        .iter()
        .filter(|f| f.path.starts_with("manifests/"))
        .map(|f| (f.path.as_str(), f.change.as_deref()))
        .filter(|(_, change)| *change != Some("unchanged"))
        .collect();
    assert_eq!(changes, [("manifests/prod-app/cart/deployment.yaml", Some("changed"))]);
    // A developer of another team previewing the same name reads none of cart's files: no
    // comparison with a folder that is not hers (and no fetch for it); she may preview only
    // for her own teams.
    let (_, mut pat) = crate::harness::person(&db.store, "pat", &[Role::Developer]).await;
    pat.teams = ["payments".to_owned()].into();
    let fetches = gitops.fetches();
    let mut theirs = form.clone();
    theirs.team = "payments".into();
    let preview = requests.preview(&pat, theirs.clone()).await.unwrap();
    assert!(
        preview
            .iter()
            .filter(|f| f.path.starts_with("manifests/"))
            .all(|f| f.change.as_deref() == Some("added")),
        "nothing compared with, nothing shown as removed: {preview:#?}"
    );
    assert_eq!(gitops.fetches(), fetches, "nothing fetched for a folder the caller may not see");
    let refused = requests.preview(&pat, form.clone()).await;
    assert!(matches!(refused, Err(app::access::AppError::Forbidden(_))), "{refused:?}");
    // Fifty previews at once by the owner fetch at most once per interval (30 s by default),
    // and never wait for the provisioning lock.
    let fetches = gitops.fetches();
    let previews = (0..50).map(|_| requests.preview(dana, changed.clone()));
    for preview in futures_util::future::join_all(previews).await {
        assert!(preview.unwrap().iter().any(|f| f.change.as_deref() == Some("changed")));
    }
    assert!(gitops.fetches() - fetches <= 1, "{} fetches", gitops.fetches() - fetches);

    // Offboarding is a change set of its own: asked for by one admin, approved by another
    // (never the asker); then the removal PR first, and Vault access stays until it merges.
    requests.act(alex, &id, AdminAction::Offboard).await.unwrap();
    let service = requests.service(alex, "prod-app", "cart").await.unwrap();
    let offboarding = service.open_change.clone().expect("an offboard change set in flight");
    assert_eq!(service.history[0].kind, app::onboarding::ChangeKind::Offboard);
    assert_eq!(service.history[0].status.as_str(), "submitted");
    assert!(engine.run_next().await.unwrap().is_none(), "nothing runs before the decision");
    let own = requests.decide(alex, &offboarding, Decision::Approve, "").await;
    assert!(matches!(own, Err(app::access::AppError::Forbidden(_))), "{own:?}");
    requests.decide(&blake, &offboarding, Decision::Approve, "").await.unwrap();
    assert!(engine.run_next().await.unwrap().is_some());
    let detail = requests.detail(alex, &offboarding).await.unwrap();
    assert_eq!(detail.jobs[0].state, "queued", "waiting for the merge: {detail:#?}");
    assert_eq!(detail.request.status.as_str(), "pr_open");
    let role = format!("auth/{}/role/{}", artifacts.role.mount, artifacts.role.name);
    assert_eq!(call(&platform.addr, &platform.root, "GET", &role, None).await.0, 200);
    let removal =
        db.store.pull_requests_of(offboarding.parse().unwrap()).await.unwrap().pop().unwrap();
    assert_eq!(removal.kind, "offboarding");
    gitops.merge(removal.id, meshport_server::audit::Actor::from(alex)).await.unwrap();
    assert!(engine.run_next().await.unwrap().is_some(), "the merge woke the job");
    let detail = requests.detail(alex, &offboarding).await.unwrap();
    assert_eq!((detail.request.status.as_str(), detail.jobs[0].state.as_str()), ("merged", "done"));
    let onboarding = requests.detail(alex, &id).await.unwrap();
    assert_eq!(onboarding.request.status.as_str(), "offboarded");
    assert!(db.store.service("prod-app", "cart").await.unwrap().is_none(), "the name is free");
    assert_eq!(call(&platform.addr, &platform.root, "GET", &role, None).await.0, 404);
    let main = crate::gitops::git(
        &["ls-tree", "-r", "--name-only", "main", "manifests/prod-app"],
        &remote.bare,
    );
    assert!(main.trim().is_empty(), "the service's folder is gone from main: {main}");

    // The engine's steps and queue waits are in this process's metrics.
    let mut metrics = String::new();
    meshport_server::process_metrics::render(&mut metrics);
    for series in [
        r#"meshport_job_step_duration_seconds_count{kind="provision",step="vault_policy",outcome="ok"}"#,
        r#"meshport_job_step_duration_seconds_count{kind="offboard",step="vault_remove",outcome="waiting"}"#,
        r#"meshport_job_queue_wait_seconds_count{kind="provision"}"#,
    ] {
        assert!(metrics.contains(series), "{series} in {metrics}");
    }
}

/// Jobs of `ids` that are done.
async fn done(store: &Store, ids: &[Uuid]) -> usize {
    let mut done = 0;
    for id in ids {
        let jobs = store.jobs_of_request(*id).await.unwrap();
        done += usize::from(jobs.last().is_some_and(|j| j.state == JobState::Done));
    }
    done
}

#[tokio::test]
async fn three_meshport_processes_on_postgres_provision_fifty_approvals_once_even_when_one_is_killed()
 {
    use meshport_server::dev::{ServiceProcess, free_loopback_port};
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;

    let platform = Platform::new().await;
    let db = TestDatabase::new(Backend::Postgres).await;
    let remote = crate::gitops::Remote::new();
    let ids = stored_services(&db.store, 50, JobKind::Provision).await;
    let folder = tempfile::tempdir().unwrap();
    let token =
        secrecy::ExposeSecret::expose_secret(platform.config.token.as_ref().unwrap()).to_owned();
    let spawn = |n: usize| {
        let data = folder.path().join(format!("meshport-{n}"));
        std::fs::create_dir_all(&data).unwrap();
        let log =
            std::fs::File::options().create(true).append(true).open(data.join("log")).unwrap();
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_meshport"));
        command
            .arg("serve")
            .env("MESHPORT_LISTEN", format!("127.0.0.1:{}", free_loopback_port().unwrap()))
            .env("MESHPORT_DATA_DIR", &data)
            .env("MESHPORT_DATABASE_URL", &db.url)
            .env("MESHPORT_VAULT__ADDR", &platform.config.addr)
            .env("MESHPORT_VAULT__TOKEN", &token)
            .env("MESHPORT_VAULT__KV_MOUNT", &platform.config.kv_mount)
            .env("MESHPORT_VAULT__KUBERNETES_AUTH_MOUNT", &platform.config.kubernetes_auth_mount)
            .env("MESHPORT_VAULT__PKI_MOUNT", &platform.config.pki_mount)
            .env("MESHPORT_VAULT__NAME_PREFIX", &platform.config.name_prefix)
            .env("MESHPORT_GITOPS__REPO_URL", &remote.bare)
            .env("MESHPORT_GITOPS__CACHE_DIR", data.join("cache"))
            .env("MESHPORT_JOBS__LEASE_SECONDS", "3")
            .env("MESHPORT_JOBS__POLL_MILLIS", "200")
            .env("MESHPORT_JOBS__DRIFT_MINUTES", "0")
            .env("MESHPORT_LOG_FORMAT", "pretty")
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        ServiceProcess::spawn("meshport", command, Signal::SIGTERM).unwrap()
    };
    let logs = || {
        (0..3)
            .map(|n| {
                std::fs::read_to_string(folder.path().join(format!("meshport-{n}/log")))
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("\n----\n")
    };
    let mut processes: Vec<ServiceProcess> = (0..3).map(spawn).collect();

    // Once some requests are provisioned, the first process dies without warning and comes
    // back; the others take over its claimed jobs when their leases run out.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while done(&db.store, &ids).await < 5 {
        assert!(std::time::Instant::now() < deadline, "nothing provisioned:\n{}", logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    kill(Pid::from_raw(processes[0].id() as i32), Signal::SIGKILL).unwrap();
    processes[0].stop(Duration::from_secs(5));
    processes[0] = spawn(0);
    while done(&db.store, &ids).await < ids.len() {
        assert!(std::time::Instant::now() < deadline, "not all provisioned:\n{}", logs());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for process in &mut processes {
        process.stop(Duration::from_secs(35));
    }

    // Each request: one pull request, every step recorded once, one value per secret.
    for id in &ids {
        let request = db.store.request(*id).await.unwrap().unwrap();
        assert_eq!(request.status.as_str(), "pr_open", "{id}");
        assert_eq!(db.store.pull_requests_of(*id).await.unwrap().len(), 1);
    }
    let events = audit_actions(&db.store).await;
    let mut steps = std::collections::HashMap::new();
    for event in
        events.iter().filter(|e| e["action"] == "provisioning_step" && e["outcome"] == "success")
    {
        let step = details(event)["step"].as_str().unwrap_or_default().to_owned();
        if step != "started" {
            *steps.entry((event["request_id"].to_string(), step)).or_insert(0) += 1;
        }
    }
    assert_eq!(steps.len(), 50 * 6, "six steps of fifty requests");
    assert!(steps.values().all(|n| *n == 1), "a step recorded twice: {steps:?}");
    let opened = events.iter().filter(|e| e["action"] == "pull_request_opened").count();
    assert_eq!(opened, 50, "one pull request each");
    let branches = crate::gitops::git(&["branch", "--list", "meshport/*"], &remote.bare);
    assert_eq!(branches.lines().count(), 50);
    for i in 0..50 {
        let path =
            format!("{}/metadata/prod-app/svc-{i:03}/valkey_password", platform.config.kv_mount);
        let (_, metadata) = call(&platform.addr, &platform.root, "GET", path, None).await;
        assert_eq!(metadata["data"]["current_version"], 1, "svc-{i:03}: one value, written once");
    }
}

#[tokio::test]
async fn an_admin_retries_or_cancels_a_failed_job() {
    use app::access::Role;
    use app::request_api::AdminAction;
    use app::request_api::ssr::RequestService;
    use meshport_server::request_service::Requests;

    let platform = Platform::new().await;
    let db = TestDatabase::new(Backend::Sqlite).await;
    let ids = stored_services(&db.store, 1, JobKind::Provision).await;
    let id = ids[0].to_string();
    // The platform has since stopped allowing the request's namespace: the run fails for good.
    let rules = OnboardingRules { namespaces: vec!["elsewhere".into()], ..Default::default() };
    let engine = Engine::new(
        db.store.clone(),
        platform.meshport.clone(),
        Arc::new(NoGitops),
        platform.settings.clone(),
        rules.clone(),
    );
    let requests = Requests {
        store: db.store.clone(),
        rules,
        vault: platform.meshport.clone(),
        settings: platform.settings.clone(),
        gitops: None,
        notifications: Default::default(),
    };
    let (_, admin) = crate::harness::person(&db.store, "blake", &[Role::PlatformAdmin]).await;
    let (_, developer) = crate::harness::person(&db.store, "dana", &[Role::Developer]).await;
    let last_job = || async { db.store.jobs_of_request(ids[0]).await.unwrap().pop().unwrap() };

    engine.run_next().await.unwrap();
    let job = last_job().await;
    assert_eq!(job.state, JobState::Failed);
    assert!(job.last_error.unwrap().contains("namespace"));
    assert_eq!(db.store.request(ids[0]).await.unwrap().unwrap().status.as_str(), "failed");

    assert!(requests.act(&developer, &id, AdminAction::Retry).await.is_err(), "admins only");
    requests.act(&admin, &id, AdminAction::Retry).await.unwrap();
    let job = last_job().await;
    assert_eq!((job.state, job.attempts), (JobState::Queued, 0));
    assert_eq!(db.store.request(ids[0]).await.unwrap().unwrap().status.as_str(), "provisioning");

    engine.run_next().await.unwrap();
    requests.act(&admin, &id, AdminAction::Cancel).await.unwrap();
    assert_eq!(last_job().await.state, JobState::Cancelled);
    // A cancelled job leaves its change set failed, not stuck: it can be retried or withdrawn.
    let status = || async { db.store.request(ids[0]).await.unwrap().unwrap().status };
    assert_eq!(status().await.as_str(), "failed");
    assert!(requests.withdraw(&developer, &id).await.is_err(), "admins withdraw failed ones");
    requests.act(&admin, &id, AdminAction::Retry).await.unwrap();
    assert_eq!(status().await.as_str(), "provisioning");
    engine.run_next().await.unwrap();
    requests.act(&admin, &id, AdminAction::Cancel).await.unwrap();
    requests.withdraw(&admin, &id).await.unwrap();
    assert_eq!(status().await.as_str(), "withdrawn");
    assert!(requests.act(&admin, &id, AdminAction::Retry).await.is_err(), "withdrawn is final");
}

/// Proposals that always succeed: the pull request is not what these tests look at.
struct Proposed;

#[async_trait::async_trait]
impl Proposals for Proposed {
    async fn propose(
        &self,
        request: &OnboardingRequestRecord,
        _: Vec<ArtifactFile>,
    ) -> Result<Proposal, StepError> {
        Ok(Proposal { url: format!("https://forge.example/pulls/{}", request.id) })
    }

    async fn propose_removal(
        &self,
        request: &OnboardingRequestRecord,
    ) -> Result<Proposal, StepError> {
        Ok(Proposal { url: format!("https://forge.example/pulls/{}-removal", request.id) })
    }

    async fn removal_merged(&self, _: &OnboardingRequestRecord) -> Result<bool, StepError> {
        Ok(true)
    }
}

/// A policy written by hand at the name an approved onboarding of `orphan` would use is not
/// overwritten: the step fails for good, naming it. A developer may not adopt it (403); after a
/// platform admin adopts it (recorded in the audit trail), the retried job provisions the
/// service, and its offboarding may delete the policy.
#[tokio::test]
async fn a_policy_made_by_hand_is_refused_until_an_admin_adopts_it() {
    use app::access::{AppError, Role};
    use app::request_api::ssr::RequestService;
    use app::request_api::{AdminAction, Decision};
    use meshport_server::adoption::Adoption;
    use meshport_server::request_service::Requests;

    let platform = Platform::new().await;
    let db = TestDatabase::new(Backend::Sqlite).await;
    let engine = Engine::new(
        db.store.clone(),
        platform.meshport.clone(),
        Arc::new(Proposed),
        platform.settings.clone(),
        OnboardingRules::default(),
    );
    let requests = Requests {
        store: db.store.clone(),
        rules: OnboardingRules::default(),
        vault: platform.meshport.clone(),
        settings: platform.settings.clone(),
        gitops: None,
        notifications: Default::default(),
    };
    let (_, dana) = crate::harness::person(&db.store, "dana", &[Role::Developer]).await;
    let (_, alex) = crate::harness::person(&db.store, "alex", &[Role::PlatformAdmin]).await;
    let form = OnboardingRequest { service: "orphan".into(), ..cart().0 };
    let artifacts = platform.artifacts(form.clone());
    let policy = artifacts.policy.as_ref().unwrap();
    let policy_path = format!("sys/policies/acl/{}", policy.name);
    assert_eq!(policy.name, format!("{}prod-app-orphan", platform.settings.name_prefix));
    let by_hand = "path \"secret/data/shared/*\" {\n  capabilities = [\"read\"]\n}\n";
    let (status, _) = call(
        &platform.addr,
        &platform.root,
        "POST",
        &policy_path,
        Some(json!({ "policy": by_hand })),
    )
    .await;
    assert_eq!(status, 204);
    let read_policy = || async {
        let (_, body) = call(&platform.addr, &platform.root, "GET", &policy_path, None).await;
        body["data"]["policy"].as_str().unwrap_or_default().to_owned()
    };

    let id = requests.submit(&dana, form).await.unwrap();
    requests.decide(&alex, &id, Decision::Approve, "ok").await.unwrap();
    engine.run_next().await.unwrap();
    let request_id: Uuid = id.parse().unwrap();
    let job = db.store.jobs_of_request(request_id).await.unwrap().pop().unwrap();
    assert_eq!(job.state, JobState::Failed, "a permanent failure");
    let error = job.last_error.unwrap();
    assert!(error.starts_with("vault_policy:"), "{error}");
    assert!(
        error.contains(&format!("`{policy_path}` exists and meshport did not create it for prod-app/orphan; a platform admin can adopt it")),
        "{error}"
    );
    assert_eq!(read_policy().await, by_hand, "not overwritten");
    assert_eq!(db.store.request(request_id).await.unwrap().unwrap().status.as_str(), "failed");

    let adoption = Adoption {
        vault: &platform.meshport,
        store: &db.store,
        rules: &requests.rules,
        settings: &platform.settings,
    };
    let refused = adoption.adopt_as(&dana, "prod-app", "orphan").await.unwrap_err();
    assert_eq!(AppError::from(refused).status(), 403);
    assert!(db.store.vault_object(&policy_path).await.unwrap().is_none());
    let adopted = adoption.adopt_as(&alex, "prod-app", "orphan").await.unwrap();
    assert_eq!(adopted, std::slice::from_ref(&policy_path));
    let record = db.store.vault_object(&policy_path).await.unwrap().unwrap();
    assert_eq!(
        (record.owner.as_str(), record.adopted_by),
        ("prod-app/orphan", Some(alex.user_id.clone()))
    );
    let adopted: Vec<serde_json::Value> = audit_actions(&db.store)
        .await
        .into_iter()
        .filter(|e| e["action"] == "vault_object_adopted")
        .collect();
    assert_eq!(adopted.len(), 1);
    assert_eq!(details(&adopted[0])["paths"], json!([policy_path]));
    assert_eq!(adopted[0]["actor_subject"], "alex", "{}", adopted[0]);
    assert!(
        adoption.adopt_as(&alex, "prod-app", "orphan").await.unwrap().is_empty(),
        "nothing left"
    );

    requests.act(&alex, &id, AdminAction::Retry).await.unwrap();
    engine.run_next().await.unwrap();
    let job = db.store.jobs_of_request(request_id).await.unwrap().pop().unwrap();
    assert_eq!(job.state, JobState::Done, "{:?}", job.last_error);
    assert_eq!(read_policy().await.trim(), policy.to_hcl().trim(), "now meshport's");
    assert_eq!(db.store.request(request_id).await.unwrap().unwrap().status.as_str(), "pr_open");

    // Offboarding (once the onboarding is merged, by a change set another admin approves)
    // deletes it, and forgets it.
    for (from, to) in
        [(app::onboarding::RequestStatus::PrOpen, app::onboarding::RequestStatus::Merged)]
    {
        assert!(db.store.transition_request(request_id, from, to).await.unwrap());
    }
    let offboarding = requests
        .propose_offboarding(&alex, "prod-app", "orphan", "orphan is retired")
        .await
        .unwrap();
    let (_, blake) = crate::harness::person(&db.store, "blake", &[Role::PlatformAdmin]).await;
    requests.decide(&blake, &offboarding, app::request_api::Decision::Approve, "").await.unwrap();
    engine.run_next().await.unwrap();
    let job = db.store.jobs_of_request(offboarding.parse().unwrap()).await.unwrap().pop().unwrap();
    assert_eq!(job.state, JobState::Done, "{:?}", job.last_error);
    assert_eq!(call(&platform.addr, &platform.root, "GET", &policy_path, None).await.0, 404);
    assert!(db.store.vault_object(&policy_path).await.unwrap().is_none());
}
