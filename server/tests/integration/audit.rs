//! The audit trail on both backends: events chain, the table refuses UPDATE and DELETE, and
//! `verify` names the first event that was edited, removed or moved by someone who got past the
//! triggers (a database administrator).

use meshport_server::audit::checkpoint::{self, Checkpoint, CheckpointKey};
use meshport_server::audit::evidence::EvidenceRow;
use meshport_server::audit::export::{self, Format, Period};
use meshport_server::audit::sink::Sink;
use meshport_server::audit::{
    self, Action, Actor, AuditEvent, GENESIS_HASH, NewEvent, Outcome, Target, Verification,
};
use meshport_server::store::{NewOnboardingRequest, NewUser, Store};
use serde_json::json;
use uuid::Uuid;

use crate::harness::{Backend, TestDatabase};

on_both_backends!(
    events_chain_and_verify,
    the_table_refuses_update_and_delete,
    an_edited_event_is_named,
    a_removed_event_is_named,
    reordered_events_are_named,
    csv_parses_back_identically,
    every_export_ends_with_a_trailer_that_tells_a_truncated_file,
    spreadsheet_formulas_are_escaped_except_in_the_plain_csv,
    jsonl_and_ocsf_carry_every_event,
    a_period_selects_its_events,
    checkpoints_come_every_n_events_or_when_stale,
    a_cut_tail_is_named_by_the_signed_checkpoint,
    a_checkpoint_signed_by_another_key_is_refused,
    evidence_comes_from_the_chain_and_flags_what_it_shows,
    evidence_shows_the_chained_approver_when_the_row_is_edited,
    long_trails_are_read_page_by_page,
    after_the_first_run_only_new_events_are_verified,
    a_signed_verified_prefix_outlives_the_process_and_a_forged_one_is_ignored,
    a_cut_tail_and_deleted_checkpoints_are_named_by_an_external_sink,
    checkpoints_of_an_old_and_a_new_key_both_verify,
);

async fn record(store: &Store, n: usize) {
    for i in 0..n {
        let event = NewEvent {
            actor: Actor::system(),
            action: Action::ProvisioningStep,
            // Names are ours in practice; here they carry what CSV must quote.
            target: Target::new("service", "prod-app", "cart, \"the\n cart\""),
            request_id: None,
            details: json!({ "step": i, "note": "commas, \"quotes\"\nand newlines" }),
            outcome: Outcome::Success,
        };
        audit::record_alone(store, event).await.unwrap();
    }
}

async fn execute(store: &Store, sql: &str) -> Result<(), sqlx::Error> {
    match store {
        Store::Sqlite(pool) => sqlx::query(sql).execute(pool).await.map(drop),
        Store::Postgres(pool) => sqlx::query(sql).execute(pool).await.map(drop),
    }
}

/// What an administrator would do to get past the append-only triggers.
async fn drop_protection(store: &Store) {
    let statements: &[&str] = match store {
        Store::Sqlite(_) => {
            &["DROP TRIGGER audit_events_no_update", "DROP TRIGGER audit_events_no_delete"]
        }
        Store::Postgres(_) => &["ALTER TABLE audit_events DISABLE TRIGGER USER"],
    };
    for sql in statements {
        execute(store, sql).await.unwrap();
    }
}

async fn events_chain_and_verify(db: TestDatabase) {
    assert_eq!(
        audit::verify(&db.store, &[]).await.unwrap(),
        Verification {
            events: 0,
            last_hash: GENESIS_HASH.into(),
            checkpoints: 0,
            first_broken: None,
            verified_before: 0,
            deleted_checkpoints: Vec::new(),
        }
    );
    record(&db.store, 5).await;
    let verification = audit::verify(&db.store, &[]).await.unwrap();
    assert_eq!((verification.events, verification.first_broken), (5, None));
    assert_ne!(verification.last_hash, GENESIS_HASH);
}

async fn the_table_refuses_update_and_delete(db: TestDatabase) {
    record(&db.store, 2).await;
    for sql in
        ["UPDATE audit_events SET outcome = 'failure'", "DELETE FROM audit_events WHERE seq = 2"]
    {
        let error = execute(&db.store, sql).await.expect_err(sql).to_string();
        assert!(error.contains("append-only"), "{sql}: {error}");
    }
    if let Store::Postgres(_) = db.store {
        assert!(execute(&db.store, "TRUNCATE audit_events").await.is_err());
    }
    assert_eq!(audit::verify(&db.store, &[]).await.unwrap().events, 2);
}

async fn an_edited_event_is_named(db: TestDatabase) {
    record(&db.store, 4).await;
    drop_protection(&db.store).await;
    execute(&db.store, "UPDATE audit_events SET details = '{\"step\":99}' WHERE seq = 3")
        .await
        .unwrap();
    let broken = audit::verify(&db.store, &[]).await.unwrap().first_broken.expect("detected");
    assert_eq!(broken.seq, 3);
    assert!(broken.reason.contains("edited"), "{}", broken.reason);
}

async fn a_removed_event_is_named(db: TestDatabase) {
    record(&db.store, 4).await;
    drop_protection(&db.store).await;
    execute(&db.store, "DELETE FROM audit_events WHERE seq = 2").await.unwrap();
    let broken = audit::verify(&db.store, &[]).await.unwrap().first_broken.expect("detected");
    assert_eq!(broken.seq, 2);
    assert!(broken.reason.contains("missing"), "{}", broken.reason);
}

async fn reordered_events_are_named(db: TestDatabase) {
    record(&db.store, 4).await;
    drop_protection(&db.store).await;
    // Swap events 2 and 3, numbers kept in place.
    for sql in [
        "UPDATE audit_events SET seq = -2 WHERE seq = 2",
        "UPDATE audit_events SET seq = 2 WHERE seq = 3",
        "UPDATE audit_events SET seq = 3 WHERE seq = -2",
    ] {
        execute(&db.store, sql).await.unwrap();
    }
    let broken = audit::verify(&db.store, &[]).await.unwrap().first_broken.expect("detected");
    assert_eq!(broken.seq, 2);
}

async fn all_events(store: &Store) -> Vec<AuditEvent> {
    let sql = "SELECT * FROM audit_events ORDER BY seq";
    match store {
        Store::Sqlite(pool) => sqlx::query_as(sql).fetch_all(pool).await.unwrap(),
        Store::Postgres(pool) => sqlx::query_as(sql).fetch_all(pool).await.unwrap(),
    }
}

pub async fn exported(store: &Store, period: Period, format: Format) -> Vec<u8> {
    let mut chunks = export::stream(store.clone(), period, format);
    let mut out = Vec::new();
    while let Some(chunk) = chunks.recv().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

/// The change-evidence report as `format`, read to its end.
pub async fn evidence_report(store: &Store, format: Format) -> Vec<u8> {
    let mut chunks = audit::evidence::stream(store.clone(), format).unwrap();
    let mut out = Vec::new();
    while let Some(chunk) = chunks.recv().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

/// The lines of a JSON Lines export before its trailer (checked to be the last line).
fn event_lines(bytes: &[u8]) -> Vec<String> {
    let mut lines: Vec<String> =
        String::from_utf8(bytes.to_vec()).unwrap().lines().map(str::to_owned).collect();
    let trailer: serde_json::Value = serde_json::from_str(&lines.pop().unwrap()).unwrap();
    assert!(trailer["trailer"]["count"].is_u64(), "the last line is the trailer: {trailer}");
    lines
}

async fn csv_parses_back_identically(db: TestDatabase) {
    record(&db.store, 3).await;
    let bytes = exported(&db.store, Period::default(), Format::Csv).await;
    let mut reader = csv::Reader::from_reader(bytes.as_slice());
    assert_eq!(reader.headers().unwrap().iter().collect::<Vec<_>>(), export::CSV_HEADER);
    let mut rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let events = all_events(&db.store).await;
    let trailer = rows.pop().unwrap();
    assert_eq!(&trailer[0], export::TRAILER_MARK);
    assert_eq!(rows.len(), events.len());
    for (row, event) in rows.iter().zip(&events) {
        assert_eq!(&row[0], event.seq.to_string());
        assert_eq!(&row[10], event.target_name, "commas, quotes and newlines survive");
        assert_eq!(&row[12], event.details);
        assert_eq!(&row[15], event.hash);
        assert_eq!(&row[4], event.actor_subject);
    }
    assert!(events[0].target_name.contains('\n') && events[0].target_name.contains('"'));
}

/// The cells of every record of `bytes` (a CSV with a header), as text.
fn csv_records(bytes: &[u8]) -> Vec<Vec<String>> {
    let mut reader = csv::Reader::from_reader(bytes);
    reader.records().map(|r| r.unwrap().iter().map(str::to_owned).collect()).collect()
}

async fn spreadsheet_formulas_are_escaped_except_in_the_plain_csv(db: TestDatabase) {
    const FORMULA: &str = r#"=HYPERLINK("http://x","y")"#;
    let mut tx = db.store.begin().await.unwrap();
    let dana = tx
        .upsert_user(&NewUser {
            issuer: "https://idp.example",
            subject: "dana",
            email: "dana@shop.example",
            display_name: "Dana",
        })
        .await
        .unwrap();
    let spec = json!({});
    tx.create_request(&NewOnboardingRequest {
        id: uuid::Uuid::new_v4(),
        kind: app::onboarding::ChangeKind::Onboard,
        base_change: None,
        digest: None,
        service_name: "cart",
        namespace: "prod-app",
        team: "cart",
        requested_by: dana.id,
        justification: FORMULA,
        spec: &spec,
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
    for format in [Format::Csv, Format::CsvExcel] {
        let records = csv_records(&evidence_report(&db.store, format).await);
        let column = audit::evidence::CSV_HEADER.iter().position(|c| *c == "justification");
        assert_eq!(records[0][column.unwrap()], format!("'{FORMULA}"), "{format:?}");
    }

    // In the events, the formula as a target's name (text an event carries as a cell of its own).
    let event = NewEvent {
        actor: Actor::system(),
        action: Action::RequestSubmitted,
        target: Target::new("service", "prod-app", FORMULA),
        request_id: None,
        details: json!({ "justification": FORMULA }),
        outcome: Outcome::Success,
    };
    audit::record_alone(&db.store, event).await.unwrap();
    let stored = &all_events(&db.store).await[0];
    let plain = csv_records(&exported(&db.store, Period::default(), Format::Csv).await);
    assert_eq!(plain[0][10], FORMULA, "exact in the plain CSV");
    assert_eq!(plain[0][15], stored.hash);
    let excel = csv_records(&exported(&db.store, Period::default(), Format::CsvExcel).await);
    assert_eq!(excel[0][10], format!("'{FORMULA}"), "escaped for spreadsheets");
    assert_eq!(excel[0][12], stored.details, "JSON cells start with `{{` and stay exact");
    assert_eq!((&excel[0][0], &excel[0][15]), (&plain[0][0], &plain[0][15]));
}

async fn every_export_ends_with_a_trailer_that_tells_a_truncated_file(db: TestDatabase) {
    let empty = exported(&db.store, Period::default(), Format::Csv).await;
    let trailer = export::check(empty.as_slice(), Format::Csv, false).unwrap();
    assert_eq!(trailer, export::Trailer::default(), "an empty export has a trailer too");
    record(&db.store, 5).await;
    let events = all_events(&db.store).await;
    for format in [Format::Csv, Format::CsvExcel, Format::Jsonl, Format::Ocsf] {
        let bytes = exported(&db.store, Period::default(), format).await;
        let trailer = export::check(bytes.as_slice(), format, false).unwrap();
        assert_eq!(
            (trailer.count, trailer.first_seq, trailer.last_seq, trailer.last_hash.as_str()),
            (5, Some(1), Some(5), events[4].hash.as_str()),
            "{format:?}"
        );
        // Cut mid-way, just before the trailer, and inside the trailer.
        let trailer_starts = bytes[..bytes.len() - 1].iter().rposition(|b| *b == b'\n').unwrap();
        for cut in [bytes.len() / 2, trailer_starts + 1, bytes.len() - 5] {
            let problem = export::check(&bytes[..cut], format, false).expect_err("truncated");
            assert!(problem.contains("cut off"), "{format:?} cut at {cut}: {problem}");
        }
    }
    // A line taken out of the middle: the count no longer matches.
    let jsonl = exported(&db.store, Period::default(), Format::Jsonl).await;
    let mut lines: Vec<&str> = std::str::from_utf8(&jsonl).unwrap().lines().collect();
    lines.remove(2);
    let problem = export::check(lines.join("\n").as_bytes(), Format::Jsonl, false).unwrap_err();
    assert!(problem.contains("does not match"), "{problem}");

    for format in [Format::Csv, Format::Jsonl] {
        let bytes = evidence_report(&db.store, format).await;
        let trailer = export::check(bytes.as_slice(), format, true).unwrap();
        assert_eq!((trailer.count, trailer.last_seq), (0, Some(5)), "the chain it was read from");
        assert!(export::check(&bytes[..bytes.len() - 5], format, true).is_err());
        assert!(export::check(bytes.as_slice(), format, false).is_err(), "not an event export");
    }
}

async fn jsonl_and_ocsf_carry_every_event(db: TestDatabase) {
    record(&db.store, 3).await;
    let events = all_events(&db.store).await;
    let jsonl = exported(&db.store, Period::default(), Format::Jsonl).await;
    let parsed: Vec<AuditEvent> =
        event_lines(&jsonl).iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(parsed, events);
    let ocsf = exported(&db.store, Period::default(), Format::Ocsf).await;
    let lines: Vec<serde_json::Value> =
        event_lines(&ocsf).iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), events.len());
    for (line, event) in lines.iter().zip(&events) {
        // The required attributes of OCSF class 6003, API Activity.
        assert_eq!(line["class_uid"], 6003);
        assert_eq!(line["category_uid"], 6);
        let activity = line["activity_id"].as_i64().unwrap();
        assert!((1..=4).contains(&activity));
        assert_eq!(line["type_uid"], 600300 + activity);
        assert_eq!(line["severity_id"], 1);
        assert!(line["time"].as_i64().unwrap() > 1_700_000_000_000);
        assert!(
            line["metadata"]["version"].is_string()
                && line["metadata"]["product"]["name"] == "meshport"
        );
        assert_eq!(line["metadata"]["uid"], event.id.as_str());
        assert_eq!(line["actor"]["user"]["name"], event.actor_subject.as_str());
        assert_eq!(line["api"]["operation"], event.action.as_str());
        assert!(line["src_endpoint"].is_object());
        assert_eq!(line["status_id"], 1);
        assert_eq!(line["actor"]["user"]["groups"], json!([{ "name": "system" }]));
        assert!(line["actor"]["user"].get("email_addr").is_none(), "no empty e-mail");
        assert_eq!(line["resources"][0]["type"], "service");
        assert_eq!(line["resources"][0]["name"], event.target_name.as_str());
        let details: serde_json::Value = serde_json::from_str(&event.details).unwrap();
        assert_eq!(line["unmapped"]["details"], details, "details as JSON, not as text");
        assert_eq!(line["unmapped"]["hash"], event.hash.as_str());
    }
}

async fn a_period_selects_its_events(db: TestDatabase) {
    record(&db.store, 2).await;
    let middle = chrono::Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    record(&db.store, 3).await;
    let count = |bytes: Vec<u8>| event_lines(&bytes).len();
    let after = exported(&db.store, Period { from: Some(middle), to: None }, Format::Jsonl).await;
    let before = exported(&db.store, Period { from: None, to: Some(middle) }, Format::Jsonl).await;
    assert_eq!((count(before), count(after)), (2, 3));
}

const HOUR: std::time::Duration = std::time::Duration::from_secs(3600);

async fn checkpoints_come_every_n_events_or_when_stale(db: TestDatabase) {
    let key = CheckpointKey::generate().unwrap();
    record(&db.store, 2).await;
    // The first checkpoint is due at once (there is no earlier one to be recent).
    let first = checkpoint::sign_if_due(&db.store, &key, 3, HOUR).await.unwrap().expect("due");
    assert_eq!(first.seq, 2);
    assert!(checkpoint::signature_is_valid(&first, &key.public_key()));
    record(&db.store, 2).await;
    assert_eq!(checkpoint::sign_if_due(&db.store, &key, 3, HOUR).await.unwrap(), None, "2 of 3");
    record(&db.store, 1).await;
    assert_eq!(
        checkpoint::sign_if_due(&db.store, &key, 3, HOUR).await.unwrap().map(|c| c.seq),
        Some(5)
    );
    record(&db.store, 1).await;
    let stale = std::time::Duration::ZERO;
    assert_eq!(
        checkpoint::sign_if_due(&db.store, &key, 100, stale).await.unwrap().map(|c| c.seq),
        Some(6)
    );
    assert_eq!(
        checkpoint::sign_if_due(&db.store, &key, 100, stale).await.unwrap(),
        None,
        "nothing new"
    );
    let verification = audit::verify(&db.store, &[key.public_key()]).await.unwrap();
    assert_eq!(
        (verification.events, verification.checkpoints, verification.first_broken),
        (6, 3, None)
    );
    let error = execute(&db.store, "DELETE FROM audit_checkpoints").await.expect_err("append-only");
    assert!(error.to_string().contains("append-only"));
}

async fn a_cut_tail_is_named_by_the_signed_checkpoint(db: TestDatabase) {
    let key = CheckpointKey::generate().unwrap();
    record(&db.store, 5).await;
    checkpoint::sign_if_due(&db.store, &key, 1, HOUR).await.unwrap().expect("signed at 5");
    record(&db.store, 2).await;
    drop_protection(&db.store).await;
    // Without the checkpoint, a chain cut after event 3 would still look whole.
    execute(&db.store, "DELETE FROM audit_events WHERE seq > 3").await.unwrap();
    let broken = audit::verify(&db.store, &[key.public_key()])
        .await
        .unwrap()
        .first_broken
        .expect("detected");
    assert_eq!(broken.seq, 4);
    assert!(broken.reason.contains("removed"), "{}", broken.reason);
}

async fn a_checkpoint_signed_by_another_key_is_refused(db: TestDatabase) {
    let (ours, theirs) = (CheckpointKey::generate().unwrap(), CheckpointKey::generate().unwrap());
    record(&db.store, 2).await;
    checkpoint::sign_if_due(&db.store, &theirs, 1, HOUR).await.unwrap().expect("signed");
    let broken = audit::verify(&db.store, &[ours.public_key()])
        .await
        .unwrap()
        .first_broken
        .expect("refused");
    assert!(broken.reason.contains("signature"), "{}", broken.reason);
    assert_eq!(
        audit::verify(&db.store, &[]).await.unwrap().first_broken,
        None,
        "self-consistent without a trusted key"
    );
    // Without a trusted key, checkpoints must at least all carry one key.
    record(&db.store, 1).await;
    checkpoint::sign_if_due(&db.store, &ours, 1, HOUR).await.unwrap().expect("signed");
    let broken = audit::verify(&db.store, &[]).await.unwrap().first_broken.expect("two keys");
    assert!(broken.reason.contains("signature"), "{}", broken.reason);
}

/// Someone who acts in the evidence tests: their user row, and how events name them.
async fn person(store: &Store, subject: &'static str) -> Actor {
    let email = format!("{subject}@shop.example");
    let mut tx = store.begin().await.unwrap();
    let user = tx
        .upsert_user(&NewUser {
            issuer: "https://idp.example",
            subject,
            email: &email,
            display_name: subject,
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    Actor { user_id: Some(user.id.to_string()), subject: subject.into(), email, roles: vec![] }
}

/// A request for `service` submitted by `requester`: its row and its event, as meshport
/// writes them.
async fn submit(store: &Store, requester: &Actor, service: &'static str) -> Request {
    let id = Uuid::new_v4();
    let mut tx = store.begin().await.unwrap();
    tx.create_request(&NewOnboardingRequest {
        id,
        kind: app::onboarding::ChangeKind::Onboard,
        base_change: None,
        digest: None,
        service_name: service,
        namespace: "prod-app",
        team: "cart",
        requested_by: requester.user_id.as_ref().unwrap().parse().unwrap(),
        justification: "why, \"really\"",
        spec: &json!({}),
    })
    .await
    .unwrap();
    let details = json!({ "kind": "onboard", "team": "cart", "justification": "why, \"really\"" });
    let event = request_event(requester.clone(), Action::RequestSubmitted, (id, service), details);
    audit::record(&mut tx, event).await.unwrap();
    tx.commit().await.unwrap();
    (id, service)
}

/// A request's id and service.
type Request = (Uuid, &'static str);

fn request_event(
    actor: Actor,
    action: Action,
    (id, service): Request,
    details: serde_json::Value,
) -> NewEvent {
    NewEvent {
        actor,
        action,
        target: Target::new("service", "prod-app", service),
        request_id: Some(id),
        details,
        outcome: Outcome::Success,
    }
}

/// `decider` decides request `id`: in the chain, and in its row unless it is their own request
/// (the row refuses that).
async fn decide(store: &Store, request: Request, decider: &Actor, approve: bool) {
    use app::onboarding::RequestStatus;
    let (status, action, reason) = match approve {
        true => (RequestStatus::Approved, Action::RequestApproved, None),
        false => (RequestStatus::Rejected, Action::RequestRejected, Some("not now")),
    };
    let mut tx = store.begin().await.unwrap();
    let decider_id = decider.user_id.as_ref().unwrap().parse().unwrap();
    tx.decide_request(request.0, decider_id, status, reason).await.unwrap();
    let event = request_event(decider.clone(), action, request, json!({ "reason": reason }));
    audit::record(&mut tx, event).await.unwrap();
    tx.commit().await.unwrap();
}

/// meshport's event `action` about request `id`.
async fn chained(store: &Store, request: Request, action: Action, details: serde_json::Value) {
    let event = request_event(Actor::system(), action, request, details);
    audit::record_alone(store, event).await.unwrap();
}

/// The details of a pull request's event, merged with `head` ("" before the merge).
fn pull_request(head: &str) -> serde_json::Value {
    json!({
        "url": "https://git.example/shop/gitops/pull/7",
        "commit_sha": if head.is_empty() { None } else { Some("0123abcd") },
        "approved_head_sha": "aaa",
        "merged_head_sha": if head.is_empty() { None } else { Some(head) },
        "kind": "onboarding",
    })
}

/// A row's flags, in the report's column order.
fn flags(row: &EvidenceRow) -> [bool; 6] {
    [
        row.approver_is_requester,
        row.approved_after_merge,
        row.merged_while_rejected,
        row.merged_head_differs,
        row.provisioning_without_approval,
        row.row_differs_from_chain,
    ]
}

async fn evidence_comes_from_the_chain_and_flags_what_it_shows(db: TestDatabase) {
    let store = &db.store;
    let (dana, alex) = (person(store, "dana").await, person(store, "alex").await);
    // Approved, provisioned, merged with the approved head: nothing to flag.
    let clean = submit(store, &dana, "cart").await;
    decide(store, clean, &alex, true).await;
    chained(store, clean, Action::ProvisioningStep, json!({ "step": "started" })).await;
    chained(store, clean, Action::ProvisioningStep, json!({ "action": "retry" })).await;
    chained(store, clean, Action::PullRequestOpened, pull_request("")).await;
    chained(store, clean, Action::PullRequestMerged, pull_request("aaa")).await;
    // Opened and merged, approved afterwards.
    let late = submit(store, &dana, "late").await;
    chained(store, late, Action::PullRequestOpened, pull_request("")).await;
    chained(store, late, Action::PullRequestMerged, pull_request("aaa")).await;
    decide(store, late, &alex, true).await;
    // Approved by the requester: only the chain can say so (the row refuses it).
    let own = submit(store, &dana, "own").await;
    decide(store, own, &dana, true).await;
    // Rejected, merged anyway.
    let rejected = submit(store, &dana, "rejected").await;
    decide(store, rejected, &alex, false).await;
    chained(store, rejected, Action::PullRequestMerged, pull_request("aaa")).await;
    // Merged with a head other than the approved one.
    let pushed = submit(store, &dana, "pushed").await;
    decide(store, pushed, &alex, true).await;
    chained(store, pushed, Action::PullRequestMerged, pull_request("bbb")).await;

    let rows = audit::evidence::rows(store).await.unwrap();
    let services: Vec<&str> = rows.iter().map(|r| r.service.as_str()).collect();
    assert_eq!(services, ["cart", "late", "own", "rejected", "pushed"], "in submission order");
    let row = &rows[0];
    assert_eq!(flags(row), [false; 6], "{row:?}");
    assert_eq!(
        (row.requested_by.as_str(), row.decision.as_str(), row.decided_by.as_str()),
        ("dana@shop.example", "approved", "alex@shop.example")
    );
    assert_eq!(row.provisioning_steps, "started admin:retry");
    assert_eq!(
        (row.pr_url.as_str(), row.commit_sha.as_str(), row.merged_head_sha.as_str()),
        ("https://git.example/shop/gitops/pull/7", "0123abcd", "aaa")
    );
    assert_eq!((row.outcome.as_str(), row.justification.as_str()), ("merged", "why, \"really\""));
    assert!(row.decided_at > row.requested_at && row.merged_at > row.decided_at);
    assert_eq!(flags(&rows[1]), [false, true, false, false, true, false], "{:?}", rows[1]);
    assert_eq!(flags(&rows[2]), [true, false, false, false, false, true], "{:?}", rows[2]);
    assert_eq!(rows[3].decision_reason, "not now");
    assert_eq!(flags(&rows[3]), [false, false, true, false, false, false], "{:?}", rows[3]);
    assert_eq!(flags(&rows[4]), [false, false, false, true, false, false], "{:?}", rows[4]);

    let records = csv_records(&evidence_report(store, Format::Csv).await);
    assert_eq!(records.len(), 6, "five rows and the trailer");
    let header = csv::Reader::from_reader(&evidence_report(store, Format::Csv).await[..])
        .headers()
        .unwrap()
        .clone();
    assert!(header.iter().eq(audit::evidence::CSV_HEADER));
    let column = |name: &str| audit::evidence::CSV_HEADER.iter().position(|c| *c == name).unwrap();
    assert_eq!(records[2][column("approver_is_requester")], "true");
}

async fn evidence_shows_the_chained_approver_when_the_row_is_edited(db: TestDatabase) {
    let store = &db.store;
    let (dana, alex) = (person(store, "dana").await, person(store, "alex").await);
    let request = submit(store, &dana, "cart").await;
    decide(store, request, &alex, true).await;
    let row = &audit::evidence::rows(store).await.unwrap()[0];
    assert_eq!((row.decided_by.as_str(), row.row_differs_from_chain), ("alex@shop.example", false));

    // A database administrator makes the row say the requester approved their own request.
    execute(store, "UPDATE onboarding_requests SET decided_by = requested_by").await.unwrap();
    let rows = audit::evidence::rows(store).await.unwrap();
    let row = &rows[0];
    assert_eq!(row.decided_by, "alex@shop.example", "the approver in the chain");
    assert!(!row.approver_is_requester);
    assert!(row.row_differs_from_chain);
    assert!(
        row.row_differences
            .contains(r#"decided_by: row "dana@shop.example", chain "alex@shop.example""#),
        "{}",
        row.row_differences
    );
    let records = csv_records(&evidence_report(store, Format::Csv).await);
    let column = |name: &str| audit::evidence::CSV_HEADER.iter().position(|c| *c == name).unwrap();
    assert_eq!(records[0][column("decided_by")], "alex@shop.example");
    assert_eq!(records[0][column("row_differs_from_chain")], "true");

    // A row no event mentions (inserted behind meshport's back) is listed, flagged.
    let mut tx = store.begin().await.unwrap();
    let inserted = Uuid::new_v4();
    tx.create_request(&NewOnboardingRequest {
        id: inserted,
        kind: app::onboarding::ChangeKind::Onboard,
        base_change: None,
        digest: None,
        service_name: "ghost",
        namespace: "prod-app",
        team: "cart",
        requested_by: dana.user_id.as_ref().unwrap().parse().unwrap(),
        justification: "none",
        spec: &json!({}),
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let rows = audit::evidence::rows(store).await.unwrap();
    assert_eq!((rows.len(), rows[1].request_id.as_str()), (2, inserted.to_string().as_str()));
    assert!(rows[1].row_differs_from_chain);
    assert!(rows[1].row_differences.contains("no event"), "{}", rows[1].row_differences);
}

async fn long_trails_are_read_page_by_page(db: TestDatabase) {
    record(&db.store, 2_100).await;
    let verification = audit::verify(&db.store, &[]).await.unwrap();
    assert_eq!((verification.events, verification.first_broken), (2_100, None));
    let lines = exported(&db.store, Period::default(), Format::Jsonl).await;
    let seqs: Vec<i64> = event_lines(&lines)
        .iter()
        .map(|l| serde_json::from_str::<AuditEvent>(l).unwrap().seq)
        .collect();
    assert_eq!(seqs, (1..=2_100).collect::<Vec<_>>(), "every event once, in order, across pages");
    drop_protection(&db.store).await;
    execute(&db.store, "UPDATE audit_events SET outcome = 'failure' WHERE seq = 1500")
        .await
        .unwrap();
    assert_eq!(
        audit::verify(&db.store, &[]).await.unwrap().first_broken.map(|b| b.seq),
        Some(1500)
    );
}

async fn after_the_first_run_only_new_events_are_verified(db: TestDatabase) {
    let reader = audit::AuditReader::new(db.store.clone(), Vec::new(), None);
    record(&db.store, 5).await;
    let first = reader.verify(false).await.unwrap();
    assert_eq!((first.events, first.verified_before, first.first_broken), (5, 0, None));
    record(&db.store, 3).await;
    let next = reader.verify(false).await.unwrap();
    assert_eq!((next.events, next.verified_before, next.first_broken), (8, 5, None));
    assert_eq!(next.last_hash, audit::verify(&db.store, &[]).await.unwrap().last_hash);

    drop_protection(&db.store).await;
    // An edit inside the verified prefix that keeps the hashes is found by the full check only.
    execute(&db.store, "UPDATE audit_events SET outcome = 'failure' WHERE seq = 2").await.unwrap();
    let quick = reader.verify(false).await.unwrap();
    assert_eq!((quick.verified_before, quick.first_broken), (8, None));
    let full = reader.verify(true).await.unwrap();
    assert_eq!((full.verified_before, full.first_broken.map(|b| b.seq)), (0, Some(2)));

    // The last verified event rewritten (its hash too) is found by the quick check.
    let reader = audit::AuditReader::new(db.store.clone(), Vec::new(), None);
    execute(&db.store, "UPDATE audit_events SET outcome = 'success' WHERE seq = 2").await.unwrap();
    assert_eq!(reader.verify(false).await.unwrap().first_broken, None);
    execute(&db.store, "UPDATE audit_events SET hash = 'rewritten' WHERE seq = 8").await.unwrap();
    let broken = reader.verify(false).await.unwrap().first_broken.expect("detected");
    assert_eq!(broken.seq, 8);
    assert!(broken.reason.contains("since it was verified"), "{}", broken.reason);
    // The remembered prefix is dropped: the next run checks from the first event again.
    assert_eq!(reader.verify(false).await.unwrap().verified_before, 0);
}

async fn a_signed_verified_prefix_outlives_the_process_and_a_forged_one_is_ignored(
    db: TestDatabase,
) {
    let key = CheckpointKey::generate().unwrap();
    let trusted = vec![key.public_key()];
    let reader = |key: Option<CheckpointKey>| {
        audit::AuditReader::new(db.store.clone(), trusted.clone(), key)
    };
    record(&db.store, 6).await;
    assert_eq!(reader(Some(key.clone())).verify(false).await.unwrap().verified_before, 0);
    let recorded = db.store.verified_prefix().await.unwrap().expect("recorded");
    assert_eq!(recorded.seq, 6);
    assert!(checkpoint::check_verified_prefix(&recorded, &trusted).is_ok());
    // Not a checkpoint: its signature covers another text.
    assert!(checkpoint::check_signature(&recorded, &trusted).is_err());

    // A new process (another reader) starts after the recorded prefix.
    record(&db.store, 2).await;
    let restarted = reader(Some(key.clone())).verify(false).await.unwrap();
    assert_eq!((restarted.events, restarted.verified_before, restarted.first_broken), (8, 6, None));
    assert_eq!(db.store.verified_prefix().await.unwrap().unwrap().seq, 8, "moved forward");

    // Moved back or forward by someone without the key: ignored, the whole chain is verified.
    execute(&db.store, "UPDATE audit_verified_prefix SET seq = 3").await.unwrap();
    assert_eq!(reader(None).verify(false).await.unwrap().verified_before, 0);
    // Signed by a key that is not trusted: ignored too.
    let stranger = CheckpointKey::generate().unwrap();
    execute(&db.store, "DELETE FROM audit_verified_prefix").await.unwrap();
    db.store.record_verified_prefix(&stranger.sign_verified_prefix(8, recorded.hash)).await.unwrap();
    assert_eq!(reader(None).verify(false).await.unwrap().verified_before, 0);

    // A process with the key replaces it with what it verified itself.
    let reader = reader(Some(key));
    reader.verify(true).await.unwrap();
    let replaced = db.store.verified_prefix().await.unwrap().unwrap();
    assert!(checkpoint::check_verified_prefix(&replaced, &trusted).is_ok());

    // A break found inside the recorded prefix forgets it.
    drop_protection(&db.store).await;
    execute(&db.store, "UPDATE audit_events SET outcome = 'failure' WHERE seq = 2").await.unwrap();
    assert_eq!(reader.verify(true).await.unwrap().first_broken.map(|b| b.seq), Some(2));
    assert_eq!(db.store.verified_prefix().await.unwrap(), None);
}

/// What an administrator would do to delete checkpoints too.
async fn drop_checkpoint_protection(store: &Store) {
    let statements: &[&str] = match store {
        Store::Sqlite(_) => &[
            "DROP TRIGGER audit_checkpoints_no_update",
            "DROP TRIGGER audit_checkpoints_no_delete",
        ],
        Store::Postgres(_) => &["ALTER TABLE audit_checkpoints DISABLE TRIGGER USER"],
    };
    for sql in statements {
        execute(store, sql).await.unwrap();
    }
}

/// 500 events with a checkpoint every 100, each sent to `sink` as the server's task does.
async fn signed_and_published(store: &Store, key: &CheckpointKey, sink: &Sink) {
    let mut published = None;
    for _ in 0..5 {
        record(store, 100).await;
        checkpoint::sign_if_due(store, key, 100, HOUR).await.unwrap().expect("signed");
        checkpoint::publish(store, sink, &mut published).await.unwrap();
    }
}

/// Deletes the newest 150 of 500 events and the checkpoints after event 300, as a database
/// administrator could; then checks what the database alone and the sink say.
async fn cut_and_verify_against(store: &Store, key: &CheckpointKey, sink: &Sink) {
    drop_protection(store).await;
    drop_checkpoint_protection(store).await;
    execute(store, "DELETE FROM audit_events WHERE seq > 350").await.unwrap();
    execute(store, "DELETE FROM audit_checkpoints WHERE seq > 300").await.unwrap();
    let trusted = [key.public_key()];
    let alone = audit::verify(store, &trusted).await.unwrap();
    assert_eq!((alone.events, alone.first_broken), (350, None), "the database alone looks whole");
    let external = sink.read_all().await.unwrap();
    let against = audit::verify_against(store, &trusted, &external).await.unwrap();
    let broken = against.first_broken.expect("the cut is named");
    assert_eq!(broken.seq, 351);
    assert!(
        broken.reason.contains("events after 350 were removed")
            && broken.reason.contains("external sink")
            && broken.reason.contains("covers event 500"),
        "{}",
        broken.reason
    );
    assert_eq!(against.deleted_checkpoints, [400, 500]);
}

async fn a_cut_tail_and_deleted_checkpoints_are_named_by_an_external_sink(db: TestDatabase) {
    let key = CheckpointKey::generate().unwrap();
    let folder = tempfile::tempdir().unwrap();
    let worm = folder.path().join("worm");
    let sink: Sink = format!("file://{}", worm.display()).parse().unwrap();
    signed_and_published(&db.store, &key, &sink).await;
    let mut names: Vec<String> = std::fs::read_dir(&worm)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, [100, 200, 300, 400, 500].map(|seq| format!("{seq:020}.json")));
    // Never overwritten: the same checkpoint again is fine, another under its number is not.
    let checkpoints = checkpoint::all(&db.store).await.unwrap();
    sink.publish(&checkpoints[4]).await.unwrap();
    let forged = Checkpoint { hash: "forged".into(), ..checkpoints[4].clone() };
    let error = sink.publish(&forged).await.unwrap_err().to_string();
    assert!(error.contains("not overwritten"), "{error}");
    assert_eq!(sink.read_all().await.unwrap(), checkpoints);
    cut_and_verify_against(&db.store, &key, &sink).await;
}

async fn checkpoints_of_an_old_and_a_new_key_both_verify(db: TestDatabase) {
    let (old, new) = (CheckpointKey::generate().unwrap(), CheckpointKey::generate().unwrap());
    record(&db.store, 2).await;
    checkpoint::sign_if_due(&db.store, &old, 1, HOUR).await.unwrap().expect("signed");
    record(&db.store, 2).await;
    let point = checkpoint::sign_if_due(&db.store, &new, 1, HOUR).await.unwrap().expect("signed");
    assert_eq!(point.key_id, checkpoint::key_id(&new.public_key()));
    let both = [new.public_key(), old.public_key()];
    let verification = audit::verify(&db.store, &both).await.unwrap();
    assert_eq!((verification.checkpoints, verification.first_broken), (2, None));
    let broken = audit::verify(&db.store, &[new.public_key()])
        .await
        .unwrap()
        .first_broken
        .expect("the old key is no longer trusted");
    assert_eq!(broken.seq, 2);
    assert!(
        broken.reason.contains(&checkpoint::key_id(&old.public_key()))
            && broken.reason.contains("not among the trusted keys"),
        "{}",
        broken.reason
    );
}

#[tokio::test]
async fn checkpoints_go_to_an_s3_bucket_with_object_lock() {
    use rusty_s3::{Bucket, Credentials, S3Action as _, UrlStyle};
    let (_moto, endpoint) = crate::harness::moto_server();
    let db = TestDatabase::new(Backend::Sqlite).await;
    // The bucket is the platform team's, created with object lock.
    let bucket =
        Bucket::new(endpoint.parse().unwrap(), UrlStyle::Path, "meshport-audit", "us-east-1")
            .unwrap();
    let credentials = Credentials::new("test", "test");
    let http = reqwest::Client::new();
    let mut create = bucket.create_bucket(&credentials);
    create.headers_mut().insert("x-amz-bucket-object-lock-enabled", "true");
    let created = http
        .put(create.sign(std::time::Duration::from_secs(60)).as_str())
        .header("x-amz-bucket-object-lock-enabled", "true")
        .header(reqwest::header::CONTENT_LENGTH, create.body().len())
        .body(create.body())
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success(), "{}", created.text().await.unwrap());

    let url = format!("s3://meshport-audit?endpoint={endpoint}&retain_days=30");
    let sink = url.parse::<Sink>().unwrap().with_s3_credentials("test", "test");
    let key = CheckpointKey::generate().unwrap();
    signed_and_published(&db.store, &key, &sink).await;
    assert_eq!(sink.read_all().await.unwrap(), checkpoint::all(&db.store).await.unwrap());
    // Each object is locked in compliance mode, for the configured days.
    let newest = format!("{:020}.json", 500);
    let get = bucket.get_object(Some(&credentials), &newest);
    let answer =
        http.get(get.sign(std::time::Duration::from_secs(60)).as_str()).send().await.unwrap();
    let header = |name: &str| answer.headers()[name].to_str().unwrap().to_owned();
    assert_eq!(header("x-amz-object-lock-mode"), "COMPLIANCE");
    let until =
        chrono::DateTime::parse_from_rfc3339(&header("x-amz-object-lock-retain-until-date"))
            .unwrap();
    let days = (until.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_days();
    assert!((29..=30).contains(&days), "{until}");
    cut_and_verify_against(&db.store, &key, &sink).await;
}

#[tokio::test]
async fn checkpoints_go_to_syslog_over_udp_and_tcp() {
    use tokio::io::AsyncReadExt as _;
    let checkpoint = Checkpoint {
        seq: 7,
        hash: "ab".repeat(32),
        signed_at: "2026-12-07T18:00:00.000000Z".into(),
        public_key: "cHVibGlj".into(),
        signature: "c2lnbmF0dXJl".into(),
        key_id: "00112233aabbccdd".into(),
    };
    let parsed = |message: &str| {
        assert!(message.starts_with("<110>1 "), "RFC 5424, facility log audit: {message}");
        assert!(message.contains(" meshport "), "{message}");
        let json = message.split_once("] ").expect("structured data, then the message").1;
        serde_json::from_str::<Checkpoint>(json).unwrap()
    };
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let sink: Sink = format!("syslog+udp://{}", udp.local_addr().unwrap()).parse().unwrap();
    sink.publish(&checkpoint).await.unwrap();
    let mut datagram = vec![0; 8192];
    let length = udp.recv(&mut datagram).await.unwrap();
    assert_eq!(parsed(&String::from_utf8_lossy(&datagram[..length])), checkpoint);
    let error = sink.read_all().await.unwrap_err().to_string();
    assert!(error.contains("write-only"), "{error}");

    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sink: Sink = format!("syslog+tcp://{}", tcp.local_addr().unwrap()).parse().unwrap();
    let sent = tokio::spawn(async move { sink.publish(&checkpoint).await.map(|()| checkpoint) });
    let (mut stream, _) = tcp.accept().await.unwrap();
    let mut framed = String::new();
    stream.read_to_string(&mut framed).await.unwrap();
    let (length, message) = framed.split_once(' ').expect("octet counting");
    assert_eq!(length.parse::<usize>().unwrap(), message.len());
    assert_eq!(parsed(message), sent.await.unwrap().unwrap());
}
