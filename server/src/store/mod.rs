//! meshport's database: SQLite (the embedded default) or PostgreSQL (production), chosen by the
//! URL scheme. Each backend has its own migrations in `migrations/<backend>/`; the queries are
//! written once in SQL both accept (`$n` parameters, `RETURNING`, `ON CONFLICT`) and run on
//! whichever pool is configured.

mod requests;
mod tokens;
mod users;

use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

pub use requests::{NewOnboardingRequest, OnboardingRequestRecord, RequestFilter};
pub use tokens::{ApiTokenRecord, NewApiToken};
pub use users::{NewUser, User};

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
}

impl Store {
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
                    .busy_timeout(Duration::from_secs(5));
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
