//! Alerts on transitions into a state that needs attention (due soon, overdue, failing,
//! expired), posted as Slack-compatible JSON (`{"text": …}`, which Slack, Mattermost and
//! Rocket.Chat incoming webhooks accept). Each transition is sent once: the store records the
//! last state per item, and only the replica whose write changed it sends. The owning team of
//! the item's service is also notified (its members by e-mail, its channel), through the
//! notification queue.

use std::sync::Arc;

use app::status_report::{StatusItem, utc};
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};

use crate::notify::{Event, Notifications};
use crate::store::{Store, StoreError};

/// Where alerts go.
pub struct Alerts {
    webhook: Option<SecretString>,
    http: reqwest::Client,
    /// The owning teams' notifications.
    notifications: Arc<Notifications>,
}

impl Alerts {
    /// Alerts posted to `webhook` (its URL is a credential: never logged).
    pub fn new(webhook: SecretString) -> Self {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Self { webhook: Some(webhook), http, notifications: Arc::default() }
    }

    /// Alerts to `webhook` if set and notifications to the owning teams if any are configured;
    /// `None` when neither is.
    pub fn configured(
        webhook: Option<SecretString>,
        notifications: Arc<Notifications>,
    ) -> Option<Self> {
        if webhook.is_none() && !notifications.enabled() {
            return None;
        }
        let alerts = Self::new(SecretString::from(String::new()));
        Some(Self { webhook, notifications, ..alerts })
    }

    /// Queues the owning team's notification of `item`'s transition: one per item, state and
    /// date, so a transition seen again after a failed post is not queued twice.
    async fn notify_team(&self, store: &Store, item: &StatusItem) -> Result<(), StoreError> {
        let Some((namespace, service)) = item.service.as_deref().and_then(|s| s.split_once('/'))
        else {
            return Ok(());
        };
        let Some(record) = store.service(namespace, service).await? else { return Ok(()) };
        let state = item.judgement.state;
        let key = format!(
            "{}:{}:{}",
            item.key(),
            state.as_str(),
            item.next_date().map(|d| d.to_string()).unwrap_or_default()
        );
        let what = format!("{} {}/{}", item.kind.label(), item.namespace, item.name);
        let state_text = state.label().to_lowercase();
        let event = Event::RotationDue {
            team: &record.team,
            namespace,
            service,
            item: &what,
            state: &state_text,
            reason: &item.judgement.reason,
            key: &key,
        };
        let mut tx = store.begin().await?;
        self.notifications.queue(&mut tx, &event).await?;
        tx.commit().await
    }

    /// Records the states of `items` and posts one message per transition into a state that
    /// needs attention. A message that cannot be delivered is retried at the next refresh.
    pub async fn notify(&self, store: &Store, items: &[StatusItem], now: DateTime<Utc>) {
        let states: Vec<(String, &'static str)> =
            items.iter().map(|i| (i.key(), i.judgement.state.as_str())).collect();
        let changed = match store.record_status_states(&states, now).await {
            Ok(changed) => changed,
            Err(error) => {
                tracing::warn!(%error, "cannot record status states; no alerts this time");
                return;
            }
        };
        for item in items {
            if !item.judgement.state.needs_attention() {
                continue;
            }
            let key = item.key();
            if !changed.contains(&key) {
                continue;
            }
            if self.notifications.enabled()
                && let Err(error) = self.notify_team(store, item).await
            {
                tracing::warn!(%error, item = %key, "cannot queue the owning team's notification");
            }
            let Some(webhook) = &self.webhook else { continue };
            if let Err(error) = self.post(webhook, item).await {
                tracing::warn!(%error, item = %key, "alert not delivered; retrying at the next refresh");
                if let Err(error) = store.forget_status_state(&key).await {
                    tracing::warn!(%error, "cannot reset the status state for a retry");
                }
            }
        }
    }

    async fn post(&self, webhook: &SecretString, item: &StatusItem) -> Result<(), String> {
        let response = self
            .http
            .post(webhook.expose_secret())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(message(item).to_string())
            .send()
            .await
            // Without the URL: reqwest's error would name it.
            .map_err(|e| format!("the alert webhook did not answer: {}", e.without_url()))?;
        if !response.status().is_success() {
            return Err(format!("the alert webhook answered {}", response.status()));
        }
        Ok(())
    }
}

/// The Slack-compatible message of one transition.
pub fn message(item: &StatusItem) -> serde_json::Value {
    let state = item.judgement.state;
    let when = item.next_date().map(|t| format!(" (date {} UTC)", utc(t))).unwrap_or_default();
    let service = item.service.as_deref().map(|s| format!(" of {s}")).unwrap_or_default();
    let text = format!(
        "[meshport] {}: {} {}/{}{service} on {}: {}{when}",
        state.label(),
        item.kind.label(),
        item.namespace,
        item.name,
        item.source,
        item.judgement.reason,
    );
    serde_json::json!({
        // Slack's control sequences (`<!channel>`, links) start with `<`: a reason quoting a
        // cluster's message must not trigger them.
        "text": text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;"),
        "meshport": {
            "key": item.key(),
            "state": state.as_str(),
            "kind": item.kind.as_str(),
            "source": item.source,
            "namespace": item.namespace,
            "name": item.name,
            "service": item.service,
            "reason": item.judgement.reason,
            "expires_at": item.expires_at,
            "renews_at": item.renews_at,
        },
    })
}
