//! People known to meshport: created or refreshed at each sign-in.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Store, StoreError, Tx, on_pool, on_tx};

/// A person who signed in at least once.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct User {
    pub id: Uuid,
    /// The identity provider that vouches for this person.
    pub issuer: String,
    /// The provider's stable identifier of this person (`sub`).
    pub subject: String,
    pub email: String,
    pub display_name: String,
    pub created_at: DateTime<Utc>,
    pub last_login_at: DateTime<Utc>,
    /// Roles at the latest sign-in, comma-separated.
    pub roles: String,
    /// Teams at the latest sign-in, comma-separated.
    pub teams: String,
    /// Set while the user may not sign in or act (by an admin, or found disabled at the
    /// provider).
    pub disabled_at: Option<DateTime<Utc>>,
    pub disabled_reason: Option<String>,
    /// When the provider last confirmed the user's groups.
    pub validated_at: Option<DateTime<Utc>>,
}

/// One sign-in's session as admins see it (never the session cookie).
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct UserSession {
    pub id: Uuid,
    pub user_id: Uuid,
    pub method: String,
    pub signed_in_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// What a request with a session needs to know, in one indexed read: the user as they stand
/// now and whether this session was revoked.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct SessionAccess {
    #[sqlx(flatten)]
    pub user: User,
    pub session_revoked_at: Option<DateTime<Utc>>,
}

/// A user with how many live sessions and tokens they hold, for the admins' list.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct UserOverview {
    #[sqlx(flatten)]
    pub user: User,
    pub live_sessions: i64,
    pub live_tokens: i64,
}

/// What a sign-in tells about a person.
#[derive(Clone, Debug)]
pub struct NewUser<'a> {
    pub issuer: &'a str,
    pub subject: &'a str,
    pub email: &'a str,
    pub display_name: &'a str,
}

pub(super) const USER_COLUMNS: &str = "u.id, u.issuer, u.subject, u.email, u.display_name, u.created_at, \
     u.last_login_at, u.roles, u.teams, u.disabled_at, u.disabled_reason, u.validated_at";
const SESSION_COLUMNS: &str = "id, user_id, method, signed_in_at, expires_at, revoked_at";

impl Store {
    /// The user with this id, if any.
    #[tracing::instrument(skip_all)]
    pub async fn user(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users u WHERE u.id = $1");
        let user = on_pool!(self, pool => sqlx::query_as::<_, User>(&sql)
            .bind(id)
            .fetch_optional(pool)
            .await?);
        Ok(user)
    }

    /// The session's user and whether the session was revoked; none for an unknown session.
    #[tracing::instrument(skip_all)]
    pub async fn session_access(&self, session: Uuid) -> Result<Option<SessionAccess>, StoreError> {
        let sql = format!(
            "SELECT {USER_COLUMNS}, s.revoked_at AS session_revoked_at
             FROM user_sessions s JOIN users u ON u.id = s.user_id WHERE s.id = $1"
        );
        let access = on_pool!(self, pool => sqlx::query_as::<_, SessionAccess>(&sql)
            .bind(session)
            .fetch_optional(pool)
            .await?);
        Ok(access)
    }

    /// Every user with their live session and token counts, by e-mail.
    #[tracing::instrument(skip_all)]
    pub async fn users(&self) -> Result<Vec<UserOverview>, StoreError> {
        let sql = format!(
            "SELECT {USER_COLUMNS},
               (SELECT COUNT(*) FROM user_sessions s
                 WHERE s.user_id = u.id AND s.revoked_at IS NULL AND s.expires_at > $1)
                 AS live_sessions,
               (SELECT COUNT(*) FROM api_tokens t
                 WHERE t.user_id = u.id AND t.revoked_at IS NULL AND t.expires_at > $1)
                 AS live_tokens
             FROM users u ORDER BY u.email, u.id"
        );
        let users = on_pool!(self, pool => sqlx::query_as::<_, UserOverview>(&sql)
            .bind(Utc::now())
            .fetch_all(pool)
            .await?);
        Ok(users)
    }

    /// The user's sessions, newest first, ended ones included.
    #[tracing::instrument(skip_all)]
    pub async fn sessions_of(&self, user_id: Uuid) -> Result<Vec<UserSession>, StoreError> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM user_sessions WHERE user_id = $1
             ORDER BY signed_in_at DESC, id"
        );
        let sessions = on_pool!(self, pool => sqlx::query_as::<_, UserSession>(&sql)
            .bind(user_id)
            .fetch_all(pool)
            .await?);
        Ok(sessions)
    }

    /// The user's sealed refresh token, if the provider gave one.
    #[tracing::instrument(skip_all)]
    pub async fn refresh_token_of(&self, user_id: Uuid) -> Result<Option<String>, StoreError> {
        let sql = "SELECT refresh_token FROM users WHERE id = $1";
        let token: Option<Option<String>> = on_pool!(self, pool => sqlx::query_scalar(sql)
            .bind(user_id)
            .fetch_optional(pool)
            .await?);
        Ok(token.flatten())
    }

    /// Users meshport can re-check at the provider (a refresh token, not disabled) whose last
    /// confirmation is older than `before` and who hold a live session or token.
    #[tracing::instrument(skip_all)]
    pub async fn users_to_revalidate(
        &self,
        before: DateTime<Utc>,
    ) -> Result<Vec<Uuid>, StoreError> {
        let sql = "SELECT u.id FROM users u
             WHERE u.refresh_token IS NOT NULL AND u.disabled_at IS NULL
               AND (u.validated_at IS NULL OR u.validated_at < $1)
               AND (EXISTS (SELECT 1 FROM user_sessions s WHERE s.user_id = u.id
                              AND s.revoked_at IS NULL AND s.expires_at > $2)
                    OR EXISTS (SELECT 1 FROM api_tokens t WHERE t.user_id = u.id
                              AND t.revoked_at IS NULL AND t.expires_at > $2))
             ORDER BY u.validated_at, u.id";
        let ids = on_pool!(self, pool => sqlx::query_scalar::<_, Uuid>(sql)
            .bind(before)
            .bind(Utc::now())
            .fetch_all(pool)
            .await?);
        Ok(ids)
    }
}

impl Tx {
    /// Records a sign-in: creates the user, or refreshes their email, name and last sign-in.
    #[tracing::instrument(skip_all)]
    pub async fn upsert_user(&mut self, user: &NewUser<'_>) -> Result<User, StoreError> {
        let now = Utc::now();
        let sql = format!(
            "INSERT INTO users (id, issuer, subject, email, display_name, created_at, last_login_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6)
             ON CONFLICT (issuer, subject) DO UPDATE
                SET email = excluded.email,
                    display_name = excluded.display_name,
                    last_login_at = excluded.last_login_at
             RETURNING {}",
            USER_COLUMNS.replace("u.", "")
        );
        let user = on_tx!(self, conn => sqlx::query_as::<_, User>(&sql)
            .bind(Uuid::new_v4())
            .bind(user.issuer)
            .bind(user.subject)
            .bind(user.email)
            .bind(user.display_name)
            .bind(now)
            .fetch_one(&mut **conn)
            .await?);
        Ok(user)
    }

    /// Records the roles and teams (comma-separated) the provider confirmed for the user now
    /// (at sign-in or re-validation). Sessions and tokens act with at most these.
    #[tracing::instrument(skip_all)]
    pub async fn set_user_access(
        &mut self,
        id: Uuid,
        roles: &str,
        teams: &str,
    ) -> Result<(), StoreError> {
        let sql = "UPDATE users SET roles = $1, teams = $2, validated_at = $3 WHERE id = $4";
        on_tx!(self, conn => sqlx::query(sql)
            .bind(roles)
            .bind(teams)
            .bind(Utc::now())
            .bind(id)
            .execute(&mut **conn)
            .await
            .map(drop)?);
        Ok(())
    }

    /// Keeps (or, with `None`, forgets) the user's sealed refresh token.
    #[tracing::instrument(skip_all)]
    pub async fn set_refresh_token(
        &mut self,
        id: Uuid,
        sealed: Option<&str>,
    ) -> Result<(), StoreError> {
        let sql = "UPDATE users SET refresh_token = $1 WHERE id = $2";
        on_tx!(self, conn => sqlx::query(sql)
            .bind(sealed)
            .bind(id)
            .execute(&mut **conn)
            .await
            .map(drop)?);
        Ok(())
    }

    /// Disables the user and forgets their refresh token; whether they were enabled.
    #[tracing::instrument(skip_all)]
    pub async fn disable_user(&mut self, id: Uuid, reason: &str) -> Result<bool, StoreError> {
        let sql = "UPDATE users SET disabled_at = $1, disabled_reason = $2, refresh_token = NULL
                   WHERE id = $3 AND disabled_at IS NULL";
        let affected = on_tx!(self, conn => sqlx::query(sql)
            .bind(Utc::now())
            .bind(reason)
            .bind(id)
            .execute(&mut **conn)
            .await?
            .rows_affected());
        Ok(affected == 1)
    }

    /// Lets a disabled user sign in again; whether they were disabled.
    #[tracing::instrument(skip_all)]
    pub async fn enable_user(&mut self, id: Uuid) -> Result<bool, StoreError> {
        let sql = "UPDATE users SET disabled_at = NULL, disabled_reason = NULL
                   WHERE id = $1 AND disabled_at IS NOT NULL";
        let affected = on_tx!(self, conn => sqlx::query(sql)
            .bind(id)
            .execute(&mut **conn)
            .await?
            .rows_affected());
        Ok(affected == 1)
    }

    /// Records a new session of the user, live until `expires_at` (its absolute limit).
    #[tracing::instrument(skip_all)]
    pub async fn create_user_session(
        &mut self,
        id: Uuid,
        user_id: Uuid,
        method: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO user_sessions ({SESSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, NULL)"
        );
        on_tx!(self, conn => sqlx::query(&sql)
            .bind(id)
            .bind(user_id)
            .bind(method)
            .bind(Utc::now())
            .bind(expires_at)
            .execute(&mut **conn)
            .await
            .map(drop)?);
        Ok(())
    }

    /// Ends one session of `user_id` (any user's when `None`); whether it was live.
    #[tracing::instrument(skip_all)]
    pub async fn revoke_user_session(
        &mut self,
        id: Uuid,
        user_id: Option<Uuid>,
    ) -> Result<bool, StoreError> {
        let sql = "UPDATE user_sessions SET revoked_at = $1
                   WHERE id = $2 AND revoked_at IS NULL AND ($3 IS NULL OR user_id = $3)";
        let affected = on_tx!(self, conn => sqlx::query(sql)
            .bind(Utc::now())
            .bind(id)
            .bind(user_id)
            .execute(&mut **conn)
            .await?
            .rows_affected());
        Ok(affected == 1)
    }

    /// Ends every live session and revokes every live token of the user: how many of each.
    #[tracing::instrument(skip_all)]
    pub async fn revoke_all_access(&mut self, user_id: Uuid) -> Result<(u64, u64), StoreError> {
        let now = Utc::now();
        let sessions = "UPDATE user_sessions SET revoked_at = $1
                        WHERE user_id = $2 AND revoked_at IS NULL AND expires_at > $1";
        let tokens = "UPDATE api_tokens SET revoked_at = $1
                      WHERE user_id = $2 AND revoked_at IS NULL AND expires_at > $1";
        let mut counts = [0u64; 2];
        for (count, sql) in counts.iter_mut().zip([sessions, tokens]) {
            *count = on_tx!(self, conn => sqlx::query(sql)
                .bind(now)
                .bind(user_id)
                .execute(&mut **conn)
                .await?
                .rows_affected());
        }
        Ok((counts[0], counts[1]))
    }
}
