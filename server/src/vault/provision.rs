//! Provisioning a service's Vault objects as a plan and its application: [`Vault::plan`] reads
//! what exists and lists the changes that would make it match the artifacts (that list is also
//! the drift report), [`Vault::apply`] makes exactly those changes. Applying twice changes
//! nothing; an interrupted apply is finished by running it again. Secret values are written
//! but never read back: meshport compares metadata only.

use std::collections::BTreeMap;

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::{SecretRetention, Vault, VaultError, generate_secret};
use crate::artifacts::ServiceArtifacts;
use crate::artifacts::vault_objects::{KvSecret, ValueSource};

/// Values the requester typed, by secret name. Only `provided` secrets use them.
pub type ProvidedValues = BTreeMap<String, SecretString>;

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
}

/// The body of a change. Secret values are made at apply time, never held in a plan.
#[derive(Clone, Debug, PartialEq)]
enum Write {
    Body(Value),
    /// A first value for a secret, with the check-and-set version it was planned against, so
    /// two appliers never both write one.
    SecretValue {
        key: String,
        source: ValueSource,
        generator: Option<String>,
        cas: u64,
    },
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

impl Vault {
    /// The changes that would make Vault match `artifacts`: empty when it does. Reads only.
    #[tracing::instrument(skip_all, fields(role = %artifacts.role.name))]
    pub async fn plan(&self, artifacts: &ServiceArtifacts) -> Result<Vec<Change>, VaultError> {
        let mut changes = Vec::new();
        for part in Part::ALL {
            changes.extend(self.plan_part(artifacts, part).await?);
        }
        Ok(changes)
    }

    /// The changes of one part of the service's Vault objects.
    pub async fn plan_part(
        &self,
        artifacts: &ServiceArtifacts,
        part: Part,
    ) -> Result<Vec<Change>, VaultError> {
        let mut changes = Vec::new();
        match part {
            // Templated mode: the shared workload policy is written once at set-up.
            Part::Policy => {
                let Some(policy) = &artifacts.policy else { return Ok(changes) };
                let policy_path = format!("sys/policies/acl/{}", policy.name);
                let desired_policy = policy.to_hcl();
                let current = self.read(&policy_path).await?;
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
                    changes.push(Change { path: policy_path, kind, write });
                }
            }
            Part::Role => {
                let role = &artifacts.role;
                let mut role_body = to_object(role);
                // Unset is stored as "": compare it too, so an audience added by hand is drift.
                role_body.entry("audience").or_insert_with(|| json!(""));
                let role_path = format!("auth/{}/role/{}", role.mount, role.name);
                let change = self.plan_body(role_path, role_body).await?;
                changes.extend(change.map(|change| Change {
                    write: Write::Body(lists_as_strings(&change.write)),
                    ..change
                }));
            }
            Part::Secrets => {
                for secret in &artifacts.secrets {
                    changes.extend(self.plan_secret(secret).await?);
                }
            }
            Part::Pki => {
                if let Some(pki_role) = &artifacts.pki_role {
                    let path = format!("{}/roles/{}", pki_role.mount, pki_role.name);
                    changes.extend(self.plan_body(path, to_object(pki_role)).await?);
                }
            }
        }
        Ok(changes)
    }

    /// Makes one part of the service's Vault objects match: [`Vault::plan_part`]'s changes.
    pub async fn apply_part(
        &self,
        artifacts: &ServiceArtifacts,
        provided: &ProvidedValues,
        part: Part,
    ) -> Result<Vec<Change>, ApplyError> {
        let plan = self.plan_part(artifacts, part).await;
        self.apply_plan(plan, provided, |_| {}).await
    }

    /// Writes the values the requester typed into the service's secrets, at submission: they
    /// go to Vault and nowhere else, and wait there (reachable by no role yet) for approval.
    /// Each is a new version; the secrets' metadata is written at provisioning.
    pub async fn stage_provided(
        &self,
        artifacts: &ServiceArtifacts,
        provided: &ProvidedValues,
    ) -> Result<(), VaultError> {
        for secret in artifacts.secrets.iter().filter(|s| s.source == ValueSource::Provided) {
            let value = provided.get(&secret.key).ok_or_else(|| VaultError::Secret {
                path: secret.data_path(),
                message: "no value was provided".to_owned(),
            })?;
            self.write(&secret.data_path(), &json!({ "data": secret_data(&secret.key, value) }))
                .await?;
        }
        Ok(())
    }

    /// Destroys provided values staged for a request that was rejected, unless the secret was
    /// provisioned before (then it belongs to a service and stays). Returns the paths destroyed.
    pub async fn discard_staged(
        &self,
        artifacts: &ServiceArtifacts,
    ) -> Result<Vec<String>, VaultError> {
        let mut destroyed = Vec::new();
        for secret in artifacts.secrets.iter().filter(|s| s.source == ValueSource::Provided) {
            let metadata = self.read(&secret.metadata_path()).await?;
            let provisioned =
                metadata.as_ref().is_some_and(|m| m["custom_metadata"]["managed_by"] == "meshport");
            if metadata.is_some() && !provisioned {
                self.delete(&secret.metadata_path()).await?;
                destroyed.push(secret.metadata_path());
            }
        }
        Ok(destroyed)
    }

    /// Makes Vault match `artifacts`: the [`Vault::plan`]'s changes, in order, calling
    /// `on_change` after each. Returns what it changed (nothing when nothing differed).
    #[tracing::instrument(skip_all, fields(role = %artifacts.role.name))]
    pub async fn apply(
        &self,
        artifacts: &ServiceArtifacts,
        provided: &ProvidedValues,
        on_change: impl FnMut(&Change),
    ) -> Result<Vec<Change>, ApplyError> {
        let plan = self.plan(artifacts).await;
        self.apply_plan(plan, provided, on_change).await
    }

    async fn apply_plan(
        &self,
        plan: Result<Vec<Change>, VaultError>,
        provided: &ProvidedValues,
        mut on_change: impl FnMut(&Change),
    ) -> Result<Vec<Change>, ApplyError> {
        let plan = plan.map_err(|source| ApplyError {
            path: "plan".to_owned(),
            applied: Vec::new(),
            source,
        })?;
        let mut applied = Vec::with_capacity(plan.len());
        for change in plan {
            if let Err(source) = self.execute(&change, provided).await {
                return Err(ApplyError { path: change.path, applied, source });
            }
            tracing::info!(path = %change.path, kind = ?change.kind, "vault object written");
            on_change(&change);
            applied.push(change);
        }
        Ok(applied)
    }

    /// Offboards a service: deletes its role, policy and PKI role, and keeps (marked
    /// offboarded) or destroys its secrets per `vault.offboard_secrets`. Returns the paths it
    /// changed; running it again changes nothing more.
    #[tracing::instrument(skip_all, fields(role = %artifacts.role.name))]
    pub async fn remove(&self, artifacts: &ServiceArtifacts) -> Result<Vec<String>, VaultError> {
        let mut removed = Vec::new();
        // The role first: from then on no pod can log in with the policy.
        let mut paths = vec![format!("auth/{}/role/{}", artifacts.role.mount, artifacts.role.name)];
        paths.extend(artifacts.policy.iter().map(|p| format!("sys/policies/acl/{}", p.name)));
        if let Some(pki_role) = &artifacts.pki_role {
            paths.push(format!("{}/roles/{}", pki_role.mount, pki_role.name));
        }
        for path in paths {
            if self.read(&path).await?.is_some() {
                self.delete(&path).await?;
                removed.push(path);
            }
        }
        removed.extend(self.retire_secrets(&artifacts.secrets).await?);
        Ok(removed)
    }

    /// Retires secrets a service no longer has (offboarding, or a change that drops them):
    /// destroyed, or kept and marked offboarded, per `vault.offboard_secrets`. Returns the
    /// metadata paths it changed; running it again changes nothing more.
    pub async fn retire_secrets(&self, secrets: &[KvSecret]) -> Result<Vec<String>, VaultError> {
        let mut removed = Vec::new();
        for secret in secrets {
            let Some(metadata) = self.read(&secret.metadata_path()).await? else { continue };
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
            removed.push(secret.metadata_path());
        }
        Ok(removed)
    }

    /// Writes a new version of a generated secret at `path` (below the KV mount), drawn as its
    /// metadata's `generator` says. Refuses secrets meshport did not generate: their owners
    /// rotate them. Returns the new version.
    #[tracing::instrument(skip(self))]
    pub async fn rotate(&self, path: &str) -> Result<u64, VaultError> {
        let metadata_path = format!("{}/metadata/{path}", self.kv_mount);
        let refuse = |message: &str| VaultError::Secret {
            path: path.to_owned(),
            message: message.to_owned(),
        };
        let metadata = self.read(&metadata_path).await?.ok_or_else(|| refuse("does not exist"))?;
        let custom = &metadata["custom_metadata"];
        if custom["managed_by"] != "meshport" || custom["value_source"] != "generated" {
            return Err(refuse(
                "meshport rotates only the secrets it generated; the owner rotates provided ones",
            ));
        }
        let key = path.rsplit('/').next().unwrap_or(path).to_owned();
        let cas = metadata["current_version"].as_u64().unwrap_or(0);
        let generator = custom["generator"].as_str().map(str::to_owned);
        let write = Write::SecretValue { key, source: ValueSource::Generated, generator, cas };
        let data_path = format!("{}/data/{path}", self.kv_mount);
        let change = Change {
            path: data_path,
            kind: ChangeKind::Update { fields: vec!["value".into()] },
            write,
        };
        let written = self.execute(&change, &ProvidedValues::new()).await?;
        written["version"].as_u64().ok_or_else(|| VaultError::Unexpected {
            path: change.path,
            message: "the write did not report a version".to_owned(),
        })
    }

    /// The change for an object written as one JSON body, when it is missing or differs.
    async fn plan_body(
        &self,
        path: String,
        desired: Map<String, Value>,
    ) -> Result<Option<Change>, VaultError> {
        let kind = match self.read(&path).await? {
            None => ChangeKind::Create,
            Some(current) => {
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
        Ok(Some(Change { path, kind, write: Write::Body(Value::Object(desired)) }))
    }

    /// A secret's metadata change and, when it has no value yet, its first value.
    async fn plan_secret(&self, secret: &KvSecret) -> Result<Vec<Change>, VaultError> {
        let mut changes = Vec::new();
        let current = self.read(&secret.metadata_path()).await?;
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
            changes.push(Change { path: secret.metadata_path(), kind, write });
        }
        let version = current.as_ref().and_then(|c| c["current_version"].as_u64()).unwrap_or(0);
        if version == 0 {
            let write = Write::SecretValue {
                key: secret.key.clone(),
                source: secret.source,
                generator: secret.custom_metadata.get("generator").cloned(),
                cas: 0,
            };
            changes.push(Change { path: secret.data_path(), kind: ChangeKind::Create, write });
        }
        Ok(changes)
    }

    async fn execute(
        &self,
        change: &Change,
        provided: &ProvidedValues,
    ) -> Result<Value, VaultError> {
        let (key, source, generator, cas) = match &change.write {
            Write::Body(body) => return self.write(&change.path, body).await,
            Write::SecretValue { key, source, generator, cas } => (key, source, generator, cas),
        };
        let missing = |message: &str| VaultError::Secret {
            path: change.path.clone(),
            message: message.to_owned(),
        };
        let value = match source {
            ValueSource::Generated => {
                let (alphabet, length) =
                    generator.as_deref().and_then(parse_generator).ok_or_else(|| {
                        missing("its metadata has no valid `generator` (alphabet:length)")
                    })?;
                generate_secret(length, alphabet)
            }
            ValueSource::Provided => provided.get(key).cloned().ok_or_else(|| {
                missing("has no value: the provided value was not given to this apply")
            })?,
            ValueSource::Existing => {
                return Err(missing("was declared existing but holds no value; write it first"));
            }
        };
        let body = json!({ "options": { "cas": cas }, "data": secret_data(key, &value) });
        self.write(&change.path, &body).await
    }
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
