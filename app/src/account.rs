//! The caller's own account: who they are, how they can sign in, and their API tokens. Each
//! server function checks the caller on the server; the service behind it is provided by the
//! server as context.

use std::collections::BTreeSet;

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::access::{AppError, Principal, Role};

/// How people can sign in here.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AvailableSignIns {
    /// Through the configured identity provider (`/auth/login`).
    pub oidc: bool,
    /// As a demo identity (`meshport dev` on loopback only).
    pub demo: bool,
}

/// An API token as its owner sees it; the token itself is shown once, at creation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiTokenInfo {
    pub id: String,
    pub name: String,
    pub roles: Vec<Role>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub expires_at: String,
    pub revoked: bool,
    /// RFC 3339, if ever used.
    pub last_used_at: Option<String>,
}

/// A token just created: the secret (shown this once) and its description.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedApiToken {
    pub token: String,
    pub info: ApiTokenInfo,
}

/// The signed-in caller, or `None`. Anyone may ask.
#[server(endpoint = "whoami")]
pub async fn whoami() -> Result<Option<Principal>, AppError> {
    Ok(crate::access::ssr::principal())
}

/// The sign-in methods on offer. Anyone may ask.
#[server(endpoint = "sign_in_options")]
pub async fn sign_in_options() -> Result<AvailableSignIns, AppError> {
    Ok(use_context::<AvailableSignIns>().unwrap_or_default())
}

/// Creates an API token carrying some of the caller's roles. Signed-in people only (a token
/// cannot mint tokens); `days` defaults to the configured lifetime.
#[server(endpoint = "create_api_token", input = leptos::server_fn::codec::Json)]
pub async fn create_api_token(
    name: String,
    roles: BTreeSet<Role>,
    days: Option<u32>,
) -> Result<CreatedApiToken, AppError> {
    use crate::access::{SignInMethod, ssr};
    let principal = ssr::require_principal()?;
    if principal.method == SignInMethod::ApiToken {
        return Err(ssr::fail(AppError::Forbidden(
            "API tokens cannot create API tokens; sign in.".into(),
        )));
    }
    ssr::check(principal.may_grant(&roles))?;
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(ssr::fail(AppError::Invalid(
            "Name the token with 1 to 64 printable characters.".into(),
        )));
    }
    if days.is_some_and(|d| !(1..=365).contains(&d)) {
        return Err(ssr::fail(AppError::Invalid("A token lives between 1 and 365 days.".into())));
    }
    ssr_service()?.create(&principal, name, &roles, days).await.map_err(ssr::fail)
}

/// The caller's API tokens. Signed-in people only.
#[server(endpoint = "list_api_tokens")]
pub async fn list_api_tokens() -> Result<Vec<ApiTokenInfo>, AppError> {
    let principal = crate::access::ssr::require_principal()?;
    ssr_service()?.list(&principal).await.map_err(crate::access::ssr::fail)
}

/// Revokes one of the caller's API tokens.
#[server(endpoint = "revoke_api_token", input = leptos::server_fn::codec::Json)]
pub async fn revoke_api_token(id: String) -> Result<(), AppError> {
    let principal = crate::access::ssr::require_principal()?;
    ssr_service()?.revoke(&principal, &id).await.map_err(crate::access::ssr::fail)
}

#[cfg(feature = "ssr")]
fn ssr_service() -> Result<std::sync::Arc<dyn ssr::AccountService>, AppError> {
    use_context::<std::sync::Arc<dyn ssr::AccountService>>()
        .ok_or_else(|| AppError::Internal("The account service is not configured.".into()))
}

/// The service the server implements.
#[cfg(feature = "ssr")]
pub mod ssr {
    use std::collections::BTreeSet;

    use super::{ApiTokenInfo, CreatedApiToken};
    use crate::access::{AppError, Principal, Role};

    /// API tokens of the caller; authorisation is done by the server functions.
    #[async_trait::async_trait]
    pub trait AccountService: Send + Sync {
        async fn create(
            &self,
            owner: &Principal,
            name: &str,
            roles: &BTreeSet<Role>,
            days: Option<u32>,
        ) -> Result<CreatedApiToken, AppError>;
        async fn list(&self, owner: &Principal) -> Result<Vec<ApiTokenInfo>, AppError>;
        async fn revoke(&self, owner: &Principal, id: &str) -> Result<(), AppError>;
    }
}
