//! Acting on rotation status (#23) against real OpenBao (with meshport's own policy), git,
//! SQLite and PostgreSQL: rotate now by the owning team (others refused), a provided secret's
//! typed value kept nowhere but Vault, restart delivery gathering rotations into one pull
//! request (reload delivery needing none), and scheduled rotation done once by two engines.

use app::access::{AppError, Role};
use app::onboarding::{
    CertificateSpec, Delivery, OnboardingRequest, RotationPlan, RotationPolicy, SecretSource, SecretSpec,
    SecretValue,
};
use app::secret_rotation::PodsVersion;
use app::secret_rotation::ssr::RotationService;
use std::sync::Arc;

use chrono::{TimeDelta, Utc};
use k8s_openapi::api::apps::v1::Deployment;
use kube_fake_client::ClientBuilder;
use meshport_server::cluster::{Cluster, ClusterConfig};
use meshport_server::rotation::Rotations;
use meshport_server::rotation::settings::RotationConfig;

use crate::artifacts::cart;
use crate::changes::{Portal, metadata};
use crate::gitops::git;
use crate::harness::{Backend, person};
use crate::provisioning::{Platform, call};

/// The rotation service over the portal's database, OpenBao and repository.
fn service(portal: &Portal, platform: &Platform) -> Rotations {
    Rotations {
        store: portal.db.store.clone(),
        vault: platform.meshport.clone(),
        gitops: portal.gitops.clone(),
        config: RotationConfig::default(),
        artifacts: platform.settings.clone(),
        rules: portal.requests.rules.clone(),
        clusters: Vec::new(),
    }
}

/// cart with the given rotation plan.
fn cart_with(plan: RotationPlan) -> OnboardingRequest {
    OnboardingRequest { rotation: plan, ..cart().0 }
}

/// The `secret_rotated` events, oldest first.
async fn rotation_events(portal: &Portal) -> Vec<serde_json::Value> {
    let events = portal.db.store.recent_audit_events(1000).await.unwrap();
    let mut events: Vec<_> = events
        .into_iter()
        .filter(|e| e.action == "secret_rotated")
        .map(|e| {
            let mut details: serde_json::Value = serde_json::from_str(&e.details).unwrap();
            details["outcome"] = e.outcome.clone().into();
            details["actor"] = e.actor_subject.clone().into();
            (e.seq, details)
        })
        .collect();
    events.sort_by_key(|(seq, _)| *seq);
    events.into_iter().map(|(_, d)| d).collect()
}

#[tokio::test]
async fn the_owning_team_rotates_a_secret_now_and_others_are_refused() {
    let platform = Platform::new().await;
    let portal = Portal::new(Backend::Sqlite, platform.meshport.clone(), &platform).await;
    portal.live(cart().0).await;
    let rotations = service(&portal, &platform);
    let path = "prod-app/cart/valkey_password";
    assert_eq!(metadata(&platform, path).await["current_version"], 1);

    // Another team's developer, and an auditor, are refused; nothing is written.
    let (_, mut sam) = person(&portal.db.store, "sam", &[Role::Developer]).await;
    sam.teams = ["payments".to_owned()].into();
    let refused = rotations.rotate(&sam, "prod-app", "cart", "valkey_password", "mine", None).await;
    assert!(matches!(refused, Err(AppError::NotFound(_))), "not even visible: {refused:?}");
    let (_, auditor) = person(&portal.db.store, "ava", &[Role::Auditor]).await;
    let refused =
        rotations.rotate(&auditor, "prod-app", "cart", "valkey_password", "audit", None).await;
    assert!(matches!(refused, Err(AppError::Forbidden(_))), "{refused:?}");
    let unreasoned =
        rotations.rotate(&portal.dana, "prod-app", "cart", "valkey_password", " ", None).await;
    let Err(AppError::InvalidRequest(errors)) = unreasoned else { panic!("{unreasoned:?}") };
    assert_eq!(errors.0[0].field, "reason");
    let typed = Some(SecretValue::new("not-for-a-generated-one"));
    let wrong = rotations.rotate(&portal.dana, "prod-app", "cart", "valkey_password", "x", typed);
    assert!(matches!(wrong.await, Err(AppError::InvalidRequest(_))));
    let unknown = rotations.rotate(&portal.dana, "prod-app", "cart", "nope", "x", None).await;
    assert!(matches!(unknown, Err(AppError::NotFound(_))), "{unknown:?}");
    assert_eq!(metadata(&platform, path).await["current_version"], 1, "nothing written");
    assert!(rotation_events(&portal).await.is_empty());

    // dana (developer of cart) rotates: version 2, shown, audited with the reason.
    let before = secret_value(&platform, path).await;
    let rotated = rotations
        .rotate(&portal.dana, "prod-app", "cart", "valkey_password", "leaked in a log", None)
        .await
        .unwrap();
    assert_eq!(rotated.version, 2);
    assert_eq!(metadata(&platform, path).await["current_version"], 2);
    assert_ne!(secret_value(&platform, path).await, before, "a new random value");
    let shown = rotations.secrets(&portal.dana, "prod-app", "cart").await.unwrap();
    assert!(shown.may_rotate);
    assert_eq!((shown.secrets[0].name.as_str(), shown.secrets[0].version), ("valkey_password", 2));
    assert_eq!(shown.secrets[0].age_days, Some(0));
    assert!(matches!(shown.secrets[0].pods, PodsVersion::Unknown(_)));
    assert_eq!(shown.secrets[0].next_rotation, None, "manual policy");
    let events = rotation_events(&portal).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        (&events[0]["version"], &events[0]["previous_version"], &events[0]["reason"]),
        (&2.into(), &1.into(), &"leaked in a log".into())
    );
    assert_eq!((&events[0]["actor"], &events[0]["trigger"]), (&"dana".into(), &"manual".into()));
    // A platform admin of no team rotates too; others see the status but no button.
    let again =
        rotations.rotate(&portal.alex, "prod-app", "cart", "valkey_password", "drill", None);
    assert_eq!(again.await.unwrap().version, 3);
    let (_, viewer) = person(&portal.db.store, "vic", &[Role::Auditor]).await;
    assert!(!rotations.secrets(&viewer, "prod-app", "cart").await.unwrap().may_rotate);
}

/// The secret's value, read with the root token.
async fn secret_value(platform: &Platform, path: &str) -> String {
    let url = format!("{}/data/{path}", platform.config.kv_mount);
    let key = path.rsplit('/').next().unwrap();
    let answer = call(&platform.addr, &platform.root, "GET", url, None).await.1;
    answer["data"]["data"][key].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_provided_secret_is_rotated_with_a_typed_value_kept_nowhere_but_vault() {
    let platform = Platform::new().await;
    let portal = Portal::new(Backend::Sqlite, platform.meshport.clone(), &platform).await;
    let mut form = cart().0;
    form.secrets.push(SecretSpec {
        name: "api_token".into(),
        source: SecretSource::Provided { value: SecretValue::new("first-typed-value-41c") },
    });
    // A PKI certificate living 40 days, longer than the 30-day rotation period: flagged.
    form.certificate = Some(CertificateSpec { ttl_hours: 24 * 40 });
    portal.live(form).await;
    let rotations = service(&portal, &platform);
    let path = "prod-app/cart/api_token";
    let missing = rotations.rotate(&portal.dana, "prod-app", "cart", "api_token", "x", None).await;
    let Err(AppError::InvalidRequest(errors)) = missing else { panic!("{missing:?}") };
    assert_eq!(errors.0[0].field, "value");

    const TYPED: &str = "rotated-typed-value-9f3e77";
    let rotated = rotations
        .rotate(
            &portal.dana,
            "prod-app",
            "cart",
            "api_token",
            "vendor rotated it",
            Some(SecretValue::new(TYPED)),
        )
        .await
        .unwrap();
    assert_eq!(rotated.version, 2);
    assert_eq!(secret_value(&platform, path).await, TYPED);
    // Nothing is left in the staging folder.
    let staging = format!("{}/metadata/meshport-staging", platform.config.kv_mount);
    let listed = call(&platform.addr, &platform.root, "LIST", staging, None).await.1;
    assert!(listed["data"]["keys"].as_array().is_none_or(|k| k.is_empty()), "{listed}");
    // The value is in no database row (every table, as text) and no audit event.
    let dump = portal.db.dump_text().await;
    assert!(!dump.contains(TYPED), "the typed value reached the database");
    assert!(!serde_json::to_string(&rotation_events(&portal).await).unwrap().contains(TYPED));
    // Nor in what the page shows.
    let shown = rotations.secrets(&portal.dana, "prod-app", "cart").await.unwrap();
    assert!(!serde_json::to_string(&shown).unwrap().contains(TYPED));
    let certificate = shown.certificate.expect("the PKI certificate's plan");
    assert!(certificate.warning.is_some_and(|w| w.contains("960 hours")), "flagged");
    assert!(certificate.renewal.contains("before the current one expires"));
    assert!(!serde_json::to_string(&rotated).unwrap().contains(TYPED));
}

#[tokio::test]
async fn restart_delivery_makes_one_pull_request_of_a_window_and_reload_makes_none() {
    let platform = Platform::new().await;
    let portal = Portal::new(Backend::Sqlite, platform.meshport.clone(), &platform).await;
    let restart = RotationPlan { delivery: Delivery::Restart, ..RotationPlan::default() };
    portal.live(cart_with(restart)).await;
    let rotations = service(&portal, &platform);
    for reason in ["one", "two", "three"] {
        rotations
            .rotate(&portal.dana, "prod-app", "cart", "valkey_password", reason, None)
            .await
            .unwrap();
    }
    // Inside the window nothing opens; after it, one pull request for the three.
    assert_eq!(rotations.open_due_rollouts(Utc::now()).await.unwrap(), 0);
    let later = Utc::now() + TimeDelta::minutes(11);
    assert_eq!(rotations.open_due_rollouts(later).await.unwrap(), 1);
    assert_eq!(rotations.open_due_rollouts(later).await.unwrap(), 0, "never a second");
    let shown = rotations.secrets(&portal.dana, "prod-app", "cart").await.unwrap();
    let rollout = shown.rollout.expect("a rollout");
    assert_eq!((rollout.state.as_str(), rollout.rotations), ("opened", 3));
    let branches = git(&["branch", "--list", "meshport/rollout-*"], &portal.remote.bare);
    let branches: Vec<&str> = branches.lines().map(|b| b.trim_start_matches(['*', ' '])).collect();
    assert_eq!(branches.len(), 1, "{branches:?}");
    // Its diff is one annotation of the pod template.
    let files = git(&["diff", "--name-only", "main", branches[0]], &portal.remote.bare);
    assert_eq!(files.trim(), "manifests/prod-app/cart/deployment.yaml");
    let diff = git(&["diff", "-U0", "main", branches[0]], &portal.remote.bare);
    let changed: Vec<&str> = diff
        .lines()
        .filter(|l| {
            (l.starts_with('+') || l.starts_with('-'))
                && !l.starts_with("+++")
                && !l.starts_with("---")
        })
        .collect();
    assert_eq!(changed, ["+        meshport.io/secret-versions: valkey_password=4"], "{diff}");

    // Contract test (kube-fake-client for the API server): the status page reads the running
    // Deployment's annotation. Before the rollout is applied the pods run no recorded version;
    // with the rollout's Deployment applied they have version 4.
    for (tree, expected) in [("main", PodsVersion::Behind(0)), (branches[0], PodsVersion::Current)]
    {
        let yaml = git(
            &["show", &format!("{tree}:manifests/prod-app/cart/deployment.yaml")],
            &portal.remote.bare,
        );
        let deployment: Deployment = serde_saphyr::from_str(&yaml).unwrap();
        let client = ClientBuilder::new().with_object(deployment).build().await.unwrap();
        let config = ClusterConfig { name: "eks-prod".into(), ..ClusterConfig::default() };
        let reader = Rotations {
            clusters: vec![Arc::new(Cluster::with_client(config, client))],
            ..service(&portal, &platform)
        };
        let shown = reader.secrets(&portal.dana, "prod-app", "cart").await.unwrap();
        assert_eq!(shown.secrets[0].pods, expected, "{tree}");
    }

    // Reload delivery: the Deployment carries the agent's command and interval; no rollout.
    let platform = Platform::new().await;
    let portal = Portal::new(Backend::Sqlite, platform.meshport.clone(), &platform).await;
    let reload = RotationPlan {
        delivery: Delivery::Reload,
        reload_command: Some("wget -qO- http://127.0.0.1:7070/-/reload".into()),
        ..RotationPlan::default()
    };
    portal.live(cart_with(reload)).await;
    let rotations = service(&portal, &platform);
    rotations
        .rotate(&portal.dana, "prod-app", "cart", "valkey_password", "drill", None)
        .await
        .unwrap();
    let later = Utc::now() + TimeDelta::minutes(11);
    assert_eq!(rotations.open_due_rollouts(later).await.unwrap(), 0);
    assert!(rotations.secrets(&portal.dana, "prod-app", "cart").await.unwrap().rollout.is_none());
    let deployment =
        git(&["show", "main:manifests/prod-app/cart/deployment.yaml"], &portal.remote.bare);
    assert!(
        deployment.contains("vault.hashicorp.com/agent-inject-command-valkey_password: wget -qO- http://127.0.0.1:7070/-/reload"),
        "{deployment}"
    );
    assert!(deployment.contains("vault.hashicorp.com/template-static-secret-render-interval: 60s"));
    assert!(!deployment.contains("meshport.io/secret-versions"));
}

#[tokio::test]
async fn two_engines_on_postgres_rotate_each_due_secret_exactly_once() {
    let platform = Platform::new().await;
    let portal = Portal::new(Backend::Postgres, platform.meshport.clone(), &platform).await;
    let automatic = RotationPlan { policy: RotationPolicy::Automatic, ..RotationPlan::default() };
    portal.live(cart_with(automatic)).await;
    let (a, b) = (service(&portal, &platform), service(&portal, &platform));
    // Not due yet: nothing happens.
    assert_eq!(a.rotate_due(Utc::now()).await.unwrap(), 0);
    let shown = a.secrets(&portal.dana, "prod-app", "cart").await.unwrap();
    assert!(shown.secrets[0].next_rotation.is_some(), "automatic: the next rotation is shown");
    // The clock moved just past version 1's due date (30 days after it was written); a second
    // later, so a version written now is not due at that clock: two engines at once rotate
    // version 1 once.
    let path = "prod-app/cart/valkey_password".to_owned();
    let status = platform.meshport.secrets_at(&[path], Utc::now()).await.unwrap();
    let later = status[0].due_at.unwrap() + TimeDelta::milliseconds(1);
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let (x, y) = tokio::join!(a.rotate_due(later), b.rotate_due(later));
    assert_eq!(x.unwrap() + y.unwrap(), 1);
    assert_eq!(metadata(&platform, "prod-app/cart/valkey_password").await["current_version"], 2);
    let events = rotation_events(&portal).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        (&events[0]["trigger"], &events[0]["actor"]),
        (&"schedule".into(), &"meshport".into())
    );
    // Outside the maintenance window nothing runs.
    let closed = Rotations {
        config: RotationConfig {
            maintenance_window: "00:00-00:00".into(),
            ..RotationConfig::default()
        },
        ..service(&portal, &platform)
    };
    assert_eq!(closed.rotate_due(later + TimeDelta::days(31)).await.unwrap(), 0);
    assert_eq!(metadata(&platform, "prod-app/cart/valkey_password").await["current_version"], 2);
}
