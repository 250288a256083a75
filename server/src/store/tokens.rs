//! API tokens as stored: only their hash, their owner, roles and lifetime.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Store, StoreError, Tx, on_pool, on_tx};

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

/// How precisely a token's last use is recorded.
const LAST_USED_RESOLUTION: chrono::TimeDelta = chrono::TimeDelta::minutes(1);

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

    /// The live (not revoked, not expired) token with this hash, marked as used now. The mark
    /// is written at most once a minute per token: a write per API call would serialise every
    /// call on SQLite's single writer.
    #[tracing::instrument(skip_all)]
    pub async fn use_api_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<ApiTokenRecord>, StoreError> {
        let now = Utc::now();
        let select = format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens
             WHERE token_hash = $1 AND revoked_at IS NULL AND expires_at > $2"
        );
        let record = on_pool!(self, pool => sqlx::query_as::<_, ApiTokenRecord>(&select)
            .bind(token_hash)
            .bind(now)
            .fetch_optional(pool)
            .await?);
        let Some(mut record) = record else { return Ok(None) };
        if record.last_used_at.is_none_or(|at| now - at >= LAST_USED_RESOLUTION) {
            let update = "UPDATE api_tokens SET last_used_at = $1 WHERE id = $2";
            on_pool!(self, pool => sqlx::query(update)
                .bind(now)
                .bind(record.id)
                .execute(pool)
                .await
                .map(drop)?);
            record.last_used_at = Some(now);
        }
        Ok(Some(record))
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
