//! Rotations meshport wrote (the claim that makes a scheduled rotation happen once across
//! replicas) and restart rollouts (rotations of one service gathered into one pull request).

use chrono::{DateTime, TimeDelta, Utc};
use uuid::Uuid;

use super::{Store, StoreError, on_pool};

/// Who asked for a rotation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RotationTrigger {
    /// A person, from the page or the API.
    Manual,
    /// The schedule of a service with automatic rotation.
    Schedule,
}

impl RotationTrigger {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Manual => "manual",
            Self::Schedule => "schedule",
        }
    }
}

/// A restart rollout.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct RolloutRecord {
    pub id: Uuid,
    pub namespace: String,
    pub service_name: String,
    pub not_before: DateTime<Utc>,
    /// `pending`, `opened` or `failed`.
    pub state: String,
    pub rotations: i64,
    pub pull_request: Option<Uuid>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
}

const ROLLOUT_COLUMNS: &str = "id, namespace, service_name, not_before, state, \
                               CAST(rotations AS BIGINT) AS rotations, pull_request, last_error, \
                               created_at";

impl Store {
    /// Claims the rotation of `path` away from version `from`. Returns `false` when it was
    /// claimed already (another replica, or a person, rotated that version).
    pub async fn claim_rotation(
        &self,
        path: &str,
        from: u64,
        trigger: RotationTrigger,
    ) -> Result<bool, StoreError> {
        let sql = "INSERT INTO secret_rotations (path, from_version, trigger, created_at)
                   VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING";
        let rows = on_pool!(self, pool => sqlx::query(sql)
            .bind(path)
            .bind(from as i64)
            .bind(trigger.as_str())
            .bind(Utc::now())
            .execute(pool)
            .await?
            .rows_affected());
        Ok(rows == 1)
    }

    /// Records the version a claimed rotation wrote, or (`None`) gives the claim up after a
    /// failure so a later attempt may claim it again.
    pub async fn finish_rotation(
        &self,
        path: &str,
        from: u64,
        to: Option<u64>,
    ) -> Result<(), StoreError> {
        match to {
            Some(to) => {
                let sql = "UPDATE secret_rotations SET to_version = $3
                           WHERE path = $1 AND from_version = $2";
                on_pool!(self, pool => sqlx::query(sql)
                    .bind(path)
                    .bind(from as i64)
                    .bind(to as i64)
                    .execute(pool)
                    .await
                    .map(drop)?);
            }
            None => {
                let sql = "DELETE FROM secret_rotations
                           WHERE path = $1 AND from_version = $2 AND to_version IS NULL";
                on_pool!(self, pool => sqlx::query(sql)
                    .bind(path)
                    .bind(from as i64)
                    .execute(pool)
                    .await
                    .map(drop)?);
            }
        }
        Ok(())
    }

    /// Adds a rotation of `namespace/service` to its pending rollout, or starts one that opens
    /// its pull request at `not_before`. Returns the rollout.
    pub async fn queue_rollout(
        &self,
        namespace: &str,
        service: &str,
        not_before: DateTime<Utc>,
    ) -> Result<RolloutRecord, StoreError> {
        let sql = format!(
            "INSERT INTO secret_rollouts
                (id, namespace, service_name, not_before, state, rotations, created_at, updated_at)
             VALUES ($1, $2, $3, $4, 'pending', 1, $5, $5)
             ON CONFLICT (namespace, service_name) WHERE state = 'pending'
             DO UPDATE SET rotations = secret_rollouts.rotations + 1, updated_at = excluded.updated_at
             RETURNING {ROLLOUT_COLUMNS}"
        );
        let row = on_pool!(self, pool => sqlx::query_as::<_, RolloutRecord>(&sql)
            .bind(Uuid::new_v4())
            .bind(namespace)
            .bind(service)
            .bind(not_before)
            .bind(Utc::now())
            .fetch_one(pool)
            .await?);
        Ok(row)
    }

    /// Claims a pending rollout whose time has come for `lease` (compare-and-set on its lease,
    /// so one replica opens it).
    pub async fn claim_due_rollout(
        &self,
        now: DateTime<Utc>,
        lease: TimeDelta,
    ) -> Result<Option<RolloutRecord>, StoreError> {
        let sql = format!(
            "UPDATE secret_rollouts SET lease_until = $2, updated_at = $1
             WHERE id = (SELECT id FROM secret_rollouts
                         WHERE state = 'pending' AND not_before <= $1
                           AND (lease_until IS NULL OR lease_until < $1)
                         ORDER BY not_before LIMIT 1)
               AND state = 'pending' AND (lease_until IS NULL OR lease_until < $1)
             RETURNING {ROLLOUT_COLUMNS}"
        );
        let row = on_pool!(self, pool => sqlx::query_as::<_, RolloutRecord>(&sql)
            .bind(now)
            .bind(now + lease)
            .fetch_optional(pool)
            .await?);
        Ok(row)
    }

    /// Ends a claimed rollout: opened with its pull request, or failed with the reason.
    pub async fn finish_rollout(
        &self,
        id: Uuid,
        outcome: Result<Uuid, &str>,
    ) -> Result<(), StoreError> {
        let (state, pull_request, error) = match outcome {
            Ok(pr) => ("opened", Some(pr), None),
            Err(error) => ("failed", None, Some(error)),
        };
        let sql = "UPDATE secret_rollouts
                   SET state = $2, pull_request = $3, last_error = $4, lease_until = NULL,
                       updated_at = $5
                   WHERE id = $1";
        on_pool!(self, pool => sqlx::query(sql)
            .bind(id)
            .bind(state)
            .bind(pull_request)
            .bind(error)
            .bind(Utc::now())
            .execute(pool)
            .await
            .map(drop)?);
        Ok(())
    }

    /// Puts a claimed rollout back for a later attempt at `retry_at`, with the reason.
    pub async fn postpone_rollout(
        &self,
        id: Uuid,
        retry_at: DateTime<Utc>,
        reason: &str,
    ) -> Result<(), StoreError> {
        let sql = "UPDATE secret_rollouts
                   SET lease_until = NULL, not_before = $2, last_error = $3, updated_at = $4
                   WHERE id = $1 AND state = 'pending'";
        on_pool!(self, pool => sqlx::query(sql)
            .bind(id)
            .bind(retry_at)
            .bind(reason)
            .bind(Utc::now())
            .execute(pool)
            .await
            .map(drop)?);
        Ok(())
    }

    /// The newest rollout of `namespace/service`.
    pub async fn latest_rollout(
        &self,
        namespace: &str,
        service: &str,
    ) -> Result<Option<RolloutRecord>, StoreError> {
        let sql = format!(
            "SELECT {ROLLOUT_COLUMNS} FROM secret_rollouts
             WHERE namespace = $1 AND service_name = $2 ORDER BY created_at DESC LIMIT 1"
        );
        let row = on_pool!(self, pool => sqlx::query_as::<_, RolloutRecord>(&sql)
            .bind(namespace)
            .bind(service)
            .fetch_optional(pool)
            .await?);
        Ok(row)
    }
}
