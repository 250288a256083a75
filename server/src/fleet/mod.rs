//! The fleet: every live service's files in the GitOps repository against what the running
//! meshport renders for its approved spec (repository drift, beside the Vault drift of
//! `jobs::Engine::check_drift`), and generator upgrades proposed as change sets of kind
//! `upgrade`, in batches an admin opens and a second admin approves.
//!
//! One drift pass makes one fetch and one `git ls-tree` of `manifests/`; rendered files are
//! compared by git blob id (hashed here), so no checkout and no process per service. Each
//! rendering's digests are recorded per generator version (`store::Rendering`), so a later
//! version tells an older rendering (a generator upgrade) from a hand edit.

pub mod classify;
mod upgrade;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use app::access::{AppError, Principal, Role};
use app::fleet::{FleetReport, FleetView, ServiceDrift, UpgradeProgress};
use app::onboarding::{OnboardingRules, RequestStatus};
use chrono::Utc;

use crate::artifacts::{ArtifactFile, ArtifactSettings, ServiceArtifacts};
use crate::errors::internal;
use crate::gitops::{Gitops, GitopsError};
use crate::request_service::Requests;
use crate::store::{Rendering, Store, StoreError};

/// A drift pass failed.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error(transparent)]
    Gitops(#[from] GitopsError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the stored fleet report does not parse: {0}")]
    Corrupt(String),
}

impl From<FleetError> for AppError {
    fn from(error: FleetError) -> Self {
        match error {
            // Not meshport's fault, and an answer to act on rather than a server error.
            FleetError::Gitops(GitopsError::Git(error)) => AppError::Conflict(format!(
                "the GitOps repository could not be read, so no drift pass ran: {error}"
            )),
            FleetError::Gitops(error) => error.into(),
            FleetError::Store(error) => error.into(),
            FleetError::Corrupt(error) => internal(error),
        }
    }
}

/// The fleet over the store, the GitOps repository and the change-set service.
pub struct Fleet {
    pub store: Store,
    pub gitops: Arc<Gitops>,
    /// Where upgrade change sets are stored and decided.
    pub requests: Arc<Requests>,
    pub settings: ArtifactSettings,
    pub rules: OnboardingRules,
    /// `fleet.max_open_upgrade_prs`, shown with the progress.
    pub max_open: u32,
}

/// The renderings of `files` by generator `version` for the service's `spec`, to record.
pub fn renderings_of(
    namespace: &str,
    service: &str,
    spec: &serde_json::Value,
    version: &str,
    files: &[ArtifactFile],
) -> Vec<Rendering> {
    let spec_digest = classify::spec_digest(spec);
    files
        .iter()
        .map(|file| Rendering {
            namespace: namespace.to_owned(),
            service_name: service.to_owned(),
            spec_digest: spec_digest.clone(),
            generator_version: version.to_owned(),
            path: file.path.clone(),
            blob_id: classify::blob_id(file.contents.as_bytes()),
            sha256: classify::sha256(file.contents.as_bytes()),
        })
        .collect()
}

/// `(namespace, service)` of a file under `manifests/<namespace>/<service>/`.
fn service_folder(path: &str) -> Option<(&str, &str)> {
    let mut parts = path.strip_prefix("manifests/")?.splitn(3, '/');
    let (namespace, service, rest) = (parts.next()?, parts.next()?, parts.next()?);
    (!rest.is_empty()).then_some((namespace, service))
}

impl Fleet {
    /// Runs a drift pass over every live service and stores its report: one fetch, one tree
    /// listing, every live service rendered and compared by blob id. Renderings of the
    /// running version not recorded yet are recorded.
    #[tracing::instrument(skip_all)]
    pub async fn check(&self) -> Result<FleetReport, FleetError> {
        let (base_commit, tree) = self.gitops.manifests_tree().await?;
        let mut on_base: HashMap<(String, String), Vec<(String, String)>> = HashMap::new();
        for (path, blob) in tree {
            if let Some((namespace, service)) = service_folder(&path) {
                let key = (namespace.to_owned(), service.to_owned());
                on_base.entry(key).or_default().push((path, blob));
            }
        }
        // Recorded renderings by service and spec: `(path, blob) -> version`.
        type Older = HashMap<(String, String), String>;
        let mut known: HashMap<(String, String, String), Older> = HashMap::new();
        let mut recorded: HashSet<Rendering> = HashSet::new();
        for rendering in self.store.renderings().await? {
            let key = (
                rendering.namespace.clone(),
                rendering.service_name.clone(),
                rendering.spec_digest.clone(),
            );
            known.entry(key).or_default().insert(
                (rendering.path.clone(), rendering.blob_id.clone()),
                rendering.generator_version.clone(),
            );
            recorded.insert(rendering);
        }
        let mut adopted: HashMap<(String, String), HashSet<(String, String)>> = HashMap::new();
        for adoption in self.store.adoptions().await? {
            adopted
                .entry((adoption.namespace, adoption.service_name))
                .or_default()
                .insert((adoption.path, adoption.blob_id));
        }
        let version = self.settings.generator_version();
        let (mut services, mut new_renderings) = (Vec::new(), Vec::new());
        let no_older = Older::new();
        let no_adoptions = HashSet::new();
        for (service, live) in self.store.live_services().await? {
            let artifacts = ServiceArtifacts::from_stored(
                &live.spec,
                &self.rules,
                &self.settings,
                service.origin,
            );
            let files = match artifacts.map(|a| a.gitops_files().map_err(|e| e.to_string())) {
                Ok(Ok(files)) => files,
                Ok(Err(error)) | Err(error) => {
                    tracing::warn!(%error, service = %live.service_name, "cannot render a live service for the drift pass");
                    continue;
                }
            };
            let (namespace, name) = (service.namespace.clone(), service.service_name.clone());
            let renderings = renderings_of(&namespace, &name, &live.spec, &version, &files);
            let rendered: Vec<(String, String)> =
                renderings.iter().map(|r| (r.path.clone(), r.blob_id.clone())).collect();
            let spec_key = (namespace.clone(), name.clone(), classify::spec_digest(&live.spec));
            new_renderings.extend(renderings.into_iter().filter(|r| !recorded.contains(r)));
            let folder = (namespace.clone(), name.clone());
            let in_flight = service.open_change.is_some();
            let files = if in_flight {
                Vec::new()
            } else {
                classify::classify(
                    &rendered,
                    on_base.get(&folder).map_or(&[][..], Vec::as_slice),
                    known.get(&spec_key).unwrap_or(&no_older),
                    adopted.get(&folder).unwrap_or(&no_adoptions),
                )
            };
            services.push(ServiceDrift {
                namespace,
                service: name,
                team: service.team,
                in_flight,
                files,
            });
        }
        services.sort_by(|a, b| (&a.namespace, &a.service).cmp(&(&b.namespace, &b.service)));
        self.store.record_renderings(&new_renderings).await?;
        let checked_at = Utc::now();
        let report = FleetReport {
            checked_at: checked_at.to_rfc3339(),
            generator_version: version,
            base_commit,
            services,
        };
        let json =
            serde_json::to_string(&report).map_err(|e| FleetError::Corrupt(e.to_string()))?;
        self.store.save_fleet_report(checked_at, &json).await?;
        Ok(report)
    }

    /// The last stored report, if a pass ran.
    pub async fn report(&self) -> Result<Option<FleetReport>, FleetError> {
        match self.store.fleet_report().await? {
            Some(json) => serde_json::from_str(&json)
                .map(Some)
                .map_err(|e| FleetError::Corrupt(e.to_string())),
            None => Ok(None),
        }
    }

    /// The last report with only the services `viewer` may see.
    pub async fn visible_report(
        &self,
        viewer: &Principal,
    ) -> Result<Option<FleetReport>, AppError> {
        Ok(self.report().await?.map(|mut report| {
            report.services.retain(|s| viewer.may_view_team(&s.team));
            report
        }))
    }

    /// One service's drift from the last report, if the viewer may see it.
    pub async fn service(
        &self,
        viewer: &Principal,
        namespace: &str,
        service: &str,
    ) -> Result<ServiceDrift, AppError> {
        self.visible_report(viewer)
            .await?
            .and_then(|report| {
                report
                    .services
                    .into_iter()
                    .find(|s| s.namespace == namespace && s.service == service)
            })
            .ok_or_else(|| {
                AppError::NotFound(
                    "No such live service in the last drift pass (run one, or check the name)."
                        .into(),
                )
            })
    }

    /// The last report and the upgrade progress as Prometheus text, for `/metrics`.
    pub async fn metrics(&self, body: &mut String) -> Result<(), FleetError> {
        use crate::process_metrics::{escape, family};
        family(
            body,
            "meshport_fleet_files",
            "Files of live services in the GitOps repository by drift class (last pass).",
            "gauge",
        );
        family(
            body,
            "meshport_fleet_services",
            "Live services by their worst drift class and namespace (last pass).",
            "gauge",
        );
        family(body, "meshport_fleet_upgrades", "Upgrade change sets by progress.", "gauge");
        if let Some(report) = self.report().await? {
            let totals = report.totals();
            for class in app::fleet::DriftClass::ALL {
                body.push_str(&format!(
                    "meshport_fleet_files{{class=\"{}\"}} {}\n",
                    class.as_str(),
                    totals.of(class)
                ));
            }
            let mut services: std::collections::BTreeMap<(String, &str), u32> = Default::default();
            for service in &report.services {
                *services
                    .entry((service.namespace.clone(), service.worst().as_str()))
                    .or_default() += 1;
            }
            for ((namespace, class), count) in services {
                let namespace = escape(&namespace);
                body.push_str(&format!("meshport_fleet_services{{namespace=\"{namespace}\",class=\"{class}\"}} {count}\n"));
            }
        }
        let progress = self.progress().await?;
        for (state, count) in [
            ("submitted", progress.submitted),
            ("queued", progress.queued),
            ("open", progress.open),
            ("merged", progress.merged),
            ("ended", progress.ended),
        ] {
            body.push_str(&format!("meshport_fleet_upgrades{{state=\"{state}\"}} {count}\n"));
        }
        Ok(())
    }

    /// Upgrade change sets by progress.
    pub async fn progress(&self) -> Result<UpgradeProgress, StoreError> {
        let mut progress =
            UpgradeProgress { max_open: self.max_open, ..UpgradeProgress::default() };
        for (status, count) in self.store.upgrade_statuses().await? {
            let Ok(status) = status.parse::<RequestStatus>() else { continue };
            for _ in 0..count {
                progress.add(status);
            }
        }
        Ok(progress)
    }

    /// Runs a drift pass every `every`, for as long as the process runs.
    pub fn spawn(self: Arc<Self>, every: std::time::Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                match self.check().await {
                    Ok(report) => {
                        let drifted = report.services.iter().filter(|s| s.needs_upgrade()).count();
                        tracing::info!(drifted, "fleet drift pass done");
                    }
                    Err(error) => tracing::warn!(%error, "fleet drift pass failed"),
                }
                tokio::time::sleep(every).await;
            }
        })
    }
}

#[async_trait::async_trait]
impl app::fleet::ssr::FleetService for Fleet {
    async fn view(&self, viewer: &Principal) -> Result<FleetView, AppError> {
        let report = self.visible_report(viewer).await?;
        let mut batches = self.batches().await?;
        if !viewer.has(Role::PlatformAdmin) {
            for batch in &mut batches {
                batch.changes.retain(|c| {
                    report.as_ref().is_some_and(|r| {
                        r.services
                            .iter()
                            .any(|s| s.namespace == c.namespace && s.service == c.service)
                    })
                });
            }
        }
        Ok(FleetView { report, progress: self.progress().await?, batches })
    }
}

/// `meshport fleet plan`: a drift pass over the configured database and GitOps repository,
/// one JSON line per live service with the class of each file.
pub async fn plan(config: &crate::config::Config) -> anyhow::Result<Vec<String>> {
    let store = crate::open_store(config).await?;
    let gitops = Arc::new(Gitops::from_config(
        &config.gitops,
        &config.data_dir,
        &config.public_url(),
        store.clone(),
    )?);
    let requests = Arc::new(Requests {
        store: store.clone(),
        rules: config.onboarding_rules(),
        vault: Arc::new(crate::vault::Vault::new(&config.vault)?),
        settings: config.artifact_settings(),
        gitops: Some(gitops.clone()),
        notifications: Arc::default(),
    });
    let fleet = Fleet {
        store: store.clone(),
        gitops,
        requests,
        settings: config.artifact_settings(),
        rules: config.onboarding_rules(),
        max_open: config.fleet.max_open_upgrade_prs,
    };
    let report = fleet.check().await?;
    store.close().await;
    report
        .services
        .iter()
        .map(|service| {
            let mut line = serde_json::to_value(service)?;
            line["worst"] = serde_json::json!(service.worst());
            line["generator_version"] = serde_json::json!(report.generator_version);
            line["base_commit"] = serde_json::json!(report.base_commit);
            Ok(line.to_string())
        })
        .collect()
}
