//! Pull requests meshport opened in the GitOps repository and where each stands, and the webhook
//! deliveries already applied. State changes are `Tx` methods so the audit event recording a
//! change is written in the same transaction.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Store, StoreError, Tx, on_pool, on_tx};

/// A pull request meshport opened, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullRequestRecord {
    pub id: Uuid,
    /// The onboarding request it carries out.
    pub request_id: Uuid,
    /// `onboarding` (adds the service's manifests) or `offboarding` (removes them).
    pub kind: String,
    pub namespace: String,
    pub service_name: String,
    /// `local`, `github`, `gitea` or `gitlab`.
    pub provider: String,
    /// The forge's number (GitLab: the merge request's `iid`).
    pub number: i64,
    /// Where a person reviews it.
    pub url: String,
    pub branch: String,
    /// The commit meshport pushed.
    pub head_sha: String,
    /// `open`, `merged` or `closed`.
    pub state: String,
    /// The commit that merged it into the base branch.
    pub merge_commit_sha: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A pull request about to be stored as open.
#[derive(Clone, Debug)]
pub struct NewPullRequest<'a> {
    pub request_id: Uuid,
    pub kind: &'a str,
    pub namespace: &'a str,
    pub service_name: &'a str,
    pub provider: &'a str,
    pub number: i64,
    pub url: &'a str,
    pub branch: &'a str,
    pub head_sha: &'a str,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    request_id: Uuid,
    kind: String,
    namespace: String,
    service_name: String,
    provider: String,
    number: i64,
    url: String,
    branch: String,
    head_sha: String,
    state: String,
    merge_commit_sha: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<Row> for PullRequestRecord {
    fn from(r: Row) -> Self {
        Self {
            id: r.id,
            request_id: r.request_id,
            kind: r.kind,
            namespace: r.namespace,
            service_name: r.service_name,
            provider: r.provider,
            number: r.number,
            url: r.url,
            branch: r.branch,
            head_sha: r.head_sha,
            state: r.state,
            merge_commit_sha: r.merge_commit_sha,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

const COLUMNS: &str = "id, request_id, kind, namespace, service_name, provider, number, url, \
                       branch, head_sha, state, merge_commit_sha, created_at, updated_at";

impl Store {
    /// The pull request with this id, if any.
    #[tracing::instrument(skip_all)]
    pub async fn pull_request(&self, id: Uuid) -> Result<Option<PullRequestRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM pull_requests WHERE id = $1");
        let row = on_pool!(self, pool => sqlx::query_as::<_, Row>(&sql)
            .bind(id)
            .fetch_optional(pool)
            .await?);
        Ok(row.map(Into::into))
    }

    /// The pull request on this branch, if meshport opened one.
    #[tracing::instrument(skip_all)]
    pub async fn pull_request_on_branch(
        &self,
        branch: &str,
    ) -> Result<Option<PullRequestRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM pull_requests WHERE branch = $1");
        let row = on_pool!(self, pool => sqlx::query_as::<_, Row>(&sql)
            .bind(branch)
            .fetch_optional(pool)
            .await?);
        Ok(row.map(Into::into))
    }

    /// The pull requests of a request, oldest first: what the request page shows.
    #[tracing::instrument(skip_all)]
    pub async fn pull_requests_of(
        &self,
        request_id: Uuid,
    ) -> Result<Vec<PullRequestRecord>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM pull_requests WHERE request_id = $1 ORDER BY created_at, id"
        );
        let rows = on_pool!(self, pool => sqlx::query_as::<_, Row>(&sql)
            .bind(request_id)
            .fetch_all(pool)
            .await?);
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// The open pull requests of a provider, which polling asks the forge about.
    #[tracing::instrument(skip_all)]
    pub async fn open_pull_requests(
        &self,
        provider: &str,
    ) -> Result<Vec<PullRequestRecord>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM pull_requests WHERE provider = $1 AND state = 'open'
             ORDER BY created_at, id"
        );
        let rows = on_pool!(self, pool => sqlx::query_as::<_, Row>(&sql)
            .bind(provider)
            .fetch_all(pool)
            .await?);
        Ok(rows.into_iter().map(Into::into).collect())
    }
}

impl Tx {
    /// Stores a newly opened pull request.
    #[tracing::instrument(skip_all)]
    pub async fn create_pull_request(
        &mut self,
        pr: &NewPullRequest<'_>,
    ) -> Result<PullRequestRecord, StoreError> {
        let sql = format!(
            "INSERT INTO pull_requests
                (id, request_id, kind, namespace, service_name, provider, number, url, branch,
                 head_sha, state, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'open', $11, $11)
             RETURNING {COLUMNS}"
        );
        let row = on_tx!(self, conn => sqlx::query_as::<_, Row>(&sql)
            .bind(Uuid::new_v4())
            .bind(pr.request_id)
            .bind(pr.kind)
            .bind(pr.namespace)
            .bind(pr.service_name)
            .bind(pr.provider)
            .bind(pr.number)
            .bind(pr.url)
            .bind(pr.branch)
            .bind(pr.head_sha)
            .bind(Utc::now())
            .fetch_one(&mut **conn)
            .await?);
        Ok(row.into())
    }

    /// The pull request `provider`/`number`, locked for an update where the database can.
    #[tracing::instrument(skip_all)]
    pub async fn pull_request_for_update(
        &mut self,
        provider: &str,
        number: i64,
    ) -> Result<Option<PullRequestRecord>, StoreError> {
        // SQLite has no row locks; its writer lock is taken at the first write instead, and the
        // update below checks the state it read.
        let lock = match self {
            Tx::Sqlite(_) => "",
            Tx::Postgres(_) => " FOR UPDATE",
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM pull_requests WHERE provider = $1 AND number = $2{lock}"
        );
        let row = on_tx!(self, conn => sqlx::query_as::<_, Row>(&sql)
            .bind(provider)
            .bind(number)
            .fetch_optional(&mut **conn)
            .await?);
        Ok(row.map(Into::into))
    }

    /// Moves a pull request from state `from` to `to`. Returns the updated record, or `None`,
    /// changing nothing, when it is no longer in `from`.
    #[tracing::instrument(skip_all)]
    pub async fn set_pull_request_state(
        &mut self,
        id: Uuid,
        from: &str,
        to: &str,
        merge_commit_sha: Option<&str>,
    ) -> Result<Option<PullRequestRecord>, StoreError> {
        let sql = format!(
            "UPDATE pull_requests SET state = $1, merge_commit_sha = $2, updated_at = $3
             WHERE id = $4 AND state = $5
             RETURNING {COLUMNS}"
        );
        let row = on_tx!(self, conn => sqlx::query_as::<_, Row>(&sql)
            .bind(to)
            .bind(merge_commit_sha)
            .bind(Utc::now())
            .bind(id)
            .bind(from)
            .fetch_optional(&mut **conn)
            .await?);
        Ok(row.map(Into::into))
    }

    /// Remembers a webhook delivery. Returns false when it was seen before (a replay).
    #[tracing::instrument(skip_all)]
    pub async fn record_webhook_delivery(
        &mut self,
        provider: &str,
        delivery_id: &str,
    ) -> Result<bool, StoreError> {
        let sql = "INSERT INTO webhook_deliveries (provider, delivery_id, received_at)
                   VALUES ($1, $2, $3) ON CONFLICT (provider, delivery_id) DO NOTHING";
        let inserted = on_tx!(self, conn => sqlx::query(sql)
            .bind(provider)
            .bind(delivery_id)
            .bind(Utc::now())
            .execute(&mut **conn)
            .await?
            .rows_affected());
        Ok(inserted == 1)
    }
}
