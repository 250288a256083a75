-- Durable provisioning: one job per approved (or offboarded) request, run step by step by
-- whichever meshport process holds its lease. A process that dies loses the lease when
-- `lease_until` passes, and another takes the job up at the first step not yet done.
CREATE TABLE jobs (
    id           UUID PRIMARY KEY,
    request_id   UUID NOT NULL REFERENCES onboarding_requests (id),
    kind         TEXT NOT NULL CHECK (kind IN ('provision', 'offboard', 'reconcile')),
    state        TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_run_at  TIMESTAMPTZ NOT NULL,
    lease_owner  TEXT,
    lease_until  TIMESTAMPTZ,
    last_error   TEXT,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);

CREATE INDEX jobs_runnable ON jobs (state, next_run_at);
CREATE INDEX jobs_by_request ON jobs (request_id, created_at);
-- At most one unfinished job per request.
CREATE UNIQUE INDEX jobs_one_active_per_request ON jobs (request_id) WHERE state IN ('queued', 'running');

-- The steps a job has finished; a step is recorded in the transaction that checks the lease.
CREATE TABLE job_steps (
    job_id      UUID NOT NULL REFERENCES jobs (id),
    step        TEXT NOT NULL,
    finished_at TIMESTAMPTZ NOT NULL,
    detail      JSONB NOT NULL,
    PRIMARY KEY (job_id, step)
);

-- The latest drift check of each provisioned service: the Vault changes that would bring its
-- objects back to the approved state (an empty list: in sync).
CREATE TABLE service_drift (
    request_id UUID PRIMARY KEY REFERENCES onboarding_requests (id),
    checked_at TIMESTAMPTZ NOT NULL,
    changes    JSONB NOT NULL
);
