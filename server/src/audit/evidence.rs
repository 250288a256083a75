//! The change-evidence report auditors sample from (SOC 2 CC8.1, ISO 27001 A.8.32): one row per
//! onboarding request, derived from the chained audit events (the request row can be edited by
//! anyone with database access; the chain cannot without `verify` telling). A row has who asked
//! and why, who decided and when, the provisioning steps, the pull request and its merge, and
//! flags: self-approval, approval after the merge, merged while rejected, merged with another
//! head than the approved one, provisioning without approval, and the request row differing
//! from the chain (a tampered row). Streamed page by page; ends with a trailer ([`Trailer`]).

use std::borrow::Cow;
use std::collections::HashMap;

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::AuditEvent;
use super::export::{Format, Trailer, spreadsheet_safe};
use crate::store::{EvidenceRequest, PullRequestKind, Store, StoreError};

/// Requests per page read.
const PAGE: i64 = 200;

/// One request's evidence.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EvidenceRow {
    pub request_id: String,
    /// onboard, modify or offboard.
    pub kind: String,
    pub namespace: String,
    pub service: String,
    pub team: String,
    pub requested_by: String,
    pub requested_at: String,
    pub justification: String,
    /// approved or rejected (the last decision in the chain); empty when undecided.
    pub decision: String,
    pub decided_by: String,
    pub decided_at: String,
    pub decision_reason: String,
    /// The provisioning steps in order (`name`, `name (failed)`, `admin:action`), space-separated.
    pub provisioning_steps: String,
    pub pr_url: String,
    pub approved_head_sha: String,
    pub merged_head_sha: String,
    pub commit_sha: String,
    pub merged_at: String,
    /// The request's state according to the chain (its last step).
    pub outcome: String,
    /// The approver is the requester (four-eyes broken).
    pub approver_is_requester: bool,
    /// Merged without an approval before the merge (approved later, or never).
    pub approved_after_merge: bool,
    /// Merged while the last decision was a rejection.
    pub merged_while_rejected: bool,
    /// Merged with another head than the approved one (commits pushed after approval; whether
    /// or not an admin approved that head afterwards, `outcome` tells).
    pub merged_head_differs: bool,
    /// A provisioning step or pull request came while the request was not approved.
    pub provisioning_without_approval: bool,
    /// The request row (which a database administrator can edit) says otherwise than the chain.
    pub row_differs_from_chain: bool,
    /// What differs, `field: row … chain …`, separated by `; `.
    pub row_differences: String,
}

/// The CSV columns, in order.
pub const CSV_HEADER: [&str; 26] = [
    "request_id",
    "kind",
    "namespace",
    "service",
    "team",
    "requested_by",
    "requested_at",
    "justification",
    "decision",
    "decided_by",
    "decided_at",
    "decision_reason",
    "provisioning_steps",
    "pr_url",
    "approved_head_sha",
    "merged_head_sha",
    "commit_sha",
    "merged_at",
    "outcome",
    "approver_is_requester",
    "approved_after_merge",
    "merged_while_rejected",
    "merged_head_differs",
    "provisioning_without_approval",
    "row_differs_from_chain",
    "row_differences",
];

/// What the chain says of one request, built event by event in sequence order.
#[derive(Default)]
struct Trail {
    row: EvidenceRow,
    /// The submitter's and the last decider's user id (their subject for meshport itself).
    requester: Option<String>,
    decider: Option<String>,
    /// The last decision, as of the event being applied.
    approved: bool,
    rejected: bool,
}

/// Appends `item` to a space-separated list.
fn push(list: &mut String, item: &str) {
    if !list.is_empty() {
        list.push(' ');
    }
    list.push_str(item);
}

impl Trail {
    fn apply(&mut self, event: &AuditEvent) {
        let details: serde_json::Value = serde_json::from_str(&event.details).unwrap_or_default();
        let text = |key: &str| details[key].as_str().unwrap_or_default().to_owned();
        let who =
            if event.actor_email.is_empty() { &event.actor_subject } else { &event.actor_email };
        let actor_id = event.actor_user_id.clone().unwrap_or_else(|| event.actor_subject.clone());
        let at = event.occurred_at.clone();
        let row = &mut self.row;
        if row.namespace.is_empty()
            && matches!(event.target_kind.as_str(), "service" | "pull_request")
        {
            row.namespace.clone_from(&event.target_namespace);
            row.service.clone_from(&event.target_name);
        }
        let outcome = match event.action.as_str() {
            "request_submitted" => {
                (row.kind, row.team, row.justification) =
                    (text("kind"), text("team"), text("justification"));
                (row.requested_by, row.requested_at) = (who.clone(), at);
                self.requester = Some(actor_id);
                "submitted"
            }
            action @ ("request_approved" | "request_rejected") => {
                let approved = action == "request_approved";
                row.decision = if approved { "approved" } else { "rejected" }.to_owned();
                (row.decided_by, row.decided_at) = (who.clone(), at);
                row.decision_reason = text("reason");
                self.decider = Some(actor_id);
                (self.approved, self.rejected) = (approved, !approved);
                if approved { "approved" } else { "rejected" }
            }
            "request_withdrawn" => "withdrawn",
            "provisioning_step" => {
                if let Some(step) = details["step"].as_str() {
                    row.provisioning_without_approval |= !self.approved;
                    if event.outcome == "failure" {
                        push(&mut row.provisioning_steps, &format!("{step} (failed)"));
                        "failed"
                    } else {
                        push(&mut row.provisioning_steps, step);
                        "provisioning"
                    }
                } else {
                    // An admin's retry, cancel, reconcile or head approval.
                    push(&mut row.provisioning_steps, &format!("admin:{}", text("action")));
                    return;
                }
            }
            action if action.starts_with("pull_request_") => {
                // The pull request removing a service is the change only of an offboarding.
                if text("kind") == PullRequestKind::Offboarding.as_str() && row.kind != "offboard" {
                    return;
                }
                let approved_head = text("approved_head_sha");
                if !approved_head.is_empty() {
                    row.approved_head_sha = approved_head;
                }
                match action {
                    "pull_request_opened" => {
                        row.pr_url = text("url");
                        row.provisioning_without_approval |= !self.approved;
                        "pr_open"
                    }
                    "pull_request_merged" => {
                        (row.merged_at, row.commit_sha) = (at, text("commit_sha"));
                        row.merged_head_sha = text("merged_head_sha");
                        row.merged_while_rejected |= self.rejected;
                        row.approved_after_merge |= !self.approved && !self.rejected;
                        row.merged_head_differs |= !row.merged_head_sha.is_empty()
                            && !row.approved_head_sha.is_empty()
                            && row.merged_head_sha != row.approved_head_sha;
                        "merged"
                    }
                    "pull_request_changed_after_approval" => {
                        row.merged_head_differs = true;
                        "merged_unapproved_head"
                    }
                    "pull_request_head_approved" => "merged",
                    "pull_request_closed" => "closed",
                    _ => return,
                }
            }
            "service_offboarded" => "offboarded",
            _ => return,
        };
        row.outcome = outcome.to_owned();
    }

    /// The row, compared with the request row `stored` (if there is one).
    fn finish(mut self, request_id: &str, stored: Option<&EvidenceRequest>) -> EvidenceRow {
        let row = &mut self.row;
        row.request_id = request_id.to_owned();
        row.approver_is_requester = self.approved && self.decider == self.requester;
        let Some(stored) = stored else {
            row.row_differs_from_chain = true;
            row.row_differences = "the request row is missing".into();
            return self.row;
        };
        let mut differences = Vec::new();
        let mut differ = |field: &str, found: String, chained: &str, shown: (&str, &str)| {
            if found != chained {
                differences.push(format!("{field}: row {:?}, chain {:?}", shown.0, shown.1));
            }
        };
        let id = |user: Option<Uuid>| user.map(|u| u.to_string()).unwrap_or_default();
        let requester = self.requester.as_deref().unwrap_or_default();
        let row_requester = stored.requester_email.as_deref().unwrap_or_default();
        differ(
            "requested_by",
            id(Some(stored.requested_by)),
            requester,
            (row_requester, &row.requested_by),
        );
        differ(
            "justification",
            stored.justification.clone(),
            &row.justification,
            (&stored.justification, &row.justification),
        );
        differ(
            "namespace",
            stored.namespace.clone(),
            &row.namespace,
            (&stored.namespace, &row.namespace),
        );
        differ(
            "service",
            stored.service_name.clone(),
            &row.service,
            (&stored.service_name, &row.service),
        );
        let decision = match stored.status.as_str() {
            "submitted" | "withdrawn" => "",
            "rejected" => "rejected",
            _ => "approved",
        };
        differ("decision", decision.to_owned(), &row.decision, (decision, &row.decision));
        let row_decider = stored.decider_email.clone().unwrap_or_else(|| id(stored.decided_by));
        differ(
            "decided_by",
            id(stored.decided_by),
            self.decider.as_deref().unwrap_or_default(),
            (&row_decider, &row.decided_by),
        );
        let reason = stored.decision_reason.clone().unwrap_or_default();
        differ(
            "decision_reason",
            reason.clone(),
            &row.decision_reason,
            (&reason, &row.decision_reason),
        );
        row.row_differs_from_chain = !differences.is_empty();
        row.row_differences = differences.join("; ");
        self.row
    }
}

/// A request row without any event in the chain: shown as the row says, flagged.
fn unchained(stored: EvidenceRequest) -> EvidenceRow {
    let stamp = |at: DateTime<Utc>| at.to_rfc3339_opts(SecondsFormat::Micros, true);
    EvidenceRow {
        request_id: stored.id.to_string(),
        namespace: stored.namespace,
        service: stored.service_name,
        team: stored.team,
        requested_by: stored.requester_email.unwrap_or_else(|| stored.requested_by.to_string()),
        requested_at: stamp(stored.created_at),
        justification: stored.justification,
        outcome: stored.status,
        row_differs_from_chain: true,
        row_differences: "no event of this request is in the chain".into(),
        ..EvidenceRow::default()
    }
}

/// Reads the report a page of requests at a time: first every request of the chain up to
/// `head` in the order of its first event, then request rows that have no event at all.
pub struct Rows {
    store: Store,
    head: i64,
    after_seq: i64,
    chain_read: bool,
    after_row: Option<Uuid>,
}

impl Rows {
    /// The report of the chain up to event `head`.
    pub fn new(store: Store, head: i64) -> Self {
        Self { store, head, after_seq: 0, chain_read: false, after_row: None }
    }

    /// The next rows, or `None` at the end.
    pub async fn next_page(&mut self) -> Result<Option<Vec<EvidenceRow>>, StoreError> {
        if !self.chain_read {
            let firsts = self.store.requests_first_seen(self.after_seq, self.head, PAGE).await?;
            if let Some((seq, _)) = firsts.last() {
                self.after_seq = *seq;
                let ids: Vec<String> = firsts.into_iter().map(|(_, id)| id).collect();
                let mut trails: HashMap<String, Trail> = HashMap::new();
                for event in self.store.events_of_requests(&ids, self.head).await? {
                    let id = event.request_id.clone().unwrap_or_default();
                    trails.entry(id).or_default().apply(&event);
                }
                let uuids: Vec<Uuid> = ids.iter().filter_map(|id| id.parse().ok()).collect();
                let stored: HashMap<String, EvidenceRequest> = self
                    .store
                    .evidence_requests(&uuids)
                    .await?
                    .into_iter()
                    .map(|r| (r.id.to_string(), r))
                    .collect();
                let rows = ids
                    .iter()
                    .map(|id| trails.remove(id).unwrap_or_default().finish(id, stored.get(id)));
                return Ok(Some(rows.collect()));
            }
            self.chain_read = true;
        }
        loop {
            let page = self.store.evidence_request_page(self.after_row, PAGE).await?;
            let Some(last) = page.last() else { return Ok(None) };
            self.after_row = Some(last.id);
            let ids: Vec<String> = page.iter().map(|r| r.id.to_string()).collect();
            let chained = self.store.requests_in_chain(&ids).await?;
            let rows: Vec<EvidenceRow> = page
                .into_iter()
                .filter(|r| !chained.contains(&r.id.to_string()))
                .map(unchained)
                .collect();
            if !rows.is_empty() {
                return Ok(Some(rows));
            }
        }
    }
}

/// Every row of the report of the chain as it is now (for tests and small trails; the
/// report itself is streamed by [`stream`]).
pub async fn rows(store: &Store) -> Result<Vec<EvidenceRow>, StoreError> {
    let (head, _) = store.audit_head().await?;
    let mut reader = Rows::new(store.clone(), head);
    let mut rows = Vec::new();
    while let Some(page) = reader.next_page().await? {
        rows.extend(page);
    }
    Ok(rows)
}

/// Starts the report as CSV (`csv` and `csv-excel` alike: always escaped for spreadsheets) or
/// JSON Lines (exact); the receiver yields encoded pages, then the trailer (the rows' count,
/// events 1 to the head the report was read up to, the head's hash), or the error that
/// stopped it (then there is no trailer).
pub fn stream(
    store: Store,
    format: Format,
) -> Result<mpsc::Receiver<Result<Bytes, StoreError>>, String> {
    if format == Format::Ocsf {
        return Err("the evidence report comes as csv, csv-excel or jsonl".into());
    }
    let (sender, receiver) = mpsc::channel(4);
    tokio::spawn(async move {
        if let Err(error) = produce(&store, format, &sender).await {
            let _ = sender.send(Err(error)).await;
        }
    });
    Ok(receiver)
}

async fn produce(
    store: &Store,
    format: Format,
    sender: &mpsc::Sender<Result<Bytes, StoreError>>,
) -> Result<(), StoreError> {
    let (seq, hash) = store.audit_head().await?;
    let csv = format != Format::Jsonl;
    let new_writer = || csv::WriterBuilder::new().has_headers(false).from_writer(Vec::new());
    let mut writer = new_writer();
    if csv {
        writer.write_record(CSV_HEADER).expect("writing to memory");
    }
    let mut count = 0;
    let mut reader = Rows::new(store.clone(), seq);
    while let Some(page) = reader.next_page().await? {
        let mut out = Vec::new();
        for row in &page {
            if csv {
                writer
                    .write_record(row.csv_record().iter().map(|c| c.as_bytes()))
                    .expect("writing to memory");
            } else {
                serde_json::to_writer(&mut out, row).expect("writing to memory");
                out.push(b'\n');
            }
        }
        count += page.len() as u64;
        if csv {
            // csv's writer gives its buffer back only by value.
            out = std::mem::replace(&mut writer, new_writer()).into_inner().expect("in memory");
        }
        if sender.send(Ok(Bytes::from(out))).await.is_err() {
            return Ok(()); // The reader went away.
        }
    }
    let trailer = Trailer {
        count,
        first_seq: (seq > 0).then_some(1),
        last_seq: (seq > 0).then_some(seq),
        last_hash: if seq > 0 { hash } else { String::new() },
    };
    let mut out = Vec::new();
    if csv {
        trailer.write_csv(&mut writer, CSV_HEADER.len()).expect("writing to memory");
        out = writer.into_inner().expect("in memory");
    } else {
        trailer.write_jsonl(&mut out);
    }
    let _ = sender.send(Ok(Bytes::from(out))).await;
    Ok(())
}

impl EvidenceRow {
    /// The row's CSV cells in [`CSV_HEADER`] order, text escaped for spreadsheets: the report is
    /// read by people, and its justification and reasons are typed by requesters.
    fn csv_record(&self) -> [Cow<'_, str>; 26] {
        let flag = |set: bool| Cow::Borrowed(if set { "true" } else { "false" });
        [
            spreadsheet_safe(&self.request_id),
            spreadsheet_safe(&self.kind),
            spreadsheet_safe(&self.namespace),
            spreadsheet_safe(&self.service),
            spreadsheet_safe(&self.team),
            spreadsheet_safe(&self.requested_by),
            spreadsheet_safe(&self.requested_at),
            spreadsheet_safe(&self.justification),
            spreadsheet_safe(&self.decision),
            spreadsheet_safe(&self.decided_by),
            spreadsheet_safe(&self.decided_at),
            spreadsheet_safe(&self.decision_reason),
            spreadsheet_safe(&self.provisioning_steps),
            spreadsheet_safe(&self.pr_url),
            spreadsheet_safe(&self.approved_head_sha),
            spreadsheet_safe(&self.merged_head_sha),
            spreadsheet_safe(&self.commit_sha),
            spreadsheet_safe(&self.merged_at),
            spreadsheet_safe(&self.outcome),
            flag(self.approver_is_requester),
            flag(self.approved_after_merge),
            flag(self.merged_while_rejected),
            flag(self.merged_head_differs),
            flag(self.provisioning_without_approval),
            flag(self.row_differs_from_chain),
            spreadsheet_safe(&self.row_differences),
        ]
    }
}
