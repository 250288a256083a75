//! meshport's configuration: one typed [`Config`], read once at start-up from an optional TOML
//! file and `MESHPORT_*` environment variables (nested keys joined by `__`, for example
//! `MESHPORT_VAULT__ADDR`). Every field has a documented default; secrets are [`SecretString`]s,
//! so `Debug` output never shows them. The sections of the subsystems (`vault`, `gitops`,
//! `clusters`, `telemetry`) are typed and checked in their own modules; this one composes them,
//! holds the remaining sections and names the offending key when a value is refused.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use app::onboarding::OnboardingRules;
use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::artifacts::ArtifactSettings;
use crate::cluster::{ClusterConfig, clusters_problem};
use crate::gitops::GitopsConfig;
use crate::notify::settings::NotifyConfig;
use crate::rotation::settings::RotationConfig;
use crate::telemetry::{LogFormat, TelemetryConfig};
use crate::vault::{VaultConfig, VaultLogin};

/// Namespaces of meshport and the platform, never onboarding namespaces: meshport's own Vault
/// policy lets it bind roles to the onboarding namespaces. `meshport-staging` is the KV folder
/// typed values wait in before approval, which a service's `<namespace>/<service>` must never
/// reach.
const PLATFORM_NAMESPACES: [&str; 9] = [
    "meshport",
    "kube-system",
    "kube-public",
    "linkerd",
    "cert-manager",
    "vault",
    "openbao",
    "argocd",
    crate::vault::provision::STAGING_FOLDER,
];

/// Environment variables that configure meshport start with this prefix.
pub const ENV_PREFIX: &str = "MESHPORT_";

/// The top-level keys of [`Config`]. Only `MESHPORT_*` variables naming one of them are read, so
/// other variables with the prefix (the scripts' and tests' own) are not taken for typos, while
/// an unknown key in the file or under a known section is refused.
const KEYS: [&str; 19] = [
    "listen",
    "public_url",
    "data_dir",
    "database_url",
    "site_root",
    "log_format",
    "vault",
    "gitops",
    "onboarding",
    "identity",
    "audit",
    "jobs",
    "status",
    "rotation",
    "notify",
    "clusters",
    "telemetry",
    "dev",
    "fleet",
];

/// Everything meshport can be configured with.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Socket address the HTTP server listens on. Default `127.0.0.1:3000`.
    pub listen: SocketAddr,
    /// URL users reach meshport at, used for links and redirects. Default `http://<listen>`.
    pub public_url: Option<String>,
    /// Folder for meshport's own files (SQLite database, dev services). Default `./data`.
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`. Default: SQLite at `<data_dir>/meshport.db`.
    pub database_url: Option<SecretString>,
    /// Folder holding the built site (`pkg/` with the WASM, JS and CSS). Default `target/site`.
    pub site_root: PathBuf,
    /// Log output: `json` (default) or `pretty`.
    pub log_format: LogFormat,
    /// How meshport reaches Vault or OpenBao.
    pub vault: VaultConfig,
    /// The GitOps repository meshport proposes manifests to.
    pub gitops: GitopsConfig,
    /// What services may ask for, and how their artifacts are shaped.
    pub onboarding: OnboardingConfig,
    /// Sign-in through the company's OpenID Connect provider, sessions and roles.
    pub identity: IdentityConfig,
    /// The audit trail's signed checkpoints.
    pub audit: AuditConfig,
    /// The provisioning engine.
    pub jobs: JobsConfig,
    /// Certificate and rotation status: refresh, alerts, `/metrics`.
    pub status: StatusConfig,
    /// Rotating services' secrets: schedule, maintenance window, delivery to pods.
    pub rotation: RotationConfig,
    /// Notifications by e-mail and Slack-compatible webhooks.
    pub notify: NotifyConfig,
    /// Clusters whose cert-manager certificates and Linkerd identity are shown, as
    /// `[[clusters]]` tables. Default: none.
    pub clusters: Vec<ClusterConfig>,
    /// Traces over OpenTelemetry (off by default).
    pub telemetry: TelemetryConfig,
    /// Settings of `meshport dev` only.
    pub dev: DevConfig,
    /// Repository drift and generator upgrades across the fleet.
    pub fleet: FleetConfig,
}

/// Repository drift and generator upgrades across the fleet (`[fleet]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FleetConfig {
    /// Upgrade pull requests open at once; the rest wait queued until open ones merge or
    /// close. Default 5 (1 to 100).
    pub max_open_upgrade_prs: u32,
    /// Minutes between repository drift passes; 0 turns them off. Default 15.
    pub drift_minutes: u64,
}

impl Default for FleetConfig {
    fn default() -> Self {
        Self { max_open_upgrade_prs: 5, drift_minutes: 15 }
    }
}

/// Sign-in, sessions and the mapping of identity-provider groups to roles and teams.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdentityConfig {
    /// Issuer URL of the OpenID Connect provider, exactly as its discovery document says.
    /// Default: none (sign-in disabled, except the demo sign-ins of `meshport dev`).
    pub issuer_url: Option<String>,
    /// Client id registered at the provider.
    pub client_id: String,
    /// Client secret registered at the provider.
    pub client_secret: Option<SecretString>,
    /// Scopes asked for besides `openid`. Default `["email", "profile", "groups"]`.
    pub scopes: Vec<String>,
    /// Claim holding the user's groups. Default `groups`.
    pub groups_claim: String,
    /// Claim holding the e-mail address. Default `email`.
    pub email_claim: String,
    /// Claim holding the display name. Default `name`.
    pub name_claim: String,
    /// Groups whose members are developers. Default `["developers"]`.
    pub developer_groups: Vec<String>,
    /// Groups whose members are platform admins. Default `["platform-admins"]`.
    pub admin_groups: Vec<String>,
    /// Groups whose members are auditors. Default `["auditors"]`.
    pub auditor_groups: Vec<String>,
    /// Pattern of team groups; `{team}` marks the team name. Default `team-{team}`.
    pub team_group_pattern: String,
    /// Minutes without activity after which a session ends. Default 30.
    pub session_idle_minutes: u32,
    /// Hours after sign-in after which a session ends regardless. Default 12.
    pub session_max_hours: u32,
    /// Days an API token lives when its creator does not say. Default 30; at most 365.
    pub token_days: u32,
    /// Longest life, in days, of a token that carries the platform-admin role. Default 30.
    pub admin_token_days: u32,
    /// Minutes between re-validations of each user with live sessions or tokens at the
    /// provider (refresh-token grant, then UserInfo): a user disabled there or without any
    /// meshport group loses every session and token. Any change (a POST) is preceded by a
    /// re-validation at most a minute old. 0 turns re-validation off. Default 15.
    pub revalidate_minutes: u32,
    /// Minutes after which the provider's discovery document and signing keys are fetched
    /// again (also at once when an ID token names an unknown key). Default 60.
    pub discovery_refresh_minutes: u32,
    /// Key (32 bytes, base64) sealing the refresh tokens kept for re-validation. Default: one
    /// derived from `client_secret`.
    pub encryption_key: Option<SecretString>,
}

/// The provisioning engine every meshport process runs.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobsConfig {
    /// Seconds a claimed job stays with its process without renewal; another process takes it
    /// over after that when the first died. Default 60.
    pub lease_seconds: u64,
    /// Milliseconds an idle engine waits before looking for due jobs again. Default 2000.
    pub poll_millis: u64,
    /// Minutes between drift checks of the provisioned services' Vault objects; 0 turns them
    /// off. Default 15.
    pub drift_minutes: u64,
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self { lease_seconds: 60, poll_millis: 2000, drift_minutes: 15 }
    }
}

/// Certificate and rotation status.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StatusConfig {
    /// Seconds between status refreshes. Default 60.
    pub refresh_seconds: u64,
    /// Longest wait, in seconds, between attempts to read a source that keeps failing (the
    /// wait doubles from `refresh_seconds`). Default 900.
    pub max_backoff_seconds: u64,
    /// Incoming-webhook URL (Slack or compatible) for alerts on transitions into due soon,
    /// overdue, failing or expired. Default: no alerts.
    pub alert_webhook: Option<SecretString>,
    /// Bearer token Prometheus must send to `/metrics`. Default: none, `/metrics` is open
    /// (it shows names and dates, never secret values).
    pub metrics_token: Option<SecretString>,
}

impl Default for StatusConfig {
    fn default() -> Self {
        Self {
            refresh_seconds: 60,
            max_backoff_seconds: 900,
            alert_webhook: None,
            metrics_token: None,
        }
    }
}

/// The audit trail's signed checkpoints.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// Ed25519 key (base64 of its 32-byte seed) signing checkpoints. Default: none (`meshport
    /// dev` keeps one in `<data_dir>/audit-signing.key`; `serve` then signs no checkpoints).
    pub signing_key: Option<SecretString>,
    /// Sign a checkpoint after this many new events. Default 100.
    pub checkpoint_every: u32,
    /// Sign a checkpoint at least this often while there are new events. Default 60.
    pub checkpoint_minutes: u32,
    /// Refused privileged attempts recorded per actor a minute; more are summed up in one
    /// event. Default 10.
    pub refusals_per_minute: u32,
    /// Public keys (base64 Ed25519) whose checkpoints verify, besides the signing key's: the
    /// keys used before a rotation. Default none.
    pub trusted_keys: Vec<String>,
    /// External append-only sinks every checkpoint is also sent to (URLs, see
    /// `crate::audit::sink`). Default none.
    pub sinks: Vec<String>,
}

impl AuditConfig {
    /// The public keys checkpoints may be signed with: `signing`'s, then `trusted_keys`.
    pub fn trusted(
        &self,
        signing: Option<&crate::audit::checkpoint::CheckpointKey>,
    ) -> Vec<String> {
        signing
            .map(|key| key.public_key())
            .into_iter()
            .chain(self.trusted_keys.iter().cloned())
            .collect()
    }

    /// The configured sinks, parsed (checked at start-up, so they parse).
    pub fn sinks(&self) -> Vec<crate::audit::sink::Sink> {
        self.sinks.iter().filter_map(|url| url.parse().ok()).collect()
    }
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            signing_key: None,
            checkpoint_every: 100,
            checkpoint_minutes: 60,
            refusals_per_minute: 10,
            trusted_keys: Vec::new(),
            sinks: Vec::new(),
        }
    }
}

/// What services may ask for when they join the mesh.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OnboardingConfig {
    /// Namespaces services may be onboarded into. Default `["prod-app"]`.
    pub namespaces: Vec<String>,
    /// Whether images tagged `latest` (or untagged) are accepted. Default `false`.
    pub allow_latest_tag: bool,
    /// The cluster's DNS domain, for certificate names. Default `cluster.local`.
    pub cluster_domain: String,
}

/// Settings of `meshport dev`, the local demo.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DevConfig {
    /// The OpenBao executable started as the dev Vault. Default `bao` (found on `PATH`).
    pub bao_bin: PathBuf,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 3000)),
            public_url: None,
            data_dir: PathBuf::from("data"),
            database_url: None,
            site_root: PathBuf::from("target/site"),
            log_format: LogFormat::Json,
            vault: VaultConfig::default(),
            gitops: GitopsConfig::default(),
            onboarding: OnboardingConfig::default(),
            identity: IdentityConfig::default(),
            audit: AuditConfig::default(),
            jobs: JobsConfig::default(),
            status: StatusConfig::default(),
            rotation: RotationConfig::default(),
            notify: NotifyConfig::default(),
            clusters: Vec::new(),
            telemetry: TelemetryConfig::default(),
            dev: DevConfig::default(),
            fleet: FleetConfig::default(),
        }
    }
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            issuer_url: None,
            client_id: "meshport".to_owned(),
            client_secret: None,
            scopes: ["email", "profile", "groups"].map(String::from).to_vec(),
            groups_claim: "groups".to_owned(),
            email_claim: "email".to_owned(),
            name_claim: "name".to_owned(),
            developer_groups: vec!["developers".to_owned()],
            admin_groups: vec!["platform-admins".to_owned()],
            auditor_groups: vec!["auditors".to_owned()],
            team_group_pattern: "team-{team}".to_owned(),
            session_idle_minutes: 30,
            session_max_hours: 12,
            token_days: 30,
            admin_token_days: 30,
            revalidate_minutes: 15,
            discovery_refresh_minutes: 60,
            encryption_key: None,
        }
    }
}

impl Default for OnboardingConfig {
    fn default() -> Self {
        let rules = OnboardingRules::default();
        Self {
            namespaces: rules.namespaces,
            allow_latest_tag: rules.allow_latest_tag,
            cluster_domain: "cluster.local".to_owned(),
        }
    }
}

/// `path` made absolute against `base`, without `.` components.
fn absolute_path(base: &Path, path: &Path) -> PathBuf {
    let joined = if path.is_absolute() { path.to_path_buf() } else { base.join(path) };
    joined.components().filter(|c| !matches!(c, std::path::Component::CurDir)).collect()
}

/// Whether git reads `url` from the local file system: a `file://` URL or a path. git takes a
/// colon before the first slash for scp-like ssh (`git@host:repo`).
fn is_local_repo_url(url: &str) -> bool {
    if url.starts_with("file://") {
        return true;
    }
    let scp_like =
        url.find(':').is_some_and(|colon| url.find('/').is_none_or(|slash| colon < slash));
    !url.contains("://") && !scp_like
}

/// A local repository URL made absolute (keeping `file://`); remote URLs unchanged.
fn absolute_repo_url(base: &Path, url: &str) -> String {
    if !is_local_repo_url(url) {
        return url.to_owned();
    }
    match url.strip_prefix("file://") {
        Some(path) => format!("file://{}", absolute_path(base, Path::new(path)).display()),
        None => absolute_path(base, Path::new(url)).display().to_string(),
    }
}

/// A SQLite URL whose file path is made absolute (in memory and other databases unchanged).
fn absolute_sqlite_url(base: &Path, url: &str) -> String {
    let Some(rest) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) else {
        return url.to_owned();
    };
    let (path, query) = rest.split_once('?').map_or((rest, None), |(p, q)| (p, Some(q)));
    if path.is_empty() || path == ":memory:" || path.starts_with('/') {
        return url.to_owned();
    }
    let query = query.map(|q| format!("?{q}")).unwrap_or_default();
    format!("sqlite://{}{query}", absolute_path(base, Path::new(path)).display())
}

impl Default for DevConfig {
    fn default() -> Self {
        Self { bao_bin: PathBuf::from("bao") }
    }
}

/// The configuration could not be read, or a value would make invalid artifacts.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file or variable could not be parsed, or names an unknown key.
    #[error("invalid configuration: {0}")]
    Parse(#[from] Box<figment::Error>),
    /// A value is well-typed but not usable.
    #[error("invalid configuration: `{key}` {rule}")]
    Value {
        /// The key, dotted.
        key: &'static str,
        /// What it must be.
        rule: &'static str,
    },
}

impl Config {
    /// Reads the configuration: defaults, then `file` (if given), then `MESHPORT_*` variables.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::new();
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        // Each variable is merged as a string: `extract_lossy` turns strings into numbers and
        // booleans where a field wants one, while a token made of digits stays a string.
        let variables = Env::prefixed(ENV_PREFIX).split("__").filter(|key| {
            let top = key.as_str().split('.').next().unwrap_or_default();
            KEYS.iter().any(|k| k.eq_ignore_ascii_case(top))
        });
        for (key, value) in variables.iter() {
            figment = figment.merge((key.as_str().to_owned(), value));
        }
        let config: Self = figment.extract_lossy().map_err(|e| ConfigError::Parse(Box::new(e)))?;
        config.check()?;
        Ok(config)
    }

    /// Refuses values that would end up malformed in Vault paths, policy names or annotations:
    /// they come from the platform team, but a typo must stop start-up, not reach a cluster.
    fn check(&self) -> Result<(), ConfigError> {
        // Only the first problem is reported, so the order of the sections is kept.
        let problem = self
            .gitops
            .problem()
            .or_else(|| self.vault.problem())
            .or_else(|| self.own_problem())
            .or_else(|| self.rotation.problem())
            .or_else(|| self.notify.problem())
            .or_else(|| self.telemetry.problem())
            .or_else(|| clusters_problem(&self.clusters));
        match problem {
            Some((key, rule)) => Err(ConfigError::Value { key, rule }),
            None => Ok(()),
        }
    }

    /// The first problem of the sections without a module of their own, as (dotted key, rule).
    fn own_problem(&self) -> Option<(&'static str, &'static str)> {
        let is_label = app::onboarding::is_dns_label;
        let identity = &self.identity;
        let checks: [(&'static str, bool, &'static str); 16] = [
            (
                "fleet.max_open_upgrade_prs",
                (1..=100).contains(&self.fleet.max_open_upgrade_prs),
                "must be between 1 and 100",
            ),
            (
                "onboarding.namespaces",
                !self.onboarding.namespaces.is_empty()
                    && self.onboarding.namespaces.iter().all(|n| is_label(n) && n.len() <= 63),
                "must list at least one namespace, each a DNS label",
            ),
            (
                "onboarding.namespaces",
                !self
                    .onboarding
                    .namespaces
                    .iter()
                    .any(|n| PLATFORM_NAMESPACES.contains(&n.as_str())),
                "must not name meshport's or the platform's own namespaces (meshport, kube-system, \
                 kube-public, linkerd, cert-manager, vault, openbao, argocd) nor meshport-staging: \
                 roles bound there would let a service log in as the platform",
            ),
            (
                "onboarding.cluster_domain",
                self.onboarding.cluster_domain.split('.').all(is_label),
                "must be a DNS name such as `cluster.local`",
            ),
            (
                "identity.issuer_url",
                identity.issuer_url.as_deref().is_none_or(|url| {
                    url::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "https" | "http"))
                }),
                "must be an http(s) URL",
            ),
            (
                "identity.team_group_pattern",
                identity.team_group_pattern.matches("{team}").count() == 1,
                "must contain `{team}` exactly once, as in `team-{team}`",
            ),
            (
                "identity.session_idle_minutes",
                identity.session_idle_minutes >= 1 && identity.session_max_hours >= 1,
                "and `session_max_hours` must be at least 1",
            ),
            (
                "jobs.lease_seconds",
                (3..=3600).contains(&self.jobs.lease_seconds)
                    && (100..=60_000).contains(&self.jobs.poll_millis),
                "must be 3 to 3600 (and `jobs.poll_millis` 100 to 60000)",
            ),
            (
                "identity.token_days",
                (1..=365).contains(&identity.token_days),
                "must be between 1 and 365",
            ),
            (
                "identity.admin_token_days",
                (1..=365).contains(&identity.admin_token_days),
                "must be between 1 and 365",
            ),
            (
                "identity.revalidate_minutes",
                identity.revalidate_minutes <= 1440
                    && (1..=1440).contains(&identity.discovery_refresh_minutes),
                "must be 0 to 1440 (and `identity.discovery_refresh_minutes` 1 to 1440)",
            ),
            (
                "status.refresh_seconds",
                (5..=86_400).contains(&self.status.refresh_seconds)
                    && self.status.max_backoff_seconds >= self.status.refresh_seconds,
                "must be 5 to 86400 (and `status.max_backoff_seconds` at least as long)",
            ),
            (
                "status.alert_webhook",
                self.status.alert_webhook.as_ref().is_none_or(|url| {
                    url::Url::parse(url.expose_secret())
                        .is_ok_and(|u| matches!(u.scheme(), "https" | "http"))
                }),
                "must be an http(s) URL",
            ),
            (
                "audit.refusals_per_minute",
                (1..=1000).contains(&self.audit.refusals_per_minute),
                "must be 1 to 1000",
            ),
            (
                "audit.trusted_keys",
                self.audit.trusted_keys.iter().all(|k| crate::audit::checkpoint::is_public_key(k)),
                "must list base64 Ed25519 public keys (32 bytes), as `meshport audit public-key` prints them",
            ),
            (
                "audit.sinks",
                self.audit.sinks.iter().all(|url| url.parse::<crate::audit::sink::Sink>().is_ok()),
                crate::audit::sink::SINK_RULE,
            ),
        ];
        checks.into_iter().find(|(_, ok, _)| !ok).map(|(key, _, rule)| (key, rule))
    }

    /// Makes every path of the configuration absolute against `base`, the working directory at
    /// start-up. git runs inside the working clone and child processes elsewhere, so a relative
    /// path (the default `data`, a `file://` or bare-path repository URL, a SQLite file) would
    /// otherwise name another place in each of them.
    pub fn resolve_paths(&mut self, base: &Path) {
        let absolute = |path: &mut PathBuf| *path = absolute_path(base, path);
        absolute(&mut self.data_dir);
        absolute(&mut self.site_root);
        self.vault.ca_cert.iter_mut().for_each(absolute);
        if let VaultLogin::Kubernetes { jwt_path, .. } = &mut self.vault.login {
            absolute(jwt_path);
        }
        self.gitops.cache_dir.iter_mut().for_each(absolute);
        self.gitops.ssh_key.iter_mut().for_each(absolute);
        if let Some(url) = &mut self.gitops.repo_url {
            *url = absolute_repo_url(base, url);
        }
        if let Some(url) = &mut self.database_url {
            *url = absolute_sqlite_url(base, url.expose_secret()).into();
        }
        self.clusters.iter_mut().for_each(|c| c.kubeconfig.iter_mut().for_each(absolute));
        // A bare command name is looked up on PATH; only a path with a folder is resolved.
        if self.dev.bao_bin.components().count() > 1 {
            absolute(&mut self.dev.bao_bin);
        }
    }

    /// The file paths meshport works with, for the start-up log (never a credential).
    pub fn paths_for_log(&self) -> Vec<(&'static str, String)> {
        let database = self.database_url();
        let database = database.expose_secret();
        let mut paths = vec![
            ("data_dir", self.data_dir.display().to_string()),
            ("site_root", self.site_root.display().to_string()),
            ("gitops.cache_dir", self.gitops_cache_dir().display().to_string()),
        ];
        if database.starts_with("sqlite:") {
            paths.push(("database_url", database.to_owned()));
        }
        if is_local_repo_url(&self.gitops_repo_url()) {
            paths.push(("gitops.repo_url", self.gitops_repo_url()));
        }
        paths
    }

    /// The URL users reach meshport at: the configured one, or the listen address over http.
    pub fn public_url(&self) -> String {
        self.public_url.clone().unwrap_or_else(|| format!("http://{}", self.listen))
    }

    /// The database URL: the configured one, or SQLite in the data folder.
    pub fn database_url(&self) -> SecretString {
        self.database_url.clone().unwrap_or_else(|| {
            format!("sqlite://{}", self.data_dir.join("meshport.db").display()).into()
        })
    }

    /// The GitOps repository URL: the configured one, or the local repository in the data folder.
    pub fn gitops_repo_url(&self) -> String {
        self.gitops.repo_url_in(&self.data_dir)
    }

    /// The rules the onboarding validator applies, in the browser and on the server.
    pub fn onboarding_rules(&self) -> OnboardingRules {
        OnboardingRules {
            namespaces: self.onboarding.namespaces.clone(),
            allow_latest_tag: self.onboarding.allow_latest_tag,
        }
    }

    /// The settings that shape a service's manifests and Vault objects.
    pub fn artifact_settings(&self) -> ArtifactSettings {
        ArtifactSettings {
            annotation_prefix: self.vault.annotation_prefix.clone(),
            kv_mount: self.vault.kv_mount.clone(),
            kubernetes_auth_mount: self.vault.kubernetes_auth_mount.clone(),
            pki_mount: self.vault.pki_mount.clone(),
            name_prefix: self.vault.name_prefix.clone(),
            token_ttl: self.vault.role_token_ttl,
            token_max_ttl: self.vault.role_token_max_ttl,
            audience: self.vault.role_audience.clone(),
            cluster_domain: self.onboarding.cluster_domain.clone(),
            vault_port: self.vault.agent_port,
            tls_secret: Some(self.vault.tls_secret.clone()).filter(|s| !s.is_empty()),
            ca_cert_path: self.vault.ca_cert_path.clone(),
            policy_mode: self.vault.policy_mode,
            render_interval: self.rotation.render_interval.clone(),
            extra_annotation: None,
        }
    }

    /// Where `meshport dev` keeps its audit checkpoint key when none is configured.
    pub fn dev_audit_key_file(&self) -> PathBuf {
        self.data_dir.join("audit-signing.key")
    }

    /// Where `meshport dev` keeps its local bare GitOps repository.
    pub fn local_gitops_repo(&self) -> PathBuf {
        crate::gitops::local_repository(&self.data_dir)
    }

    /// meshport's working clone of the GitOps repository.
    pub fn gitops_cache_dir(&self) -> PathBuf {
        self.gitops.cache_dir_in(&self.data_dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gitops::ProviderKind;
    use figment::Jail;

    #[test]
    fn defaults_apply_without_file_or_environment() {
        Jail::expect_with(|_| {
            let config = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(config.listen.to_string(), "127.0.0.1:3000");
            assert_eq!(config.public_url(), "http://127.0.0.1:3000");
            assert_eq!(config.database_url().expose_secret(), "sqlite://data/meshport.db");
            assert_eq!(config.gitops_repo_url(), "data/gitops.git");
            assert_eq!(config.vault.kv_mount, "secret");
            assert_eq!(config.log_format, LogFormat::Json);
            Ok(())
        });
    }

    #[test]
    fn environment_overrides_file_and_nests_with_double_underscore() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "meshport.toml",
                r#"
                listen = "0.0.0.0:8080"
                log_format = "pretty"
                [vault]
                addr = "https://vault.example:8200"
                kv_mount = "kv"
                "#,
            )?;
            jail.set_env("MESHPORT_VAULT__ADDR", "https://bao.internal:8200");
            jail.set_env("MESHPORT_VAULT__TOKEN", "12345");
            jail.set_env("MESHPORT_DATA_DIR", "/var/lib/meshport");
            jail.set_env("MESHPORT_PUBLIC_URL", "https://meshport.example.com");
            jail.set_env("MESHPORT_CONFIG", "ignored: names the file, not a setting");
            jail.set_env("MESHPORT_E2E_URL", "ignored: not a setting");
            let config =
                Config::load(Some(Path::new("meshport.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(config.listen.to_string(), "0.0.0.0:8080");
            assert_eq!(config.log_format, LogFormat::Pretty);
            assert_eq!(config.vault.addr, "https://bao.internal:8200");
            assert_eq!(config.vault.kv_mount, "kv");
            assert_eq!(config.public_url(), "https://meshport.example.com");
            assert_eq!(config.vault.token.as_ref().unwrap().expose_secret(), "12345");
            assert_eq!(
                config.database_url().expose_secret(),
                "sqlite:///var/lib/meshport/meshport.db"
            );
            Ok(())
        });
    }

    #[test]
    fn values_that_would_break_artifacts_are_refused_with_the_key() {
        Jail::expect_with(|jail| {
            for (key, value) in [
                ("MESHPORT_VAULT__KV_MOUNT", "secret/../sys"),
                ("MESHPORT_VAULT__ANNOTATION_PREFIX", "vault hashicorp"),
                ("MESHPORT_VAULT__NAME_PREFIX", "Mesh\""),
                ("MESHPORT_ONBOARDING__CLUSTER_DOMAIN", "cluster..local"),
            ] {
                jail.set_env(key, value);
                let error = Config::load(None).unwrap_err().to_string();
                let dotted = key.trim_start_matches("MESHPORT_").replace("__", ".").to_lowercase();
                assert!(error.contains(&dotted), "{key}: {error}");
                jail.clear_env();
            }
            jail.create_file("meshport.toml", "[onboarding]\nnamespaces = []\n")?;
            let error = Config::load(Some(Path::new("meshport.toml"))).unwrap_err().to_string();
            assert!(error.contains("onboarding.namespaces"), "{error}");
            jail.create_file(
                "meshport.toml",
                "[onboarding]\nnamespaces = [\"prod-app\", \"meshport\"]\n",
            )?;
            let error = Config::load(Some(Path::new("meshport.toml"))).unwrap_err().to_string();
            assert!(
                error.contains("onboarding.namespaces") && error.contains("platform"),
                "{error}"
            );
            // Typed values wait in the KV folder of that name; no service may live under it.
            let staging = "[onboarding]\nnamespaces = [\"meshport-staging\"]\n";
            jail.create_file("meshport.toml", staging)?;
            let error = Config::load(Some(Path::new("meshport.toml"))).unwrap_err().to_string();
            assert!(error.contains("onboarding.namespaces"), "{error}");
            jail.create_file("meshport.toml", "[vault]\ntls_secret = \"Vault CA\"\n")?;
            let error = Config::load(Some(Path::new("meshport.toml"))).unwrap_err().to_string();
            assert!(error.contains("vault.tls_secret"), "{error}");
            jail.create_file("meshport.toml", "[vault]\npolicy_mode = \"per-team\"\n")?;
            let error = Config::load(Some(Path::new("meshport.toml"))).unwrap_err().to_string();
            assert!(error.contains("policy_mode"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn a_misspelt_key_is_refused_with_its_name() {
        Jail::expect_with(|jail| {
            jail.create_file("meshport.toml", "databse_url = \"postgres://db/meshport\"\n")?;
            let error = Config::load(Some(Path::new("meshport.toml"))).unwrap_err().to_string();
            assert!(error.contains("databse_url"), "{error}");
            jail.set_env("MESHPORT_VAULT__CA_CERTS", "/etc/ca.pem");
            let error = Config::load(None).unwrap_err().to_string();
            assert!(error.contains("ca_certs"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn every_top_level_key_is_read_from_the_environment() {
        Jail::expect_with(|jail| {
            jail.set_env("MESHPORT_SITE_ROOT", "/srv/site");
            jail.set_env("MESHPORT_GITOPS__BASE_BRANCH", "production");
            jail.set_env("MESHPORT_DEV__BAO_BIN", "/opt/bao");
            let config = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(config.site_root, Path::new("/srv/site"));
            assert_eq!(config.gitops.base_branch, "production");
            assert_eq!(config.dev.bao_bin, Path::new("/opt/bao"));
            Ok(())
        });
    }

    #[test]
    fn gitops_settings_that_cannot_work_are_refused_with_the_key() {
        let github = "provider = \"github\"\nrepo_url = \"https://github.com/shop/gitops.git\"\n";
        let complete = format!("{github}owner = \"shop\"\nrepo = \"gitops\"\ntoken = \"t\"\n");
        Jail::expect_with(|jail| {
            for (gitops, key) in [
                ("provider = \"github\"\n".to_owned(), "gitops.repo_url"),
                (github.to_owned(), "gitops.owner"),
                (format!("{github}owner = \"shop\"\nrepo = \"gitops\"\n"), "gitops.token"),
                (format!("{complete}auto_merge = true\n"), "gitops.auto_merge"),
                (format!("{complete}labels = [\"a,b\"]\n"), "gitops.labels"),
                (format!("{complete}reviewers = [\"--upload-pack\"]\n"), "gitops.reviewers"),
                (complete.replace("github", "gitea"), "gitops.api_url"),
                ("provider = \"gitlab\"\nrepo_url = \"git@gitlab.example:shop/gitops.git\"\napi_url = \"https://gitlab.example\"\ntoken = \"t\"\n".to_owned(), "gitops.project"),
                ("api_url = \"gitlab.example\"\n".to_owned(), "gitops.api_url"),
                ("repo_url = \"https://github.com/shop/gitops.git\"\n".to_owned(), "gitops.repo_url"),
                (complete.replace("https://", "https://x:ghp_secret@"), "gitops.repo_url"),
                ("base_branch = \"main branch\"\n".to_owned(), "gitops.base_branch"),
                ("base_branch = \"-f\"\n".to_owned(), "gitops.base_branch"),
                ("base_branch = \"a..b\"\n".to_owned(), "gitops.base_branch"),
                ("push_retries = 50\n".to_owned(), "gitops.push_retries"),
                ("poll_seconds = 5\n".to_owned(), "gitops.poll_seconds"),
            ] {
                jail.create_file("meshport.toml", &format!("[gitops]\n{gitops}"))?;
                let error = Config::load(Some(Path::new("meshport.toml"))).unwrap_err().to_string();
                assert!(error.contains(&format!("`{key}`")), "{gitops}: {error}");
            }
            jail.create_file("meshport.toml", &format!("[gitops]\n{complete}"))?;
            let config =
                Config::load(Some(Path::new("meshport.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(config.gitops.provider, ProviderKind::Github);
            assert_eq!(config.gitops_cache_dir(), Path::new("data/gitops-cache"));
            jail.set_env("MESHPORT_GITOPS__WEBHOOK_SECRET", "whsec-very-secret");
            let config =
                Config::load(Some(Path::new("meshport.toml"))).map_err(|e| e.to_string())?;
            assert!(!format!("{config:?}").contains("whsec-very-secret"));
            Ok(())
        });
    }

    #[test]
    fn relative_paths_are_resolved_against_the_working_directory() {
        Jail::expect_with(|jail| {
            let base = Path::new("/home/dev/meshport");
            let mut config = Config::load(None).map_err(|e| e.to_string())?;
            config.resolve_paths(base);
            assert_eq!(config.data_dir, Path::new("/home/dev/meshport/data"));
            assert_eq!(config.site_root, Path::new("/home/dev/meshport/target/site"));
            assert_eq!(config.gitops_repo_url(), "/home/dev/meshport/data/gitops.git");
            assert_eq!(
                config.gitops_cache_dir(),
                Path::new("/home/dev/meshport/data/gitops-cache")
            );
            assert_eq!(
                config.database_url().expose_secret(),
                "sqlite:///home/dev/meshport/data/meshport.db"
            );
            assert_eq!(
                config.dev_audit_key_file(),
                Path::new("/home/dev/meshport/data/audit-signing.key")
            );

            jail.set_env("MESHPORT_DATA_DIR", "./state");
            jail.set_env("MESHPORT_DATABASE_URL", "sqlite:db/m.db?mode=rwc");
            jail.set_env("MESHPORT_GITOPS__REPO_URL", "file://repos/gitops.git");
            jail.set_env("MESHPORT_GITOPS__SSH_KEY", "keys/id");
            jail.set_env("MESHPORT_VAULT__CA_CERT", "../ca.pem");
            jail.set_env("MESHPORT_DEV__BAO_BIN", "tools/bao");
            let mut config = Config::load(None).map_err(|e| e.to_string())?;
            config.resolve_paths(base);
            assert_eq!(config.data_dir, Path::new("/home/dev/meshport/state"));
            assert_eq!(
                config.database_url().expose_secret(),
                "sqlite:///home/dev/meshport/db/m.db?mode=rwc"
            );
            assert_eq!(config.gitops_repo_url(), "file:///home/dev/meshport/repos/gitops.git");
            assert_eq!(
                config.gitops.ssh_key.as_deref(),
                Some(Path::new("/home/dev/meshport/keys/id"))
            );
            assert_eq!(
                config.vault.ca_cert.as_deref(),
                Some(Path::new("/home/dev/meshport/../ca.pem"))
            );
            assert_eq!(config.dev.bao_bin, Path::new("/home/dev/meshport/tools/bao"));

            for (url, kept) in [
                ("https://github.com/shop/gitops.git", true),
                ("git@github.com:shop/gitops.git", true),
                ("ssh://git@host/gitops.git", true),
                ("/srv/gitops.git", true),
                ("gitops.git", false),
            ] {
                assert_eq!(absolute_repo_url(base, url) == url, kept, "{url}");
            }
            for url in ["sqlite::memory:", "sqlite:///abs/m.db", "postgres://u:p@db/m"] {
                assert_eq!(absolute_sqlite_url(base, url), url);
            }
            let logged = format!("{:?}", config.paths_for_log());
            assert!(logged.contains("/home/dev/meshport/state"), "{logged}");
            Ok(())
        });
    }

    #[test]
    fn debug_output_redacts_secrets() {
        Jail::expect_with(|jail| {
            jail.set_env("MESHPORT_VAULT__TOKEN", "hvs.very-secret-token");
            jail.set_env("MESHPORT_DATABASE_URL", "postgres://meshport:pg-password@db/meshport");
            let config = Config::load(None).map_err(|e| e.to_string())?;
            let debug = format!("{config:?}");
            assert!(!debug.contains("very-secret-token"), "{debug}");
            assert!(!debug.contains("pg-password"), "{debug}");
            Ok(())
        });
    }

    #[test]
    fn a_missing_file_or_a_bad_value_is_an_error_naming_it() {
        Jail::expect_with(|jail| {
            let missing = Config::load(Some(Path::new("nope.toml"))).unwrap_err().to_string();
            assert!(missing.contains("nope.toml"), "{missing}");
            jail.set_env("MESHPORT_LOG_FORMAT", "xml");
            let bad = Config::load(None).unwrap_err().to_string();
            assert!(bad.contains("log_format") && bad.contains("xml"), "{bad}");
            Ok(())
        });
    }
}
