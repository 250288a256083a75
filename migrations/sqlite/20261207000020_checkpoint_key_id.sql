-- Each checkpoint names the key that signed it (a fingerprint of its public key), so trusted
-- keys can be a list and the signing key rotated. Older rows have none: their `public_key` is
-- looked up among the trusted keys instead.
ALTER TABLE audit_checkpoints ADD COLUMN key_id TEXT NOT NULL DEFAULT '';
