//! The `meshport` command: `serve`, `migrate`, `dev`, `audit`, `vault` and `bootstrap`.

use std::path::PathBuf;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use meshport_server::audit::checkpoint::CheckpointKey;
use meshport_server::audit::{self, export::Format, export::Period};
use meshport_server::bootstrap::{self, BootstrapConfig, BootstrapError};
use meshport_server::config::Config;
use meshport_server::telemetry::LogFormat;
use meshport_server::{dev, open_store, rotation, serve, telemetry, vault};

/// meshport: self-service onboarding of services to the Linkerd + Vault mesh.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// TOML configuration file; `MESHPORT_*` environment variables override it. For
    /// `bootstrap`, the bootstrap configuration (see docs/bootstrap.example.toml), given here.
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
    /// Check or export the audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// meshport's Vault: its own policy, secret status, rotation.
    Vault {
        #[command(subcommand)]
        command: VaultCommand,
    },
    /// Repository drift of the live services and generator upgrades.
    Fleet {
        #[command(subcommand)]
        command: FleetCommand,
    },
    /// Write the platform's GitOps repository (Helmfile, platform manifests, ArgoCD
    /// Applications, GitHub workflows, README) for the bootstrap configuration given with
    /// `--config`.
    Bootstrap {
        /// Folder to write the repository into; created if missing, refused if not empty.
        #[arg(long)]
        out: PathBuf,
        /// Write into a non-empty folder, overwriting the generated files there.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum FleetCommand {
    /// Run a drift pass (one fetch of the base branch) and print one JSON line per live
    /// service with the class of each file: current, generator_upgrade, hand_edit, missing,
    /// extra, adopted. Exit 0 whatever drifted; for CI.
    Plan,
}

#[derive(Subcommand)]
enum VaultCommand {
    /// Print the least-privilege policy meshport's own Vault identity needs, as HCL, for the
    /// configured mounts, name prefix, onboarding namespaces and `vault.policy_mode`; with
    /// `--workload ACCESSOR`, the templated policy every workload carries in `templated` mode.
    Policy {
        /// The policy's name.
        #[arg(long, default_value = "meshport")]
        name: String,
        /// Print the workload policy instead, templated on the Kubernetes auth mount with this
        /// accessor (`bao auth list`).
        #[arg(long, value_name = "ACCESSOR")]
        workload: Option<String>,
    },
    /// Check that the KV v2, Kubernetes-auth (and with --pki, a PKI engine with an issuer and
    /// its URLs) are set up.
    Preflight {
        #[arg(long)]
        pki: bool,
    },
    /// Print the rotation status of every managed secret and PKI certificate as JSON Lines.
    Status,
    /// Write a new version of a generated secret, `<namespace>/<service>/<name>`, and record
    /// it in the audit trail.
    Rotate { path: String },
    /// Adopt the Vault objects of a service's approved spec (`<namespace>/<service>`) that
    /// exist but meshport did not create for it, so provisioning may overwrite them; recorded
    /// in the audit trail as done by the operator.
    Adopt { service: String },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Recompute the hash chain and the checkpoint signatures; exit 1 naming the first event
    /// that does not fit.
    Verify {
        /// A public key checkpoints may be signed with (from `meshport audit public-key`);
        /// repeat it for keys used before a rotation. Default: the configured signing key's
        /// and `audit.trusted_keys`.
        #[arg(long)]
        public_key: Vec<String>,
        /// Also check against the checkpoints kept in an external sink (file:///dir or
        /// s3://bucket?endpoint=…): names a cut tail and checkpoints deleted from the database.
        #[arg(long)]
        against: Option<audit::sink::Sink>,
    },
    /// Write the change-evidence report (one row per request) to standard output.
    Evidence {
        /// csv (text cells escaped for spreadsheets; csv-excel is the same) or jsonl.
        #[arg(long, default_value = "csv")]
        format: Format,
    },
    /// Print the public key that verifies the audit checkpoints (base64 Ed25519).
    PublicKey,
    /// Check that an export (with --evidence, an evidence report) is complete: it must end with
    /// a trailer matching the records before it (their count, first and last sequence number,
    /// last hash). Prints the trailer; exit 1 naming what is wrong, as for a cut-off file.
    CheckExport {
        /// The file, as exported or downloaded.
        file: PathBuf,
        /// Its format: csv, csv-excel, jsonl or ocsf.
        #[arg(long)]
        format: Format,
        /// The file is a change-evidence report (`meshport audit evidence`).
        #[arg(long)]
        evidence: bool,
    },
    /// Write the events of a period to standard output, streamed.
    Export {
        /// First instant included, RFC 3339 (for example 2026-11-01T00:00:00Z). Default: the start.
        #[arg(long)]
        from: Option<DateTime<Utc>>,
        /// First instant excluded, RFC 3339. Default: no end.
        #[arg(long)]
        to: Option<DateTime<Utc>>,
        /// csv (exact: for hash verification and tools), csv-excel (for spreadsheets: cells
        /// starting with = + - @ tab or CR get a leading '), jsonl or ocsf (OCSF 6003 API
        /// Activity as JSON Lines).
        #[arg(long, default_value = "jsonl")]
        format: Format,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
    meshport_server::install_crypto_provider();
    if let Command::Bootstrap { out, force } = &cli.command {
        // MESHPORT_CONFIG names the portal's own configuration, never a bootstrap file.
        let given = matches.value_source("config") == Some(ValueSource::CommandLine);
        return run_bootstrap(cli.config.as_deref().filter(|_| given), out, *force);
    }
    let mut config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("meshport: {error}");
            return std::process::ExitCode::from(2);
        }
    };
    match std::env::current_dir() {
        Ok(cwd) => config.resolve_paths(&cwd),
        Err(error) => {
            eprintln!("meshport: cannot read the working directory to resolve paths: {error}");
            return std::process::ExitCode::from(2);
        }
    }
    if matches!(cli.command, Command::Dev) {
        config.log_format = LogFormat::Pretty;
    }
    let telemetry = match telemetry::init(config.log_format, &config.telemetry) {
        Ok(telemetry) => telemetry,
        Err(error) => {
            eprintln!("meshport: telemetry.otlp_endpoint: {error}");
            return std::process::ExitCode::from(2);
        }
    };

    for (key, path) in config.paths_for_log() {
        tracing::info!(key, path, "path resolved");
    }

    let result = match cli.command {
        Command::Serve => serve(config).await,
        Command::Migrate => open_store(&config).await.map(|_| tracing::info!("schema up to date")),
        Command::Dev => dev::run(config).await,
        Command::Audit { command } => run_audit(&config, command).await,
        Command::Vault { command } => run_vault(&config, command).await,
        Command::Fleet { command: FleetCommand::Plan } => meshport_server::fleet::plan(&config)
            .await
            .map(|lines| lines.iter().for_each(|line| println!("{line}"))),
        Command::Bootstrap { .. } => {
            unreachable!("handled before the portal configuration is read")
        }
    };
    // The exporter's shutdown blocks until buffered spans are sent.
    let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `meshport bootstrap`: exit 2 for a configuration the user must fix, 1 for anything else.
fn run_bootstrap(
    config: Option<&std::path::Path>,
    out: &std::path::Path,
    force: bool,
) -> std::process::ExitCode {
    let Some(config) = config else {
        eprintln!(
            "meshport: bootstrap needs --config FILE, the bootstrap configuration (see docs/bootstrap.example.toml)"
        );
        return std::process::ExitCode::from(2);
    };
    let written = BootstrapConfig::load(config)
        .and_then(|config| bootstrap::render(&config))
        .and_then(|files| bootstrap::write_repository(out, &files, force).map(|()| files.len()));
    match written {
        Ok(count) => {
            println!("meshport: wrote {count} files to {}", out.display());
            std::process::ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("meshport: {error}");
            let user_error = matches!(
                error,
                BootstrapError::Parse(_)
                    | BootstrapError::Value { .. }
                    | BootstrapError::NotEmpty(_)
            );
            std::process::ExitCode::from(if user_error { 2 } else { 1 })
        }
    }
}

async fn run_audit(config: &Config, command: AuditCommand) -> anyhow::Result<()> {
    use std::io::Write;
    if let AuditCommand::CheckExport { file, format, evidence } = &command {
        // A file on its own: no database needed.
        let opened =
            std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
        let trailer = audit::export::check(opened, *format, *evidence)
            .map_err(|problem| anyhow::anyhow!("{} is not complete: {problem}", file.display()))?;
        println!("{}", serde_json::to_string(&trailer)?);
        return Ok(());
    }
    let store = open_store(config).await?;
    match command {
        AuditCommand::CheckExport { .. } => unreachable!("answered above"),
        AuditCommand::Evidence { format } => {
            // Handing out the report is evidence too: who (an operator at the command line).
            if format != Format::Ocsf {
                let event = audit::evidence_event(operator(), format);
                audit::record_alone(&store, event).await?;
            }
            let mut chunks =
                audit::evidence::stream(store.clone(), format).map_err(anyhow::Error::msg)?;
            let mut out = std::io::stdout().lock();
            while let Some(chunk) = chunks.recv().await {
                out.write_all(&chunk?).context("could not write the report")?;
            }
            out.flush()?;
        }
        AuditCommand::PublicKey => println!("{}", audit_key(config)?.public_key()),
        AuditCommand::Verify { public_key, against } => {
            let trusted = if public_key.is_empty() {
                config.audit.trusted(audit_key(config).ok().as_ref())
            } else {
                public_key
            };
            if let Some(bad) = trusted.iter().find(|k| !audit::checkpoint::is_public_key(k)) {
                anyhow::bail!("--public-key `{bad}` is not a base64 Ed25519 public key (32 bytes)");
            }
            if trusted.is_empty() {
                eprintln!(
                    "meshport: no trusted public key (--public-key or audit.signing_key): checkpoints are only \
                     checked to be signed alike, which someone able to rewrite the database could fake"
                );
            }
            let verification = match against {
                Some(sink) => {
                    let external = sink
                        .read_all()
                        .await
                        .with_context(|| format!("could not read the checkpoints of {sink}"))?;
                    audit::verify_against(&store, &trusted, &external).await?
                }
                None => audit::verify(&store, &trusted).await?,
            };
            println!("{}", serde_json::to_string_pretty(&verification)?);
            if let Some(broken) = verification.first_broken {
                anyhow::bail!(
                    "the audit trail is broken at event {}: {}",
                    broken.seq,
                    broken.reason
                );
            }
        }
        AuditCommand::Export { from, to, format } => {
            // The export is evidence too: who (an operator at the command line) and what.
            let event = audit::NewEvent {
                actor: operator(),
                action: audit::Action::ExportPerformed,
                target: audit::Target::new("audit_trail", "", format.extension()),
                request_id: None,
                details: serde_json::json!({ "format": format.extension(), "from": from, "to": to }),
                outcome: audit::Outcome::Success,
            };
            audit::record_alone(&store, event).await?;
            let mut chunks = audit::export::stream(store.clone(), Period { from, to }, format);
            let mut out = std::io::stdout().lock();
            while let Some(chunk) = chunks.recv().await {
                out.write_all(&chunk?).context("could not write the export")?;
            }
            out.flush()?;
        }
    }
    store.close().await;
    Ok(())
}

async fn run_vault(config: &Config, command: VaultCommand) -> anyhow::Result<()> {
    use std::io::Write;
    if let VaultCommand::Policy { name, workload } = &command {
        let settings = config.artifact_settings();
        let policy = match workload {
            Some(accessor) => {
                anyhow::ensure!(
                    !accessor.is_empty()
                        && accessor.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
                    "--workload takes the Kubernetes auth mount's accessor, e.g. auth_kubernetes_1a2b3c4d"
                );
                meshport_server::artifacts::workload_policy(&settings, accessor)
            }
            None => vault::portal_policy(name, &settings, &config.onboarding.namespaces),
        };
        println!("{}", policy.to_hcl().trim_end());
        return Ok(());
    }
    let vault = vault::Vault::connect(&config.vault).await?;
    let mut out = std::io::stdout().lock();
    match command {
        VaultCommand::Policy { .. } => unreachable!("answered above"),
        VaultCommand::Preflight { pki } => {
            vault.preflight(pki).await?;
            writeln!(out, "the Vault mounts are in place")?;
        }
        VaultCommand::Status => {
            let now = Utc::now();
            for secret in vault.secret_statuses(&config.onboarding.namespaces, now).await? {
                writeln!(out, "{}", serde_json::json!({ "secret": secret }))?;
            }
            for certificate in vault.pki_certificates(now).await? {
                writeln!(out, "{}", serde_json::json!({ "certificate": certificate }))?;
            }
        }
        VaultCommand::Rotate { path } => {
            let store = open_store(config).await?;
            let version =
                rotation::rotate_secret(&vault, &store, audit::Actor::system(), &path).await?;
            writeln!(out, "{path}: version {version}")?;
            store.close().await;
        }
        VaultCommand::Adopt { service } => {
            let Some((namespace, name)) = service.split_once('/') else {
                anyhow::bail!("`{service}` is not of the form <namespace>/<service>");
            };
            let store = open_store(config).await?;
            let (rules, settings) = (config.onboarding_rules(), config.artifact_settings());
            let adoption = meshport_server::adoption::Adoption {
                vault: &vault,
                store: &store,
                rules: &rules,
                settings: &settings,
            };
            let adopted = adoption.adopt(operator(), namespace, name).await?;
            if adopted.is_empty() {
                writeln!(out, "{service}: nothing to adopt")?;
            }
            for path in adopted {
                writeln!(out, "adopted {path}")?;
            }
            store.close().await;
        }
    }
    Ok(())
}

/// An operator at the command line, as the audit trail names them.
fn operator() -> audit::Actor {
    audit::Actor {
        user_id: None,
        subject: "meshport-cli".into(),
        email: String::new(),
        roles: vec!["operator".into()],
    }
}

/// The configured checkpoint key, or the one `meshport dev` keeps in the data folder.
fn audit_key(config: &Config) -> anyhow::Result<CheckpointKey> {
    match &config.audit.signing_key {
        Some(seed) => CheckpointKey::from_base64(seed),
        None if config.dev_audit_key_file().exists() => {
            CheckpointKey::load_or_create(&config.dev_audit_key_file())
        }
        None => anyhow::bail!("no audit signing key: set audit.signing_key"),
    }
}
