//! The account service behind the server functions: the caller's API tokens.

use std::collections::BTreeSet;

use app::access::{AppError, Principal, Role};
use app::account::ssr::AccountService;
use app::account::{ApiTokenInfo, CreatedApiToken};
use chrono::{Duration, Utc};
use uuid::Uuid;

use serde_json::json;

use super::tokens;
use crate::audit::{self, Action, Actor, NewEvent, Outcome, Target};
use crate::errors::internal;
use crate::store::{ApiTokenRecord, Store};

/// API tokens over meshport's store.
pub struct Accounts {
    pub store: Store,
    /// Lifetime when the creator does not choose one.
    pub default_days: u32,
    /// Longest lifetime of a token carrying the platform-admin role.
    pub admin_days: u32,
}

pub(super) fn info(record: ApiTokenRecord) -> ApiTokenInfo {
    ApiTokenInfo {
        id: record.id.to_string(),
        name: record.name,
        roles: record.roles.split(',').filter_map(Role::from_name).collect(),
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
        // An admin token outliving its owner's admin rights is the costliest leak: shorter.
        let admin = roles.contains(&Role::PlatformAdmin);
        let days = match days {
            Some(days) if admin && days > self.admin_days => {
                return Err(AppError::Invalid(format!(
                    "days: a token with the platform-admin role lives at most {} days",
                    self.admin_days
                )));
            }
            Some(days) => days,
            None if admin => self.default_days.min(self.admin_days),
            None => self.default_days,
        };
        let expires_at = Utc::now() + Duration::days(i64::from(days));
        let mut tx = self.store.begin().await?;
        let (token, record) =
            tokens::create(&mut tx, owner, name, roles, expires_at).await.map_err(internal)?;
        let details = json!({
            "token_id": record.id, "name": record.name, "roles": record.roles,
            "expires_at": record.expires_at,
        });
        let event = token_event(owner, Action::ApiTokenCreated, &record.id, details);
        audit::record(&mut tx, event).await?;
        tx.commit().await?;
        Ok(CreatedApiToken { token, info: info(record) })
    }

    async fn list(&self, owner: &Principal) -> Result<Vec<ApiTokenInfo>, AppError> {
        let user: Uuid = owner.user_id.parse().map_err(internal)?;
        let records = self.store.api_tokens_of(user).await?;
        Ok(records.into_iter().map(info).collect())
    }

    async fn revoke(&self, owner: &Principal, id: &str) -> Result<(), AppError> {
        let not_found = || AppError::NotFound("You have no such live token.".into());
        let id: Uuid = id.parse().map_err(|_| not_found())?;
        let user: Uuid = owner.user_id.parse().map_err(internal)?;
        let mut tx = self.store.begin().await?;
        if !tx.revoke_api_token(id, user).await? {
            return Err(not_found());
        }
        let event = token_event(owner, Action::ApiTokenRevoked, &id, json!({ "token_id": id }));
        audit::record(&mut tx, event).await?;
        tx.commit().await?;
        super::callers::access_changed();
        Ok(())
    }
}

fn token_event(
    owner: &Principal,
    action: Action,
    id: &Uuid,
    details: serde_json::Value,
) -> NewEvent {
    NewEvent {
        actor: Actor::from(owner),
        action,
        target: Target::new("api_token", "", &id.to_string()),
        request_id: None,
        details,
        outcome: Outcome::Success,
    }
}
