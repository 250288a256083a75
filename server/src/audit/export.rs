//! Exports of the audit trail, streamed with constant memory: a producer task reads events in
//! sequence order and hands encoded chunks through a small bounded channel, so neither the CLI
//! nor an HTTP download ever holds more than a few chunks. Formats: CSV (byte-exact, for hash
//! verification), CSV for spreadsheets (formula cells escaped), JSON Lines (the usual machine
//! format) and OCSF class 6003 "API Activity" (SIEMs).

use std::borrow::Cow;
use std::str::FromStr;

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;
use tokio::sync::mpsc;

use super::AuditEvent;
use crate::store::{Store, StoreError};

/// Chunks are flushed at about this size.
const CHUNK: usize = 64 * 1024;
/// Chunks in flight between the reader and the writer.
const IN_FLIGHT: usize = 8;

/// An export format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Every cell exactly as stored and hashed.
    Csv,
    /// CSV for spreadsheets: cells a spreadsheet would evaluate are escaped ([`spreadsheet_safe`]).
    CsvExcel,
    Jsonl,
    Ocsf,
}

impl Format {
    /// The HTTP content type.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Csv | Self::CsvExcel => "text/csv; charset=utf-8",
            Self::Jsonl | Self::Ocsf => "application/x-ndjson",
        }
    }

    /// The file extension of a download.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::CsvExcel => "excel.csv",
            Self::Jsonl => "jsonl",
            Self::Ocsf => "ocsf.jsonl",
        }
    }
}

impl FromStr for Format {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        match value {
            "csv" => Ok(Self::Csv),
            "csv-excel" => Ok(Self::CsvExcel),
            "jsonl" => Ok(Self::Jsonl),
            "ocsf" => Ok(Self::Ocsf),
            other => {
                Err(format!("unknown export format `{other}`: use csv, csv-excel, jsonl or ocsf"))
            }
        }
    }
}

/// `cell` as a spreadsheet shows it without evaluating it: a cell starting with `=`, `+`, `-`,
/// `@`, a tab or a carriage return gets a leading `'` (OWASP's rule against CSV injection), so
/// a justification such as `=HYPERLINK(…)` stays text. Everything else is unchanged.
pub fn spreadsheet_safe(cell: &str) -> Cow<'_, str> {
    match cell.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => Cow::Owned(format!("'{cell}")),
        _ => Cow::Borrowed(cell),
    }
}

/// Which events: those that occurred in `[from, to)`; unset bounds are open.
#[derive(Clone, Copy, Debug, Default)]
pub struct Period {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// The CSV columns, in order.
pub const CSV_HEADER: [&str; 16] = [
    "seq",
    "id",
    "occurred_at",
    "actor_user_id",
    "actor_subject",
    "actor_email",
    "actor_roles",
    "action",
    "target_kind",
    "target_namespace",
    "target_name",
    "request_id",
    "details",
    "outcome",
    "prev_hash",
    "hash",
];

/// Starts exporting; the receiver yields encoded chunks, then ends (or yields the error that
/// stopped the export).
pub fn stream(
    store: Store,
    period: Period,
    format: Format,
) -> mpsc::Receiver<Result<Bytes, StoreError>> {
    let (sender, receiver) = mpsc::channel(IN_FLIGHT);
    tokio::spawn(async move {
        let result = produce(&store, period, format, &sender).await;
        if let Err(error) = result {
            let _ = sender.send(Err(error)).await;
        }
    });
    receiver
}

async fn produce(
    store: &Store,
    period: Period,
    format: Format,
    sender: &mpsc::Sender<Result<Bytes, StoreError>>,
) -> Result<(), StoreError> {
    let stamp = |at: DateTime<Utc>| at.to_rfc3339_opts(SecondsFormat::Micros, true);
    // The stored times are RFC 3339 in one fixed form, so text order is time order.
    let from = period.from.map_or_else(String::new, stamp);
    // An open end as a timestamp, not a symbol: symbols sort differently under some collations.
    let to = period.to.map_or_else(|| "9999-12-31T23:59:59.999999Z".to_owned(), stamp);
    let mut encoder = Encoder::new(format);
    let Some((first, last)) = store.audit_seq_range(&from, &to).await? else {
        let _ = sender.send(Ok(encoder.take())).await; // The CSV header, for an empty period.
        return Ok(());
    };
    let mut after = first - 1;
    loop {
        let events = store.audit_page(after, last).await?;
        let Some(newest) = events.last() else { break };
        after = newest.seq;
        // A clock step could put an event of another period between the first and last.
        for event in events.iter().filter(|e| e.occurred_at >= from && e.occurred_at < to) {
            encoder.push(event);
        }
        if encoder.buffered() >= CHUNK && sender.send(Ok(encoder.take())).await.is_err() {
            return Ok(()); // The reader went away (client disconnected).
        }
    }
    let rest = encoder.take();
    if !rest.is_empty() {
        let _ = sender.send(Ok(rest)).await;
    }
    Ok(())
}

/// Encodes events one by one into a buffer.
struct Encoder {
    format: Format,
    csv: Option<csv::Writer<Vec<u8>>>,
    buffer: Vec<u8>,
}

impl Encoder {
    fn new(format: Format) -> Self {
        let csv = matches!(format, Format::Csv | Format::CsvExcel).then(|| {
            let mut writer = csv::WriterBuilder::new().from_writer(Vec::with_capacity(CHUNK * 2));
            writer.write_record(CSV_HEADER).expect("writing to memory");
            writer
        });
        Self { format, csv, buffer: Vec::with_capacity(CHUNK * 2) }
    }

    fn push(&mut self, event: &AuditEvent) {
        match self.format {
            Format::Csv | Format::CsvExcel => {
                let writer = self.csv.as_mut().expect("a CSV writer");
                let seq = event.seq.to_string();
                let cells = [
                    seq.as_str(),
                    &event.id,
                    &event.occurred_at,
                    event.actor_user_id.as_deref().unwrap_or(""),
                    &event.actor_subject,
                    &event.actor_email,
                    &event.actor_roles,
                    &event.action,
                    &event.target_kind,
                    &event.target_namespace,
                    &event.target_name,
                    event.request_id.as_deref().unwrap_or(""),
                    &event.details,
                    &event.outcome,
                    &event.prev_hash,
                    &event.hash,
                ];
                let written = if self.format == Format::CsvExcel {
                    writer.write_record(cells.map(spreadsheet_safe).iter().map(|c| c.as_bytes()))
                } else {
                    writer.write_record(cells)
                };
                written.expect("writing to memory");
            }
            Format::Jsonl => {
                serde_json::to_writer(&mut self.buffer, event).expect("writing to memory");
                self.buffer.push(b'\n');
            }
            Format::Ocsf => {
                serde_json::to_writer(&mut self.buffer, &ocsf(event)).expect("writing to memory");
                self.buffer.push(b'\n');
            }
        }
    }

    fn buffered(&self) -> usize {
        self.csv.as_ref().map_or(self.buffer.len(), |w| w.get_ref().len())
    }

    fn take(&mut self) -> Bytes {
        match self.csv.take() {
            // csv's writer gives its buffer back only by value: take it, start a new one.
            Some(writer) => {
                let bytes = writer.into_inner().expect("writing to memory");
                self.csv = Some(csv::Writer::from_writer(Vec::with_capacity(CHUNK * 2)));
                Bytes::from(bytes)
            }
            None => Bytes::from(std::mem::take(&mut self.buffer)),
        }
    }
}

/// The OCSF schema version the export follows.
pub const OCSF_VERSION: &str = "1.5.0";

/// One event as OCSF class 6003 (API Activity, category 6 Application Activity).
pub fn ocsf(event: &AuditEvent) -> serde_json::Value {
    // Create for new things, Update for decisions and changes, Delete for removals, Read for
    // exports and sign-ins (which change no resource).
    let (activity_id, activity) = match event.action.as_str() {
        "request_submitted" | "api_token_created" | "pull_request_opened" => (1, "Create"),
        "sign_in" | "sign_out" | "export_performed" => (2, "Read"),
        "service_offboarded" | "api_token_revoked" => (4, "Delete"),
        _ => (3, "Update"),
    };
    let (status_id, status) =
        if event.outcome == "success" { (1, "Success") } else { (2, "Failure") };
    let time = DateTime::parse_from_rfc3339(&event.occurred_at).map_or(0, |t| t.timestamp_millis());
    let details: serde_json::Value = serde_json::from_str(&event.details).unwrap_or(json!(null));
    let mut ocsf = json!({
        "class_uid": 6003,
        "class_name": "API Activity",
        "category_uid": 6,
        "category_name": "Application Activity",
        "activity_id": activity_id,
        "activity_name": activity,
        "type_uid": 6003 * 100 + activity_id,
        "severity_id": 1,
        "severity": "Informational",
        "status_id": status_id,
        "status": status,
        "time": time,
        "metadata": {
            "version": OCSF_VERSION,
            "uid": event.id,
            "original_time": event.occurred_at,
            "sequence": event.seq,
            "product": { "name": "meshport", "vendor_name": "meshport" },
        },
        "actor": {
            "user": {
                "uid": event.actor_user_id.clone().unwrap_or_else(|| event.actor_subject.clone()),
                "name": event.actor_subject,

                "groups": event.actor_roles.split(',').filter(|r| !r.is_empty()).map(|r| json!({ "name": r })).collect::<Vec<_>>(),
            },
        },
        "api": { "operation": event.action, "service": { "name": "meshport" } },
        "src_endpoint": { "name": "meshport" },
        "resources": [{ "type": event.target_kind, "name": event.target_name }],
        "unmapped": {
            "target_namespace": event.target_namespace,
            "request_id": event.request_id,
            "details": details,
            "prev_hash": event.prev_hash,
            "hash": event.hash,
        },
    });
    if !event.actor_email.is_empty() {
        ocsf["actor"]["user"]["email_addr"] = json!(event.actor_email);
    }
    ocsf
}

#[cfg(test)]
mod tests {
    use super::spreadsheet_safe;

    #[test]
    fn cells_a_spreadsheet_would_evaluate_get_a_leading_quote() {
        for cell in ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx", "=HYPERLINK(\"http://x\",\"y\")"]
        {
            assert_eq!(spreadsheet_safe(cell), format!("'{cell}"));
        }
        for cell in ["", "alex@shop.example", "a=b", " =1", "'=1", "{\"step\":1}", "1.5"] {
            assert_eq!(spreadsheet_safe(cell), cell, "unchanged");
        }
    }
}
