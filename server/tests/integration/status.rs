//! Certificate and rotation status. The cluster side runs against kube-fake-client (an
//! in-memory `kube::Api` backend) loaded with cert-manager and Linkerd objects that validate
//! against the upstream CRDs: these are contract tests, since no Kubernetes API server runs
//! here. Vault's side, the store and the alert webhook are real.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use app::onboarding::{CertificateSpec, OnboardingRequest, OnboardingRules, RequestStatus};
use app::rotation::RotationState;
use app::status_report::{ItemKind, StatusItem, StatusReport};
use chrono::{DateTime, TimeDelta, Utc};
use kube_fake_client::ClientBuilder;
use meshport_server::artifacts::ArtifactSettings;
use meshport_server::cluster::cert_manager::{Certificate, CertificateRequest};
use meshport_server::cluster::{Cluster, ClusterConfig};
use meshport_server::status::alerts::Alerts;
use meshport_server::status::{Refresh, StatusBoard};
use meshport_server::store::{NewOnboardingRequest, Store};
use meshport_server::vault::Vault;
use serde_json::json;

use crate::artifacts::{cart, checkout};
use crate::harness::{Backend, TestDatabase, openbao};
use crate::provisioning::{Platform, call};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/cluster");

/// The fixtures' clock: ten hours after the Linkerd issuer was issued.
fn fixture_now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-29T18:51:21Z").unwrap().to_utc()
}

fn rules() -> OnboardingRules {
    OnboardingRules { namespaces: vec!["prod-app".into()], ..OnboardingRules::default() }
}

/// A kube client over the fixture files.
async fn fake_cluster(files: &[&str]) -> kube::Client {
    let mut builder = ClientBuilder::new()
        .with_resource::<Certificate>()
        .with_resource::<CertificateRequest>()
        .with_fixture_dir(FIXTURES);
    for file in files {
        builder = builder.load_fixture(file).unwrap();
    }
    builder.build().await.unwrap()
}

fn cluster(name: &str, client: kube::Client) -> Arc<Cluster> {
    let config = ClusterConfig { name: name.into(), ..ClusterConfig::default() };
    Arc::new(Cluster::with_client(config, client))
}

/// A board over `store` with `clusters`, refreshing every minute.
fn board(
    store: &Store,
    vault: Arc<Vault>,
    settings: ArtifactSettings,
    clusters: Vec<Arc<Cluster>>,
    alerts: Option<Alerts>,
) -> StatusBoard {
    let refresh = Refresh { every: Duration::from_secs(60), max_backoff: Duration::from_secs(900) };
    StatusBoard::new(store.clone(), vault, rules(), settings, clusters, refresh, alerts)
}

/// Stores `request` as an onboarded service (its pull request merged).
async fn onboarded(store: &Store, request: &OnboardingRequest) {
    let (dana, _) = crate::harness::person(store, "dana", &[]).await;
    let (alex, _) = crate::harness::person(store, "alex", &[]).await;
    let spec = serde_json::to_value(request.without_secret_values()).unwrap();
    let mut tx = store.begin().await.unwrap();
    let stored = tx
        .create_request(&NewOnboardingRequest {
            id: uuid::Uuid::new_v4(),
            kind: app::onboarding::ChangeKind::Onboard,
            base_change: None,
            digest: None,
            service_name: &request.service,
            namespace: &request.namespace,
            team: &request.team,
            requested_by: dana.id,
            justification: &request.justification,
            spec: &spec,
        })
        .await
        .unwrap();
    assert!(tx.decide_request(stored.id, alex.id, RequestStatus::Approved, None).await.unwrap());
    for (from, to) in [
        (RequestStatus::Approved, RequestStatus::Provisioning),
        (RequestStatus::Provisioning, RequestStatus::PrOpen),
        (RequestStatus::PrOpen, RequestStatus::Merged),
    ] {
        assert!(tx.transition_request(stored.id, from, to).await.unwrap());
    }
    tx.commit().await.unwrap();
}

fn find<'a>(report: &'a StatusReport, kind: ItemKind, name: &str) -> &'a StatusItem {
    report
        .items
        .iter()
        .find(|i| i.kind == kind && i.name == name)
        .unwrap_or_else(|| panic!("no {kind:?} {name} in {:#?}", report.items))
}

/// Vault unreachable: these tests look at the clusters only.
fn no_vault() -> Arc<Vault> {
    let port = meshport_server::dev::free_loopback_port().unwrap();
    let config = meshport_server::vault::VaultConfig {
        addr: format!("http://127.0.0.1:{port}"),
        ..openbao()
    };
    Arc::new(Vault::new(&config).unwrap())
}

#[tokio::test]
async fn contract_fixtures_validate_against_the_upstream_crds_and_kubernetes_schemas() {
    let (valid, report) = crate::artifacts::validate_manifests(&[std::path::Path::new(FIXTURES)]);
    assert!(valid, "{report}");
    assert!(report.contains("CertificateRequest") && report.contains("ConfigMap"), "{report}");
}

#[tokio::test]
async fn contract_cert_manager_certificates_are_judged_by_renewal_time_and_not_after() {
    let db = TestDatabase::new(Backend::Sqlite).await;
    // cart and checkout are onboarded; their certificates are attributed to them.
    onboarded(&db.store, &cart().0).await;
    onboarded(&db.store, &checkout().0).await;
    let client = fake_cluster(&["prod-app-certificates.yaml", "linkerd-identity.yaml"]).await;
    let board = board(&db.store, no_vault(), cart().1, vec![cluster("prod", client)], None);
    let report = board.refresh(fixture_now()).await;

    let state = |name: &str| find(&report, ItemKind::Certificate, name).judgement.clone();
    let cart_tls = find(&report, ItemKind::Certificate, "cart-tls");
    assert_eq!(cart_tls.judgement.state, RotationState::Ok);
    assert_eq!(cart_tls.judgement.reason, "renews in 31 days; expires in 61 days");
    assert_eq!(cart_tls.service.as_deref(), Some("prod-app/cart"), "by name");
    assert_eq!(cart_tls.renews_at, Some(1_798_675_200), "2026-12-31T00:00:00Z");
    assert_eq!(
        find(&report, ItemKind::Certificate, "checkout-tls").service.as_deref(),
        Some("prod-app/checkout"),
        "by its app.kubernetes.io/name label"
    );
    assert_eq!(find(&report, ItemKind::Certificate, "payment-tls").service, None, "not onboarded");

    let checkout_tls = state("checkout-tls");
    assert_eq!(checkout_tls.state, RotationState::DueSoon, "{}", checkout_tls.reason);
    assert!(
        checkout_tls.reason.starts_with("renewal in progress (due 6 hours ago)"),
        "{}",
        checkout_tls.reason
    );

    let payment = state("payment-tls");
    assert_eq!(payment.state, RotationState::Failing);
    assert!(
        payment.reason.starts_with(
            "issuance failed 3 times: Failed to sign certificate: issuer vault-issuer is not ready"
        ),
        "the failed request of revision 4 is named: {}",
        payment.reason
    );
    assert!(
        payment.reason.contains("next attempt about 2026-11-29T20:00:00+00:00"),
        "{}",
        payment.reason
    );

    let frontend = state("frontend-tls");
    assert_eq!(frontend.state, RotationState::Expired);
    assert!(
        frontend.reason.starts_with("expired at 2026-11-28T00:00:00+00:00 (42 hours ago)"),
        "{}",
        frontend.reason
    );

    let email = state("email-tls");
    assert_eq!(
        email.state,
        RotationState::DueSoon,
        "no renewalTime: by lifetime ({})",
        email.reason
    );
    assert!(email.reason.starts_with("no renewal scheduled"), "{}", email.reason);

    let quote = state("quote-tls");
    assert_eq!(quote.state, RotationState::Overdue);
    assert!(
        quote.reason.starts_with("renewal was due 8 hours ago and has not started"),
        "{}",
        quote.reason
    );

    assert_eq!(state("ad-tls").state, RotationState::DueSoon, "first issuance in progress");

    // Worst first.
    let states: Vec<RotationState> = report.items.iter().map(|i| i.judgement.state).collect();
    assert!(states.windows(2).all(|w| w[0] >= w[1]), "{states:?}");
    assert_eq!(report.sources.iter().find(|s| s.name == "prod").unwrap().error, None);
}

#[tokio::test]
async fn contract_a_48h_linkerd_issuer_is_ok_where_linkerd_check_would_warn_at_60_days() {
    let db = TestDatabase::new(Backend::Sqlite).await;
    let client = fake_cluster(&["linkerd-identity.yaml"]).await;
    let board = board(&db.store, no_vault(), cart().1, vec![cluster("prod", client)], None);

    let report = board.refresh(fixture_now()).await;
    let issuer = find(&report, ItemKind::IdentityIssuer, "linkerd-identity-issuer");
    assert_eq!(issuer.judgement.state, RotationState::Ok, "{}", issuer.judgement.reason);
    assert_eq!(issuer.expires_at, Some(1_796_115_081), "notAfter from the secret's certificate");
    assert_eq!(issuer.renews_at, Some(1_796_025_081), "renewalTime from the Certificate");
    let anchor = find(&report, ItemKind::TrustAnchor, "linkerd-trust-anchor");
    assert_eq!(anchor.judgement.state, RotationState::Ok, "{}", anchor.judgement.reason);
    assert_eq!(anchor.namespace, "cert-manager");
    let bundle = find(&report, ItemKind::TrustBundle, "linkerd-identity-trust-roots");
    assert_eq!(bundle.judgement.state, RotationState::Ok, "{}", bundle.judgement.reason);
    // Linkerd's own Certificates are not listed a second time as plain certificates.
    assert!(report.items.iter().all(|i| i.kind != ItemKind::Certificate));

    // Five hours before the renewal at 23h: due soon (warned a quarter of 23 hours ahead).
    let later = board.refresh(fixture_now() + TimeDelta::hours(8)).await;
    let issuer = find(&later, ItemKind::IdentityIssuer, "linkerd-identity-issuer");
    assert_eq!(issuer.judgement.state, RotationState::DueSoon, "{}", issuer.judgement.reason);
    // cert-manager did not renew: overdue two hours after, expired after 48h.
    let late = board.refresh(fixture_now() + TimeDelta::hours(15)).await;
    let issuer = find(&late, ItemKind::IdentityIssuer, "linkerd-identity-issuer");
    assert_eq!(issuer.judgement.state, RotationState::Overdue, "{}", issuer.judgement.reason);
    let gone = board.refresh(fixture_now() + TimeDelta::hours(39)).await;
    let issuer = find(&gone, ItemKind::IdentityIssuer, "linkerd-identity-issuer");
    assert_eq!(issuer.judgement.state, RotationState::Expired, "{}", issuer.judgement.reason);
}

#[tokio::test]
async fn contract_a_trust_bundle_without_the_anchor_fails_the_anchor_and_the_issuer() {
    let db = TestDatabase::new(Backend::Sqlite).await;
    // The second file replaces the bundle with one holding another root of the same name.
    let client = ClientBuilder::new()
        .with_resource::<Certificate>()
        .with_resource::<CertificateRequest>()
        .with_fixture_dir(FIXTURES)
        .load_fixture("linkerd-identity.yaml")
        .unwrap()
        .build()
        .await
        .unwrap();
    let maps: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(client.clone(), "linkerd");
    let other: k8s_openapi::api::core::v1::ConfigMap = serde_saphyr::from_str(
        &std::fs::read_to_string(format!("{FIXTURES}/linkerd-bundle-without-anchor.yaml")).unwrap(),
    )
    .unwrap();
    let mut current = maps.get("linkerd-identity-trust-roots").await.unwrap();
    current.data = other.data;
    maps.replace("linkerd-identity-trust-roots", &Default::default(), &current).await.unwrap();

    let board = board(&db.store, no_vault(), cart().1, vec![cluster("prod", client)], None);
    let report = board.refresh(fixture_now()).await;
    let anchor = find(&report, ItemKind::TrustAnchor, "linkerd-trust-anchor");
    assert_eq!(anchor.judgement.state, RotationState::Failing);
    assert!(
        anchor.judgement.reason.contains("not in the trust bundle"),
        "{}",
        anchor.judgement.reason
    );
    let issuer = find(&report, ItemKind::IdentityIssuer, "linkerd-identity-issuer");
    assert_eq!(issuer.judgement.state, RotationState::Failing);
    assert!(
        issuer.judgement.reason.contains("no valid certificate in the trust bundle signed"),
        "{}",
        issuer.judgement.reason
    );
}

#[tokio::test]
async fn contract_missing_linkerd_objects_are_failing_items_not_errors() {
    let db = TestDatabase::new(Backend::Sqlite).await;
    // cert-manager installed, Linkerd's identity not set up yet.
    let client = fake_cluster(&["prod-app-certificates.yaml"]).await;
    let board = board(&db.store, no_vault(), cart().1, vec![cluster("staging", client)], None);
    let report = board.refresh(fixture_now()).await;
    let bundle = find(&report, ItemKind::TrustBundle, "linkerd-identity-trust-roots");
    assert_eq!(
        bundle.judgement.reason,
        "the ConfigMap linkerd/linkerd-identity-trust-roots does not exist"
    );
    let issuer = find(&report, ItemKind::IdentityIssuer, "linkerd-identity-issuer");
    assert_eq!(
        issuer.judgement.reason,
        "the secret linkerd/linkerd-identity-issuer does not exist"
    );
    assert!(report.sources.iter().all(|s| s.name != "staging" || s.reachable));
}

#[tokio::test]
async fn an_unreachable_cluster_is_reported_backed_off_and_the_others_still_shown() {
    let db = TestDatabase::new(Backend::Sqlite).await;
    // A real kube client on a kubeconfig whose API server does not answer.
    let port = meshport_server::dev::free_loopback_port().unwrap();
    let folder = tempfile::tempdir().unwrap();
    let kubeconfig = folder.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: eu\n  cluster:\n    server: https://127.0.0.1:{port}\n    insecure-skip-tls-verify: true\nusers:\n- name: ci\n  user:\n    token: t\ncontexts:\n- name: eu-prod\n  context:\n    cluster: eu\n    user: ci\ncurrent-context: eu-prod\n"
        ),
    )
    .unwrap();
    let down = Arc::new(Cluster::new(ClusterConfig {
        name: "eu".into(),
        context: Some("eu-prod".into()),
        kubeconfig: Some(kubeconfig.clone()),
        ..ClusterConfig::default()
    }));
    let missing_context = Arc::new(Cluster::new(ClusterConfig {
        name: "us".into(),
        context: Some("no-such-context".into()),
        kubeconfig: Some(kubeconfig),
        ..ClusterConfig::default()
    }));
    let up = cluster("prod", fake_cluster(&["linkerd-identity.yaml"]).await);
    let board = board(&db.store, no_vault(), cart().1, vec![down, missing_context, up], None);

    let now = fixture_now();
    let report = board.refresh(now).await;
    let source = |report: &StatusReport, name: &str| {
        report.sources.iter().find(|s| s.name == name).unwrap().clone()
    };
    let eu = source(&report, "eu");
    assert!(!eu.reachable);
    assert!(
        eu.error.as_deref().unwrap().contains("cannot list certificates in prod-app"),
        "{eu:?}"
    );
    assert_eq!(eu.retry_at, Some((now + TimeDelta::seconds(60)).timestamp()));
    let us = source(&report, "us");
    assert!(us.error.as_deref().unwrap().starts_with("cannot load the kubeconfig"), "{us:?}");
    assert!(!source(&report, "vault").reachable);
    assert!(source(&report, "prod").reachable);
    assert!(report.items.iter().any(|i| i.source == "prod"), "the reachable cluster is shown");

    // Before the retry time nothing is attempted; after it, a second failure doubles the wait.
    let report = board.refresh(now + TimeDelta::seconds(30)).await;
    assert_eq!(source(&report, "eu").retry_at, Some((now + TimeDelta::seconds(60)).timestamp()));
    let report = board.refresh(now + TimeDelta::seconds(61)).await;
    assert_eq!(source(&report, "eu").retry_at, Some((now + TimeDelta::seconds(181)).timestamp()));
}

#[tokio::test]
async fn vault_secrets_and_pki_certificates_turn_due_soon_and_expired_as_time_passes() {
    let platform = Platform::new().await;
    let db = TestDatabase::new(Backend::Sqlite).await;
    let mut request = checkout().0;
    request.certificate = Some(CertificateSpec { ttl_hours: 1 });
    let artifacts = platform.artifacts(request.clone());
    let provided = crate::provisioning::provided("kafka_password", "typed-once");
    platform.stage_and_apply(&artifacts, &provided).await;
    onboarded(&db.store, &request).await;
    // The service issues its certificate, as its Vault Agent would.
    let token = crate::provisioning::token_with(
        &platform.addr,
        &platform.root,
        &artifacts.policy.as_ref().unwrap().name,
    )
    .await;
    let issue = artifacts.pki_role.as_ref().unwrap().issue_path();
    let (status, issued) = call(
        &platform.addr,
        &token,
        "POST",
        &issue,
        Some(json!({ "common_name": "checkout.prod-app.svc", "ttl": "1h" })),
    )
    .await;
    assert_eq!(status, 200, "{issued}");

    let board =
        board(&db.store, platform.meshport.clone(), platform.settings.clone(), vec![], None);
    let now = Utc::now();
    let report = board.refresh(now).await;
    assert!(report.sources[0].reachable, "{:?}", report.sources);
    let certificate = find(&report, ItemKind::VaultCertificate, "checkout.prod-app.svc");
    assert_eq!(certificate.judgement.state, RotationState::Ok);
    assert_eq!(certificate.service.as_deref(), Some("prod-app/checkout"));
    let secrets: Vec<&StatusItem> =
        report.items.iter().filter(|i| i.kind == ItemKind::Secret).collect();
    assert_eq!(secrets.len(), artifacts.secrets.len());
    assert!(secrets.iter().all(|s| s.service.as_deref() == Some("prod-app/checkout")));
    assert!(secrets.iter().all(|s| s.judgement.state == RotationState::Ok), "{secrets:#?}");

    let state_at = |report: Arc<StatusReport>| {
        find(&report, ItemKind::VaultCertificate, "checkout.prod-app.svc").judgement.state
    };
    assert_eq!(state_at(board.refresh(now + TimeDelta::minutes(45)).await), RotationState::DueSoon);
    assert_eq!(state_at(board.refresh(now + TimeDelta::minutes(61)).await), RotationState::Expired);
    // A secret with a 30-day period is overdue after it.
    let overdue = board.refresh(now + TimeDelta::days(40)).await;
    let generated = overdue
        .items
        .iter()
        .find(|i| i.kind == ItemKind::Secret && i.judgement.state == RotationState::Overdue);
    assert!(generated.is_some(), "{:#?}", overdue.items);

    // A newer certificate for the same name replaces the older one in the report.
    let (status, _) = call(
        &platform.addr,
        &token,
        "POST",
        &issue,
        Some(json!({ "common_name": "checkout.prod-app.svc", "ttl": "50m" })),
    )
    .await;
    assert_eq!(status, 200);
    let report = board.refresh(Utc::now()).await;
    let ours: Vec<&StatusItem> =
        report.items.iter().filter(|i| i.name == "checkout.prod-app.svc").collect();
    assert_eq!(ours.len(), 1);
}

/// An incoming-webhook stand-in: a real HTTP server recording what it receives; answers 500
/// while `failing` is set.
async fn webhook_receiver() -> (String, Arc<Mutex<Vec<serde_json::Value>>>, Arc<Mutex<bool>>) {
    let received = Arc::new(Mutex::new(Vec::new()));
    let failing = Arc::new(Mutex::new(false));
    let (r, f) = (received.clone(), failing.clone());
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(body): axum::Json<serde_json::Value>| {
            let (r, f) = (r.clone(), f.clone());
            async move {
                if *f.lock().unwrap() {
                    return http::StatusCode::INTERNAL_SERVER_ERROR;
                }
                r.lock().unwrap().push(body);
                http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received, failing)
}

#[tokio::test]
async fn alerts_are_sent_once_per_transition_even_with_two_replicas() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let db = TestDatabase::new(backend).await;
        let (url, received, failing) = webhook_receiver().await;
        let replica = || async {
            let client = fake_cluster(&["linkerd-identity.yaml"]).await;
            let alerts = Alerts::new(url.clone().into());
            board(&db.store, no_vault(), cart().1, vec![cluster("prod", client)], Some(alerts))
        };
        let (one, two) = (replica().await, replica().await);
        let now = fixture_now();
        // All OK: nothing to say; both replicas refresh at once.
        futures_util::join!(one.refresh(now), two.refresh(now));
        assert_eq!(received.lock().unwrap().len(), 0);

        // The issuer turns due soon: one message, whichever replica sees it first.
        let soon = now + TimeDelta::hours(8);
        futures_util::join!(one.refresh(soon), two.refresh(soon));
        futures_util::join!(
            one.refresh(soon + TimeDelta::minutes(1)),
            two.refresh(soon + TimeDelta::minutes(1))
        );
        {
            let messages = received.lock().unwrap();
            assert_eq!(messages.len(), 1, "{backend:?}: {messages:#?}");
            let text = messages[0]["text"].as_str().unwrap();
            assert!(text.starts_with("[meshport] Due soon: Linkerd identity issuer linkerd/linkerd-identity-issuer on prod: renews in"), "{text}");
            assert_eq!(messages[0]["meshport"]["state"], "due_soon");
        }

        // Overdue while the webhook fails: not lost, sent at the next refresh that succeeds.
        *failing.lock().unwrap() = true;
        let overdue = now + TimeDelta::hours(15);
        one.refresh(overdue).await;
        assert_eq!(received.lock().unwrap().len(), 1);
        *failing.lock().unwrap() = false;
        futures_util::join!(
            one.refresh(overdue + TimeDelta::minutes(1)),
            two.refresh(overdue + TimeDelta::minutes(1))
        );
        let messages = received.lock().unwrap();
        assert_eq!(messages.len(), 2, "{backend:?}: {messages:#?}");
        assert_eq!(messages[1]["meshport"]["state"], "overdue");
    }
}

#[tokio::test]
async fn metrics_expose_expiry_timestamps_and_one_state_per_item() {
    let db = TestDatabase::new(Backend::Sqlite).await;
    let client = fake_cluster(&["prod-app-certificates.yaml", "linkerd-identity.yaml"]).await;
    let board = board(&db.store, no_vault(), cart().1, vec![cluster("prod", client)], None);
    let report = board.refresh(fixture_now()).await;
    let text = meshport_server::status::prometheus::render(&report);
    assert!(text.contains(
        r#"meshport_status_expiry_timestamp_seconds{kind="certificate",source="prod",namespace="prod-app",name="cart-tls",service=""} 1801267200"#
    ), "{text}");
    assert!(text.contains(
        r#"meshport_status_state{kind="certificate",source="prod",namespace="prod-app",name="payment-tls",service="",state="failing"} 1"#
    ));
    assert!(text.contains(r#"meshport_status_source_up{source="prod"} 1"#));
    assert!(text.contains(r#"meshport_status_source_up{source="vault"} 0"#));
    // Every sample line parses as `name{labels} number`.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let value = line.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok(), "{line}");
    }
}
