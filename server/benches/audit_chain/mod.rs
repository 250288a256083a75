//! What the audit benches share: a valid chain of generated events in a SQLite store.

use meshport_server::audit::{AuditEvent, GENESIS_HASH};
use meshport_server::store::Store;

const BATCH: usize = 500;

/// Fills `store` (SQLite, empty) with a valid chain of `events` events, inserted in batches,
/// and sets the chain's head.
pub async fn fill(store: &Store, events: i64) -> anyhow::Result<()> {
    let Store::Sqlite(pool) = store else { unreachable!("a SQLite store") };
    let mut prev_hash = GENESIS_HASH.to_owned();
    let mut seq = 0;
    while seq < events {
        let mut tx = pool.begin().await?;
        let mut query = sqlx::QueryBuilder::new(
            "INSERT INTO audit_events (seq, id, occurred_at, actor_user_id, actor_subject, actor_email, \
             actor_roles, action, target_kind, target_namespace, target_name, request_id, details, \
             outcome, prev_hash, hash) ",
        );
        let mut batch = Vec::with_capacity(BATCH);
        for _ in 0..BATCH.min((events - seq) as usize) {
            seq += 1;
            let mut event = AuditEvent {
                seq,
                id: uuid::Uuid::new_v4().to_string(),
                occurred_at: format!(
                    "2026-11-29T00:{:02}:{:02}.{:06}Z",
                    (seq / 60_000_000) % 60,
                    (seq / 1_000_000) % 60,
                    seq % 1_000_000
                ),
                actor_user_id: Some(uuid::Uuid::new_v4().to_string()),
                actor_subject: "dana".into(),
                actor_email: "dana@shop.example".into(),
                actor_roles: "developer".into(),
                action: "provisioning_step".into(),
                target_kind: "service".into(),
                target_namespace: "prod-app".into(),
                target_name: "cart".into(),
                request_id: Some(uuid::Uuid::new_v4().to_string()),
                details: format!(
                    r#"{{"step":"policy","attempt":{seq},"note":"commas, \"quotes\""}}"#
                ),
                outcome: "success".into(),
                prev_hash: prev_hash.clone(),
                hash: String::new(),
            };
            event.hash = event.compute_hash();
            prev_hash = event.hash.clone();
            batch.push(event);
        }
        query.push_values(&batch, |mut row, e| {
            row.push_bind(e.seq)
                .push_bind(&e.id)
                .push_bind(&e.occurred_at)
                .push_bind(&e.actor_user_id)
                .push_bind(&e.actor_subject)
                .push_bind(&e.actor_email)
                .push_bind(&e.actor_roles)
                .push_bind(&e.action)
                .push_bind(&e.target_kind)
                .push_bind(&e.target_namespace)
                .push_bind(&e.target_name)
                .push_bind(&e.request_id)
                .push_bind(&e.details)
                .push_bind(&e.outcome)
                .push_bind(&e.prev_hash)
                .push_bind(&e.hash);
        });
        query.build().execute(&mut *tx).await?;
        tx.commit().await?;
    }
    sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
        .bind(seq)
        .bind(&prev_hash)
        .execute(pool)
        .await?;
    Ok(())
}
