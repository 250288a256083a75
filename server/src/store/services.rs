//! Services that are being onboarded or run, one row each, keyed by their `<ns>-<svc>` Vault
//! name: the key makes two services with colliding Vault names impossible, inside the
//! transaction that submits the second. The row also says which change set Vault holds
//! (`live_change`), which one is in flight (`open_change`, at most one) and the version.

use app::onboarding::{ChangeKind, RequestStatus};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{OnboardingRequestRecord, Store, StoreError, Tx, on_pool, on_tx};

/// A service as stored.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct ServiceRecord {
    pub vault_name: String,
    pub namespace: String,
    pub service_name: String,
    pub team: String,
    /// Its onboarding change set: the identity its manifests and Vault metadata carry.
    pub origin: Uuid,
    /// The change set whose spec Vault holds (set once its pull request is open).
    pub live_change: Option<Uuid>,
    /// The change set in flight, if any; a second one is refused until it ends.
    pub open_change: Option<Uuid>,
    /// How many change sets have merged.
    pub version: i32,
    pub created_at: DateTime<Utc>,
}

/// A service claimed by an onboarding change set.
#[derive(Clone, Debug)]
pub struct NewService<'a> {
    pub namespace: &'a str,
    pub service_name: &'a str,
    pub team: &'a str,
    pub origin: Uuid,
}

/// The Vault name two services must not share.
pub fn vault_name(namespace: &str, service: &str) -> String {
    format!("{namespace}-{service}")
}

const SERVICE_COLUMNS: &str = "vault_name, namespace, service_name, team, origin, live_change, \
                               open_change, version, created_at";

impl Store {
    /// The service `namespace/service`, if it is being onboarded or runs.
    #[tracing::instrument(skip_all)]
    pub async fn service(
        &self,
        namespace: &str,
        service: &str,
    ) -> Result<Option<ServiceRecord>, StoreError> {
        let sql = format!(
            "SELECT {SERVICE_COLUMNS} FROM services WHERE namespace = $1 AND service_name = $2"
        );
        Ok(on_pool!(self, pool => sqlx::query_as::<_, ServiceRecord>(&sql)
            .bind(namespace)
            .bind(service)
            .fetch_optional(pool)
            .await?))
    }

    /// Every service being onboarded or live, by namespace and name.
    #[tracing::instrument(skip_all)]
    pub async fn all_services(&self) -> Result<Vec<ServiceRecord>, StoreError> {
        let sql =
            format!("SELECT {SERVICE_COLUMNS} FROM services ORDER BY namespace, service_name");
        Ok(on_pool!(self, pool => sqlx::query_as::<_, ServiceRecord>(&sql)
            .fetch_all(pool)
            .await?))
    }

    /// Up to `limit` services by namespace and name, after `after` (namespace, name), of
    /// `teams` only when given.
    #[tracing::instrument(skip_all)]
    pub async fn services_page(
        &self,
        teams: Option<&[String]>,
        after: Option<(&str, &str)>,
        limit: u32,
    ) -> Result<Vec<ServiceRecord>, StoreError> {
        if teams.is_some_and(<[String]>::is_empty) {
            return Ok(Vec::new());
        }
        Ok(on_pool!(self, pool => {
            let mut query =
                sqlx::QueryBuilder::new(format!("SELECT {SERVICE_COLUMNS} FROM services WHERE 1 = 1"));
            if let Some(teams) = teams {
                query.push(" AND team IN (");
                let mut separated = query.separated(", ");
                for team in teams {
                    separated.push_bind(team.as_str());
                }
                query.push(")");
            }
            if let Some((namespace, service)) = after {
                query.push(" AND (namespace > ").push_bind(namespace);
                query.push(" OR (namespace = ").push_bind(namespace);
                query.push(" AND service_name > ").push_bind(service).push("))");
            }
            query.push(" ORDER BY namespace, service_name LIMIT ").push_bind(i64::from(limit));
            query.build_query_as::<ServiceRecord>().fetch_all(pool).await?
        }))
    }

    /// Every service whose Vault objects are applied, with the change set they follow.
    #[tracing::instrument(skip_all)]
    pub async fn live_services(
        &self,
    ) -> Result<Vec<(ServiceRecord, OnboardingRequestRecord)>, StoreError> {
        let mut live = Vec::new();
        let sql = format!("SELECT {SERVICE_COLUMNS} FROM services WHERE live_change IS NOT NULL");
        let services = on_pool!(self, pool => sqlx::query_as::<_, ServiceRecord>(&sql)
            .fetch_all(pool)
            .await?);
        for service in services {
            let Some(id) = service.live_change else { continue };
            if let Some(change) = self.request(id).await? {
                live.push((service, change));
            }
        }
        Ok(live)
    }

    /// The id a change set's artifacts are rendered with (manifest annotations, Vault
    /// metadata): its service's onboarding change set, so a change touches only what it
    /// changes.
    pub async fn origin_of(&self, change: &OnboardingRequestRecord) -> Result<Uuid, StoreError> {
        let mut current = change.clone();
        // One hop per version back to the onboarding.
        while current.kind != ChangeKind::Onboard {
            let Some(base) = current.base_change else { break };
            let Some(previous) = self.request(base).await? else { break };
            current = previous;
        }
        Ok(current.id)
    }

    /// The service a change set belongs to, by its namespace and name.
    pub async fn service_of(
        &self,
        change: &OnboardingRequestRecord,
    ) -> Result<Option<ServiceRecord>, StoreError> {
        self.service(&change.namespace, &change.service_name).await
    }
}

impl Tx {
    /// Claims a new service for its onboarding change set. A unique violation means the name,
    /// or its Vault name, is taken.
    pub async fn claim_service(&mut self, new: &NewService<'_>) -> Result<(), StoreError> {
        let sql = "INSERT INTO services
                       (vault_name, namespace, service_name, team, origin, open_change, version,
                        created_at)
                   VALUES ($1, $2, $3, $4, $5, $5, 0, $6)";
        on_tx!(self, conn => sqlx::query(sql)
            .bind(vault_name(new.namespace, new.service_name))
            .bind(new.namespace)
            .bind(new.service_name)
            .bind(new.team)
            .bind(new.origin)
            .bind(Utc::now())
            .execute(&mut **conn)
            .await
            .map(drop)?);
        Ok(())
    }

    /// Makes `change` the live service's one change set in flight. False, changing nothing,
    /// when the service is not live or another change set is in flight.
    pub async fn open_change(
        &mut self,
        namespace: &str,
        service: &str,
        change: Uuid,
    ) -> Result<bool, StoreError> {
        let sql = "UPDATE services SET open_change = $1
                   WHERE namespace = $2 AND service_name = $3 AND open_change IS NULL
                     AND live_change IS NOT NULL";
        let affected = on_tx!(self, conn => sqlx::query(sql)
            .bind(change)
            .bind(namespace)
            .bind(service)
            .execute(&mut **conn)
            .await?
            .rows_affected());
        Ok(affected == 1)
    }

    /// Keeps the service's row in step with its change set's new status `to`.
    pub(super) async fn follow_transition(
        &mut self,
        id: Uuid,
        to: RequestStatus,
    ) -> Result<(), StoreError> {
        let kind: String = on_tx!(self, conn => sqlx::query_scalar(
                "SELECT kind FROM onboarding_requests WHERE id = $1")
            .bind(id)
            .fetch_one(&mut **conn)
            .await?);
        let kind: ChangeKind = kind.parse().map_err(|e| StoreError::Corrupt(format!("{e}")))?;
        let statements: &[&str] = match (to, kind) {
            // Vault now holds this change set's spec.
            (
                RequestStatus::PrOpen,
                ChangeKind::Onboard | ChangeKind::Modify | ChangeKind::Upgrade,
            ) => &["UPDATE services SET live_change = $1 WHERE open_change = $1"],
            // A merge makes a version; the next change set may start. (From provisioning too:
            // a pull request merged before its step was recorded.)
            (
                RequestStatus::Merged,
                ChangeKind::Onboard | ChangeKind::Modify | ChangeKind::Upgrade,
            ) => &[
                "UPDATE onboarding_requests SET version =
                     (SELECT version + 1 FROM services WHERE open_change = $1)
                 WHERE id = $1",
                "UPDATE services SET version = version + 1, open_change = NULL, live_change = $1
                 WHERE open_change = $1",
            ],
            (RequestStatus::Merged, ChangeKind::Offboard) => &[
                "UPDATE onboarding_requests SET version =
                     (SELECT version + 1 FROM services WHERE open_change = $1)
                 WHERE id = $1",
                "UPDATE services SET version = version + 1, open_change = NULL
                 WHERE open_change = $1",
            ],
            // Ended without landing: the service is free again, and a name that never went
            // live is released.
            (RequestStatus::Rejected | RequestStatus::Withdrawn, _) => &[
                "UPDATE services SET open_change = NULL WHERE open_change = $1",
                "DELETE FROM services WHERE origin = $1 AND live_change IS NULL",
            ],
            // The service left the mesh: its name is free.
            (RequestStatus::Offboarded, _) => &["DELETE FROM services WHERE live_change = $1
                     OR (origin = $1 AND live_change IS NULL)"],
            _ => &[],
        };
        for sql in statements {
            on_tx!(self, conn => sqlx::query(sql).bind(id).execute(&mut **conn).await.map(drop)?);
        }
        Ok(())
    }
}
