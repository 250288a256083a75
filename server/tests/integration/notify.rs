//! Notifications against a real SMTP server (aiosmtpd from PyPI, `smtp_sink.py`, STARTTLS
//! required, a certificate meshport trusts through `notify.smtp_ca_file`) and real webhook
//! receivers: the admins' mail when `cart` is submitted, the requester's when it is decided,
//! each with the page's link and never the typed secret; nothing for a muted kind; on
//! PostgreSQL two senders deliver each notification once, and a refused first attempt once on
//! its retry.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use app::access::{Principal, Role};
use app::notifications::NotificationKind;
use app::notifications::ssr::NotificationService;
use app::onboarding::{
    ChangeKind, OnboardingRules, RequestStatus, SecretSource, SecretSpec, SecretValue,
};
use app::request_api::Decision;
use app::request_api::ssr::RequestService;
use chrono::Utc;
use meshport_server::dev::{ServiceProcess, free_loopback_port};
use meshport_server::notify::delivery::Deliveries;
use meshport_server::notify::settings::{NotifyConfig, SmtpTls};
use meshport_server::notify::{Event, NotificationSettings, Notifications};
use meshport_server::request_service::Requests;
use meshport_server::store::{OnboardingRequestRecord, Store};
use nix::sys::signal::Signal;
use secrecy::SecretString;
use uuid::Uuid;

use crate::artifacts::cart;
use crate::harness::{Backend, TestDatabase, person};
use crate::provisioning::Platform;

const PUBLIC_URL: &str = "https://meshport.example";
const TYPED_SECRET: &str = "typed-by-dana-9f3c2e";

/// A mail the SMTP server accepted.
#[derive(Debug, serde::Deserialize)]
struct Mail {
    to: Vec<String>,
    tls: bool,
    subject: String,
    text: String,
    html: String,
    data: String,
}

/// The SMTP server of one test; stopped when dropped.
struct SmtpSink {
    _process: ServiceProcess,
    port: u16,
    folder: tempfile::TempDir,
}

impl SmtpSink {
    /// Starts it on a free loopback port, refusing the first `refuse_first` messages with 451.
    fn start(refuse_first: u32) -> Self {
        let folder = tempfile::tempdir().unwrap();
        let port = free_loopback_port().unwrap();
        let python = std::env::var("MESHPORT_PYTHON").unwrap_or_else(|_| "python3".into());
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/integration/smtp_sink.py");
        let mut command = Command::new(python);
        command
            .arg(script)
            .arg(port.to_string())
            .arg(folder.path())
            .arg(refuse_first.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let mut process = ServiceProcess::spawn("smtp_sink", command, Signal::SIGTERM)
            .expect("python3 runs (scripts/setup.sh installs aiosmtpd into the venv)");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !folder.path().join("cert.pem").exists() {
            assert!(
                process.is_running(),
                "the SMTP server exited at start (is aiosmtpd installed?)"
            );
            assert!(Instant::now() < deadline, "the SMTP server did not start in 60 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        Self { _process: process, port, folder }
    }

    fn mails(&self) -> Vec<Mail> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(self.folder.path().join("mail"))
            .map(|dir| dir.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        paths.retain(|p| p.extension().is_some_and(|e| e == "json"));
        paths.sort();
        paths.iter().map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()).collect()
    }

    fn mails_to(&self, address: &str) -> Vec<Mail> {
        self.mails().into_iter().filter(|m| m.to.iter().any(|t| t == address)).collect()
    }
}

type Received = Arc<Mutex<Vec<serde_json::Value>>>;

/// An incoming-webhook stand-in: a real HTTP server recording what it receives.
async fn webhook_receiver() -> (String, Received) {
    let received: Received = Arc::new(Mutex::new(Vec::new()));
    let r = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(body): axum::Json<serde_json::Value>| {
            let r = r.clone();
            async move {
                r.lock().unwrap().push(body);
                http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

/// Mail through `sink` with STARTTLS, the platform's and team cart's webhooks.
fn config(sink: &SmtpSink, platform_hook: &str, team_hook: &str) -> NotifyConfig {
    NotifyConfig {
        smtp_host: "127.0.0.1".into(),
        smtp_port: sink.port,
        smtp_tls: SmtpTls::Starttls,
        smtp_ca_file: Some(sink.folder.path().join("cert.pem")),
        from: "meshport <meshport@shop.example>".into(),
        platform_webhook: Some(SecretString::from(platform_hook.to_owned())),
        team_webhooks: BTreeMap::from([(
            "cart".to_owned(),
            SecretString::from(team_hook.to_owned()),
        )]),
        retry_seconds: 1,
        ..NotifyConfig::default()
    }
}

/// Sends until nothing is queued or running any more.
async fn drain(senders: &[Arc<Deliveries>], store: &Store) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let runs = senders.iter().map(|s| {
            let s = s.clone();
            tokio::spawn(async move { s.run_next().await.unwrap() })
        });
        let ran = futures_util::future::join_all(runs).await;
        if ran.iter().any(|r| r.as_ref().unwrap().is_some()) {
            continue;
        }
        let open = store
            .notifications()
            .await
            .unwrap()
            .into_iter()
            .filter(|n| n.state == "queued" || n.state == "running")
            .count();
        if open == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "{open} notifications still open after 60 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A person with `roles` in team cart, as the identity provider last confirmed them.
async fn member(store: &Store, name: &str, roles: &[Role]) -> Principal {
    let (user, principal) = person(store, name, roles).await;
    let roles: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
    let mut tx = store.begin().await.unwrap();
    tx.set_user_access(user.id, &roles.join(","), "cart").await.unwrap();
    tx.commit().await.unwrap();
    principal
}

fn requests(platform: &Platform, store: &Store, notify: &NotifyConfig) -> Requests {
    Requests {
        store: store.clone(),
        rules: OnboardingRules::default(),
        vault: platform.meshport.clone(),
        settings: platform.settings.clone(),
        gitops: None,
        notifications: Arc::new(Notifications::new(notify, PUBLIC_URL)),
    }
}

/// dana's cart, with a secret she typed.
fn cart_with_typed_secret() -> app::onboarding::OnboardingRequest {
    let mut form = cart().0;
    form.secrets.push(SecretSpec {
        name: "api_key".into(),
        source: SecretSource::Provided { value: SecretValue::new(TYPED_SECRET) },
    });
    form
}

fn assert_no_secret(sink: &SmtpSink, hooks: &[&Received]) {
    for mail in sink.mails() {
        assert!(!mail.data.contains(TYPED_SECRET) && !mail.text.contains(TYPED_SECRET));
    }
    for hook in hooks {
        for post in hook.lock().unwrap().iter() {
            assert!(!post.to_string().contains(TYPED_SECRET), "{post}");
        }
    }
}

#[tokio::test]
async fn submitting_cart_mails_the_admins_and_approving_it_mails_the_requester_with_the_page_link()
{
    let platform = Platform::new().await;
    let db = TestDatabase::new(Backend::Sqlite).await;
    let sink = SmtpSink::start(0);
    let (platform_hook, platform_posts) = webhook_receiver().await;
    let (team_hook, team_posts) = webhook_receiver().await;
    let notify = config(&sink, &platform_hook, &team_hook);
    let requests = requests(&platform, &db.store, &notify);
    let sender = Arc::new(Deliveries::new(db.store.clone(), &notify).unwrap());
    let dana = member(&db.store, "dana", &[Role::Developer]).await;
    let alex = member(&db.store, "alex", &[Role::PlatformAdmin]).await;
    member(&db.store, "blake", &[Role::PlatformAdmin]).await;

    let id = requests.submit(&dana, cart_with_typed_secret()).await.unwrap();
    let link = format!("{PUBLIC_URL}/requests/{id}");
    // The decision count in the header: one for an admin, none of one's own submissions.
    let waiting = |who: &Principal| db.store.decisions_waiting_for(who.user_id.parse().unwrap());
    assert_eq!((waiting(&alex).await.unwrap(), waiting(&dana).await.unwrap()), (1, 0));
    drain(&[sender.clone()], &db.store).await;
    let mails = sink.mails();
    let mut to: Vec<&str> = mails.iter().flat_map(|m| m.to.iter().map(String::as_str)).collect();
    to.sort();
    assert_eq!(to, ["alex@shop.example", "blake@shop.example"], "the admins, not dana");
    for mail in &mails {
        assert!(mail.tls, "sent after STARTTLS");
        assert_eq!(mail.subject, "[meshport] prod-app/cart waits for your decision");
        assert!(mail.text.contains(&link), "{}", mail.text);
        assert!(mail.html.contains(&format!("<a href=\"{link}\">")), "{}", mail.html);
    }
    {
        let posts = platform_posts.lock().unwrap();
        assert_eq!(posts.len(), 1, "{posts:?}");
        assert_eq!(posts[0]["meshport"]["kind"], "decision_needed");
        assert_eq!(posts[0]["meshport"]["link"], link.as_str());
        assert!(team_posts.lock().unwrap().is_empty(), "a submission is the platform's business");
    }

    requests.decide(&alex, &id, Decision::Approve, "fine by PCI").await.unwrap();
    drain(&[sender.clone()], &db.store).await;
    let to_dana = sink.mails_to("dana@shop.example");
    assert_eq!(to_dana.len(), 1);
    assert_eq!(to_dana[0].subject, "[meshport] prod-app/cart was approved");
    assert!(to_dana[0].text.contains("Reason: fine by PCI"), "{}", to_dana[0].text);
    assert!(to_dana[0].text.contains(&link), "{}", to_dana[0].text);
    {
        let posts = team_posts.lock().unwrap();
        assert_eq!(posts.len(), 1, "{posts:?}");
        assert_eq!(posts[0]["meshport"]["kind"], "decided");
        assert!(posts[0]["text"].as_str().unwrap().contains("was approved"), "{}", posts[0]);
    }
    assert_eq!(sink.mails().len(), 3);
    assert_no_secret(&sink, &[&platform_posts, &team_posts]);
    for row in db.store.notifications().await.unwrap() {
        assert_eq!((row.state.as_str(), row.attempts), ("sent", 1));
        assert!(!format!("{row:?}").contains(TYPED_SECRET));
    }
}

#[tokio::test]
async fn a_requester_who_muted_decisions_gets_no_mail_of_them_but_her_team_channel_does() {
    let platform = Platform::new().await;
    let db = TestDatabase::new(Backend::Sqlite).await;
    let sink = SmtpSink::start(0);
    let (platform_hook, _) = webhook_receiver().await;
    let (team_hook, team_posts) = webhook_receiver().await;
    let notify = config(&sink, &platform_hook, &team_hook);
    let requests = requests(&platform, &db.store, &notify);
    let sender = Arc::new(Deliveries::new(db.store.clone(), &notify).unwrap());
    let dana = member(&db.store, "dana", &[Role::Developer]).await;
    let alex = member(&db.store, "alex", &[Role::PlatformAdmin]).await;
    let settings = NotificationSettings { store: db.store.clone() };
    settings.set_muted(&dana, NotificationKind::Decided, true).await.unwrap();
    let seen = settings.settings(&dana).await.unwrap();
    assert!(seen.iter().any(|s| s.kind == NotificationKind::Decided && s.muted));
    assert!(seen.iter().filter(|s| s.muted).count() == 1);

    let id = requests.submit(&dana, cart_with_typed_secret()).await.unwrap();
    requests.decide(&alex, &id, Decision::Reject, "no owner on call").await.unwrap();
    drain(&[sender], &db.store).await;
    assert!(sink.mails_to("dana@shop.example").is_empty(), "dana muted decisions");
    assert_eq!(sink.mails_to("alex@shop.example").len(), 1, "the submission");
    let posts = team_posts.lock().unwrap();
    assert_eq!(posts.len(), 1);
    let text = posts[0]["text"].as_str().unwrap();
    assert!(text.contains("was rejected") && text.contains("Reason: no owner on call"), "{text}");
    drop(posts);
    assert_no_secret(&sink, &[&team_posts]);
}

/// A change set as stored, for events that need no database row of their own.
fn record(service: &str, requested_by: Uuid) -> OnboardingRequestRecord {
    OnboardingRequestRecord {
        id: Uuid::new_v4(),
        kind: ChangeKind::Onboard,
        base_change: None,
        digest: None,
        version: None,
        service_name: service.into(),
        namespace: "prod-app".into(),
        team: "cart".into(),
        requested_by,
        justification: "test".into(),
        spec: serde_json::json!({}),
        status: RequestStatus::Submitted,
        created_at: Utc::now(),
        updated_at: Utc::now(),
        decided_by: None,
        decided_at: None,
        decision_reason: None,
    }
}

#[tokio::test]
async fn two_senders_on_postgres_deliver_each_notification_once_and_a_refused_first_attempt_once_on_retry()
 {
    let db = TestDatabase::new(Backend::Postgres).await;
    let sink = SmtpSink::start(1);
    let (platform_hook, platform_posts) = webhook_receiver().await;
    let (team_hook, _) = webhook_receiver().await;
    let notify = config(&sink, &platform_hook, &team_hook);
    let notifications = Notifications::new(&notify, PUBLIC_URL);
    let dana = member(&db.store, "dana", &[Role::Developer]).await;
    for admin in ["alex", "blake", "casey"] {
        member(&db.store, admin, &[Role::PlatformAdmin]).await;
    }
    let dana_id: Uuid = dana.user_id.parse().unwrap();
    let records: Vec<_> = (0..10).map(|i| record(&format!("svc-{i:02}"), dana_id)).collect();
    // Each event queued twice (a repeated call): the second adds nothing.
    for _ in 0..2 {
        let mut tx = db.store.begin().await.unwrap();
        for request in &records {
            notifications.queue(&mut tx, &Event::DecisionNeeded { request }).await.unwrap();
        }
        tx.commit().await.unwrap();
    }
    assert_eq!(db.store.notifications().await.unwrap().len(), 10 * 3 + 10);

    // Two senders with pools of their own, as two meshport processes would have.
    let mut senders = Vec::new();
    for _ in 0..2 {
        let store = Store::connect(&SecretString::from(db.url.clone())).await.unwrap();
        senders.push(Arc::new(Deliveries::new(store, &notify).unwrap()));
    }
    drain(&senders, &db.store).await;

    let mails = sink.mails();
    assert_eq!(mails.len(), 30, "each admin's mail of each event once");
    let mut seen = std::collections::HashSet::new();
    for mail in &mails {
        assert!(seen.insert((mail.to.clone(), mail.subject.clone())), "twice: {mail:?}");
    }
    assert_eq!(platform_posts.lock().unwrap().len(), 10);
    let rows = db.store.notifications().await.unwrap();
    assert!(rows.iter().all(|r| r.state == "sent"), "{rows:#?}");
    let retried: Vec<_> = rows.iter().filter(|r| r.attempts > 1).collect();
    assert_eq!(retried.len(), 1, "the refused mail, and only it, took a second attempt");
    assert_eq!(retried[0].attempts, 2);
    assert_eq!(retried[0].channel, "email");
}

#[tokio::test]
async fn a_delivery_that_keeps_failing_is_shown_to_admins() {
    let db = TestDatabase::new(Backend::Sqlite).await;
    let sink = SmtpSink::start(0);
    let notify = NotifyConfig {
        // Nothing listens there: the webhook never answers.
        platform_webhook: Some(SecretString::from(format!(
            "http://127.0.0.1:{}/hook",
            free_loopback_port().unwrap()
        ))),
        max_attempts: 2,
        ..config(&sink, "http://127.0.0.1:9/unused", "http://127.0.0.1:9/unused")
    };
    let notifications = Notifications::new(&notify, PUBLIC_URL);
    let dana = member(&db.store, "dana", &[Role::Developer]).await;
    let alex = member(&db.store, "alex", &[Role::PlatformAdmin]).await;
    let request = record("cart", dana.user_id.parse().unwrap());
    let mut tx = db.store.begin().await.unwrap();
    notifications.queue(&mut tx, &Event::DecisionNeeded { request: &request }).await.unwrap();
    tx.commit().await.unwrap();
    drain(&[Arc::new(Deliveries::new(db.store.clone(), &notify).unwrap())], &db.store).await;

    assert_eq!(sink.mails_to("alex@shop.example").len(), 1, "mail is unaffected");
    let settings = NotificationSettings { store: db.store.clone() };
    let failed = settings.failed(&alex).await.unwrap();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!((failed[0].channel.as_str(), failed[0].recipient.as_str()), ("webhook", "platform"));
    assert_eq!(failed[0].attempts, 2);
    let error = failed[0].last_error.as_deref().unwrap();
    assert!(error.contains("did not answer") && !error.contains("127.0.0.1"), "{error}");
}

#[tokio::test]
async fn a_merge_and_a_failed_provisioning_are_queued_for_the_requester_admins_and_channels() {
    use meshport_server::jobs::{Engine, GitopsProposals};

    let platform = Platform::new().await;
    let db = TestDatabase::new(Backend::Sqlite).await;
    // Queued only: no sender runs, so no SMTP server is needed.
    let notify = NotifyConfig {
        smtp_host: "127.0.0.1".into(),
        platform_webhook: Some(SecretString::from("http://127.0.0.1:9/platform".to_owned())),
        team_webhooks: BTreeMap::from([(
            "cart".to_owned(),
            SecretString::from("http://127.0.0.1:9/cart".to_owned()),
        )]),
        ..NotifyConfig::default()
    };
    let notifications = Arc::new(Notifications::new(&notify, PUBLIC_URL));
    let remote = crate::gitops::Remote::new();
    let gitops = Arc::new(
        crate::gitops::open_gitops(&remote.settings(), db.store.clone())
            .unwrap()
            .with_notifications(notifications.clone()),
    );
    let proposals =
        || Arc::new(GitopsProposals { gitops: gitops.clone(), store: db.store.clone() });
    let engine = Engine::new(
        db.store.clone(),
        platform.meshport.clone(),
        proposals(),
        platform.settings.clone(),
        OnboardingRules::default(),
    )
    .with_notifications(notifications.clone());
    let requests =
        Requests { gitops: Some(gitops.clone()), ..requests(&platform, &db.store, &notify) };
    let dana = member(&db.store, "dana", &[Role::Developer]).await;
    let alex = member(&db.store, "alex", &[Role::PlatformAdmin]).await;
    member(&db.store, "blake", &[Role::PlatformAdmin]).await;
    let recipients = |kind: &'static str| {
        let store = db.store.clone();
        async move {
            let mut to: Vec<String> = store
                .notifications()
                .await
                .unwrap()
                .into_iter()
                .filter(|n| n.kind == kind)
                .map(|n| format!("{} {}", n.channel, n.recipient))
                .collect();
            to.sort();
            to
        }
    };
    let everyone = [
        "email alex@shop.example",
        "email blake@shop.example",
        "email dana@shop.example",
        "webhook platform",
        "webhook team:cart",
    ];

    let id = requests.submit(&dana, cart().0).await.unwrap();
    requests.decide(&alex, &id, Decision::Approve, "").await.unwrap();
    assert!(engine.run_next().await.unwrap().is_some());
    let pulls = db.store.pull_requests_of(id.parse().unwrap()).await.unwrap();
    gitops.merge(pulls[0].id, meshport_server::audit::Actor::from(&alex)).await.unwrap();
    assert_eq!(recipients("pull_request_merged").await, everyone);
    let merged = db.store.notifications().await.unwrap();
    let merged = merged.iter().find(|n| n.kind == "pull_request_merged").unwrap();
    assert_eq!(merged.link, format!("{PUBLIC_URL}/requests/{id}"));
    assert!(merged.body_text.contains(&pulls[0].url), "{}", merged.body_text);

    // The platform has since stopped allowing the namespace: provisioning fails for good.
    let refusing = Engine::new(
        db.store.clone(),
        platform.meshport.clone(),
        proposals(),
        platform.settings.clone(),
        OnboardingRules { namespaces: vec!["elsewhere".into()], ..Default::default() },
    )
    .with_notifications(notifications.clone());
    let mut basket = cart().0;
    basket.service = "basket".into();
    let id = requests.submit(&dana, basket).await.unwrap();
    requests.decide(&alex, &id, Decision::Approve, "").await.unwrap();
    assert!(refusing.run_next().await.unwrap().is_some());
    assert_eq!(recipients("provisioning_failed").await, everyone);
    let failed = db.store.notifications().await.unwrap();
    let failed = failed.iter().find(|n| n.kind == "provisioning_failed").unwrap();
    assert!(failed.subject.contains("prod-app/basket"), "{}", failed.subject);
    assert!(failed.body_text.contains("namespace"), "{}", failed.body_text);
}

#[tokio::test]
async fn an_overdue_secret_of_cart_mails_its_team_and_posts_to_its_channel_once() {
    use app::rotation::{Judgement, RotationState};
    use app::status_report::{ItemKind, StatusItem};
    use meshport_server::status::alerts::Alerts;

    let platform = Platform::new().await;
    let db = TestDatabase::new(Backend::Sqlite).await;
    let sink = SmtpSink::start(0);
    let (platform_hook, platform_posts) = webhook_receiver().await;
    let (team_hook, team_posts) = webhook_receiver().await;
    let notify = config(&sink, &platform_hook, &team_hook);
    let notifications = Arc::new(Notifications::new(&notify, PUBLIC_URL));
    let requests = requests(&platform, &db.store, &notify);
    let dana = member(&db.store, "dana", &[Role::Developer]).await;
    // Submitting claims the service prod-app/cart for team cart.
    requests.submit(&dana, cart().0).await.unwrap();
    // Only the alerts' record of states tells transitions: no status webhook is configured.
    let alerts = Alerts::configured(None, notifications).expect("notifications are configured");
    let item = StatusItem {
        kind: ItemKind::Secret,
        source: "vault".into(),
        namespace: "prod-app".into(),
        name: "cart/valkey_password".into(),
        service: Some("prod-app/cart".into()),
        expires_at: Some(1_700_000_000),
        renews_at: None,
        judgement: Judgement::new(RotationState::Overdue, "rotation was due 3 days ago"),
    };
    // Two refreshes see it overdue: one transition, one notification per recipient.
    alerts.notify(&db.store, std::slice::from_ref(&item), Utc::now()).await;
    alerts.notify(&db.store, std::slice::from_ref(&item), Utc::now()).await;
    let sender = Arc::new(Deliveries::new(db.store.clone(), &notify).unwrap());
    drain(&[sender], &db.store).await;

    let mails = sink.mails();
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(mails[0].to, ["dana@shop.example"]);
    assert!(mails[0].subject.contains("valkey_password is overdue"), "{}", mails[0].subject);
    assert!(mails[0].text.contains(&format!("{PUBLIC_URL}/status/prod-app/cart")));
    let posts = team_posts.lock().unwrap();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0]["meshport"]["kind"], "rotation_due");
    let platform = platform_posts.lock().unwrap();
    assert!(
        platform.iter().all(|p| p["meshport"]["kind"] == "decision_needed"),
        "the team's business"
    );
}
