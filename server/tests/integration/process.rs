//! The real `meshport` binary: `meshport dev` starts OpenBao, becomes ready, and on SIGTERM
//! stops everything it started and exits cleanly.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use meshport_server::dev::ServiceProcess;
use nix::sys::signal::Signal;

/// Children of `pid`, read from /proc.
fn children(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|entry| {
            let child: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // The parent pid is the second field after the parenthesised command name.
            let ppid: u32 = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()?;
            (ppid == pid).then_some(child)
        })
        .collect()
}

#[tokio::test]
async fn meshport_dev_serves_then_stops_everything_on_sigterm() {
    let folder = tempfile::tempdir().unwrap();
    let port = meshport_server::dev::free_loopback_port().unwrap();
    let log = folder.path().join("meshport.log");
    let output = std::fs::File::create(&log).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_meshport"));
    command
        .arg("dev")
        .env("MESHPORT_LISTEN", format!("127.0.0.1:{port}"))
        .env("MESHPORT_DATA_DIR", folder.path().join("data"))
        .stdin(Stdio::null())
        .stdout(output.try_clone().unwrap())
        .stderr(output);
    // Stopped (and, if need be, killed) when the test ends early.
    let mut meshport = ServiceProcess::spawn("meshport", command, Signal::SIGTERM).unwrap();
    let output = || std::fs::read_to_string(&log).unwrap_or_default();

    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let answer = client.get(format!("http://127.0.0.1:{port}/readyz")).send().await;
        if let Ok(response) = answer
            && response.status() == reqwest::StatusCode::OK
        {
            break;
        }
        let exited = meshport.exit_status();
        assert!(exited.is_none(), "meshport dev exited ({exited:?}):\n{}", output());
        assert!(Instant::now() < deadline, "meshport dev not ready in 60 s:\n{}", output());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let started = children(meshport.id());
    assert!(!started.is_empty(), "OpenBao runs as a child of meshport dev");

    let status = meshport.stop(Duration::from_secs(30));
    let status = status.unwrap_or_else(|| panic!("no exit 30 s after SIGTERM:\n{}", output()));
    assert!(status.success(), "meshport dev exited with {status}:\n{}", output());
    for child in started {
        let alive = std::path::Path::new(&format!("/proc/{child}")).exists();
        assert!(!alive, "child {child} outlived meshport");
    }
    let data = folder.path().join("data");
    assert!(data.join("meshport.db").is_file());
    assert!(data.join("gitops.git/HEAD").is_file());
    let seeded = std::process::Command::new("git")
        .args(["cat-file", "-e", "main:helmfile.yaml"])
        .current_dir(data.join("gitops.git"))
        .status()
        .unwrap();
    assert!(seeded.success(), "the local repository is seeded with the bootstrap platform");
    let log_mode = std::fs::metadata(data.join("openbao.log")).unwrap().permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&log_mode) & 0o077,
        0,
        "the OpenBao log holds the root token: owner only"
    );
}

#[tokio::test]
async fn meshport_migrate_creates_the_schema_in_postgres() {
    let (url, _) = crate::harness::empty_database(crate::harness::Backend::Postgres).await;
    let output = Command::new(env!("CARGO_BIN_EXE_meshport"))
        .arg("migrate")
        .env("MESHPORT_DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    // The migrated schema works: the store can use it without migrating itself.
    let store = meshport_server::store::Store::connect(&url.into()).await.unwrap();
    let user = meshport_server::store::NewUser {
        issuer: "https://idp.example",
        subject: "ops",
        email: "ops@example.com",
        display_name: "Ops",
    };
    let mut tx = store.begin().await.unwrap();
    tx.upsert_user(&user).await.unwrap();
    tx.commit().await.unwrap();
}

#[test]
fn a_bad_configuration_stops_meshport_with_the_key_named() {
    let folder = tempfile::tempdir().unwrap();
    let file = folder.path().join("meshport.toml");
    std::fs::write(&file, "[vault]\nadress = \"https://vault.example\"\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_meshport"))
        .arg("serve")
        .arg("--config")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("adress"), "{stderr}");
}

#[tokio::test]
async fn meshport_audit_exports_to_stdout_and_verify_names_a_tampered_event() {
    use meshport_server::audit::{self, Action, Actor, NewEvent, Outcome, Target};
    let (url, _folder) = crate::harness::empty_database(crate::harness::Backend::Postgres).await;
    let store = meshport_server::store::Store::connect(&url.clone().into()).await.unwrap();
    store.migrate().await.unwrap();
    for step in 0..3 {
        let event = NewEvent {
            actor: Actor::system(),
            action: Action::ProvisioningStep,
            target: Target::new("service", "prod-app", "cart"),
            request_id: None,
            details: serde_json::json!({ "step": step }),
            outcome: Outcome::Success,
        };
        audit::record_alone(&store, event).await.unwrap();
    }
    let meshport = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_meshport"))
            .args(args)
            .env("MESHPORT_DATABASE_URL", &url)
            .env("MESHPORT_DATA_DIR", "/nonexistent-meshport-data")
            .output()
            .unwrap()
    };
    let export =
        meshport(&["audit", "export", "--format", "csv", "--from", "2020-01-01T00:00:00Z"]);
    assert!(export.status.success(), "{}", String::from_utf8_lossy(&export.stderr));
    let rows: Vec<csv::StringRecord> =
        csv::Reader::from_reader(export.stdout.as_slice()).records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 4, "only CSV on stdout; logs go to stderr");
    assert_eq!(&rows[3][7], "export_performed", "the export records itself first");

    let verified = meshport(&["audit", "verify"]);
    assert!(verified.status.success(), "{}", String::from_utf8_lossy(&verified.stderr));
    let meshport_server::store::Store::Postgres(pool) = &store else { unreachable!() };
    sqlx::query("ALTER TABLE audit_events DISABLE TRIGGER USER").execute(pool).await.unwrap();
    sqlx::query("UPDATE audit_events SET outcome = 'failure' WHERE seq = 2")
        .execute(pool)
        .await
        .unwrap();
    let broken = meshport(&["audit", "verify"]);
    assert_eq!(broken.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&broken.stderr);
    assert!(stderr.contains("broken at event 2"), "{stderr}");
}
