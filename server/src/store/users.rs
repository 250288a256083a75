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
}

/// What a sign-in tells about a person.
#[derive(Clone, Debug)]
pub struct NewUser<'a> {
    pub issuer: &'a str,
    pub subject: &'a str,
    pub email: &'a str,
    pub display_name: &'a str,
}

const USER_COLUMNS: &str =
    "id, issuer, subject, email, display_name, created_at, last_login_at, roles, teams";

impl Store {
    /// The user with this id, if any.
    #[tracing::instrument(skip_all)]
    pub async fn user(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        let user = on_pool!(self, pool => sqlx::query_as::<_, User>(&sql)
            .bind(id)
            .fetch_optional(pool)
            .await?);
        Ok(user)
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
             RETURNING {USER_COLUMNS}"
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

    /// Records the roles and teams (comma-separated) the user holds as of this sign-in.
    #[tracing::instrument(skip_all)]
    pub async fn set_user_access(
        &mut self,
        id: Uuid,
        roles: &str,
        teams: &str,
    ) -> Result<(), StoreError> {
        let sql = "UPDATE users SET roles = $1, teams = $2 WHERE id = $3";
        on_tx!(self, conn => sqlx::query(sql)
            .bind(roles)
            .bind(teams)
            .bind(id)
            .execute(&mut **conn)
            .await
            .map(drop)?);
        Ok(())
    }
}
