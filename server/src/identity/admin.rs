//! The admins' view of people: list anyone's sessions and tokens, revoke them, disable a user.
//! Every method checks that the caller is a platform admin; every change is audited in the
//! transaction that makes it.

use app::access::{AppError, Principal, Role};
use app::account::ApiTokenInfo;
use app::users::ssr::UserAdminService;
use app::users::{SessionInfo, UserAction, UserDetail, UserSummary};
use chrono::Utc;
use serde_json::json;
use uuid::Uuid;

use super::account::info as token_info;
use super::user_target;
use crate::audit::{self, Action, Actor, NewEvent, Outcome, Target};
use crate::store::{Store, User, UserOverview, UserSession};

/// Users over meshport's store.
pub struct UserAdmin {
    pub store: Store,
}

fn admin(caller: &Principal) -> Result<(), AppError> {
    if caller.has(Role::PlatformAdmin) {
        Ok(())
    } else {
        Err(AppError::Forbidden("Managing users needs the platform-admin role.".into()))
    }
}

fn list(names: &str) -> Vec<String> {
    names.split(',').filter(|n| !n.is_empty()).map(str::to_owned).collect()
}

fn summary(user: User, live_sessions: i64, live_tokens: i64) -> UserSummary {
    UserSummary {
        id: user.id.to_string(),
        roles: list(&user.roles),
        teams: list(&user.teams),
        disabled: user.disabled_at.map(|_| user.disabled_reason.unwrap_or_default()),
        validated_at: user.validated_at.map(|at| at.to_rfc3339()),
        email: user.email,
        name: user.display_name,
        subject: user.subject,
        live_sessions,
        live_tokens,
    }
}

fn session_info(session: UserSession) -> SessionInfo {
    SessionInfo {
        id: session.id.to_string(),
        method: session.method,
        signed_in_at: session.signed_in_at.to_rfc3339(),
        expires_at: session.expires_at.to_rfc3339(),
        ended: session.revoked_at.is_some() || session.expires_at <= Utc::now(),
    }
}

#[async_trait::async_trait]
impl UserAdminService for UserAdmin {
    async fn list(&self, caller: &Principal) -> Result<Vec<UserSummary>, AppError> {
        admin(caller)?;
        let users = self.store.users().await?;
        Ok(users
            .into_iter()
            .map(|UserOverview { user, live_sessions, live_tokens }| {
                summary(user, live_sessions, live_tokens)
            })
            .collect())
    }

    async fn detail(&self, caller: &Principal, id: &str) -> Result<UserDetail, AppError> {
        admin(caller)?;
        let user = self.user(id).await?;
        let sessions: Vec<SessionInfo> =
            self.store.sessions_of(user.id).await?.into_iter().map(session_info).collect();
        let tokens: Vec<ApiTokenInfo> =
            self.store.api_tokens_of(user.id).await?.into_iter().map(token_info).collect();
        let live = |ended: Vec<bool>| ended.into_iter().filter(|ended| !ended).count() as i64;
        let live_sessions = live(sessions.iter().map(|s| s.ended).collect());
        let now = Utc::now().to_rfc3339();
        let live_tokens = live(tokens.iter().map(|t| t.revoked || t.expires_at <= now).collect());
        Ok(UserDetail { user: summary(user, live_sessions, live_tokens), sessions, tokens })
    }

    async fn act(
        &self,
        caller: &Principal,
        id: &str,
        action: UserAction,
        target: &str,
        reason: &str,
    ) -> Result<(), AppError> {
        admin(caller)?;
        let user = self.user(id).await?;
        let target_id = || {
            target
                .parse::<Uuid>()
                .map_err(|_| AppError::NotFound("No such live session or token.".into()))
        };
        let mut tx = self.store.begin().await?;
        let (event, details) = match action {
            UserAction::RevokeSession => {
                let session = target_id()?;
                if !tx.revoke_user_session(session, Some(user.id)).await? {
                    return Err(AppError::NotFound("The user has no such live session.".into()));
                }
                (Action::SessionRevoked, json!({ "session_id": session }))
            }
            UserAction::RevokeToken => {
                let token = target_id()?;
                if !tx.revoke_api_token(token, user.id).await? {
                    return Err(AppError::NotFound("The user has no such live token.".into()));
                }
                (Action::ApiTokenRevoked, json!({ "token_id": token, "by_admin": true }))
            }
            UserAction::Disable => {
                if reason.is_empty() || reason.chars().count() > 1000 {
                    return Err(AppError::Invalid(
                        "reason: give a reason (at most 1000 characters) to disable a user".into(),
                    ));
                }
                if caller.user_id == user.id.to_string() {
                    return Err(AppError::Forbidden("Admins cannot disable themselves.".into()));
                }
                if !tx.disable_user(user.id, reason).await? {
                    return Err(AppError::Conflict("The user is already disabled.".into()));
                }
                let (sessions, tokens) = tx.revoke_all_access(user.id).await?;
                let details = json!({
                    "reason": reason, "sessions_revoked": sessions, "tokens_revoked": tokens,
                });
                (Action::UserDisabled, details)
            }
            UserAction::Enable => {
                if !tx.enable_user(user.id).await? {
                    return Err(AppError::Conflict("The user is not disabled.".into()));
                }
                (Action::UserEnabled, json!({}))
            }
        };
        let event = NewEvent {
            actor: Actor::from(caller),
            action: event,
            target: Target::new("user", "", &user_target(&user)),
            request_id: None,
            details,
            outcome: Outcome::Success,
        };
        audit::record(&mut tx, event).await?;
        tx.commit().await?;
        super::callers::access_changed();
        Ok(())
    }
}

impl UserAdmin {
    async fn user(&self, id: &str) -> Result<User, AppError> {
        let not_found = || AppError::NotFound("No such user.".into());
        let id: Uuid = id.parse().map_err(|_| not_found())?;
        self.store.user(id).await?.ok_or_else(not_found)
    }
}
