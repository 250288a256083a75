-- Fleet drift and generator upgrades (#25).
-- Change sets gain the kind `upgrade`: a live service's unchanged spec rendered again by a newer
-- generator. SQLite cannot change a CHECK in place: the table is copied aside and created anew,
-- as in 20261207000001_change_sets.sql, with foreign keys checked at commit.
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
    kind            TEXT NOT NULL DEFAULT 'onboard'
                    CHECK (kind IN ('onboard', 'modify', 'offboard', 'upgrade')),
    base_change     BLOB REFERENCES onboarding_requests (id),
    digest          TEXT,
    version         INTEGER
);
INSERT INTO onboarding_requests SELECT * FROM onboarding_requests_copy;
DROP TABLE onboarding_requests_copy;
CREATE INDEX onboarding_requests_by_team ON onboarding_requests (team, created_at);
CREATE INDEX onboarding_requests_by_requester ON onboarding_requests (requested_by, created_at);
CREATE INDEX onboarding_requests_by_service ON onboarding_requests (namespace, service_name);

-- What each generator version rendered for a service's spec: a later version recognises a file
-- that equals an older rendering (a generator upgrade) and tells it from a hand edit. `blob_id`
-- is git's blob id of the contents, so the repository's tree compares without reading a file.
CREATE TABLE fleet_renderings (
    namespace         TEXT NOT NULL,
    service_name      TEXT NOT NULL,
    spec_digest       TEXT NOT NULL,
    generator_version TEXT NOT NULL,
    path              TEXT NOT NULL,
    blob_id           TEXT NOT NULL,
    sha256            TEXT NOT NULL,
    recorded_at       TEXT NOT NULL,
    PRIMARY KEY (namespace, service_name, spec_digest, generator_version, path, blob_id)
);

-- The last drift pass over the fleet, as JSON (one row).
CREATE TABLE fleet_reports (
    id         INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    checked_at TEXT NOT NULL,
    report     TEXT NOT NULL
);

-- Hand edits an admin adopted: the repository's file (by blob id) stays, and later passes show
-- it as adopted until it changes again.
CREATE TABLE fleet_adoptions (
    namespace    TEXT NOT NULL,
    service_name TEXT NOT NULL,
    path         TEXT NOT NULL,
    blob_id      TEXT NOT NULL,
    decided_by   BLOB NOT NULL REFERENCES users (id),
    decided_at   TEXT NOT NULL,
    PRIMARY KEY (namespace, service_name, path, blob_id)
);

-- An admin's upgrade batch: the selection, and the services left out with why.
CREATE TABLE upgrade_batches (
    id           BLOB PRIMARY KEY NOT NULL,
    requested_by BLOB NOT NULL REFERENCES users (id),
    selection    TEXT NOT NULL,
    skipped      TEXT NOT NULL,
    created_at   TEXT NOT NULL
);

-- The upgrade change sets of a batch, with the files kept from the repository (adopted hand
-- edits, as JSON `[{path, contents}]`).
CREATE TABLE upgrade_changes (
    request_id BLOB PRIMARY KEY NOT NULL REFERENCES onboarding_requests (id),
    batch_id   BLOB NOT NULL REFERENCES upgrade_batches (id),
    kept       TEXT NOT NULL
);
CREATE INDEX upgrade_changes_by_batch ON upgrade_changes (batch_id);
