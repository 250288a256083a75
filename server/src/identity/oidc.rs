//! The OpenID Connect relying party: discovery, the authorization-code flow with PKCE, state and
//! nonce, ID-token verification and UserInfo, and the provider's end-session URL. HTTP goes
//! through meshport's own reqwest client, which never follows redirects.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreErrorResponseType,
    CoreGenderClaim, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
    CoreRevocableToken, CoreRevocationErrorResponse, CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, AsyncHttpClient, AuthorizationCode, Client, ClientId, ClientSecret,
    CsrfToken, EmptyExtraTokenFields, EndSessionUrl, EndpointMaybeSet, EndpointNotSet, EndpointSet,
    HttpClientError, HttpRequest, HttpResponse, IdToken, IdTokenFields, IssuerUrl, LogoutRequest,
    Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, PostLogoutRedirectUrl,
    ProviderMetadataWithLogout, RedirectUrl, Scope, StandardErrorResponse, StandardTokenResponse,
    TokenResponse, UserInfoClaims,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;
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
    pub email: String,
    pub name: String,
    pub groups: Vec<String>,
    /// The raw ID token, for the end-session request's `id_token_hint`.
    pub id_token: String,
}

/// The configured OpenID provider, discovered on first use (so meshport starts while the
/// provider is down) and again after a failed discovery.
pub struct OidcProvider {
    issuer: String,
    client_id: String,
    client_secret: Option<SecretString>,
    redirect_url: String,
    scopes: Vec<String>,
    claims: ClaimNames,
    http: OidcHttp,
    discovered: OnceCell<(OidcClient, Option<EndSessionUrl>)>,
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
            discovered: OnceCell::new(),
        }))
    }

    /// The issuer URL.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    async fn client(&self) -> Result<&(OidcClient, Option<EndSessionUrl>), OidcError> {
        self.discovered
            .get_or_try_init(|| async {
                let issuer = IssuerUrl::new(self.issuer.clone())
                    .map_err(|e| OidcError::Discovery(e.to_string()))?;
                let metadata = ProviderMetadataWithLogout::discover_async(issuer, &self.http)
                    .await
                    .map_err(|e| OidcError::Discovery(with_sources(&e)))?;
                let end_session = metadata.additional_metadata().end_session_endpoint.clone();
                let redirect = RedirectUrl::new(self.redirect_url.clone())
                    .map_err(|e| OidcError::Discovery(e.to_string()))?;
                let client = OidcClient::from_provider_metadata(
                    metadata,
                    ClientId::new(self.client_id.clone()),
                    self.client_secret
                        .as_ref()
                        .map(|s| ClientSecret::new(s.expose_secret().to_owned())),
                )
                .set_redirect_uri(redirect);
                Ok((client, end_session))
            })
            .await
    }

    /// Starts a sign-in: the provider URL to send the browser to, and what to keep until the
    /// callback.
    pub async fn begin(&self, return_to: String) -> Result<(Url, PendingSignIn), OidcError> {
        let (client, _) = self.client().await?;
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
        let (client, _) = self.client().await?;
        let token: OidcTokenResponse = client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|e| OidcError::Exchange(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier))
            .request_async(&self.http)
            .await
            .map_err(|e| OidcError::Exchange(with_sources(&e)))?;
        let id_token = token.id_token().ok_or(OidcError::NoIdToken)?;
        let verifier = client.id_token_verifier();
        let claims = id_token
            .claims(&verifier, &Nonce::new(pending.nonce))
            .map_err(|e| OidcError::IdToken(with_sources(&e)))?;
        let subject = claims.subject().clone();
        let mut extra = claims.additional_claims().0.clone();
        let mut email = claims.email().map(|e| e.as_str().to_owned());
        let mut name = claims.name().and_then(|n| n.get(None)).map(|n| n.as_str().to_owned());
        // Many providers put profile and group claims only in UserInfo.
        if let Ok(request) = client.user_info(token.access_token().clone(), Some(subject.clone())) {
            let info: UserInfoClaims<ExtraClaims, CoreGenderClaim> = request
                .request_async(&self.http)
                .await
                .map_err(|e| OidcError::UserInfo(with_sources(&e)))?;
            email = email.or_else(|| info.email().map(|e| e.as_str().to_owned()));
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
        let email = custom(&self.claims.email, email).unwrap_or_default();
        let name = custom(&self.claims.name, name).unwrap_or_else(|| email.clone());
        Ok(VerifiedIdentity {
            issuer: self.issuer.clone(),
            subject: subject.as_str().to_owned(),
            groups: string_list(extra.get(&self.claims.groups)),
            email,
            name,
            id_token: id_token.to_string(),
        })
    }

    /// The provider's end-session URL for this ID token, when the provider offers one.
    pub async fn end_session_url(&self, id_token: &str, return_to: &str) -> Option<Url> {
        let (client, end_session) = self.client().await.ok()?;
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
