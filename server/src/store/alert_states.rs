//! The last seen state of each status item, which makes alerts fire once per transition.

use chrono::{DateTime, Utc};

use super::{Store, StoreError, on_tx};

impl Store {
    /// Records the states of `items` (key, state) seen at `at`, in one transaction, and returns
    /// the keys whose state this call changed (or saw first). With several replicas, only the
    /// one that records a change gets it back.
    pub async fn record_status_states(
        &self,
        items: &[(String, &'static str)],
        at: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        let sql = "INSERT INTO status_states (item_key, state, changed_at) VALUES ($1, $2, $3)
                   ON CONFLICT (item_key) DO UPDATE
                   SET state = excluded.state, changed_at = excluded.changed_at
                   WHERE status_states.state <> excluded.state";
        let mut tx = self.begin().await?;
        let mut changed = Vec::new();
        for (key, state) in items {
            let rows = on_tx!(&mut tx, conn => sqlx::query(sql)
                .bind(key)
                .bind(*state)
                .bind(at)
                .execute(&mut **conn)
                .await?
                .rows_affected());
            if rows > 0 {
                changed.push(key.clone());
            }
        }
        tx.commit().await?;
        Ok(changed)
    }

    /// Forgets the recorded state of `key`, so the next refresh sees it as a change again (an
    /// alert that could not be delivered is retried that way).
    pub async fn forget_status_state(&self, key: &str) -> Result<(), StoreError> {
        let sql = "DELETE FROM status_states WHERE item_key = $1";
        super::on_pool!(self, pool => sqlx::query(sql).bind(key).execute(pool).await.map(drop)?);
        Ok(())
    }
}
