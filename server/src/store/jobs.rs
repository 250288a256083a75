//! The provisioning queue: jobs claimed with a lease, their finished steps, retries. On
//! PostgreSQL a claim skips rows other processes have locked (`FOR UPDATE SKIP LOCKED`); SQLite
//! has a single writer, so its claim is atomic as it is.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use uuid::Uuid;

use super::{Store, StoreError, Tx, on_pool, on_tx};

/// What a job does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// Create the service's Vault objects and propose its manifests.
    Provision,
    /// The reverse: remove them.
    Offboard,
    /// Write the service's Vault objects again where they drifted.
    Reconcile,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Provision => "provision",
            Self::Offboard => "offboard",
            Self::Reconcile => "reconcile",
        }
    }
}

/// Where a job stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting to run (first time, or for a retry at `next_run_at`).
    Queued,
    /// A process holds its lease and works on it.
    Running,
    /// Every step finished.
    Done,
    /// Stopped on an error that a retry by an admin may fix.
    Failed,
    /// Given up by an admin.
    Cancelled,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    fn parse(text: &str) -> Result<Self, StoreError> {
        [Self::Queued, Self::Running, Self::Done, Self::Failed, Self::Cancelled]
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| StoreError::Corrupt(format!("job state `{text}`")))
    }
}

/// A stored job.
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    pub id: Uuid,
    pub request_id: Uuid,
    pub kind: JobKind,
    pub state: JobState,
    /// Runs started so far (the current one included).
    pub attempts: i32,
    pub next_run_at: DateTime<Utc>,
    pub lease_owner: Option<String>,
    pub lease_until: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A finished step.
#[derive(Clone, Debug, PartialEq)]
pub struct JobStep {
    pub step: String,
    pub finished_at: DateTime<Utc>,
    pub detail: serde_json::Value,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    request_id: Uuid,
    kind: String,
    state: String,
    attempts: i32,
    next_run_at: DateTime<Utc>,
    lease_owner: Option<String>,
    lease_until: Option<DateTime<Utc>>,
    last_error: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<Row> for Job {
    type Error = StoreError;

    fn try_from(row: Row) -> Result<Self, StoreError> {
        let kind = match row.kind.as_str() {
            "provision" => JobKind::Provision,
            "offboard" => JobKind::Offboard,
            "reconcile" => JobKind::Reconcile,
            other => return Err(StoreError::Corrupt(format!("job kind `{other}`"))),
        };
        Ok(Self {
            id: row.id,
            request_id: row.request_id,
            kind,
            state: JobState::parse(&row.state)?,
            attempts: row.attempts,
            next_run_at: row.next_run_at,
            lease_owner: row.lease_owner,
            lease_until: row.lease_until,
            last_error: row.last_error,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

const JOB_COLUMNS: &str = "id, request_id, kind, state, attempts, next_run_at, lease_owner, \
                           lease_until, last_error, created_at, updated_at";

impl Store {
    /// Takes the oldest runnable job (queued and due, or running with an expired lease) for
    /// `owner` until `lease_until`, and counts the attempt. `None` when there is none.
    #[tracing::instrument(skip_all)]
    pub async fn claim_job(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<Job>, StoreError> {
        let sql = self.lease_statement("jobs", JOB_COLUMNS);
        let row = on_pool!(self, pool => sqlx::query_as::<_, Row>(&sql)
            .bind(owner)
            .bind(lease_until)
            .bind(now)
            .fetch_optional(pool)
            .await?);
        row.map(TryInto::try_into).transpose()
    }

    /// Extends `owner`'s lease on a job. False when the lease was lost (expired and taken).
    #[tracing::instrument(skip_all)]
    pub async fn renew_job_lease(
        &self,
        id: Uuid,
        owner: &str,
        lease_until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let sql = "UPDATE jobs SET lease_until = $1
                   WHERE id = $2 AND lease_owner = $3 AND state = 'running'";
        let affected = on_pool!(self, pool => sqlx::query(sql)
            .bind(lease_until)
            .bind(id)
            .bind(owner)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(affected == 1)
    }

    /// A job by id.
    pub async fn job(&self, id: Uuid) -> Result<Option<Job>, StoreError> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1");
        let row = on_pool!(self, pool => sqlx::query_as::<_, Row>(&sql)
            .bind(id)
            .fetch_optional(pool)
            .await?);
        row.map(TryInto::try_into).transpose()
    }

    /// The jobs of a request, oldest first.
    pub async fn jobs_of_request(&self, request_id: Uuid) -> Result<Vec<Job>, StoreError> {
        let sql =
            format!("SELECT {JOB_COLUMNS} FROM jobs WHERE request_id = $1 ORDER BY created_at, id");
        let rows = on_pool!(self, pool => sqlx::query_as::<_, Row>(&sql)
            .bind(request_id)
            .fetch_all(pool)
            .await?);
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// The steps a job finished, in order.
    pub async fn job_steps(&self, job_id: Uuid) -> Result<Vec<JobStep>, StoreError> {
        let sql = "SELECT step, finished_at, detail FROM job_steps WHERE job_id = $1
                   ORDER BY finished_at, step";
        let rows: Vec<(String, DateTime<Utc>, Json<serde_json::Value>)> =
            on_pool!(self, pool => sqlx::query_as(sql).bind(job_id).fetch_all(pool).await?);
        Ok(rows
            .into_iter()
            .map(|(step, finished_at, detail)| JobStep { step, finished_at, detail: detail.0 })
            .collect())
    }

    /// Records the latest drift check of a service: the changes that would repair it.
    pub async fn record_drift(
        &self,
        request_id: Uuid,
        checked_at: DateTime<Utc>,
        changes: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let sql = "INSERT INTO service_drift (request_id, checked_at, changes) VALUES ($1, $2, $3)
                   ON CONFLICT (request_id) DO UPDATE
                   SET checked_at = excluded.checked_at, changes = excluded.changes";
        on_pool!(self, pool => sqlx::query(sql)
            .bind(request_id)
            .bind(checked_at)
            .bind(Json(changes))
            .execute(pool)
            .await
            .map(drop)?);
        Ok(())
    }

    /// How many jobs are in each state, for the queue-depth gauge.
    pub async fn job_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let sql = "SELECT state, COUNT(*) FROM jobs GROUP BY state ORDER BY state";
        Ok(on_pool!(self, pool => sqlx::query_as(sql).fetch_all(pool).await?))
    }

    /// The latest drift check of a service, if any: when, and the changes it found.
    pub async fn drift(
        &self,
        request_id: Uuid,
    ) -> Result<Option<(DateTime<Utc>, serde_json::Value)>, StoreError> {
        let sql = "SELECT checked_at, changes FROM service_drift WHERE request_id = $1";
        let row: Option<(DateTime<Utc>, Json<serde_json::Value>)> = on_pool!(self, pool => sqlx::query_as(sql).bind(request_id).fetch_optional(pool).await?);
        Ok(row.map(|(at, changes)| (at, changes.0)))
    }

    /// Jobs queued or running: the queue depth.
    pub async fn active_jobs(&self) -> Result<i64, StoreError> {
        let sql = "SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running')";
        Ok(on_pool!(self, pool => sqlx::query_scalar(sql).fetch_one(pool).await?))
    }
}

impl Tx {
    /// Queues a job for a request, due at once.
    #[tracing::instrument(skip_all)]
    pub async fn enqueue_job(
        &mut self,
        request_id: Uuid,
        kind: JobKind,
    ) -> Result<Job, StoreError> {
        let sql = format!(
            "INSERT INTO jobs (id, request_id, kind, state, attempts, next_run_at, created_at,
                               updated_at)
             VALUES ($1, $2, $3, 'queued', 0, $4, $4, $4)
             RETURNING {JOB_COLUMNS}"
        );
        let row = on_tx!(self, conn => sqlx::query_as::<_, Row>(&sql)
            .bind(Uuid::new_v4())
            .bind(request_id)
            .bind(kind.as_str())
            .bind(Utc::now())
            .fetch_one(&mut **conn)
            .await?);
        row.try_into()
    }

    /// Records a finished step, if `owner` still holds the job's lease. False (nothing
    /// written) when the lease was lost: another process has the job now.
    #[tracing::instrument(skip_all)]
    pub async fn finish_job_step(
        &mut self,
        job_id: Uuid,
        owner: &str,
        step: &str,
        detail: &serde_json::Value,
    ) -> Result<bool, StoreError> {
        let now = Utc::now();
        let held = "UPDATE jobs SET updated_at = $1
                    WHERE id = $2 AND lease_owner = $3 AND state = 'running' AND lease_until > $1";
        let insert = "INSERT INTO job_steps (job_id, step, finished_at, detail)
                      VALUES ($1, $2, $3, $4) ON CONFLICT (job_id, step) DO NOTHING";
        on_tx!(self, conn => {
            let affected = sqlx::query(held)
                .bind(now)
                .bind(job_id)
                .bind(owner)
                .execute(&mut **conn)
                .await?
                .rows_affected();
            if affected != 1 {
                return Ok(false);
            }
            sqlx::query(insert)
                .bind(job_id)
                .bind(step)
                .bind(now)
                .bind(Json(detail))
                .execute(&mut **conn)
                .await?;
        });
        Ok(true)
    }

    /// Ends `owner`'s run of a job: `done`, `failed` (with the error), or back to `queued`
    /// for a retry at `retry_at`. False when the lease was lost.
    #[tracing::instrument(skip_all)]
    pub async fn end_job_run(
        &mut self,
        job_id: Uuid,
        owner: &str,
        state: JobState,
        error: Option<&str>,
        retry_at: Option<DateTime<Utc>>,
    ) -> Result<bool, StoreError> {
        let now = Utc::now();
        let sql =
            "UPDATE jobs SET state = $1, last_error = $2, next_run_at = COALESCE($3, next_run_at),
                                   lease_owner = NULL, lease_until = NULL, updated_at = $4
                   WHERE id = $5 AND lease_owner = $6 AND state = 'running'";
        let affected = on_tx!(self, conn => sqlx::query(sql)
            .bind(state.as_str())
            .bind(error)
            .bind(retry_at)
            .bind(now)
            .bind(job_id)
            .bind(owner)
            .execute(&mut **conn)
            .await?
            .rows_affected());
        Ok(affected == 1)
    }

    /// Makes a request's queued jobs due now: what they wait for has happened.
    pub async fn wake_jobs(&mut self, request_id: Uuid) -> Result<(), StoreError> {
        let sql = "UPDATE jobs SET next_run_at = $1 WHERE request_id = $2 AND state = 'queued'";
        self.update_now(sql, request_id).await.map(drop)
    }

    /// An admin's retry of a failed job: queued again, due now, attempts counted afresh.
    pub async fn retry_job(&mut self, job_id: Uuid) -> Result<bool, StoreError> {
        let sql =
            "UPDATE jobs SET state = 'queued', attempts = 0, next_run_at = $1, updated_at = $1
                   WHERE id = $2 AND state IN ('failed', 'cancelled')";
        Ok(self.update_now(sql, job_id).await? == 1)
    }

    /// An admin's cancellation of a job that is not running.
    pub async fn cancel_job(&mut self, job_id: Uuid) -> Result<bool, StoreError> {
        let sql = "UPDATE jobs SET state = 'cancelled', updated_at = $1
                   WHERE id = $2 AND state IN ('queued', 'failed')";
        Ok(self.update_now(sql, job_id).await? == 1)
    }

    /// Runs `sql` with `$1` the current time and `$2` `id`; the rows it changed.
    async fn update_now(&mut self, sql: &str, id: Uuid) -> Result<u64, StoreError> {
        Ok(on_tx!(self, conn => sqlx::query(sql)
            .bind(Utc::now())
            .bind(id)
            .execute(&mut **conn)
            .await?
            .rows_affected()))
    }
}
