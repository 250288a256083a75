//! The audit trail's tables: the event chain and its head, signed checkpoints, and what the
//! change-evidence report reads. The chain's rules (hashing, verification, signing) live in
//! `crate::audit`; this module only reads and writes rows.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Store, StoreError, Tx, on_pool, on_tx};

/// A recorded event, exactly as stored and hashed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct AuditEvent {
    pub seq: i64,
    pub id: String,
    /// RFC 3339, UTC, microseconds.
    pub occurred_at: String,
    pub actor_user_id: Option<String>,
    pub actor_subject: String,
    pub actor_email: String,
    /// Comma-separated.
    pub actor_roles: String,
    pub action: String,
    pub target_kind: String,
    pub target_namespace: String,
    pub target_name: String,
    pub request_id: Option<String>,
    /// JSON text.
    pub details: String,
    pub outcome: String,
    pub prev_hash: String,
    pub hash: String,
}

/// A checkpoint as stored (and as sent to an external sink, as JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Checkpoint {
    pub seq: i64,
    pub hash: String,
    pub signed_at: String,
    /// Base64 Ed25519 public key of the signer.
    pub public_key: String,
    /// Base64 signature over `crate::audit::checkpoint::message`.
    pub signature: String,
    /// The signer's key id (`crate::audit::checkpoint::key_id`); empty on checkpoints signed
    /// before keys had ids.
    #[serde(default)]
    pub key_id: String,
}

/// A request row with its requester's and decider's addresses, which the change-evidence
/// report compares with the chain.
#[derive(sqlx::FromRow)]
pub struct EvidenceRequest {
    pub id: Uuid,
    pub namespace: String,
    pub service_name: String,
    pub team: String,
    pub justification: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub requested_by: Uuid,
    pub requester_email: Option<String>,
    pub decided_by: Option<Uuid>,
    pub decider_email: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub decision_reason: Option<String>,
}

/// The columns of `audit_events`, in `AuditEvent`'s field order ([`Store::audit_page`] relies
/// on it).
const EVENT_COLUMNS: &str = "seq, id, occurred_at, actor_user_id, actor_subject, actor_email, \
    actor_roles, action, target_kind, target_namespace, target_name, request_id, details, \
    outcome, prev_hash, hash";

/// Events read per database round trip by [`Store::audit_page`].
const PAGE: i64 = 1000;

impl Store {
    /// The events numbered in `(after_seq, up_to]`, at most [`PAGE`], in sequence order. The
    /// database packs a page into one JSON value: reading rows one by one costs a channel hop
    /// each in sqlx's SQLite driver, which capped exports near 60k events a second. JSON keeps
    /// every text exactly, so hashes still verify. Paging by the primary key alone keeps each
    /// page an index range (a time condition here made SQLite scan the time index for every
    /// page).
    pub async fn audit_page(
        &self,
        after_seq: i64,
        up_to: i64,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        match self.audit_packed(after_seq, up_to, Some(PAGE)).await? {
            // Each event comes as an array in `EVENT_COLUMNS` order, which is `AuditEvent`'s
            // field order: serde reads a struct from such an array.
            Some(json) => serde_json::from_str(&json)
                .map_err(|e| StoreError::Corrupt(format!("an audit page: {e}"))),
            None => Ok(Vec::new()),
        }
    }

    /// The events numbered in `(after_seq, after_seq + PAGE]` (and at most `up_to`), still
    /// packed as the database wrote them (one JSON array of `AuditEvent` arrays; `None` when
    /// the range has none), and the number the next range starts after. A page by number range
    /// needs no parsing to know where the next one starts, so an export reads the next page
    /// while it parses and encodes this one.
    pub async fn audit_range_packed(
        &self,
        after_seq: i64,
        up_to: i64,
    ) -> Result<(i64, Option<String>), StoreError> {
        let end = up_to.min(after_seq.saturating_add(PAGE));
        Ok((end, self.audit_packed(after_seq, end, None).await?))
    }

    /// Events `(after_seq, up_to]` as one JSON array of arrays, at most `limit` of them.
    async fn audit_packed(
        &self,
        after_seq: i64,
        up_to: i64,
        limit: Option<i64>,
    ) -> Result<Option<String>, StoreError> {
        let inner = format!(
            "SELECT {EVENT_COLUMNS} FROM audit_events WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3"
        );
        let sql = match self {
            Store::Sqlite(_) => {
                format!("SELECT json_group_array(json_array({EVENT_COLUMNS})) FROM ({inner})")
            }
            Store::Postgres(_) => format!(
                "SELECT json_agg(json_build_array({EVENT_COLUMNS}) ORDER BY seq)::text FROM ({inner}) AS page"
            ),
        };
        let packed: Option<String> = on_pool!(self, pool => sqlx::query_scalar(&sql)
            .bind(after_seq)
            .bind(up_to)
            .bind(limit.unwrap_or(up_to.saturating_sub(after_seq)))
            .fetch_one(pool)
            .await?);
        // SQLite's json_group_array of no rows is `[]`, PostgreSQL's json_agg is NULL.
        Ok(packed.filter(|json| json != "[]"))
    }

    /// The first and last sequence numbers of the events that occurred in `[from, to)` (RFC
    /// 3339 text bounds), found through the time index. Events are numbered in time order,
    /// since both are taken under the head's lock.
    pub async fn audit_seq_range(
        &self,
        from: &str,
        to: &str,
    ) -> Result<Option<(i64, i64)>, StoreError> {
        let sql = "SELECT min(seq), max(seq) FROM audit_events WHERE occurred_at >= $1 AND occurred_at < $2";
        let (first, last): (Option<i64>, Option<i64>) =
            on_pool!(self, pool => sqlx::query_as(sql).bind(from).bind(to).fetch_one(pool).await?);
        Ok(first.zip(last))
    }

    /// The newest `limit` events, newest first.
    pub async fn recent_audit_events(&self, limit: i64) -> Result<Vec<AuditEvent>, StoreError> {
        let sql = format!("SELECT {EVENT_COLUMNS} FROM audit_events ORDER BY seq DESC LIMIT $1");
        Ok(on_pool!(self, pool => sqlx::query_as(&sql).bind(limit).fetch_all(pool).await?))
    }

    /// The chain's head: the last event's number and hash.
    pub async fn audit_head(&self) -> Result<(i64, String), StoreError> {
        let sql = "SELECT seq, hash FROM audit_head WHERE id = 1";
        Ok(on_pool!(self, pool => sqlx::query_as(sql).fetch_one(pool).await?))
    }

    /// The checkpoints after event `after_seq`, oldest first.
    pub async fn audit_checkpoints(&self, after_seq: i64) -> Result<Vec<Checkpoint>, StoreError> {
        let sql =
            "SELECT seq, hash, signed_at, public_key, signature, key_id FROM audit_checkpoints
                   WHERE seq > $1 ORDER BY seq";
        Ok(
            on_pool!(self, pool => sqlx::query_as::<_, Checkpoint>(sql).bind(after_seq).fetch_all(pool).await?),
        )
    }

    /// The newest checkpoint's event number and signing time, if any.
    pub async fn last_audit_checkpoint(&self) -> Result<Option<(i64, String)>, StoreError> {
        let sql = "SELECT seq, signed_at FROM audit_checkpoints ORDER BY seq DESC LIMIT 1";
        Ok(on_pool!(self, pool => sqlx::query_as(sql).fetch_optional(pool).await?))
    }

    /// Stores `checkpoint`; false when one for its event exists already (another replica
    /// signed this head first).
    pub async fn insert_audit_checkpoint(
        &self,
        checkpoint: &Checkpoint,
    ) -> Result<bool, StoreError> {
        let insert =
            "INSERT INTO audit_checkpoints (seq, hash, signed_at, public_key, signature, key_id)
                      VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (seq) DO NOTHING";
        let c = checkpoint;
        let inserted = on_pool!(self, pool => sqlx::query(insert).bind(c.seq).bind(&c.hash)
            .bind(&c.signed_at).bind(&c.public_key).bind(&c.signature).bind(&c.key_id)
            .execute(pool).await?.rows_affected());
        Ok(inserted == 1)
    }

    /// Records `prefix` as the verified prefix. It replaces whatever is recorded, even a longer
    /// one: that may be forged (its signature is checked only when read), and a replica racing
    /// with an older prefix costs at most a few events verified again.
    pub async fn record_verified_prefix(&self, prefix: &Checkpoint) -> Result<(), StoreError> {
        let upsert = "INSERT INTO audit_verified_prefix (id, seq, hash, signed_at, public_key, signature, key_id)
                      VALUES (1, $1, $2, $3, $4, $5, $6)
                      ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash,
                          signed_at = excluded.signed_at, public_key = excluded.public_key,
                          signature = excluded.signature, key_id = excluded.key_id";
        let p = prefix;
        on_pool!(self, pool => sqlx::query(upsert).bind(p.seq).bind(&p.hash).bind(&p.signed_at)
            .bind(&p.public_key).bind(&p.signature).bind(&p.key_id).execute(pool).await
            .map(drop)?);
        Ok(())
    }

    /// Forgets the verified prefix (a break was found inside it).
    pub async fn forget_verified_prefix(&self) -> Result<(), StoreError> {
        let delete = "DELETE FROM audit_verified_prefix";
        on_pool!(self, pool => sqlx::query(delete).execute(pool).await.map(drop)?);
        Ok(())
    }

    /// The recorded verified prefix, as stored (its signature unchecked).
    pub async fn verified_prefix(&self) -> Result<Option<Checkpoint>, StoreError> {
        let select = "SELECT seq, hash, signed_at, public_key, signature, key_id
                      FROM audit_verified_prefix WHERE id = 1";
        Ok(on_pool!(self, pool => sqlx::query_as(select).fetch_optional(pool).await?))
    }

    /// The requests whose first event is in `(after_seq, up_to]`, at most `limit`, in the order
    /// of that event: its number and the request id. One pass over the events; the earlier
    /// event is looked up through the request index.
    pub async fn requests_first_seen(
        &self,
        after_seq: i64,
        up_to: i64,
        limit: i64,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        let sql = "SELECT e.seq, e.request_id FROM audit_events e
                   WHERE e.request_id IS NOT NULL AND e.seq > $1 AND e.seq <= $2
                     AND NOT EXISTS (SELECT 1 FROM audit_events p
                                     WHERE p.request_id = e.request_id AND p.seq < e.seq)
                   ORDER BY e.seq LIMIT $3";
        Ok(on_pool!(self, pool => sqlx::query_as(sql)
            .bind(after_seq).bind(up_to).bind(limit).fetch_all(pool).await?))
    }

    /// The events of the requests `ids` up to event `up_to`, in sequence order.
    pub async fn events_of_requests(
        &self,
        ids: &[String],
        up_to: i64,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM audit_events WHERE seq <= $1 AND request_id IN ({}) ORDER BY seq",
            placeholders(2, ids.len())
        );
        Ok(on_pool!(self, pool => {
            let mut query = sqlx::query_as(&sql).bind(up_to);
            for id in ids {
                query = query.bind(id);
            }
            query.fetch_all(pool).await?
        }))
    }

    /// Of the request ids `ids`, those with at least one event.
    pub async fn requests_in_chain(
        &self,
        ids: &[String],
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        if ids.is_empty() {
            return Ok(Default::default());
        }
        let sql = format!(
            "SELECT DISTINCT request_id FROM audit_events WHERE request_id IN ({})",
            placeholders(1, ids.len())
        );
        let found: Vec<String> = on_pool!(self, pool => {
            let mut query = sqlx::query_scalar(&sql);
            for id in ids {
                query = query.bind(id);
            }
            query.fetch_all(pool).await?
        });
        Ok(found.into_iter().collect())
    }

    /// The requests `ids` with their requester's and decider's addresses.
    pub async fn evidence_requests(
        &self,
        ids: &[Uuid],
    ) -> Result<Vec<EvidenceRequest>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!("{EVIDENCE_SELECT} WHERE r.id IN ({})", placeholders(1, ids.len()));
        Ok(on_pool!(self, pool => {
            let mut query = sqlx::query_as(&sql);
            for id in ids {
                query = query.bind(id);
            }
            query.fetch_all(pool).await?
        }))
    }

    /// Up to `limit` requests with ids after `after`, by id.
    pub async fn evidence_request_page(
        &self,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<EvidenceRequest>, StoreError> {
        Ok(match after {
            Some(after) => {
                let sql = format!("{EVIDENCE_SELECT} WHERE r.id > $1 ORDER BY r.id LIMIT $2");
                on_pool!(self, pool => sqlx::query_as(&sql).bind(after).bind(limit).fetch_all(pool).await?)
            }
            None => {
                let sql = format!("{EVIDENCE_SELECT} ORDER BY r.id LIMIT $1");
                on_pool!(self, pool => sqlx::query_as(&sql).bind(limit).fetch_all(pool).await?)
            }
        })
    }
}

/// A request with its requester's and decider's addresses.
const EVIDENCE_SELECT: &str = "SELECT r.id, r.namespace, r.service_name, r.team, r.justification,
        r.status, r.created_at, r.requested_by, q.email AS requester_email, r.decided_by,
        d.email AS decider_email, r.decided_at, r.decision_reason
    FROM onboarding_requests r
    LEFT JOIN users q ON q.id = r.requested_by
    LEFT JOIN users d ON d.id = r.decided_by";

/// `$first, …` for `count` values.
fn placeholders(first: usize, count: usize) -> String {
    (first..first + count).map(|n| format!("${n}")).collect::<Vec<_>>().join(", ")
}

impl Tx {
    /// Takes the next event number and the current head's hash. Taking the head locks it:
    /// concurrent recorders queue here until this transaction ends.
    pub async fn advance_audit_head(&mut self) -> Result<(i64, String), StoreError> {
        let advance = "UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash";
        Ok(on_tx!(self, conn => sqlx::query_as(advance).fetch_one(&mut **conn).await?))
    }

    /// Appends `event` (numbered by [`Tx::advance_audit_head`]) and makes it the head.
    pub async fn append_audit_event(&mut self, event: &AuditEvent) -> Result<(), StoreError> {
        let insert = format!(
            "INSERT INTO audit_events ({EVENT_COLUMNS})
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
        );
        let e = event;
        on_tx!(self, conn => sqlx::query(&insert)
            .bind(e.seq).bind(&e.id).bind(&e.occurred_at).bind(&e.actor_user_id).bind(&e.actor_subject)
            .bind(&e.actor_email).bind(&e.actor_roles).bind(&e.action).bind(&e.target_kind)
            .bind(&e.target_namespace).bind(&e.target_name).bind(&e.request_id).bind(&e.details)
            .bind(&e.outcome).bind(&e.prev_hash).bind(&e.hash)
            .execute(&mut **conn)
            .await
            .map(drop)?);
        let head = "UPDATE audit_head SET hash = $1 WHERE id = 1";
        on_tx!(self, conn => sqlx::query(head).bind(&e.hash).execute(&mut **conn).await.map(drop)?);
        Ok(())
    }
}
