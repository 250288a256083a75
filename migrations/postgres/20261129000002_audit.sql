-- The audit trail: append-only, hash-chained. `hash` is SHA-256 over the canonical encoding of
-- the event including `prev_hash` (see server/src/audit/). `seq` runs 1, 2, 3… without gaps.
-- Times are kept as the exact RFC 3339 text that was hashed.
CREATE TABLE audit_events (
    seq              BIGINT PRIMARY KEY,
    id               TEXT NOT NULL UNIQUE,
    occurred_at      TEXT COLLATE "C" NOT NULL,
    actor_user_id    TEXT,
    actor_subject    TEXT NOT NULL,
    actor_email      TEXT NOT NULL,
    actor_roles      TEXT NOT NULL,
    action           TEXT NOT NULL,
    target_kind      TEXT NOT NULL,
    target_namespace TEXT NOT NULL,
    target_name      TEXT NOT NULL,
    request_id       TEXT,
    details          TEXT NOT NULL,
    outcome          TEXT NOT NULL,
    prev_hash        TEXT NOT NULL,
    hash             TEXT NOT NULL
);

CREATE INDEX audit_events_by_time ON audit_events (occurred_at);
CREATE INDEX audit_events_by_request ON audit_events (request_id);

CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END;
$$;

CREATE TRIGGER audit_events_no_update_or_delete BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

-- The chain's head: the last sequence number and hash. Updating it first in every recording
-- transaction locks the row, so concurrent writers queue and the chain never forks.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- Signed checkpoints: an Ed25519 signature over the chain's hash at `seq`, so that cutting off
-- the newest events (which leaves a valid but shorter chain) is detected too.
CREATE TABLE audit_checkpoints (
    seq        BIGINT PRIMARY KEY,
    hash       TEXT NOT NULL,
    signed_at  TEXT NOT NULL,
    public_key TEXT NOT NULL,
    signature  TEXT NOT NULL
);

CREATE TRIGGER audit_checkpoints_no_update_or_delete BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
