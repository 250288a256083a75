//! Exports of the audit trail, streamed with constant memory: a producer task reads events in
//! sequence order and hands encoded chunks through a small bounded channel, so neither the CLI
//! nor an HTTP download ever holds more than a few chunks. Formats: CSV (byte-exact, for hash
//! verification), CSV for spreadsheets (formula cells escaped), JSON Lines (the usual machine
//! format) and OCSF class 6003 "API Activity" (SIEMs).

use std::borrow::Cow;
use std::str::FromStr;

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

#[cfg(test)]
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
    if let Some((first, last)) = store.audit_seq_range(&from, &to).await? {
        // Pages are read on a task of their own, as the database packs them: the next page is
        // read while this one is parsed and encoded (the database's part costs about as much
        // as the other two together).
        let (pages_sender, mut pages) = mpsc::channel(2);
        tokio::spawn(read_pages(store.clone(), first - 1, last, pages_sender));
        while let Some(page) = pages.recv().await {
            let page = page?;
            let events: Vec<PagedEvent> = serde_json::from_str(&page)
                .map_err(|e| StoreError::Corrupt(format!("an audit page: {e}")))?;
            // A clock step could put an event of another period between the first and last.
            for event in events.iter().filter(|e| *e.occurred_at >= *from && *e.occurred_at < *to) {
                encoder.push(event);
            }
            if encoder.buffered() >= CHUNK && sender.send(Ok(encoder.take())).await.is_err() {
                return Ok(()); // The reader went away (client disconnected).
            }
        }
    }
    // Only an export read to its end gets a trailer: an error above leaves the file without one.
    encoder.finish();
    let _ = sender.send(Ok(encoder.take())).await;
    Ok(())
}

/// Sends the packed pages of events `(after, last]` in order, then ends (after an error, or
/// when the receiver is gone). Pages go by number range, so the next is asked for without
/// parsing this one.
async fn read_pages(
    store: Store,
    mut after: i64,
    last: i64,
    pages: mpsc::Sender<Result<String, StoreError>>,
) {
    while after < last {
        let (next, page) = match store.audit_range_packed(after, last).await {
            Ok(read) => read,
            Err(error) => {
                let _ = pages.send(Err(error)).await;
                return;
            }
        };
        after = next;
        // A range of numbers left by rolled-back transactions sends nothing.
        if let Some(json) = page
            && pages.send(Ok(json)).await.is_err()
        {
            return;
        }
    }
}

/// An event of a page as the database packs it: `AuditEvent`'s fields in its order, so it
/// reads the same arrays and writes the same JSON, but each text borrows from the page unless
/// it has escapes (as `details` does). An export copies only those.
#[derive(Debug, Serialize, Deserialize)]
struct PagedEvent<'a> {
    seq: i64,
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    occurred_at: Cow<'a, str>,
    #[serde(borrow)]
    actor_user_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    actor_subject: Cow<'a, str>,
    #[serde(borrow)]
    actor_email: Cow<'a, str>,
    #[serde(borrow)]
    actor_roles: Cow<'a, str>,
    #[serde(borrow)]
    action: Cow<'a, str>,
    #[serde(borrow)]
    target_kind: Cow<'a, str>,
    #[serde(borrow)]
    target_namespace: Cow<'a, str>,
    #[serde(borrow)]
    target_name: Cow<'a, str>,
    #[serde(borrow)]
    request_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    details: Cow<'a, str>,
    #[serde(borrow)]
    outcome: Cow<'a, str>,
    #[serde(borrow)]
    prev_hash: Cow<'a, str>,
    #[serde(borrow)]
    hash: Cow<'a, str>,
}

/// Encodes events one by one into a buffer.
struct Encoder {
    format: Format,
    csv: Option<csv::Writer<Vec<u8>>>,
    buffer: Vec<u8>,
    /// What the events pushed so far add up to.
    trailer: Trailer,
}

impl Encoder {
    fn new(format: Format) -> Self {
        let csv = matches!(format, Format::Csv | Format::CsvExcel).then(|| {
            let mut writer = csv::WriterBuilder::new().from_writer(Vec::with_capacity(CHUNK * 2));
            writer.write_record(CSV_HEADER).expect("writing to memory");
            writer
        });
        Self { format, csv, buffer: Vec::with_capacity(CHUNK * 2), trailer: Trailer::default() }
    }

    fn push(&mut self, event: &PagedEvent) {
        self.trailer.add(event.seq, &event.hash);
        match self.format {
            Format::Csv | Format::CsvExcel => {
                let writer = self.csv.as_mut().expect("a CSV writer");
                let seq = event.seq.to_string();
                let cells: [&str; 16] = [
                    &seq,
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

    /// Writes the trailer; nothing may be pushed after it.
    fn finish(&mut self) {
        match self.csv.as_mut() {
            Some(writer) => {
                self.trailer.write_csv(writer, CSV_HEADER.len()).expect("writing to memory")
            }
            None => self.trailer.write_jsonl(&mut self.buffer),
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

/// The last record of every export and evidence report: how many records precede it and which
/// events they were. A file cut short (a dropped connection, a full disk) has no trailer or one
/// that does not match; [`check`] tells (`meshport audit check-export`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trailer {
    /// Records before the trailer: events, or the report's rows.
    pub count: u64,
    /// The first and last exported event; for the evidence report, the events of the chain it
    /// was built from.
    pub first_seq: Option<i64>,
    pub last_seq: Option<i64>,
    /// The last event's hash (for the evidence report, the chain's head); empty without events.
    pub last_hash: String,
}

/// The first cell of a CSV trailer row; its second cell is the trailer as JSON.
pub const TRAILER_MARK: &str = "trailer";

impl Trailer {
    /// Counts the event `seq` with `hash` as the next record.
    fn add(&mut self, seq: i64, hash: &str) {
        self.count += 1;
        self.first_seq.get_or_insert(seq);
        self.last_seq = Some(seq);
        hash.clone_into(&mut self.last_hash);
    }

    /// The trailer as a CSV row of `columns` cells (readers want every row equally long).
    pub fn write_csv<W: std::io::Write>(
        &self,
        writer: &mut csv::Writer<W>,
        columns: usize,
    ) -> csv::Result<()> {
        let json = serde_json::to_string(self).expect("a trailer serialises");
        let cells = [TRAILER_MARK, json.as_str()].into_iter().chain(std::iter::repeat(""));
        writer.write_record(cells.take(columns))
    }

    /// The trailer as the last line of JSON Lines: `{"trailer":{…}}`.
    pub fn write_jsonl(&self, out: &mut Vec<u8>) {
        serde_json::to_writer(&mut *out, &serde_json::json!({ "trailer": self }))
            .expect("writing to memory");
        out.push(b'\n');
    }
}

/// Reads an export of `format` (with `evidence`, an evidence report) to its end and checks that
/// it ends with a trailer matching the records before it: their number and, for events, the
/// first and last sequence number and the last hash. Returns the trailer, or what is wrong.
pub fn check(file: impl std::io::Read, format: Format, evidence: bool) -> Result<Trailer, String> {
    let mut seen = Trailer::default();
    let mut trailer: Option<Trailer> = None;
    let cut =
        |record: u64, what: &str| format!("record {record} {what}: the file was cut off or edited");
    match format {
        Format::Csv | Format::CsvExcel => {
            let mut reader = csv::Reader::from_reader(file);
            let header = reader.headers().map_err(|e| format!("no CSV header: {e}"))?;
            let expected: &[&str] =
                if evidence { &super::evidence::CSV_HEADER } else { &CSV_HEADER };
            if header.iter().ne(expected.iter().copied()) {
                let kind = if evidence { "evidence report" } else { "audit export" };
                return Err(format!("the header is not that of a meshport {kind}"));
            }
            for (index, record) in reader.records().enumerate() {
                let number = index as u64 + 1;
                let record = record.map_err(|e| cut(number, &format!("is not whole CSV ({e})")))?;
                if trailer.is_some() {
                    return Err(cut(number, "follows the trailer"));
                }
                if &record[0] == TRAILER_MARK {
                    trailer = Some(
                        serde_json::from_str(&record[1])
                            .map_err(|e| cut(number, &format!("is a damaged trailer ({e})")))?,
                    );
                } else if evidence {
                    seen.count += 1;
                } else {
                    let seq =
                        record[0].parse().map_err(|_| cut(number, "has no sequence number"))?;
                    seen.add(seq, &record[15]);
                }
            }
        }
        Format::Jsonl | Format::Ocsf => {
            use std::io::BufRead as _;
            for (index, line) in std::io::BufReader::new(file).lines().enumerate() {
                let number = index as u64 + 1;
                let line = line.map_err(|e| format!("the file cannot be read: {e}"))?;
                if trailer.is_some() {
                    return Err(cut(number, "follows the trailer"));
                }
                let fields: LineFields = serde_json::from_str(&line)
                    .map_err(|e| cut(number, &format!("is not whole JSON ({e})")))?;
                let (seq, hash) = match (fields, format) {
                    (LineFields { trailer: Some(found), .. }, _) => {
                        trailer = Some(found);
                        continue;
                    }
                    _ if evidence => {
                        seen.count += 1;
                        continue;
                    }
                    (LineFields { seq: Some(seq), hash: Some(hash), .. }, Format::Jsonl) => {
                        (seq, hash)
                    }
                    (LineFields { metadata: Some(m), unmapped: Some(u), .. }, Format::Ocsf) => {
                        (m.sequence, u.hash)
                    }
                    _ => return Err(cut(number, "is not an event")),
                };
                seen.add(seq, &hash);
            }
        }
    }
    let Some(trailer) = trailer else {
        return Err(format!(
            "no trailer after {} records: the file was cut off (or made before exports had trailers)",
            seen.count
        ));
    };
    let matches = if evidence { trailer.count == seen.count } else { trailer == seen };
    if !matches {
        return Err(format!(
            "the trailer does not match the records: it says {} records ({:?} to {:?}, last hash {}), the file holds {} ({:?} to {:?}, last hash {})",
            trailer.count,
            trailer.first_seq,
            trailer.last_seq,
            trailer.last_hash,
            seen.count,
            seen.first_seq,
            seen.last_seq,
            seen.last_hash,
        ));
    }
    Ok(trailer)
}

/// What [`check`] reads of a JSON line: a trailer, a JSON Lines event or an OCSF event.
#[derive(Deserialize)]
struct LineFields {
    trailer: Option<Trailer>,
    seq: Option<i64>,
    hash: Option<String>,
    metadata: Option<OcsfSequence>,
    unmapped: Option<OcsfHash>,
}

#[derive(Deserialize)]
struct OcsfSequence {
    sequence: i64,
}

#[derive(Deserialize)]
struct OcsfHash {
    hash: String,
}

/// The OCSF schema version the export follows.
pub const OCSF_VERSION: &str = "1.5.0";

/// One event as OCSF class 6003 (API Activity, category 6 Application Activity). It borrows
/// from the event and serialises straight to JSON: no tree is built per event.
#[derive(Serialize)]
pub struct OcsfEvent<'a> {
    class_uid: u32,
    class_name: &'static str,
    category_uid: u32,
    category_name: &'static str,
    activity_id: u32,
    activity_name: &'static str,
    type_uid: u32,
    severity_id: u32,
    severity: &'static str,
    status_id: u32,
    status: &'static str,
    /// Milliseconds since the epoch.
    time: i64,
    metadata: OcsfMetadata<'a>,
    actor: OcsfActor<'a>,
    api: OcsfApi<'a>,
    src_endpoint: OcsfNamed<'static>,
    resources: [OcsfResource<'a>; 1],
    unmapped: OcsfUnmapped<'a>,
}

#[derive(Serialize)]
struct OcsfMetadata<'a> {
    version: &'static str,
    uid: &'a str,
    original_time: &'a str,
    sequence: i64,
    product: OcsfProduct,
}

#[derive(Serialize)]
struct OcsfProduct {
    name: &'static str,
    vendor_name: &'static str,
}

#[derive(Serialize)]
struct OcsfActor<'a> {
    user: OcsfUser<'a>,
}

#[derive(Serialize)]
struct OcsfUser<'a> {
    uid: &'a str,
    name: &'a str,
    groups: OcsfGroups<'a>,
    #[serde(skip_serializing_if = "str::is_empty")]
    email_addr: &'a str,
}

/// The roles (stored comma-separated) as OCSF groups, `[{"name": role}, …]`.
struct OcsfGroups<'a>(&'a str);

impl Serialize for OcsfGroups<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let roles = self.0.split(',').filter(|role| !role.is_empty());
        serializer.collect_seq(roles.map(|name| OcsfNamed { name }))
    }
}

#[derive(Serialize)]
struct OcsfNamed<'a> {
    name: &'a str,
}

#[derive(Serialize)]
struct OcsfApi<'a> {
    operation: &'a str,
    service: OcsfNamed<'static>,
}

#[derive(Serialize)]
struct OcsfResource<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    name: &'a str,
}

#[derive(Serialize)]
struct OcsfUnmapped<'a> {
    target_namespace: &'a str,
    request_id: Option<&'a str>,
    /// The stored JSON as it is (null if it is not JSON), copied, not parsed into a tree.
    details: Option<&'a serde_json::value::RawValue>,
    prev_hash: &'a str,
    hash: &'a str,
}

const MESHPORT: OcsfNamed<'static> = OcsfNamed { name: "meshport" };

/// One event as OCSF class 6003.
fn ocsf<'a>(event: &'a PagedEvent<'_>) -> OcsfEvent<'a> {
    // Create for new things, Update for decisions and changes, Delete for removals, Read for
    // exports and sign-ins (which change no resource).
    let (activity_id, activity_name) = match &*event.action {
        "request_submitted" | "api_token_created" | "pull_request_opened" => (1, "Create"),
        "sign_in" | "sign_out" | "export_performed" => (2, "Read"),
        "service_offboarded" | "api_token_revoked" | "vault_values_discarded" => (4, "Delete"),
        // A refused attempt changed nothing; OCSF's "Other" with the Failure status says so.
        "access_refused" | "access_refusals_suppressed" => (99, "Other"),
        _ => (3, "Update"),
    };
    let (status_id, status) =
        if event.outcome == "success" { (1, "Success") } else { (2, "Failure") };
    OcsfEvent {
        class_uid: 6003,
        class_name: "API Activity",
        category_uid: 6,
        category_name: "Application Activity",
        activity_id,
        activity_name,
        type_uid: 6003 * 100 + activity_id,
        severity_id: 1,
        severity: "Informational",
        status_id,
        status,
        time: DateTime::parse_from_rfc3339(&event.occurred_at).map_or(0, |t| t.timestamp_millis()),
        metadata: OcsfMetadata {
            version: OCSF_VERSION,
            uid: &event.id,
            original_time: &event.occurred_at,
            sequence: event.seq,
            product: OcsfProduct { name: "meshport", vendor_name: "meshport" },
        },
        actor: OcsfActor {
            user: OcsfUser {
                uid: event.actor_user_id.as_deref().unwrap_or(&event.actor_subject),
                name: &event.actor_subject,
                groups: OcsfGroups(&event.actor_roles),
                email_addr: &event.actor_email,
            },
        },
        api: OcsfApi { operation: &event.action, service: MESHPORT },
        src_endpoint: MESHPORT,
        resources: [OcsfResource { kind: &event.target_kind, name: &event.target_name }],
        unmapped: OcsfUnmapped {
            target_namespace: &event.target_namespace,
            request_id: event.request_id.as_deref(),
            details: serde_json::from_str(&event.details).ok(),
            prev_hash: &event.prev_hash,
            hash: &event.hash,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::{AuditEvent, Cow, PagedEvent, spreadsheet_safe};

    #[test]
    fn a_paged_event_reads_and_writes_what_an_audit_event_does() {
        // As the database packs a page: one array per event, in the columns' order.
        let page = serde_json::json!([
            [7, "id-7", "2026-12-07T10:00:00.000001Z", null, "dana", "dana@shop.example",
             "developer,auditor", "request_submitted", "request", "prod-app", "cart", "r-1",
             "{\"reason\":\"line\\nbreak \\u00e9 \\\"quoted\\\"\"}", "success", "prev", "hash"],
            [8, "id-8", "2026-12-07T10:00:01Z", "u-1", "é ü", "", "", "sign_in", "", "", "", null,
             "{}", "failure", "hash", "next"]
        ])
        .to_string();
        let owned: Vec<AuditEvent> = serde_json::from_str(&page).unwrap();
        let paged: Vec<PagedEvent> = serde_json::from_str(&page).unwrap();
        assert_eq!(serde_json::to_string(&owned).unwrap(), serde_json::to_string(&paged).unwrap());
        // Texts without escapes are borrowed from the page; `details` has some.
        assert!(matches!(paged[0].id, Cow::Borrowed(_)) && matches!(paged[0].details, Cow::Owned(_)));
    }

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
