//! The `meshport` command: `serve`, `migrate` and `dev`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use meshport_server::config::{Config, LogFormat};
use meshport_server::{dev, open_store, serve, telemetry};

/// meshport: self-service onboarding of services to the Linkerd + Vault mesh.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// TOML configuration file; `MESHPORT_*` environment variables override it.
    #[arg(long, short, global = true, env = "MESHPORT_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the portal with the configured database, Vault and GitOps repository.
    Serve,
    /// Bring the database schema up to date, then exit.
    Migrate,
    /// Run the local demo: an OpenBao dev server, a local GitOps repository, SQLite, the portal.
    Dev,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let mut config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("meshport: {error}");
            return std::process::ExitCode::from(2);
        }
    };
    if matches!(cli.command, Command::Dev) {
        config.log_format = LogFormat::Pretty;
    }
    telemetry::init(config.log_format);

    let result = match cli.command {
        Command::Serve => serve(config).await,
        Command::Migrate => open_store(&config).await.map(|_| tracing::info!("schema up to date")),
        Command::Dev => dev::run(config).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
