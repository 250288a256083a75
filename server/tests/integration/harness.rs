//! Starts the real services the tests use, once per test binary: an OpenBao dev server and a
//! private PostgreSQL cluster, each on a free loopback port, with their files in a folder of
//! their own in the system temp folder. They are stopped and the folder removed when the binary exits (and, if
//! it crashes, the kernel stops them and the next run removes the folder).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use meshport_server::dev::{OpenBaoDevServer, ServiceProcess, free_loopback_port};
use meshport_server::store::Store;
use meshport_server::vault::VaultConfig;
use nix::sys::signal::Signal;
use sqlx::{Connection, Executor, PgConnection};

/// Addresses of the running services.
pub struct Services {
    openbao: VaultConfig,
    postgres_port: u16,
    oidc_issuer: String,
}

/// What must be stopped and removed at exit.
struct Running {
    // Field order is drop order: services first, then their folder.
    _openbao: OpenBaoDevServer,
    _postgres: ServiceProcess,
    _oidc: ServiceProcess,
    _folder: tempfile::TempDir,
}

// A failed start is kept too, so later tests fail at once instead of retrying it.
static SERVICES: OnceLock<Result<Services, String>> = OnceLock::new();
static RUNNING: Mutex<Option<Running>> = Mutex::new(None);

/// The services, started on first use.
pub fn services() -> &'static Services {
    let started = SERVICES.get_or_init(|| {
        let (sender, receiver) = mpsc::channel();
        // Children are tied to the thread that spawns them (parent-death signal), so they are
        // spawned from a thread that lives until the process exits.
        std::thread::Builder::new()
            .name("test-services".into())
            .spawn(move || match start() {
                Ok((services, running)) => {
                    *RUNNING.lock().unwrap() = Some(running);
                    // SAFETY: registers a plain `extern "C"` function without arguments.
                    unsafe { libc::atexit(stop_at_exit) };
                    sender.send(Ok(services)).unwrap();
                    loop {
                        std::thread::park();
                    }
                }
                Err(error) => sender.send(Err(error)).unwrap(),
            })
            .expect("spawn the service thread");
        receiver.recv().expect("the service thread answers").map_err(|e| format!("{e:#}"))
    });
    match started {
        Ok(services) => services,
        Err(error) => panic!("could not start the test services: {error}"),
    }
}

extern "C" fn stop_at_exit() {
    if let Ok(mut running) = RUNNING.lock() {
        running.take();
    }
}

fn start() -> anyhow::Result<(Services, Running)> {
    let folder = service_folder()?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let bao = std::env::var_os("MESHPORT_DEV__BAO_BIN").unwrap_or_else(|| "bao".into());
    let openbao = runtime
        .block_on(OpenBaoDevServer::start(Path::new(&bao), &folder.path().join("openbao.log")))?;
    let (postgres, postgres_port) = start_postgres(folder.path(), &runtime)?;
    let (oidc, oidc_issuer) = start_oidc_provider(folder.path(), &runtime)?;
    let services = Services { openbao: openbao.vault_config(), postgres_port, oidc_issuer };
    Ok((services, Running { _openbao: openbao, _postgres: postgres, _oidc: oidc, _folder: folder }))
}

/// A fresh folder for this run's service files, directly in the system temp folder: when tests
/// run as root, PostgreSQL runs as its own account, which cannot enter root's home (where the
/// target folder usually is). Folders of earlier runs whose process is gone are removed.
fn service_folder() -> anyhow::Result<tempfile::TempDir> {
    const PREFIX: &str = "meshport-test-services-";
    let temp = std::env::temp_dir();
    for entry in std::fs::read_dir(&temp)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let owner: Option<u32> =
            name.strip_prefix(PREFIX).and_then(|rest| rest.split('-').next()?.parse().ok());
        let ours = entry.metadata().is_ok_and(|m| {
            std::os::unix::fs::MetadataExt::uid(&m) == nix::unistd::Uid::effective().as_raw()
        });
        if let Some(pid) = owner
            && ours
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    Ok(tempfile::Builder::new()
        .prefix(&format!("{PREFIX}{}-", std::process::id()))
        .tempdir_in(temp)?)
}

/// Where PostgreSQL's server programs are: `MESHPORT_TEST_PG_BINDIR`, else the newest Debian
/// installation, else `PATH`.
fn postgres_bindir() -> PathBuf {
    if let Some(dir) = std::env::var_os("MESHPORT_TEST_PG_BINDIR") {
        return dir.into();
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).unwrap_or_default()
}

/// PostgreSQL refuses to run as root; then it runs as the `postgres` account.
fn as_postgres_user(command: &mut Command, folders: &[&Path]) -> anyhow::Result<()> {
    if !nix::unistd::Uid::effective().is_root() {
        return Ok(());
    }
    let user = nix::unistd::User::from_name("postgres")?
        .ok_or_else(|| anyhow::anyhow!("running as root but there is no `postgres` account"))?;
    for folder in folders {
        std::os::unix::fs::chown(folder, Some(user.uid.as_raw()), Some(user.gid.as_raw()))?;
    }
    command.uid(user.uid.as_raw()).gid(user.gid.as_raw());
    Ok(())
}

fn start_postgres(
    folder: &Path,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<(ServiceProcess, u16)> {
    use std::os::unix::fs::PermissionsExt;
    let bindir = postgres_bindir();
    let data = folder.join("pgdata");
    let sockets = folder.join("pgsock");
    std::fs::create_dir_all(&data)?;
    std::fs::create_dir_all(&sockets)?;
    // The PostgreSQL account must be able to enter the folder; it owns only its subfolders.
    std::fs::set_permissions(folder, std::fs::Permissions::from_mode(0o711))?;
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700))?;
    let log = std::fs::File::create(folder.join("postgres.log"))?;

    let mut initdb = Command::new(bindir.join("initdb"));
    initdb
        .args(["--auth=trust", "--username=meshport", "--encoding=UTF8", "--no-sync", "-D"])
        .arg(&data)
        .current_dir(folder)
        .stdout(Stdio::null())
        .stderr(log.try_clone()?);
    as_postgres_user(&mut initdb, &[&data, &sockets])?;
    let status = initdb.status().map_err(|e| {
        anyhow::anyhow!(
            "could not run {}: {e}; install PostgreSQL",
            bindir.join("initdb").display()
        )
    })?;
    anyhow::ensure!(
        status.success(),
        "initdb failed; see {}",
        folder.join("postgres.log").display()
    );

    let port = free_loopback_port()?;
    let mut postgres = Command::new(bindir.join("postgres"));
    postgres
        .arg("-D")
        .arg(&data)
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-k"])
        .arg(&sockets)
        .args(["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"])
        .current_dir(folder)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    as_postgres_user(&mut postgres, &[])?;
    // SIGINT is PostgreSQL's fast shutdown: clients are disconnected, then it exits.
    let mut process = ServiceProcess::spawn("postgres", postgres, Signal::SIGINT)?;

    let url = admin_url(port);
    let deadline = Instant::now() + Duration::from_secs(60);
    runtime.block_on(async {
        loop {
            match PgConnection::connect(&url).await {
                Ok(connection) => return connection.close().await.map_err(Into::into),
                Err(error) if Instant::now() >= deadline || !process.is_running() => {
                    anyhow::bail!(
                        "PostgreSQL did not start: {error}; see its log in {}",
                        folder.display()
                    )
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    })?;
    Ok((process, port))
}

fn admin_url(port: u16) -> String {
    format!("postgres://meshport@127.0.0.1:{port}/postgres")
}

/// Vault settings of the OpenBao dev server, with its root token.
pub fn openbao() -> VaultConfig {
    services().openbao.clone()
}

/// The database backends the store tests run against.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A migrated, empty database of its own for one test.
pub struct TestDatabase {
    pub store: Store,
    /// Its URL, for more connections (as other processes would open).
    pub url: String,
    _folder: Option<tempfile::TempDir>,
}

impl TestDatabase {
    /// Everything a SQLite database holds on disk (the file and its write-ahead log), as text,
    /// to check that a value never reached it. Panics for PostgreSQL.
    pub async fn dump_text(&self) -> String {
        let path = self.url.strip_prefix("sqlite://").expect("a SQLite database");
        let mut bytes = std::fs::read(path).unwrap();
        bytes.extend(std::fs::read(format!("{path}-wal")).unwrap_or_default());
        String::from_utf8_lossy(&bytes).into_owned()
    }

    pub async fn new(backend: Backend) -> Self {
        let (url, folder) = empty_database(backend).await;
        let store = Store::connect(&url.clone().into()).await.unwrap();
        store.migrate().await.unwrap();
        Self { store, url, _folder: folder }
    }

    /// The folder holding a SQLite database's files.
    pub fn folder(&self) -> Option<&Path> {
        self._folder.as_ref().map(|f| f.path())
    }
}

/// The URL of a new, empty database (no schema), and the folder that holds it for SQLite.
pub async fn empty_database(backend: Backend) -> (String, Option<tempfile::TempDir>) {
    match backend {
        Backend::Sqlite => {
            let folder = tempfile::tempdir().unwrap();
            (format!("sqlite://{}", folder.path().join("meshport.db").display()), Some(folder))
        }
        Backend::Postgres => {
            let port = services().postgres_port;
            let name = format!("test_{}", uuid::Uuid::new_v4().simple());
            let mut admin = PgConnection::connect(&admin_url(port)).await.unwrap();
            admin.execute(format!("CREATE DATABASE {name}").as_str()).await.unwrap();
            admin.close().await.unwrap();
            (format!("postgres://meshport@127.0.0.1:{port}/{name}"), None)
        }
    }
}

/// The public URL the in-process sign-in tests give meshport; the provider knows its callback.
pub const TEST_PUBLIC_URL: &str = "http://127.0.0.1:3999";
/// The client meshport is registered as at the test provider.
pub const OIDC_CLIENT_ID: &str = "meshport";
/// Its secret.
pub const OIDC_CLIENT_SECRET: &str = "meshport-test-secret";

/// The test provider's users: login, password, groups.
pub const OIDC_USERS: [(&str, &str, &[&str]); 8] = [
    ("dana", "Dana Developer", &["developers", "team-cart"]),
    ("alex", "Alex Admin", &["platform-admins", "developers", "team-cart"]),
    ("blake", "Blake Admin", &["platform-admins"]),
    ("ari", "Ari Auditor", &["auditors"]),
    // Changed at the provider by the re-validation tests, so used by no other test.
    ("rhea", "Rhea Leaving", &["platform-admins", "developers", "team-cart"]),
    ("dex", "Dex Disabled", &["developers", "team-cart"]),
    ("evan", "Evan Revoked", &["developers", "team-cart"]),
    // No meshport group at all.
    ("nora", "Nora Nogroup", &["marketing"]),
];

/// The password of a test user.
pub fn oidc_password(login: &str) -> String {
    format!("{login}-password")
}

/// The real OpenID provider (npm `oidc-provider`, `end2end/oidc-provider.mjs`) on a free port.
fn start_oidc_provider(
    folder: &Path,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<(ServiceProcess, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let users: Vec<serde_json::Value> = OIDC_USERS
        .iter()
        .map(|(login, name, groups)| {
            serde_json::json!({
                "sub": login, "email": format!("{login}@shop.example"), "name": name,
                "groups": groups, "password": oidc_password(login),
            })
        })
        .collect();
    let users_file = folder.join("oidc-users.json");
    std::fs::write(&users_file, serde_json::to_vec(&users)?)?;
    let port = free_loopback_port()?;
    let log = std::fs::File::create(folder.join("oidc-provider.log"))?;
    let mut node = Command::new("node");
    node.arg(root.join("end2end/oidc-provider.mjs"))
        .arg(port.to_string())
        .current_dir(&root)
        .env("OIDC_USERS_FILE", &users_file)
        .env("OIDC_CLIENT_ID", OIDC_CLIENT_ID)
        .env("OIDC_CLIENT_SECRET", OIDC_CLIENT_SECRET)
        .env("OIDC_REDIRECT_URIS", format!("{TEST_PUBLIC_URL}/auth/callback"))
        .env("OIDC_POST_LOGOUT_REDIRECT_URIS", format!("{TEST_PUBLIC_URL}/"))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    let process = ServiceProcess::spawn("oidc-provider", node, Signal::SIGTERM)
        .map_err(|e| anyhow::anyhow!("could not run node (scripts/setup.sh installs it): {e}"))?;
    let issuer = format!("http://127.0.0.1:{port}");
    let discovery = format!("{issuer}/.well-known/openid-configuration");
    let deadline = Instant::now() + Duration::from_secs(30);
    runtime.block_on(async {
        loop {
            if reqwest::get(&discovery).await.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the OIDC provider did not answer; see {}",
                folder.join("oidc-provider.log").display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })?;
    Ok((process, issuer))
}

/// The test OpenID provider's issuer URL.
pub fn oidc_issuer() -> String {
    services().oidc_issuer.clone()
}

/// Runs each scenario `async fn(TestDatabase)` as two tests, one on SQLite and one on
/// PostgreSQL, in submodules `sqlite` and `postgres` of the calling module.
macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $scenario() {
                super::$scenario(super::TestDatabase::new(super::Backend::Sqlite).await).await;
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $scenario() {
                super::$scenario(super::TestDatabase::new(super::Backend::Postgres).await).await;
            })*
        }
    };
}

/// A stored user `<subject>@shop.example`, and the principal they act as: `roles` in team
/// `cart`.
pub async fn person(
    store: &Store,
    subject: &str,
    roles: &[app::access::Role],
) -> (meshport_server::store::User, app::access::Principal) {
    let email = format!("{subject}@shop.example");
    let mut tx = store.begin().await.unwrap();
    let user = tx
        .upsert_user(&meshport_server::store::NewUser {
            issuer: "https://idp.example",
            subject,
            email: &email,
            display_name: subject,
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let principal = app::access::Principal {
        user_id: user.id.to_string(),
        subject: subject.into(),
        email,
        name: subject.into(),
        roles: roles.iter().copied().collect(),
        teams: ["cart".to_owned()].into(),
        method: app::access::SignInMethod::Oidc,
    };
    (user, principal)
}

/// One request through the in-process router: its status, headers and body.
pub async fn call(
    app: &axum::Router,
    request: axum::http::Request<axum::body::Body>,
) -> (axum::http::StatusCode, axum::http::HeaderMap, bytes::Bytes) {
    use tower::ServiceExt;
    let response = app.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 10 * 1024 * 1024).await.unwrap();
    (parts.status, parts.headers, bytes)
}

/// An S3-compatible server for one test: `moto_server` (PyPI `moto[server]`, installed by
/// scripts/setup.sh into the venv on `PATH`) on a free loopback port. Returns the process,
/// stopped when dropped, and its endpoint once it answers.
pub fn moto_server() -> (ServiceProcess, String) {
    let port = free_loopback_port().unwrap();
    let mut command = Command::new("moto_server");
    command
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut process = ServiceProcess::spawn("moto_server", command, Signal::SIGTERM)
        .expect("moto_server runs (scripts/setup.sh installs moto[server] into the venv)");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(process.is_running(), "moto_server exited at start");
        assert!(Instant::now() < deadline, "moto_server did not start in 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    (process, format!("http://127.0.0.1:{port}"))
}
