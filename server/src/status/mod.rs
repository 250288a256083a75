//! Certificate and rotation status: one [`StatusBoard`] reads every source (Vault's KV secrets
//! and PKI certificates, and each configured cluster) in the background, keeps the latest
//! [`StatusReport`] for the pages and `/metrics`, backs off from sources that fail (showing
//! their last good items as such), and sends an alert once per transition into a state that
//! needs attention.

pub mod alerts;
pub mod prometheus;
pub mod timeline;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use app::access::AppError;
use app::onboarding::OnboardingRules;
use app::status_report::{
    ItemKind, ServiceStatus, SourceHealth, StatusItem, StatusOverview, StatusReport,
};
use chrono::{DateTime, TimeDelta, Utc};
use futures_util::future::join_all;

use crate::artifacts::{ArtifactSettings, ServiceArtifacts};
use crate::cluster::{Cluster, Labels, SERVICE_LABELS, ServiceOwner};
use crate::store::{Store, StoreError};
use crate::vault::Vault;

/// The source name of Vault's items.
pub const VAULT_SOURCE: &str = "vault";

/// Days the timeline covers.
pub const TIMELINE_DAYS: i64 = 90;

/// Onboarded services: which namespace holds which, and their secrets' KV paths.
#[derive(Clone, Debug, Default)]
pub struct ServiceIndex {
    by_namespace: BTreeMap<String, BTreeSet<String>>,
    secret_paths: Vec<(String, String)>,
}

impl ServiceIndex {
    /// Adds a service and the KV paths of its secrets.
    pub fn add(&mut self, namespace: &str, service: &str, secret_paths: Vec<String>) {
        self.by_namespace.entry(namespace.to_owned()).or_default().insert(service.to_owned());
        let owner = format!("{namespace}/{service}");
        self.secret_paths.extend(secret_paths.into_iter().map(|p| (p, owner.clone())));
    }

    /// The onboarded services (`namespace/service`) and their requests' secrets, from the
    /// store: services with an open or merged pull request. A request's secret paths never
    /// change, so `known` keeps them from one refresh to the next instead of rendering every
    /// request's artifacts each time.
    pub async fn load(
        store: &Store,
        rules: &OnboardingRules,
        settings: &ArtifactSettings,
        known: &Mutex<HashMap<uuid::Uuid, Vec<String>>>,
    ) -> Result<Self, crate::store::StoreError> {
        let mut index = Self::default();
        let live = store.live_services().await?;
        let mut known = known.lock().unwrap_or_else(|e| e.into_inner());
        known.retain(|id, _| live.iter().any(|(_, r)| r.id == *id));
        for (service, request) in live {
            let paths = known.entry(request.id).or_insert_with(|| {
                ServiceArtifacts::from_stored(&request.spec, rules, settings, service.origin)
                    .map(|a| a.secrets.iter().map(|s| s.path.clone()).collect())
                    .unwrap_or_default()
            });
            index.add(&request.namespace, &request.service_name, paths.clone());
        }
        Ok(index)
    }

    /// The service an object in `namespace` belongs to: named by a workload label, or the
    /// longest service name that is the object's name or its prefix before a `-`.
    pub fn owner(&self, namespace: &str, name: &str, labels: &Labels) -> Option<String> {
        let services = self.by_namespace.get(namespace)?;
        let labelled =
            SERVICE_LABELS.iter().filter_map(|l| labels.get(*l)).find(|v| services.contains(*v));
        let service = labelled.or_else(|| {
            services
                .iter()
                .filter(|s| {
                    name == s.as_str()
                        || name.strip_prefix(s.as_str()).is_some_and(|r| r.starts_with('-'))
                })
                .max_by_key(|s| s.len())
        })?;
        Some(format!("{namespace}/{service}"))
    }

    /// The service a certificate for `dns_name` (`<service>.<namespace>.svc…`) belongs to.
    pub fn owner_of_dns(&self, dns_name: &str) -> Option<(String, String)> {
        let mut labels = dns_name.split('.');
        let (service, namespace) = (labels.next()?, labels.next()?);
        (labels.next() == Some("svc") && self.by_namespace.get(namespace)?.contains(service))
            .then(|| (namespace.to_owned(), format!("{namespace}/{service}")))
    }

    /// Namespaces holding onboarded services.
    pub fn namespaces(&self) -> impl Iterator<Item = &String> {
        self.by_namespace.keys()
    }
}

impl ServiceOwner for ServiceIndex {
    fn owner(&self, namespace: &str, name: &str, labels: &Labels) -> Option<String> {
        ServiceIndex::owner(self, namespace, name, labels)
    }
}

/// One source's latest items and health.
#[derive(Debug, Default)]
struct SourceState {
    items: Vec<StatusItem>,
    failures: u32,
    health: Option<SourceHealth>,
}

/// How often to refresh and how far to back off.
#[derive(Clone, Debug)]
pub struct Refresh {
    pub every: Duration,
    pub max_backoff: Duration,
}

/// Reads every source and keeps the latest report.
pub struct StatusBoard {
    store: Store,
    vault: Arc<Vault>,
    rules: OnboardingRules,
    settings: ArtifactSettings,
    clusters: Vec<Arc<Cluster>>,
    refresh: Refresh,
    alerts: Option<alerts::Alerts>,
    sources: Mutex<BTreeMap<String, SourceState>>,
    report: RwLock<Arc<StatusReport>>,
    /// The overview's HTML and the report it was rendered from (`/status` serves it until
    /// the next report).
    overview_html: RwLock<Option<(Arc<StatusReport>, Arc<str>)>>,
    /// Secret paths per onboarded request, kept across refreshes.
    secret_paths: Mutex<HashMap<uuid::Uuid, Vec<String>>>,
}

impl StatusBoard {
    pub fn new(
        store: Store,
        vault: Arc<Vault>,
        rules: OnboardingRules,
        settings: ArtifactSettings,
        clusters: Vec<Arc<Cluster>>,
        refresh: Refresh,
        alerts: Option<alerts::Alerts>,
    ) -> Self {
        Self {
            store,
            vault,
            rules,
            settings,
            clusters,
            refresh,
            alerts,
            sources: Mutex::new(BTreeMap::new()),
            report: RwLock::new(Arc::new(StatusReport::default())),
            overview_html: RwLock::new(None),
            secret_paths: Mutex::new(HashMap::new()),
        }
    }

    /// The latest report.
    pub fn report(&self) -> Arc<StatusReport> {
        self.report.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Jobs by state, for `/metrics`: the queue's depth beside the report.
    pub async fn job_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        self.store.job_counts().await
    }

    /// Reads every source that is due at `now` (a failed one waits out its back-off), then
    /// publishes the report and sends the alerts of the transitions it saw.
    pub async fn refresh(&self, now: DateTime<Utc>) -> Arc<StatusReport> {
        let loaded =
            ServiceIndex::load(&self.store, &self.rules, &self.settings, &self.secret_paths).await;
        let services = match loaded {
            Ok(services) => services,
            Err(error) => {
                tracing::warn!(%error, "status refresh: cannot list the onboarded services");
                return self.report();
            }
        };
        let services = Arc::new(services);
        let mut cluster_reads = Vec::new();
        for cluster in self.clusters.iter().filter(|c| self.is_due(c.name(), now)).cloned() {
            let namespaces = match cluster.config.namespaces.is_empty() {
                true => self.rules.namespaces.clone(),
                false => cluster.config.namespaces.clone(),
            };
            let services = services.clone();
            cluster_reads.push(async move {
                let read = cluster.read(&namespaces, services.as_ref(), now).await;
                (cluster.name().to_owned(), read.map_err(|e| e.to_string()))
            });
        }
        let vault_due = self.is_due(VAULT_SOURCE, now);
        let vault = async {
            match vault_due {
                true => Some((VAULT_SOURCE.to_owned(), self.read_vault(&services, now).await)),
                false => None,
            }
        };
        let (vault, clusters) = futures_util::join!(vault, join_all(cluster_reads));
        let fresh: Vec<(String, Result<Vec<StatusItem>, String>)> =
            vault.into_iter().chain(clusters).collect();
        let mut read_now = Vec::new();
        let report = {
            let mut sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
            for (name, read) in fresh {
                let state = sources.entry(name.clone()).or_default();
                match read {
                    Ok(items) => {
                        state.failures = 0;
                        state.items = items;
                        state.health = Some(SourceHealth {
                            name: name.clone(),
                            reachable: true,
                            error: None,
                            last_success: Some(now.timestamp()),
                            retry_at: None,
                        });
                        read_now.push(name);
                    }
                    Err(error) => {
                        state.failures += 1;
                        let wait = self.backoff(state.failures);
                        tracing::warn!(source = %name, %error, ?wait, "status source unreachable");
                        let last_success = state.health.as_ref().and_then(|h| h.last_success);
                        state.health = Some(SourceHealth {
                            name: name.clone(),
                            reachable: false,
                            error: Some(error),
                            last_success,
                            retry_at: Some((now + wait).timestamp()),
                        });
                    }
                }
            }
            let mut items: Vec<StatusItem> =
                sources.values().flat_map(|s| s.items.iter().cloned()).collect();
            sort(&mut items);
            let health = sources.values().filter_map(|s| s.health.clone()).collect();
            Arc::new(StatusReport { generated_at: now.timestamp(), sources: health, items })
        };
        *self.report.write().unwrap_or_else(|e| e.into_inner()) = report.clone();
        if let Some(alerts) = &self.alerts {
            // Only items read just now can have changed; stale ones keep their recorded state.
            let current: Vec<StatusItem> =
                report.items.iter().filter(|i| read_now.contains(&i.source)).cloned().collect();
            alerts.notify(&self.store, &current, now).await;
        }
        report
    }

    /// Refreshes every `every`, for as long as the process runs.
    pub fn spawn(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                self.refresh(Utc::now()).await;
                return_free_memory();
                tokio::time::sleep(self.refresh.every).await;
            }
        })
    }

    /// Whether a source is due: read it unless it is backing off after failures.
    fn is_due(&self, name: &str, now: DateTime<Utc>) -> bool {
        let sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        sources
            .get(name)
            .and_then(|s| s.health.as_ref()?.retry_at)
            .is_none_or(|retry| now.timestamp() >= retry)
    }

    /// The wait after `failures` failures in a row: the refresh period, doubling, capped.
    fn backoff(&self, failures: u32) -> TimeDelta {
        let wait = self.refresh.every.saturating_mul(1 << failures.saturating_sub(1).min(16));
        TimeDelta::from_std(wait.min(self.refresh.max_backoff)).unwrap_or(TimeDelta::MAX)
    }

    /// Vault's items: every onboarded service's secrets by path, and the newest certificate
    /// per common name of the PKI engine (older ones were replaced, not lost).
    async fn read_vault(
        &self,
        services: &ServiceIndex,
        now: DateTime<Utc>,
    ) -> Result<Vec<StatusItem>, String> {
        let paths: Vec<String> = services.secret_paths.iter().map(|(p, _)| p.clone()).collect();
        let (secrets, certificates) = futures_util::join!(
            self.vault.secrets_at(&paths, now),
            self.vault.pki_certificates(now)
        );
        let (secrets, certificates) =
            (secrets.map_err(|e| e.to_string())?, certificates.map_err(|e| e.to_string())?);
        let mut items: Vec<StatusItem> = secrets
            .into_iter()
            .zip(&services.secret_paths)
            .map(|(secret, (_, owner))| {
                let (namespace, name) = secret.path.split_once('/').unwrap_or(("", &secret.path));
                StatusItem {
                    kind: ItemKind::Secret,
                    source: VAULT_SOURCE.to_owned(),
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                    service: Some(owner.clone()),
                    expires_at: secret.due_at.map(|t| t.timestamp()),
                    renews_at: None,
                    judgement: secret.judgement,
                }
            })
            .collect();
        // The newest certificate per name: the ones it replaced no longer matter.
        let mut newest: BTreeMap<String, (DateTime<Utc>, StatusItem)> = BTreeMap::new();
        for certificate in certificates {
            let owner = certificate
                .dns_names
                .iter()
                .chain([&certificate.common_name])
                .find_map(|n| services.owner_of_dns(n));
            let (namespace, service) = owner.map_or((String::new(), None), |(ns, s)| (ns, Some(s)));
            let name = match certificate.is_ca {
                true => format!("issuer {}", certificate.common_name),
                false => certificate.common_name.clone(),
            };
            if newest.get(&name).is_some_and(|(issued, _)| *issued >= certificate.not_before) {
                continue;
            }
            let item = StatusItem {
                kind: ItemKind::VaultCertificate,
                source: VAULT_SOURCE.to_owned(),
                namespace,
                name: name.clone(),
                service,
                expires_at: Some(certificate.not_after.timestamp()),
                renews_at: None,
                judgement: certificate.judgement,
            };
            newest.insert(name, (certificate.not_before, item));
        }
        items.extend(newest.into_values().map(|(_, item)| item));
        Ok(items)
    }

    /// The overview, from the latest report.
    pub fn overview(&self) -> StatusOverview {
        Self::overview_of(&self.report())
    }

    /// The overview rendered by `render`: once per report, then the same HTML until the next
    /// report is published. The cached report is held, so its address cannot be reused by a
    /// newer one.
    pub fn overview_html(&self, render: &dyn Fn(StatusOverview) -> String) -> Arc<str> {
        let report = self.report();
        let cached = self.overview_html.read().unwrap_or_else(|e| e.into_inner());
        if let Some((of, html)) = cached.as_ref()
            && Arc::ptr_eq(of, &report)
        {
            return html.clone();
        }
        drop(cached);
        let html: Arc<str> = render(Self::overview_of(&report)).into();
        *self.overview_html.write().unwrap_or_else(|e| e.into_inner()) =
            Some((report, html.clone()));
        html
    }

    fn overview_of(report: &StatusReport) -> StatusOverview {
        let now = report.generated_at;
        let attention: Vec<StatusItem> = report
            .items
            .iter()
            .filter(|i| i.judgement.state.needs_attention())
            .take(StatusOverview::LISTED)
            .cloned()
            .collect();
        let mut soonest: Vec<&StatusItem> =
            report.items.iter().filter(|i| i.next_date().is_some()).collect();
        soonest.sort_by_key(|i| i.next_date());
        StatusOverview {
            generated_at: now,
            sources: report.sources.clone(),
            counts: report.counts(),
            attention,
            soonest: soonest.into_iter().take(StatusOverview::LISTED).cloned().collect(),
            timeline_svg: timeline::render(&report.items, now, TIMELINE_DAYS),
        }
    }

    /// One service's items, from the latest report.
    pub fn service(&self, namespace: &str, service: &str) -> ServiceStatus {
        let report = self.report();
        let owner = format!("{namespace}/{service}");
        let items: Vec<StatusItem> =
            report.items.iter().filter(|i| i.service.as_deref() == Some(&owner)).cloned().collect();
        ServiceStatus {
            timeline_svg: timeline::render(&items, report.generated_at, TIMELINE_DAYS),
            service: owner,
            generated_at: report.generated_at,
            sources: report.sources.clone(),
            items,
        }
    }
}

/// Hands the memory the allocator holds free back to the kernel. A refresh builds a report of
/// every service and drops the last one; glibc keeps freed memory in its per-thread arenas, so
/// an idle meshport would otherwise hold every refresh's peak for good.
fn return_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases memory that is free, under the allocator's own locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Worst state first, then the soonest date, then by key.
fn sort(items: &mut [StatusItem]) {
    items.sort_by(|a, b| {
        b.judgement
            .state
            .cmp(&a.judgement.state)
            .then(a.next_date().unwrap_or(i64::MAX).cmp(&b.next_date().unwrap_or(i64::MAX)))
            .then_with(|| a.key().cmp(&b.key()))
    });
}

#[async_trait::async_trait]
impl app::status_report::ssr::StatusService for StatusBoard {
    async fn overview(&self) -> Result<StatusOverview, AppError> {
        Ok(StatusBoard::overview(self))
    }

    fn overview_html(&self, render: &dyn Fn(StatusOverview) -> String) -> Arc<str> {
        StatusBoard::overview_html(self, render)
    }

    async fn service(&self, namespace: &str, service: &str) -> Result<ServiceStatus, AppError> {
        Ok(StatusBoard::service(self, namespace, service))
    }
}
