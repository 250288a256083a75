//! Generator upgrades as change sets: an admin's batch opens one `upgrade` change set per
//! selected service that the running generator renders differently; a second admin approves
//! them one by one (the requests pages) or as a batch, confirming each change set's digest.
//! Hand edits are never overwritten silently: a service with one needs an explicit `replace`
//! or `adopt` decision, else the batch leaves it out and says why.

use app::access::{AppError, Principal, Role};
use app::fleet::{UpgradeBatch, UpgradeChange};
use app::onboarding::{HandEditDecision, RequestStatus, UpgradeSelection};
use app::request_api::Decision;
use app::request_api::ssr::RequestService;
use chrono::Utc;
use std::collections::BTreeMap;
use uuid::Uuid;

use super::Fleet;
use crate::artifacts::ArtifactFile;
use crate::errors::internal;
use crate::store::{Adoption, UpgradeBatchRecord, UpgradeChangeRecord};

/// How many batches the fleet page and API list.
const BATCHES_SHOWN: i64 = 20;

impl Fleet {
    /// Opens a batch of upgrade change sets for the services `selection` covers, requested by
    /// `admin` (a platform admin). Runs a fresh drift pass first. Refused, writing nothing,
    /// when no selected service needs an upgrade.
    pub async fn propose_upgrades(
        &self,
        admin: &Principal,
        selection: &UpgradeSelection,
    ) -> Result<UpgradeBatch, AppError> {
        if !admin.has(Role::PlatformAdmin) {
            return Err(AppError::Forbidden("Only platform admins open upgrade batches.".into()));
        }
        let admin_id: Uuid = admin.user_id.parse().map_err(internal)?;
        let report = self.check().await?;
        let version = report.generator_version.clone();
        let mut skipped = Vec::new();
        let mut chosen = Vec::new();
        for service in &report.services {
            if !selection.scope.covers(&service.namespace, &service.team) {
                continue;
            }
            let name = format!("{}/{}", service.namespace, service.service);
            if service.in_flight {
                skipped.push(format!("{name}: a change set is in flight"));
                continue;
            }
            if !service.needs_upgrade() {
                continue;
            }
            let decision = selection.decisions.get(&name).copied();
            if service.has_hand_change() && decision.is_none() {
                let paths: Vec<&str> = service
                    .files
                    .iter()
                    .filter(|f| f.class.is_hand_change())
                    .map(|f| f.path.as_str())
                    .collect();
                skipped.push(format!(
                    "{name}: hand edits in {}: decide `replace` or `adopt`",
                    paths.join(", ")
                ));
                continue;
            }
            chosen.push((service.clone(), decision));
        }
        if chosen.is_empty() {
            return Err(AppError::Conflict(format!(
                "No service of `{}` needs an upgrade it can get{}; nothing was opened.",
                selection.scope.label(),
                if skipped.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", skipped.join("; "))
                }
            )));
        }
        let batch = UpgradeBatchRecord {
            id: Uuid::new_v4(),
            requested_by: admin_id,
            selection: selection.scope.label(),
            skipped: serde_json::to_string(&skipped).map_err(internal)?,
            created_at: Utc::now(),
        };
        let mut tx = self.store.begin().await?;
        tx.create_upgrade_batch(&batch).await?;
        tx.commit().await?;
        for (service, decision) in chosen {
            let name = format!("{}/{}", service.namespace, service.service);
            let mut kept = Vec::new();
            if decision == Some(HandEditDecision::Adopt) {
                let on_base =
                    self.gitops.current_files(&service.namespace, &service.service).await?;
                for file in service.files.iter().filter(|f| f.class.is_hand_change()) {
                    if let Some((path, contents)) = on_base.iter().find(|(p, _)| *p == file.path) {
                        kept.push(ArtifactFile { path: path.clone(), contents: contents.clone() });
                    }
                }
            }
            let justification = format!(
                "Generator upgrade to meshport {version} (batch {}, {}){}.",
                batch.id,
                batch.selection,
                match decision {
                    Some(HandEditDecision::Replace) => ", replacing hand edits",
                    Some(HandEditDecision::Adopt) => ", keeping adopted hand edits",
                    None => "",
                }
            );
            let record = match self
                .requests
                .propose_upgrade(admin, &service.namespace, &service.service, &justification)
                .await
            {
                Ok(record) => record,
                Err(error) => {
                    tracing::warn!(%error, service = %name, "could not open an upgrade change set");
                    continue;
                }
            };
            let mut tx = self.store.begin().await?;
            tx.add_upgrade_change(&UpgradeChangeRecord {
                request_id: record.id,
                batch_id: batch.id,
                kept: serde_json::to_string(&kept).map_err(internal)?,
            })
            .await?;
            for file in &kept {
                let adoption = Adoption {
                    namespace: service.namespace.clone(),
                    service_name: service.service.clone(),
                    path: file.path.clone(),
                    blob_id: super::classify::blob_id(file.contents.as_bytes()),
                };
                tx.adopt_file(&adoption, admin_id).await?;
            }
            tx.commit().await?;
        }
        self.batch(batch.id).await
    }

    /// Approves every change set of batch `id` still waiting for a decision, as `admin`: a
    /// platform admin who did not request the batch. `confirmed` maps each change set id to
    /// the digest the approver saw; a change set missing from it or with another digest
    /// refuses the whole approval before anything is decided.
    pub async fn approve_batch(
        &self,
        admin: &Principal,
        id: Uuid,
        confirmed: &BTreeMap<String, String>,
    ) -> Result<usize, AppError> {
        admin.may_make_decisions()?;
        let batch = self.store.upgrade_batch(id).await?.ok_or_else(no_such_batch)?;
        if batch.requested_by.to_string() == admin.user_id {
            return Err(AppError::Forbidden(
                "The requester of a batch approves none of its change sets: another platform \
                 admin does."
                    .into(),
            ));
        }
        let mut waiting = Vec::new();
        for change in self.store.upgrade_changes(id).await? {
            let Some(record) = self.store.request(change.request_id).await? else { continue };
            if record.status != RequestStatus::Submitted {
                continue;
            }
            let seen = confirmed.get(&record.id.to_string());
            if seen.is_none() || seen != record.digest.as_ref() {
                return Err(AppError::Conflict(format!(
                    "Change set {} ({}/{}) has digest {}, not the one confirmed ({}): review \
                     the batch again; nothing was approved.",
                    record.id,
                    record.namespace,
                    record.service_name,
                    record.digest.as_deref().unwrap_or("none"),
                    seen.map_or("none", String::as_str),
                )));
            }
            waiting.push(record.id);
        }
        if waiting.is_empty() {
            return Err(AppError::Conflict(
                "No change set of this batch waits for a decision; nothing was changed.".into(),
            ));
        }
        let reason = format!("Approved with upgrade batch {id}.");
        for request in &waiting {
            self.requests.decide(admin, &request.to_string(), Decision::Approve, &reason).await?;
        }
        Ok(waiting.len())
    }

    /// One batch with its change sets.
    pub async fn batch(&self, id: Uuid) -> Result<UpgradeBatch, AppError> {
        let record = self.store.upgrade_batch(id).await?.ok_or_else(no_such_batch)?;
        self.describe(record).await
    }

    /// The newest batches.
    pub async fn batches(&self) -> Result<Vec<UpgradeBatch>, AppError> {
        let mut batches = Vec::new();
        for record in self.store.upgrade_batches(BATCHES_SHOWN).await? {
            batches.push(self.describe(record).await?);
        }
        Ok(batches)
    }

    async fn describe(&self, record: UpgradeBatchRecord) -> Result<UpgradeBatch, AppError> {
        let mut changes = Vec::new();
        for change in self.store.upgrade_changes(record.id).await? {
            let Some(request) = self.store.request(change.request_id).await? else { continue };
            let kept: Vec<ArtifactFile> = serde_json::from_str(&change.kept).unwrap_or_default();
            let pull_request =
                self.store.pull_requests_of(request.id).await?.pop().map(|pr| pr.url);
            changes.push(UpgradeChange {
                request_id: request.id.to_string(),
                namespace: request.namespace,
                service: request.service_name,
                status: request.status,
                digest: request.digest,
                kept: kept.into_iter().map(|f| f.path).collect(),
                pull_request,
            });
        }
        Ok(UpgradeBatch {
            id: record.id.to_string(),
            requested_by: record.requested_by.to_string(),
            created_at: record.created_at.to_rfc3339(),
            selection: record.selection,
            changes,
            skipped: serde_json::from_str(&record.skipped).unwrap_or_default(),
        })
    }
}

fn no_such_batch() -> AppError {
    AppError::NotFound("No such upgrade batch.".into())
}
