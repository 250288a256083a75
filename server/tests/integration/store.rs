//! The store, run against both backends: every scenario below is one test on SQLite and one on
//! PostgreSQL.

use app::onboarding::RequestStatus;
use meshport_server::store::{
    NewOnboardingRequest, NewUser, OnboardingRequestRecord, RequestFilter, Store, StoreError, User,
};
use serde_json::json;

use crate::harness::{Backend, TestDatabase};

on_both_backends!(
    migrations_are_idempotent,
    sign_in_creates_then_refreshes_a_user,
    subjects_are_unique_per_issuer_only,
    a_request_round_trips_with_its_spec,
    a_request_needs_a_known_requester,
    requests_are_filtered_and_newest_first,
    transitions_only_move_from_the_expected_state,
);

async fn sign_in(store: &Store, issuer: &str, subject: &str, email: &str, name: &str) -> User {
    let user = NewUser { issuer, subject, email, display_name: name };
    let mut tx = store.begin().await.unwrap();
    let user = tx.upsert_user(&user).await.unwrap();
    tx.commit().await.unwrap();
    user
}

/// Stores a request in a transaction of its own.
async fn create(
    store: &Store,
    request: &NewOnboardingRequest<'_>,
) -> Result<OnboardingRequestRecord, StoreError> {
    let mut tx = store.begin().await?;
    let created = tx.create_request(request).await?;
    tx.commit().await?;
    Ok(created)
}

async fn user(store: &Store, subject: &str) -> User {
    sign_in(store, "https://idp.example", subject, &format!("{subject}@example.com"), subject).await
}

fn request<'a>(
    service: &'a str,
    team: &'a str,
    by: uuid::Uuid,
    spec: &'a serde_json::Value,
) -> NewOnboardingRequest<'a> {
    NewOnboardingRequest {
        id: uuid::Uuid::new_v4(),
        kind: app::onboarding::ChangeKind::Onboard,
        base_change: None,
        digest: None,
        service_name: service,
        namespace: "prod-app",
        team,
        requested_by: by,
        justification: "needs mTLS for PCI scope",
        spec,
    }
}

async fn migrations_are_idempotent(db: TestDatabase) {
    db.store.migrate().await.unwrap();
    db.store.ping().await.unwrap();
}

async fn sign_in_creates_then_refreshes_a_user(db: TestDatabase) {
    let first = user(&db.store, "alice").await;
    let again = sign_in(
        &db.store,
        "https://idp.example",
        "alice",
        "alice@new.example.com",
        "Alice Liddell",
    )
    .await;
    assert_eq!(again.id, first.id);
    assert_eq!(again.email, "alice@new.example.com");
    assert_eq!(again.display_name, "Alice Liddell");
    assert_eq!(again.created_at, first.created_at);
    assert!(again.last_login_at >= first.last_login_at);
    assert_eq!(db.store.user(first.id).await.unwrap(), Some(again));
    assert_eq!(db.store.user(uuid::Uuid::new_v4()).await.unwrap(), None);
}

async fn subjects_are_unique_per_issuer_only(db: TestDatabase) {
    let here = user(&db.store, "bob").await;
    let elsewhere =
        sign_in(&db.store, "https://other-idp.example", "bob", "bob@other.example.com", "Bob")
            .await;
    assert_ne!(here.id, elsewhere.id);
}

async fn a_request_round_trips_with_its_spec(db: TestDatabase) {
    let alice = user(&db.store, "alice").await;
    let spec = json!({
        "image": "ghcr.io/open-telemetry/demo:2.0.2-cart",
        "ports": [{"name": "grpc", "number": 8080, "protocol": "grpc"}],
        "allowed_callers": ["checkout", "frontend"],
        "note": "ünïcödé ✓ and \"quotes\"",
    });
    let created = create(&db.store, &request("cart", "shop", alice.id, &spec)).await.unwrap();
    assert_eq!(created.status, RequestStatus::Submitted);
    assert_eq!(created.created_at, created.updated_at);
    let read = db.store.request(created.id).await.unwrap().unwrap();
    assert_eq!(read, created);
    assert_eq!(read.spec, spec);
    assert_eq!(read.requested_by, alice.id);
    assert_eq!(db.store.request(uuid::Uuid::new_v4()).await.unwrap(), None);
}

async fn a_request_needs_a_known_requester(db: TestDatabase) {
    let spec = json!({});
    let error = create(&db.store, &request("cart", "shop", uuid::Uuid::new_v4(), &spec)).await;
    assert!(matches!(error, Err(StoreError::Database(_))), "{error:?}");
    let all = db.store.list_requests(&RequestFilter::default()).await.unwrap();
    assert!(all.is_empty());
}

async fn requests_are_filtered_and_newest_first(db: TestDatabase) {
    let alice = user(&db.store, "alice").await;
    let bob = user(&db.store, "bob").await;
    let spec = json!({});
    let mut ids = Vec::new();
    for (service, team, by) in
        [("cart", "shop", alice.id), ("payment", "payments", bob.id), ("checkout", "shop", bob.id)]
    {
        ids.push(create(&db.store, &request(service, team, by, &spec)).await.unwrap().id);
        // Timestamps must differ for the order to be observable on every backend.
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }

    let names = |records: Vec<OnboardingRequestRecord>| {
        records.into_iter().map(|r| r.service_name).collect::<Vec<_>>()
    };
    let all = db.store.list_requests(&RequestFilter::default()).await.unwrap();
    assert_eq!(names(all), ["checkout", "payment", "cart"]);

    let shop = RequestFilter { teams: Some(vec!["shop".into()]), ..Default::default() };
    assert_eq!(names(db.store.list_requests(&shop).await.unwrap()), ["checkout", "cart"]);

    let two_teams = RequestFilter {
        teams: Some(vec!["shop".into(), "payments".into()]),
        limit: Some(2),
        ..Default::default()
    };
    assert_eq!(names(db.store.list_requests(&two_teams).await.unwrap()), ["checkout", "payment"]);

    let no_teams = RequestFilter { teams: Some(vec![]), ..Default::default() };
    assert!(db.store.list_requests(&no_teams).await.unwrap().is_empty());

    // The next page starts after the last request of the one before.
    let first = RequestFilter { limit: Some(2), ..Default::default() };
    let first = db.store.list_requests(&first).await.unwrap();
    let last = first.last().unwrap();
    let rest = RequestFilter { after: Some((last.created_at, last.id)), ..Default::default() };
    assert_eq!(names(db.store.list_requests(&rest).await.unwrap()), ["cart"]);

    let by_bob = RequestFilter { requested_by: Some(bob.id), ..Default::default() };
    assert_eq!(names(db.store.list_requests(&by_bob).await.unwrap()), ["checkout", "payment"]);

    db.store
        .transition_request(ids[0], RequestStatus::Submitted, RequestStatus::Approved)
        .await
        .unwrap();
    let approved = RequestFilter { status: Some(RequestStatus::Approved), ..Default::default() };
    assert_eq!(names(db.store.list_requests(&approved).await.unwrap()), ["cart"]);
}

async fn transitions_only_move_from_the_expected_state(db: TestDatabase) {
    let alice = user(&db.store, "alice").await;
    let spec = json!({});
    let created = create(&db.store, &request("cart", "shop", alice.id, &spec)).await.unwrap();
    let moved = db
        .store
        .transition_request(created.id, RequestStatus::Submitted, RequestStatus::Approved)
        .await
        .unwrap();
    assert!(moved);
    let again = db
        .store
        .transition_request(created.id, RequestStatus::Submitted, RequestStatus::Rejected)
        .await
        .unwrap();
    assert!(!again, "a request already approved must not be rejected by a stale decision");
    let read = db.store.request(created.id).await.unwrap().unwrap();
    assert_eq!(read.status, RequestStatus::Approved);
    assert!(read.updated_at >= read.created_at);
}
