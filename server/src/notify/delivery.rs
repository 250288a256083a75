//! Sends queued notifications: every meshport process claims due ones with a lease (like the
//! provisioning engine), so each is sent by one process; a failure that may pass is retried
//! with back-off, others (and the last attempt) mark it failed for admins to see.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use super::settings::{NotifyConfig, SmtpTls};
use crate::store::{Notification, Store, StoreError};

/// Longest wait between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(600);
/// How long a claimed notification stays with its process; a send takes far less.
const LEASE: Duration = Duration::from_secs(120);

/// Why an attempt failed, and whether a later one may succeed.
struct Failure {
    message: String,
    retryable: bool,
}

/// The SMTP server and sender of e-mail.
struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

/// Sends the notification queue.
pub struct Deliveries {
    store: Store,
    mailer: Option<Mailer>,
    /// Webhook URLs by name (credentials: never logged).
    webhooks: BTreeMap<String, SecretString>,
    http: reqwest::Client,
    /// This process's name in leases.
    owner: String,
    max_attempts: i32,
    first_retry: Duration,
}

impl Deliveries {
    /// Deliveries as `config` describes them.
    pub fn new(store: Store, config: &NotifyConfig) -> anyhow::Result<Self> {
        let mailer = config.email().then(|| mailer(config)).transpose()?;
        let http =
            reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap_or_default();
        Ok(Self {
            store,
            mailer,
            webhooks: config.webhooks(),
            http,
            owner: format!("{}-{}", std::process::id(), Uuid::new_v4().simple()),
            max_attempts: config.max_attempts,
            first_retry: Duration::from_secs(config.retry_seconds),
        })
    }

    /// Sends due notifications until the process ends, looking again after `idle`.
    pub fn spawn(self: std::sync::Arc<Self>, idle: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                match self.run_next().await {
                    Ok(Some(_)) => continue,
                    Ok(None) => {}
                    Err(error) => tracing::error!(%error, "the notification queue failed"),
                }
                tokio::time::sleep(idle).await;
            }
        })
    }

    /// Claims the next due notification and tries to send it. Its id, or `None` when none was
    /// due.
    pub async fn run_next(&self) -> Result<Option<Uuid>, StoreError> {
        let now = Utc::now();
        let lease = TimeDelta::from_std(LEASE).unwrap_or(TimeDelta::MAX);
        let Some(notification) =
            self.store.claim_notification(&self.owner, now, now + lease).await?
        else {
            return Ok(None);
        };
        let id = notification.id;
        let (state, error, retry) = match self.send(&notification).await {
            Ok(()) => ("sent", None, None),
            Err(failure) if failure.retryable && notification.attempts < self.max_attempts => {
                let at = retry_at(self.first_retry, notification.attempts, Utc::now());
                ("queued", Some(failure.message), Some(at))
            }
            Err(failure) => ("failed", Some(failure.message), None),
        };
        if let Some(error) = &error {
            tracing::warn!(notification = %id, channel = %notification.channel, state, %error, "notification not delivered");
        }
        if !self
            .store
            .end_notification_attempt(id, &self.owner, state, error.as_deref(), retry)
            .await?
        {
            tracing::warn!(notification = %id, "notification lease lost; another process took it over");
        }
        Ok(Some(id))
    }

    async fn send(&self, notification: &Notification) -> Result<(), Failure> {
        match notification.channel.as_str() {
            "email" => self.send_mail(notification).await,
            "webhook" => self.post(notification).await,
            other => {
                Err(Failure { message: format!("unknown channel `{other}`"), retryable: false })
            }
        }
    }

    async fn send_mail(&self, notification: &Notification) -> Result<(), Failure> {
        let permanent = |message: String| Failure { message, retryable: false };
        let Some(mailer) = &self.mailer else {
            // Configuration may come back on a later start: keep trying until attempts run out.
            return Err(Failure { message: "notify.smtp_host is not set".into(), retryable: true });
        };
        let to: Mailbox = notification.recipient.parse().map_err(|e| {
            permanent(format!("the address `{}` is invalid: {e}", notification.recipient))
        })?;
        let email = lettre::Message::builder()
            .from(mailer.from.clone())
            .to(to)
            .subject(notification.subject.clone())
            .multipart(MultiPart::alternative_plain_html(
                notification.body_text.clone(),
                notification.body_html.clone(),
            ))
            .map_err(|e| permanent(format!("the message could not be built: {e}")))?;
        match mailer.transport.send(email).await {
            Ok(_) => Ok(()),
            // 5xx: the server refuses for good (an unknown mailbox); anything else may pass.
            Err(error) => Err(Failure {
                retryable: !error.is_permanent(),
                message: format!("the SMTP server did not take it: {error}"),
            }),
        }
    }

    async fn post(&self, notification: &Notification) -> Result<(), Failure> {
        let Some(url) = self.webhooks.get(&notification.recipient) else {
            return Err(Failure {
                message: format!("no webhook named `{}` is configured", notification.recipient),
                retryable: false,
            });
        };
        let response = self
            .http
            .post(url.expose_secret())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(webhook_message(notification).to_string())
            .send()
            .await
            // Without the URL: reqwest's error would name it.
            .map_err(|e| Failure {
                message: format!("the webhook did not answer: {}", e.without_url()),
                retryable: true,
            })?;
        let status = response.status();
        if !status.is_success() {
            return Err(Failure {
                message: format!("the webhook answered {status}"),
                retryable: status.is_server_error() || status.as_u16() == 429,
            });
        }
        Ok(())
    }
}

fn mailer(config: &NotifyConfig) -> anyhow::Result<Mailer> {
    let host = config.smtp_host.trim();
    let mut builder =
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host).port(config.smtp_port);
    builder = builder.timeout(Some(Duration::from_secs(30)));
    if config.smtp_tls == SmtpTls::Starttls {
        let mut tls = TlsParameters::builder(host.to_owned());
        if let Some(file) = &config.smtp_ca_file {
            let pem = std::fs::read(file).map_err(|e| {
                anyhow::anyhow!("notify.smtp_ca_file: cannot read {}: {e}", file.display())
            })?;
            tls = tls.add_root_certificate(Certificate::from_pem(&pem)?);
        }
        builder = builder.tls(Tls::Required(tls.build_rustls()?));
    }
    if let (Some(user), Some(password)) = (&config.smtp_username, &config.smtp_password) {
        builder = builder
            .credentials(Credentials::new(user.clone(), password.expose_secret().to_owned()));
    }
    let from = config
        .from
        .parse()
        .map_err(|e| anyhow::anyhow!("notify.from: `{}` is not a mailbox: {e}", config.from))?;
    Ok(Mailer { transport: builder.build(), from })
}

/// The Slack-compatible message of a notification.
pub fn webhook_message(notification: &Notification) -> serde_json::Value {
    let text = format!("{}\n{}", notification.subject, notification.body_text.trim_end());
    serde_json::json!({
        // Slack's control sequences (`<!channel>`, links) start with `<`: a reason quoting
        // someone must not trigger them.
        "text": text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;"),
        "meshport": {
            "kind": notification.kind,
            "event": notification.event_key,
            "link": notification.link,
        },
    })
}

/// When attempt `attempts` (1 for the first) is retried: `first`, doubled per attempt, at most
/// [`MAX_BACKOFF`].
fn retry_at(first: Duration, attempts: i32, now: DateTime<Utc>) -> DateTime<Utc> {
    let doublings = u32::try_from(attempts.saturating_sub(1)).unwrap_or(0).min(16);
    let delay = first.saturating_mul(1 << doublings).min(MAX_BACKOFF);
    now + TimeDelta::from_std(delay).unwrap_or(TimeDelta::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_up_to_ten_minutes() {
        let now = Utc::now();
        let delay = |attempt| (retry_at(Duration::from_secs(30), attempt, now) - now).num_seconds();
        assert_eq!([delay(1), delay(2), delay(3)], [30, 60, 120]);
        assert_eq!(delay(50), 600);
    }
}
