//! The fleet's drift and upgrades: the digest of every file each generator version rendered for
//! a service's spec, the last drift pass's report, adopted hand edits, and upgrade batches with
//! their change sets.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Store, StoreError, Tx, on_pool, on_tx};

/// One file as one generator version rendered it for one spec of one service.
#[derive(Clone, Debug, PartialEq, Eq, Hash, sqlx::FromRow)]
pub struct Rendering {
    pub namespace: String,
    pub service_name: String,
    /// SHA-256 of the spec's canonical JSON.
    pub spec_digest: String,
    pub generator_version: String,
    pub path: String,
    /// git's blob id (SHA-1 of `blob <len>\0<contents>`).
    pub blob_id: String,
    pub sha256: String,
}

/// A hand-edited file an admin adopted.
#[derive(Clone, Debug, PartialEq, Eq, Hash, sqlx::FromRow)]
pub struct Adoption {
    pub namespace: String,
    pub service_name: String,
    pub path: String,
    pub blob_id: String,
}

/// An upgrade batch as stored.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct UpgradeBatchRecord {
    pub id: Uuid,
    pub requested_by: Uuid,
    /// `all`, `namespace:<ns>`, `team:<team>`.
    pub selection: String,
    /// JSON list of "<ns>/<svc>: why" lines.
    pub skipped: String,
    pub created_at: DateTime<Utc>,
}

/// An upgrade change set's membership and the files it keeps from the repository.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct UpgradeChangeRecord {
    pub request_id: Uuid,
    pub batch_id: Uuid,
    /// JSON `[{"path", "contents"}]`.
    pub kept: String,
}

impl Store {
    /// Every recorded rendering: one read per drift pass.
    #[tracing::instrument(skip_all)]
    pub async fn renderings(&self) -> Result<Vec<Rendering>, StoreError> {
        let sql = "SELECT namespace, service_name, spec_digest, generator_version, path, blob_id,
                          sha256
                   FROM fleet_renderings";
        Ok(on_pool!(self, pool => sqlx::query_as::<_, Rendering>(sql).fetch_all(pool).await?))
    }

    /// Records renderings not recorded yet, in one transaction.
    #[tracing::instrument(skip_all)]
    pub async fn record_renderings(&self, renderings: &[Rendering]) -> Result<(), StoreError> {
        if renderings.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        let sql = "INSERT INTO fleet_renderings
                       (namespace, service_name, spec_digest, generator_version, path, blob_id,
                        sha256, recorded_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                   ON CONFLICT DO NOTHING";
        let now = Utc::now();
        for r in renderings {
            on_tx!(&mut tx, conn => sqlx::query(sql)
                .bind(&r.namespace)
                .bind(&r.service_name)
                .bind(&r.spec_digest)
                .bind(&r.generator_version)
                .bind(&r.path)
                .bind(&r.blob_id)
                .bind(&r.sha256)
                .bind(now)
                .execute(&mut **conn)
                .await
                .map(drop)?);
        }
        tx.commit().await
    }

    /// Every adopted hand edit.
    pub async fn adoptions(&self) -> Result<Vec<Adoption>, StoreError> {
        let sql = "SELECT namespace, service_name, path, blob_id FROM fleet_adoptions";
        Ok(on_pool!(self, pool => sqlx::query_as::<_, Adoption>(sql).fetch_all(pool).await?))
    }

    /// Replaces the stored drift report (JSON).
    #[tracing::instrument(skip_all)]
    pub async fn save_fleet_report(
        &self,
        checked_at: DateTime<Utc>,
        report: &str,
    ) -> Result<(), StoreError> {
        let sql = "INSERT INTO fleet_reports (id, checked_at, report) VALUES (1, $1, $2)
                   ON CONFLICT (id) DO UPDATE SET checked_at = $1, report = $2";
        on_pool!(self, pool => sqlx::query(sql)
            .bind(checked_at)
            .bind(report)
            .execute(pool)
            .await
            .map(drop)?);
        Ok(())
    }

    /// The last drift report (JSON), if a pass ran.
    pub async fn fleet_report(&self) -> Result<Option<String>, StoreError> {
        let sql = "SELECT report FROM fleet_reports WHERE id = 1";
        Ok(on_pool!(self, pool => sqlx::query_scalar(sql).fetch_optional(pool).await?))
    }

    /// Upgrade batches, newest first.
    pub async fn upgrade_batches(&self, limit: i64) -> Result<Vec<UpgradeBatchRecord>, StoreError> {
        let sql = "SELECT id, requested_by, selection, skipped, created_at FROM upgrade_batches
                   ORDER BY created_at DESC LIMIT $1";
        Ok(on_pool!(self, pool => sqlx::query_as::<_, UpgradeBatchRecord>(sql)
            .bind(limit)
            .fetch_all(pool)
            .await?))
    }

    /// One batch.
    pub async fn upgrade_batch(&self, id: Uuid) -> Result<Option<UpgradeBatchRecord>, StoreError> {
        let sql = "SELECT id, requested_by, selection, skipped, created_at FROM upgrade_batches
                   WHERE id = $1";
        Ok(on_pool!(self, pool => sqlx::query_as::<_, UpgradeBatchRecord>(sql)
            .bind(id)
            .fetch_optional(pool)
            .await?))
    }

    /// The change sets of a batch, in creation order.
    pub async fn upgrade_changes(
        &self,
        batch: Uuid,
    ) -> Result<Vec<UpgradeChangeRecord>, StoreError> {
        let sql = "SELECT u.request_id, u.batch_id, u.kept FROM upgrade_changes u
                   JOIN onboarding_requests r ON r.id = u.request_id
                   WHERE u.batch_id = $1 ORDER BY r.namespace, r.service_name";
        Ok(on_pool!(self, pool => sqlx::query_as::<_, UpgradeChangeRecord>(sql)
            .bind(batch)
            .fetch_all(pool)
            .await?))
    }

    /// The upgrade record of a change set, if it is one of a batch.
    pub async fn upgrade_change(
        &self,
        request: Uuid,
    ) -> Result<Option<UpgradeChangeRecord>, StoreError> {
        let sql = "SELECT request_id, batch_id, kept FROM upgrade_changes WHERE request_id = $1";
        Ok(on_pool!(self, pool => sqlx::query_as::<_, UpgradeChangeRecord>(sql)
            .bind(request)
            .fetch_optional(pool)
            .await?))
    }

    /// Upgrade change sets by status: the fleet's upgrade progress.
    pub async fn upgrade_statuses(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let sql = "SELECT status, COUNT(*) FROM onboarding_requests WHERE kind = 'upgrade'
                   GROUP BY status";
        Ok(on_pool!(self, pool => sqlx::query_as::<_, (String, i64)>(sql)
            .fetch_all(pool)
            .await?))
    }

    /// Open pull requests of upgrade change sets: what `fleet.max_open_upgrade_prs` limits.
    pub async fn open_upgrade_pull_requests(&self) -> Result<i64, StoreError> {
        let sql = "SELECT COUNT(*) FROM pull_requests p
                   JOIN onboarding_requests r ON r.id = p.request_id
                   WHERE r.kind = 'upgrade' AND p.state = 'open'";
        Ok(on_pool!(self, pool => sqlx::query_scalar(sql).fetch_one(pool).await?))
    }
}

impl Tx {
    /// Stores a new batch.
    pub async fn create_upgrade_batch(
        &mut self,
        batch: &UpgradeBatchRecord,
    ) -> Result<(), StoreError> {
        let sql = "INSERT INTO upgrade_batches (id, requested_by, selection, skipped, created_at)
                   VALUES ($1, $2, $3, $4, $5)";
        on_tx!(self, conn => sqlx::query(sql)
            .bind(batch.id)
            .bind(batch.requested_by)
            .bind(&batch.selection)
            .bind(&batch.skipped)
            .bind(batch.created_at)
            .execute(&mut **conn)
            .await
            .map(drop)?);
        Ok(())
    }

    /// Adds an upgrade change set to its batch, with the files it keeps.
    pub async fn add_upgrade_change(
        &mut self,
        change: &UpgradeChangeRecord,
    ) -> Result<(), StoreError> {
        let sql = "INSERT INTO upgrade_changes (request_id, batch_id, kept) VALUES ($1, $2, $3)";
        on_tx!(self, conn => sqlx::query(sql)
            .bind(change.request_id)
            .bind(change.batch_id)
            .bind(&change.kept)
            .execute(&mut **conn)
            .await
            .map(drop)?);
        Ok(())
    }

    /// Records an admin's adoption of a hand-edited file.
    pub async fn adopt_file(
        &mut self,
        adoption: &Adoption,
        decided_by: Uuid,
    ) -> Result<(), StoreError> {
        let sql = "INSERT INTO fleet_adoptions
                       (namespace, service_name, path, blob_id, decided_by, decided_at)
                   VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING";
        on_tx!(self, conn => sqlx::query(sql)
            .bind(&adoption.namespace)
            .bind(&adoption.service_name)
            .bind(&adoption.path)
            .bind(&adoption.blob_id)
            .bind(decided_by)
            .bind(Utc::now())
            .execute(&mut **conn)
            .await
            .map(drop)?);
        Ok(())
    }

    /// Wakes the upgrade jobs waiting for an open pull request slot (one merged or closed).
    pub async fn wake_upgrade_jobs(&mut self) -> Result<(), StoreError> {
        let sql = "UPDATE jobs SET next_run_at = $1 WHERE state = 'queued' AND request_id IN
                       (SELECT id FROM onboarding_requests WHERE kind = 'upgrade')";
        on_tx!(self, conn => sqlx::query(sql)
            .bind(Utc::now())
            .execute(&mut **conn)
            .await
            .map(drop)?);
        Ok(())
    }
}
