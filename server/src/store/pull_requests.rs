//! Pull requests meshport opened in the GitOps repository and where each stands, and the webhook
//! deliveries already applied, with the stored vocabulary of a pull request: its
//! [`PullRequestKind`] and [`PrState`]. State changes are `Tx` methods so the audit event
//! recording a change is written in the same transaction.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Store, StoreError, Tx, on_pool, on_tx};

/// What a pull request does to the GitOps repository: onboarding adds the service's folder,
/// offboarding removes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PullRequestKind {
    Onboarding,
    Offboarding,
    /// Restart delivery: the pod template's secret versions changed after rotations.
    Rollout,
}

impl PullRequestKind {
    /// The stable name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Onboarding => "onboarding",
            Self::Offboarding => "offboarding",
            Self::Rollout => "rollout",
        }
    }

    fn parse(text: &str) -> Result<Self, StoreError> {
        [Self::Onboarding, Self::Offboarding, Self::Rollout]
            .into_iter()
            .find(|k| k.as_str() == text)
            .ok_or_else(|| StoreError::Corrupt(format!("pull request kind `{text}`")))
    }
}

/// A kind equals its stored name.
impl PartialEq<&str> for PullRequestKind {
    fn eq(&self, name: &&str) -> bool {
        self.as_str() == *name
    }
}

/// Where a pull request stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrState {
    Open,
    Merged,
    Closed,
}

impl PrState {
    /// The stable name stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Merged => "merged",
            Self::Closed => "closed",
        }
    }

    /// The state named `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Open, Self::Merged, Self::Closed].into_iter().find(|s| s.as_str() == name)
    }

    fn parse(text: &str) -> Result<Self, StoreError> {
        Self::from_name(text)
            .ok_or_else(|| StoreError::Corrupt(format!("pull request state `{text}`")))
    }
}

/// A state equals its stored name.
impl PartialEq<&str> for PrState {
    fn eq(&self, name: &&str) -> bool {
        self.as_str() == *name
    }
}

/// A pull request meshport opened, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullRequestRecord {
    pub id: Uuid,
    /// The onboarding request it carries out.
    pub request_id: Uuid,
    /// Whether it adds the service's manifests or removes them.
    pub kind: PullRequestKind,
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
    /// The head commit the approval covers: the commit meshport pushed for the approved
    /// change, or a head a platform admin re-approved after others pushed to the branch.
    pub approved_head_sha: String,
    pub state: PrState,
    /// The commit that merged it into the base branch.
    pub merge_commit_sha: Option<String>,
    /// The branch's head when it was merged, as the forge reported it.
    pub merged_head_sha: Option<String>,
    /// It was merged with a head other than the approved one (commits pushed to the branch
    /// after approval): its request is not recorded as merged until an admin approves that head.
    pub changed_after_approval: bool,
    /// The forge's time of the state last applied (`updated_at` in its payloads), if it gave
    /// one: older reports are stale.
    pub remote_updated_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A pull request about to be stored as open.
#[derive(Clone, Debug)]
pub struct NewPullRequest<'a> {
    pub request_id: Uuid,
    pub kind: PullRequestKind,
    pub namespace: &'a str,
    pub service_name: &'a str,
    pub provider: &'a str,
    pub number: i64,
    pub url: &'a str,
    pub branch: &'a str,
    pub head_sha: &'a str,
}

/// What a merge left, recorded with the state (all `None`/false for other states).
#[derive(Clone, Debug, Default)]
pub struct MergedAs<'a> {
    /// The commit that merged it into the base branch.
    pub merge_commit_sha: Option<&'a str>,
    /// The branch's head that was merged.
    pub head_sha: Option<&'a str>,
    /// The merged head is not the approved one (or the forge did not say which it was).
    pub changed_after_approval: bool,
    /// The forge's time of the reported state, if it gave one.
    pub remote_updated_at: Option<DateTime<Utc>>,
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
    approved_head_sha: Option<String>,
    state: String,
    merge_commit_sha: Option<String>,
    merged_head_sha: Option<String>,
    changed_after_approval: bool,
    remote_updated_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<Row> for PullRequestRecord {
    type Error = StoreError;

    fn try_from(r: Row) -> Result<Self, StoreError> {
        Ok(Self {
            id: r.id,
            request_id: r.request_id,
            kind: PullRequestKind::parse(&r.kind)?,
            namespace: r.namespace,
            service_name: r.service_name,
            provider: r.provider,
            number: r.number,
            url: r.url,
            branch: r.branch,
            approved_head_sha: r.approved_head_sha.unwrap_or_else(|| r.head_sha.clone()),
            head_sha: r.head_sha,
            state: PrState::parse(&r.state)?,
            merge_commit_sha: r.merge_commit_sha,
            merged_head_sha: r.merged_head_sha,
            changed_after_approval: r.changed_after_approval,
            remote_updated_at: r.remote_updated_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

const COLUMNS: &str = "id, request_id, kind, namespace, service_name, provider, number, url, \
                       branch, head_sha, approved_head_sha, state, merge_commit_sha, \
                       merged_head_sha, changed_after_approval, remote_updated_at, created_at, \
                       updated_at";

impl Store {
    /// The pull request with this id, if any.
    #[tracing::instrument(skip_all)]
    pub async fn pull_request(&self, id: Uuid) -> Result<Option<PullRequestRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM pull_requests WHERE id = $1");
        let row = on_pool!(self, pool => sqlx::query_as::<_, Row>(&sql)
            .bind(id)
            .fetch_optional(pool)
            .await?);
        row.map(TryInto::try_into).transpose()
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
        row.map(TryInto::try_into).transpose()
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
        rows.into_iter().map(TryInto::try_into).collect()
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
        rows.into_iter().map(TryInto::try_into).collect()
    }
}

impl Tx {
    /// Stores a newly opened pull request; its approved head is the commit meshport pushed.
    #[tracing::instrument(skip_all)]
    pub async fn create_pull_request(
        &mut self,
        pr: &NewPullRequest<'_>,
    ) -> Result<PullRequestRecord, StoreError> {
        let sql = format!(
            "INSERT INTO pull_requests
                (id, request_id, kind, namespace, service_name, provider, number, url, branch,
                 head_sha, approved_head_sha, state, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, 'open', $11, $11)
             RETURNING {COLUMNS}"
        );
        let row = on_tx!(self, conn => sqlx::query_as::<_, Row>(&sql)
            .bind(Uuid::new_v4())
            .bind(pr.request_id)
            .bind(pr.kind.as_str())
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
        row.try_into()
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
        row.map(TryInto::try_into).transpose()
    }

    /// Moves a pull request from state `from` to `to`. Returns the updated record, or `None`,
    /// changing nothing, when it is no longer in `from`. A merge records the merge commit and
    /// the head that was merged; `changed_after_approval` flags a merged head other than the
    /// approved one.
    #[tracing::instrument(skip_all)]
    pub async fn set_pull_request_state(
        &mut self,
        id: Uuid,
        from: PrState,
        to: PrState,
        merged: &MergedAs<'_>,
    ) -> Result<Option<PullRequestRecord>, StoreError> {
        let sql = format!(
            "UPDATE pull_requests SET state = $1, merge_commit_sha = $2, merged_head_sha = $3,
                changed_after_approval = $4, updated_at = $5,
                remote_updated_at = COALESCE($8, remote_updated_at)
             WHERE id = $6 AND state = $7
             RETURNING {COLUMNS}"
        );
        let row = on_tx!(self, conn => sqlx::query_as::<_, Row>(&sql)
            .bind(to.as_str())
            .bind(merged.merge_commit_sha)
            .bind(merged.head_sha)
            .bind(merged.changed_after_approval)
            .bind(Utc::now())
            .bind(id)
            .bind(from.as_str())
            .bind(merged.remote_updated_at)
            .fetch_optional(&mut **conn)
            .await?);
        row.map(TryInto::try_into).transpose()
    }

    /// Records `head` as approved for a pull request that was merged with it after a change
    /// the approval did not cover, and clears the flag. Returns the updated record, or `None`,
    /// changing nothing, when the pull request is not flagged or was merged with another head.
    #[tracing::instrument(skip_all)]
    pub async fn approve_merged_head(
        &mut self,
        id: Uuid,
        head: &str,
    ) -> Result<Option<PullRequestRecord>, StoreError> {
        let sql = format!(
            "UPDATE pull_requests SET approved_head_sha = $1, changed_after_approval = $2,
                updated_at = $3
             WHERE id = $4 AND changed_after_approval = $5 AND merged_head_sha = $1
             RETURNING {COLUMNS}"
        );
        let row = on_tx!(self, conn => sqlx::query_as::<_, Row>(&sql)
            .bind(head)
            .bind(false)
            .bind(Utc::now())
            .bind(id)
            .bind(true)
            .fetch_optional(&mut **conn)
            .await?);
        row.map(TryInto::try_into).transpose()
    }

    /// Remembers a webhook delivery. Returns false when it was seen before (a replay).
    #[tracing::instrument(skip_all)]
    pub async fn record_webhook_delivery(
        &mut self,
        provider: &str,
        delivery_id: &str,
        body_sha256: &str,
    ) -> Result<bool, StoreError> {
        // No conflict target: a repeated delivery id and a repeated body both do nothing.
        let sql = "INSERT INTO webhook_deliveries (provider, delivery_id, received_at, body_sha256)
                   VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING";
        let inserted = on_tx!(self, conn => sqlx::query(sql)
            .bind(provider)
            .bind(delivery_id)
            .bind(Utc::now())
            .bind(body_sha256)
            .execute(&mut **conn)
            .await?
            .rows_affected());
        Ok(inserted == 1)
    }
}
