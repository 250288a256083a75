-- Acting on rotation status (#23).
-- Pull requests gain the kind `rollout`: restart delivery of rotated secrets, attached to the
-- service's live change set. SQLite cannot change a CHECK in place: the table is rebuilt, with
-- foreign keys checked at commit.
PRAGMA defer_foreign_keys = ON;
CREATE TEMP TABLE pull_requests_copy AS SELECT * FROM pull_requests;
DROP TABLE pull_requests;
CREATE TABLE pull_requests (
    id                     BLOB PRIMARY KEY NOT NULL,
    request_id             BLOB NOT NULL REFERENCES onboarding_requests (id),
    kind                   TEXT NOT NULL CHECK (kind IN ('onboarding', 'offboarding', 'rollout')),
    namespace              TEXT NOT NULL,
    service_name           TEXT NOT NULL,
    provider               TEXT NOT NULL CHECK (provider IN ('local', 'github', 'gitea', 'gitlab')),
    number                 INTEGER NOT NULL,
    url                    TEXT NOT NULL,
    branch                 TEXT NOT NULL UNIQUE,
    head_sha               TEXT NOT NULL,
    state                  TEXT NOT NULL CHECK (state IN ('open', 'merged', 'closed')),
    merge_commit_sha       TEXT,
    created_at             TEXT NOT NULL,
    updated_at             TEXT NOT NULL,
    approved_head_sha      TEXT,
    merged_head_sha        TEXT,
    changed_after_approval BOOLEAN NOT NULL DEFAULT FALSE,
    remote_updated_at      TEXT,
    UNIQUE (provider, number)
);
INSERT INTO pull_requests
    (id, request_id, kind, namespace, service_name, provider, number, url, branch, head_sha,
     state, merge_commit_sha, created_at, updated_at, approved_head_sha, merged_head_sha,
     changed_after_approval, remote_updated_at)
SELECT id, request_id, kind, namespace, service_name, provider, number, url, branch, head_sha,
       state, merge_commit_sha, created_at, updated_at, approved_head_sha, merged_head_sha,
       changed_after_approval, remote_updated_at
FROM pull_requests_copy;
DROP TABLE pull_requests_copy;
CREATE INDEX pull_requests_by_request ON pull_requests (request_id, created_at);
CREATE INDEX pull_requests_by_state ON pull_requests (state);

-- Rotations meshport wrote, one row per secret and the version it replaced. A scheduled
-- rotation is claimed by inserting its row: with several replicas exactly one insert wins.
CREATE TABLE secret_rotations (
    path         TEXT NOT NULL,
    from_version INTEGER NOT NULL,
    to_version   INTEGER,
    trigger      TEXT NOT NULL CHECK (trigger IN ('manual', 'schedule')),
    created_at   TEXT NOT NULL,
    PRIMARY KEY (path, from_version)
);

-- Restart delivery: a service's rotations waiting to be rolled out by one pull request. At
-- most one is pending per service; rotations inside the window join it.
CREATE TABLE secret_rollouts (
    id           BLOB PRIMARY KEY NOT NULL,
    namespace    TEXT NOT NULL,
    service_name TEXT NOT NULL,
    not_before   TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('pending', 'opened', 'failed')),
    rotations    INTEGER NOT NULL DEFAULT 1,
    lease_until  TEXT,
    pull_request BLOB REFERENCES pull_requests (id),
    last_error   TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
CREATE UNIQUE INDEX secret_rollouts_one_pending ON secret_rollouts (namespace, service_name)
    WHERE state = 'pending';
CREATE INDEX secret_rollouts_due ON secret_rollouts (state, not_before);
