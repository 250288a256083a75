//! Change sets as stored (the table keeps its first name, `onboarding_requests`): who asked for
//! which change to which service, why, what it replaces, and where it stands. Every status change
//! goes through [`Tx::transition_request`], which allows only the lifecycle's table
//! ([`RequestStatus::TRANSITIONS`]) and keeps the service's row in step.

use app::onboarding::{ChangeKind, RequestStatus};
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use uuid::Uuid;

use super::{Store, StoreError, Tx, on_pool, on_tx};

/// A stored change set.
#[derive(Clone, Debug, PartialEq)]
pub struct OnboardingRequestRecord {
    pub id: Uuid,
    pub kind: ChangeKind,
    /// The change set whose spec this one replaces (modify, offboard).
    pub base_change: Option<Uuid>,
    /// SHA-256 over everything it writes (manifests and Vault objects), as approved.
    pub digest: Option<String>,
    /// The service's version it became when merged.
    pub version: Option<i32>,
    pub service_name: String,
    pub namespace: String,
    pub team: String,
    pub requested_by: Uuid,
    pub justification: String,
    /// The submitted form, without secret values.
    pub spec: serde_json::Value,
    pub status: RequestStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The platform admin who approved or rejected it.
    pub decided_by: Option<Uuid>,
    pub decided_at: Option<DateTime<Utc>>,
    /// The admin's reason (required for a rejection).
    pub decision_reason: Option<String>,
}

/// A change set about to be stored; it starts as [`RequestStatus::Submitted`].
#[derive(Clone, Debug)]
pub struct NewOnboardingRequest<'a> {
    /// Chosen by the caller, so Vault staging can use it before the row is committed.
    pub id: Uuid,
    pub kind: ChangeKind,
    pub base_change: Option<Uuid>,
    pub digest: Option<&'a str>,
    pub service_name: &'a str,
    pub namespace: &'a str,
    pub team: &'a str,
    pub requested_by: Uuid,
    pub justification: &'a str,
    pub spec: &'a serde_json::Value,
}

/// Which requests to list; unset fields match everything. Newest first.
#[derive(Clone, Debug, Default)]
pub struct RequestFilter {
    /// Only requests of these teams (an empty list matches none).
    pub teams: Option<Vec<String>>,
    pub requested_by: Option<Uuid>,
    pub status: Option<RequestStatus>,
    /// At most this many (default 100).
    pub limit: Option<u32>,
    /// Only requests listed after this one (its `created_at` and id): the next page.
    pub after: Option<(DateTime<Utc>, Uuid)>,
}

/// The row as the database returns it; the status is checked when turned into a record.
#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    kind: String,
    base_change: Option<Uuid>,
    digest: Option<String>,
    version: Option<i32>,
    service_name: String,
    namespace: String,
    team: String,
    requested_by: Uuid,
    justification: String,
    spec: Json<serde_json::Value>,
    status: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    decided_by: Option<Uuid>,
    decided_at: Option<DateTime<Utc>>,
    decision_reason: Option<String>,
}

impl TryFrom<Row> for OnboardingRequestRecord {
    type Error = StoreError;

    fn try_from(row: Row) -> Result<Self, StoreError> {
        Ok(Self {
            status: row.status.parse().map_err(|e| StoreError::Corrupt(format!("{e}")))?,
            kind: row.kind.parse().map_err(|e| StoreError::Corrupt(format!("{e}")))?,
            base_change: row.base_change,
            digest: row.digest,
            version: row.version,
            id: row.id,
            service_name: row.service_name,
            namespace: row.namespace,
            team: row.team,
            requested_by: row.requested_by,
            justification: row.justification,
            spec: row.spec.0,
            created_at: row.created_at,
            updated_at: row.updated_at,
            decided_by: row.decided_by,
            decided_at: row.decided_at,
            decision_reason: row.decision_reason,
        })
    }
}

pub(super) const REQUEST_COLUMNS: &str = "id, kind, base_change, digest, version, service_name, namespace, team, requested_by, justification, \
                               spec, status, created_at, updated_at, decided_by, decided_at, \
                               decision_reason";

impl Store {
    /// The request with this id, if any.
    #[tracing::instrument(skip_all)]
    pub async fn request(&self, id: Uuid) -> Result<Option<OnboardingRequestRecord>, StoreError> {
        let sql = format!("SELECT {REQUEST_COLUMNS} FROM onboarding_requests WHERE id = $1");
        let row = on_pool!(self, pool => sqlx::query_as::<_, Row>(&sql)
            .bind(id)
            .fetch_optional(pool)
            .await?);
        row.map(TryInto::try_into).transpose()
    }

    /// The change sets of `namespace/service`, newest first: its version history and what is
    /// in flight.
    #[tracing::instrument(skip_all)]
    pub async fn changes_of_service(
        &self,
        namespace: &str,
        service: &str,
    ) -> Result<Vec<OnboardingRequestRecord>, StoreError> {
        let sql = format!(
            "SELECT {REQUEST_COLUMNS} FROM onboarding_requests
             WHERE namespace = $1 AND service_name = $2 ORDER BY created_at DESC, id"
        );
        let rows = on_pool!(self, pool => sqlx::query_as::<_, Row>(&sql)
            .bind(namespace)
            .bind(service)
            .fetch_all(pool)
            .await?);
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// Requests matching the filter, newest first.
    #[tracing::instrument(skip_all)]
    pub async fn list_requests(
        &self,
        filter: &RequestFilter,
    ) -> Result<Vec<OnboardingRequestRecord>, StoreError> {
        if filter.teams.as_ref().is_some_and(Vec::is_empty) {
            return Ok(Vec::new());
        }
        let limit = i64::from(filter.limit.unwrap_or(100));
        let rows = on_pool!(self, pool => {
            let mut query = sqlx::QueryBuilder::new(format!(
                "SELECT {REQUEST_COLUMNS} FROM onboarding_requests WHERE 1 = 1"
            ));
            if let Some(teams) = &filter.teams {
                query.push(" AND team IN (");
                let mut separated = query.separated(", ");
                for team in teams {
                    separated.push_bind(team.as_str());
                }
                query.push(")");
            }
            if let Some(requested_by) = filter.requested_by {
                query.push(" AND requested_by = ").push_bind(requested_by);
            }
            if let Some(status) = filter.status {
                query.push(" AND status = ").push_bind(status.as_str());
            }
            if let Some((created_at, id)) = filter.after {
                query.push(" AND (created_at < ").push_bind(created_at);
                query.push(" OR (created_at = ").push_bind(created_at);
                query.push(" AND id < ").push_bind(id).push("))");
            }
            query.push(" ORDER BY created_at DESC, id DESC LIMIT ").push_bind(limit);
            query.build_query_as::<Row>().fetch_all(pool).await?
        });
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// Moves a request from `from` to `to`. Returns false, changing nothing, when the request is
    /// not in state `from` (for example because someone else moved it first).
    pub async fn transition_request(
        &self,
        id: Uuid,
        from: RequestStatus,
        to: RequestStatus,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let moved = tx.transition_request(id, from, to).await?;
        tx.commit().await?;
        Ok(moved)
    }
}

impl Tx {
    /// The request with this id, if any, read in the transaction.
    pub async fn request(
        &mut self,
        id: Uuid,
    ) -> Result<Option<OnboardingRequestRecord>, StoreError> {
        let sql = format!("SELECT {REQUEST_COLUMNS} FROM onboarding_requests WHERE id = $1");
        let row = on_tx!(self, conn => sqlx::query_as::<_, Row>(&sql)
            .bind(id)
            .fetch_optional(&mut **conn)
            .await?);
        row.map(TryInto::try_into).transpose()
    }

    /// Stores a new request in state `submitted`.
    #[tracing::instrument(skip_all)]
    pub async fn create_request(
        &mut self,
        request: &NewOnboardingRequest<'_>,
    ) -> Result<OnboardingRequestRecord, StoreError> {
        let sql = format!(
            "INSERT INTO onboarding_requests
                (id, service_name, namespace, team, requested_by, justification, spec, status,
                 created_at, updated_at, kind, base_change, digest)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $11, $12)
             RETURNING {REQUEST_COLUMNS}"
        );
        let row = on_tx!(self, conn => sqlx::query_as::<_, Row>(&sql)
            .bind(request.id)
            .bind(request.service_name)
            .bind(request.namespace)
            .bind(request.team)
            .bind(request.requested_by)
            .bind(request.justification)
            .bind(Json(request.spec))
            .bind(RequestStatus::Submitted.as_str())
            .bind(Utc::now())
            .bind(request.kind.as_str())
            .bind(request.base_change)
            .bind(request.digest)
            .fetch_one(&mut **conn)
            .await?);
        let record: OnboardingRequestRecord = row.try_into()?;
        // The service's row follows in the same transaction: an onboarding claims the name
        // (its keys refuse a taken name or Vault name), any other change set must be the
        // service's only one in flight.
        match request.kind {
            ChangeKind::Onboard => {
                self.claim_service(&super::NewService {
                    namespace: request.namespace,
                    service_name: request.service_name,
                    team: request.team,
                    origin: record.id,
                })
                .await?;
            }
            ChangeKind::Modify | ChangeKind::Offboard | ChangeKind::Upgrade => {
                if !self.open_change(request.namespace, request.service_name, record.id).await? {
                    return Err(StoreError::ServiceBusy {
                        service: format!("{}/{}", request.namespace, request.service_name),
                    });
                }
            }
        }
        Ok(record)
    }

    /// Records an admin's decision on a submitted request: moves it to `to` (approved or
    /// rejected). Returns false, changing nothing, when the request is no longer submitted or
    /// when `decided_by` is its requester: four-eyes holds in the database too.
    #[tracing::instrument(skip_all)]
    pub async fn decide_request(
        &mut self,
        id: Uuid,
        decided_by: Uuid,
        to: RequestStatus,
        reason: Option<&str>,
    ) -> Result<bool, StoreError> {
        refuse_unlisted(RequestStatus::Submitted, to)?;
        let sql = "UPDATE onboarding_requests
                   SET status = $1, decided_by = $2, decided_at = $3, decision_reason = $4,
                       updated_at = $3
                   WHERE id = $5 AND status = $6 AND requested_by <> $2";
        let affected = on_tx!(self, conn => sqlx::query(sql)
            .bind(to.as_str())
            .bind(decided_by)
            .bind(Utc::now())
            .bind(reason)
            .bind(id)
            .bind(RequestStatus::Submitted.as_str())
            .execute(&mut **conn)
            .await?
            .rows_affected());
        if affected == 1 && to == RequestStatus::Rejected {
            self.follow_transition(id, to).await?;
        }
        Ok(affected == 1)
    }

    /// Moves a change set from `from` to `to` inside the transaction, and its service with it.
    /// False when it was not in state `from`; an error when the lifecycle has no such move.
    pub async fn transition_request(
        &mut self,
        id: Uuid,
        from: RequestStatus,
        to: RequestStatus,
    ) -> Result<bool, StoreError> {
        refuse_unlisted(from, to)?;
        let sql = "UPDATE onboarding_requests SET status = $1, updated_at = $2
                   WHERE id = $3 AND status = $4";
        let affected = on_tx!(self, conn => sqlx::query(sql)
            .bind(to.as_str())
            .bind(Utc::now())
            .bind(id)
            .bind(from.as_str())
            .execute(&mut **conn)
            .await?
            .rows_affected());
        if affected == 1 {
            self.follow_transition(id, to).await?;
        }
        Ok(affected == 1)
    }
}

/// Refuses a move the lifecycle table does not list.
fn refuse_unlisted(from: RequestStatus, to: RequestStatus) -> Result<(), StoreError> {
    if from.may_move_to(to) { Ok(()) } else { Err(StoreError::Transition { from, to }) }
}
