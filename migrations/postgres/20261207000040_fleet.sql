-- Fleet drift and generator upgrades (#25).
-- Change sets gain the kind `upgrade`: a live service's unchanged spec rendered again by a newer
-- generator.
ALTER TABLE onboarding_requests DROP CONSTRAINT onboarding_requests_kind_check;
ALTER TABLE onboarding_requests ADD CONSTRAINT onboarding_requests_kind_check
    CHECK (kind IN ('onboard', 'modify', 'offboard', 'upgrade'));

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
    recorded_at       TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (namespace, service_name, spec_digest, generator_version, path, blob_id)
);

-- The last drift pass over the fleet, as JSON (one row).
CREATE TABLE fleet_reports (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    checked_at TIMESTAMPTZ NOT NULL,
    report     TEXT NOT NULL
);

-- Hand edits an admin adopted: the repository's file (by blob id) stays, and later passes show
-- it as adopted until it changes again.
CREATE TABLE fleet_adoptions (
    namespace    TEXT NOT NULL,
    service_name TEXT NOT NULL,
    path         TEXT NOT NULL,
    blob_id      TEXT NOT NULL,
    decided_by   UUID NOT NULL REFERENCES users (id),
    decided_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (namespace, service_name, path, blob_id)
);

-- An admin's upgrade batch: the selection, and the services left out with why.
CREATE TABLE upgrade_batches (
    id           UUID PRIMARY KEY,
    requested_by UUID NOT NULL REFERENCES users (id),
    selection    TEXT NOT NULL,
    skipped      TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL
);

-- The upgrade change sets of a batch, with the files kept from the repository (adopted hand
-- edits, as JSON `[{path, contents}]`).
CREATE TABLE upgrade_changes (
    request_id UUID PRIMARY KEY REFERENCES onboarding_requests (id),
    batch_id   UUID NOT NULL REFERENCES upgrade_batches (id),
    kept       TEXT NOT NULL
);
CREATE INDEX upgrade_changes_by_batch ON upgrade_changes (batch_id);
