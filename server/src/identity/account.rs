//! The account service behind the server functions: the caller's API tokens.

use std::collections::BTreeSet;

use app::access::{AppError, Principal, Role};
use app::account::ssr::AccountService;
use app::account::{ApiTokenInfo, CreatedApiToken};
use chrono::{Duration, Utc};
use uuid::Uuid;

use super::tokens;
use crate::requests::internal;
use crate::store::{ApiTokenRecord, Store};

/// API tokens over meshport's store.
pub struct Accounts {
    pub store: Store,
    /// Lifetime when the creator does not choose one.
    pub default_days: u32,
}

fn info(record: ApiTokenRecord) -> ApiTokenInfo {
    ApiTokenInfo {
        id: record.id.to_string(),
        name: record.name,
        roles: record
            .roles
            .split(',')
            .filter_map(|name| Role::ALL.into_iter().find(|role| role.as_str() == name))
            .collect(),
        created_at: record.created_at.to_rfc3339(),
        expires_at: record.expires_at.to_rfc3339(),
        revoked: record.revoked_at.is_some(),
        last_used_at: record.last_used_at.map(|at| at.to_rfc3339()),
    }
}

#[async_trait::async_trait]
impl AccountService for Accounts {
    async fn create(
        &self,
        owner: &Principal,
        name: &str,
        roles: &BTreeSet<Role>,
        days: Option<u32>,
    ) -> Result<CreatedApiToken, AppError> {
        let expires_at = Utc::now() + Duration::days(i64::from(days.unwrap_or(self.default_days)));
        let (token, record) =
            tokens::create(&self.store, owner, name, roles, expires_at).await.map_err(internal)?;
        tracing::info!(user = %owner.user_id, token = %record.id, "API token created");
        Ok(CreatedApiToken { token, info: info(record) })
    }

    async fn list(&self, owner: &Principal) -> Result<Vec<ApiTokenInfo>, AppError> {
        let user: Uuid = owner.user_id.parse().map_err(internal)?;
        let records = self.store.api_tokens_of(user).await.map_err(internal)?;
        Ok(records.into_iter().map(info).collect())
    }

    async fn revoke(&self, owner: &Principal, id: &str) -> Result<(), AppError> {
        let not_found = || AppError::NotFound("You have no such live token.".into());
        let id: Uuid = id.parse().map_err(|_| not_found())?;
        let user: Uuid = owner.user_id.parse().map_err(internal)?;
        if self.store.revoke_api_token(id, user).await.map_err(internal)? {
            tracing::info!(user = %owner.user_id, token = %id, "API token revoked");
            Ok(())
        } else {
            Err(not_found())
        }
    }
}
