//! People as platform admins manage them: every user's roles, sessions and API tokens, and
//! revoking them or disabling the user (someone leaving, a lost laptop). Platform admins only,
//! checked by the service on the server for the pages and the API alike.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::access::AppError;
use crate::account::ApiTokenInfo;

/// A user in the admins' list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct UserSummary {
    pub id: String,
    /// Empty when the provider did not vouch for an address (then `subject` names them).
    pub email: String,
    pub name: String,
    pub subject: String,
    /// The roles and teams the provider last confirmed.
    pub roles: Vec<String>,
    pub teams: Vec<String>,
    /// Why the user is disabled, when they are.
    pub disabled: Option<String>,
    /// RFC 3339: when the provider last confirmed the user's groups.
    pub validated_at: Option<String>,
    pub live_sessions: i64,
    pub live_tokens: i64,
}

/// One session of a user (never its cookie).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct SessionInfo {
    pub id: String,
    pub method: String,
    /// RFC 3339.
    pub signed_in_at: String,
    /// RFC 3339: the session's absolute limit.
    pub expires_at: String,
    /// Revoked, signed out or past its limit.
    pub ended: bool,
}

/// A user with their sessions and tokens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct UserDetail {
    pub user: UserSummary,
    pub sessions: Vec<SessionInfo>,
    #[cfg_attr(feature = "ssr", schema(value_type = Vec<Object>))]
    pub tokens: Vec<ApiTokenInfo>,
}

/// What an admin does to a user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum UserAction {
    /// End one session (`target`: its id).
    RevokeSession,
    /// Revoke one API token (`target`: its id).
    RevokeToken,
    /// Disable the user: every session and token ends, sign-in is refused (a reason is
    /// required).
    Disable,
    /// Let a disabled user sign in again.
    Enable,
}

/// Every user. Platform admins only.
#[server(endpoint = "list_users")]
pub async fn list_users() -> Result<Vec<UserSummary>, AppError> {
    let principal = crate::access::ssr::require_principal()?;
    ssr_service()?.list(&principal).await.map_err(crate::access::ssr::fail)
}

/// One user with their sessions and tokens. Platform admins only.
#[server(endpoint = "get_user")]
pub async fn get_user(id: String) -> Result<UserDetail, AppError> {
    let principal = crate::access::ssr::require_principal()?;
    ssr_service()?.detail(&principal, &id).await.map_err(crate::access::ssr::fail)
}

/// An admin's action on a user from the user's page: a plain form post, so it works without
/// JavaScript. Platform admins only.
#[server(endpoint = "act_on_user")]
pub async fn act_on_user(
    id: String,
    action: UserAction,
    #[server(default)] target: String,
    #[server(default)] reason: String,
) -> Result<(), AppError> {
    let principal = crate::access::ssr::require_principal()?;
    ssr_service()?
        .act(&principal, &id, action, &target, reason.trim())
        .await
        .map_err(crate::access::ssr::fail)
}

#[cfg(feature = "ssr")]
fn ssr_service() -> Result<std::sync::Arc<dyn ssr::UserAdminService>, AppError> {
    use_context::<std::sync::Arc<dyn ssr::UserAdminService>>()
        .ok_or_else(|| AppError::Internal("The user service is not configured.".into()))
}

/// The service the server implements; each method checks that the caller is a platform admin.
#[cfg(feature = "ssr")]
pub mod ssr {
    use super::{UserAction, UserDetail, UserSummary};
    use crate::access::{AppError, Principal};

    #[async_trait::async_trait]
    pub trait UserAdminService: Send + Sync {
        async fn list(&self, caller: &Principal) -> Result<Vec<UserSummary>, AppError>;
        async fn detail(&self, caller: &Principal, id: &str) -> Result<UserDetail, AppError>;
        async fn act(
            &self,
            caller: &Principal,
            id: &str,
            action: UserAction,
            target: &str,
            reason: &str,
        ) -> Result<(), AppError>;
    }
}
