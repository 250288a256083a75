//! Access that follows the identity provider: each user with live sessions or tokens is asked
//! about again (a refresh-token grant, then UserInfo) on a schedule and before changes. Someone
//! disabled there, or left without any meshport group, loses every session and token at once;
//! fewer groups mean fewer roles at once. Each outcome that changes anything is audited.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use uuid::Uuid;

use super::Identity;
use super::oidc::RefreshError;
use crate::audit::{self, Action, Actor, NewEvent, Outcome, Target};
use crate::store::{StoreError, User};

/// What asking the provider about a user concluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Revalidation {
    /// Still active; the stored roles and teams are the provider's current ones.
    Confirmed,
    /// Disabled at the provider or without any meshport group: sessions and tokens revoked.
    Removed,
    /// Nothing to ask with (no provider, no refresh token, demo user) or the provider could
    /// not be reached: nothing concluded, nothing changed.
    Skipped,
}

impl Identity {
    /// Asks the provider about `user_id` now and applies the answer.
    pub async fn revalidate(&self, user_id: Uuid) -> Result<Revalidation, StoreError> {
        let (Some(oidc), Some(sealer)) = (&self.oidc, &self.sealer) else {
            return Ok(Revalidation::Skipped);
        };
        let Some(sealed) = self.store.refresh_token_of(user_id).await? else {
            return Ok(Revalidation::Skipped);
        };
        let Some(user) = self.store.user(user_id).await? else { return Ok(Revalidation::Skipped) };
        let Some(refresh_token) = sealer.open(&sealed) else {
            // Sealed under another key (the client secret changed): re-validation resumes at
            // the user's next sign-in.
            tracing::warn!(user = %user_id, "a stored refresh token does not open with the current key");
            return Ok(Revalidation::Skipped);
        };
        match oidc.refresh(&refresh_token, &user.subject).await {
            Err(RefreshError::Unavailable(error)) => {
                tracing::warn!(user = %user_id, %error, "could not re-validate at the provider");
                Ok(Revalidation::Skipped)
            }
            Err(RefreshError::Refused(reason)) => {
                // Disabled, deleted, or the grant revoked: the provider cannot say which, so
                // meshport does not disable the user itself; signing in again asks afresh.
                let reason = format!("the identity provider refused the user ({reason})");
                self.remove(&user, &reason).await?;
                Ok(Revalidation::Removed)
            }
            Ok(refreshed) => {
                let roles = self.groups.roles(&refreshed.groups);
                if roles.is_empty() {
                    let reason = "no longer in any meshport group at the identity provider";
                    self.remove(&user, reason).await?;
                    return Ok(Revalidation::Removed);
                }
                let teams = self.groups.teams(&refreshed.groups);
                let roles = roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(",");
                let teams = teams.into_iter().collect::<Vec<_>>().join(",");
                let mut tx = self.store.begin().await?;
                tx.set_user_access(user.id, &roles, &teams).await?;
                // A provider that rotates refresh tokens has just spent the old one.
                if let Some(sealed) = refreshed.refresh_token.and_then(|t| sealer.seal(&t).ok()) {
                    tx.set_refresh_token(user.id, Some(&sealed)).await?;
                }
                if roles != user.roles || teams != user.teams {
                    let details = json!({
                        "roles": { "before": user.roles, "after": roles },
                        "teams": { "before": user.teams, "after": teams },
                    });
                    audit::record(&mut tx, user_event(&user, Action::UserAccessChanged, details))
                        .await?;
                }
                tx.commit().await?;
                super::callers::access_changed();
                Ok(Revalidation::Confirmed)
            }
        }
    }

    /// Revokes every session and token of `user`, forgets their roles and refresh token, with
    /// the audit event, in one transaction.
    async fn remove(&self, user: &User, reason: &str) -> Result<(), StoreError> {
        let mut tx = self.store.begin().await?;
        let (sessions, tokens) = tx.revoke_all_access(user.id).await?;
        tx.set_user_access(user.id, "", "").await?;
        tx.set_refresh_token(user.id, None).await?;
        let details = json!({
            "reason": reason, "sessions_revoked": sessions, "tokens_revoked": tokens,
        });
        audit::record(&mut tx, user_event(user, Action::UserDeprovisioned, details)).await?;
        tx.commit().await?;
        super::callers::access_changed();
        tracing::info!(user = %user.id, reason, sessions, tokens, "user deprovisioned");
        Ok(())
    }

    /// One pass: every user with live sessions or tokens not confirmed within the interval.
    /// Returns how many were removed.
    pub async fn revalidate_due(&self) -> Result<usize, StoreError> {
        let interval = i64::from(self.config.revalidate_minutes) * 60;
        let before = Utc::now() - chrono::TimeDelta::seconds(interval);
        let mut removed = 0;
        for user in self.store.users_to_revalidate(before).await? {
            if self.revalidate(user).await? == Revalidation::Removed {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Re-validates on schedule for as long as the process runs (when configured and a
    /// provider is). Several replicas may each do it: asking twice is harmless.
    pub fn spawn_revalidation(self: &Arc<Self>) {
        let minutes = self.config.revalidate_minutes;
        if minutes == 0 || self.oidc.is_none() || self.sealer.is_none() {
            return;
        }
        let identity = self.clone();
        // Checked four times per interval, so nobody goes unconfirmed much past it.
        let period = Duration::from_secs(u64::from(minutes) * 15);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(period);
            loop {
                ticker.tick().await;
                if let Err(error) = identity.revalidate_due().await {
                    tracing::warn!(%error, "a re-validation pass failed");
                }
            }
        });
    }
}

fn user_event(user: &User, action: Action, details: serde_json::Value) -> NewEvent {
    NewEvent {
        actor: Actor::system(),
        action,
        target: Target::new("user", "", &user_target(user)),
        request_id: None,
        details,
        outcome: Outcome::Success,
    }
}

/// How a user is named in the audit trail: their address, else their subject at the provider.
pub fn user_target(user: &User) -> String {
    if user.email.is_empty() { user.subject.clone() } else { user.email.clone() }
}
