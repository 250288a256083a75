//! API tokens for automation: random, shown once, stored only as a SHA-256 hash, carrying a
//! subset of their creator's roles and their teams, expiring and revocable.

use std::collections::BTreeSet;

use app::access::{Principal, Role, SignInMethod};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::Identity;
use crate::store::{ApiTokenRecord, NewApiToken, Tx, User};

/// Every token starts with this, so secret scanners can spot a leaked one.
pub const TOKEN_PREFIX: &str = "mpt_";

/// A new random token: the prefix and 32 bytes from the operating system's CSPRNG.
pub fn generate() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
}

/// The stored form of a token.
pub fn hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

/// Creates a token for `owner` with `roles` (already checked to be theirs) and returns it with
/// its record. The token itself is never stored.
pub async fn create(
    tx: &mut Tx,
    owner: &Principal,
    name: &str,
    roles: &BTreeSet<Role>,
    expires_at: DateTime<Utc>,
) -> anyhow::Result<(String, ApiTokenRecord)> {
    let token = generate().map_err(|e| anyhow::anyhow!("no randomness for the token: {e}"))?;
    let user_id: Uuid = owner.user_id.parse()?;
    let roles = roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(",");
    let teams = owner.teams.iter().cloned().collect::<Vec<_>>().join(",");
    let record = tx
        .create_api_token(&NewApiToken {
            user_id,
            name,
            token_hash: &hash(&token),
            roles: &roles,
            teams: &teams,
            expires_at,
        })
        .await?;
    Ok((token, record))
}

/// The caller a live token stands for, with its owner as stored now; none for an unknown,
/// expired or revoked token or a disabled owner. The token acts with what it was given, as far
/// as its owner still holds it. At most one indexed read ([`callers`](super::callers)).
pub async fn principal_for(identity: &Identity, token: &str) -> Option<(Principal, User)> {
    if !token.starts_with(TOKEN_PREFIX) {
        return None;
    }
    let hash = hash(token);
    let store = &identity.store;
    match identity.tokens_seen.get(&hash, || store.api_token_access(&hash)).await {
        Ok(Some(access))
            if access.user.disabled_at.is_none() && access.token_expires_at > Utc::now() =>
        {
            identity.token_uses.mark(access.token_id);
            let user = access.user;
            let principal = Principal {
                user_id: user.id.to_string(),
                subject: user.subject.clone(),
                email: user.email.clone(),
                name: user.display_name.clone(),
                roles: split(&access.token_roles).filter_map(Role::from_name).collect(),
                teams: split(&access.token_teams).map(str::to_owned).collect(),
                method: SignInMethod::ApiToken,
            };
            Some((super::session::limited(principal, &user), user))
        }
        Ok(_) => None,
        Err(error) => {
            tracing::warn!(%error, "could not check an API token");
            None
        }
    }
}

fn split(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_prefixed_and_hashed() {
        let (a, b) = (generate().unwrap(), generate().unwrap());
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX) && a.len() == TOKEN_PREFIX.len() + 43);
        assert_eq!(hash(&a), hash(&a));
        assert!(!hash(&a).contains(&a[4..]));
    }
}
