//! API tokens as stored: only their hash, their owner, roles and lifetime.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::users::USER_COLUMNS;
use super::{Store, StoreError, Tx, User, on_pool, on_tx};

/// A stored API token (never the token itself).
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ApiTokenRecord {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    /// Comma-separated role names.
    pub roles: String,
    /// Comma-separated team names.
    pub teams: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A live token as a request needs it, with its owner as stored now.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct TokenAccess {
    #[sqlx(flatten)]
    pub user: User,
    pub token_id: Uuid,
    /// Comma-separated role names.
    pub token_roles: String,
    /// Comma-separated team names.
    pub token_teams: String,
    pub token_expires_at: DateTime<Utc>,
}

/// A token about to be stored.
#[derive(Clone, Debug)]
pub struct NewApiToken<'a> {
    pub user_id: Uuid,
    pub name: &'a str,
    /// SHA-256 of the token, base64url.
    pub token_hash: &'a str,
    pub roles: &'a str,
    pub teams: &'a str,
    pub expires_at: DateTime<Utc>,
}

const TOKEN_COLUMNS: &str =
    "id, user_id, name, roles, teams, created_at, expires_at, revoked_at, last_used_at";

impl Store {
    /// The user's tokens, newest first, revoked ones included.
    #[tracing::instrument(skip_all)]
    pub async fn api_tokens_of(&self, user_id: Uuid) -> Result<Vec<ApiTokenRecord>, StoreError> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE user_id = $1 ORDER BY created_at DESC, id"
        );
        let records = on_pool!(self, pool => sqlx::query_as::<_, ApiTokenRecord>(&sql)
            .bind(user_id)
            .fetch_all(pool)
            .await?);
        Ok(records)
    }

    /// What a request with a token needs, in one indexed read: the live token's roles, teams
    /// and expiry with its owner as stored now; none for an unknown or revoked token.
    #[tracing::instrument(skip_all)]
    pub async fn api_token_access(
        &self,
        token_hash: &str,
    ) -> Result<Option<TokenAccess>, StoreError> {
        let sql = format!(
            "SELECT {USER_COLUMNS}, t.id AS token_id, t.roles AS token_roles,
                    t.teams AS token_teams, t.expires_at AS token_expires_at
             FROM api_tokens t JOIN users u ON u.id = t.user_id
             WHERE t.token_hash = $1 AND t.revoked_at IS NULL"
        );
        Ok(on_pool!(self, pool => sqlx::query_as::<_, TokenAccess>(&sql)
            .bind(token_hash)
            .fetch_optional(pool)
            .await?))
    }

    /// Records that the token was used at `at` (never moving the mark back).
    #[tracing::instrument(skip_all)]
    pub async fn mark_api_token_used(&self, id: Uuid, at: DateTime<Utc>) -> Result<(), StoreError> {
        let sql = "UPDATE api_tokens SET last_used_at = $1
                   WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $1)";
        on_pool!(self, pool => sqlx::query(sql).bind(at).bind(id).execute(pool).await.map(drop)?);
        Ok(())
    }
}

impl Tx {
    /// Stores a new token.
    #[tracing::instrument(skip_all)]
    pub async fn create_api_token(
        &mut self,
        token: &NewApiToken<'_>,
    ) -> Result<ApiTokenRecord, StoreError> {
        let sql = format!(
            "INSERT INTO api_tokens
                (id, user_id, name, token_hash, roles, teams, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {TOKEN_COLUMNS}"
        );
        let record = on_tx!(self, conn => sqlx::query_as::<_, ApiTokenRecord>(&sql)
            .bind(Uuid::new_v4())
            .bind(token.user_id)
            .bind(token.name)
            .bind(token.token_hash)
            .bind(token.roles)
            .bind(token.teams)
            .bind(Utc::now())
            .bind(token.expires_at)
            .fetch_one(&mut **conn)
            .await?);
        Ok(record)
    }

    /// Revokes the user's token; false when they have no such live token.
    #[tracing::instrument(skip_all)]
    pub async fn revoke_api_token(&mut self, id: Uuid, user_id: Uuid) -> Result<bool, StoreError> {
        let sql = "UPDATE api_tokens SET revoked_at = $1
                   WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL";
        let affected = on_tx!(self, conn => sqlx::query(sql)
            .bind(Utc::now())
            .bind(id)
            .bind(user_id)
            .execute(&mut **conn)
            .await?
            .rows_affected());
        Ok(affected == 1)
    }
}
