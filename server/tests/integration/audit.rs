//! The audit trail on both backends: events chain, the table refuses UPDATE and DELETE, and
//! `verify` names the first event that was edited, removed or moved by someone who got past the
//! triggers (a database administrator).

use meshport_server::audit::{
    self, Action, Actor, GENESIS_HASH, NewEvent, Outcome, Target, Verification,
};
use meshport_server::store::Store;
use serde_json::json;

use crate::harness::{Backend, TestDatabase};

on_both_backends!(
    events_chain_and_verify,
    the_table_refuses_update_and_delete,
    an_edited_event_is_named,
    a_removed_event_is_named,
    reordered_events_are_named,
);

async fn record(store: &Store, n: usize) {
    for i in 0..n {
        let event = NewEvent {
            actor: Actor::system(),
            action: Action::ProvisioningStep,
            target: Target::new("service", "prod-app", "cart"),
            request_id: None,
            details: json!({ "step": i, "note": "commas, \"quotes\"\nand newlines" }),
            outcome: Outcome::Success,
        };
        audit::record_alone(store, event).await.unwrap();
    }
}

async fn execute(store: &Store, sql: &str) -> Result<(), sqlx::Error> {
    match store {
        Store::Sqlite(pool) => sqlx::query(sql).execute(pool).await.map(drop),
        Store::Postgres(pool) => sqlx::query(sql).execute(pool).await.map(drop),
    }
}

/// What an administrator would do to get past the append-only triggers.
async fn drop_protection(store: &Store) {
    let statements: &[&str] = match store {
        Store::Sqlite(_) => {
            &["DROP TRIGGER audit_events_no_update", "DROP TRIGGER audit_events_no_delete"]
        }
        Store::Postgres(_) => &["ALTER TABLE audit_events DISABLE TRIGGER USER"],
    };
    for sql in statements {
        execute(store, sql).await.unwrap();
    }
}

async fn events_chain_and_verify(db: TestDatabase) {
    assert_eq!(
        audit::verify(&db.store).await.unwrap(),
        Verification { events: 0, last_hash: GENESIS_HASH.into(), first_broken: None }
    );
    record(&db.store, 5).await;
    let verification = audit::verify(&db.store).await.unwrap();
    assert_eq!((verification.events, verification.first_broken), (5, None));
    assert_ne!(verification.last_hash, GENESIS_HASH);
}

async fn the_table_refuses_update_and_delete(db: TestDatabase) {
    record(&db.store, 2).await;
    for sql in
        ["UPDATE audit_events SET outcome = 'failure'", "DELETE FROM audit_events WHERE seq = 2"]
    {
        let error = execute(&db.store, sql).await.expect_err(sql).to_string();
        assert!(error.contains("append-only"), "{sql}: {error}");
    }
    if let Store::Postgres(_) = db.store {
        assert!(execute(&db.store, "TRUNCATE audit_events").await.is_err());
    }
    assert_eq!(audit::verify(&db.store).await.unwrap().events, 2);
}

async fn an_edited_event_is_named(db: TestDatabase) {
    record(&db.store, 4).await;
    drop_protection(&db.store).await;
    execute(&db.store, "UPDATE audit_events SET details = '{\"step\":99}' WHERE seq = 3")
        .await
        .unwrap();
    let broken = audit::verify(&db.store).await.unwrap().first_broken.expect("detected");
    assert_eq!(broken.seq, 3);
    assert!(broken.reason.contains("edited"), "{}", broken.reason);
}

async fn a_removed_event_is_named(db: TestDatabase) {
    record(&db.store, 4).await;
    drop_protection(&db.store).await;
    execute(&db.store, "DELETE FROM audit_events WHERE seq = 2").await.unwrap();
    let broken = audit::verify(&db.store).await.unwrap().first_broken.expect("detected");
    assert_eq!(broken.seq, 2);
    assert!(broken.reason.contains("missing"), "{}", broken.reason);
}

async fn reordered_events_are_named(db: TestDatabase) {
    record(&db.store, 4).await;
    drop_protection(&db.store).await;
    // Swap events 2 and 3, numbers kept in place.
    for sql in [
        "UPDATE audit_events SET seq = -2 WHERE seq = 2",
        "UPDATE audit_events SET seq = 2 WHERE seq = 3",
        "UPDATE audit_events SET seq = 3 WHERE seq = -2",
    ] {
        execute(&db.store, sql).await.unwrap();
    }
    let broken = audit::verify(&db.store).await.unwrap().first_broken.expect("detected");
    assert_eq!(broken.seq, 2);
}
