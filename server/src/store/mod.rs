//! meshport's database: SQLite (the embedded default) or PostgreSQL (production), chosen by the
//! URL scheme. Each backend has its own migrations in `migrations/<backend>/`; the queries are
//! written once in SQL both accept (`$n` parameters, `RETURNING`, `ON CONFLICT`) and run on
//! whichever pool is configured.

mod alert_states;
mod audit;
mod fleet;
mod jobs;
mod notifications;
mod pull_requests;
mod request_rows;
mod rotations;
mod services;
mod tokens;
mod users;
mod vault_objects;

use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

pub use audit::{AuditEvent, Checkpoint, EvidenceRequest};
pub use fleet::{Adoption, Rendering, UpgradeBatchRecord, UpgradeChangeRecord};
pub use jobs::{Job, JobKind, JobState, JobStep};
pub use notifications::{NewNotification, Notification, NotificationChannel, Recipient};
pub use pull_requests::{MergedAs, NewPullRequest, PrState, PullRequestKind, PullRequestRecord};
pub use request_rows::{NewOnboardingRequest, OnboardingRequestRecord, RequestFilter};
pub use rotations::{RolloutRecord, RotationTrigger};
pub use services::{NewService, ServiceRecord};
pub use tokens::{ApiTokenRecord, NewApiToken, TokenAccess};
pub use users::{NewUser, SessionAccess, User, UserOverview, UserSession};
pub use vault_objects::VaultObjectRecord;

/// Runs `$body` with `$pool` bound to the configured backend's pool. The body is compiled once
/// per backend, so the same query code serves both.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store {
            $crate::store::Store::Sqlite($pool) => $body,
            $crate::store::Store::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// Runs `$body` with `$conn` bound to the transaction's connection (use `&mut **$conn` as the
/// executor), once per backend like [`on_pool!`].
macro_rules! on_tx {
    ($tx:expr, $conn:ident => $body:expr) => {
        match $tx {
            $crate::store::Tx::Sqlite($conn) => $body,
            $crate::store::Tx::Postgres($conn) => $body,
        }
    };
}
pub(crate) use on_tx;

/// A database transaction. A change and the audit event recording it are written in one, so
/// neither exists without the other.
#[derive(Debug)]
pub enum Tx {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

impl Tx {
    /// Makes every change of the transaction permanent.
    pub async fn commit(self) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(tx) => tx.commit().await?,
            Self::Postgres(tx) => tx.commit().await?,
        }
        Ok(())
    }
}

/// A connection pool to meshport's database.
#[derive(Clone, Debug)]
pub enum Store {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The database backends meshport supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "unsupported database URL scheme `{0}`: use `sqlite://PATH` or `postgres://USER@HOST/DB`"
    )]
    UnsupportedScheme(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("stored value is invalid: {0}")]
    Corrupt(String),
    #[error("{service} has a change set in flight, or is not live: one change set at a time")]
    ServiceBusy { service: String },
    #[error("a change set cannot move from `{from}` to `{to}`: the lifecycle has no such step")]
    Transition { from: app::onboarding::RequestStatus, to: app::onboarding::RequestStatus },
}

impl StoreError {
    /// Whether a unique constraint refused the write.
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, Self::Database(error) if error.as_database_error().is_some_and(|e| e.is_unique_violation()))
    }
}

impl Store {
    /// The statement that leases the oldest due row of the queue `table` (queued and due, or
    /// running with an expired lease) to `$1` until `$2` at time `$3`, counts the attempt and
    /// returns `columns`. The job engine and the notification sender share it. PostgreSQL
    /// skips a row another engine is claiming; SQLite writes one at a time anyway.
    pub(crate) fn lease_statement(&self, table: &str, columns: &str) -> String {
        let skip_locked = match self {
            Store::Postgres(_) => " FOR UPDATE SKIP LOCKED",
            Store::Sqlite(_) => "",
        };
        format!(
            "UPDATE {table} SET state = 'running', lease_owner = $1, lease_until = $2,
                                attempts = attempts + 1, updated_at = $3
             WHERE id = (SELECT id FROM {table}
                         WHERE (state = 'queued' AND next_run_at <= $3)
                            OR (state = 'running' AND lease_until < $3)
                         ORDER BY next_run_at, id LIMIT 1{skip_locked})
             RETURNING {columns}"
        )
    }

    /// Connects to the database the URL names. A SQLite file is created if missing.
    #[tracing::instrument(skip_all)]
    pub async fn connect(url: &SecretString) -> Result<Self, StoreError> {
        let url = url.expose_secret();
        let scheme = url.split_once(':').map_or(url, |(scheme, _)| scheme);
        match scheme {
            "sqlite" => {
                let options = SqliteConnectOptions::from_str(url)?
                    .create_if_missing(true)
                    .foreign_keys(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .busy_timeout(Duration::from_secs(5))
                    // Each connection keeps its own page cache (2 MB by default), a copy of what
                    // the kernel's page cache holds anyway: 512 KB each keeps an idle meshport's
                    // eight connections from holding 16 MB after a status refresh.
                    .pragma("cache_size", "-512");
                let pool =
                    SqlitePoolOptions::new().max_connections(8).connect_with(options).await?;
                Ok(Self::Sqlite(pool))
            }
            "postgres" | "postgresql" => {
                let pool = PgPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(5))
                    .connect(url)
                    .await?;
                Ok(Self::Postgres(pool))
            }
            other => Err(StoreError::UnsupportedScheme(other.to_owned())),
        }
    }

    /// Which backend this store talks to.
    pub fn backend(&self) -> Backend {
        match self {
            Self::Sqlite(_) => Backend::Sqlite,
            Self::Postgres(_) => Backend::Postgres,
        }
    }

    /// Brings the schema up to date. Safe to run concurrently: sqlx takes a lock on PostgreSQL.
    #[tracing::instrument(skip_all)]
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(pool) => sqlx::migrate!("../migrations/sqlite").run(pool).await?,
            Self::Postgres(pool) => sqlx::migrate!("../migrations/postgres").run(pool).await?,
        }
        Ok(())
    }

    /// Starts a transaction.
    pub async fn begin(&self) -> Result<Tx, StoreError> {
        Ok(match self {
            Self::Sqlite(pool) => Tx::Sqlite(pool.begin().await?),
            Self::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }

    /// Checks that the database answers.
    #[tracing::instrument(skip_all)]
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(drop)?);
        Ok(())
    }

    /// Closes every connection, waiting for those in use.
    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await);
    }
}
