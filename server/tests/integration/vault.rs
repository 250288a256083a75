//! The Vault client against a real OpenBao dev server.

use meshport_server::vault::{Vault, VaultConfig};

use crate::harness::openbao;

/// Vault settings with mount paths of this test's own, so tests do not see each other's mounts.
fn isolated_config() -> VaultConfig {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    VaultConfig {
        kv_mount: format!("kv-{suffix}"),
        kubernetes_auth_mount: format!("k8s-{suffix}"),
        ..openbao()
    }
}

#[tokio::test]
async fn openbao_answers_health_checks() {
    let vault = Vault::new(&openbao()).unwrap();
    vault.health().await.unwrap();
}

#[tokio::test]
async fn ensure_mounts_enables_kv_v2_and_kubernetes_auth_once() {
    let config = isolated_config();
    let vault = Vault::new(&config).unwrap();
    vault.ensure_mounts().await.unwrap();
    vault.ensure_mounts().await.unwrap();

    let mounts = vaultrs::sys::mount::list(&*vault.client()).await.unwrap();
    let kv = &mounts[&format!("{}/", config.kv_mount)];
    assert_eq!(kv.mount_type, "kv");
    assert_eq!(kv.options.as_ref().and_then(|o| o.get("version")).map(String::as_str), Some("2"));
    let auths = vaultrs::sys::auth::list(&*vault.client()).await.unwrap();
    assert_eq!(auths[&format!("{}/", config.kubernetes_auth_mount)].mount_type, "kubernetes");

    // KV v2 answers on the mount: a written secret reads back, with version metadata.
    let value = std::collections::HashMap::from([("api_key", "not-a-real-key")]);
    vaultrs::kv2::set(&*vault.client(), vault.kv_mount(), "prod-app/cart/config", &value)
        .await
        .unwrap();
    let read: std::collections::HashMap<String, String> =
        vaultrs::kv2::read(&*vault.client(), vault.kv_mount(), "prod-app/cart/config")
            .await
            .unwrap();
    assert_eq!(read["api_key"], "not-a-real-key");
    let metadata =
        vaultrs::kv2::read_metadata(&*vault.client(), vault.kv_mount(), "prod-app/cart/config")
            .await
            .unwrap();
    assert_eq!(metadata.current_version, 1);
}

#[tokio::test]
async fn an_unreachable_vault_is_reported_not_hung() {
    let port = meshport_server::dev::free_loopback_port().unwrap();
    let config = VaultConfig { addr: format!("http://127.0.0.1:{port}"), ..openbao() };
    let vault = Vault::new(&config).unwrap();
    assert!(vault.health().await.is_err());
}

#[tokio::test]
async fn a_wrong_token_is_refused() {
    let config = VaultConfig { token: Some("not-the-token".to_owned().into()), ..openbao() };
    let vault = Vault::new(&config).unwrap();
    assert!(vault.health().await.is_err(), "a portal whose token is refused is not ready");
    assert!(vault.ensure_mounts().await.is_err());
}
