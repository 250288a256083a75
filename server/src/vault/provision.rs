//! Provisioning a service's Vault objects as a plan and its application: [`Vault::plan`] reads
//! what exists and lists the changes that would make it match the artifacts (that list is also
//! the drift report), [`Vault::apply`] makes exactly those changes. Applying twice changes
//! nothing; an interrupted apply is finished by running it again. Secret values are written
//! but never read back: meshport compares metadata only. The one exception is a value the
//! requester typed: it waits at submission under `<kv>/data/meshport-staging/<change id>/<key>`
//! (no workload policy reaches that folder) and is moved into place at provisioning.
//!
//! Ownership: meshport overwrites or deletes only what it made for the service. KV secrets carry
//! their owner (`owner=<namespace>/<service>` in `custom_metadata`); policies, roles and PKI
//! roles are recorded in meshport's database (`vault_objects`) before they are created. Anything
//! else at those paths is refused ([`VaultError::NotOwned`]) until a platform admin adopts it.

use std::collections::BTreeMap;

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::{SecretRetention, Vault, VaultError, generate_secret};
use crate::artifacts::ServiceArtifacts;
use crate::artifacts::vault_objects::{KvSecret, ValueSource};
use crate::store::Store;

/// Values the requester typed, by secret name. Only `provided` secrets use them.
pub type ProvidedValues = BTreeMap<String, SecretString>;

/// The KV folder where typed values wait for approval, one subfolder per change (the onboarding
/// request's id). No workload policy reaches it: onboarding namespaces may not be named so.
pub const STAGING_FOLDER: &str = "meshport-staging";

/// The parts of a service's Vault objects, provisioned in this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Part {
    /// Its ACL policy.
    Policy,
    /// Its Kubernetes-auth role.
    Role,
    /// Its KV secrets: metadata and first values.
    Secrets,
    /// Its PKI role, when it asked for a certificate.
    Pki,
}

impl Part {
    /// Every part, in order.
    pub const ALL: [Part; 4] = [Self::Policy, Self::Role, Self::Secrets, Self::Pki];
}

/// What one change does to its object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChangeKind {
    /// The object is missing.
    Create,
    /// The object differs in these fields (its drift).
    Update { fields: Vec<String> },
    /// A typed value left in the staging folder after it was moved into place.
    Destroy,
}

/// One write the plan needs, named by the API path it goes to.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Change {
    /// `sys/policies/acl/<name>`, `auth/<mount>/role/<name>`, `<kv>/metadata/<path>`,
    /// `<kv>/data/<path>` or `<pki>/roles/<name>`.
    pub path: String,
    /// Create or update, and which fields drifted.
    #[serde(flatten)]
    pub kind: ChangeKind,
    #[serde(skip)]
    write: Write,
    /// An object without an owner of its own (policy, role, PKI role): its ownership is recorded
    /// in meshport's database before it is created.
    #[serde(skip)]
    recorded: bool,
}

/// The body of a change. Secret values are made at apply time, never held in a plan.
#[derive(Clone, Debug, PartialEq)]
enum Write {
    Body(Value),
    /// A first value for a secret, with the check-and-set version it was planned against, so
    /// two appliers never both write one. A provided value is read from `staged` (its data
    /// path in the staging folder), which is destroyed once the value is in place.
    SecretValue {
        key: String,
        source: ValueSource,
        generator: Option<String>,
        cas: u64,
        staged: Option<String>,
    },
    /// Deletes the object at the change's path (a staged value's metadata: every version).
    Delete,
}

/// An apply stopped at `path`. The changes before it are made; running the apply again
/// finishes the rest.
#[derive(Debug, thiserror::Error)]
#[error("Vault provisioning stopped at `{path}` after {} change(s): {source}", applied.len())]
pub struct ApplyError {
    /// Where it stopped (`plan` while reading the current state).
    pub path: String,
    /// What was done before.
    pub applied: Vec<Change>,
    /// Why.
    #[source]
    pub source: VaultError,
}

impl ApplyError {
    /// Whether running the apply again later may succeed.
    pub fn is_retryable(&self) -> bool {
        self.source.is_retryable()
    }
}

impl Change {
    fn new(path: String, kind: ChangeKind, write: Write) -> Self {
        Self { path, kind, write, recorded: false }
    }
}

impl Vault {
    /// The changes that would make Vault match `artifacts`: empty when it does. Reads only.
    /// `ledger` holds who owns what; `change` is the change whose staged values are moved into
    /// place. Refuses ([`VaultError::NotOwned`]) when an object exists that is not the
    /// service's.
    #[tracing::instrument(skip_all, fields(role = %artifacts.role.name))]
    pub async fn plan(
        &self,
        artifacts: &ServiceArtifacts,
        ledger: &Store,
        change: Uuid,
    ) -> Result<Vec<Change>, VaultError> {
        let mut changes = Vec::new();
        for part in Part::ALL {
            changes.extend(self.plan_part(artifacts, ledger, change, part).await?);
        }
        Ok(changes)
    }

    /// The changes of one part of the service's Vault objects.
    pub async fn plan_part(
        &self,
        artifacts: &ServiceArtifacts,
        ledger: &Store,
        change: Uuid,
        part: Part,
    ) -> Result<Vec<Change>, VaultError> {
        let owner = &artifacts.owner;
        let mut changes = Vec::new();
        match part {
            // Templated mode: the shared workload policy is written once at set-up.
            Part::Policy => {
                let Some(policy) = &artifacts.policy else { return Ok(changes) };
                let policy_path = format!("sys/policies/acl/{}", policy.name);
                let desired_policy = policy.to_hcl();
                let current = self.read(&policy_path).await?;
                if current.is_some() {
                    check_recorded(ledger, &policy_path, owner).await?;
                }
                let current_policy = current.as_ref().and_then(|c| c["policy"].as_str());
                let policy_kind = match current_policy {
                    None => Some(ChangeKind::Create),
                    Some(rules) if rules.trim() != desired_policy.trim() => {
                        Some(ChangeKind::Update { fields: vec!["policy".to_owned()] })
                    }
                    Some(_) => None,
                };
                if let Some(kind) = policy_kind {
                    let write = Write::Body(json!({ "policy": desired_policy }));
                    changes
                        .push(Change { recorded: true, ..Change::new(policy_path, kind, write) });
                }
            }
            Part::Role => {
                let role = &artifacts.role;
                let mut role_body = to_object(role);
                // Unset is stored as "": compare it too, so an audience added by hand is drift.
                role_body.entry("audience").or_insert_with(|| json!(""));
                let role_path = format!("auth/{}/role/{}", role.mount, role.name);
                let change = self.plan_body(ledger, owner, role_path, role_body).await?;
                changes.extend(change.map(|change| Change {
                    write: Write::Body(lists_as_strings(&change.write)),
                    ..change
                }));
            }
            Part::Secrets => {
                for secret in &artifacts.secrets {
                    changes.extend(self.plan_secret(ledger, owner, change, secret).await?);
                }
            }
            Part::Pki => {
                if let Some(pki_role) = &artifacts.pki_role {
                    let path = format!("{}/roles/{}", pki_role.mount, pki_role.name);
                    changes.extend(self.plan_body(ledger, owner, path, to_object(pki_role)).await?);
                }
            }
        }
        Ok(changes)
    }

    /// Makes one part of the service's Vault objects match: [`Vault::plan_part`]'s changes.
    /// A provided secret without a value yet gets the one staged for `change`.
    pub async fn apply_part(
        &self,
        artifacts: &ServiceArtifacts,
        ledger: &Store,
        change: Uuid,
        part: Part,
    ) -> Result<Vec<Change>, ApplyError> {
        let plan = self.plan_part(artifacts, ledger, change, part).await;
        self.apply_plan(plan, ledger, &artifacts.owner, |_| {}).await
    }

    /// The staging path of a typed value: `<kv>/<data|metadata>/meshport-staging/<change>/<key>`.
    fn staged_path(&self, kind: &str, change: Uuid, key: &str) -> String {
        format!("{}/{kind}/{STAGING_FOLDER}/{change}/{key}", self.kv_mount)
    }

    /// Writes the values the requester typed for change `change` (the onboarding request's
    /// id), at submission: they go to Vault and nowhere else, to the staging folder, which no
    /// workload policy reaches, and nothing at the service's own paths changes. Provisioning
    /// moves them into place ([`Vault::apply_part`]); a rejection destroys them
    /// ([`Vault::discard_staged`]).
    pub async fn stage_provided(
        &self,
        change: Uuid,
        artifacts: &ServiceArtifacts,
        provided: &ProvidedValues,
    ) -> Result<(), VaultError> {
        for secret in artifacts.secrets.iter().filter(|s| s.source == ValueSource::Provided) {
            let value = provided.get(&secret.key).ok_or_else(|| VaultError::Secret {
                path: secret.data_path(),
                message: "no value was provided".to_owned(),
            })?;
            let path = self.staged_path("data", change, &secret.key);
            self.write(&path, &json!({ "data": secret_data(&secret.key, value) })).await?;
        }
        Ok(())
    }

    /// Destroys every value staged for change `change` (a rejected request), and nothing
    /// outside `meshport-staging/<change>/`. Returns the metadata paths destroyed.
    pub async fn discard_staged(&self, change: Uuid) -> Result<Vec<String>, VaultError> {
        let folder = format!("{}/metadata/{STAGING_FOLDER}/{change}", self.kv_mount);
        let mut destroyed = Vec::new();
        for key in self.list(&format!("{folder}/")).await? {
            // meshport stages secret names only, never folders.
            if key.ends_with('/') || key.contains("..") {
                continue;
            }
            let path = format!("{folder}/{key}");
            self.delete(&path).await?;
            destroyed.push(path);
        }
        Ok(destroyed)
    }

    /// Makes Vault match `artifacts`: the [`Vault::plan`]'s changes, in order, calling
    /// `on_change` after each. Returns what it changed (nothing when nothing differed).
    #[tracing::instrument(skip_all, fields(role = %artifacts.role.name))]
    pub async fn apply(
        &self,
        artifacts: &ServiceArtifacts,
        ledger: &Store,
        change: Uuid,
        on_change: impl FnMut(&Change),
    ) -> Result<Vec<Change>, ApplyError> {
        let plan = self.plan(artifacts, ledger, change).await;
        self.apply_plan(plan, ledger, &artifacts.owner, on_change).await
    }

    async fn apply_plan(
        &self,
        plan: Result<Vec<Change>, VaultError>,
        ledger: &Store,
        owner: &str,
        mut on_change: impl FnMut(&Change),
    ) -> Result<Vec<Change>, ApplyError> {
        let plan = plan.map_err(|source| ApplyError {
            path: "plan".to_owned(),
            applied: Vec::new(),
            source,
        })?;
        let mut applied = Vec::with_capacity(plan.len());
        for change in plan {
            if let Err(source) = self.execute_owned(&change, ledger, owner).await {
                return Err(ApplyError { path: change.path, applied, source });
            }
            tracing::info!(path = %change.path, kind = ?change.kind, "vault object written");
            on_change(&change);
            applied.push(change);
        }
        Ok(applied)
    }

    /// Records a new object's owner before creating it (so a crash in between leaves it
    /// recorded, not foreign), then writes.
    async fn execute_owned(
        &self,
        change: &Change,
        ledger: &Store,
        owner: &str,
    ) -> Result<Value, VaultError> {
        if change.recorded
            && change.kind == ChangeKind::Create
            && !ledger.record_vault_object(&change.path, owner).await?
        {
            return Err(VaultError::NotOwned {
                path: change.path.clone(),
                owner: owner.to_owned(),
            });
        }
        self.execute(change).await
    }

    /// Offboards a service: deletes its role, policy and PKI role, and keeps (marked
    /// offboarded) or destroys its secrets per `vault.offboard_secrets` ([`Vault::retire_secrets`]).
    /// Deletes nothing when one of the role, policy or PKI role exists but is not recorded as
    /// the service's. Returns the paths it changed; running it again changes nothing more.
    #[tracing::instrument(skip_all, fields(role = %artifacts.role.name))]
    pub async fn remove(
        &self,
        artifacts: &ServiceArtifacts,
        ledger: &Store,
    ) -> Result<Vec<String>, VaultError> {
        let owner = &artifacts.owner;
        // The role first: from then on no pod can log in with the policy.
        let mut paths = vec![format!("auth/{}/role/{}", artifacts.role.mount, artifacts.role.name)];
        paths.extend(artifacts.policy.iter().map(|p| format!("sys/policies/acl/{}", p.name)));
        if let Some(pki_role) = &artifacts.pki_role {
            paths.push(format!("{}/roles/{}", pki_role.mount, pki_role.name));
        }
        let mut present = Vec::new();
        for path in paths {
            if self.read(&path).await?.is_some() {
                check_recorded(ledger, &path, owner).await?;
                present.push(path);
            }
        }
        let mut removed = Vec::new();
        for path in present {
            self.delete(&path).await?;
            ledger.forget_vault_object(&path, owner).await?;
            removed.push(path);
        }
        removed.extend(self.retire_secrets(&artifacts.secrets).await?);
        Ok(removed)
    }

    /// Retires KV secrets (of an offboarded service, or removed from a service's spec): keeps
    /// each marked offboarded or destroys every version, per `vault.offboard_secrets`. Only
    /// secrets that carry the owner `secrets` name (`owner` in their metadata) are touched;
    /// others (an `existing` secret its owner put there, one made by hand) are left alone.
    /// Returns the metadata paths changed; running it again changes nothing more.
    pub async fn retire_secrets(&self, secrets: &[KvSecret]) -> Result<Vec<String>, VaultError> {
        let mut retired = Vec::new();
        for secret in secrets {
            let Some(metadata) = self.read(&secret.metadata_path()).await? else { continue };
            if !kv_owner_is(&metadata, secret.custom_metadata.get("owner").map(String::as_str)) {
                tracing::info!(path = %secret.metadata_path(), "not meshport's secret; left alone");
                continue;
            }
            match self.retention {
                SecretRetention::Destroy => self.delete(&secret.metadata_path()).await?,
                SecretRetention::Keep => {
                    let mut custom =
                        metadata["custom_metadata"].as_object().cloned().unwrap_or_default();
                    if custom.contains_key("offboarded_at") {
                        continue;
                    }
                    custom
                        .insert("offboarded_at".to_owned(), json!(chrono::Utc::now().to_rfc3339()));
                    self.write(&secret.metadata_path(), &json!({ "custom_metadata": custom }))
                        .await?;
                }
            }
            retired.push(secret.metadata_path());
        }
        Ok(retired)
    }

    /// The service's objects that exist in Vault but are not recorded as its own: what a
    /// platform admin would adopt. KV secrets declared `existing` are never among them: they
    /// stay their owner's, read-only to meshport.
    pub async fn conflicts(
        &self,
        artifacts: &ServiceArtifacts,
        ledger: &Store,
    ) -> Result<Vec<String>, VaultError> {
        let owner = &artifacts.owner;
        let mut recorded_paths = Vec::new();
        recorded_paths
            .extend(artifacts.policy.iter().map(|p| format!("sys/policies/acl/{}", p.name)));
        recorded_paths.push(format!("auth/{}/role/{}", artifacts.role.mount, artifacts.role.name));
        if let Some(pki_role) = &artifacts.pki_role {
            recorded_paths.push(format!("{}/roles/{}", pki_role.mount, pki_role.name));
        }
        let mut conflicts = Vec::new();
        for path in recorded_paths {
            if self.read(&path).await?.is_some() && !is_recorded(ledger, &path, owner).await? {
                conflicts.push(path);
            }
        }
        for secret in artifacts.secrets.iter().filter(|s| s.source != ValueSource::Existing) {
            let path = secret.metadata_path();
            let Some(metadata) = self.read(&path).await? else { continue };
            if !kv_owner_is(&metadata, Some(owner)) && !is_recorded(ledger, &path, owner).await? {
                conflicts.push(path);
            }
        }
        Ok(conflicts)
    }

    /// Writes `owner` into the `custom_metadata` of the KV secret whose metadata is at
    /// `metadata_path`, keeping the rest: the Vault half of an adoption.
    pub async fn mark_kv_owner(&self, metadata_path: &str, owner: &str) -> Result<(), VaultError> {
        let Some(metadata) = self.read(metadata_path).await? else { return Ok(()) };
        let mut custom = metadata["custom_metadata"].as_object().cloned().unwrap_or_default();
        custom.insert("owner".to_owned(), json!(owner));
        self.write(metadata_path, &json!({ "custom_metadata": custom })).await.map(drop)
    }

    /// Writes a new version of a generated secret at `path` (below the KV mount), drawn as its
    /// metadata's `generator` says. Refuses secrets meshport did not generate: their owners
    /// rotate them. Returns the new version.
    #[tracing::instrument(skip(self))]
    pub async fn rotate(&self, path: &str) -> Result<u64, VaultError> {
        let current = self.current_version(path).await?;
        self.rotate_from(path, current, None, Uuid::new_v4()).await
    }

    /// The current version of the managed secret at `path` (below the KV mount).
    pub async fn current_version(&self, path: &str) -> Result<u64, VaultError> {
        let metadata_path = format!("{}/metadata/{path}", self.kv_mount);
        let metadata = self.read(&metadata_path).await?.ok_or_else(|| VaultError::Secret {
            path: path.to_owned(),
            message: "does not exist".to_owned(),
        })?;
        Ok(metadata["current_version"].as_u64().unwrap_or(0))
    }

    /// Writes the next version of the secret at `path` over version `from` (check-and-set: a
    /// rotation by someone else in between makes this one fail). A generated secret gets a new
    /// value drawn by its `generator`; a provided one gets `value`, staged first under
    /// `staging` like a submission's typed value and moved into place. Returns the new version.
    #[tracing::instrument(skip(self, value))]
    pub async fn rotate_from(
        &self,
        path: &str,
        from: u64,
        value: Option<&app::onboarding::SecretValue>,
        staging: Uuid,
    ) -> Result<u64, VaultError> {
        let metadata_path = format!("{}/metadata/{path}", self.kv_mount);
        let refuse = |message: &str| VaultError::Secret {
            path: path.to_owned(),
            message: message.to_owned(),
        };
        let metadata = self.read(&metadata_path).await?.ok_or_else(|| refuse("does not exist"))?;
        let custom = &metadata["custom_metadata"];
        let source = match (custom["value_source"].as_str(), value) {
            _ if custom["managed_by"] != "meshport" => {
                return Err(refuse("meshport did not write this secret; its owner rotates it"));
            }
            (Some("generated"), None) => ValueSource::Generated,
            (Some("provided"), Some(_)) => ValueSource::Provided,
            (Some("provided"), None) => {
                return Err(refuse(
                    "meshport rotates only the secrets it generated on its own; a provided secret \
                     needs its new value (the status page and the API take one)",
                ));
            }
            (Some("generated"), Some(_)) => {
                return Err(refuse("a generated secret gets a new random value, not a typed one"));
            }
            _ => return Err(refuse("meshport rotates only the values it generated or was given")),
        };
        if metadata["current_version"].as_u64().unwrap_or(0) != from {
            return Err(refuse(&format!(
                "is no longer at version {from}: it was rotated meanwhile"
            )));
        }
        let key = path.rsplit('/').next().unwrap_or(path).to_owned();
        let staged = match value {
            Some(value) => {
                let staged = self.staged_path("data", staging, &key);
                self.write(&staged, &json!({ "data": { key.as_str(): value.expose() } })).await?;
                Some(staged)
            }
            None => None,
        };
        let write = Write::SecretValue {
            key,
            source,
            generator: custom["generator"].as_str().map(str::to_owned),
            cas: from,
            staged,
        };
        let data_path = format!("{}/data/{path}", self.kv_mount);
        let change =
            Change::new(data_path, ChangeKind::Update { fields: vec!["value".into()] }, write);
        let written = match self.execute(&change).await {
            Ok(written) => written,
            Err(error) => {
                // A refused write leaves no typed value behind in the staging folder.
                if let Write::SecretValue { staged: Some(staged), .. } = &change.write {
                    let _ = self.delete(&staged.replacen("/data/", "/metadata/", 1)).await;
                }
                return Err(error);
            }
        };
        written["version"].as_u64().ok_or_else(|| VaultError::Unexpected {
            path: change.path,
            message: "the write did not report a version".to_owned(),
        })
    }

    /// The change for an object written as one JSON body, when it is missing or differs.
    /// Refuses one that exists but is not recorded as `owner`'s.
    async fn plan_body(
        &self,
        ledger: &Store,
        owner: &str,
        path: String,
        desired: Map<String, Value>,
    ) -> Result<Option<Change>, VaultError> {
        let kind = match self.read(&path).await? {
            None => ChangeKind::Create,
            Some(current) => {
                check_recorded(ledger, &path, owner).await?;
                let fields: Vec<String> = desired
                    .iter()
                    .filter(|(field, want)| !same(want, current.get(field.as_str())))
                    .map(|(field, _)| field.clone())
                    .collect();
                if fields.is_empty() {
                    return Ok(None);
                }
                ChangeKind::Update { fields }
            }
        };
        let change = Change::new(path, kind, Write::Body(Value::Object(desired)));
        Ok(Some(Change { recorded: true, ..change }))
    }

    /// A secret's metadata change and, when it has no value yet, its first value (a provided
    /// one from the staging folder of `change`, which is destroyed once the value is in place).
    /// A secret that exists without being `owner`'s is refused, unless it is declared
    /// `existing`: then it is read-only and nothing is planned for it.
    async fn plan_secret(
        &self,
        ledger: &Store,
        owner: &str,
        change: Uuid,
        secret: &KvSecret,
    ) -> Result<Vec<Change>, VaultError> {
        let mut changes = Vec::new();
        let current = self.read(&secret.metadata_path()).await?;
        let version = current.as_ref().and_then(|c| c["current_version"].as_u64()).unwrap_or(0);
        let owned = match &current {
            None => true,
            Some(metadata) => {
                kv_owner_is(metadata, Some(owner))
                    || is_recorded(ledger, &secret.metadata_path(), owner).await?
            }
        };
        let holds_no_value = || VaultError::Secret {
            path: secret.data_path(),
            message: "was declared existing but holds no value; write it first".to_owned(),
        };
        if secret.source == ValueSource::Existing && (current.is_none() || !owned) {
            // Its owner's: meshport only checks that it is there.
            return if version == 0 { Err(holds_no_value()) } else { Ok(changes) };
        }
        if !owned {
            return Err(VaultError::NotOwned {
                path: secret.metadata_path(),
                owner: owner.to_owned(),
            });
        }
        let desired = json!(secret.custom_metadata);
        let metadata_kind = match &current {
            None => Some(ChangeKind::Create),
            Some(c) if c["custom_metadata"] != desired => {
                Some(ChangeKind::Update { fields: vec!["custom_metadata".to_owned()] })
            }
            Some(_) => None,
        };
        if let Some(kind) = metadata_kind {
            let write = Write::Body(json!({ "custom_metadata": desired }));
            changes.push(Change::new(secret.metadata_path(), kind, write));
        }
        let provided = secret.source == ValueSource::Provided;
        if version == 0 {
            let write = Write::SecretValue {
                key: secret.key.clone(),
                source: secret.source,
                generator: secret.custom_metadata.get("generator").cloned(),
                cas: 0,
                staged: provided.then(|| self.staged_path("data", change, &secret.key)),
            };
            changes.push(Change::new(secret.data_path(), ChangeKind::Create, write));
        } else if provided {
            // In place already (a repeated step after a crash, or a value kept from before):
            // what is still staged goes.
            let staged = self.staged_path("metadata", change, &secret.key);
            if self.read(&staged).await?.is_some() {
                changes.push(Change::new(staged, ChangeKind::Destroy, Write::Delete));
            }
        }
        Ok(changes)
    }

    async fn execute(&self, change: &Change) -> Result<Value, VaultError> {
        let (key, source, generator, cas, staged) = match &change.write {
            Write::Body(body) => return self.write(&change.path, body).await,
            Write::Delete => return self.delete(&change.path).await.map(|()| Value::Null),
            Write::SecretValue { key, source, generator, cas, staged } => {
                (key, source, generator, cas, staged)
            }
        };
        let missing = |message: &str| VaultError::Secret {
            path: change.path.clone(),
            message: message.to_owned(),
        };
        let value = match (source, staged) {
            (ValueSource::Generated, _) => {
                let (alphabet, length) =
                    generator.as_deref().and_then(parse_generator).ok_or_else(|| {
                        missing("its metadata has no valid `generator` (alphabet:length)")
                    })?;
                generate_secret(length, alphabet)
            }
            (ValueSource::Provided, Some(staged)) => {
                let answer = self.read(staged).await?;
                let value = answer.as_ref().and_then(|a| a["data"][key.as_str()].as_str());
                let value = value.ok_or_else(|| {
                    missing(&format!(
                        "has no value: nothing is staged for it at `{staged}` (was the request \
                         submitted with one?)"
                    ))
                })?;
                SecretString::from(value.to_owned())
            }
            (ValueSource::Provided, None) => {
                return Err(missing(
                    "has no value: a provided value comes from the staging folder",
                ));
            }
            (ValueSource::Existing, _) => {
                return Err(missing("was declared existing but holds no value; write it first"));
            }
        };
        let body = json!({ "options": { "cas": cas }, "data": secret_data(key, &value) });
        let written = self.write(&change.path, &body).await?;
        if let Some(staged) = staged {
            // The value is in place: every staged version goes (metadata delete).
            self.delete(&staged.replacen("/data/", "/metadata/", 1)).await?;
        }
        Ok(written)
    }
}

/// Whether `path` is recorded in meshport's database as `owner`'s.
async fn is_recorded(ledger: &Store, path: &str, owner: &str) -> Result<bool, VaultError> {
    Ok(ledger.vault_object(path).await?.is_some_and(|record| record.owner == owner))
}

/// Refuses an existing object at `path` that is not recorded as `owner`'s.
async fn check_recorded(ledger: &Store, path: &str, owner: &str) -> Result<(), VaultError> {
    if is_recorded(ledger, path, owner).await? {
        Ok(())
    } else {
        Err(VaultError::NotOwned { path: path.to_owned(), owner: owner.to_owned() })
    }
}

/// Whether a KV secret's metadata names `owner` (absent: never).
fn kv_owner_is(metadata: &Value, owner: Option<&str>) -> bool {
    owner.is_some_and(|owner| metadata["custom_metadata"]["owner"].as_str() == Some(owner))
}

/// The `data` of a KV v2 write: the secret's one key and its value.
fn secret_data(key: &str, value: &SecretString) -> Value {
    json!({ key: value.expose_secret() })
}

/// `alphanumeric:32` → the alphabet and length.
fn parse_generator(generator: &str) -> Option<(app::onboarding::Alphabet, usize)> {
    let (alphabet, length) = generator.split_once(':')?;
    let alphabet = app::onboarding::Alphabet::ALL.into_iter().find(|a| a.as_str() == alphabet)?;
    Some((alphabet, length.parse().ok().filter(|n| (1..=4096).contains(n))?))
}

/// A role body with each list sent as one comma-separated string (Vault's list fields take
/// both): meshport's own policy limits these parameters with `allowed_parameters`, which OpenBao
/// matches against a JSON list as one value, so only strings can match.
fn lists_as_strings(write: &Write) -> Value {
    let Write::Body(Value::Object(body)) = write else {
        unreachable!("a role is written as a JSON object")
    };
    let strings = body.iter().map(|(field, value)| {
        let value = match value.as_array() {
            Some(items) => {
                let items: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
                Value::String(items.join(","))
            }
            None => value.clone(),
        };
        (field.clone(), value)
    });
    Value::Object(strings.collect())
}

/// A typed artifact as the JSON object Vault is sent.
fn to_object(value: &impl Serialize) -> Map<String, Value> {
    match serde_json::to_value(value) {
        Ok(Value::Object(map)) => map,
        _ => unreachable!("artifacts serialise to JSON objects"),
    }
}

/// Whether Vault's stored field equals the desired one; Vault reports unset strings as
/// absent or empty.
fn same(desired: &Value, current: Option<&Value>) -> bool {
    match (desired, current) {
        (Value::String(s), None | Some(Value::Null)) => s.is_empty(),
        (want, Some(have)) => want == have,
        (_, None) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generators_parse_only_known_alphabets_and_sane_lengths() {
        use app::onboarding::Alphabet;
        assert_eq!(parse_generator("hex:32"), Some((Alphabet::Hex, 32)));
        assert_eq!(
            parse_generator("alphanumeric_symbols:8"),
            Some((Alphabet::AlphanumericSymbols, 8))
        );
        for bad in ["hex", "hex:0", "hex:-1", "base64:10", "hex:99999", ""] {
            assert_eq!(parse_generator(bad), None, "{bad}");
        }
    }

    #[test]
    fn unset_strings_equal_absent_fields() {
        assert!(same(&json!(""), None));
        assert!(same(&json!(""), Some(&Value::Null)));
        assert!(!same(&json!("aud"), None));
        assert!(!same(&json!(3600), Some(&json!(60))));
        assert!(same(&json!(["a"]), Some(&json!(["a"]))));
    }
}
