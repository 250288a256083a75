//! Who is asking and what they may do: the signed-in [`Principal`], its [`Role`]s and teams, the
//! rules of access in one place (four-eyes included), and the [`AppError`] every server function
//! returns. The server resolves the principal from the session or an API token; the rules here
//! are plain functions so the browser can hide what the server would refuse anyway.

use std::collections::BTreeSet;
use std::fmt;

use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

use crate::onboarding::ValidationErrors;

/// What a person may do in meshport, derived from their identity provider groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Submits onboarding requests for their own teams and follows them.
    Developer,
    /// Approves or rejects other people's requests; runs the platform.
    PlatformAdmin,
    /// Reads everything, exports the audit trail, changes nothing.
    Auditor,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 3] = [Self::Developer, Self::PlatformAdmin, Self::Auditor];

    /// The role's name, as in configuration and API tokens.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Developer => "developer",
            Self::PlatformAdmin => "platform-admin",
            Self::Auditor => "auditor",
        }
    }

    /// The role named `name` (see [`Role::as_str`]).
    pub fn from_name(name: &str) -> Option<Role> {
        Self::ALL.into_iter().find(|role| role.as_str() == name)
    }

    /// The role's name for people.
    pub fn label(self) -> &'static str {
        match self {
            Self::Developer => "Developer",
            Self::PlatformAdmin => "Platform admin",
            Self::Auditor => "Auditor",
        }
    }
}

/// How the caller proved who they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignInMethod {
    /// Signed in through the identity provider; a session cookie.
    Oidc,
    /// An API token (automation).
    ApiToken,
    /// A demo identity of `meshport dev`.
    Demo,
}

/// The signed-in caller.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// meshport's id of the user.
    pub user_id: String,
    /// Subject at the identity provider.
    pub subject: String,
    /// E-mail address.
    pub email: String,
    /// Name to show.
    pub name: String,
    /// Roles from the configured group mapping.
    pub roles: BTreeSet<Role>,
    /// Teams from groups matching the configured team pattern.
    pub teams: BTreeSet<String>,
    /// How they signed in.
    pub method: SignInMethod,
}

impl Principal {
    /// Whether the caller holds `role`.
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// A developer submits requests for their own teams only.
    pub fn may_submit_for(&self, team: &str) -> Result<(), AppError> {
        if !self.has(Role::Developer) {
            return Err(AppError::Forbidden("Only developers submit onboarding requests.".into()));
        }
        if !self.teams.contains(team) {
            return Err(AppError::Forbidden(format!(
                "You can only submit requests for your own teams ({}).",
                self.team_list()
            )));
        }
        Ok(())
    }

    /// Admins and auditors see every request; developers those of their teams.
    pub fn may_view_team(&self, team: &str) -> bool {
        self.has(Role::PlatformAdmin) || self.has(Role::Auditor) || self.teams.contains(team)
    }

    /// Whether the caller sees every team's requests.
    pub fn sees_all_teams(&self) -> bool {
        self.has(Role::PlatformAdmin) || self.has(Role::Auditor)
    }

    /// Only platform admins approve or reject requests. Checked before a request is looked up,
    /// so others learn nothing about which requests exist.
    pub fn may_make_decisions(&self) -> Result<(), AppError> {
        if self.has(Role::PlatformAdmin) {
            Ok(())
        } else {
            Err(AppError::Forbidden("Decisions are for platform admins.".into()))
        }
    }

    /// Four-eyes: only a platform admin approves or rejects, and never a request they submitted.
    pub fn may_decide(&self, requested_by: &str) -> Result<(), AppError> {
        self.may_make_decisions()?;
        if self.user_id == requested_by {
            return Err(AppError::Forbidden(
                "You submitted this request; another platform admin must decide on it.".into(),
            ));
        }
        Ok(())
    }

    /// Platform admins merge the pull requests of the `local` provider.
    pub fn may_merge(&self) -> Result<(), AppError> {
        if self.has(Role::PlatformAdmin) {
            Ok(())
        } else {
            Err(AppError::Forbidden("Only platform admins merge.".into()))
        }
    }

    /// Auditors and platform admins read the audit trail.
    pub fn may_read_audit(&self) -> Result<(), AppError> {
        if self.has(Role::Auditor) || self.has(Role::PlatformAdmin) {
            Ok(())
        } else {
            Err(AppError::Forbidden("The audit trail is for auditors and platform admins.".into()))
        }
    }

    /// Roles an API token of this caller may carry: a subset of their own.
    pub fn may_grant(&self, roles: &BTreeSet<Role>) -> Result<(), AppError> {
        if roles.is_empty() {
            return Err(AppError::Invalid("Choose at least one role for the token.".into()));
        }
        match roles.iter().find(|role| !self.has(**role)) {
            Some(role) => {
                Err(AppError::Forbidden(format!("You do not hold the role {}.", role.as_str())))
            }
            None => Ok(()),
        }
    }

    fn team_list(&self) -> String {
        if self.teams.is_empty() {
            "none".to_owned()
        } else {
            self.teams.iter().cloned().collect::<Vec<_>>().join(", ")
        }
    }
}

/// Why a server function or API call failed; carried to the browser as JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "error", content = "detail", rename_all = "snake_case")]
pub enum AppError {
    /// No valid session or token (HTTP 401).
    SignInRequired,
    /// Signed in, but not allowed (HTTP 403).
    Forbidden(String),
    /// The thing does not exist or is not visible to the caller (HTTP 404).
    NotFound(String),
    /// Input broke a rule (HTTP 422).
    Invalid(String),
    /// The form broke the validator's rules, field by field (HTTP 422).
    InvalidRequest(ValidationErrors),
    /// The state changed meanwhile (HTTP 409).
    Conflict(String),
    /// Something failed on the server; details are in its log (HTTP 500).
    Internal(String),
    /// The call itself failed (transport, arguments).
    ServerFn(ServerFnErrorErr),
}

impl AppError {
    /// The HTTP status the error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            Self::SignInRequired => 401,
            Self::Forbidden(_) => 403,
            Self::NotFound(_) => 404,
            Self::Invalid(_) | Self::InvalidRequest(_) => 422,
            Self::Conflict(_) => 409,
            Self::Internal(_) => 500,
            // On the server, `Deserialization` is the arguments' body failing to decode.
            Self::ServerFn(
                ServerFnErrorErr::Args(_)
                | ServerFnErrorErr::MissingArg(_)
                | ServerFnErrorErr::Deserialization(_),
            ) => 400,
            Self::ServerFn(_) => 500,
        }
    }
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SignInRequired => f.write_str("Sign in to continue."),
            Self::Forbidden(message)
            | Self::NotFound(message)
            | Self::Invalid(message)
            | Self::Conflict(message)
            | Self::Internal(message) => f.write_str(message),
            Self::InvalidRequest(errors) => errors.fmt(f),
            Self::ServerFn(error) => error.fmt(f),
        }
    }
}

impl std::error::Error for AppError {}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        Self::ServerFn(value)
    }
}

impl From<ValidationErrors> for AppError {
    fn from(errors: ValidationErrors) -> Self {
        Self::InvalidRequest(errors)
    }
}

/// Server-side access helpers for server functions.
#[cfg(feature = "ssr")]
pub mod ssr {
    use leptos::prelude::use_context;

    use super::{AppError, Principal, Role};

    /// The caller as the server resolved it for this request, if signed in.
    pub fn principal() -> Option<Principal> {
        use_context::<http::request::Parts>()?.extensions.get::<Principal>().cloned()
    }

    /// Sets the response status for `error` and returns it, so `?` answers 401/403/….
    /// A plain form post (a browser without JavaScript, accepting HTML) keeps the redirect
    /// back to its page that carries the error, which the page then shows.
    pub fn fail(error: AppError) -> AppError {
        let form_post = use_context::<http::request::Parts>().is_some_and(|parts| {
            parts
                .headers
                .get(http::header::ACCEPT)
                .and_then(|accept| accept.to_str().ok())
                .is_some_and(|accept| accept.contains("text/html"))
        });
        if form_post {
            return error;
        }
        if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
            response.set_status(
                http::StatusCode::from_u16(error.status())
                    .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR),
            );
        }
        error
    }

    /// The signed-in caller, or 401.
    pub fn require_principal() -> Result<Principal, AppError> {
        principal().ok_or_else(|| fail(AppError::SignInRequired))
    }

    /// The signed-in caller holding `role`, or 401 / 403.
    pub fn require_role(role: Role) -> Result<Principal, AppError> {
        let principal = require_principal()?;
        if principal.has(role) {
            Ok(principal)
        } else {
            Err(fail(AppError::Forbidden(format!("This needs the {} role.", role.as_str()))))
        }
    }

    /// Maps a rule's verdict to a response status.
    pub fn check(verdict: Result<(), AppError>) -> Result<(), AppError> {
        verdict.map_err(fail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(id: &str, roles: &[Role], teams: &[&str]) -> Principal {
        Principal {
            user_id: id.into(),
            subject: id.into(),
            email: format!("{id}@shop.example"),
            name: id.into(),
            roles: roles.iter().copied().collect(),
            teams: teams.iter().map(|t| t.to_string()).collect(),
            method: SignInMethod::Oidc,
        }
    }

    #[test]
    fn developers_submit_for_their_own_teams_only() {
        let dev = person("dana", &[Role::Developer], &["cart"]);
        assert!(dev.may_submit_for("cart").is_ok());
        assert!(matches!(dev.may_submit_for("payments"), Err(AppError::Forbidden(_))));
        let auditor = person("ari", &[Role::Auditor], &["cart"]);
        assert!(matches!(auditor.may_submit_for("cart"), Err(AppError::Forbidden(_))));
    }

    #[test]
    fn four_eyes_holds_for_admins_too() {
        let admin = person("alex", &[Role::PlatformAdmin, Role::Developer], &["cart"]);
        assert!(admin.may_decide("dana").is_ok());
        assert!(matches!(admin.may_decide("alex"), Err(AppError::Forbidden(_))));
        let dev = person("dana", &[Role::Developer], &["cart"]);
        assert!(matches!(dev.may_decide("someone"), Err(AppError::Forbidden(_))));
    }

    #[test]
    fn auditors_see_everything_and_grant_only_what_they_hold() {
        let auditor = person("ari", &[Role::Auditor], &[]);
        assert!(auditor.may_view_team("cart") && auditor.sees_all_teams());
        assert!(auditor.may_grant(&[Role::Auditor].into()).is_ok());
        assert!(auditor.may_grant(&[Role::PlatformAdmin].into()).is_err());
        assert!(auditor.may_grant(&BTreeSet::new()).is_err());
    }

    #[test]
    fn errors_travel_as_json_with_their_status() {
        let error = AppError::Forbidden("no".into());
        let json = serde_json::to_string(&error).unwrap();
        assert_eq!(json, r#"{"error":"forbidden","detail":"no"}"#);
        assert_eq!(serde_json::from_str::<AppError>(&json).unwrap(), error);
        assert_eq!(AppError::SignInRequired.status(), 401);
    }
}
