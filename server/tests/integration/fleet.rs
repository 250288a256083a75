//! The fleet against real OpenBao, git bare repositories, SQLite and PostgreSQL: a changed
//! rendering rule flags every onboarded service as a generator upgrade and a hand edit in the
//! bare repository flags only its service; a batch of upgrade change sets opens one pull
//! request per service holding exactly the upgrade's diff, under the limit of open pull
//! requests, approved by a second admin (never the batch's requester).

use std::collections::BTreeMap;
use std::sync::Arc;

use app::access::AppError;
use app::fleet::DriftClass;
use app::onboarding::{
    HandEditDecision, OnboardingRequest, OnboardingRules, RequestStatus, UpgradeScope,
    UpgradeSelection,
};
use app::request_api::Decision;
use app::request_api::ssr::RequestService;
use meshport_server::artifacts::ArtifactSettings;
use meshport_server::fleet::Fleet;
use meshport_server::jobs::{Engine, GitopsProposals};
use meshport_server::request_service::Requests;

use crate::artifacts::cart;
use crate::changes::Portal;
use crate::gitops::git;
use crate::harness::Backend;
use crate::provisioning::Platform;

/// The annotation the test build of the generator adds to every manifest.
const TEST_RULE: (&str, &str) = ("meshport.io/test-rule", "upgraded");

const SERVICES: [&str; 3] = ["cart", "checkout", "payment"];

fn rules() -> OnboardingRules {
    OnboardingRules {
        namespaces: vec!["prod-app".into(), "prod".into()],
        ..OnboardingRules::default()
    }
}

/// The generator of a newer meshport: today's settings plus one rendering rule.
fn upgraded(platform: &Platform) -> ArtifactSettings {
    let mut settings = platform.settings.clone();
    settings.extra_annotation = Some((TEST_RULE.0.into(), TEST_RULE.1.into()));
    settings
}

/// The fleet of `portal` as a meshport rendering with `settings` sees it.
fn fleet(portal: &Portal, platform: &Platform, settings: &ArtifactSettings) -> Fleet {
    let requests = Arc::new(Requests {
        store: portal.db.store.clone(),
        rules: rules(),
        vault: platform.meshport.clone(),
        settings: settings.clone(),
        gitops: Some(portal.gitops.clone()),
        notifications: Default::default(),
    });
    Fleet {
        store: portal.db.store.clone(),
        gitops: portal.gitops.clone(),
        requests,
        settings: settings.clone(),
        rules: rules(),
        max_open: 2,
    }
}

/// Three live services of team cart, onboarded by today's generator.
async fn three_live_services(portal: &Portal) {
    for name in SERVICES {
        let (form, _) = cart();
        portal.live(OnboardingRequest { service: name.into(), ..form }).await;
    }
}

fn classes(fleet_report: &app::fleet::FleetReport, service: &str) -> Vec<DriftClass> {
    let found = fleet_report.services.iter().find(|s| s.service == service).expect("listed");
    found.files.iter().map(|f| f.class).collect()
}

async fn generator_upgrades_and_hand_edits_are_told_apart(backend: Backend) {
    let platform = Platform::new().await;
    let portal = Portal::new(backend, platform.meshport.clone(), &platform).await;
    three_live_services(&portal).await;

    let today = fleet(&portal, &platform, &platform.settings);
    let report = today.check().await.unwrap();
    assert_eq!(report.services.len(), 3, "{report:#?}");
    for service in SERVICES {
        let classes = classes(&report, service);
        assert!(!classes.is_empty() && classes.iter().all(|c| *c == DriftClass::Current));
    }

    // A newer generator adds an annotation: every file of every service is an older rendering.
    let newer = fleet(&portal, &platform, &upgraded(&platform));
    let report = newer.check().await.unwrap();
    assert_ne!(report.generator_version, platform.settings.generator_version());
    for service in &report.services {
        assert!(service.needs_upgrade() && !service.has_hand_change(), "{service:#?}");
        for file in &service.files {
            assert_eq!(file.class, DriftClass::GeneratorUpgrade, "{file:?}");
            assert_eq!(file.rendered_by, Some(platform.settings.generator_version()));
        }
    }

    // Someone edits one file of checkout in the repository by hand.
    let edited = "manifests/prod-app/checkout/service.yaml";
    portal.remote.push_as_someone_else("main", edited, "apiVersion: v1\nkind: Service\n");
    let report = newer.check().await.unwrap();
    let checkout = report.services.iter().find(|s| s.service == "checkout").unwrap();
    for file in &checkout.files {
        let expected =
            if file.path == edited { DriftClass::HandEdit } else { DriftClass::GeneratorUpgrade };
        assert_eq!(file.class, expected, "{file:?}");
    }
    for service in ["cart", "payment"] {
        assert!(classes(&report, service).iter().all(|c| *c == DriftClass::GeneratorUpgrade));
    }
    let totals = report.totals();
    assert_eq!(totals.of(DriftClass::HandEdit), 1);

    // The hand edit is never overwritten silently: without a decision checkout is left out.
    let team =
        UpgradeSelection { scope: UpgradeScope::Team("cart".into()), decisions: BTreeMap::new() };
    let batch = newer.propose_upgrades(&portal.alex, &team).await.unwrap();
    let services: Vec<&str> = batch.changes.iter().map(|c| c.service.as_str()).collect();
    assert_eq!(services, ["cart", "payment"]);
    assert!(
        batch.skipped.iter().any(|s| s.starts_with("prod-app/checkout: hand edits")),
        "{batch:?}"
    );
    // Adopted, the upgrade keeps the repository's file.
    let adopt = UpgradeSelection {
        scope: UpgradeScope::Namespace("prod-app".into()),
        decisions: BTreeMap::from([("prod-app/checkout".into(), HandEditDecision::Adopt)]),
    };
    let batch = newer.propose_upgrades(&portal.alex, &adopt).await.unwrap();
    assert_eq!(batch.changes.len(), 1);
    assert_eq!(batch.changes[0].kept, [edited]);
    // A developer opens no batch.
    let refused = newer.propose_upgrades(&portal.dana, &team).await;
    assert!(matches!(refused, Err(AppError::Forbidden(_))), "{refused:?}");
}

#[tokio::test]
async fn generator_upgrades_and_hand_edits_are_told_apart_on_sqlite() {
    generator_upgrades_and_hand_edits_are_told_apart(Backend::Sqlite).await;
}

#[tokio::test]
async fn generator_upgrades_and_hand_edits_are_told_apart_on_postgres() {
    generator_upgrades_and_hand_edits_are_told_apart(Backend::Postgres).await;
}

async fn a_batch_upgrade_opens_one_pull_request_per_service_under_the_limit(backend: Backend) {
    let platform = Platform::new().await;
    let portal = Portal::new(backend, platform.meshport.clone(), &platform).await;
    three_live_services(&portal).await;
    let settings = upgraded(&platform);
    let newer = fleet(&portal, &platform, &settings);
    let engine = Engine::new(
        portal.db.store.clone(),
        platform.meshport.clone(),
        Arc::new(GitopsProposals { gitops: portal.gitops.clone(), store: portal.db.store.clone() }),
        settings.clone(),
        rules(),
    )
    .with_max_open_upgrades(2);
    let run = || async { while engine.run_next().await.unwrap().is_some() {} };

    let all = UpgradeSelection { scope: UpgradeScope::All, decisions: BTreeMap::new() };
    let batch = newer.propose_upgrades(&portal.alex, &all).await.unwrap();
    assert_eq!(batch.changes.len(), 3);
    let id: uuid::Uuid = batch.id.parse().unwrap();
    let digests: BTreeMap<String, String> = batch
        .changes
        .iter()
        .map(|c| (c.request_id.clone(), c.digest.clone().expect("a digest")))
        .collect();

    // The batch's requester approves none of it, neither as a batch nor one by one.
    let own = newer.approve_batch(&portal.alex, id, &digests).await;
    assert!(matches!(own, Err(AppError::Forbidden(_))), "{own:?}");
    let one = portal
        .requests
        .decide(&portal.alex, &batch.changes[0].request_id, Decision::Approve, "")
        .await;
    assert!(matches!(one, Err(AppError::Forbidden(_))), "{one:?}");
    // A digest other than the stored one refuses the whole approval.
    let mut wrong = digests.clone();
    wrong.values_mut().next().unwrap().replace_range(..4, "0000");
    let refused = newer.approve_batch(&portal.blake, id, &wrong).await;
    assert!(matches!(refused, Err(AppError::Conflict(_))), "{refused:?}");
    let waiting = newer.batch(id).await.unwrap();
    assert!(waiting.changes.iter().all(|c| c.status == RequestStatus::Submitted));
    assert_eq!(newer.approve_batch(&portal.blake, id, &digests).await.unwrap(), 3);

    // Two pull requests open (the limit); the third waits queued.
    run().await;
    let batch = newer.batch(id).await.unwrap();
    let open: Vec<_> = batch.changes.iter().filter(|c| c.status == RequestStatus::PrOpen).collect();
    assert_eq!(open.len(), 2, "{batch:#?}");
    let queued: Vec<_> = batch.changes.iter().filter(|c| c.pull_request.is_none()).collect();
    assert_eq!(queued.len(), 1, "{batch:#?}");
    assert_eq!(queued[0].status, RequestStatus::Provisioning);
    assert_eq!(portal.db.store.open_upgrade_pull_requests().await.unwrap(), 2);
    let progress = newer.progress().await.unwrap();
    assert_eq!((progress.open, progress.queued), (2, 1));

    // Each pull request holds exactly the upgrade's diff: the annotation, nothing else.
    for change in &open {
        let pulls = portal.db.store.pull_requests_of(change.request_id.parse().unwrap()).await;
        let branch = pulls.unwrap().pop().unwrap().branch;
        let diff = git(&["diff", "main", &branch], &portal.remote.bare);
        let folder = format!("manifests/prod-app/{}/", change.service);
        for line in diff.lines() {
            if let Some(path) = line.strip_prefix("+++ b/") {
                assert!(path.starts_with(&folder), "{path} is outside {folder}");
            } else if line.starts_with('-') && !line.starts_with("---") {
                panic!("the upgrade removes a line: {line}\n{diff}");
            } else if let Some(added) = line.strip_prefix('+') {
                let expected = added.trim() == "annotations:" || added.contains(TEST_RULE.0);
                assert!(expected, "unexpected added line `{added}` in\n{diff}");
            }
        }
        assert!(diff.contains(TEST_RULE.0), "{diff}");
    }

    // A merge frees a slot: the queued upgrade opens its pull request.
    portal.merge(&open[0].request_id).await;
    run().await;
    let batch = newer.batch(id).await.unwrap();
    let statuses: Vec<RequestStatus> = batch.changes.iter().map(|c| c.status).collect();
    assert_eq!(statuses.iter().filter(|s| **s == RequestStatus::PrOpen).count(), 2, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == RequestStatus::Merged).count(), 1);
    // The merged service is current for the newer generator; its version went up.
    let report = newer.check().await.unwrap();
    let merged = report.services.iter().find(|s| s.service == open[0].service).unwrap();
    assert!(merged.files.iter().all(|f| f.class == DriftClass::Current), "{merged:#?}");
    let service = portal.requests.service(&portal.dana, "prod-app", &open[0].service).await;
    assert_eq!(service.unwrap().version, 2);
}

#[tokio::test]
async fn a_batch_upgrade_opens_one_pull_request_per_service_under_the_limit_on_sqlite() {
    a_batch_upgrade_opens_one_pull_request_per_service_under_the_limit(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_batch_upgrade_opens_one_pull_request_per_service_under_the_limit_on_postgres() {
    a_batch_upgrade_opens_one_pull_request_per_service_under_the_limit(Backend::Postgres).await;
}
