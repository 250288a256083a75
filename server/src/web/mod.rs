//! The HTTP layer: the axum router with the Leptos pages and server functions, health
//! endpoints, compression and request tracing, and graceful shutdown.

mod api;
mod audit;
mod fleet;
mod health;
mod metrics_route;
mod onboard;
mod pull_requests;
pub mod security;
mod server_fns;
mod status_page;

use std::sync::{Arc, OnceLock};

use app::access::Principal;
use app::account::AvailableSignIns;
use app::account::ssr::AccountService;
use app::audit::ssr::AuditService;
use app::notifications::ssr::NotificationService;
use app::platform::ssr::ReadinessProbe;
use app::request_api::ssr::RequestService;
use app::secret_rotation::ssr::RotationService;
use app::status_report::ssr::StatusService;
use app::users::ssr::UserAdminService;
use axum::Router;
use axum::extract::{FromRef, State};
use axum::routing::{get, post};
use leptos::prelude::*;
use leptos_axum::{AxumRouteListing, LeptosRoutes, generate_route_list};
use tower_http::compression::CompressionLayer;
use tower_http::trace::{DefaultOnFailure, DefaultOnResponse, TraceLayer};
use tracing::Level;

pub use health::DependencyProbe;

use crate::audit::checkpoint::CheckpointKey;
use crate::audit::refusals::{Refusal, Refusals};
use crate::audit::{Actor, AuditReader, Target};
use crate::cluster::Cluster;
use crate::config::Config;
use crate::gitops::Gitops;
use crate::identity::session::{self, Sessions};
use crate::identity::{Accounts, Identity, UserAdmin};
use crate::notify::{NotificationSettings, Notifications};
use crate::request_service::Requests;
use crate::rotation::Rotations;
use crate::status::alerts::Alerts;
use crate::status::{Refresh, StatusBoard};
use crate::store::Store;
use crate::vault::Vault;
use security::SecurityPolicy;

/// What every request handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// Where the built site lives and how its bundle is named.
    pub leptos_options: LeptosOptions,
    /// meshport's Vault client.
    pub vault: Arc<Vault>,
    /// Checks the database and Vault for `/readyz` and the status on the start page.
    pub readiness: Arc<dyn ReadinessProbe>,
    /// Sign-in: the OpenID provider, group mapping, demo identities.
    pub identity: Arc<Identity>,
    /// The session store (same database).
    pub sessions: Sessions,
    /// Cross-site refusal and security headers.
    pub security: Arc<SecurityPolicy>,
    /// Onboarding requests, for the server functions, the API and a request's pull requests.
    pub requests: Arc<Requests>,
    /// API tokens, for the server functions.
    pub accounts: Arc<dyn AccountService>,
    /// Everyone's sessions and tokens, for platform admins.
    pub users: Arc<UserAdmin>,
    /// Signs audit checkpoints; its public key is what `verify` trusts.
    pub audit_key: Option<CheckpointKey>,
    /// The audit trail, for the `/audit` page and its exports.
    pub audit: Arc<AuditReader>,
    /// Records refused privileged attempts, a bounded number per actor.
    pub refusals: Arc<Refusals>,
    /// The GitOps repository and its pull requests (webhooks, merges of `local` ones).
    pub gitops: Arc<Gitops>,
    /// Certificate and rotation status, refreshed in the background.
    pub status: Arc<StatusBoard>,
    /// Rotating services' secrets and delivering them.
    pub rotations: Arc<Rotations>,
    /// People's notification settings and failed deliveries.
    pub notification_settings: Arc<NotificationSettings>,
    /// `/status` as last rendered, without its account corner.
    pub status_page: Arc<status_page::Cache>,
    /// The bearer token `/metrics` asks for, if any.
    pub metrics_token: Option<secrecy::SecretString>,
    /// Repository drift of the live services and their generator upgrades.
    pub fleet: Arc<crate::fleet::Fleet>,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

impl AppState {
    /// State for `config` over the given store and Vault client. `demo` offers the demo
    /// sign-ins (honoured only on a loopback address).
    pub async fn new(
        config: &Config,
        store: Store,
        vault: Arc<Vault>,
        demo: bool,
    ) -> anyhow::Result<Self> {
        let readiness = Arc::new(DependencyProbe::new(store.clone(), vault.clone()));
        let identity = Arc::new(Identity::new(config, store.clone(), demo)?);
        let sessions = Sessions::new(&store).await?;
        let mut security =
            SecurityPolicy::new(&identity.public_url, identity.oidc.as_ref().map(|o| o.issuer()));
        // `meshport dev` listens on loopback only: its loopback names are all its own.
        security.loopback |= demo;
        let security = Arc::new(security);
        let audit_key =
            config.audit.signing_key.as_ref().map(CheckpointKey::from_base64).transpose()?;
        let notifications = Arc::new(Notifications::new(&config.notify, &config.public_url()));
        let gitops = Arc::new(
            Gitops::from_config(
                &config.gitops,
                &config.data_dir,
                &config.public_url(),
                store.clone(),
            )?
            .with_notifications(notifications.clone()),
        );
        let status = Arc::new(StatusBoard::new(
            store.clone(),
            vault.clone(),
            config.onboarding_rules(),
            config.artifact_settings(),
            config.clusters.iter().cloned().map(|c| Arc::new(Cluster::new(c))).collect(),
            Refresh {
                every: std::time::Duration::from_secs(config.status.refresh_seconds),
                max_backoff: std::time::Duration::from_secs(config.status.max_backoff_seconds),
            },
            Alerts::configured(config.status.alert_webhook.clone(), notifications.clone()),
        ));
        let rotations = Arc::new(Rotations {
            store: store.clone(),
            vault: vault.clone(),
            gitops: gitops.clone(),
            config: config.rotation.clone(),
            artifacts: config.artifact_settings(),
            rules: config.onboarding_rules(),
            clusters: config.clusters.iter().cloned().map(|c| Arc::new(Cluster::new(c))).collect(),
        });
        let requests = Arc::new(Requests {
            store: store.clone(),
            rules: config.onboarding_rules(),
            vault: vault.clone(),
            settings: config.artifact_settings(),
            gitops: Some(gitops.clone()),
            notifications,
        });
        let fleet = Arc::new(crate::fleet::Fleet {
            store: store.clone(),
            gitops: gitops.clone(),
            requests: requests.clone(),
            settings: config.artifact_settings(),
            rules: config.onboarding_rules(),
            max_open: config.fleet.max_open_upgrade_prs,
        });
        Ok(Self {
            fleet,
            notification_settings: Arc::new(NotificationSettings { store: store.clone() }),
            status_page: Arc::default(),
            rotations,
            status,
            metrics_token: config.status.metrics_token.clone(),
            gitops: gitops.clone(),
            audit: Arc::new(AuditReader::new(
                store.clone(),
                config.audit.trusted(audit_key.as_ref()),
                audit_key.clone(),
            )),
            audit_key,
            refusals: Arc::new(Refusals::new(store.clone(), config.audit.refusals_per_minute)),
            leptos_options: crate::leptos_options(config),
            requests,
            accounts: Arc::new(Accounts {
                store: store.clone(),
                default_days: config.identity.token_days,
                admin_days: config.identity.admin_token_days,
            }),
            users: Arc::new(UserAdmin { store: store.clone() }),
            vault,
            readiness,
            identity,
            sessions,
            security,
        })
    }

    /// Makes the services server functions need reachable through Leptos context, and puts
    /// this response's script nonce into its Content-Security-Policy.
    fn provide_context(&self) {
        provide_context(self.readiness.clone());
        provide_context(self.requests.clone() as Arc<dyn RequestService>);
        provide_context(self.accounts.clone());
        provide_context(self.users.clone() as Arc<dyn UserAdminService>);
        provide_context(self.audit.clone() as Arc<dyn AuditService>);
        provide_context(self.status.clone() as Arc<dyn StatusService>);
        provide_context(self.rotations.clone() as Arc<dyn RotationService>);
        provide_context(self.notification_settings.clone() as Arc<dyn NotificationService>);
        provide_context(self.fleet.clone() as Arc<dyn app::fleet::ssr::FleetService>);
        provide_context(AvailableSignIns {
            oidc: self.identity.oidc.is_some(),
            demo: self.identity.demo,
        });
        if let (Some(nonce), Some(response)) =
            (leptos::nonce::use_nonce(), use_context::<leptos_axum::ResponseOptions>())
            && let Ok(csp) =
                http::HeaderValue::from_str(&self.security.content_security_policy(Some(&nonce)))
        {
            response.insert_header(http::header::CONTENT_SECURITY_POLICY, csp);
        }
    }
}

/// The whole HTTP application. From the outside in: tracing, compression, security headers,
/// cross-site refusal, sessions, the caller's principal, then the routes.
pub fn router(state: AppState) -> Router {
    // `/status` is served from its cache, which the app renders (status_page).
    let routes = page_routes().into_iter().filter(|r| r.path() != status_page::PATH).collect();
    let shell_options = state.leptos_options.clone();
    let (page_state, fallback_state) = (state.clone(), state.clone());
    let session_layer = session::layer(&state.identity, state.sessions.clone());
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/api/audit/export", get(audit::export_events))
        .route("/api/audit/verify", get(audit::verify_chain))
        .route("/api/audit/evidence", get(audit::evidence_report))
        .route("/api/openapi.json", get(api::openapi))
        .route("/api/v1/requests", get(api::list).post(api::submit))
        .route("/api/v1/requests/{id}", get(api::detail))
        .route("/api/v1/requests/{id}/approve", post(api::approve))
        .route("/api/v1/requests/{id}/reject", post(api::reject))
        .route("/api/v1/requests/{id}/actions", post(api::act))
        .route("/api/v1/requests/{id}/withdraw", post(api::withdraw))
        .route("/api/v1/services/{namespace}/{service}", get(api::service))
        .route("/api/v1/services/{namespace}/{service}/preview", post(api::preview_change))
        .route("/api/v1/services/{namespace}/{service}/changes", post(api::propose_change))
        .route("/api/v1/services/{namespace}/{service}/offboard", post(api::propose_offboarding))
        .route("/api/v1/services/{namespace}/{service}/adopt", post(api::adopt))
        .route("/api/v1/services/{namespace}/{service}/secrets", get(api::secrets))
        .route("/api/v1/services/{namespace}/{service}/secrets/{secret}/rotate", post(api::rotate))
        .route("/api/v1/fleet", get(fleet::report))
        .route("/api/v1/fleet/check", post(fleet::check))
        .route("/api/v1/fleet/services/{namespace}/{service}", get(fleet::service))
        .route("/api/v1/fleet/upgrades", get(fleet::batches).post(fleet::propose))
        .route("/api/v1/fleet/upgrades/{id}", get(fleet::batch))
        .route("/api/v1/fleet/upgrades/{id}/approve", post(fleet::approve))
        .route("/api/v1/users", get(api::users))
        .route("/api/v1/users/{id}", get(api::user))
        .route("/api/v1/users/{id}/actions", post(api::act_on_user))
        .route("/api/webhooks/{provider}", post(pull_requests::receive_webhook))
        .route("/api/requests/{id}/pull-requests", get(pull_requests::of_request))
        .route("/api/pull-requests/{id}/merge", post(pull_requests::merge))
        .merge(crate::identity::routes(state.identity.clone()))
        .leptos_routes_with_context(
            &state,
            routes,
            move || page_state.provide_context(),
            move || app::shell(shell_options.clone()),
        )
        .route(status_page::PATH, get(status_page::get))
        // Beside the page's GET: the form posted without JavaScript.
        .route("/onboard", post(onboard::post_form))
        .route("/services/{namespace}/{service}/change", post(onboard::post_change_form))
        .route("/fleet/check", post(fleet::post_check))
        .route("/fleet/upgrades", post(fleet::post_upgrades))
        .route("/fleet/upgrades/{id}/approve", post(fleet::post_approve))
        .layer(axum::middleware::from_fn(server_fns::error_status))
        // Per matched route (the pattern, not the path), after routing.
        .route_layer(axum::middleware::from_fn(record_request))
        .fallback(leptos_axum::file_and_error_handler_with_context::<AppState, _>(
            move || fallback_state.provide_context(),
            app::shell,
        ))
        // Inside the principal's resolution: a 403 is recorded with who was refused.
        .layer(axum::middleware::from_fn_with_state(state.refusals.clone(), record_refusal))
        .layer(axum::middleware::from_fn_with_state(
            state.identity.clone(),
            session::resolve_principal,
        ))
        .layer(session_layer)
        // Outside the session layers: Prometheus' bearer token is not an API token.
        .route("/metrics", get(metrics_route::metrics))
        .layer(axum::middleware::from_fn_with_state(
            state.security.clone(),
            security::refuse_cross_site,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.security.clone(),
            security::security_headers,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.security.clone(),
            security::refuse_foreign_host,
        ))
        .layer(CompressionLayer::new())
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_response(DefaultOnResponse::new().level(Level::INFO))
                // A 503 from /readyz is a state, not a server error.
                .on_failure(DefaultOnFailure::new().level(Level::WARN)),
        )
        .with_state(state)
}

/// The pages' routes, listed once per process. Listing them runs the app with every resource
/// load suppressed process-wide (leptos_server's global `SuppressResourceLoad`): a page whose
/// resource first polled meanwhile, on another router of the same process, waited forever
/// (leptos#4773). The integration tests build a router per test, in parallel.
fn page_routes() -> Vec<AxumRouteListing> {
    static ROUTES: OnceLock<Vec<AxumRouteListing>> = OnceLock::new();
    ROUTES.get_or_init(|| generate_route_list(app::App)).clone()
}

/// Records a forbidden call (403) of a known caller as a refused attempt: the method, the
/// path and the caller. Anonymous callers get 401 and name nobody to record.
async fn record_refusal(
    State(refusals): State<Arc<Refusals>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let principal = request.extensions().get::<Principal>().cloned();
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    let response = next.run(request).await;
    if let Some(principal) = principal
        && response.status() == http::StatusCode::FORBIDDEN
    {
        refusals
            .record(Refusal {
                actor: Actor::from(&principal),
                target: Target::new("route", "", &format!("{method} {path}")),
                reason: "forbidden".into(),
                details: serde_json::json!({ "method": method.as_str(), "path": path }),
            })
            .await;
    }
    response
}

/// Records the request's duration by method, route pattern and status.
async fn record_request(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    crate::process_metrics::metrics()
        .http_requests
        .observe(&[&method, &route, response.status().as_str()], started.elapsed());
    response
}

/// The span of one request: method and path only. The query string is left out because it can
/// carry credentials (an OIDC authorization code, for one).
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    tracing::info_span!("request", method = %request.method(), path = %request.uri().path())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
