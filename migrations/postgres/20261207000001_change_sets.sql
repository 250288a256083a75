-- Change sets: an onboarding request becomes one kind of change set (onboard, modify, offboard)
-- against a service, with the spec it replaces, the digest of what it writes and, once merged,
-- the version it made. Live services get a table of their own whose key, the `<ns>-<svc>` Vault
-- name, makes colliding names impossible inside the submitting transaction.
ALTER TABLE onboarding_requests DROP CONSTRAINT onboarding_requests_status_check;
ALTER TABLE onboarding_requests ADD CONSTRAINT onboarding_requests_status_check
    CHECK (status IN ('submitted', 'approved', 'rejected', 'provisioning', 'pr_open', 'merged',
                      'failed', 'offboarded', 'withdrawn'));
ALTER TABLE onboarding_requests
    ADD COLUMN kind TEXT NOT NULL DEFAULT 'onboard' CHECK (kind IN ('onboard', 'modify', 'offboard')),
    ADD COLUMN base_change UUID REFERENCES onboarding_requests (id),
    ADD COLUMN digest TEXT,
    ADD COLUMN version INTEGER;
UPDATE onboarding_requests SET version = 1 WHERE status IN ('merged', 'offboarded');
-- A service may now have several change sets that are not final; `services` keeps the one
-- live claim per name instead.
DROP INDEX onboarding_requests_one_live_per_service;

-- A service that is being onboarded or runs. `origin` is its onboarding change set (its stable
-- identity in manifests and Vault metadata), `live_change` the change set whose spec Vault
-- holds, `open_change` the one change set in flight (at most one at a time).
CREATE TABLE services (
    vault_name   TEXT PRIMARY KEY,
    namespace    TEXT NOT NULL,
    service_name TEXT NOT NULL,
    team         TEXT NOT NULL,
    origin       UUID NOT NULL REFERENCES onboarding_requests (id),
    live_change  UUID REFERENCES onboarding_requests (id),
    open_change  UUID REFERENCES onboarding_requests (id),
    version      INTEGER NOT NULL DEFAULT 0,
    created_at   TIMESTAMPTZ NOT NULL,
    UNIQUE (namespace, service_name)
);
INSERT INTO services
    (vault_name, namespace, service_name, team, origin, live_change, open_change, version, created_at)
SELECT namespace || '-' || service_name, namespace, service_name, team, id,
       CASE WHEN status IN ('pr_open', 'merged') THEN id END,
       CASE WHEN status <> 'merged' THEN id END,
       CASE WHEN status = 'merged' THEN 1 ELSE 0 END,
       created_at
FROM onboarding_requests
WHERE status NOT IN ('rejected', 'offboarded', 'withdrawn')
ORDER BY created_at
ON CONFLICT DO NOTHING;
