//! Sessions in meshport's own database (SQLite or PostgreSQL, like everything else) and the
//! middleware that resolves each request's caller: an API bearer token, or a session that has
//! neither been idle too long nor outlived its absolute limit.

use std::sync::Arc;
use std::time::Duration;

use app::access::{Principal, Role, SignInMethod};
use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use tower_sessions::cookie::SameSite;
use tower_sessions::cookie::time::{Duration as CookieDuration, OffsetDateTime};
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, ExpiredDeletion};
use tower_sessions::{Expiry, Session, SessionManagerLayer, SessionStore};
use tower_sessions_sqlx_store::{PostgresStore, SqliteStore};
use uuid::Uuid;

use super::Identity;
use super::tokens;
use crate::errors::ApiError;
use crate::store::{Store, User};

/// The session key of the signed-in caller.
pub const AUTH_KEY: &str = "auth";
/// The session key of a sign-in waiting for the provider's callback.
pub const PENDING_KEY: &str = "oidc.pending";
/// How often an active session's idle deadline is pushed back (and the session written).
const TOUCH_EVERY_SECONDS: i64 = 60;
/// A change (any request but GET, HEAD, OPTIONS) is made with roles the provider confirmed at
/// most this long ago: a burst of clicks costs one call to the provider a minute.
const CONFIRMED_FOR_CHANGES: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

/// What a session remembers about its signed-in caller.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SessionAuth {
    /// The caller, with the roles and teams they had at sign-in.
    pub principal: Principal,
    /// The raw ID token, for the provider's end-session request.
    pub id_token: Option<String>,
    /// Unix seconds of the sign-in, for the absolute limit.
    pub signed_in_at: i64,
    /// Unix seconds of the last time the idle deadline was pushed back.
    pub touched_at: i64,
    /// The row in `user_sessions` that admins see and revoke; sessions from before it existed
    /// have none and must sign in again.
    #[serde(default)]
    pub session_id: Option<Uuid>,
}

/// The session store on whichever database meshport uses.
#[derive(Clone, Debug)]
pub enum Sessions {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

macro_rules! on_sessions {
    ($sessions:expr, $store:ident => $body:expr) => {
        match $sessions {
            Sessions::Sqlite($store) => $body,
            Sessions::Postgres($store) => $body,
        }
    };
}

impl Sessions {
    /// The store over meshport's database, its table created if missing.
    pub async fn new(store: &Store) -> anyhow::Result<Self> {
        let sessions = match store {
            Store::Sqlite(pool) => Self::Sqlite(SqliteStore::new(pool.clone())),
            Store::Postgres(pool) => Self::Postgres(PostgresStore::new(pool.clone())),
        };
        on_sessions!(&sessions, store => store.migrate().await)?;
        Ok(sessions)
    }

    /// Deletes expired sessions every `period`, for as long as the process runs; a failed round
    /// is logged and the next one tried.
    pub fn spawn_cleanup(&self, period: Duration) {
        let sessions = self.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(period);
            loop {
                ticker.tick().await;
                if let Err(error) = sessions.delete_expired().await {
                    tracing::warn!(%error, "could not delete expired sessions");
                }
            }
        });
    }
}

#[async_trait::async_trait]
impl SessionStore for Sessions {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        on_sessions!(self, store => store.create(record).await)
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        on_sessions!(self, store => store.save(record).await)
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        on_sessions!(self, store => store.load(id).await)
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        on_sessions!(self, store => store.delete(id).await)
    }
}

#[async_trait::async_trait]
impl ExpiredDeletion for Sessions {
    async fn delete_expired(&self) -> session_store::Result<()> {
        on_sessions!(self, store => store.delete_expired().await)
    }
}

/// The cookie layer: HttpOnly, Secure unless the public URL is plain http on loopback,
/// SameSite=Lax (Strict would drop the cookie on the provider's redirect back).
pub fn layer(identity: &Identity, sessions: Sessions) -> SessionManagerLayer<Sessions> {
    let secure = identity.secure_cookies();
    SessionManagerLayer::new(sessions)
        // `__Host-` makes browsers refuse the cookie unless Secure, host-only and Path=/.
        .with_name(if secure { "__Host-meshport" } else { "meshport_session" })
        .with_secure(secure)
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(CookieDuration::minutes(i64::from(
            identity.config.session_idle_minutes,
        ))))
}

/// Resolves the caller and puts the [`Principal`] into the request's extensions. An invalid
/// bearer token is answered 401 at once; no credentials just leaves the request anonymous.
/// Either way the caller acts with at most the roles and teams the provider last confirmed,
/// and a change is preceded by a re-validation when that confirmation is over a minute old.
pub async fn resolve_principal(
    State(identity): State<Arc<Identity>>,
    session: Session,
    mut request: Request,
    next: Next,
) -> Response {
    let changes = !request.method().is_safe();
    if let Some(header) = request.headers().get(AUTHORIZATION) {
        let resolved = match header.to_str().ok().and_then(bearer_token) {
            Some(token) => tokens::principal_for(&identity, token.trim()).await,
            None => None,
        };
        let principal = match resolved {
            Some((principal, user)) => confirmed(&identity, principal, user, changes).await,
            None => None,
        };
        match principal {
            Some(principal) => {
                request.extensions_mut().insert(principal);
            }
            None => return ApiError::invalid_credentials().into_response(),
        }
    } else if let Some((principal, user)) = session_principal(&identity, &session).await {
        match confirmed(&identity, principal, user, changes).await {
            Some(principal) => {
                request.extensions_mut().insert(principal);
            }
            None => {
                let _ = session.flush().await;
            }
        }
    }
    next.run(request).await
}

/// `principal` (of `user` as stored) when the user may still act: re-validated first at the
/// provider for a change with a stale confirmation; none when that removed them.
async fn confirmed(
    identity: &Identity,
    principal: Principal,
    user: User,
    changes: bool,
) -> Option<Principal> {
    let stale = user.validated_at.is_none_or(|at| Utc::now() - at >= CONFIRMED_FOR_CHANGES);
    if !(changes && stale && principal.method != SignInMethod::Demo) {
        return Some(principal);
    }
    match identity.revalidate(user.id).await {
        Ok(super::Revalidation::Removed) => None,
        Ok(super::Revalidation::Skipped) => Some(principal),
        Ok(super::Revalidation::Confirmed) => {
            // The stored access changed (or not): act with what it is now.
            let user = identity.store.user(user.id).await.ok()??;
            Some(limited(principal, &user))
        }
        Err(error) => {
            tracing::warn!(%error, "could not re-validate a user");
            Some(principal)
        }
    }
}

/// `principal` with the roles and teams of `user` as stored now, at most.
pub fn limited(mut principal: Principal, user: &User) -> Principal {
    let held = |list: &str, name: &str| list.split(',').any(|held| held == name);
    principal.roles.retain(|role: &Role| held(&user.roles, role.as_str()));
    principal.teams.retain(|team| held(&user.teams, team));
    principal
}

/// The token of an `Authorization: Bearer …` header (the scheme name is case-insensitive).
fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token)
}

/// The session's caller and user, or none when the session is missing, broken, over its
/// limits, revoked, or its user disabled or left without any role (then it is ended).
async fn session_principal(identity: &Identity, session: &Session) -> Option<(Principal, User)> {
    let mut auth: SessionAuth = match session.get(AUTH_KEY).await {
        Ok(auth) => auth?,
        Err(error) => {
            tracing::warn!(%error, "could not read the session");
            return None;
        }
    };
    let now = Utc::now().timestamp();
    let (idle, max_age) = limits(identity);
    let access = match auth.session_id {
        Some(id) if now - auth.signed_in_at < max_age => {
            identity.sessions_seen.get(&id, || identity.store.session_access(id)).await
        }
        _ => Ok(None),
    };
    let user = match access {
        Ok(Some(access))
            if access.session_revoked_at.is_none() && access.user.disabled_at.is_none() =>
        {
            access.user
        }
        Ok(_) => {
            let _ = session.flush().await;
            return None;
        }
        Err(error) => {
            tracing::warn!(%error, "could not check a session");
            return None;
        }
    };
    let principal = limited(auth.principal.clone(), &user);
    if principal.roles.is_empty() {
        let _ = session.flush().await;
        return None;
    }
    if now - auth.touched_at >= TOUCH_EVERY_SECONDS {
        // Reading is not activity for tower-sessions: writing pushes the idle deadline back,
        // but never past the absolute limit.
        auth.touched_at = now;
        let deadline = (now + idle).min(auth.signed_in_at + max_age);
        if let Ok(at) = OffsetDateTime::from_unix_timestamp(deadline) {
            session.set_expiry(Some(Expiry::AtDateTime(at)));
        }
        if let Err(error) = session.insert(AUTH_KEY, &auth).await {
            tracing::warn!(%error, "could not refresh the session");
        }
    }
    Some((principal, user))
}

/// The idle and absolute session limits, in seconds.
fn limits(identity: &Identity) -> (i64, i64) {
    let config = &identity.config;
    (i64::from(config.session_idle_minutes) * 60, i64::from(config.session_max_hours) * 3600)
}

/// When a session started now ends at the latest.
pub fn absolute_limit(identity: &Identity) -> chrono::DateTime<Utc> {
    Utc::now() + chrono::TimeDelta::seconds(limits(identity).1)
}

/// Signs `principal` in as the recorded session `session_id`: a new session id (no fixation),
/// then the caller stored in it.
pub async fn start(
    identity: &Identity,
    session: &Session,
    principal: Principal,
    id_token: Option<String>,
    session_id: Uuid,
) -> Result<(), tower_sessions::session::Error> {
    session.cycle_id().await?;
    let now = Utc::now().timestamp();
    let (idle, max_age) = limits(identity);
    if let Ok(at) = OffsetDateTime::from_unix_timestamp(now + idle.min(max_age)) {
        session.set_expiry(Some(Expiry::AtDateTime(at)));
    }
    let auth = SessionAuth {
        principal,
        id_token,
        signed_in_at: now,
        touched_at: now,
        session_id: Some(session_id),
    };
    session.insert(AUTH_KEY, &auth).await
}
