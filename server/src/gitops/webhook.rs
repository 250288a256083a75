//! Webhook deliveries from the forges: the signature check (GitHub's `X-Hub-Signature-256` and
//! Gitea's `X-Gitea-Signature` HMAC-SHA256 of the raw body, GitLab's `X-Gitlab-Token` secret),
//! compared in constant time, and the pull request event read from the payload.

use hmac::{Hmac, Mac};
use http::HeaderMap;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::provider::{ProviderKind, RemotePullRequest, parse_merge_request, parse_pull};

/// A delivery that passed the signature check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The forge's id of this delivery; a replay carries the same one.
    pub id: String,
    /// SHA-256 of the body (hex), which the signature covers: a replay under a new id has the
    /// same one.
    pub body_sha256: String,
    /// The pull request event, or `None` for another event (a ping, a push).
    pub event: Option<PullRequestEvent>,
}

/// A pull request's state as a webhook reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullRequestEvent {
    /// Names the repository goes by in the payload (`owner/repo`; GitLab: path and id).
    pub repository: Vec<String>,
    pub pull: RemotePullRequest,
}

/// A delivery was refused.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error(
        "meshport takes no {0} webhooks: `gitops.provider` names another forge or \
         `gitops.webhook_secret` is not set"
    )]
    NotConfigured(&'static str),
    #[error("the `{0}` header is missing or does not match `gitops.webhook_secret`")]
    BadSignature(&'static str),
    #[error("the `{0}` header (the delivery id) is missing")]
    MissingDeliveryId(&'static str),
    #[error("the payload is not a {forge} pull request event: {message}")]
    Malformed { forge: &'static str, message: String },
}

/// The headers a forge's deliveries carry.
struct Headers {
    forge: &'static str,
    signature: &'static [&'static str],
    delivery: &'static [&'static str],
    event: &'static [&'static str],
    pull_request_event: &'static str,
}

fn headers_of(kind: ProviderKind) -> Option<Headers> {
    Some(match kind {
        ProviderKind::Github => Headers {
            forge: "GitHub",
            signature: &["x-hub-signature-256"],
            delivery: &["x-github-delivery"],
            event: &["x-github-event"],
            pull_request_event: "pull_request",
        },
        // Forgejo sends its own names beside Gitea's.
        ProviderKind::Gitea => Headers {
            forge: "Gitea",
            signature: &["x-gitea-signature", "x-forgejo-signature"],
            delivery: &["x-gitea-delivery", "x-forgejo-delivery"],
            event: &["x-gitea-event", "x-forgejo-event"],
            pull_request_event: "pull_request",
        },
        // `Idempotency-Key` stays the same when GitLab retries a delivery (17.4+); older
        // versions send only the event UUID.
        ProviderKind::Gitlab => Headers {
            forge: "GitLab",
            signature: &["x-gitlab-token"],
            delivery: &["idempotency-key", "x-gitlab-event-uuid"],
            event: &["x-gitlab-event"],
            pull_request_event: "Merge Request Hook",
        },
        ProviderKind::Local => return None,
    })
}

fn first<'a>(headers: &'a HeaderMap, names: &[&str]) -> Option<&'a str> {
    names.iter().find_map(|name| headers.get(*name)?.to_str().ok())
}

/// Checks the delivery's signature against `secret`, then reads it. Nothing in an unsigned
/// delivery is looked at beyond its headers.
pub fn verify_and_read(
    kind: ProviderKind,
    headers: &HeaderMap,
    body: &[u8],
    secret: &SecretString,
) -> Result<Delivery, WebhookError> {
    let names = headers_of(kind).ok_or(WebhookError::NotConfigured(kind.as_str()))?;
    let signature = first(headers, names.signature).unwrap_or_default();
    let secret = secret.expose_secret().as_bytes();
    let valid = match kind {
        ProviderKind::Github => {
            signature.strip_prefix("sha256=").is_some_and(|hex| hmac_matches(secret, body, hex))
        }
        ProviderKind::Gitea => hmac_matches(secret, body, signature),
        _ => !signature.is_empty() && bool::from(signature.as_bytes().ct_eq(secret)),
    };
    if !valid {
        return Err(WebhookError::BadSignature(names.signature[0]));
    }
    let id = first(headers, names.delivery)
        .filter(|id| !id.trim().is_empty())
        .ok_or(WebhookError::MissingDeliveryId(names.delivery[0]))?
        .to_owned();
    let body_sha256 =
        <Sha256 as sha2::Digest>::digest(body).iter().map(|b| format!("{b:02x}")).collect();
    if first(headers, names.event) != Some(names.pull_request_event) {
        return Ok(Delivery { id, body_sha256, event: None });
    }
    let malformed = |message: String| WebhookError::Malformed { forge: names.forge, message };
    let json: Value = serde_json::from_slice(body).map_err(|e| malformed(e.to_string()))?;
    let event = match kind {
        ProviderKind::Gitlab => PullRequestEvent {
            repository: [
                json["project"]["path_with_namespace"].as_str().map(str::to_owned),
                json["project"]["id"].as_i64().map(|id| id.to_string()),
            ]
            .into_iter()
            .flatten()
            .collect(),
            pull: parse_merge_request(&json["object_attributes"], "url")
                .map_err(|e| malformed(e.to_string()))?,
        },
        _ => PullRequestEvent {
            repository: json["repository"]["full_name"]
                .as_str()
                .map(str::to_owned)
                .into_iter()
                .collect(),
            pull: parse_pull(&json["pull_request"], names.forge)
                .map_err(|e| malformed(e.to_string()))?,
        },
    };
    Ok(Delivery { id, body_sha256, event: Some(event) })
}

/// Whether `hex` is the HMAC-SHA256 of `body` under `secret`; compared in constant time.
fn hmac_matches(secret: &[u8], body: &[u8], hex: &str) -> bool {
    let Some(expected) = decode_hex(hex) else { return false };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else { return false };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok()).collect()
}

/// The signature a forge would send for `body` (hex HMAC-SHA256), for tests and tools.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (http::HeaderName::from_static(k), v.parse().unwrap())).collect()
    }

    const GITHUB_MERGED: &str = r#"{"action":"closed","number":7,
        "pull_request":{"number":7,"state":"closed","merged":true,"merge_commit_sha":"abc123",
        "html_url":"https://github.com/shop/gitops/pull/7"},
        "repository":{"full_name":"shop/gitops"}}"#;

    #[test]
    fn a_github_delivery_is_read_only_with_the_right_signature() {
        let secret = SecretString::from("s3cret");
        let body = GITHUB_MERGED.as_bytes();
        let good = format!("sha256={}", sign("s3cret", body));
        let delivery = verify_and_read(
            ProviderKind::Github,
            &headers(&[
                ("x-hub-signature-256", &good),
                ("x-github-delivery", "d-1"),
                ("x-github-event", "pull_request"),
            ]),
            body,
            &secret,
        )
        .unwrap();
        let event = delivery.event.unwrap();
        assert_eq!(delivery.id, "d-1");
        assert_eq!(event.repository, ["shop/gitops"]);
        assert_eq!(event.pull.state, super::super::provider::PrState::Merged);
        assert_eq!(event.pull.merge_commit_sha.as_deref(), Some("abc123"));
        assert_eq!(event.pull.updated_at, None, "this payload names no time");

        let wrong = format!("sha256={}", sign("other", body));
        for signature in [wrong.as_str(), "sha256=zz", "", sign("s3cret", body).as_str()] {
            let error = verify_and_read(
                ProviderKind::Github,
                &headers(&[("x-hub-signature-256", signature), ("x-github-delivery", "d-1")]),
                body,
                &secret,
            )
            .unwrap_err();
            assert!(
                matches!(error, WebhookError::BadSignature("x-hub-signature-256")),
                "{signature}"
            );
        }
    }

    #[test]
    fn gitlab_tokens_must_match_exactly() {
        let secret = SecretString::from("tok");
        for token in ["to", "tok ", "TOK", ""] {
            let error = verify_and_read(
                ProviderKind::Gitlab,
                &headers(&[("x-gitlab-token", token), ("idempotency-key", "k")]),
                b"{}",
                &secret,
            )
            .unwrap_err();
            assert!(matches!(error, WebhookError::BadSignature(_)), "{token:?}");
        }
        let ping = verify_and_read(
            ProviderKind::Gitlab,
            &headers(&[
                ("x-gitlab-token", "tok"),
                ("idempotency-key", "k"),
                ("x-gitlab-event", "Push Hook"),
            ]),
            b"{}",
            &secret,
        )
        .unwrap();
        // The SHA-256 of `{}`.
        let body_sha256 = "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a".into();
        assert_eq!(ping, Delivery { id: "k".into(), body_sha256, event: None });
    }

    #[test]
    fn forge_times_are_read_in_each_forge_s_form() {
        use super::super::provider::timestamp;
        let at = |text: &str| timestamp(&serde_json::json!({ "updated_at": text }), "updated_at");
        let expected = chrono::DateTime::parse_from_rfc3339("2026-12-07T10:11:12Z").unwrap();
        // GitHub and Gitea; GitLab's API; GitLab's webhooks (older and newer versions).
        for text in [
            "2026-12-07T10:11:12Z",
            "2026-12-07T11:11:12+01:00",
            "2026-12-07 10:11:12 UTC",
            "2026-12-07 11:11:12 +0100",
        ] {
            assert_eq!(at(text), Some(expected.to_utc()), "{text}");
        }
        assert_eq!(at("yesterday"), None);
    }

    #[test]
    fn hex_decoding_refuses_odd_and_non_hex_input() {
        assert_eq!(decode_hex("0aff"), Some(vec![0x0a, 0xff]));
        assert_eq!(decode_hex("abc"), None);
        assert_eq!(decode_hex("zz"), None);
        assert_eq!(decode_hex("é1"), None);
    }
}
