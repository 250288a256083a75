-- The longest prefix of the audit chain that meshport has recomputed and found intact, signed
-- with the checkpoint key (in a domain of its own, so it cannot pass for a checkpoint). After a
-- restart the /audit page starts from it instead of recomputing the whole chain; a row edited
-- without the key fails its signature and is ignored. One row.
CREATE TABLE audit_verified_prefix (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL,
    signed_at TEXT NOT NULL,
    public_key TEXT NOT NULL,
    signature TEXT NOT NULL,
    key_id TEXT NOT NULL
);
