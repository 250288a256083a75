//! The sign-in routes, plain axum handlers: `GET /auth/login` sends the browser to the provider,
//! `GET /auth/callback` completes the sign-in, `POST /auth/logout` ends the session (and the
//! provider's, when it offers an end-session endpoint), `POST /auth/demo` signs in a demo
//! identity in `meshport dev` on loopback only.

use std::sync::Arc;

use app::access::{Principal, Role, SignInMethod};
use axum::Form;
use axum::Router;
use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use http::StatusCode;
use serde::Deserialize;
use tower_sessions::Session;
use uuid::Uuid;

use super::oidc::{CallbackQuery, PendingSignIn};
use super::session::{self, AUTH_KEY, PENDING_KEY, SessionAuth};
use super::{DEMO_ISSUER, DEMO_USERS, Identity};
use crate::audit::{self, Action, Actor, NewEvent, Outcome, Target};
use crate::store::{NewUser, StoreError, User};

/// The sign-in routes, over the identity state.
pub fn routes<S>(identity: Arc<Identity>) -> Router<S> {
    Router::new()
        .route("/auth/login", get(login))
        .route("/auth/callback", get(callback))
        .route("/auth/logout", post(logout))
        .route("/auth/demo", post(demo))
        .with_state(identity)
}

#[derive(Deserialize)]
struct LoginQuery {
    return_to: Option<String>,
}

async fn login(
    State(identity): State<Arc<Identity>>,
    session: Session,
    Query(query): Query<LoginQuery>,
) -> Response {
    let Some(oidc) = &identity.oidc else {
        return failure(StatusCode::NOT_FOUND, "No identity provider is configured.");
    };
    match oidc.begin(local_path(query.return_to)).await {
        Ok((url, pending)) => match session.insert(PENDING_KEY, &pending).await {
            Ok(()) => Redirect::to(url.as_str()).into_response(),
            Err(error) => internal(&error),
        },
        Err(error) => {
            tracing::warn!(%error, "sign-in could not start");
            failure(StatusCode::BAD_GATEWAY, &error.public_message())
        }
    }
}

async fn callback(
    State(identity): State<Arc<Identity>>,
    session: Session,
    Query(query): Query<CallbackQuery>,
) -> Response {
    let Some(oidc) = &identity.oidc else {
        return failure(StatusCode::NOT_FOUND, "No identity provider is configured.");
    };
    let pending: Option<PendingSignIn> = match session.get(PENDING_KEY).await {
        Ok(pending) => pending,
        Err(error) => return internal(&error),
    };
    let Some(pending) = pending else {
        return failure(
            StatusCode::BAD_REQUEST,
            &super::oidc::OidcError::NoPendingSignIn.to_string(),
        );
    };
    // A callback without this sign-in's state is not the provider's answer: it shows nothing
    // of what it carries and leaves the real sign-in pending.
    if !pending.answers(&query) {
        tracing::warn!("sign-in callback with a foreign state refused");
        return failure(StatusCode::BAD_REQUEST, &super::oidc::OidcError::State.to_string());
    }
    // One use only: a replayed callback finds nothing pending.
    if let Err(error) = session.remove::<PendingSignIn>(PENDING_KEY).await {
        return internal(&error);
    }
    let return_to = pending.return_to.clone();
    let verified = match oidc.finish(pending, query).await {
        Ok(verified) => verified,
        Err(error) => {
            tracing::warn!(%error, "sign-in refused");
            return failure(StatusCode::BAD_REQUEST, &error.public_message());
        }
    };
    let user = NewUser {
        issuer: &verified.issuer,
        subject: &verified.subject,
        email: &verified.email,
        display_name: &verified.name,
    };
    if identity.groups.roles(&verified.groups).is_empty() {
        return no_role(&identity, &user).await;
    }
    // Kept sealed for re-validation; a sign-in without one forgets an older one.
    let sealed = match (&identity.sealer, &verified.refresh_token) {
        (Some(sealer), Some(token)) => match sealer.seal(token) {
            Ok(sealed) => Some(sealed),
            Err(error) => return internal(&error),
        },
        _ => None,
    };
    let signed = signed_in(&identity, &user, Some(sealed.as_deref()), |user| {
        identity.groups.principal(user, &verified.groups, SignInMethod::Oidc)
    })
    .await;
    finish_sign_in(&identity, &session, signed, Some(verified.id_token), &return_to).await
}

/// Starts the session of a recorded sign-in, or says why there is none.
async fn finish_sign_in(
    identity: &Identity,
    session: &Session,
    signed: Result<SignedIn, StoreError>,
    id_token: Option<String>,
    return_to: &str,
) -> Response {
    match signed {
        Ok(SignedIn::Disabled(reason)) => failure(
            StatusCode::FORBIDDEN,
            &format!("This account is disabled in meshport ({reason}); ask a platform admin."),
        ),
        Ok(SignedIn::Session(principal, id)) => {
            match session::start(identity, session, principal, id_token, id).await {
                Ok(()) => Redirect::to(return_to).into_response(),
                Err(error) => internal(&error),
            }
        }
        Err(error) => internal(&error),
    }
}

/// Refuses a sign-in that carries no meshport role, saying which groups grant one; audited.
async fn no_role(identity: &Identity, user: &NewUser<'_>) -> Response {
    let event = NewEvent {
        actor: Actor {
            user_id: None,
            subject: user.subject.to_owned(),
            email: user.email.to_owned(),
            roles: Vec::new(),
        },
        action: Action::SignIn,
        target: Target::new("session", "", user.subject),
        request_id: None,
        details: serde_json::json!({ "refused": "no meshport role" }),
        outcome: Outcome::Failure,
    };
    if let Err(error) = audit::record_alone(&identity.store, event).await {
        return internal(&error);
    }
    let groups = identity
        .groups
        .granting_groups()
        .into_iter()
        .map(|(role, groups)| format!("{}: {}", role.as_str(), groups.join(", ")))
        .collect::<Vec<_>>()
        .join("; ");
    failure(
        StatusCode::FORBIDDEN,
        &format!(
            "Your account has no meshport role. Access comes from membership in these groups at \
             the identity provider ({groups}); ask for one, then sign in again."
        ),
    )
}

async fn logout(State(identity): State<Arc<Identity>>, session: Session) -> Response {
    let auth: Option<SessionAuth> = session.get(AUTH_KEY).await.ok().flatten();
    // Recorded (and the session's row ended) before the session is gone, in one transaction.
    if let Some(auth) = &auth
        && let Err(error) = signed_out(&identity, auth).await
    {
        return internal(&error);
    }
    if let Err(error) = session.flush().await {
        return internal(&error);
    }
    let home = format!("{}/", identity.public_url);
    let provider_logout = match (&identity.oidc, auth.and_then(|a| a.id_token)) {
        (Some(oidc), Some(id_token)) => oidc.end_session_url(&id_token, &home).await,
        _ => None,
    };
    match provider_logout {
        Some(url) => Redirect::to(url.as_str()).into_response(),
        None => Redirect::to("/").into_response(),
    }
}

#[derive(Deserialize)]
struct DemoForm {
    role: String,
}

async fn demo(
    State(identity): State<Arc<Identity>>,
    session: Session,
    Form(form): Form<DemoForm>,
) -> Response {
    if !identity.demo {
        return failure(
            StatusCode::NOT_FOUND,
            "Demo sign-ins exist only in `meshport dev` on a loopback address.",
        );
    }
    let Some((role, name, group)) =
        DEMO_USERS.into_iter().find(|(role, ..)| role.as_str() == form.role)
    else {
        return failure(StatusCode::BAD_REQUEST, "Unknown demo role.");
    };
    let subject = format!("demo-{}", role.as_str());
    let email = format!("{subject}@meshport.invalid");
    let user =
        NewUser { issuer: DEMO_ISSUER, subject: &subject, email: &email, display_name: name };
    let groups = vec![group.to_owned(), "team-shop".to_owned()];
    let principal = signed_in(&identity, &user, None, |user| {
        let mut principal = identity.groups.principal(user, &groups, SignInMethod::Demo);
        // The demo works whatever groups the configuration maps.
        principal.roles = [role].into();
        if role == Role::Developer {
            principal.teams = ["shop".to_owned()].into();
        }
        principal
    })
    .await;
    finish_sign_in(&identity, &session, principal, None, "/").await
}

/// A recorded sign-in: the caller and their session's row; or the account is disabled.
enum SignedIn {
    Session(Principal, Uuid),
    Disabled(String),
}

/// Records a sign-in: the user's row, their access as of now, the session's row and the audit
/// event in one transaction; a disabled user gets none. `principal_of` derives the caller from
/// the stored user; `refresh_token` (sealed) replaces the kept one unless `None`.
async fn signed_in(
    identity: &Identity,
    user: &NewUser<'_>,
    refresh_token: Option<Option<&str>>,
    principal_of: impl FnOnce(&User) -> Principal,
) -> Result<SignedIn, StoreError> {
    let mut tx = identity.store.begin().await?;
    let user = tx.upsert_user(user).await?;
    if user.disabled_at.is_some() {
        return Ok(SignedIn::Disabled(user.disabled_reason.unwrap_or_default()));
    }
    let principal = principal_of(&user);
    let join = |names: Vec<&str>| names.join(",");
    let roles = join(principal.roles.iter().map(|r| r.as_str()).collect());
    let teams = join(principal.teams.iter().map(String::as_str).collect());
    tx.set_user_access(user.id, &roles, &teams).await?;
    if let Some(sealed) = refresh_token {
        tx.set_refresh_token(user.id, sealed).await?;
    }
    let session_id = Uuid::new_v4();
    let method = serde_json::to_value(principal.method)
        .ok()
        .and_then(|m| m.as_str().map(str::to_owned))
        .unwrap_or_default();
    tx.create_user_session(session_id, user.id, &method, session::absolute_limit(identity)).await?;
    let details = serde_json::json!({ "method": principal.method, "teams": principal.teams });
    audit::record(&mut tx, session_event(&principal, Action::SignIn, details)).await?;
    tx.commit().await?;
    // The user's stored roles and teams may have changed with this sign-in.
    super::callers::access_changed();
    tracing::info!(user = %user.id, roles = ?principal.roles, "signed in");
    Ok(SignedIn::Session(principal, session_id))
}

/// Records a sign-out and ends the session's row, in one transaction.
async fn signed_out(identity: &Identity, auth: &SessionAuth) -> Result<(), StoreError> {
    let mut tx = identity.store.begin().await?;
    if let Some(id) = auth.session_id {
        tx.revoke_user_session(id, None).await?;
    }
    let event = session_event(&auth.principal, Action::SignOut, serde_json::json!({}));
    audit::record(&mut tx, event).await?;
    tx.commit().await?;
    super::callers::access_changed();
    Ok(())
}

fn session_event(principal: &Principal, action: Action, details: serde_json::Value) -> NewEvent {
    NewEvent {
        actor: Actor::from(principal),
        action,
        target: Target::new("session", "", &principal.email),
        request_id: None,
        details,
        outcome: Outcome::Success,
    }
}

/// `path` when it is a local path (`/…` but not `//…`), else `/`: no open redirects.
fn local_path(path: Option<String>) -> String {
    match path {
        Some(path)
            // Visible ASCII only: the path becomes a `Location` header, which takes nothing else.
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.contains('\\')
                && path.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            path
        }
        _ => "/".to_owned(),
    }
}

/// A small self-contained error page.
fn failure(status: StatusCode, message: &str) -> Response {
    let body = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sign-in failed · meshport</title></head>\
         <body><main><h1>Sign-in failed</h1><p role=\"alert\">{}</p><p><a href=\"/signin\">Try again</a></p></main></body></html>",
        escape_html(message)
    );
    (status, Html(body)).into_response()
}

fn internal(error: &dyn std::fmt::Display) -> Response {
    tracing::error!(%error, "sign-in failed on the server");
    failure(StatusCode::INTERNAL_SERVER_ERROR, "Something failed on the server; try again.")
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(local_path(Some("/requests?x=1".into())), "/requests?x=1");
        for bad in [
            "//evil.example",
            "https://evil.example",
            "/\\evil.example",
            "evil",
            "/\t/evil.example",
            "/ /x",
            "/é",
            "/\u{202e}x",
        ] {
            assert_eq!(local_path(Some(bad.into())), "/", "{bad}");
        }
        assert_eq!(local_path(None), "/");
    }

    /// Whatever `local_path` lets through becomes a `Location` header without a panic (axum's
    /// `Redirect::to` panics on a value a header cannot hold).
    #[test]
    fn every_followed_path_is_a_valid_header_value() {
        let samples =
            ["/", "/requests/1?x=%C3%A9", "/é", "/a b", "/\u{7f}", "/\u{0}x", "/ok~!$&'()*+,;=:@"];
        for sample in samples {
            let path = local_path(Some(sample.to_owned()));
            assert!(http::HeaderValue::from_str(&path).is_ok(), "{sample} → {path}");
            let _ = Redirect::to(&path).into_response();
        }
    }
}
