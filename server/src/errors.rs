//! The HTTP edge's one error vocabulary: [`ApiError`], what every JSON handler answers with, in
//! one JSON shape ([`ErrorBody`], the shape of [`AppError`]); the conversions of the store,
//! Vault, GitOps and cluster errors as they reach handlers and services; and the extractors
//! [`Caller`] and [`Auditor`], which answer 401 or 403 before a handler runs.

use app::access::{AppError, Principal};
use axum::Json;
use axum::extract::FromRequestParts;
use axum::extract::rejection::JsonRejection;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;
use serde::Serialize;
use utoipa::ToSchema;

use crate::cluster::ClusterError;
use crate::gitops::{GitopsError, ProviderError, WebhookError};
use crate::store::StoreError;
use crate::vault::VaultError;

/// An error answer: a code (`sign_in_required`, `forbidden`, `not_found`, `invalid`,
/// `invalid_request`, `conflict`, `internal`) and a detail: a message, or for
/// `invalid_request` the list of field errors.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: String,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

/// What a failed JSON request is answered with: a status and an [`ErrorBody`].
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A refusal or failure in the vocabulary the server functions share.
    #[error(transparent)]
    App(#[from] AppError),
    /// No signed-in caller, answered with this message (see [`Caller`]).
    #[error("{0}")]
    SignInRequired(&'static str),
    /// A forge's webhook delivery that meshport refused.
    #[error(transparent)]
    Webhook(#[from] WebhookError),
}

/// The message of a 401 outside the REST API.
const SIGN_IN: &str = "Sign in to continue.";

/// What a server-side failure tells the caller: nothing it could misuse.
const INTERNAL: &str = "Something failed on the server; try again, or tell the platform team.";

impl ApiError {
    /// 401 for a bearer token that is not valid (the session middleware's answer).
    pub fn invalid_credentials() -> Self {
        Self::SignInRequired("A valid session or API token is required.")
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::App(error) => {
                StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
            Self::SignInRequired(_) => StatusCode::UNAUTHORIZED,
            Self::Webhook(WebhookError::NotConfigured(_)) => StatusCode::NOT_FOUND,
            Self::Webhook(WebhookError::BadSignature(_)) => StatusCode::UNAUTHORIZED,
            Self::Webhook(WebhookError::MissingDeliveryId(_) | WebhookError::Malformed { .. }) => {
                StatusCode::BAD_REQUEST
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let code = match &self {
            // AppError serializes itself to the same shape (and, for a bare 401, without a
            // detail, which the REST API has always answered).
            Self::App(error) => return (status, Json(error)).into_response(),
            Self::SignInRequired(_) => "sign_in_required",
            Self::Webhook(WebhookError::NotConfigured(_)) => "not_configured",
            Self::Webhook(WebhookError::BadSignature(_)) => "bad_signature",
            Self::Webhook(_) => "invalid",
        };
        let body = ErrorBody { error: code.to_owned(), detail: self.to_string().into() };
        (status, Json(body)).into_response()
    }
}

/// Logs a server-side failure and answers with a message that leaks nothing.
pub fn internal(error: impl std::fmt::Display) -> AppError {
    tracing::error!(%error, "request failed on the server");
    AppError::Internal(INTERNAL.into())
}

/// A move the lifecycle refuses, or a second change set in flight, is a 409.
impl From<StoreError> for AppError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Transition { .. } | StoreError::ServiceBusy { .. } => {
                Self::Conflict(format!("{error}; nothing was changed."))
            }
            error => internal(error),
        }
    }
}

impl From<VaultError> for AppError {
    fn from(error: VaultError) -> Self {
        internal(error)
    }
}

impl From<ClusterError> for AppError {
    fn from(error: ClusterError) -> Self {
        internal(error)
    }
}

/// An unknown pull request is a 404; a merge the provider cannot do is a 409.
impl From<GitopsError> for AppError {
    fn from(error: GitopsError) -> Self {
        match error {
            GitopsError::UnknownPullRequest(_) => Self::NotFound("No such pull request.".into()),
            GitopsError::Provider(
                ProviderError::MergeUnsupported { .. } | ProviderError::Local(_),
            ) => Self::Conflict(error.to_string()),
            error => internal(error),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        Self::App(error.into())
    }
}

impl From<VaultError> for ApiError {
    fn from(error: VaultError) -> Self {
        Self::App(error.into())
    }
}

impl From<ClusterError> for ApiError {
    fn from(error: ClusterError) -> Self {
        Self::App(error.into())
    }
}

impl From<GitopsError> for ApiError {
    fn from(error: GitopsError) -> Self {
        Self::App(error.into())
    }
}

/// A body that did not parse, named as such (axum's own answer is plain text).
impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        Self::App(AppError::Invalid(format!(
            "The body is not the expected JSON: {}",
            rejection.body_text()
        )))
    }
}

/// The signed-in caller, as the session middleware resolved it; otherwise 401.
pub struct Caller(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        match parts.extensions.get::<Principal>() {
            Some(principal) => Ok(Self(principal.clone())),
            // The REST API answers the bare code, like the server functions; the other JSON
            // routes have always added the message. Clients may rely on either.
            None if parts.uri.path().starts_with("/api/v1/") => {
                Err(AppError::SignInRequired.into())
            }
            None => Err(ApiError::SignInRequired(SIGN_IN)),
        }
    }
}

/// A caller who may read the audit trail (auditors and platform admins); otherwise 401 or 403.
pub struct Auditor(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Auditor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Caller(principal) = Caller::from_request_parts(parts, state).await?;
        principal.may_read_audit()?;
        Ok(Self(principal))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn answer(error: ApiError) -> (StatusCode, String) {
        let response = error.into_response();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn every_error_has_the_one_shape() {
        assert_eq!(
            answer(AppError::Forbidden("no".into()).into()).await,
            (StatusCode::FORBIDDEN, r#"{"error":"forbidden","detail":"no"}"#.into())
        );
        assert_eq!(
            answer(AppError::SignInRequired.into()).await,
            (StatusCode::UNAUTHORIZED, r#"{"error":"sign_in_required"}"#.into())
        );
        assert_eq!(
            answer(ApiError::SignInRequired(SIGN_IN)).await,
            (
                StatusCode::UNAUTHORIZED,
                r#"{"error":"sign_in_required","detail":"Sign in to continue."}"#.into()
            )
        );
        let (status, body) = answer(StoreError::Corrupt("secret detail".into()).into()).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body, format!(r#"{{"error":"internal","detail":"{INTERNAL}"}}"#));
    }
}
