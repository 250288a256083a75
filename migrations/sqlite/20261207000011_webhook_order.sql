-- A delivery's signature covers its body, not its id: a captured body re-sent with a new id is
-- recognised by the body's SHA-256. Older rows have none (NULLs do not collide).
ALTER TABLE webhook_deliveries ADD COLUMN body_sha256 TEXT;
CREATE UNIQUE INDEX webhook_deliveries_by_body ON webhook_deliveries (provider, body_sha256);

-- The forge's own time of the state a pull request was last moved to: a report older than it
-- (a delayed or re-sent event) changes nothing.
ALTER TABLE pull_requests ADD COLUMN remote_updated_at TEXT;
