//! Acting on rotation status. [`Rotations`] rotates a service's secrets on request (the owning
//! team's developers and platform admins, with a reason) and on schedule (automatic policy,
//! generated secrets, inside the maintenance window, exactly once across replicas), and gets
//! the new value to the pods as the service's [`Delivery`] says: `reload` is the agent's work
//! (its annotations are rendered with the manifests), `restart` gathers the rotations of a
//! window into one pull request that changes the pod template's secret versions.

pub mod settings;

use std::collections::BTreeMap;
use std::sync::Arc;

use app::access::{AppError, Principal, Role};
use app::onboarding::{
    Delivery, FieldError, OnboardingRequest, OnboardingRules, RotationPolicy, Rule, SecretValue,
    ValidationErrors,
};
use app::secret_rotation::ssr::RotationService;
use app::secret_rotation::{
    CertificatePlan, PodsVersion, RolloutSummary, Rotated, SecretRotation, ServiceSecrets,
};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;
use uuid::Uuid;

use self::settings::RotationConfig;
use crate::artifacts::{ArtifactSettings, ServiceArtifacts};
use crate::audit::{self, Action, Actor, NewEvent, Outcome, Target};
use crate::cluster::Cluster;
use crate::gitops::{Gitops, Person, ProposedChange};
use crate::store::{RotationTrigger, ServiceRecord, Store};
use crate::vault::Vault;
use crate::vault::rotation_status::SecretStatus;

/// Longest reason a rotation keeps.
const MAX_REASON: usize = 1000;
/// Longest typed value of a provided secret.
const MAX_VALUE: usize = 8192;
/// How long a replica holds a rollout it is opening.
const ROLLOUT_LEASE: TimeDelta = TimeDelta::minutes(5);

/// Rotates secrets and delivers them.
pub struct Rotations {
    pub store: Store,
    pub vault: Arc<Vault>,
    pub gitops: Arc<Gitops>,
    pub config: RotationConfig,
    pub artifacts: ArtifactSettings,
    pub rules: OnboardingRules,
    /// Clusters whose Deployments tell whether the pods have the rotated versions.
    pub clusters: Vec<Arc<Cluster>>,
}

/// A live service with its approved spec and rendered artifacts.
struct Live {
    record: ServiceRecord,
    live_change: Uuid,
    spec: OnboardingRequest,
    artifacts: ServiceArtifacts,
}

fn internal(error: impl std::fmt::Display) -> AppError {
    tracing::error!(%error, "rotation failed");
    AppError::Internal("Rotation failed on the server; its log has the details.".into())
}

fn invalid(field: &str, rule: Rule, message: &str) -> AppError {
    AppError::InvalidRequest(ValidationErrors(vec![FieldError {
        field: field.to_owned(),
        rule,
        message: message.to_owned(),
    }]))
}

impl Rotations {
    /// The live service `namespace/service`, if `viewer` may see it (404 otherwise, so others
    /// learn nothing about which services exist).
    async fn live(
        &self,
        viewer: Option<&Principal>,
        namespace: &str,
        service: &str,
    ) -> Result<Live, AppError> {
        let not_found = || AppError::NotFound(format!("No live service {namespace}/{service}."));
        let record = self.store.service(namespace, service).await.map_err(internal)?;
        let record = record.filter(|r| viewer.is_none_or(|v| v.may_view_team(&r.team)));
        let record = record.ok_or_else(not_found)?;
        let live_change = record.live_change.ok_or_else(not_found)?;
        let change = self.store.request(live_change).await.map_err(internal)?;
        let change = change.ok_or_else(not_found)?;
        let spec: OnboardingRequest =
            serde_json::from_value(change.spec.clone()).map_err(internal)?;
        let artifacts = ServiceArtifacts::from_stored(
            &change.spec,
            &self.rules,
            &self.artifacts,
            record.origin,
        )
        .map_err(internal)?;
        Ok(Live { record, live_change, spec, artifacts })
    }

    /// The owning team's developers and platform admins rotate.
    fn may_rotate(actor: &Principal, team: &str) -> bool {
        actor.has(Role::PlatformAdmin) || (actor.has(Role::Developer) && actor.teams.contains(team))
    }

    /// Rotates one secret of a live service and queues its delivery; records the audit event
    /// (new version and reason, never the value).
    async fn rotate_one(
        &self,
        live: &Live,
        secret: &str,
        actor: Actor,
        trigger: RotationTrigger,
        reason: &str,
        value: Option<&SecretValue>,
        judged: Option<u64>,
    ) -> Result<Option<u64>, AppError> {
        let kv = live.artifacts.secrets.iter().find(|s| s.key == secret);
        let kv = kv.ok_or_else(|| {
            AppError::NotFound(format!("{} has no secret named `{secret}`.", live.artifacts.owner))
        })?;
        // The schedule rotates the version it judged due: a replica that judged it too, but
        // reads after another's rotation, must not rotate the new version again.
        let from = match judged {
            Some(version) => version,
            None => self.vault.current_version(&kv.path).await.map_err(internal)?,
        };
        // The claim makes a version rotate once, whoever asks (replicas, a person, the schedule).
        if !self.store.claim_rotation(&kv.path, from, trigger).await.map_err(internal)? {
            return match trigger {
                RotationTrigger::Schedule => Ok(None),
                RotationTrigger::Manual => Err(AppError::Conflict(format!(
                    "`{secret}` is being rotated from version {from} already; reload the page."
                ))),
            };
        }
        let written = self.vault.rotate_from(&kv.path, from, value, Uuid::new_v4()).await;
        let (namespace, service) = (&live.record.namespace, &live.record.service_name);
        let target = Target::new("secret", namespace, &format!("{service}/{secret}"));
        let delivery = live.spec.rotation.delivery;
        let mut details = json!({
            "path": kv.path, "previous_version": from, "trigger": trigger.as_str(),
            "reason": reason, "delivery": delivery.as_str(),
        });
        let request_id = Some(live.live_change);
        let event = |details, outcome| NewEvent {
            actor,
            action: Action::SecretRotated,
            target,
            request_id,
            details,
            outcome,
        };
        let version = match written {
            Ok(version) => version,
            Err(error) => {
                self.store.finish_rotation(&kv.path, from, None).await.map_err(internal)?;
                details["error"] = json!(error.to_string());
                let failed = event(details, Outcome::Failure);
                audit::record_alone(&self.store, failed).await.map_err(internal)?;
                return Err(AppError::Conflict(format!("`{secret}` was not rotated: {error}")));
            }
        };
        self.store.finish_rotation(&kv.path, from, Some(version)).await.map_err(internal)?;
        details["version"] = json!(version);
        if delivery == Delivery::Restart {
            let window = TimeDelta::minutes(self.config.restart_window_minutes as i64);
            let rollout = self
                .store
                .queue_rollout(namespace, service, Utc::now() + window)
                .await
                .map_err(internal)?;
            details["rollout"] = json!(rollout.id);
        }
        audit::record_alone(&self.store, event(details, Outcome::Success)).await.map_err(internal)?;
        Ok(Some(version))
    }

    /// Rotates every due generated secret of services with automatic rotation (when `now` is
    /// inside the maintenance window). Returns how many this replica rotated.
    pub async fn rotate_due(&self, now: DateTime<Utc>) -> anyhow::Result<usize> {
        if !self.config.in_window(now) {
            return Ok(0);
        }
        let mut rotated = 0;
        for record in self.store.all_services().await? {
            if record.live_change.is_none() {
                continue;
            }
            let live = match self.live(None, &record.namespace, &record.service_name).await {
                Ok(live) => live,
                Err(error) => {
                    tracing::warn!(service = %record.vault_name, %error, "cannot judge rotation");
                    continue;
                }
            };
            if live.spec.rotation.policy != RotationPolicy::Automatic {
                continue;
            }
            let paths: Vec<String> =
                live.artifacts.secrets.iter().map(|s| s.path.clone()).collect();
            let statuses = self.vault.secrets_at(&paths, now).await?;
            for (kv, status) in live.artifacts.secrets.iter().zip(statuses) {
                let due = status.due_at.is_some_and(|due| due <= now);
                if !due || status.source.as_deref() != Some("generated") {
                    continue;
                }
                let reason = format!(
                    "due since {}",
                    status.due_at.map(|d| d.to_rfc3339()).unwrap_or_default()
                );
                match self
                    .rotate_one(
                        &live,
                        &kv.key,
                        Actor::system(),
                        RotationTrigger::Schedule,
                        &reason,
                        None,
                        Some(status.current_version),
                    )
                    .await
                {
                    Ok(Some(_)) => rotated += 1,
                    Ok(None) => {}
                    Err(error) => {
                        tracing::warn!(secret = %kv.path, %error, "scheduled rotation failed")
                    }
                }
            }
        }
        Ok(rotated)
    }

    /// Opens the pull request of every restart rollout whose window has passed. Returns how
    /// many this replica opened.
    pub async fn open_due_rollouts(&self, now: DateTime<Utc>) -> anyhow::Result<usize> {
        let mut opened = 0;
        while let Some(rollout) = self.store.claim_due_rollout(now, ROLLOUT_LEASE).await? {
            let result =
                self.open_rollout(&rollout.namespace, &rollout.service_name, rollout.id).await;
            match result {
                Ok(pr) => {
                    self.store.finish_rollout(rollout.id, Ok(pr)).await?;
                    opened += 1;
                }
                // A change set in flight owns the files: the rollout waits for it.
                Err(RolloutError::Wait(reason)) => {
                    self.store
                        .postpone_rollout(rollout.id, now + TimeDelta::minutes(1), &reason)
                        .await?;
                }
                Err(RolloutError::Failed(reason)) => {
                    tracing::warn!(rollout = %rollout.id, %reason, "restart rollout failed");
                    self.store.finish_rollout(rollout.id, Err(&reason)).await?;
                }
            }
        }
        Ok(opened)
    }

    /// Renders the live service with its secrets' current versions in the pod template and
    /// proposes it.
    async fn open_rollout(
        &self,
        namespace: &str,
        service: &str,
        rollout: Uuid,
    ) -> Result<Uuid, RolloutError> {
        let failed = |e: &dyn std::fmt::Display| RolloutError::Failed(e.to_string());
        let live = self.live(None, namespace, service).await.map_err(|e| failed(&e))?;
        if let Some(open) = live.record.open_change {
            return Err(RolloutError::Wait(format!("change set {open} is in flight")));
        }
        let mut versions = BTreeMap::new();
        for kv in &live.artifacts.secrets {
            let version = self.vault.current_version(&kv.path).await.map_err(|e| failed(&e))?;
            versions.insert(kv.key.clone(), version);
        }
        let files = live.artifacts.clone().with_secret_versions(&versions).gitops_files();
        let files = files.map_err(|e| failed(&e))?;
        let meshport = Person { name: "meshport".into(), email: "meshport@localhost".into() };
        let change = ProposedChange {
            request_id: live.live_change,
            namespace: namespace.to_owned(),
            service: service.to_owned(),
            files,
            author: meshport.clone(),
            approver: meshport,
            summary: format!(
                "Restart delivery of rotated secrets: the pod template's secret versions are now {}.",
                crate::artifacts::secret_versions_value(&versions)
            ),
            changes_live: true,
        };
        let pr = self.gitops.propose_rollout(rollout, &change).await.map_err(|e| failed(&e))?;
        Ok(pr.id)
    }

    /// Runs scheduled rotations and due rollouts until the process ends.
    pub fn spawn(self: Arc<Self>, every: std::time::Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let schedule = TimeDelta::minutes(self.config.schedule_minutes as i64);
            let mut last_schedule: Option<DateTime<Utc>> = None;
            loop {
                ticks.tick().await;
                let now = Utc::now();
                if self.config.schedule_minutes > 0
                    && last_schedule.is_none_or(|last| now - last >= schedule)
                {
                    last_schedule = Some(now);
                    if let Err(error) = self.rotate_due(now).await {
                        tracing::warn!(%error, "scheduled rotation pass failed");
                    }
                }
                if let Err(error) = self.open_due_rollouts(now).await {
                    tracing::warn!(%error, "opening restart rollouts failed");
                }
            }
        })
    }

    /// Whether the pods run `version` of `secret`, read from the Deployment's annotation on
    /// the configured clusters.
    async fn pods_version(&self, live: &Live, secret: &str, version: u64) -> PodsVersion {
        if live.spec.rotation.delivery != Delivery::Restart {
            return PodsVersion::Unknown(
                "only restart delivery records the versions in the pod template".into(),
            );
        }
        if self.clusters.is_empty() {
            return PodsVersion::Unknown("no cluster is configured to read the Deployment".into());
        }
        for cluster in &self.clusters {
            let annotation = cluster
                .deployment_annotation(
                    &live.record.namespace,
                    &live.record.service_name,
                    crate::artifacts::SECRET_VERSIONS_ANNOTATION,
                )
                .await;
            match annotation {
                Ok(Some(value)) => {
                    let running = value.split(',').find_map(|pair| {
                        let (name, version) = pair.split_once('=')?;
                        (name == secret).then(|| version.parse::<u64>().ok()).flatten()
                    });
                    return match running {
                        Some(running) if running >= version => PodsVersion::Current,
                        Some(running) => PodsVersion::Behind(running),
                        None => PodsVersion::Behind(0),
                    };
                }
                Ok(None) => {}
                Err(error) => return PodsVersion::Unknown(error.to_string()),
            }
        }
        PodsVersion::Unknown("no configured cluster runs the Deployment".into())
    }
}

/// Why a rollout did not open.
enum RolloutError {
    /// Try again later.
    Wait(String),
    /// Give up, with the reason.
    Failed(String),
}

fn unix(time: Option<DateTime<Utc>>) -> Option<i64> {
    time.map(|t| t.timestamp())
}

#[async_trait::async_trait]
impl RotationService for Rotations {
    async fn secrets(
        &self,
        viewer: &Principal,
        namespace: &str,
        service: &str,
    ) -> Result<ServiceSecrets, AppError> {
        let live = self.live(Some(viewer), namespace, service).await?;
        let now = Utc::now();
        let paths: Vec<String> = live.artifacts.secrets.iter().map(|s| s.path.clone()).collect();
        let statuses = self.vault.secrets_at(&paths, now).await.map_err(internal)?;
        let plan = &live.spec.rotation;
        let mut secrets = Vec::new();
        for (kv, status) in live.artifacts.secrets.iter().zip(statuses) {
            let SecretStatus { current_version, rotated_at, due_at, judgement, .. } = status;
            let scheduled = plan.policy == RotationPolicy::Automatic
                && status.source.as_deref() == Some("generated");
            secrets.push(SecretRotation {
                name: kv.key.clone(),
                source: kv.source.as_str().to_owned(),
                version: current_version,
                rotated_at: unix(rotated_at),
                age_days: rotated_at.map(|t| (now - t).num_days()),
                due_at: unix(due_at),
                next_rotation: if scheduled {
                    unix(due_at.map(|due| self.config.next_in_window(due.max(now))))
                } else {
                    None
                },
                judgement,
                pods: self.pods_version(&live, &kv.key, current_version).await,
            });
        }
        let rollout = self.store.latest_rollout(namespace, service).await.map_err(internal)?;
        let rollout = match rollout {
            None => None,
            Some(r) => {
                let url = match r.pull_request {
                    Some(id) => self.store.pull_request(id).await.map_err(internal)?.map(|p| p.url),
                    None => None,
                };
                Some(RolloutSummary {
                    state: r.state,
                    rotations: r.rotations,
                    not_before: r.not_before.timestamp(),
                    pull_request_url: url,
                    error: r.last_error,
                })
            }
        };
        let certificate = live.spec.certificate.as_ref().map(|c| CertificatePlan {
            ttl_hours: c.ttl_hours,
            renewal: "The Vault Agent issues a new certificate before the current one expires and rewrites the file; a reload command runs after it.".into(),
            warning: (u64::from(c.ttl_hours) > u64::from(live.spec.rotation_days) * 24).then(|| {
                format!(
                    "The PKI role's TTL ({} hours) is longer than the rotation period ({} days): a certificate outlives the policy.",
                    c.ttl_hours, live.spec.rotation_days
                )
            }),
        });
        Ok(ServiceSecrets {
            service: format!("{namespace}/{service}"),
            team: live.record.team.clone(),
            rotation_days: live.spec.rotation_days,
            policy: plan.policy,
            delivery: plan.delivery,
            reload_command: plan.reload_command.clone(),
            may_rotate: Self::may_rotate(viewer, &live.record.team),
            secrets,
            rollout,
            certificate,
        })
    }

    async fn rotate(
        &self,
        actor: &Principal,
        namespace: &str,
        service: &str,
        secret: &str,
        reason: &str,
        value: Option<SecretValue>,
    ) -> Result<Rotated, AppError> {
        let live = self.live(Some(actor), namespace, service).await?;
        if !Self::may_rotate(actor, &live.record.team) {
            return Err(AppError::Forbidden(format!(
                "Only developers of team {} and platform admins rotate its secrets.",
                live.record.team
            )));
        }
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(invalid("reason", Rule::Required, "Say why the secret is rotated."));
        }
        if reason.chars().count() > MAX_REASON {
            return Err(invalid(
                "reason",
                Rule::TooLong,
                &format!("Keep the reason under {MAX_REASON} characters."),
            ));
        }
        let kv = live.artifacts.secrets.iter().find(|s| s.key == secret).ok_or_else(|| {
            AppError::NotFound(format!("{namespace}/{service} has no secret named `{secret}`."))
        })?;
        use crate::artifacts::vault_objects::ValueSource;
        match (kv.source, &value) {
            (ValueSource::Existing, _) => {
                return Err(AppError::Conflict(format!(
                    "`{secret}` is an existing secret: its owner writes it in Vault; meshport does not manage its value."
                )));
            }
            (ValueSource::Provided, None) => {
                return Err(invalid(
                    "value",
                    Rule::Required,
                    "Type the new value of this provided secret.",
                ));
            }
            (ValueSource::Provided, Some(v)) if v.expose().len() > MAX_VALUE => {
                return Err(invalid(
                    "value",
                    Rule::TooLong,
                    &format!("Keep the value under {MAX_VALUE} bytes."),
                ));
            }
            (ValueSource::Generated, Some(_)) => {
                return Err(invalid(
                    "value",
                    Rule::Conflict,
                    "A generated secret gets a new random value: leave the value empty.",
                ));
            }
            _ => {}
        }
        let version = self
            .rotate_one(
                &live,
                secret,
                Actor::from(actor),
                RotationTrigger::Manual,
                reason,
                value.as_ref(),
                None,
            )
            .await?
            .ok_or_else(|| AppError::Conflict("The secret was rotated meanwhile.".into()))?;
        let delivery = match live.spec.rotation.delivery {
            Delivery::None => {
                "The Vault Agent re-renders the file within about five minutes.".to_owned()
            }
            Delivery::Reload => format!(
                "The Vault Agent re-renders the file within {} and runs the reload command.",
                self.artifacts.render_interval
            ),
            Delivery::Restart => format!(
                "A pull request restarting the pods opens within {} minutes, with any other rotation of the service meanwhile.",
                self.config.restart_window_minutes
            ),
        };
        Ok(Rotated { secret: format!("{namespace}/{service}/{secret}"), version, delivery })
    }
}

/// Rotates the generated secret at `path` (`<namespace>/<service>/<name>` below the KV mount)
/// on behalf of `actor`, outside any service's plan (the `meshport vault rotate` command).
/// Records the audit event, a refused or failed rotation too. Returns the new version.
pub async fn rotate_secret(
    vault: &Vault,
    store: &Store,
    actor: Actor,
    path: &str,
) -> anyhow::Result<u64> {
    let mut parts = path.splitn(3, '/');
    let (Some(namespace), Some(service), Some(name)) = (parts.next(), parts.next(), parts.next())
    else {
        anyhow::bail!("`{path}` is not a secret path of the form <namespace>/<service>/<name>");
    };
    let result = vault.rotate(path).await;
    let (outcome, details) = match &result {
        Ok(version) => (Outcome::Success, json!({ "path": path, "version": version })),
        Err(error) => (Outcome::Failure, json!({ "path": path, "error": error.to_string() })),
    };
    let event = NewEvent {
        actor,
        action: Action::SecretRotated,
        target: Target::new("secret", namespace, &format!("{service}/{name}")),
        request_id: None,
        details,
        outcome,
    };
    audit::record_alone(store, event).await?;
    Ok(result?)
}
