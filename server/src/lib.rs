//! meshport's server: configuration, the HTTP layer and one module per outside system.
//! `main.rs` only parses the command line and calls into here.

pub mod adoption;
pub mod artifacts;
pub mod audit;
pub mod bootstrap;
pub mod cluster;
pub mod config;
pub mod dev;
pub mod error_chain;
pub mod errors;
pub mod fleet;
pub mod gitops;
pub mod identity;
pub mod jobs;
pub mod notify;
pub mod process_metrics;
pub mod request_service;
pub mod rotation;
pub mod status;
pub mod store;
pub mod telemetry;
pub mod vault;
pub mod web;

use std::sync::Arc;

use anyhow::Context;
use leptos::prelude::LeptosOptions;

use crate::config::Config;
use crate::store::Store;
use crate::vault::Vault;

/// Makes ring rustls' process-wide provider. Both ring and aws-lc-rs are linked, so a TLS
/// client that asks rustls for the default (kube's does) would otherwise panic. Idempotent.
pub fn install_crypto_provider() {
    // An error only says a provider is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The Leptos options for the built site described by `config`. Set here rather than read from
/// `Cargo.toml`, so the binary runs without the source tree or cargo-leptos' variables.
pub fn leptos_options(config: &Config) -> LeptosOptions {
    LeptosOptions::builder()
        .output_name(app::OUTPUT_NAME)
        .site_root(config.site_root.display().to_string())
        .site_pkg_dir("pkg")
        .site_addr(config.listen)
        .env(leptos::config::Env::PROD)
        .build()
}

/// Connects to the database and brings its schema up to date.
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    if config.database_url.is_none() {
        std::fs::create_dir_all(&config.data_dir).with_context(|| {
            format!("could not create the data folder {}", config.data_dir.display())
        })?;
    }
    let store = Store::connect(&config.database_url()).await?;
    store.migrate().await?;
    Ok(store)
}

/// How long open requests may take to finish after a shutdown signal.
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Serves the portal until Ctrl-C or SIGTERM, then finishes open requests and returns.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    serve_with(config, false).await
}

/// Serves the portal; `demo` offers the demo sign-ins (`meshport dev`, loopback only).
pub(crate) async fn serve_with(config: Config, demo: bool) -> anyhow::Result<()> {
    let store = open_store(&config).await?;
    let vault = Arc::new(Vault::new(&config.vault)?);
    // Logs in (AppRole, Kubernetes) and renews the token for as long as the server runs.
    vault.keep_logged_in(None);
    let state = web::AppState::new(&config, store.clone(), vault, demo).await?;
    state.sessions.spawn_cleanup(std::time::Duration::from_secs(600));
    // Tokens' last use is noted in memory on each request and written here, once a minute.
    state.identity.token_uses.clone().spawn_writes(store.clone(), std::time::Duration::from_secs(60));
    // Access follows the identity provider: users are asked about again on schedule.
    state.identity.spawn_revalidation();
    // Certificate and rotation status: every replica reads the sources; alerts are sent once.
    state.status.clone().spawn();
    // Refusals suppressed over the per-actor limit are summed up once their minute is over.
    state.refusals.spawn_flush();
    // The provisioning engine: every replica claims due jobs; drift is checked periodically.
    let proposals = jobs::GitopsProposals { gitops: state.gitops.clone(), store: store.clone() };
    let engine = Arc::new(
        jobs::Engine::new(
            store.clone(),
            state.vault.clone(),
            Arc::new(proposals),
            config.artifact_settings(),
            config.onboarding_rules(),
        )
        .with_lease(std::time::Duration::from_secs(config.jobs.lease_seconds))
        .with_notifications(state.requests.notifications.clone())
        .with_max_open_upgrades(config.fleet.max_open_upgrade_prs),
    );
    // Repository drift of the fleet: every replica may pass; each pass replaces the report.
    if config.fleet.drift_minutes > 0 {
        state.fleet.clone().spawn(std::time::Duration::from_secs(config.fleet.drift_minutes * 60));
    }
    engine.clone().spawn(std::time::Duration::from_millis(config.jobs.poll_millis));
    if config.jobs.drift_minutes > 0 {
        engine.spawn_drift_checks(std::time::Duration::from_secs(config.jobs.drift_minutes * 60));
    }
    // Notifications: every replica sends due ones; leases make each go out once.
    let deliveries = Arc::new(notify::delivery::Deliveries::new(store.clone(), &config.notify)?);
    deliveries.spawn(std::time::Duration::from_millis(config.notify.poll_millis));
    // Scheduled rotations and restart rollouts: every replica looks; claims make each happen once.
    state.rotations.clone().spawn(std::time::Duration::from_secs(30));
    // The local provider's state lives in meshport itself: nothing to poll.
    if config.gitops.poll_seconds > 0 && state.gitops.provider_kind() != gitops::ProviderKind::Local
    {
        state
            .gitops
            .clone()
            .spawn_polling(std::time::Duration::from_secs(config.gitops.poll_seconds));
    }
    match &state.audit_key {
        Some(key) => audit::checkpoint::spawn(
            store.clone(),
            key.clone(),
            config.audit.checkpoint_every.max(1),
            std::time::Duration::from_secs(u64::from(config.audit.checkpoint_minutes.max(1)) * 60),
            config.audit.sinks(),
        ),
        None => tracing::warn!(
            "audit.signing_key is not set: no signed checkpoints, so a cut-off tail of the audit trail would go unnoticed"
        ),
    }
    if state.identity.demo {
        tracing::warn!(
            "demo sign-ins are enabled (meshport dev on loopback); never use this for real work"
        );
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("could not listen on {}", config.listen))?;
    tracing::info!(
        "meshport listening on http://{} (public URL {})",
        listener.local_addr()?,
        config.public_url()
    );
    // After the signal, open requests get DRAIN_TIMEOUT to finish; then meshport exits anyway.
    let (signalled, drain_started) = tokio::sync::oneshot::channel();
    let server = axum::serve(listener, web::router(state)).with_graceful_shutdown(async move {
        web::shutdown_signal().await;
        let _ = signalled.send(());
    });
    let drain_deadline = async {
        match drain_started.await {
            Ok(()) => tokio::time::sleep(DRAIN_TIMEOUT).await,
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        served = server.into_future() => served?,
        () = drain_deadline => {
            tracing::warn!("requests still open {DRAIN_TIMEOUT:?} after the shutdown signal; exiting");
        }
    }
    store.close().await;
    Ok(())
}
