//! Who is calling, remembered for a few seconds, so resolving a request's caller costs at most
//! one indexed read and no write: a session's or token's row with its user is read once per
//! [`FRESH_FOR`], and a token's last use is marked in memory and written by a background task.
//!
//! A committed change of anyone's access in this process (revocation, disabling, enabling,
//! re-validation, sign-in, sign-out) calls [`access_changed`], and every remembered caller is
//! read again; a change made by another replica takes effect here within [`FRESH_FOR`].

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::store::{Store, StoreError};

/// How long a caller read from the database is believed without reading it again.
pub const FRESH_FOR: Duration = Duration::from_secs(5);
/// Beyond this many remembered callers, the stale ones are dropped (then all, if need be).
const MOST_REMEMBERED: usize = 10_000;

/// Counts committed changes of access in this process. Process-wide: several portals in one
/// process (tests) only forget more often than they need.
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Call after committing a change of anyone's access: every remembered caller is read again.
pub fn access_changed() {
    GENERATION.fetch_add(1, Ordering::SeqCst);
}

/// Values by key, each believed for [`FRESH_FOR`] and until the next change of access.
pub struct Remembered<K, V> {
    entries: Mutex<HashMap<K, Entry<V>>>,
}

struct Entry<V> {
    read_at: Instant,
    generation: u64,
    value: V,
}

impl<V> Entry<V> {
    fn fresh(&self, generation: u64) -> bool {
        self.generation == generation && self.read_at.elapsed() < FRESH_FOR
    }
}

impl<K: Eq + Hash + Clone, V: Clone> Default for Remembered<K, V> {
    fn default() -> Self {
        Self { entries: Mutex::new(HashMap::new()) }
    }
}

impl<K: Eq + Hash + Clone, V: Clone> Remembered<K, V> {
    /// The value of `key`: remembered, or read by `read` and remembered.
    pub async fn get<F>(&self, key: &K, read: impl FnOnce() -> F) -> Result<V, StoreError>
    where
        F: Future<Output = Result<V, StoreError>>,
    {
        // Read before the database: a change committed meanwhile makes this read stale.
        let generation = GENERATION.load(Ordering::SeqCst);
        if let Some(entry) = self.lock().get(key).filter(|e| e.fresh(generation)) {
            return Ok(entry.value.clone());
        }
        let value = read().await?;
        let mut entries = self.lock();
        if entries.len() >= MOST_REMEMBERED {
            entries.retain(|_, entry| entry.fresh(generation));
            if entries.len() >= MOST_REMEMBERED {
                entries.clear();
            }
        }
        let entry = Entry { read_at: Instant::now(), generation, value: value.clone() };
        entries.insert(key.clone(), entry);
        Ok(value)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Entry<V>>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// When each API token was last used, kept in memory and written every minute or so: using a
/// token writes nothing on the request's path.
#[derive(Default)]
pub struct TokenUses {
    marks: Mutex<HashMap<Uuid, DateTime<Utc>>>,
}

impl TokenUses {
    /// Notes that `token` was used now.
    pub fn mark(&self, token: Uuid) {
        self.marks.lock().unwrap_or_else(|e| e.into_inner()).insert(token, Utc::now());
    }

    /// Writes the marks noted since the last write.
    pub async fn write(&self, store: &Store) -> Result<usize, StoreError> {
        let marks: Vec<(Uuid, DateTime<Utc>)> =
            self.marks.lock().unwrap_or_else(|e| e.into_inner()).drain().collect();
        for (token, at) in &marks {
            store.mark_api_token_used(*token, *at).await?;
        }
        Ok(marks.len())
    }

    /// Writes the marks every `period`, for as long as the process runs.
    pub fn spawn_writes(self: std::sync::Arc<Self>, store: Store, period: Duration) {
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(period);
            loop {
                ticker.tick().await;
                if let Err(error) = self.write(&store).await {
                    tracing::warn!(%error, "could not record when API tokens were last used");
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_remembered_value_is_read_again_after_a_change_of_access() {
        let remembered = Remembered::<u8, u32>::default();
        let reads = std::sync::atomic::AtomicU32::new(0);
        let read = || async { Ok::<_, StoreError>(reads.fetch_add(1, Ordering::SeqCst) + 1) };
        assert_eq!(remembered.get(&1, read).await.unwrap(), 1);
        assert_eq!(remembered.get(&1, read).await.unwrap(), 1, "remembered");
        access_changed();
        assert_eq!(remembered.get(&1, read).await.unwrap(), 2, "read again");
        assert_eq!(remembered.get(&2, read).await.unwrap(), 3, "another key is read");
    }
}
