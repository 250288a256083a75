-- Change sets: an onboarding request becomes one kind of change set (onboard, modify, offboard)
-- against a service, with the spec it replaces, the digest of what it writes and, once merged,
-- the version it made. Live services get a table of their own whose key, the `<ns>-<svc>` Vault
-- name, makes colliding names impossible inside the submitting transaction.
-- SQLite cannot change a CHECK in place, and sqlx runs a SQLite migration inside a transaction,
-- where foreign keys cannot be switched off: the rows are copied aside, the table is created
-- anew and the rows put back, with foreign keys checked at commit (by then every job, pull
-- request and audit row finds its request again).
PRAGMA defer_foreign_keys = ON;
CREATE TEMP TABLE onboarding_requests_copy AS SELECT * FROM onboarding_requests;
DROP TABLE onboarding_requests;
CREATE TABLE onboarding_requests (
    id              BLOB PRIMARY KEY NOT NULL,
    service_name    TEXT NOT NULL,
    namespace       TEXT NOT NULL,
    team            TEXT NOT NULL,
    requested_by    BLOB NOT NULL REFERENCES users (id),
    justification   TEXT NOT NULL,
    spec            TEXT NOT NULL CHECK (json_valid(spec)),
    status          TEXT NOT NULL CHECK (status IN ('submitted', 'approved', 'rejected', 'provisioning',
                                                    'pr_open', 'merged', 'failed', 'offboarded',
                                                    'withdrawn')),
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    decided_by      BLOB REFERENCES users (id),
    decided_at      TEXT,
    decision_reason TEXT,
    kind            TEXT NOT NULL DEFAULT 'onboard' CHECK (kind IN ('onboard', 'modify', 'offboard')),
    base_change     BLOB REFERENCES onboarding_requests (id),
    digest          TEXT,
    version         INTEGER
);
INSERT INTO onboarding_requests
    (id, service_name, namespace, team, requested_by, justification, spec, status, created_at,
     updated_at, decided_by, decided_at, decision_reason, version)
SELECT id, service_name, namespace, team, requested_by, justification, spec, status, created_at,
       updated_at, decided_by, decided_at, decision_reason,
       CASE WHEN status IN ('merged', 'offboarded') THEN 1 END
FROM onboarding_requests_copy;
DROP TABLE onboarding_requests_copy;
CREATE INDEX onboarding_requests_by_team ON onboarding_requests (team, created_at);
CREATE INDEX onboarding_requests_by_requester ON onboarding_requests (requested_by, created_at);
CREATE INDEX onboarding_requests_by_service ON onboarding_requests (namespace, service_name);

-- A service that is being onboarded or runs. `origin` is its onboarding change set (its stable
-- identity in manifests and Vault metadata), `live_change` the change set whose spec Vault
-- holds, `open_change` the one change set in flight (at most one at a time).
CREATE TABLE services (
    vault_name   TEXT PRIMARY KEY NOT NULL,
    namespace    TEXT NOT NULL,
    service_name TEXT NOT NULL,
    team         TEXT NOT NULL,
    origin       BLOB NOT NULL REFERENCES onboarding_requests (id),
    live_change  BLOB REFERENCES onboarding_requests (id),
    open_change  BLOB REFERENCES onboarding_requests (id),
    version      INTEGER NOT NULL DEFAULT 0,
    created_at   TEXT NOT NULL,
    UNIQUE (namespace, service_name)
);
INSERT OR IGNORE INTO services
    (vault_name, namespace, service_name, team, origin, live_change, open_change, version, created_at)
SELECT namespace || '-' || service_name, namespace, service_name, team, id,
       CASE WHEN status IN ('pr_open', 'merged') THEN id END,
       CASE WHEN status <> 'merged' THEN id END,
       CASE WHEN status = 'merged' THEN 1 ELSE 0 END,
       created_at
FROM onboarding_requests
WHERE status NOT IN ('rejected', 'offboarded', 'withdrawn')
ORDER BY created_at;
