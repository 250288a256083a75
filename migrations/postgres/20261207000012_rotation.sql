-- Acting on rotation status (#23).
-- Pull requests gain the kind `rollout`: restart delivery of rotated secrets, attached to the
-- service's live change set.
ALTER TABLE pull_requests DROP CONSTRAINT pull_requests_kind_check;
ALTER TABLE pull_requests ADD CONSTRAINT pull_requests_kind_check
    CHECK (kind IN ('onboarding', 'offboarding', 'rollout'));

-- Rotations meshport wrote, one row per secret and the version it replaced. A scheduled
-- rotation is claimed by inserting its row: with several replicas exactly one insert wins.
CREATE TABLE secret_rotations (
    path         TEXT NOT NULL,
    from_version BIGINT NOT NULL,
    to_version   BIGINT,
    trigger      TEXT NOT NULL CHECK (trigger IN ('manual', 'schedule')),
    created_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (path, from_version)
);

-- Restart delivery: a service's rotations waiting to be rolled out by one pull request. At
-- most one is pending per service; rotations inside the window join it.
CREATE TABLE secret_rollouts (
    id           UUID PRIMARY KEY,
    namespace    TEXT NOT NULL,
    service_name TEXT NOT NULL,
    not_before   TIMESTAMPTZ NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('pending', 'opened', 'failed')),
    rotations    INTEGER NOT NULL DEFAULT 1,
    lease_until  TIMESTAMPTZ,
    pull_request UUID REFERENCES pull_requests (id),
    last_error   TEXT,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX secret_rollouts_one_pending ON secret_rollouts (namespace, service_name)
    WHERE state = 'pending';
CREATE INDEX secret_rollouts_due ON secret_rollouts (state, not_before);
