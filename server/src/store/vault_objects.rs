//! Who owns the Vault objects meshport writes that cannot carry an owner themselves (ACL
//! policies, Kubernetes-auth roles, PKI roles), and the KV secrets an admin adopted. meshport
//! overwrites or deletes an existing object only when it is recorded here for that service.

use chrono::{DateTime, Utc};

use super::{Store, StoreError, Tx, on_pool, on_tx};

/// One recorded object.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct VaultObjectRecord {
    /// Its API path, for example `sys/policies/acl/prod-app-cart`.
    pub path: String,
    /// `<namespace>/<service>`.
    pub owner: String,
    pub recorded_at: DateTime<Utc>,
    /// Who adopted it; `None` when meshport created it.
    pub adopted_by: Option<String>,
}

const COLUMNS: &str = "path, owner, recorded_at, adopted_by";

impl Store {
    /// The record of the object at `path`, if any.
    pub async fn vault_object(&self, path: &str) -> Result<Option<VaultObjectRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM vault_objects WHERE path = $1");
        Ok(on_pool!(self, pool => sqlx::query_as::<_, VaultObjectRecord>(&sql)
            .bind(path)
            .fetch_optional(pool)
            .await?))
    }

    /// The objects recorded for `owner`, by path.
    pub async fn vault_objects_of(
        &self,
        owner: &str,
    ) -> Result<Vec<VaultObjectRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM vault_objects WHERE owner = $1 ORDER BY path");
        Ok(on_pool!(self, pool => sqlx::query_as::<_, VaultObjectRecord>(&sql)
            .bind(owner)
            .fetch_all(pool)
            .await?))
    }

    /// Records that meshport creates the object at `path` for `owner`, before it writes it.
    /// Returns false, changing nothing, when the path is recorded for another owner.
    pub async fn record_vault_object(&self, path: &str, owner: &str) -> Result<bool, StoreError> {
        let sql = "INSERT INTO vault_objects (path, owner, recorded_at) VALUES ($1, $2, $3)
                   ON CONFLICT (path) DO NOTHING";
        on_pool!(self, pool => sqlx::query(sql)
            .bind(path)
            .bind(owner)
            .bind(Utc::now())
            .execute(pool)
            .await
            .map(drop)?);
        Ok(self.vault_object(path).await?.is_some_and(|record| record.owner == owner))
    }

    /// Forgets `path` after meshport deleted it for `owner`.
    pub async fn forget_vault_object(&self, path: &str, owner: &str) -> Result<(), StoreError> {
        let sql = "DELETE FROM vault_objects WHERE path = $1 AND owner = $2";
        on_pool!(self, pool => sqlx::query(sql).bind(path).bind(owner).execute(pool).await.map(drop)?);
        Ok(())
    }
}

impl Tx {
    /// Records `path` as owned by `owner`, adopted by `adopted_by`, replacing any record. Written
    /// in the transaction of the audit event that records the adoption.
    pub async fn adopt_vault_object(
        &mut self,
        path: &str,
        owner: &str,
        adopted_by: &str,
    ) -> Result<(), StoreError> {
        let sql = "INSERT INTO vault_objects (path, owner, recorded_at, adopted_by)
                   VALUES ($1, $2, $3, $4)
                   ON CONFLICT (path) DO UPDATE SET owner = excluded.owner,
                       recorded_at = excluded.recorded_at, adopted_by = excluded.adopted_by";
        on_tx!(self, conn => sqlx::query(sql)
            .bind(path)
            .bind(owner)
            .bind(Utc::now())
            .bind(adopted_by)
            .execute(&mut **conn)
            .await
            .map(drop)?);
        Ok(())
    }
}
