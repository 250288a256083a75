//! The OpenID Connect relying party: discovery, the authorization-code flow with PKCE, state and
//! nonce, ID-token verification and UserInfo, and the provider's end-session URL. HTTP goes
//! through meshport's own reqwest client, which never follows redirects.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreErrorResponseType,
    CoreGenderClaim, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
    CoreRevocableToken, CoreRevocationErrorResponse, CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AccessToken, AdditionalClaims, AsyncHttpClient, AuthorizationCode, ClaimsVerificationError,
    Client, ClientId, ClientSecret, CsrfToken, EmptyExtraTokenFields, EndSessionUrl,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, HttpClientError, HttpRequest, HttpResponse,
    IdToken, IdTokenFields, IssuerUrl, LogoutRequest, Nonce, NonceVerifier, OAuth2TokenResponse,
    PkceCodeChallenge, PkceCodeVerifier, PostLogoutRedirectUrl, ProviderMetadataWithLogout,
    RedirectUrl, RefreshToken, RequestTokenError, Scope, SignatureVerificationError,
    StandardErrorResponse, StandardTokenResponse, SubjectIdentifier, TokenResponse, UserInfoClaims,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use url::Url;

use crate::config::IdentityConfig;
use crate::error_chain::with_sources;

/// Claims other than the standard ones, for the configurable groups (and other) claims.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ExtraClaims(pub HashMap<String, serde_json::Value>);

impl AdditionalClaims for ExtraClaims {}

type TokenFields = IdTokenFields<
    ExtraClaims,
    EmptyExtraTokenFields,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
type OidcTokenResponse = StandardTokenResponse<TokenFields, CoreTokenType>;
type OidcIdToken = IdToken<
    ExtraClaims,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
type OidcClient = Client<
    ExtraClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    OidcTokenResponse,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// openidconnect's HTTP client trait over reqwest 0.13.
#[derive(Clone, Debug)]
struct OidcHttp(reqwest::Client);

impl<'c> AsyncHttpClient<'c> for OidcHttp {
    type Error = HttpClientError<reqwest::Error>;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, Self::Error>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let request: reqwest::Request = request.try_into().map_err(Box::new)?;
            let response = self.0.execute(request).await.map_err(Box::new)?;
            let mut builder =
                http::Response::builder().status(response.status()).version(response.version());
            for (name, value) in response.headers() {
                builder = builder.header(name, value);
            }
            let body = response.bytes().await.map_err(Box::new)?.to_vec();
            builder.body(body).map_err(HttpClientError::Http)
        })
    }
}

/// A sign-in failed; the message is safe to show.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("the identity provider could not be reached or described itself wrongly: {0}")]
    Discovery(String),
    #[error("the sign-in was not started here or has expired; start again")]
    NoPendingSignIn,
    #[error("the sign-in response does not belong to this sign-in (state mismatch)")]
    State,
    #[error("the sign-in response names another issuer")]
    Issuer,
    #[error("the identity provider refused the sign-in: {0}")]
    Provider(String),
    #[error("the authorization code could not be exchanged: {0}")]
    Exchange(String),
    #[error("the identity provider sent no ID token")]
    NoIdToken,
    #[error("the ID token is not valid: {0}")]
    IdToken(String),
    #[error("the identity provider's user information could not be read: {0}")]
    UserInfo(String),
}

impl OidcError {
    /// The message for the browser: provider-side failures are told apart in the log only, so
    /// the page does not show provider URLs or responses.
    pub fn public_message(&self) -> String {
        match self {
            Self::Discovery(_) | Self::Exchange(_) | Self::UserInfo(_) => {
                "the identity provider could not complete the sign-in; try again, or tell the platform team".into()
            }
            other => other.to_string(),
        }
    }
}

/// What the browser must bring back from the provider; kept in the session until the callback.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PendingSignIn {
    state: String,
    nonce: String,
    pkce_verifier: String,
    /// Where to go after signing in (a local path).
    pub return_to: String,
}

impl PendingSignIn {
    /// Whether `query` carries this sign-in's state (compared in constant time).
    pub fn answers(&self, query: &CallbackQuery) -> bool {
        let state = query.state.as_deref().unwrap_or_default();
        constant_time_eq(state.as_bytes(), self.state.as_bytes())
    }
}

/// The provider's redirect back to meshport.
#[derive(Clone, Debug, Deserialize)]
pub struct CallbackQuery {
    pub code: Option<String>,
    pub state: Option<String>,
    /// RFC 9207: the issuer that answered.
    pub iss: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// Who signed in, as the provider vouched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedIdentity {
    pub issuer: String,
    pub subject: String,
    /// Empty when the provider says the address is not verified: it could be anyone's, and it
    /// would become the audit actor and the commit author.
    pub email: String,
    pub name: String,
    pub groups: Vec<String>,
    /// The raw ID token, for the end-session request's `id_token_hint`.
    pub id_token: String,
    /// The refresh token, when the provider gave one (kept sealed for re-validation).
    pub refresh_token: Option<String>,
}

/// What the provider says about a user now, through a refresh-token grant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refreshed {
    pub groups: Vec<String>,
    /// The next refresh token when the provider rotates them.
    pub refresh_token: Option<String>,
}

/// A re-validation at the provider did not confirm the user.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// The provider refused the grant (`invalid_grant`): the account is disabled or deleted,
    /// or its grant was revoked.
    #[error("the identity provider no longer accepts this user: {0}")]
    Refused(String),
    /// The provider could not be asked; nothing is concluded.
    #[error("the identity provider could not be asked: {0}")]
    Unavailable(String),
}

/// The provider's metadata and keys as last fetched.
struct Discovered {
    client: OidcClient,
    end_session: Option<EndSessionUrl>,
    at: Instant,
}

/// ID tokens naming unknown keys fetch the keys again at most this often: forged tokens with
/// random key ids cannot make every sign-in hit the provider.
const MIN_REDISCOVERY: Duration = Duration::from_secs(10);

/// The configured OpenID provider, discovered on first use (so meshport starts while the
/// provider is down), again after a failed discovery, on a schedule, and when an ID token names
/// a key it does not know (the provider rotated its keys).
pub struct OidcProvider {
    issuer: String,
    client_id: String,
    client_secret: Option<SecretString>,
    redirect_url: String,
    scopes: Vec<String>,
    claims: ClaimNames,
    http: OidcHttp,
    discovered: Mutex<DiscoveryState>,
    refresh_after: Duration,
}

#[derive(Default)]
struct DiscoveryState {
    current: Option<Arc<Discovered>>,
    /// The last fetch for an unknown key id.
    forced_at: Option<Instant>,
}

struct ClaimNames {
    groups: String,
    email: String,
    name: String,
}

impl OidcProvider {
    /// The provider of `config`, answering at `<public_url>/auth/callback`; `None` when no
    /// issuer is configured.
    pub fn new(config: &IdentityConfig, public_url: &str) -> anyhow::Result<Option<Self>> {
        let Some(issuer) = &config.issuer_url else { return Ok(None) };
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(Some(Self {
            issuer: issuer.clone(),
            client_id: config.client_id.clone(),
            client_secret: config.client_secret.clone(),
            redirect_url: format!("{}/auth/callback", public_url.trim_end_matches('/')),
            scopes: config.scopes.clone(),
            claims: ClaimNames {
                groups: config.groups_claim.clone(),
                email: config.email_claim.clone(),
                name: config.name_claim.clone(),
            },
            http: OidcHttp(http),
            discovered: Mutex::new(DiscoveryState::default()),
            refresh_after: Duration::from_secs(u64::from(config.discovery_refresh_minutes) * 60),
        }))
    }

    /// The issuer URL.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    async fn client(&self) -> Result<Arc<Discovered>, OidcError> {
        self.discover(false).await
    }

    /// The provider's metadata and keys: fetched again when older than the refresh period, or
    /// with `now` (an unknown key id) unless such a fetch happened within [`MIN_REDISCOVERY`].
    /// A failed fetch keeps the previous copy, if any.
    async fn discover(&self, now: bool) -> Result<Arc<Discovered>, OidcError> {
        let mut state = self.discovered.lock().await;
        if let Some(current) = &state.current {
            let fresh = current.at.elapsed() < self.refresh_after;
            let forced_lately = state.forced_at.is_some_and(|at| at.elapsed() < MIN_REDISCOVERY);
            if (!now && fresh) || (now && forced_lately) {
                return Ok(current.clone());
            }
        }
        if now {
            state.forced_at = Some(Instant::now());
        }
        match self.fetch_discovery().await {
            Ok(fresh) => {
                let fresh = Arc::new(fresh);
                state.current = Some(fresh.clone());
                Ok(fresh)
            }
            Err(error) => match &state.current {
                Some(previous) => {
                    tracing::warn!(%error, "could not refresh the provider's keys; keeping the last ones");
                    Ok(previous.clone())
                }
                None => Err(error),
            },
        }
    }

    async fn fetch_discovery(&self) -> Result<Discovered, OidcError> {
        let issuer =
            IssuerUrl::new(self.issuer.clone()).map_err(|e| OidcError::Discovery(e.to_string()))?;
        let metadata = ProviderMetadataWithLogout::discover_async(issuer, &self.http)
            .await
            .map_err(|e| OidcError::Discovery(with_sources(&e)))?;
        let end_session = metadata.additional_metadata().end_session_endpoint.clone();
        let redirect = RedirectUrl::new(self.redirect_url.clone())
            .map_err(|e| OidcError::Discovery(e.to_string()))?;
        let client = OidcClient::from_provider_metadata(
            metadata,
            ClientId::new(self.client_id.clone()),
            self.client_secret.as_ref().map(|s| ClientSecret::new(s.expose_secret().to_owned())),
        )
        .set_redirect_uri(redirect);
        Ok(Discovered { client, end_session, at: Instant::now() })
    }

    /// Starts a sign-in: the provider URL to send the browser to, and what to keep until the
    /// callback.
    pub async fn begin(&self, return_to: String) -> Result<(Url, PendingSignIn), OidcError> {
        let discovered = self.client().await?;
        let client = &discovered.client;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in &self.scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        let pending = PendingSignIn {
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
            return_to,
        };
        Ok((url, pending))
    }

    /// Completes a sign-in: checks state and issuer, exchanges the code with the PKCE verifier,
    /// verifies the ID token (signature, issuer, audience, expiry, nonce) and reads UserInfo.
    pub async fn finish(
        &self,
        pending: PendingSignIn,
        query: CallbackQuery,
    ) -> Result<VerifiedIdentity, OidcError> {
        // State first: until it matches, nothing in the answer is the provider's to trust.
        if !pending.answers(&query) {
            return Err(OidcError::State);
        }
        if let Some(error) = query.error {
            let description = query.error_description.unwrap_or_default();
            return Err(OidcError::Provider(format!("{error} {description}").trim().to_owned()));
        }
        if query.iss.as_deref().is_some_and(|iss| iss != self.issuer) {
            return Err(OidcError::Issuer);
        }
        let code = query.code.ok_or_else(|| OidcError::Provider("no authorization code".into()))?;
        let discovered = self.client().await?;
        let token: OidcTokenResponse = discovered
            .client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|e| OidcError::Exchange(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier))
            .request_async(&self.http)
            .await
            .map_err(|e| OidcError::Exchange(with_sources(&e)))?;
        let id_token = token.id_token().ok_or(OidcError::NoIdToken)?;
        let nonce = Nonce::new(pending.nonce);
        let profile = self.profile(discovered, &token, id_token, &nonce, None).await?;
        let email = match profile.email_verified {
            Some(false) if self.claims.email == "email" => String::new(),
            _ => profile.email.unwrap_or_default(),
        };
        let name = profile.name.unwrap_or_else(|| {
            if email.is_empty() { profile.subject.clone() } else { email.clone() }
        });
        Ok(VerifiedIdentity {
            issuer: self.issuer.clone(),
            subject: profile.subject,
            groups: profile.groups,
            email,
            name,
            id_token: id_token.to_string(),
            refresh_token: token.refresh_token().map(|t| t.secret().clone()),
        })
    }

    /// Asks the provider about the user of `refresh_token` (subject `subject`) now: a
    /// refresh-token grant, the new ID token if any, and UserInfo, for their current groups.
    pub async fn refresh(
        &self,
        refresh_token: &str,
        subject: &str,
    ) -> Result<Refreshed, RefreshError> {
        let unavailable = |e: OidcError| RefreshError::Unavailable(e.to_string());
        let discovered = self.client().await.map_err(unavailable)?;
        let refresh_token = RefreshToken::new(refresh_token.to_owned());
        let request = discovered
            .client
            .exchange_refresh_token(&refresh_token)
            .map_err(|e| RefreshError::Unavailable(e.to_string()))?;
        let token: OidcTokenResponse = match request.request_async(&self.http).await {
            Ok(token) => token,
            Err(RequestTokenError::ServerResponse(answer))
                if *answer.error() == CoreErrorResponseType::InvalidGrant =>
            {
                return Err(RefreshError::Refused(answer.to_string()));
            }
            Err(error) => return Err(RefreshError::Unavailable(with_sources(&error))),
        };
        // A refreshed ID token carries no nonce; the subject must still be the same person.
        let same_subject = |_: Option<&Nonce>| Ok(());
        let profile = match token.id_token() {
            Some(id_token) => {
                self.profile(discovered, &token, id_token, same_subject, Some(subject)).await
            }
            None => self.user_info(&discovered, token.access_token(), subject, None).await,
        }
        .map_err(unavailable)?;
        if profile.subject != subject {
            return Err(RefreshError::Refused("the refreshed identity is someone else".into()));
        }
        Ok(Refreshed {
            groups: profile.groups,
            refresh_token: token.refresh_token().map(|t| t.secret().clone()),
        })
    }

    /// The verified ID token's claims completed by UserInfo. An ID token signed with a key
    /// meshport does not know fetches the provider's keys again and is checked once more.
    async fn profile(
        &self,
        discovered: Arc<Discovered>,
        token: &OidcTokenResponse,
        id_token: &OidcIdToken,
        nonce: impl NonceVerifier + Clone,
        expected_subject: Option<&str>,
    ) -> Result<Profile, OidcError> {
        let verify = |discovered: &Discovered| {
            let verifier = discovered.client.id_token_verifier();
            id_token.claims(&verifier, nonce.clone()).cloned()
        };
        let (discovered, claims) = match verify(&discovered) {
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) => {
                tracing::info!("an ID token names an unknown key; fetching the provider's keys");
                let fresh = self.discover(true).await?;
                let claims = verify(&fresh);
                (fresh, claims)
            }
            other => (discovered, other),
        };
        let claims = claims.map_err(|e| OidcError::IdToken(with_sources(&e)))?;
        let subject = claims.subject().as_str();
        if expected_subject.is_some_and(|expected| expected != subject) {
            return Err(OidcError::IdToken("the ID token names another subject".into()));
        }
        let from_token = IdTokenProfile {
            email: claims.email().map(|e| e.as_str().to_owned()),
            email_verified: claims.email_verified(),
            name: claims.name().and_then(|n| n.get(None)).map(|n| n.as_str().to_owned()),
            extra: claims.additional_claims().0.clone(),
        };
        self.user_info(&discovered, token.access_token(), subject, Some(from_token)).await
    }

    /// Completes `from_token` (the ID token's claims, when there is one) with UserInfo: many
    /// providers put profile and group claims only there.
    async fn user_info(
        &self,
        discovered: &Discovered,
        access_token: &AccessToken,
        subject: &str,
        from_token: Option<IdTokenProfile>,
    ) -> Result<Profile, OidcError> {
        let IdTokenProfile { mut email, mut email_verified, mut name, mut extra } =
            from_token.unwrap_or_default();
        let subject_id = SubjectIdentifier::new(subject.to_owned());
        if let Ok(request) = discovered.client.user_info(access_token.clone(), Some(subject_id)) {
            let info: UserInfoClaims<ExtraClaims, CoreGenderClaim> = request
                .request_async(&self.http)
                .await
                .map_err(|e| OidcError::UserInfo(with_sources(&e)))?;
            if email.is_none() {
                email = info.email().map(|e| e.as_str().to_owned());
                email_verified = info.email_verified();
            }
            name = name
                .or_else(|| info.name().and_then(|n| n.get(None)).map(|n| n.as_str().to_owned()));
            for (key, value) in &info.additional_claims().0 {
                extra.entry(key.clone()).or_insert_with(|| value.clone());
            }
        }
        let custom = |claim: &str, standard: Option<String>| match claim {
            "email" | "name" => standard,
            other => extra.get(other).and_then(|v| v.as_str()).map(str::to_owned),
        };
        Ok(Profile {
            subject: subject.to_owned(),
            email: custom(&self.claims.email, email),
            email_verified,
            name: custom(&self.claims.name, name),
            groups: string_list(extra.get(&self.claims.groups)),
        })
    }

    /// The provider's end-session URL for this ID token, when the provider offers one.
    pub async fn end_session_url(&self, id_token: &str, return_to: &str) -> Option<Url> {
        let discovered = self.client().await.ok()?;
        let (client, end_session) = (&discovered.client, &discovered.end_session);
        let id_token: OidcIdToken = id_token.parse().ok()?;
        let redirect = PostLogoutRedirectUrl::new(return_to.to_owned()).ok()?;
        Some(
            LogoutRequest::from(end_session.clone()?)
                .set_id_token_hint(&id_token)
                .set_client_id(client.client_id().clone())
                .set_post_logout_redirect_uri(redirect)
                .http_get_url(),
        )
    }
}

/// The ID token's own claims about the user.
#[derive(Default)]
struct IdTokenProfile {
    email: Option<String>,
    email_verified: Option<bool>,
    name: Option<String>,
    extra: HashMap<String, serde_json::Value>,
}

/// The user as the ID token and UserInfo describe them.
struct Profile {
    subject: String,
    email: Option<String>,
    email_verified: Option<bool>,
    name: Option<String>,
    groups: Vec<String>,
}

/// A claim holding a list of strings (or one string of space- or comma-separated names).
fn string_list(value: Option<&serde_json::Value>) -> Vec<String> {
    match value {
        Some(serde_json::Value::Array(values)) => {
            values.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect()
        }
        Some(serde_json::Value::String(s)) => {
            s.split([' ', ',']).filter(|s| !s.is_empty()).map(str::to_owned).collect()
        }
        _ => Vec::new(),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
