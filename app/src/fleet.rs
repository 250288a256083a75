//! The fleet of onboarded services against what meshport renders today: each file of each live
//! service classified (current, generator upgrade, hand edit, missing, extra, adopted), counts
//! by namespace and team, and the upgrade batches an admin opened. The `/fleet` page, the REST
//! API, `/metrics` and `meshport fleet plan` all read these types.

use std::collections::BTreeMap;

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::access::AppError;
use crate::onboarding::RequestStatus;

/// How a file of a live service in the repository compares with the running generator's
/// rendering of the service's approved spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum DriftClass {
    /// The file is what meshport renders today.
    Current,
    /// A hand edit an admin adopted: the upgrade keeps it.
    Adopted,
    /// The file is an older meshport version's rendering of the same spec.
    GeneratorUpgrade,
    /// meshport renders the file; the repository lacks it.
    Missing,
    /// The repository has a file in the service's folder that meshport does not render.
    Extra,
    /// The file differs from every rendering any meshport version recorded for the spec.
    HandEdit,
}

impl DriftClass {
    /// Every class, mildest first.
    pub const ALL: [DriftClass; 6] = [
        Self::Current,
        Self::Adopted,
        Self::GeneratorUpgrade,
        Self::Missing,
        Self::Extra,
        Self::HandEdit,
    ];

    /// The stable name (JSON, metrics, forms).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Current => "current",
            Self::Adopted => "adopted",
            Self::GeneratorUpgrade => "generator_upgrade",
            Self::Missing => "missing",
            Self::Extra => "extra",
            Self::HandEdit => "hand_edit",
        }
    }

    /// Whether someone changed the repository by hand: an upgrade would overwrite it, so it
    /// needs an explicit decision.
    pub fn is_hand_change(self) -> bool {
        matches!(self, Self::HandEdit | Self::Extra)
    }
}

/// One file of a service and its class.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct FileDrift {
    /// `manifests/<namespace>/<service>/<file>`.
    pub path: String,
    pub class: DriftClass,
    /// For a generator upgrade: the meshport version whose rendering the repository holds.
    pub rendered_by: Option<String>,
}

/// One live service's files against today's rendering.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ServiceDrift {
    pub namespace: String,
    pub service: String,
    pub team: String,
    /// A change set is in flight: the repository is expected to differ until it merges, so
    /// its files are not classified.
    pub in_flight: bool,
    /// Every file, path order.
    pub files: Vec<FileDrift>,
}

impl ServiceDrift {
    /// The service's worst class (`current` when every file is).
    pub fn worst(&self) -> DriftClass {
        self.files.iter().map(|f| f.class).max().unwrap_or(DriftClass::Current)
    }

    /// Whether an upgrade change set would change the repository.
    pub fn needs_upgrade(&self) -> bool {
        !self.in_flight
            && self
                .files
                .iter()
                .any(|f| !matches!(f.class, DriftClass::Current | DriftClass::Adopted))
    }

    /// Whether the repository holds hand changes an upgrade must not overwrite silently.
    pub fn has_hand_change(&self) -> bool {
        self.files.iter().any(|f| f.class.is_hand_change())
    }
}

/// The last drift pass over the whole fleet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct FleetReport {
    /// RFC 3339.
    pub checked_at: String,
    /// The generator version the files were compared with.
    pub generator_version: String,
    /// The base branch's commit the pass read.
    pub base_commit: String,
    pub services: Vec<ServiceDrift>,
}

/// Files per class in one group (a namespace, a team, or the whole fleet).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ClassCounts {
    /// The group's name (`""` for the whole fleet).
    pub group: String,
    /// Services in the group.
    pub services: u32,
    /// Services whose worst class is not `current`.
    pub drifted: u32,
    /// Files per class name.
    pub files: BTreeMap<String, u32>,
}

impl FleetReport {
    /// Counts grouped by `key` (namespace or team), sorted by group.
    pub fn counts_by(&self, key: impl Fn(&ServiceDrift) -> &str) -> Vec<ClassCounts> {
        let mut groups: BTreeMap<String, ClassCounts> = BTreeMap::new();
        for service in &self.services {
            let group = key(service).to_owned();
            let counts = groups
                .entry(group.clone())
                .or_insert_with(|| ClassCounts { group, ..ClassCounts::default() });
            counts.add(service);
        }
        groups.into_values().collect()
    }

    /// Counts over the whole fleet.
    pub fn totals(&self) -> ClassCounts {
        let mut counts = ClassCounts::default();
        self.services.iter().for_each(|service| counts.add(service));
        counts
    }
}

impl ClassCounts {
    fn add(&mut self, service: &ServiceDrift) {
        self.services += 1;
        self.drifted += u32::from(service.worst() != DriftClass::Current);
        for file in &service.files {
            *self.files.entry(file.class.as_str().to_owned()).or_default() += 1;
        }
    }

    /// Files of `class` in the group.
    pub fn of(&self, class: DriftClass) -> u32 {
        self.files.get(class.as_str()).copied().unwrap_or(0)
    }
}

/// One upgrade change set of a batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct UpgradeChange {
    pub request_id: String,
    pub namespace: String,
    pub service: String,
    pub status: RequestStatus,
    /// What an approval binds to.
    pub digest: Option<String>,
    /// Paths whose hand edit was adopted: the upgrade keeps the repository's file.
    pub kept: Vec<String>,
    /// The pull request, once open.
    pub pull_request: Option<String>,
}

/// The upgrade change sets one admin opened at once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct UpgradeBatch {
    pub id: String,
    /// The requesting admin's user id: they approve none of its change sets.
    pub requested_by: String,
    pub created_at: String,
    /// What was selected: `all`, `namespace:<ns>` or `team:<team>`.
    pub selection: String,
    pub changes: Vec<UpgradeChange>,
    /// Services of the selection left out, and why.
    pub skipped: Vec<String>,
}

/// Upgrade change sets by progress: waiting for a decision, queued behind the limit of open
/// pull requests, open, merged, ended otherwise (rejected, withdrawn, failed).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct UpgradeProgress {
    pub submitted: u32,
    pub queued: u32,
    pub open: u32,
    pub merged: u32,
    pub ended: u32,
    /// `fleet.max_open_upgrade_prs`.
    pub max_open: u32,
}

impl UpgradeProgress {
    /// Counts one change set by its status.
    pub fn add(&mut self, status: RequestStatus) {
        match status {
            RequestStatus::Submitted => self.submitted += 1,
            RequestStatus::Approved | RequestStatus::Provisioning => self.queued += 1,
            RequestStatus::PrOpen => self.open += 1,
            RequestStatus::Merged | RequestStatus::Offboarded => self.merged += 1,
            RequestStatus::Rejected | RequestStatus::Withdrawn | RequestStatus::Failed => {
                self.ended += 1
            }
        }
    }
}

/// What the `/fleet` page shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct FleetView {
    /// `None` before the first drift pass.
    pub report: Option<FleetReport>,
    pub progress: UpgradeProgress,
    /// Newest first.
    pub batches: Vec<UpgradeBatch>,
}

/// The fleet as the caller may see it (their teams' services; everything for platform admins
/// and auditors).
#[server(endpoint = "fleet_overview")]
pub async fn fleet_overview() -> Result<FleetView, AppError> {
    use crate::access::ssr as access;
    let principal = access::require_principal()?;
    let service = use_context::<std::sync::Arc<dyn ssr::FleetService>>()
        .ok_or_else(|| AppError::Internal("The fleet service is not configured.".into()))?;
    service.view(&principal).await.map_err(access::fail)
}

/// The service the server implements.
#[cfg(feature = "ssr")]
pub mod ssr {
    use super::FleetView;
    use crate::access::{AppError, Principal};

    /// Reads the fleet's drift and upgrades.
    #[async_trait::async_trait]
    pub trait FleetService: Send + Sync {
        async fn view(&self, viewer: &Principal) -> Result<FleetView, AppError>;
    }
}
