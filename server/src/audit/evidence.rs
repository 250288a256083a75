//! The change-evidence report auditors sample from (SOC 2 CC8.1, ISO 27001 A.8.32): one row per
//! onboarding request with who asked and why, who decided and when, the pull request, its
//! merge, and the outcome, flagging rows where the approver is the requester, where approval
//! came after the merge, or where the pull request was merged with commits pushed after its
//! approval. Like the exports, it ends with a trailer ([`Trailer`]).

use std::borrow::Cow;
use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use super::export::{Format, Trailer, spreadsheet_safe};
use crate::store::{PullRequestKind, Store, StoreError};

/// One request's evidence.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EvidenceRow {
    pub request_id: String,
    pub namespace: String,
    pub service: String,
    pub team: String,
    pub requested_by: String,
    pub requested_at: String,
    pub justification: String,
    pub decided_by: String,
    pub decided_at: String,
    pub decision_reason: String,
    pub pr_url: String,
    pub commit_sha: String,
    pub merged_at: String,
    pub outcome: String,
    /// The approver is the requester (four-eyes broken).
    pub approver_is_requester: bool,
    /// The approval is dated after the merge (approval did not precede deployment).
    pub approved_after_merge: bool,
    /// The pull request was merged with commits pushed to its branch after approval (whether
    /// or not an admin approved that head afterwards; `outcome` tells).
    pub changed_after_approval: bool,
}

/// The CSV columns, in order.
pub const CSV_HEADER: [&str; 17] = [
    "request_id",
    "namespace",
    "service",
    "team",
    "requested_by",
    "requested_at",
    "justification",
    "decided_by",
    "decided_at",
    "decision_reason",
    "pr_url",
    "commit_sha",
    "merged_at",
    "outcome",
    "approver_is_requester",
    "approved_after_merge",
    "changed_after_approval",
];

/// Pull-request facts recorded in the trail, per request.
#[derive(Default)]
struct PullRequest {
    url: String,
    commit_sha: String,
    merged_at: String,
    changed_after_approval: bool,
}

/// The report: every request's evidence and the chain it was read from.
#[derive(Clone, Debug)]
pub struct Report {
    pub rows: Vec<EvidenceRow>,
    /// The chain's head (seq, hash) read after the rows: the report reflects no later event.
    pub head: (i64, String),
}

impl Report {
    /// Reads the report.
    pub async fn read(store: &Store) -> Result<Self, StoreError> {
        let rows = rows(store).await?;
        let head = store.audit_head().await?;
        Ok(Self { rows, head })
    }

    /// The report as CSV (`csv` and `csv-excel` alike: always escaped for spreadsheets) or
    /// JSON Lines (exact), ending with its trailer: the rows' count, events 1 to the head, the
    /// head's hash.
    pub fn encode(&self, format: Format) -> Result<Vec<u8>, String> {
        let (seq, hash) = &self.head;
        let trailer = Trailer {
            count: self.rows.len() as u64,
            first_seq: (*seq > 0).then_some(1),
            last_seq: (*seq > 0).then_some(*seq),
            last_hash: if *seq > 0 { hash.clone() } else { String::new() },
        };
        encode(&self.rows, &trailer, format)
    }
}

/// Every request's evidence, oldest first.
pub async fn rows(store: &Store) -> Result<Vec<EvidenceRow>, StoreError> {
    let requests = store.evidence_requests().await?;
    let pr_events = store.pull_request_events().await?;
    let mut pull_requests: HashMap<String, PullRequest> = HashMap::new();
    for (request_id, action, occurred_at, details) in pr_events {
        let details: serde_json::Value = serde_json::from_str(&details).unwrap_or_default();
        // The pull request that removes a service later is not the change being evidenced.
        if details["kind"] == PullRequestKind::Offboarding.as_str() {
            continue;
        }
        let text = |key: &str| details[key].as_str().unwrap_or_default().to_owned();
        let pr = pull_requests.entry(request_id).or_default();
        match action.as_str() {
            "pull_request_opened" => pr.url = text("url"),
            "pull_request_changed_after_approval" => pr.changed_after_approval = true,
            _ => {
                pr.commit_sha = text("commit_sha");
                pr.merged_at = occurred_at;
            }
        }
    }
    let stamp = |at: DateTime<Utc>| at.to_rfc3339_opts(SecondsFormat::Micros, true);
    Ok(requests
        .into_iter()
        .map(|r| {
            let pr = pull_requests.remove(&r.id.to_string()).unwrap_or_default();
            let decided_at = r.decided_at.map(stamp).unwrap_or_default();
            EvidenceRow {
                request_id: r.id.to_string(),
                approver_is_requester: r.decided_by == Some(r.requested_by),
                approved_after_merge: !pr.merged_at.is_empty()
                    && (decided_at.is_empty() || decided_at > pr.merged_at),
                changed_after_approval: pr.changed_after_approval,
                namespace: r.namespace,
                service: r.service_name,
                team: r.team,
                requested_by: r.requester_email.unwrap_or_else(|| r.requested_by.to_string()),
                requested_at: stamp(r.created_at),
                justification: r.justification,
                decided_by: r
                    .decider_email
                    .or(r.decided_by.map(|id| id.to_string()))
                    .unwrap_or_default(),
                decided_at,
                decision_reason: r.decision_reason.unwrap_or_default(),
                pr_url: pr.url,
                commit_sha: pr.commit_sha,
                merged_at: pr.merged_at,
                outcome: r.status,
            }
        })
        .collect())
}

impl EvidenceRow {
    /// The row's CSV cells in [`CSV_HEADER`] order, text escaped for spreadsheets: the report is
    /// read by people, and its justification and reasons are typed by requesters.
    fn csv_record(&self) -> [Cow<'_, str>; 17] {
        let flag = |set: bool| Cow::Borrowed(if set { "true" } else { "false" });
        [
            spreadsheet_safe(&self.request_id),
            spreadsheet_safe(&self.namespace),
            spreadsheet_safe(&self.service),
            spreadsheet_safe(&self.team),
            spreadsheet_safe(&self.requested_by),
            spreadsheet_safe(&self.requested_at),
            spreadsheet_safe(&self.justification),
            spreadsheet_safe(&self.decided_by),
            spreadsheet_safe(&self.decided_at),
            spreadsheet_safe(&self.decision_reason),
            spreadsheet_safe(&self.pr_url),
            spreadsheet_safe(&self.commit_sha),
            spreadsheet_safe(&self.merged_at),
            spreadsheet_safe(&self.outcome),
            flag(self.approver_is_requester),
            flag(self.approved_after_merge),
            flag(self.changed_after_approval),
        ]
    }
}

fn encode(rows: &[EvidenceRow], trailer: &Trailer, format: Format) -> Result<Vec<u8>, String> {
    match format {
        Format::Csv | Format::CsvExcel => {
            // The header is written by hand so an empty report still has one.
            let mut writer = csv::WriterBuilder::new().has_headers(false).from_writer(Vec::new());
            writer.write_record(CSV_HEADER).map_err(|e| e.to_string())?;
            for row in rows {
                writer
                    .write_record(row.csv_record().iter().map(|c| c.as_bytes()))
                    .map_err(|e| e.to_string())?;
            }
            trailer.write_csv(&mut writer, CSV_HEADER.len()).map_err(|e| e.to_string())?;
            writer.into_inner().map_err(|e| e.to_string())
        }
        Format::Jsonl => {
            let mut out = Vec::new();
            for row in rows {
                serde_json::to_writer(&mut out, row).map_err(|e| e.to_string())?;
                out.push(b'\n');
            }
            trailer.write_jsonl(&mut out);
            Ok(out)
        }
        Format::Ocsf => Err("the evidence report comes as csv, csv-excel or jsonl".into()),
    }
}
