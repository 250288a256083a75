//! Signed checkpoints of the audit chain: every N events or every interval (whichever comes
//! first, when there are new events), an Ed25519 signature over the head's sequence number and
//! hash. A chain cut short stays internally consistent; a checkpoint naming an event past its
//! end shows the cut, and only the holder of the key can sign new checkpoints.

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{SecondsFormat, Utc};
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use secrecy::{ExposeSecret, SecretString};

use super::sink::{Sink, SinkError};
pub use crate::store::Checkpoint;
use crate::store::{Store, StoreError};

/// What is signed.
pub fn message(seq: i64, hash: &str, signed_at: &str) -> String {
    format!("meshport-audit-checkpoint/v1\n{seq}\n{hash}\n{signed_at}")
}

/// What a verified prefix's signature covers: its last event, in a domain of its own, so a
/// checkpoint cannot pass for a verified prefix nor the other way round.
pub fn verified_message(seq: i64, hash: &str, signed_at: &str) -> String {
    format!("meshport-audit-verified-prefix/v1\n{seq}\n{hash}\n{signed_at}")
}

/// The text a signature covers: [`message`] or [`verified_message`].
type Message = fn(i64, &str, &str) -> String;

/// The key that signs checkpoints.
#[derive(Clone)]
pub struct CheckpointKey(SigningKey);

impl std::fmt::Debug for CheckpointKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CheckpointKey(public {})", self.public_key())
    }
}

impl CheckpointKey {
    /// The key from its base64 32-byte seed (`audit.signing_key`).
    pub fn from_base64(seed: &SecretString) -> anyhow::Result<Self> {
        let bytes = STANDARD.decode(seed.expose_secret().trim())?;
        let seed: [u8; 32] = bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("audit.signing_key must be 32 bytes, base64-encoded"))?;
        Ok(Self(SigningKey::from_bytes(&seed)))
    }

    /// A fresh random key.
    pub fn generate() -> anyhow::Result<Self> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed)
            .map_err(|e| anyhow::anyhow!("no randomness for the key: {e}"))?;
        Ok(Self(SigningKey::from_bytes(&seed)))
    }

    /// The key kept in `path` (readable by its owner only), created there if missing; for
    /// `meshport dev`.
    pub fn load_or_create(path: &Path) -> anyhow::Result<Self> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        if let Ok(text) = std::fs::read_to_string(path) {
            return Self::from_base64(&SecretString::from(text));
        }
        let key = Self::generate()?;
        let mut file =
            std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
        file.write_all(STANDARD.encode(key.0.to_bytes()).as_bytes())?;
        Ok(key)
    }

    /// The seed, base64: the form `audit.signing_key` takes.
    pub fn seed_base64(&self) -> SecretString {
        SecretString::from(STANDARD.encode(self.0.to_bytes()))
    }

    /// The public key, base64.
    pub fn public_key(&self) -> String {
        STANDARD.encode(self.0.verifying_key().to_bytes())
    }

    fn sign(&self, text: &str) -> String {
        STANDARD.encode(self.0.sign(text.as_bytes()).to_bytes())
    }

    /// `(seq, hash)` signed now over `message`.
    fn signed(&self, seq: i64, hash: String, message: Message) -> Checkpoint {
        let signed_at = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
        Checkpoint {
            seq,
            signature: self.sign(&message(seq, &hash, &signed_at)),
            hash,
            signed_at,
            public_key: self.public_key(),
            key_id: key_id(&self.public_key()),
        }
    }

    /// A verified prefix ending at event `seq` with `hash`, signed now.
    pub fn sign_verified_prefix(&self, seq: i64, hash: String) -> Checkpoint {
        self.signed(seq, hash, verified_message)
    }
}

/// The id of a public key (base64): the first 16 hex digits of SHA-256 over its bytes.
pub fn key_id(public_key: &str) -> String {
    use sha2::{Digest, Sha256};
    let bytes = STANDARD.decode(public_key).unwrap_or_default();
    Sha256::digest(bytes).iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Whether `public_key` is a base64 Ed25519 public key.
pub fn is_public_key(public_key: &str) -> bool {
    STANDARD
        .decode(public_key)
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .is_some_and(|bytes| VerifyingKey::from_bytes(&bytes).is_ok())
}

/// Checks `checkpoint`'s signature with the trusted key it names (by key id, or by public key
/// for checkpoints older than key ids). Returns what is wrong.
pub fn check_signature(checkpoint: &Checkpoint, trusted: &[String]) -> Result<(), String> {
    check_signed(checkpoint, trusted, message)
}

/// Checks a verified prefix's signature like [`check_signature`].
pub fn check_verified_prefix(prefix: &Checkpoint, trusted: &[String]) -> Result<(), String> {
    check_signed(prefix, trusted, verified_message)
}

fn check_signed(checkpoint: &Checkpoint, trusted: &[String], message: Message) -> Result<(), String> {
    let named = |key: &&String| {
        if checkpoint.key_id.is_empty() {
            **key == checkpoint.public_key
        } else {
            key_id(key) == checkpoint.key_id
        }
    };
    let Some(key) = trusted.iter().find(named) else {
        return Err(format!(
            "the checkpoint signed at {} names key {} which is not among the trusted keys: its signature cannot be trusted",
            checkpoint.signed_at,
            if checkpoint.key_id.is_empty() { &checkpoint.public_key } else { &checkpoint.key_id }
        ));
    };
    if signature_valid_over(checkpoint, key, message) {
        Ok(())
    } else {
        Err(format!(
            "the checkpoint signed at {} does not carry a valid signature of meshport's key",
            checkpoint.signed_at
        ))
    }
}

/// Checks a checkpoint's signature against `public_key` (base64).
pub fn signature_is_valid(checkpoint: &Checkpoint, public_key: &str) -> bool {
    signature_valid_over(checkpoint, public_key, message)
}

fn signature_valid_over(checkpoint: &Checkpoint, public_key: &str, message: Message) -> bool {
    let decode = |text: &str| STANDARD.decode(text).ok();
    let (Some(key), Some(signature)) = (decode(public_key), decode(&checkpoint.signature)) else {
        return false;
    };
    let (Ok(key), Ok(signature)) = (<[u8; 32]>::try_from(key), <[u8; 64]>::try_from(signature))
    else {
        return false;
    };
    let Ok(key) = VerifyingKey::from_bytes(&key) else { return false };
    key.verify(
        message(checkpoint.seq, &checkpoint.hash, &checkpoint.signed_at).as_bytes(),
        &Signature::from_bytes(&signature),
    )
    .is_ok()
}

/// Every checkpoint, oldest first.
pub async fn all(store: &Store) -> Result<Vec<Checkpoint>, StoreError> {
    store.audit_checkpoints(0).await
}

/// Signs the chain's head when at least `every` events are unsigned, or when any are and the
/// last checkpoint is older than `interval`. Returns the new checkpoint, if one was made.
pub async fn sign_if_due(
    store: &Store,
    key: &CheckpointKey,
    every: u32,
    interval: Duration,
) -> Result<Option<Checkpoint>, StoreError> {
    let (seq, hash) = store.audit_head().await?;
    let last = store.last_audit_checkpoint().await?;
    let (last_seq, last_at) = last.unwrap_or((0, String::new()));
    let unsigned = seq - last_seq;
    let stale = chrono::DateTime::parse_from_rfc3339(&last_at).map_or(true, |at| {
        Utc::now().signed_duration_since(at).to_std().unwrap_or_default() >= interval
    });
    if unsigned <= 0 || (unsigned < i64::from(every) && !stale) {
        return Ok(None);
    }
    let checkpoint = key.signed(seq, hash, message);
    let inserted = store.insert_audit_checkpoint(&checkpoint).await?;
    // Another replica may have signed this head first.
    Ok(inserted.then_some(checkpoint))
}

/// Signs checkpoints in the background for as long as the process runs, and sends each to
/// every external sink (those a sink missed are sent again on the next round).
pub fn spawn(store: Store, key: CheckpointKey, every: u32, interval: Duration, sinks: Vec<Sink>) {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_secs(15));
        let mut published: Vec<Option<i64>> = vec![None; sinks.len()];
        loop {
            ticker.tick().await;
            if let Err(error) = sign_if_due(&store, &key, every, interval).await {
                tracing::warn!(%error, "could not sign an audit checkpoint");
            }
            for (sink, published) in sinks.iter().zip(&mut published) {
                if let Err(error) = publish(&store, sink, published).await {
                    tracing::warn!(sink = %sink, %error, "could not send audit checkpoints");
                }
            }
        }
    });
}

/// Sends `sink` the checkpoints after `published` (on the first round: after the newest the
/// sink holds, or for a write-only sink, after the newest in the database).
pub async fn publish(
    store: &Store,
    sink: &Sink,
    published: &mut Option<i64>,
) -> Result<(), SinkError> {
    let after = match *published {
        Some(seq) => seq,
        None => match sink.newest_seq().await? {
            Some(seq) => seq,
            None => store.last_audit_checkpoint().await?.map_or(0, |(seq, _)| seq),
        },
    };
    *published = Some(after);
    for checkpoint in store.audit_checkpoints(after).await? {
        sink.publish(&checkpoint).await?;
        *published = Some(checkpoint.seq);
    }
    Ok(())
}
