//! External, append-only homes for signed checkpoints (`audit.sinks`), so that someone who can
//! rewrite the database cannot also remove the checkpoints that show a cut tail:
//!
//! - `file:///dir`: one file per checkpoint (`<seq>.json`, 20 digits), created once and never
//!   overwritten; meant for a WORM volume.
//! - `s3://bucket?endpoint=https://host&region=R&retain_days=N`: one object per checkpoint,
//!   written with S3 Object Lock in compliance mode for `retain_days` (the bucket must have
//!   object lock enabled). Credentials come from `AWS_ACCESS_KEY_ID` and
//!   `AWS_SECRET_ACCESS_KEY`.
//! - `syslog+udp://host:port` or `syslog+tcp://host:port`: an RFC 5424 message per checkpoint
//!   (facility log audit); write-only, so it cannot be verified against from here.
//!
//! `meshport audit verify --against URL` reads the checkpoints back from a file or S3 sink.

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{SecondsFormat, Utc};
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};

use super::checkpoint::Checkpoint;
use crate::store::StoreError;

/// What every sink URL must look like (the configuration and the CLI print it).
pub const SINK_RULE: &str = "must be file:///absolute/dir, \
    s3://bucket?endpoint=http(s)://host[:port][&region=R][&retain_days=N] or \
    syslog+udp://host:port / syslog+tcp://host:port";

/// How long signed S3 requests stay valid.
const SIGNED_FOR: Duration = Duration::from_secs(300);

/// A sink could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("{0}")]
    Failed(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn failed(what: impl std::fmt::Display) -> SinkError {
    SinkError::Failed(what.to_string())
}

/// An external checkpoint sink.
#[derive(Clone, Debug)]
pub enum Sink {
    Directory(PathBuf),
    S3 {
        bucket: Bucket,
        retain_days: u32,
        url: String,
        credentials: Option<Credentials>,
        /// Its own client: a process-wide one would keep connections (and their tasks) of the
        /// first tokio runtime that used it, which hang once that runtime is gone.
        http: reqwest::Client,
    },
    Syslog { address: String, tcp: bool },
}

impl std::fmt::Display for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Directory(dir) => write!(f, "file://{}", dir.display()),
            Self::S3 { url, .. } => f.write_str(url),
            Self::Syslog { address, tcp } => {
                write!(f, "syslog+{}://{address}", if *tcp { "tcp" } else { "udp" })
            }
        }
    }
}

impl std::str::FromStr for Sink {
    type Err = String;

    /// Parses a sink URL; the error says what is wrong and [`SINK_RULE`].
    fn from_str(text: &str) -> Result<Self, String> {
        let bad = |what: &str| format!("`{text}` {what}: a sink URL {SINK_RULE}");
        let url = url::Url::parse(text).map_err(|e| bad(&format!("is not a URL ({e})")))?;
        match url.scheme() {
            "file" => {
                let path = url.to_file_path().map_err(|()| bad("has no absolute path"))?;
                if url.host_str().is_some_and(|h| !h.is_empty()) || path.as_os_str().len() <= 1 {
                    return Err(bad("must name a directory other than /, on this host"));
                }
                Ok(Self::Directory(path))
            }
            "s3" => {
                let name = url
                    .host_str()
                    .filter(|h| !h.is_empty())
                    .ok_or_else(|| bad("names no bucket"))?;
                let query = |key: &str| {
                    url.query_pairs().find(|(k, _)| k == key).map(|(_, v)| v.into_owned())
                };
                let endpoint = query("endpoint").ok_or_else(|| bad("has no endpoint"))?;
                let endpoint = url::Url::parse(&endpoint)
                    .ok()
                    .filter(|e| matches!(e.scheme(), "http" | "https"))
                    .ok_or_else(|| bad("has an endpoint that is not an http(s) URL"))?;
                let region = query("region").unwrap_or_else(|| "us-east-1".into());
                let retain_days = match query("retain_days") {
                    Some(days) => days
                        .parse()
                        .ok()
                        .filter(|d| (1..=36_500).contains(d))
                        .ok_or_else(|| bad("has a retain_days that is not 1 to 36500"))?,
                    None => 2555, // Seven years, a usual retention for audit evidence.
                };
                let bucket = Bucket::new(endpoint, UrlStyle::Path, name.to_owned(), region)
                    .map_err(|e| bad(&format!("has an unusable endpoint ({e:?})")))?;
                let http = reqwest::Client::builder()
                    .timeout(Duration::from_secs(30))
                    .build()
                    .map_err(|e| bad(&format!("needs an HTTP client ({e})")))?;
                Ok(Self::S3 { bucket, retain_days, url: text.to_owned(), credentials: None, http })
            }
            scheme @ ("syslog+udp" | "syslog+tcp") => {
                let (Some(host), Some(port)) = (url.host_str(), url.port()) else {
                    return Err(bad("needs a host and a port"));
                };
                Ok(Self::Syslog { address: format!("{host}:{port}"), tcp: scheme == "syslog+tcp" })
            }
            _ => Err(bad("has an unknown scheme")),
        }
    }
}

/// A checkpoint's name in a directory or bucket: sorts by event number.
fn file_name(seq: i64) -> String {
    format!("{seq:020}.json")
}

/// The S3 credentials given, else those of the environment.
fn credentials_of(given: &Option<Credentials>) -> Result<Credentials, SinkError> {
    if let Some(given) = given {
        return Ok(given.clone());
    }
    match (std::env::var("AWS_ACCESS_KEY_ID"), std::env::var("AWS_SECRET_ACCESS_KEY")) {
        (Ok(key), Ok(secret)) => Ok(Credentials::new(key, secret)),
        _ => Err(failed(
            "an s3:// audit sink needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment",
        )),
    }
}

async fn answer(request: reqwest::RequestBuilder, what: &str) -> Result<String, SinkError> {
    let response = request.send().await.map_err(|e| failed(format!("{what}: {e}")))?;
    let status = response.status();
    let body = response.text().await.map_err(|e| failed(format!("{what}: {e}")))?;
    if !status.is_success() {
        return Err(failed(format!("{what}: {status}: {body}")));
    }
    Ok(body)
}

impl Sink {
    /// An S3 sink with credentials other than the environment's (a test server's).
    pub fn with_s3_credentials(mut self, key: &str, secret: &str) -> Self {
        if let Self::S3 { credentials, .. } = &mut self {
            *credentials = Some(Credentials::new(key, secret));
        }
        self
    }

    /// Writes `checkpoint`, never replacing what is there: writing the same checkpoint again
    /// succeeds, a different one under the same number fails.
    pub async fn publish(&self, checkpoint: &Checkpoint) -> Result<(), SinkError> {
        let json = serde_json::to_vec(checkpoint).expect("a checkpoint serialises");
        match self {
            Self::Directory(dir) => {
                use tokio::io::AsyncWriteExt as _;
                tokio::fs::create_dir_all(dir)
                    .await
                    .map_err(|e| failed(format!("{}: {e}", dir.display())))?;
                let path = dir.join(file_name(checkpoint.seq));
                let opened =
                    tokio::fs::OpenOptions::new().write(true).create_new(true).open(&path).await;
                match opened {
                    Ok(mut file) => {
                        file.write_all(&json)
                            .await
                            .map_err(|e| failed(format!("{}: {e}", path.display())))?;
                        file.sync_all()
                            .await
                            .map_err(|e| failed(format!("{}: {e}", path.display())))
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        let there = tokio::fs::read(&path).await.unwrap_or_default();
                        match serde_json::from_slice::<Checkpoint>(&there) {
                            Ok(found) if found == *checkpoint => Ok(()),
                            _ => Err(failed(format!(
                                "{} holds another checkpoint for event {}: not overwritten",
                                path.display(),
                                checkpoint.seq
                            ))),
                        }
                    }
                    Err(e) => Err(failed(format!("{}: {e}", path.display()))),
                }
            }
            Self::S3 { bucket, retain_days, credentials, http, .. } => {
                use md5::Digest as _;
                let credentials = credentials_of(credentials)?;
                let key = file_name(checkpoint.seq);
                let until = (Utc::now() + chrono::Duration::days(i64::from(*retain_days)))
                    .to_rfc3339_opts(SecondsFormat::Secs, true);
                let md5 = STANDARD.encode(md5::Md5::digest(&json));
                let mut put = bucket.put_object(Some(&credentials), &key);
                let headers = [
                    ("content-md5", md5),
                    ("x-amz-object-lock-mode", "COMPLIANCE".to_owned()),
                    ("x-amz-object-lock-retain-until-date", until),
                ];
                for (name, value) in &headers {
                    put.headers_mut().insert(*name, value.clone());
                }
                let mut request = http.put(put.sign(SIGNED_FOR).as_str()).body(json);
                for (name, value) in headers {
                    request = request.header(name, value);
                }
                answer(request, &format!("{self}: PUT {key}")).await.map(drop)
            }
            Self::Syslog { address, tcp } => {
                let message = syslog_message(checkpoint, &String::from_utf8_lossy(&json));
                if *tcp {
                    use tokio::io::AsyncWriteExt as _;
                    let mut stream = tokio::net::TcpStream::connect(address)
                        .await
                        .map_err(|e| failed(format!("{self}: {e}")))?;
                    // RFC 6587 octet counting: the length, a space, the message.
                    let framed = format!("{} {message}", message.len());
                    stream
                        .write_all(framed.as_bytes())
                        .await
                        .map_err(|e| failed(format!("{self}: {e}")))?;
                    stream.shutdown().await.map_err(|e| failed(format!("{self}: {e}")))
                } else {
                    let socket = tokio::net::UdpSocket::bind("0.0.0.0:0")
                        .await
                        .map_err(|e| failed(format!("{self}: {e}")))?;
                    socket
                        .send_to(message.as_bytes(), address)
                        .await
                        .map(drop)
                        .map_err(|e| failed(format!("{self}: {e}")))
                }
            }
        }
    }

    /// Every checkpoint the sink holds, oldest first.
    pub async fn read_all(&self) -> Result<Vec<Checkpoint>, SinkError> {
        let mut checkpoints = Vec::new();
        for name in self.names().await? {
            let bytes = match self {
                Self::Directory(dir) => tokio::fs::read(dir.join(&name))
                    .await
                    .map_err(|e| failed(format!("{}: {e}", dir.join(&name).display())))?,
                Self::S3 { bucket, credentials, http, .. } => {
                    let credentials = credentials_of(credentials)?;
                    let url = bucket.get_object(Some(&credentials), &name).sign(SIGNED_FOR);
                    answer(http.get(url.as_str()), &format!("{self}: GET {name}"))
                        .await?
                        .into_bytes()
                }
                Self::Syslog { .. } => unreachable!("names() refuses syslog"),
            };
            let checkpoint: Checkpoint = serde_json::from_slice(&bytes)
                .map_err(|e| failed(format!("{self}: {name} is not a checkpoint ({e})")))?;
            checkpoints.push(checkpoint);
        }
        checkpoints.sort_by_key(|c| c.seq);
        Ok(checkpoints)
    }

    /// The newest checkpoint's event number the sink holds (0 when empty), or `None` for a
    /// write-only sink.
    pub async fn newest_seq(&self) -> Result<Option<i64>, SinkError> {
        if matches!(self, Self::Syslog { .. }) {
            return Ok(None);
        }
        let names = self.names().await?;
        Ok(Some(
            names.iter().filter_map(|n| n.strip_suffix(".json")?.parse().ok()).max().unwrap_or(0),
        ))
    }

    /// The names of the checkpoint files or objects.
    async fn names(&self) -> Result<Vec<String>, SinkError> {
        let is_checkpoint = |name: &str| {
            name.strip_suffix(".json")
                .is_some_and(|n| n.len() == 20 && n.bytes().all(|b| b.is_ascii_digit()))
        };
        match self {
            Self::Directory(dir) => {
                let mut names = Vec::new();
                let mut entries = match tokio::fs::read_dir(dir).await {
                    Ok(entries) => entries,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(names),
                    Err(e) => return Err(failed(format!("{}: {e}", dir.display()))),
                };
                while let Some(entry) = entries
                    .next_entry()
                    .await
                    .map_err(|e| failed(format!("{}: {e}", dir.display())))?
                {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if is_checkpoint(&name) {
                        names.push(name);
                    }
                }
                Ok(names)
            }
            Self::S3 { bucket, credentials, http, .. } => {
                let credentials = credentials_of(credentials)?;
                let mut names = Vec::new();
                let mut token: Option<String> = None;
                loop {
                    let mut list = bucket.list_objects_v2(Some(&credentials));
                    if let Some(token) = &token {
                        list.with_continuation_token(token.clone());
                    }
                    let url = list.sign(SIGNED_FOR);
                    let body =
                        answer(http.get(url.as_str()), &format!("{self}: LIST")).await?;
                    let page = rusty_s3::actions::ListObjectsV2::parse_response(&body)
                        .map_err(|e| failed(format!("{self}: an unreadable listing ({e})")))?;
                    names.extend(
                        page.contents.into_iter().map(|c| c.key).filter(|k| is_checkpoint(k)),
                    );
                    match page.next_continuation_token {
                        Some(next) => token = Some(next),
                        None => return Ok(names),
                    }
                }
            }
            Self::Syslog { .. } => Err(failed(format!(
                "{self} is write-only: verify against the collector's copy saved as a directory (file:///…)"
            ))),
        }
    }
}

/// One RFC 5424 message: facility 13 (log audit), severity 6 (informational), the checkpoint
/// as JSON for the message.
fn syslog_message(checkpoint: &Checkpoint, json: &str) -> String {
    let host =
        std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "-".into());
    let at = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
    format!(
        "<110>1 {at} {host} meshport {} audit-checkpoint [checkpoint@32473 seq=\"{}\" key_id=\"{}\"] {json}",
        std::process::id(),
        checkpoint.seq,
        checkpoint.key_id
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_sink_url_is_refused_with_what_is_wrong_and_the_rule() {
        let cases = [
            ("not a url", "is not a URL"),
            ("ftp://host/x", "unknown scheme"),
            ("file:///", "other than /"),
            ("s3://bucket", "has no endpoint"),
            ("s3://bucket?endpoint=ftp://host", "not an http(s) URL"),
            (
                "s3://bucket?endpoint=http://host&retain_days=0",
                "retain_days that is not 1 to 36500",
            ),
            ("syslog+udp://host", "needs a host and a port"),
        ];
        for (url, what) in cases {
            let error = url.parse::<Sink>().unwrap_err();
            assert!(error.contains(what) && error.contains(SINK_RULE), "{url}: {error}");
        }
        let sink: Sink =
            "s3://audit?endpoint=http://127.0.0.1:9000&retain_days=30".parse().unwrap();
        assert!(matches!(sink, Sink::S3 { retain_days: 30, .. }));
        assert!(matches!("file:///var/worm".parse(), Ok(Sink::Directory(_))));
    }

    #[test]
    fn a_bad_sink_in_the_configuration_names_the_setting() {
        let folder = tempfile::tempdir().unwrap();
        let file = folder.path().join("meshport.toml");
        std::fs::write(&file, "[audit]\nsinks = [\"ftp://worm.example/x\"]\n").unwrap();
        let error = crate::config::Config::load(Some(&file)).unwrap_err().to_string();
        assert!(error.contains("`audit.sinks`") && error.contains(SINK_RULE), "{error}");
        std::fs::write(&file, "[audit]\ntrusted_keys = [\"bm90IGEga2V5\"]\n").unwrap();
        let error = crate::config::Config::load(Some(&file)).unwrap_err().to_string();
        assert!(error.contains("`audit.trusted_keys`"), "{error}");
    }
}
