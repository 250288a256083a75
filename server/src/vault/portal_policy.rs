//! meshport's own Vault policy: exactly what provisioning, offboarding, rotation and status
//! need, scoped to the configured name prefix and onboarding namespaces. `meshport vault
//! policy` prints it for the running configuration; `docs/vault.md` explains each rule.
//!
//! Containing meshport's own power: a role path whose parameters are free would let a
//! compromised portal bind any policy to any ServiceAccount, its own included. So every role
//! write is limited by `allowed_parameters` to the role's one onboarding namespace and to
//! policies meshport names; in [`PolicyMode::Templated`] meshport writes no policy at all.

use std::collections::BTreeMap;

use crate::artifacts::ArtifactSettings;
use crate::artifacts::vault_objects::{Capability, PolicyMode, PolicyRule, ServicePolicy};

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
        let token_policy = match settings.policy_mode {
            PolicyMode::PerService => {
                rules.push(PolicyRule::new(format!("sys/policies/acl/{names}"), manage()));
                names.clone()
            }
            PolicyMode::Templated => settings.workload_policy_name(),
        };
        rules.extend([
            role_rule(settings, &names, namespace, &token_policy),
            // Values are written (first values, rotations) but never read back.
            PolicyRule::new(format!("{}/data/{namespace}/*", settings.kv_mount), vec![Create, Update]),
            PolicyRule::new(
                format!("{}/metadata/{namespace}/*", settings.kv_mount),
                vec![Create, Read, Update, Delete, List],
            ),
            PolicyRule::new(format!("{}/roles/{names}", settings.pki_mount), manage()),
        ]);
    }
    // Typed values wait here between submission and approval: written at submission, read
    // once and destroyed (metadata delete) at provisioning, listed and destroyed on rejection.
    // No workload policy reaches it (no onboarding namespace may be named so).
    let staging = super::provision::STAGING_FOLDER;
    rules.extend([
        PolicyRule::new(
            format!("{}/data/{staging}/*", settings.kv_mount),
            vec![Create, Read, Update],
        ),
        PolicyRule::new(
            format!("{}/metadata/{staging}/*", settings.kv_mount),
            vec![Read, Delete, List],
        ),
    ]);
    rules.extend([
        PolicyRule::new(format!("{}/certs", settings.pki_mount), vec![List]),
        PolicyRule::new(format!("{}/cert/*", settings.pki_mount), vec![Read]),
        // `meshport vault preflight --pki` checks the issuing URLs.
        PolicyRule::new(format!("{}/config/urls", settings.pki_mount), vec![Read]),
        // Health checks and renewal, also for tokens issued without the `default` policy.
        PolicyRule::new("auth/token/lookup-self", vec![Read]),
        PolicyRule::new("auth/token/renew-self", vec![Update]),
    ]);
    ServicePolicy { name: name.to_owned(), rules }
}

/// Writing the roles `names` of one namespace: bound to that namespace only (never meshport's
/// own), carrying only `token_policy` (a glob of meshport's names, or the workload policy),
/// with no parameter meshport does not send. meshport sends these lists as one string each:
/// OpenBao compares a JSON list as a single value, and a comma inside a string would smuggle
/// a second policy past the glob, so commas are denied.
fn role_rule(
    settings: &ArtifactSettings,
    names: &str,
    namespace: &str,
    token_policy: &str,
) -> PolicyRule {
    use Capability::{Create, Delete, Read, Update};
    let any = Vec::new;
    let allowed = BTreeMap::from([
        ("bound_service_account_names".to_owned(), any()),
        ("bound_service_account_namespaces".to_owned(), vec![namespace.to_owned()]),
        ("token_policies".to_owned(), vec![token_policy.to_owned()]),
        ("token_ttl".to_owned(), any()),
        ("token_max_ttl".to_owned(), any()),
        ("audience".to_owned(), any()),
    ]);
    let denied = BTreeMap::from([("token_policies".to_owned(), vec!["*,*".to_owned()])]);
    PolicyRule {
        path: format!("auth/{}/role/{names}", settings.kubernetes_auth_mount),
        capabilities: vec![Create, Read, Update, Delete],
        allowed_parameters: allowed,
        denied_parameters: denied,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meshport_alone_reaches_the_staging_folder() {
        use Capability::{Create, Delete, List, Read, Update};
        let settings = crate::config::Config::default().artifact_settings();
        let staging = super::super::provision::STAGING_FOLDER;
        let (data, metadata) = (
            format!("{}/data/{staging}/", settings.kv_mount),
            format!("{}/metadata/{staging}/", settings.kv_mount),
        );
        let policy = portal_policy("meshport", &settings, &["prod-app".to_owned()]);
        let rule = |path: &str| policy.rules.iter().find(|r| r.path == path).cloned();
        assert_eq!(rule(&format!("{data}*")).unwrap().capabilities, [Create, Read, Update]);
        assert_eq!(rule(&format!("{metadata}*")).unwrap().capabilities, [Read, Delete, List]);
        // Workloads read `<kv>/data/<namespace>/<service>/*`: the folder is out of reach as long
        // as no onboarding namespace bears its name, which the configuration refuses.
        let workloads = crate::artifacts::workload_policy(&settings, "auth_kubernetes_0a1b");
        assert!(workloads.rules.iter().all(|r| !r.path.starts_with(&data)));
        assert!(workloads.rules[0].path.starts_with(&format!("{}/data/{{{{", settings.kv_mount)));
    }
}
