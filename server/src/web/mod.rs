//! The HTTP layer: the axum router with the Leptos pages and server functions, health
//! endpoints, compression and request tracing, and graceful shutdown.

mod health;

use std::sync::Arc;

use app::platform::ssr::ReadinessProbe;
use axum::Router;
use axum::extract::FromRef;
use axum::routing::get;
use leptos::prelude::*;
use leptos_axum::{LeptosRoutes, generate_route_list};
use tower_http::compression::CompressionLayer;
use tower_http::trace::{DefaultOnFailure, DefaultOnResponse, TraceLayer};
use tracing::Level;

pub use health::DependencyProbe;

use crate::store::Store;
use crate::vault::Vault;

/// What every request handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// Where the built site lives and how its bundle is named.
    pub leptos_options: LeptosOptions,
    /// meshport's database.
    pub store: Store,
    /// meshport's Vault client.
    pub vault: Arc<Vault>,
    /// Checks the database and Vault for `/readyz` and the status on the start page.
    pub readiness: Arc<dyn ReadinessProbe>,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

impl AppState {
    /// State over the given store and Vault client.
    pub fn new(leptos_options: LeptosOptions, store: Store, vault: Arc<Vault>) -> Self {
        let readiness = Arc::new(DependencyProbe::new(store.clone(), vault.clone()));
        Self { leptos_options, store, vault, readiness }
    }

    /// Makes the services server functions need reachable through Leptos context.
    fn provide_context(&self) {
        provide_context(self.readiness.clone());
    }
}

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    let routes = generate_route_list(app::App);
    let shell_options = state.leptos_options.clone();
    let context_state = state.clone();
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .leptos_routes_with_context(
            &state,
            routes,
            move || context_state.provide_context(),
            move || app::shell(shell_options.clone()),
        )
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(app::shell))
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
