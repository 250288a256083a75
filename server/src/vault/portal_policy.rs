//! meshport's own Vault policy: exactly what provisioning, offboarding, rotation and status
//! need, scoped to the configured name prefix and onboarding namespaces. `meshport vault
//! policy` prints it for the running configuration; `docs/vault.md` explains each rule.

use crate::artifacts::ArtifactSettings;
use crate::artifacts::vault::{Capability, PolicyRule, ServicePolicy};

/// The policy named `name` that lets meshport manage services in `namespaces`.
pub fn portal_policy(
    name: &str,
    settings: &ArtifactSettings,
    namespaces: &[String],
) -> ServicePolicy {
    use Capability::{Create, Delete, List, Read, Update};
    let manage = || vec![Create, Read, Update, Delete];
    let mut rules = Vec::new();
    for namespace in namespaces {
        let names = format!("{}{namespace}-*", settings.name_prefix);
        rules.extend([
            PolicyRule { path: format!("sys/policies/acl/{names}"), capabilities: manage() },
            PolicyRule {
                path: format!("auth/{}/role/{names}", settings.kubernetes_auth_mount),
                capabilities: manage(),
            },
            // Values are written (first values, rotations) but never read back.
            PolicyRule {
                path: format!("{}/data/{namespace}/*", settings.kv_mount),
                capabilities: vec![Create, Update],
            },
            PolicyRule {
                path: format!("{}/metadata/{namespace}/*", settings.kv_mount),
                capabilities: vec![Create, Read, Update, Delete, List],
            },
            PolicyRule {
                path: format!("{}/roles/{names}", settings.pki_mount),
                capabilities: manage(),
            },
        ]);
    }
    rules.extend([
        PolicyRule { path: format!("{}/certs", settings.pki_mount), capabilities: vec![List] },
        PolicyRule { path: format!("{}/cert/*", settings.pki_mount), capabilities: vec![Read] },
        // Health checks and renewal, also for tokens issued without the `default` policy.
        PolicyRule { path: "auth/token/lookup-self".to_owned(), capabilities: vec![Read] },
        PolicyRule { path: "auth/token/renew-self".to_owned(), capabilities: vec![Update] },
    ]);
    ServicePolicy { name: name.to_owned(), rules }
}
