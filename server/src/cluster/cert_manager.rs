//! cert-manager's `Certificate` and `CertificateRequest` as meshport reads them (only the fields
//! it shows; the rest is ignored), and the judgement of a certificate by its status: by
//! `renewalTime` and `notAfter`, with failed issuances named, never by a fixed day count.

use app::rotation::{Judgement, RotationState};
use chrono::{DateTime, TimeDelta, Utc};
use kube::CustomResource;
use serde::{Deserialize, Serialize};

/// Longest warning before a renewal; short-lived certificates warn a quarter of their
/// pre-renewal life ahead (6 hours for Linkerd's documented 48h issuer renewed at 23h).
const DUE_SOON_AT_MOST: TimeDelta = TimeDelta::days(7);

/// How long past `renewalTime` cert-manager may take before the renewal counts as overdue.
const RENEWAL_GRACE: TimeDelta = TimeDelta::hours(1);

/// The spec fields of a cert-manager `Certificate` meshport shows.
#[derive(CustomResource, Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[kube(
    group = "cert-manager.io",
    version = "v1",
    kind = "Certificate",
    namespaced,
    status = "CertificateStatus",
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct CertificateSpec {
    #[serde(default)]
    pub secret_name: String,
    pub common_name: Option<String>,
    #[serde(default)]
    pub dns_names: Vec<String>,
    pub duration: Option<String>,
    pub renew_before: Option<String>,
    #[serde(rename = "isCA")]
    pub is_ca: Option<bool>,
    pub issuer_ref: Option<IssuerRef>,
}

/// The issuer a certificate names.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct IssuerRef {
    pub name: String,
    pub kind: Option<String>,
    pub group: Option<String>,
}

/// A `Certificate`'s status. Times stay text here and are parsed where judged, so one odd value
/// spoils one judgement rather than the whole list.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CertificateStatus {
    #[serde(default)]
    pub conditions: Vec<Condition>,
    pub not_before: Option<String>,
    pub not_after: Option<String>,
    pub renewal_time: Option<String>,
    pub revision: Option<i64>,
    pub last_failure_time: Option<String>,
    pub failed_issuance_attempts: Option<i64>,
}

/// A status condition (`Ready`, `Issuing`, `Denied`, …).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub last_transition_time: Option<String>,
}

/// The fields of a `CertificateRequest` that say whether it failed.
#[derive(CustomResource, Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[kube(
    group = "cert-manager.io",
    version = "v1",
    kind = "CertificateRequest",
    namespaced,
    status = "CertificateRequestStatus",
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct CertificateRequestSpec {
    pub issuer_ref: Option<IssuerRef>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CertificateRequestStatus {
    #[serde(default)]
    pub conditions: Vec<Condition>,
    pub failure_time: Option<String>,
}

/// The annotation cert-manager puts on a request naming its certificate.
pub const CERTIFICATE_NAME: &str = "cert-manager.io/certificate-name";
/// The annotation naming the revision a request is for.
pub const CERTIFICATE_REVISION: &str = "cert-manager.io/certificate-revision";

impl CertificateRequest {
    /// Why this request failed, if it did: denied, invalid, or `Ready=False` with reason
    /// `Failed` (cert-manager's terminal states).
    pub fn failure(&self) -> Option<String> {
        let conditions = &self.status.as_ref()?.conditions;
        let failed = conditions.iter().find(|c| {
            (c.type_ == "Denied" || c.type_ == "InvalidRequest") && c.status == "True"
                || c.type_ == "Ready"
                    && c.status == "False"
                    && c.reason.as_deref() == Some("Failed")
        })?;
        Some(failed.message.clone().unwrap_or_else(|| failed.type_.clone()))
    }

    /// The certificate and revision this request was made for.
    pub fn made_for(&self) -> Option<(&str, i64)> {
        let annotations = self.metadata.annotations.as_ref()?;
        let name = annotations.get(CERTIFICATE_NAME)?;
        let revision = annotations.get(CERTIFICATE_REVISION)?.parse().ok()?;
        Some((name, revision))
    }
}

/// Parses a Kubernetes timestamp.
pub fn parse_time(text: Option<&str>) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text?).ok().map(|t| t.to_utc())
}

fn condition<'a>(status: &'a CertificateStatus, type_: &str) -> Option<&'a Condition> {
    status.conditions.iter().find(|c| c.type_ == type_)
}

/// A duration for people: hours below three days, days above.
pub fn span(delta: TimeDelta) -> String {
    let hours = delta.num_hours();
    if hours.abs() < 72 { format!("{hours} hours") } else { format!("{} days", delta.num_days()) }
}

/// Judges a certificate by its status. `request_failure` is the message of a failed
/// `CertificateRequest` for the revision being issued, if any.
pub fn judge(
    status: Option<&CertificateStatus>,
    request_failure: Option<&str>,
    now: DateTime<Utc>,
) -> Judgement {
    let empty = CertificateStatus::default();
    let status = status.unwrap_or(&empty);
    let not_before = parse_time(status.not_before.as_deref());
    let not_after = parse_time(status.not_after.as_deref());
    let renewal = parse_time(status.renewal_time.as_deref());
    let ready = condition(status, "Ready");
    let issuing = condition(status, "Issuing").filter(|c| c.status == "True");
    let attempts = status.failed_issuance_attempts.unwrap_or(0);
    let failure = failure_text(status, request_failure, attempts);

    if let Some(not_after) = not_after
        && now >= not_after
    {
        let mut reason =
            format!("expired at {} ({} ago)", not_after.to_rfc3339(), span(now - not_after));
        if let Some(failure) = &failure {
            reason.push_str(&format!("; {failure}"));
        }
        return Judgement::new(RotationState::Expired, reason);
    }
    let left = not_after.map(|t| format!("; expires in {}", span(t - now))).unwrap_or_default();
    if let Some(failure) = failure {
        return Judgement::new(RotationState::Failing, format!("{failure}{left}"));
    }
    let ready_true = ready.is_some_and(|c| c.status == "True");
    if not_after.is_none() {
        return match issuing {
            Some(_) => Judgement::new(RotationState::DueSoon, "first issuance in progress"),
            None => Judgement::new(
                RotationState::Failing,
                format!("not issued yet: {}", message(ready).unwrap_or("no Ready condition")),
            ),
        };
    }
    if !ready_true && issuing.is_none() {
        return Judgement::new(
            RotationState::Failing,
            format!("not ready: {}{left}", message(ready).unwrap_or("no Ready condition")),
        );
    }
    let Some(renewal) = renewal else {
        // Without a renewal time (renewal not scheduled), fall back to the lifetime rule.
        let (Some(not_before), Some(not_after)) = (not_before, not_after) else {
            return Judgement::new(RotationState::Ok, format!("no renewalTime{left}"));
        };
        let judged = app::rotation::judge_certificate(not_before, not_after, None, now);
        return Judgement::new(judged.state, format!("no renewal scheduled; {}", judged.reason));
    };
    if now >= renewal {
        let late = now - renewal;
        if issuing.is_some() {
            return Judgement::new(
                RotationState::DueSoon,
                format!("renewal in progress (due {} ago){left}", span(late)),
            );
        }
        if late > RENEWAL_GRACE {
            return Judgement::new(
                RotationState::Overdue,
                format!("renewal was due {} ago and has not started{left}", span(late)),
            );
        }
        return Judgement::new(RotationState::DueSoon, format!("renewal due now{left}"));
    }
    let issued = not_before.unwrap_or(renewal - DUE_SOON_AT_MOST * 4);
    let window = DUE_SOON_AT_MOST.min((renewal - issued) / 4);
    let until = span(renewal - now);
    if renewal - now <= window {
        return Judgement::new(RotationState::DueSoon, format!("renews in {until}{left}"));
    }
    Judgement::new(RotationState::Ok, format!("renews in {until}{left}"))
}

/// What is failing, if anything: failed attempts (with cert-manager's back-off), a failed
/// request, or an `Issuing` condition that ended in failure.
fn failure_text(
    status: &CertificateStatus,
    request_failure: Option<&str>,
    attempts: i64,
) -> Option<String> {
    let issuing_failed = condition(status, "Issuing")
        .filter(|c| c.status == "False" && c.reason.as_deref() == Some("Failed"));
    if attempts == 0 && request_failure.is_none() && issuing_failed.is_none() {
        return None;
    }
    let why = request_failure
        .or_else(|| message(issuing_failed))
        .or_else(|| message(condition(status, "Ready")))
        .unwrap_or("no message");
    let mut text = match attempts {
        0 => format!("issuance failed: {why}"),
        1 => format!("issuance failed once: {why}"),
        n => format!("issuance failed {n} times: {why}"),
    };
    if let Some(last) = parse_time(status.last_failure_time.as_deref()) {
        // cert-manager retries after 1h, doubling per failure up to 32h.
        let hours = 1_i64 << (attempts.clamp(1, 6) - 1);
        let next = last + TimeDelta::hours(hours);
        text.push_str(&format!(
            "; last failure {}, next attempt about {}",
            last.to_rfc3339(),
            next.to_rfc3339()
        ));
    }
    Some(text)
}

fn message(condition: Option<&Condition>) -> Option<&str> {
    condition.and_then(|c| c.message.as_deref()).filter(|m| !m.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    fn ready(not_before: &str, not_after: &str, renewal: &str) -> CertificateStatus {
        CertificateStatus {
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: "True".into(),
                ..Default::default()
            }],
            not_before: Some(not_before.into()),
            not_after: Some(not_after.into()),
            renewal_time: Some(renewal.into()),
            revision: Some(1),
            ..Default::default()
        }
    }

    #[test]
    fn a_48h_issuer_is_ok_until_near_its_renewal_time_not_by_a_60_day_rule() {
        // Linkerd's documented issuer: 48h, renewBefore 25h → renewal 23h after issuance.
        let status = ready("2026-11-01T00:00:00Z", "2026-11-03T00:00:00Z", "2026-11-01T23:00:00Z");
        let judge_at = |now| judge(Some(&status), None, at(now));
        assert_eq!(judge_at("2026-11-01T10:00:00Z").state, RotationState::Ok);
        assert_eq!(judge_at("2026-11-01T18:00:00Z").state, RotationState::DueSoon);
        assert_eq!(judge_at("2026-11-01T23:30:00Z").state, RotationState::DueSoon);
        let overdue = judge_at("2026-11-02T02:00:00Z");
        assert_eq!(overdue.state, RotationState::Overdue);
        assert_eq!(
            overdue.reason,
            "renewal was due 3 hours ago and has not started; expires in 22 hours"
        );
        assert_eq!(judge_at("2026-11-03T00:00:00Z").state, RotationState::Expired);
    }

    #[test]
    fn failed_attempts_are_failing_with_the_back_off_named() {
        let mut status =
            ready("2026-11-01T00:00:00Z", "2026-11-30T00:00:00Z", "2026-11-20T00:00:00Z");
        status.failed_issuance_attempts = Some(3);
        status.last_failure_time = Some("2026-11-21T00:00:00Z".into());
        let judged = judge(Some(&status), Some("issuer not ready"), at("2026-11-21T01:00:00Z"));
        assert_eq!(judged.state, RotationState::Failing);
        assert!(
            judged.reason.starts_with("issuance failed 3 times: issuer not ready"),
            "{}",
            judged.reason
        );
        assert!(
            judged.reason.contains("next attempt about 2026-11-21T04:00:00+00:00"),
            "{}",
            judged.reason
        );
    }

    #[test]
    fn without_renewal_time_the_lifetime_decides() {
        let mut status = ready("2026-11-01T00:00:00Z", "2026-11-04T00:00:00Z", "");
        status.renewal_time = None;
        assert_eq!(judge(Some(&status), None, at("2026-11-02T00:00:00Z")).state, RotationState::Ok);
        assert_eq!(
            judge(Some(&status), None, at("2026-11-03T01:00:00Z")).state,
            RotationState::DueSoon
        );
        assert_eq!(judge(None, None, at("2026-11-03T01:00:00Z")).state, RotationState::Failing);
    }
}
