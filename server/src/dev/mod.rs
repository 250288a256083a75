//! `meshport dev`: the whole portal on one machine. Starts an OpenBao dev server with the KV v2
//! and Kubernetes-auth mounts, a local bare GitOps repository (seeded with `meshport bootstrap`'s
//! platform for the example configuration; the `local` pull request provider) and SQLite under
//! the data folder, then serves the portal until Ctrl-C or SIGTERM, and stops OpenBao on the way
//! out.

mod openbao;
mod process;

pub use openbao::{OpenBaoDevError, OpenBaoDevServer};
pub use process::{ServiceProcess, free_loopback_port, free_loopback_port_pair};

use anyhow::Context;
use secrecy::ExposeSecret;

use crate::config::Config;
use crate::gitops;

/// Writes `BAO_ADDR`/`BAO_TOKEN` (and the `VAULT_*` twins) for the `bao` or `vault` CLI, and
/// `MESHPORT_VAULT__ADDR` for `meshport vault …`, readable by the owner only: the demo's Vault is
/// for inspecting what meshport created.
fn write_bao_env(path: &std::path::Path, addr: &str, token: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)?;
    writeln!(file, "export BAO_ADDR={addr} VAULT_ADDR={addr} MESHPORT_VAULT__ADDR={addr}")?;
    writeln!(file, "export BAO_TOKEN={token} VAULT_TOKEN={token}")
}

/// Runs the local demo until a shutdown signal.
pub async fn run(mut config: Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir).with_context(|| {
        format!("could not create the data folder {}", config.data_dir.display())
    })?;

    let openbao =
        OpenBaoDevServer::start(&config.dev.bao_bin, &config.data_dir.join("openbao.log")).await?;
    // The configured mounts and names stay; address and credentials are the dev server's.
    let dev_vault = openbao.vault_config();
    config.vault.addr = dev_vault.addr;
    config.vault.token = dev_vault.token;
    config.vault.namespace = None;
    config.vault.ca_cert = None;
    crate::vault::Vault::new(&config.vault)?
        .ensure_mounts()
        .await
        .context("could not enable the Vault mounts")?;
    let env_file = config.data_dir.join("openbao.env");
    write_bao_env(&env_file, openbao.addr(), openbao.root_token().expose_secret())
        .with_context(|| format!("could not write {}", env_file.display()))?;
    tracing::info!(
        addr = openbao.addr(),
        env = %env_file.display(),
        "OpenBao dev server ready (in memory, root token); `source` the env file to use the bao CLI"
    );

    let repo = config.local_gitops_repo();
    let branch = config.gitops.base_branch.clone();
    // Seeded with the platform of the example bootstrap configuration, as a real repository
    // would be, so proposals land beside it under `manifests/<namespace>/<service>/`.
    let seed = crate::bootstrap::render(&crate::bootstrap::BootstrapConfig::example())?;
    let created = tokio::task::spawn_blocking({
        let repo = repo.clone();
        move || gitops::init_local_repository(&repo, &branch, &seed)
    })
    .await??;
    tracing::info!(repo = %repo.display(), created, "local GitOps repository ready");
    // The demo has no forge: pull requests live on the local repository and an admin merges
    // them in meshport (or `gitops.auto_merge` does).
    config.gitops.repo_url = Some(repo.display().to_string());
    config.gitops.provider = gitops::ProviderKind::Local;

    if config.audit.signing_key.is_none() {
        let key =
            crate::audit::checkpoint::CheckpointKey::load_or_create(&config.dev_audit_key_file())
                .context("could not read or create the dev audit signing key")?;
        config.audit.signing_key = Some(key.seed_base64());
    }

    let served = crate::serve_with(config, true).await;
    tokio::task::spawn_blocking(move || openbao.stop()).await?;
    served
}
