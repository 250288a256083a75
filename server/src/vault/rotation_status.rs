//! Rotation status read from Vault: each managed KV secret's metadata (when its current version
//! was written, against the rotation period in its `custom_metadata`) and each certificate the
//! PKI engine stored (parsed with x509-parser, judged by its validity). Every judgement takes
//! `now` from the caller, so it can be tested with any clock.

use app::rotation::{Judgement, RotationState, judge_certificate};
use chrono::{DateTime, TimeDelta, Utc};
use futures_util::{StreamExt, TryStreamExt, stream};
use serde::Serialize;
use serde_json::Value;

use super::{Vault, VaultError};

/// Vault calls in flight at once during a scan.
const CONCURRENCY: usize = 32;

/// Longest warning before a secret's rotation is due; short periods warn a quarter ahead.
const DUE_SOON_AT_MOST: TimeDelta = TimeDelta::days(7);

/// One managed KV secret.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SecretStatus {
    /// Path below the KV mount, `<namespace>/<service>/<name>`.
    pub path: String,
    /// `value_source` of its metadata: generated, provided or existing.
    pub source: Option<String>,
    /// The current version; 0 when no value was ever written.
    pub current_version: u64,
    /// Versions kept.
    pub versions: usize,
    /// When the secret was first written.
    pub created_time: Option<DateTime<Utc>>,
    /// When its current version was written: its last rotation.
    pub rotated_at: Option<DateTime<Utc>>,
    /// The rotation period from its metadata.
    pub rotation_period_days: Option<u32>,
    /// When the next rotation is due.
    pub due_at: Option<DateTime<Utc>>,
    /// The state and why.
    pub judgement: Judgement,
}

/// One certificate the PKI engine stored.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CertificateStatus {
    /// Serial, colon-separated hex as Vault names it.
    pub serial: String,
    /// Subject common name.
    pub common_name: String,
    /// DNS subject alternative names.
    pub dns_names: Vec<String>,
    /// A CA certificate (the engine's issuer) rather than a leaf.
    pub is_ca: bool,
    /// Validity start.
    pub not_before: DateTime<Utc>,
    /// Expiry.
    pub not_after: DateTime<Utc>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// The state and why.
    pub judgement: Judgement,
}

impl Vault {
    /// The status of every meshport-managed secret below the KV folders `prefixes` (for
    /// example the onboarding namespaces, or `prod-app/cart` for one service), sorted by path.
    #[tracing::instrument(skip_all)]
    pub async fn secret_statuses(
        &self,
        prefixes: &[String],
        now: DateTime<Utc>,
    ) -> Result<Vec<SecretStatus>, VaultError> {
        let metadata_root = format!("{}/metadata", self.kv_mount);
        // Walk the folders level by level, each level's listings in parallel.
        let mut folders: Vec<String> =
            prefixes.iter().map(|p| format!("{}/", p.trim_matches('/'))).collect();
        let mut secrets = Vec::new();
        while !folders.is_empty() {
            let listings: Vec<(String, Vec<String>)> = stream::iter(folders)
                .map(|folder| async {
                    let keys = self.list(&format!("{metadata_root}/{folder}")).await?;
                    Ok::<_, VaultError>((folder, keys))
                })
                .buffer_unordered(CONCURRENCY)
                .try_collect()
                .await?;
            folders = Vec::new();
            for (folder, keys) in listings {
                for key in keys {
                    if key.ends_with('/') {
                        folders.push(format!("{folder}{key}"));
                    } else {
                        secrets.push(format!("{folder}{key}"));
                    }
                }
            }
        }
        let metadata_root = &metadata_root;
        let mut statuses: Vec<SecretStatus> = stream::iter(secrets)
            .map(|path| async move {
                let metadata = self.read(&format!("{metadata_root}/{path}")).await?;
                let managed = metadata.as_ref().is_some_and(is_managed);
                Ok::<_, VaultError>(managed.then(|| secret_status(path, metadata.as_ref(), now)))
            })
            .buffer_unordered(CONCURRENCY)
            .try_filter_map(|status| async move { Ok(status) })
            .try_collect()
            .await?;
        statuses.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(statuses)
    }

    /// The status of the secrets at `paths` (below the KV mount), in that order: for callers
    /// that know a service's secrets, one read each and no listing. A missing secret is
    /// reported as failing.
    #[tracing::instrument(skip_all)]
    pub async fn secrets_at(
        &self,
        paths: &[String],
        now: DateTime<Utc>,
    ) -> Result<Vec<SecretStatus>, VaultError> {
        // Owned paths: a future borrowing each item would not be `Send` for every lifetime,
        // which a spawned refresh needs.
        stream::iter(paths.iter().cloned())
            .map(|path| async move {
                let metadata = self.read(&format!("{}/metadata/{path}", self.kv_mount)).await?;
                Ok::<_, VaultError>(secret_status(path, metadata.as_ref(), now))
            })
            .buffered(CONCURRENCY)
            .try_collect()
            .await
    }

    /// Every certificate the PKI engine stored (`<pki>/certs`, `<pki>/cert/<serial>`), soonest
    /// expiry first. Certificates of `no_store` roles are not stored and so not listed.
    #[tracing::instrument(skip_all)]
    pub async fn pki_certificates(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<CertificateStatus>, VaultError> {
        let serials = self.list(&format!("{}/certs", self.pki_mount)).await?;
        let mut certificates: Vec<CertificateStatus> = stream::iter(serials)
            .map(|serial| async move {
                let path = format!("{}/cert/{serial}", self.pki_mount);
                let Some(entry) = self.read(&path).await? else { return Ok(None) };
                certificate_status(serial, &entry, now)
                    .map(Some)
                    .map_err(|message| VaultError::Unexpected { path, message })
            })
            .buffer_unordered(CONCURRENCY)
            .try_filter_map(|status| async move { Ok(status) })
            .try_collect()
            .await?;
        certificates.sort_by(|a, b| a.not_after.cmp(&b.not_after).then(a.serial.cmp(&b.serial)));
        Ok(certificates)
    }
}

/// Whether meshport wrote this secret's metadata.
fn is_managed(metadata: &Value) -> bool {
    metadata["custom_metadata"]["managed_by"] == "meshport"
}

/// A secret's status from its KV v2 metadata (`None`: the secret does not exist).
fn secret_status(path: String, metadata: Option<&Value>, now: DateTime<Utc>) -> SecretStatus {
    let metadata = metadata.unwrap_or(&Value::Null);
    let custom = &metadata["custom_metadata"];
    let time = |value: &Value| value.as_str().and_then(|t| DateTime::parse_from_rfc3339(t).ok());
    let current_version = metadata["current_version"].as_u64().unwrap_or(0);
    let current = &metadata["versions"][current_version.to_string()];
    let rotated_at = time(&current["created_time"]).map(|t| t.to_utc());
    let rotation_period_days = custom["rotation_period_days"].as_str().and_then(|d| d.parse().ok());
    let due_at = rotated_at
        .zip(rotation_period_days)
        .map(|(at, days): (DateTime<Utc>, u32)| at + TimeDelta::days(i64::from(days)));
    let judgement = if metadata.is_null() {
        Judgement::new(RotationState::Failing, "the secret does not exist in Vault")
    } else if current_version == 0 {
        Judgement::new(RotationState::Failing, "no value has been written yet")
    } else if current["destroyed"] == true {
        Judgement::new(RotationState::Failing, "the current version is destroyed")
    } else if current["deletion_time"].as_str().is_some_and(|t| !t.is_empty()) {
        Judgement::new(RotationState::Failing, "the current version is deleted")
    } else if custom.get("offboarded_at").is_some() {
        Judgement::new(RotationState::Ok, "kept after offboarding; not rotated any more")
    } else {
        judge_rotation(rotated_at, rotation_period_days, now)
    };
    SecretStatus {
        path,
        source: custom["value_source"].as_str().map(str::to_owned),
        current_version,
        versions: metadata["versions"].as_object().map_or(0, |v| v.len()),
        created_time: time(&metadata["created_time"]).map(|t| t.to_utc()),
        rotated_at,
        rotation_period_days,
        due_at,
        judgement,
    }
}

/// Judges the age of a secret's current version against its rotation period.
pub fn judge_rotation(
    rotated_at: Option<DateTime<Utc>>,
    period_days: Option<u32>,
    now: DateTime<Utc>,
) -> Judgement {
    let (Some(rotated_at), Some(days)) = (rotated_at, period_days) else {
        return Judgement::new(RotationState::Ok, "no rotation period is set");
    };
    let period = TimeDelta::days(i64::from(days));
    let due = rotated_at + period;
    let age_days = (now - rotated_at).num_days();
    if now >= due {
        let late = (now - due).num_days();
        return Judgement::new(
            RotationState::Overdue,
            format!(
                "last rotated {age_days} days ago; the period is {days} days ({late} days late)"
            ),
        );
    }
    let window = DUE_SOON_AT_MOST.min(period / 4);
    if due - now <= window {
        let left = (due - now).num_hours();
        return Judgement::new(
            RotationState::DueSoon,
            format!("rotation due in {left} hours (period {days} days)"),
        );
    }
    Judgement::new(RotationState::Ok, format!("rotated {age_days} days ago; period {days} days"))
}

/// A stored certificate's status from `<pki>/cert/<serial>`.
fn certificate_status(
    serial: String,
    entry: &Value,
    now: DateTime<Utc>,
) -> Result<CertificateStatus, String> {
    let pem = entry["certificate"].as_str().ok_or("no certificate in the answer")?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|e| e.to_string())?;
    let certificate = pem.parse_x509().map_err(|e| e.to_string())?;
    let at = |time: &x509_parser::time::ASN1Time| {
        DateTime::from_timestamp(time.timestamp(), 0).ok_or("a validity date out of range")
    };
    let not_before = at(&certificate.validity().not_before)?;
    let not_after = at(&certificate.validity().not_after)?;
    let common_name = certificate
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or_default()
        .to_owned();
    let dns_names = match certificate.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|name| match name {
                x509_parser::extensions::GeneralName::DNSName(dns) => Some((*dns).to_owned()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let revoked_at = entry["revocation_time"]
        .as_i64()
        .filter(|t| *t > 0)
        .and_then(|t| DateTime::from_timestamp(t, 0));
    let judgement = judge_certificate(not_before, not_after, revoked_at, now);
    Ok(CertificateStatus {
        serial,
        common_name,
        dns_names,
        is_ca: certificate.is_ca(),
        not_before,
        not_after,
        revoked_at,
        judgement,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    #[test]
    fn secrets_are_judged_by_the_age_of_their_current_version() {
        let rotated = Some(at("2026-01-01T00:00:00Z"));
        let judge = |now| judge_rotation(rotated, Some(30), at(now)).state;
        assert_eq!(judge("2026-01-10T00:00:00Z"), RotationState::Ok);
        // 30 days: the window is seven days (a quarter would be 7.5).
        assert_eq!(judge("2026-01-23T23:00:00Z"), RotationState::Ok);
        assert_eq!(judge("2026-01-24T01:00:00Z"), RotationState::DueSoon);
        assert_eq!(judge("2026-01-31T00:00:00Z"), RotationState::Overdue);
        // Short periods warn a quarter ahead: 4 days → one day.
        let short = |now| judge_rotation(rotated, Some(4), at(now)).state;
        assert_eq!(short("2026-01-02T23:00:00Z"), RotationState::Ok);
        assert_eq!(short("2026-01-04T01:00:00Z"), RotationState::DueSoon);
        assert_eq!(
            judge_rotation(rotated, None, at("2030-01-01T00:00:00Z")).state,
            RotationState::Ok
        );
        let overdue = judge_rotation(rotated, Some(30), at("2026-03-02T00:00:00Z"));
        assert_eq!(
            overdue.reason,
            "last rotated 60 days ago; the period is 30 days (30 days late)"
        );
    }

    #[test]
    fn missing_unwritten_and_deleted_secrets_are_failing() {
        let now = Utc::now();
        let judge = |metadata: Option<Value>| {
            secret_status("a/b/c".into(), metadata.as_ref(), now).judgement
        };
        assert_eq!(judge(None).reason, "the secret does not exist in Vault");
        let empty = serde_json::json!({ "current_version": 0, "custom_metadata": { "managed_by": "meshport" } });
        assert!(is_managed(&empty));
        assert_eq!(judge(Some(empty)).state, RotationState::Failing);
        let deleted = serde_json::json!({ "current_version": 1, "versions": { "1": { "created_time": "2026-01-01T00:00:00Z", "deletion_time": "2026-01-02T00:00:00Z", "destroyed": false } } });
        assert!(!is_managed(&deleted));
        assert_eq!(judge(Some(deleted)).reason, "the current version is deleted");
    }
}
