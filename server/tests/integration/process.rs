//! The real `meshport` binary: `meshport dev` started as the README does it starts OpenBao,
//! provisions an approved request up to its pull request, and on SIGTERM stops everything it
//! started and exits cleanly; the other commands as users run them.

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

/// A request to the demo `meshport dev` as its own pages send it (same-origin).
fn same_origin(request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    request.header("sec-fetch-site", "same-origin")
}

/// A browser-like client signed in with one of `meshport dev`'s demo identities.
async fn demo_client(base: &str, role: &str) -> reqwest::Client {
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let signed_in = same_origin(client.post(format!("{base}/auth/demo")))
        .form(&[("role", role)])
        .send()
        .await
        .unwrap();
    assert!(signed_in.status().is_redirection(), "demo sign-in as {role}: {}", signed_in.status());
    client
}

/// `meshport dev` as the README starts it: from a working directory, with no data-folder
/// setting, so every path is the relative default `data`. An approved request reaches
/// `pr_open` with its branch in `data/gitops.git`; SIGTERM then stops everything it started.
#[tokio::test]
async fn meshport_dev_with_the_default_data_folder_opens_the_pull_request_then_stops_on_sigterm() {
    let folder = tempfile::tempdir().unwrap();
    let port = meshport_server::dev::free_loopback_port().unwrap();
    let log = folder.path().join("meshport.log");
    let output = std::fs::File::create(&log).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_meshport"));
    command
        .arg("dev")
        .current_dir(folder.path())
        .env("MESHPORT_LISTEN", format!("127.0.0.1:{port}"))
        .env_remove("MESHPORT_DATA_DIR")
        .env_remove("MESHPORT_DATABASE_URL")
        .env_remove("MESHPORT_GITOPS__REPO_URL")
        .env_remove("MESHPORT_GITOPS__CACHE_DIR")
        .stdin(Stdio::null())
        .stdout(output.try_clone().unwrap())
        .stderr(output);
    // Stopped (and, if need be, killed) when the test ends early.
    let mut meshport = ServiceProcess::spawn("meshport", command, Signal::SIGTERM).unwrap();
    let output = || std::fs::read_to_string(&log).unwrap_or_default();
    let base = format!("http://127.0.0.1:{port}");

    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let answer = client.get(format!("{base}/readyz")).send().await;
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
    let data = folder.path().join("data");
    assert!(
        output().contains(&data.join("gitops.git").display().to_string()),
        "the resolved paths are logged:\n{}",
        output()
    );

    let developer = demo_client(&base, "developer").await;
    let request = serde_json::json!({
        "service": "cart", "namespace": "prod-app", "team": "shop",
        "justification": "Cart joins the mesh.", "image": "ghcr.io/open-telemetry/demo:2.1.3-cart",
        "replicas": 2, "ports": [{ "name": "grpc", "number": 7070, "protocol": "grpc" }],
        "resources": { "cpu_request": "100m", "memory_request": "128Mi", "cpu_limit": "", "memory_limit": "256Mi" },
        "env": [], "allowed_callers": ["frontend"], "certificate": null, "rotation_days": 30,
        "secrets": [{ "name": "db_password", "source": { "kind": "generate", "length": 32, "alphabet": "alphanumeric" } }],
    });
    let submitted = same_origin(developer.post(format!("{base}/api/v1/requests")))
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(submitted.status(), reqwest::StatusCode::CREATED);
    let id =
        submitted.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let admin = demo_client(&base, "platform-admin").await;
    let approved = same_origin(admin.post(format!("{base}/api/v1/requests/{id}/approve")))
        .json(&serde_json::json!({ "reason": "Looks right." }))
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), reqwest::StatusCode::NO_CONTENT);

    let deadline = Instant::now() + Duration::from_secs(90);
    let detail = loop {
        let detail: serde_json::Value = admin
            .get(format!("{base}/api/v1/requests/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let status = detail["request"]["status"].as_str().unwrap_or_default().to_owned();
        if status == "pr_open" {
            break detail;
        }
        assert_ne!(status, "failed", "provisioning failed: {detail}\n{}", output());
        assert!(Instant::now() < deadline, "not pr_open in 90 s: {detail}\n{}", output());
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let branches = Command::new("git")
        .args(["for-each-ref", "--format=%(refname:short)", "refs/heads/meshport/"])
        .current_dir(data.join("gitops.git"))
        .output()
        .unwrap();
    let branches = String::from_utf8_lossy(&branches.stdout);
    assert!(branches.contains(&format!("meshport/cart-{id}")), "{branches}\n{detail}");

    readme_commands_work_beside_the_demo(folder.path(), &id);

    let status = meshport.stop(Duration::from_secs(30));
    let status = status.unwrap_or_else(|| panic!("no exit 30 s after SIGTERM:\n{}", output()));
    assert!(status.success(), "meshport dev exited with {status}:\n{}", output());
    for child in started {
        let alive = std::path::Path::new(&format!("/proc/{child}")).exists();
        assert!(!alive, "child {child} outlived meshport");
    }
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

/// The README's `meshport audit …` and `meshport vault …` commands, as written (placeholders
/// filled in), run in the demo's folder after `source data/openbao.env`, as the README says.
fn readme_commands_work_beside_the_demo(folder: &std::path::Path, request_id: &str) {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_meshport")).parent().unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let run = |command: &str| {
        let output = Command::new("bash")
            .arg("-c")
            .arg(format!("source data/openbao.env && {command}"))
            .current_dir(folder)
            .env("PATH", &path)
            .env_remove("MESHPORT_DATA_DIR")
            .env_remove("MESHPORT_DATABASE_URL")
            .output()
            .unwrap();
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        (output.status, text(&output.stdout), text(&output.stderr))
    };
    let ok = |command: &str| {
        let (status, stdout, stderr) = run(command);
        assert!(status.success(), "`{command}` failed: {stderr}");
        stdout
    };
    assert!(ok("meshport vault policy").contains("sys/policies/acl/"));
    assert!(ok("meshport vault policy --name meshport-portal").contains("path \""));
    let workload = ok("meshport vault policy --workload auth_kubernetes_0a1b2c3d");
    assert!(
        workload.contains(
            "{{identity.entity.aliases.auth_kubernetes_0a1b2c3d.metadata.service_account_name}}"
        ),
        "{workload}"
    );
    assert_eq!(ok("meshport vault preflight").trim(), "the Vault mounts are in place");
    // The demo enables no PKI engine: the check says which command would.
    let (status, _, stderr) = run("meshport vault preflight --pki");
    assert!(!status.success() && stderr.contains("secrets enable -path=pki pki"), "{stderr}");
    assert!(ok("meshport vault status").contains("prod-app/cart/db_password"));
    assert_eq!(
        ok("meshport vault rotate prod-app/cart/db_password").trim(),
        "prod-app/cart/db_password: version 2"
    );
    // The fleet report for CI: JSON Lines, one line per live service.
    for line in ok("meshport fleet plan").lines() {
        let parsed: Result<serde_json::Value, _> = serde_json::from_str(line);
        assert!(parsed.is_ok(), "not JSON: {line}");
    }
    assert!(!ok("meshport audit public-key").trim().is_empty());
    ok("meshport audit verify");
    for format in ["csv", "jsonl", "ocsf"] {
        let export = ok(&format!(
            "meshport audit export --from 2020-01-01T00:00:00Z --to 2100-01-01T00:00:00Z --format {format}"
        ));
        assert!(export.contains(request_id), "{format}: {export}");
    }
    for format in ["csv", "jsonl"] {
        let evidence = ok(&format!("meshport audit evidence --format {format}"));
        assert!(evidence.contains(request_id), "{format}: {evidence}");
    }
    // Every export ends with a trailer the CLI checks; a cut-off file fails the check.
    for format in ["csv", "csv-excel", "jsonl", "ocsf"] {
        let trailer = ok(&format!(
            "meshport audit export --format {format} > export.{format} && meshport audit check-export export.{format} --format {format}"
        ));
        assert!(trailer.contains(r#""count":"#), "{format}: {trailer}");
    }
    ok(
        "meshport audit evidence > evidence.csv && meshport audit check-export evidence.csv --format csv --evidence",
    );
    let (status, _, stderr) = run(
        "head -c 400 export.jsonl > cut.jsonl && meshport audit check-export cut.jsonl --format jsonl",
    );
    assert!(!status.success() && stderr.contains("cut off"), "{stderr}");
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
    assert_eq!(rows.len(), 5, "only CSV on stdout (events, then the trailer); logs go to stderr");
    assert_eq!(&rows[3][7], "export_performed", "the export records itself first");
    assert_eq!(&rows[4][0], "trailer");

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

#[tokio::test]
async fn meshport_audit_verify_against_a_sink_names_the_cut_tail() {
    use meshport_server::audit::checkpoint::{self, CheckpointKey};
    use meshport_server::audit::sink::Sink;
    use meshport_server::audit::{self, Action, Actor, NewEvent, Outcome, Target};
    let (url, _folder) = crate::harness::empty_database(crate::harness::Backend::Postgres).await;
    let store = meshport_server::store::Store::connect(&url.clone().into()).await.unwrap();
    store.migrate().await.unwrap();
    let key = CheckpointKey::generate().unwrap();
    let worm = tempfile::tempdir().unwrap();
    let sink_url = format!("file://{}", worm.path().display());
    let sink: Sink = sink_url.parse().unwrap();
    let mut published = None;
    for step in 0..6 {
        let event = NewEvent {
            actor: Actor::system(),
            action: Action::ProvisioningStep,
            target: Target::new("service", "prod-app", "cart"),
            request_id: None,
            details: serde_json::json!({ "step": step }),
            outcome: Outcome::Success,
        };
        audit::record_alone(&store, event).await.unwrap();
        let hour = std::time::Duration::from_secs(3600);
        checkpoint::sign_if_due(&store, &key, 2, hour).await.unwrap();
        checkpoint::publish(&store, &sink, &mut published).await.unwrap();
    }
    let public_key = key.public_key();
    let meshport = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_meshport"))
            .args(args)
            .env("MESHPORT_DATABASE_URL", &url)
            .env("MESHPORT_DATA_DIR", "/nonexistent-meshport-data")
            .output()
            .unwrap()
    };
    let verify = ["audit", "verify", "--public-key", &public_key, "--against", &sink_url];
    let whole = meshport(&verify);
    assert!(whole.status.success(), "{}", String::from_utf8_lossy(&whole.stderr));

    let meshport_server::store::Store::Postgres(pool) = &store else { unreachable!() };
    for sql in [
        "ALTER TABLE audit_events DISABLE TRIGGER USER",
        "ALTER TABLE audit_checkpoints DISABLE TRIGGER USER",
        "DELETE FROM audit_events WHERE seq > 3",
        "DELETE FROM audit_checkpoints WHERE seq > 2",
    ] {
        sqlx::query(sql).execute(pool).await.unwrap();
    }
    let alone = meshport(&["audit", "verify", "--public-key", &public_key]);
    assert!(alone.status.success(), "the database alone looks whole");
    let cut = meshport(&verify);
    assert_eq!(cut.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&cut.stderr);
    assert!(stderr.contains("broken at event 4: events after 3 were removed"), "{stderr}");
    assert!(String::from_utf8_lossy(&cut.stdout).contains("\"deleted_checkpoints\""));

    // A sink URL of the wrong form is refused naming the option and the rule.
    let bad = meshport(&["audit", "verify", "--against", "ftp://worm.example/x"]);
    assert_eq!(bad.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("--against") && stderr.contains("must be file:///"), "{stderr}");
}
