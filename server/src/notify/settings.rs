//! The `[notify]` settings: the SMTP server mail goes through, the Slack-compatible webhooks of
//! the platform and of each team, and how deliveries are retried.

use std::collections::BTreeMap;
use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// STARTTLS, required: a server that does not offer it gets no mail.
    Starttls,
    /// Plain text, for a relay on the same host only.
    None,
}

/// Notifications by e-mail and webhook.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifyConfig {
    /// SMTP server host name (the certificate must name it). Default: empty, no e-mail.
    pub smtp_host: String,
    /// SMTP port. Default 587 (submission).
    pub smtp_port: u16,
    /// `starttls` (default) or `none` (a relay on loopback only).
    pub smtp_tls: SmtpTls,
    /// SMTP user name, if the server asks for one.
    pub smtp_username: Option<String>,
    /// SMTP password (never logged).
    pub smtp_password: Option<SecretString>,
    /// PEM file of a CA the SMTP server's certificate is trusted through, besides the public
    /// roots (a company CA). Default none.
    pub smtp_ca_file: Option<PathBuf>,
    /// The sender, `Name <address>`. Default `meshport <meshport@localhost>`.
    pub from: String,
    /// Incoming-webhook URL (Slack or compatible) of the platform team's channel: decisions,
    /// failures and merges. Default none.
    pub platform_webhook: Option<SecretString>,
    /// Incoming-webhook URLs of teams' channels, by team name: their change sets and their
    /// services' secrets and certificates. Default none.
    pub team_webhooks: BTreeMap<String, SecretString>,
    /// Milliseconds an idle sender waits before looking for due notifications. Default 1000.
    pub poll_millis: u64,
    /// Delivery attempts before a notification is marked failed. Default 8.
    pub max_attempts: i32,
    /// Seconds before the first retry; doubled per attempt up to 10 minutes. Default 30.
    pub retry_seconds: u64,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            smtp_host: String::new(),
            smtp_port: 587,
            smtp_tls: SmtpTls::Starttls,
            smtp_username: None,
            smtp_password: None,
            smtp_ca_file: None,
            from: "meshport <meshport@localhost>".to_owned(),
            platform_webhook: None,
            team_webhooks: BTreeMap::new(),
            poll_millis: 1000,
            max_attempts: 8,
            retry_seconds: 30,
        }
    }
}

impl NotifyConfig {
    /// Whether e-mail is configured.
    pub fn email(&self) -> bool {
        !self.smtp_host.trim().is_empty()
    }

    /// The configured webhooks by the name notifications use: `platform`, `team:<name>`.
    pub fn webhooks(&self) -> BTreeMap<String, SecretString> {
        let teams =
            self.team_webhooks.iter().map(|(team, url)| (format!("team:{team}"), url.clone()));
        self.platform_webhook
            .iter()
            .map(|url| ("platform".to_owned(), url.clone()))
            .chain(teams)
            .collect()
    }

    /// The first setting that cannot work, as (dotted key, rule).
    pub fn problem(&self) -> Option<(&'static str, &'static str)> {
        let http_url = |url: &SecretString| {
            url::Url::parse(url.expose_secret())
                .is_ok_and(|u| matches!(u.scheme(), "https" | "http"))
        };
        if self.email() && self.from.parse::<lettre::message::Mailbox>().is_err() {
            return Some((
                "notify.from",
                "must be a mailbox such as `meshport <meshport@example.com>`",
            ));
        }
        if self.smtp_username.is_some() != self.smtp_password.is_some() {
            return Some((
                "notify.smtp_username",
                "must be set together with `notify.smtp_password`",
            ));
        }
        if !self.platform_webhook.as_ref().is_none_or(http_url) {
            return Some(("notify.platform_webhook", "must be an http(s) URL"));
        }
        if !self.team_webhooks.values().all(http_url) {
            return Some(("notify.team_webhooks", "must map team names to http(s) URLs"));
        }
        if !(1..=100).contains(&self.max_attempts) || !(1..=3600).contains(&self.retry_seconds) {
            return Some((
                "notify.max_attempts",
                "must be 1 to 100 (and `notify.retry_seconds` 1 to 3600)",
            ));
        }
        None
    }
}
