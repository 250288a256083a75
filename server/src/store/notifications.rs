//! The notification queue: messages queued in the transaction of their event (so an event and
//! its notifications exist together), claimed with a lease like jobs (PostgreSQL skips rows
//! other processes have locked), retried with back-off, and people's muted kinds.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Store, StoreError, Tx, on_pool, on_tx};

/// Where a notification goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotificationChannel {
    /// E-mail over SMTP to the recipient's address.
    Email,
    /// A configured Slack-compatible webhook, named by the recipient.
    Webhook,
}

impl NotificationChannel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Webhook => "webhook",
        }
    }
}

/// A rendered notification to queue. Never holds a secret value.
#[derive(Clone, Debug)]
pub struct NewNotification<'a> {
    /// Names the event: a second notification of the same event to the same recipient on the
    /// same channel is not queued.
    pub event_key: &'a str,
    pub kind: &'a str,
    pub channel: NotificationChannel,
    /// An e-mail address, or a webhook's name (`platform`, `team:<name>`).
    pub recipient: &'a str,
    pub user_id: Option<Uuid>,
    pub subject: &'a str,
    pub body_text: &'a str,
    pub body_html: &'a str,
    /// The page that acts on it.
    pub link: &'a str,
}

/// A stored notification.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Notification {
    pub id: Uuid,
    pub event_key: String,
    pub kind: String,
    pub channel: String,
    pub recipient: String,
    pub user_id: Option<Uuid>,
    pub subject: String,
    pub body_text: String,
    pub body_html: String,
    pub link: String,
    /// `queued`, `running`, `sent` or `failed`.
    pub state: String,
    /// Delivery attempts started so far (the current one included).
    pub attempts: i32,
    pub next_run_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// Someone to tell by e-mail.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Recipient {
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
}

const COLUMNS: &str = "id, event_key, kind, channel, recipient, user_id, subject, body_text, \
                       body_html, link, state, attempts, next_run_at, last_error, created_at, \
                       updated_at, sent_at";

/// Recipients who have not muted the kind `$1` and are not disabled.
const NOT_MUTED: &str = "u.disabled_at IS NULL AND NOT EXISTS (
    SELECT 1 FROM notification_mutes m WHERE m.user_id = u.id AND m.kind = $1)";

impl Store {
    /// Takes the oldest due notification (queued and due, or running with an expired lease)
    /// for `owner` until `lease_until`, and counts the attempt. `None` when there is none.
    #[tracing::instrument(skip_all)]
    pub async fn claim_notification(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<Notification>, StoreError> {
        let sql = self.lease_statement("notifications", COLUMNS);
        Ok(on_pool!(self, pool => sqlx::query_as::<_, Notification>(&sql)
            .bind(owner)
            .bind(lease_until)
            .bind(now)
            .fetch_optional(pool)
            .await?))
    }

    /// Ends `owner`'s delivery attempt: `sent`, `failed` (with the error), or back to `queued`
    /// for a retry at `retry_at`. False when the lease was lost meanwhile.
    #[tracing::instrument(skip_all)]
    pub async fn end_notification_attempt(
        &self,
        id: Uuid,
        owner: &str,
        state: &str,
        error: Option<&str>,
        retry_at: Option<DateTime<Utc>>,
    ) -> Result<bool, StoreError> {
        let now = Utc::now();
        let sql = "UPDATE notifications
                   SET state = $1, last_error = $2, next_run_at = COALESCE($3, next_run_at),
                       lease_owner = NULL, lease_until = NULL, updated_at = $4,
                       sent_at = CASE WHEN $1 = 'sent' THEN $4 ELSE sent_at END
                   WHERE id = $5 AND lease_owner = $6 AND state = 'running'";
        let affected = on_pool!(self, pool => sqlx::query(sql)
            .bind(state)
            .bind(error)
            .bind(retry_at)
            .bind(now)
            .bind(id)
            .bind(owner)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(affected == 1)
    }

    /// Every notification, oldest first (tests and support).
    pub async fn notifications(&self) -> Result<Vec<Notification>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM notifications ORDER BY created_at, id");
        Ok(on_pool!(self, pool => sqlx::query_as::<_, Notification>(&sql).fetch_all(pool).await?))
    }

    /// Deliveries that gave up, newest first.
    pub async fn failed_notifications(&self, limit: i64) -> Result<Vec<Notification>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM notifications WHERE state = 'failed'
             ORDER BY updated_at DESC, id LIMIT $1"
        );
        Ok(on_pool!(self, pool => sqlx::query_as::<_, Notification>(&sql)
            .bind(limit)
            .fetch_all(pool)
            .await?))
    }

    /// The kinds `user_id` muted.
    pub async fn muted_kinds(&self, user_id: Uuid) -> Result<Vec<String>, StoreError> {
        let sql = "SELECT kind FROM notification_mutes WHERE user_id = $1 ORDER BY kind";
        Ok(on_pool!(self, pool => sqlx::query_scalar(sql).bind(user_id).fetch_all(pool).await?))
    }

    /// Mutes or unmutes a kind for `user_id`.
    pub async fn set_muted(
        &self,
        user_id: Uuid,
        kind: &str,
        muted: bool,
    ) -> Result<(), StoreError> {
        if muted {
            let sql =
                "INSERT INTO notification_mutes (user_id, kind, created_at) VALUES ($1, $2, $3)
                       ON CONFLICT (user_id, kind) DO NOTHING";
            on_pool!(self, pool => sqlx::query(sql)
                .bind(user_id)
                .bind(kind)
                .bind(Utc::now())
                .execute(pool)
                .await
                .map(drop)?);
        } else {
            let sql = "DELETE FROM notification_mutes WHERE user_id = $1 AND kind = $2";
            on_pool!(self, pool => sqlx::query(sql)
                .bind(user_id)
                .bind(kind)
                .execute(pool)
                .await
                .map(drop)?);
        }
        Ok(())
    }

    /// Change sets waiting for a decision that `admin` may take: not their own submissions.
    pub async fn decisions_waiting_for(&self, admin: Uuid) -> Result<i64, StoreError> {
        let sql = "SELECT COUNT(*) FROM onboarding_requests
                   WHERE status = 'submitted' AND requested_by <> $1";
        Ok(on_pool!(self, pool => sqlx::query_scalar(sql).bind(admin).fetch_one(pool).await?))
    }
}

impl Tx {
    /// Queues a notification, due now; nothing when the same event already queued one for
    /// this recipient and channel.
    #[tracing::instrument(skip_all)]
    pub async fn queue_notification(
        &mut self,
        notification: &NewNotification<'_>,
    ) -> Result<(), StoreError> {
        let sql = "INSERT INTO notifications
                (id, event_key, kind, channel, recipient, user_id, subject, body_text, body_html,
                 link, state, attempts, next_run_at, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'queued', 0, $11, $11, $11)
             ON CONFLICT (event_key, channel, recipient) DO NOTHING";
        on_tx!(self, conn => sqlx::query(sql)
            .bind(Uuid::new_v4())
            .bind(notification.event_key)
            .bind(notification.kind)
            .bind(notification.channel.as_str())
            .bind(notification.recipient)
            .bind(notification.user_id)
            .bind(notification.subject)
            .bind(notification.body_text)
            .bind(notification.body_html)
            .bind(notification.link)
            .bind(Utc::now())
            .execute(&mut **conn)
            .await
            .map(drop)?);
        Ok(())
    }

    /// Platform admins (roles as the provider last confirmed them) who have not muted `kind`.
    pub async fn admin_recipients(&mut self, kind: &str) -> Result<Vec<Recipient>, StoreError> {
        let sql = format!(
            "SELECT u.id, u.email, u.display_name FROM users u
             WHERE {NOT_MUTED} AND (',' || u.roles || ',') LIKE '%,platform-admin,%'
             ORDER BY u.email"
        );
        Ok(on_tx!(self, conn => sqlx::query_as::<_, Recipient>(&sql)
            .bind(kind)
            .fetch_all(&mut **conn)
            .await?))
    }

    /// Members of `team` who have not muted `kind` (teams as the provider last confirmed them).
    pub async fn team_recipients(
        &mut self,
        team: &str,
        kind: &str,
    ) -> Result<Vec<Recipient>, StoreError> {
        let sql = format!(
            "SELECT u.id, u.email, u.display_name FROM users u
             WHERE {NOT_MUTED} AND (',' || u.teams || ',') LIKE $2 ORDER BY u.email"
        );
        let pattern = format!("%,{team},%");
        Ok(on_tx!(self, conn => sqlx::query_as::<_, Recipient>(&sql)
            .bind(kind)
            .bind(pattern)
            .fetch_all(&mut **conn)
            .await?))
    }

    /// The user `id`, unless disabled or they muted `kind`.
    pub async fn user_recipient(
        &mut self,
        id: Uuid,
        kind: &str,
    ) -> Result<Option<Recipient>, StoreError> {
        let sql = format!(
            "SELECT u.id, u.email, u.display_name FROM users u WHERE {NOT_MUTED} AND u.id = $2"
        );
        Ok(on_tx!(self, conn => sqlx::query_as::<_, Recipient>(&sql)
            .bind(kind)
            .bind(id)
            .fetch_optional(&mut **conn)
            .await?))
    }
}
