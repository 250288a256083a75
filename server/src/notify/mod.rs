//! Telling people when something needs them. An [`Event`] (a change set waits for a decision,
//! was decided, failed to provision, was merged or changed after approval; a team's secret or
//! certificate needs attention) is rendered once into a message with a link to the page that
//! acts on it, and queued for each recipient and channel in the event's own transaction: e-mail
//! to people (addresses from the identity provider, unless they muted the kind) and the
//! platform's or the team's Slack-compatible webhook. [`delivery::Deliveries`] sends them.
//! Messages carry names, states and reasons, never a secret value.

pub mod delivery;
pub mod settings;

use std::collections::BTreeSet;

use app::access::{AppError, Principal};
use app::notifications::ssr::NotificationService;
use app::notifications::{FailedNotification, NotificationKind, NotificationSetting};
use uuid::Uuid;

use self::settings::NotifyConfig;
use crate::errors::internal;
use crate::store::{
    NewNotification, NotificationChannel, OnboardingRequestRecord, Recipient, Store, StoreError, Tx,
};

/// Something people should hear about.
#[derive(Clone, Copy, Debug)]
pub enum Event<'a> {
    /// A change set was submitted and waits for a decision.
    DecisionNeeded { request: &'a OnboardingRequestRecord },
    /// A change set was approved or rejected, with the admin's reason.
    Decided { request: &'a OnboardingRequestRecord, approved: bool, reason: Option<&'a str> },
    /// Provisioning stopped: its retries are spent, or it needs an admin. `attempt` tells
    /// failures after an admin's retry apart.
    ProvisioningFailed {
        request: &'a OnboardingRequestRecord,
        error: &'a str,
        job: Uuid,
        attempt: i32,
    },
    /// The change set's pull request was merged.
    PullRequestMerged { request: &'a OnboardingRequestRecord, pull_request: Uuid, url: &'a str },
    /// Commits were pushed to the pull request after its approval: a second admin checks them.
    ChangedAfterApproval { request: &'a OnboardingRequestRecord, pull_request: Uuid, url: &'a str },
    /// A secret or certificate of a team's service moved into a state that needs attention.
    RotationDue {
        team: &'a str,
        namespace: &'a str,
        service: &'a str,
        /// What it is and where, as the status page says (`secret prod-app/cart/api_key`).
        item: &'a str,
        /// `due soon`, `overdue`, `failing`, `expired`.
        state: &'a str,
        reason: &'a str,
        /// The item's status key and when the transition was recorded: one event each.
        key: &'a str,
    },
}

/// Who hears about an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Audience {
    /// Platform admins, by e-mail.
    Admins,
    /// One person, by e-mail.
    User(Uuid),
    /// A team's members, by e-mail.
    Team(String),
    /// A configured webhook: `platform` or `team:<name>`.
    Webhook(String),
}

/// An event rendered: the same words for every recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub kind: NotificationKind,
    /// One per event: duplicates of it are not queued.
    pub event_key: String,
    pub subject: String,
    /// Plain text, ending with the link.
    pub text: String,
    pub html: String,
    /// The page that acts on it.
    pub link: String,
    pub audiences: Vec<Audience>,
}

/// Renders `event` with links under `public_url`.
pub fn message(event: &Event<'_>, public_url: &str) -> Message {
    let base = public_url.trim_end_matches('/');
    let request_link = |r: &OnboardingRequestRecord| format!("{base}/requests/{}", r.id);
    let service = |r: &OnboardingRequestRecord| format!("{}/{}", r.namespace, r.service_name);
    let change = |r: &OnboardingRequestRecord| format!("{} change set for {}", r.kind, service(r));
    let requester_and_admins = |r: &OnboardingRequestRecord| {
        vec![
            Audience::User(r.requested_by),
            Audience::Admins,
            Audience::Webhook(format!("team:{}", r.team)),
            Audience::Webhook("platform".into()),
        ]
    };
    let (kind, event_key, subject, lines, link, audiences) = match *event {
        Event::DecisionNeeded { request } => (
            NotificationKind::DecisionNeeded,
            format!("decision_needed:{}", request.id),
            format!("{} waits for your decision", service(request)),
            vec![format!(
                "The {} (team {}) was submitted and waits for a platform admin's decision.",
                change(request),
                request.team
            )],
            request_link(request),
            vec![Audience::Admins, Audience::Webhook("platform".into())],
        ),
        Event::Decided { request, approved, reason } => {
            let verdict = if approved { "approved" } else { "rejected" };
            let mut lines = vec![format!("Your {} was {verdict}.", change(request))];
            if let Some(reason) = reason.filter(|r| !r.trim().is_empty()) {
                lines.push(format!("Reason: {reason}"));
            }
            if approved {
                lines.push("meshport provisions it now and opens its pull request.".into());
            }
            (
                NotificationKind::Decided,
                format!("decided:{}", request.id),
                format!("{} was {verdict}", service(request)),
                lines,
                request_link(request),
                vec![
                    Audience::User(request.requested_by),
                    Audience::Webhook(format!("team:{}", request.team)),
                ],
            )
        }
        Event::ProvisioningFailed { request, error, job, attempt } => (
            NotificationKind::ProvisioningFailed,
            format!("provisioning_failed:{job}:{attempt}"),
            format!("Provisioning {} failed", service(request)),
            vec![
                format!("Provisioning the {} stopped and needs an admin.", change(request)),
                format!("Error: {error}"),
            ],
            request_link(request),
            requester_and_admins(request),
        ),
        Event::PullRequestMerged { request, pull_request, url } => (
            NotificationKind::PullRequestMerged,
            format!("pull_request_merged:{pull_request}"),
            format!("{} was merged", service(request)),
            vec![format!("The pull request of the {} was merged: {url}", change(request))],
            request_link(request),
            requester_and_admins(request),
        ),
        Event::ChangedAfterApproval { request, pull_request, url } => (
            NotificationKind::ChangedAfterApproval,
            format!("changed_after_approval:{pull_request}"),
            format!("{} changed after approval", service(request)),
            vec![format!(
                "Commits were pushed to the pull request of the {} after its approval: a second \
                 platform admin approves the new head. {url}",
                change(request)
            )],
            request_link(request),
            requester_and_admins(request),
        ),
        Event::RotationDue { team, namespace, service, item, state, reason, key } => (
            NotificationKind::RotationDue,
            format!("rotation_due:{key}"),
            format!("{item} is {state}"),
            vec![format!("{item} of {namespace}/{service} (team {team}) is {state}: {reason}")],
            format!("{base}/status/{namespace}/{service}"),
            vec![Audience::Team(team.to_owned()), Audience::Webhook(format!("team:{team}"))],
        ),
    };
    let subject = format!("[meshport] {subject}");
    let text = format!("{}\n\nOpen it in meshport: {link}\n", lines.join("\n"));
    let paragraphs: String = lines.iter().map(|l| format!("<p>{}</p>\n", escape_html(l))).collect();
    let html = format!(
        "<!DOCTYPE html>\n<html><body>\n{paragraphs}<p><a href=\"{href}\">Open it in meshport</a></p>\n</body></html>\n",
        href = escape_html(&link),
    );
    Message { kind, event_key, subject, text, html, link, audiences }
}

/// Escapes text for HTML element content and attribute values.
fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Queues the notifications of events, in their transactions.
#[derive(Clone, Debug, Default)]
pub struct Notifications {
    /// Where links point.
    pub public_url: String,
    /// Whether e-mail is configured.
    pub email: bool,
    /// The configured webhooks' names (`platform`, `team:<name>`).
    pub webhooks: BTreeSet<String>,
}

impl Notifications {
    /// Notifications as `config` describes them, with links under `public_url`.
    pub fn new(config: &NotifyConfig, public_url: &str) -> Self {
        Self {
            public_url: public_url.to_owned(),
            email: config.email(),
            webhooks: config.webhooks().into_keys().collect(),
        }
    }

    /// Whether any channel is configured.
    pub fn enabled(&self) -> bool {
        self.email || !self.webhooks.is_empty()
    }

    /// Queues `event`'s message for each recipient who has not muted its kind and each
    /// configured webhook of its audience. Nothing when the event was queued before.
    pub async fn queue(&self, tx: &mut Tx, event: &Event<'_>) -> Result<(), StoreError> {
        let message = message(event, &self.public_url);
        let kind = message.kind.as_str();
        let mut people: Vec<Recipient> = Vec::new();
        let mut webhooks = Vec::new();
        for audience in &message.audiences {
            match audience {
                Audience::Admins if self.email => people.extend(tx.admin_recipients(kind).await?),
                Audience::User(id) if self.email => {
                    people.extend(tx.user_recipient(*id, kind).await?)
                }
                Audience::Team(team) if self.email => {
                    people.extend(tx.team_recipients(team, kind).await?)
                }
                Audience::Webhook(name) if self.webhooks.contains(name) => webhooks.push(name),
                _ => {}
            }
        }
        let row = |channel, recipient, user_id| NewNotification {
            event_key: &message.event_key,
            kind,
            channel,
            recipient,
            user_id,
            subject: &message.subject,
            body_text: &message.text,
            body_html: &message.html,
            link: &message.link,
        };
        for person in &people {
            let row = row(NotificationChannel::Email, person.email.as_str(), Some(person.id));
            tx.queue_notification(&row).await?;
        }
        for name in webhooks {
            tx.queue_notification(&row(NotificationChannel::Webhook, name.as_str(), None)).await?;
        }
        Ok(())
    }
}

/// People's notification settings and the admins' view of deliveries.
pub struct NotificationSettings {
    pub store: Store,
}

#[async_trait::async_trait]
impl NotificationService for NotificationSettings {
    async fn settings(&self, caller: &Principal) -> Result<Vec<NotificationSetting>, AppError> {
        let id: Uuid = caller.user_id.parse().map_err(internal)?;
        let muted = self.store.muted_kinds(id).await.map_err(internal)?;
        Ok(NotificationKind::ALL
            .into_iter()
            .map(|kind| NotificationSetting {
                kind,
                muted: muted.iter().any(|m| m == kind.as_str()),
            })
            .collect())
    }

    async fn set_muted(
        &self,
        caller: &Principal,
        kind: NotificationKind,
        muted: bool,
    ) -> Result<(), AppError> {
        let id: Uuid = caller.user_id.parse().map_err(internal)?;
        Ok(self.store.set_muted(id, kind.as_str(), muted).await.map_err(internal)?)
    }

    async fn failed(&self, _admin: &Principal) -> Result<Vec<FailedNotification>, AppError> {
        let failed = self.store.failed_notifications(100).await.map_err(internal)?;
        Ok(failed
            .into_iter()
            .map(|n| FailedNotification {
                id: n.id.to_string(),
                kind: n.kind,
                channel: n.channel,
                recipient: n.recipient,
                subject: n.subject,
                attempts: n.attempts,
                last_error: n.last_error,
                updated_at: n.updated_at.to_rfc3339(),
            })
            .collect())
    }

    async fn decision_queue(&self, admin: &Principal) -> Result<u64, AppError> {
        // A principal without a meshport id (an API token's) has submitted nothing.
        let id = Uuid::parse_str(&admin.user_id).unwrap_or_default();
        let count = self.store.decisions_waiting_for(id).await.map_err(internal)?;
        Ok(u64::try_from(count).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use app::onboarding::{ChangeKind, RequestStatus};
    use chrono::Utc;

    use super::*;

    fn cart() -> OnboardingRequestRecord {
        OnboardingRequestRecord {
            id: Uuid::nil(),
            kind: ChangeKind::Onboard,
            base_change: None,
            digest: None,
            version: None,
            service_name: "cart".into(),
            namespace: "prod-app".into(),
            team: "cart".into(),
            requested_by: Uuid::from_u128(7),
            justification: "baskets".into(),
            spec: serde_json::json!({}),
            status: RequestStatus::Submitted,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            decided_by: None,
            decided_at: None,
            decision_reason: None,
        }
    }

    #[test]
    fn a_submission_tells_the_admins_and_links_the_request_page() {
        let request = cart();
        let message = message(&Event::DecisionNeeded { request: &request }, "https://mp.example/");
        assert_eq!(message.subject, "[meshport] prod-app/cart waits for your decision");
        assert_eq!(message.link, format!("https://mp.example/requests/{}", Uuid::nil()));
        assert!(message.text.ends_with(&format!("Open it in meshport: {}\n", message.link)));
        assert_eq!(message.audiences, [Audience::Admins, Audience::Webhook("platform".into())]);
    }

    #[test]
    fn a_rejection_carries_its_reason_escaped_in_html() {
        let request = cart();
        let event =
            Event::Decided { request: &request, approved: false, reason: Some("<b>no</b>") };
        let message = message(&event, "https://mp.example");
        assert!(message.text.contains("Reason: <b>no</b>"), "{}", message.text);
        assert!(message.html.contains("Reason: &lt;b&gt;no&lt;/b&gt;"), "{}", message.html);
        assert_eq!(message.audiences[0], Audience::User(Uuid::from_u128(7)));
        assert_eq!(message.audiences[1], Audience::Webhook("team:cart".into()));
    }

    #[test]
    fn html_escaping_covers_markup_and_quotes() {
        assert_eq!(escape_html("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }
}
