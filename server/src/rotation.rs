//! Rotating a generated secret: a new KV version written by [`Vault::rotate`] and the audit
//! event that records it (a refused or failed rotation is recorded too). The Vault Agent
//! re-renders the file within its template interval (about five minutes by default).

use serde_json::json;

use crate::audit::{self, Action, Actor, NewEvent, Outcome, Target};
use crate::store::Store;
use crate::vault::Vault;

/// Rotates the secret at `path` (`<namespace>/<service>/<name>` below the KV mount) on behalf
/// of `actor`. Returns the new version.
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
