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

pub use crate::store::Checkpoint;
use crate::store::{Store, StoreError};

/// What is signed.
pub fn message(seq: i64, hash: &str, signed_at: &str) -> String {
    format!("meshport-audit-checkpoint/v1\n{seq}\n{hash}\n{signed_at}")
}

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
}

/// Checks a checkpoint's signature against `public_key` (base64).
pub fn signature_is_valid(checkpoint: &Checkpoint, public_key: &str) -> bool {
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
    store.audit_checkpoints().await
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
    let signed_at = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
    let checkpoint = Checkpoint {
        seq,
        signature: key.sign(&message(seq, &hash, &signed_at)),
        hash,
        signed_at,
        public_key: key.public_key(),
    };
    let inserted = store.insert_audit_checkpoint(&checkpoint).await?;
    // Another replica may have signed this head first.
    Ok(inserted.then_some(checkpoint))
}

/// Signs checkpoints in the background for as long as the process runs.
pub fn spawn(store: Store, key: CheckpointKey, every: u32, interval: Duration) {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_secs(15));
        loop {
            ticker.tick().await;
            if let Err(error) = sign_if_due(&store, &key, every, interval).await {
                tracing::warn!(%error, "could not sign an audit checkpoint");
            }
        }
    });
}
