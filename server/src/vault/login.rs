//! meshport's own Vault identity: a configured token, an AppRole or its Kubernetes service
//! account; and the background task that renews the token before it expires, logging in again
//! when renewal is refused or the token reached its maximum lifetime.

use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret;
use vaultrs::api::AuthInfo;
use vaultrs::api::token::responses::LookupTokenResponse;
use vaultrs::client::{Client, VaultClient};

use super::{Vault, VaultError, VaultLogin};

/// The wait after a failed login or renewal.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// Shortest pause between renewals.
const MIN_PAUSE: Duration = Duration::from_secs(1);

/// What Vault said about meshport's token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenLease {
    /// Time left; zero for a token that never expires (a root token).
    pub ttl: Duration,
    /// Whether `renew-self` may extend it.
    pub renewable: bool,
}

impl TokenLease {
    fn from_auth(auth: &AuthInfo) -> Self {
        Self { ttl: Duration::from_secs(auth.lease_duration), renewable: auth.renewable }
    }

    fn from_lookup(lookup: &LookupTokenResponse) -> Self {
        Self { ttl: Duration::from_secs(lookup.ttl), renewable: lookup.renewable.unwrap_or(false) }
    }
}

impl Vault {
    /// Logs in with the configured method and uses the new token from then on. For `token`,
    /// checks the token and reports its lease.
    #[tracing::instrument(skip_all)]
    pub async fn login(&self) -> Result<TokenLease, VaultError> {
        let client = self.client();
        let auth = match &self.login {
            VaultLogin::Token => {
                let lookup = vaultrs::token::lookup_self(&*client).await?;
                return Ok(TokenLease::from_lookup(&lookup));
            }
            VaultLogin::AppRole { mount, role_id, secret_id } => {
                vaultrs::auth::approle::login(&*client, mount, role_id, secret_id.expose_secret())
                    .await?
            }
            VaultLogin::Kubernetes { mount, role, jwt_path } => {
                let jwt = std::fs::read_to_string(jwt_path).map_err(|source| VaultError::File {
                    path: jwt_path.display().to_string(),
                    source,
                })?;
                vaultrs::auth::kubernetes::login(&*client, mount, role, jwt.trim()).await?
            }
        };
        self.use_token(&auth.client_token);
        tracing::info!(ttl_seconds = auth.lease_duration, "logged in to Vault");
        Ok(TokenLease::from_auth(&auth))
    }

    /// Renews the token, or logs in again when it cannot be renewed any further.
    async fn refresh(&self, lease: TokenLease) -> Result<TokenLease, VaultError> {
        if lease.renewable {
            match vaultrs::token::renew_self(&*self.client(), None).await {
                // A renewal capped by the token's maximum lifetime gives less than before:
                // log in again while the token still works rather than let it lapse.
                Ok(auth) if auth.lease_duration >= lease.ttl.as_secs() / 2 => {
                    return Ok(TokenLease::from_auth(&auth));
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(error = %VaultError::from(error), "token renewal failed")
                }
            }
        }
        self.login().await
    }

    /// Keeps meshport's token alive in the background: logs in (unless `lease` says it is
    /// done already), then refreshes the token when two thirds of its lifetime have passed.
    /// Failures are logged and retried; a token that never expires ends the task.
    pub fn keep_logged_in(
        self: &Arc<Self>,
        lease: Option<TokenLease>,
    ) -> tokio::task::JoinHandle<()> {
        let vault = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut lease = lease;
            loop {
                let wait = match lease {
                    None => Duration::ZERO,
                    Some(lease) if lease.ttl.is_zero() => return,
                    Some(lease) => (lease.ttl * 2 / 3).max(MIN_PAUSE),
                };
                tokio::time::sleep(wait).await;
                let Some(vault) = vault.upgrade() else { return };
                let result = match lease {
                    None => vault.login().await,
                    Some(current) => vault.refresh(current).await,
                };
                lease = Some(result.unwrap_or_else(|error| {
                    tracing::error!(%error, "could not log in to Vault or renew meshport's token");
                    // Log in afresh shortly.
                    TokenLease { ttl: RETRY_AFTER * 3 / 2, renewable: false }
                }));
            }
        })
    }

    /// Swaps in a client with `token`, sharing the old one's connection pool.
    fn use_token(&self, token: &str) {
        let current = self.client();
        let mut settings = current.settings.clone();
        settings.token = token.to_owned();
        let mut middle = current.middle().clone();
        middle.token = token.to_owned();
        let next = VaultClient {
            http: rustify::Client::new(&current.http.base, current.http.http.clone()),
            middle,
            settings,
        };
        *self.client.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(next);
    }
}
