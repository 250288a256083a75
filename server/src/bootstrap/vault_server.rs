//! Vault (or OpenBao) in HA: the server configuration as HCL built with hcl-rs (integrated raft
//! storage joined over TLS, the awskms seal, TLS listener, telemetry), the chart values that run
//! it with three replicas and the agent injector, and the policy and Kubernetes-auth role the
//! snapshot job logs in with.

use serde_json::{Value, json};

use super::config::BootstrapConfig;
use crate::artifacts::vault_objects::{Capability, KubernetesAuthRole, PolicyRule, ServicePolicy};
use crate::artifacts::{ArtifactFile, RenderError, json_file};

/// Server replicas: raft needs an odd number, three survives one loss.
pub const REPLICAS: usize = 3;
/// Secret (and Certificate) holding Vault's serving certificate and its CA.
pub const TLS_SECRET: &str = "vault-tls";
/// ServiceAccount, Vault policy and role of the snapshot job.
pub const SNAPSHOT_ACCOUNT: &str = "raft-snapshot";
/// Audience of the snapshot job's login token, bound in its Kubernetes-auth role.
pub const SNAPSHOT_AUDIENCE: &str = "vault";

/// `<backend>-<i>.<backend>-internal`, the address raft peer `i` is reached at.
pub fn peer_host(config: &BootstrapConfig, i: usize) -> String {
    let backend = config.secrets_backend.name();
    format!("{backend}-{i}.{backend}-internal")
}

/// The server configuration.
pub fn server_config(config: &BootstrapConfig) -> String {
    let root = format!("/{}", config.secrets_backend.name());
    let tls = format!("{root}/userconfig/{TLS_SECRET}");
    let mut raft = hcl::Block::builder("storage")
        .add_label("raft")
        .add_attribute(("path", format!("{root}/data")));
    for i in 0..REPLICAS {
        let host = peer_host(config, i);
        raft = raft.add_block(
            hcl::Block::builder("retry_join")
                .add_attribute(("leader_api_addr", format!("https://{host}:8200")))
                .add_attribute(("leader_ca_cert_file", format!("{tls}/ca.crt")))
                .add_attribute(("leader_tls_servername", host))
                .build(),
        );
    }
    let body = hcl::Body::builder()
        .add_attribute(("ui", true))
        .add_attribute(("disable_mlock", true))
        .add_block(
            hcl::Block::builder("listener")
                .add_label("tcp")
                .add_attribute(("address", "[::]:8200"))
                .add_attribute(("cluster_address", "[::]:8201"))
                .add_attribute(("tls_cert_file", format!("{tls}/tls.crt")))
                .add_attribute(("tls_key_file", format!("{tls}/tls.key")))
                .add_attribute(("tls_min_version", "tls12"))
                .add_block(
                    hcl::Block::builder("telemetry")
                        .add_attribute(("unauthenticated_metrics_access", true))
                        .build(),
                )
                .build(),
        )
        .add_block(raft.build())
        .add_block(
            hcl::Block::builder("seal")
                .add_label("awskms")
                .add_attribute(("region", config.aws_region.as_str()))
                .add_attribute(("kms_key_id", config.kms_key_alias.as_str()))
                .build(),
        )
        .add_block(hcl::Block::builder("service_registration").add_label("kubernetes").build())
        .add_block(
            hcl::Block::builder("telemetry")
                .add_attribute(("prometheus_retention_time", "30s"))
                .add_attribute(("disable_hostname", true))
                .build(),
        )
        .build();
    hcl::to_string(&body).expect("an HCL body of strings and booleans always serialises")
}

/// The reloader sidecar's image: busybox, for `md5sum`, `pkill` and `sleep`.
pub const TLS_RELOADER_IMAGE: &str = "busybox:1.37.0";

/// Every minute, compares the mounted certificate with the one last seen and sends SIGHUP to
/// the server process (`binary`) when it changed. Runs as the pod's user, the server's.
fn tls_reloader_script(tls: &str, binary: &str) -> String {
    format!(
        "last=\"$(md5sum {tls}/tls.crt)\"; while sleep 60; do now=\"$(md5sum {tls}/tls.crt)\"; \
         if [ \"$now\" != \"$last\" ] && pkill -HUP -x {binary}; then last=\"$now\"; fi; done"
    )
}

/// The chart values: HA with raft, TLS from the cert-manager secret, the KMS role through
/// IRSA, the injector, persistent data and audit volumes.
pub fn chart_values(config: &BootstrapConfig) -> Value {
    let backend = config.secrets_backend;
    let root = format!("/{}", backend.name());
    let tls = format!("{root}/userconfig/{TLS_SECRET}");
    json!({
        "global": { "tlsDisable": false },
        "injector": {
            "enabled": true,
            "replicas": 2,
        },
        "server": {
            "ha": {
                "enabled": true,
                "replicas": REPLICAS,
                "raft": {
                    "enabled": true,
                    "setNodeId": true,
                    "config": server_config(config),
                },
            },
            "serviceAccount": {
                "annotations": { "eks.amazonaws.com/role-arn": config.role_arn(&config.iam.vault) },
            },
            "extraEnvironmentVars": {
                format!("{}_CACERT", backend.env_prefix()): format!("{tls}/ca.crt"),
            },
            "volumes": [{ "name": TLS_SECRET, "secret": { "secretName": TLS_SECRET } }],
            "volumeMounts": [{ "name": TLS_SECRET, "mountPath": tls, "readOnly": true }],
            // Vault reads its TLS certificate at start and on SIGHUP only, and the StatefulSet
            // never restarts by itself (OnDelete): a sidecar in the pod's process namespace
            // sends SIGHUP when cert-manager has renewed the certificate.
            "shareProcessNamespace": true,
            "extraContainers": [{
                "name": "tls-reloader",
                "image": TLS_RELOADER_IMAGE,
                "command": ["/bin/sh", "-c", tls_reloader_script(&tls, backend.cli())],
                "volumeMounts": [{ "name": TLS_SECRET, "mountPath": tls, "readOnly": true }],
                "securityContext": {
                    "allowPrivilegeEscalation": false,
                    "readOnlyRootFilesystem": true,
                    "capabilities": { "drop": ["ALL"] },
                },
                "resources": {
                    "requests": { "cpu": "5m", "memory": "8Mi" },
                    "limits": { "memory": "32Mi" },
                },
            }],
            "dataStorage": { "enabled": true, "size": "10Gi", "storageClass": "gp3" },
            "auditStorage": { "enabled": true, "size": "10Gi", "storageClass": "gp3" },
        },
        "ui": { "enabled": true },
    })
}

/// The snapshot job's policy and Kubernetes-auth role, as files under `vault/` to apply once
/// after initialisation (README, step 4).
pub fn snapshot_access_files(config: &BootstrapConfig) -> Result<Vec<ArtifactFile>, RenderError> {
    let policy = ServicePolicy {
        name: SNAPSHOT_ACCOUNT.to_owned(),
        rules: vec![PolicyRule::new("sys/storage/raft/snapshot", vec![Capability::Read])],
    };
    let role = KubernetesAuthRole {
        mount: "kubernetes".to_owned(),
        name: SNAPSHOT_ACCOUNT.to_owned(),
        bound_service_account_names: vec![SNAPSHOT_ACCOUNT.to_owned()],
        bound_service_account_namespaces: vec![config.secrets_backend.name().to_owned()],
        token_policies: vec![policy.name.clone()],
        token_ttl: 600,
        token_max_ttl: 1200,
        audience: Some(SNAPSHOT_AUDIENCE.to_owned()),
    };
    access_files(&policy, &role)
}

/// A policy and its Kubernetes-auth role as files named by their API paths, for `vault policy
/// write` and `vault write @file`.
pub fn access_files(
    policy: &ServicePolicy,
    role: &KubernetesAuthRole,
) -> Result<Vec<ArtifactFile>, RenderError> {
    Ok(vec![
        ArtifactFile {
            path: format!("vault/sys/policies/acl/{}.hcl", policy.name),
            contents: policy.to_hcl(),
        },
        json_file(format!("auth/{}/role/{}", role.mount, role.name), role)?,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bootstrap::config::SecretsBackend;

    #[test]
    fn the_server_config_is_raft_with_retry_join_tls_awskms_and_telemetry() {
        let config = BootstrapConfig::example();
        let hcl = server_config(&config);
        let body: hcl::Body = hcl::from_str(&hcl).unwrap();
        let blocks: Vec<(&str, Vec<&str>)> = body
            .blocks()
            .map(|b| (b.identifier(), b.labels().iter().map(|l| l.as_str()).collect()))
            .collect();
        assert!(blocks.contains(&("storage", vec!["raft"])), "{hcl}");
        assert!(blocks.contains(&("seal", vec!["awskms"])), "{hcl}");
        assert!(blocks.contains(&("telemetry", vec![])), "{hcl}");
        assert!(!hcl.contains("storage \"file\""), "{hcl}");
        assert_eq!(hcl.matches("retry_join").count(), REPLICAS, "{hcl}");
        assert!(hcl.contains("leader_api_addr = \"https://vault-2.vault-internal:8200\""), "{hcl}");
        assert!(hcl.contains("kms_key_id = \"alias/vault-unseal\""), "{hcl}");
        assert!(!hcl.contains("tls_disable"), "{hcl}");
    }

    #[test]
    fn a_sidecar_reloads_the_renewed_certificate() {
        let values = chart_values(&BootstrapConfig::example());
        assert_eq!(values["server"]["shareProcessNamespace"], true);
        let script = values["server"]["extraContainers"][0]["command"][2].as_str().unwrap();
        assert!(script.contains("pkill -HUP -x vault"), "{script}");
        assert!(script.contains("/vault/userconfig/vault-tls/tls.crt"), "{script}");
        let mut openbao = BootstrapConfig::example();
        openbao.secrets_backend = crate::bootstrap::config::SecretsBackend::Openbao;
        let script =
            chart_values(&openbao)["server"]["extraContainers"][0]["command"][2].to_string();
        assert!(script.contains("pkill -HUP -x bao"), "{script}");
    }

    #[test]
    fn openbao_uses_its_own_names_and_paths() {
        let mut config = BootstrapConfig::example();
        config.secrets_backend = SecretsBackend::Openbao;
        let hcl = server_config(&config);
        assert!(hcl.contains("path = \"/openbao/data\""), "{hcl}");
        assert!(hcl.contains("https://openbao-0.openbao-internal:8200"), "{hcl}");
        let values = chart_values(&config);
        assert_eq!(
            values["server"]["extraEnvironmentVars"]["BAO_CACERT"],
            "/openbao/userconfig/vault-tls/ca.crt"
        );
    }
}
