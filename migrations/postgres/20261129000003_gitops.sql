-- Pull requests meshport opened in the GitOps repository, one per branch, and where each stands.
-- `kind` tells an onboarding (adds the service's manifests) from an offboarding (removes them).
CREATE TABLE pull_requests (
    id               UUID PRIMARY KEY,
    request_id       UUID NOT NULL REFERENCES onboarding_requests (id),
    kind             TEXT NOT NULL CHECK (kind IN ('onboarding', 'offboarding')),
    namespace        TEXT NOT NULL,
    service_name     TEXT NOT NULL,
    provider         TEXT NOT NULL CHECK (provider IN ('local', 'github', 'gitea', 'gitlab')),
    number           BIGINT NOT NULL,
    url              TEXT NOT NULL,
    branch           TEXT NOT NULL UNIQUE,
    head_sha         TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('open', 'merged', 'closed')),
    merge_commit_sha TEXT,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    UNIQUE (provider, number)
);

CREATE INDEX pull_requests_by_request ON pull_requests (request_id, created_at);
CREATE INDEX pull_requests_by_state ON pull_requests (state);

-- Webhook deliveries already applied, so a replayed delivery changes nothing.
CREATE TABLE webhook_deliveries (
    provider    TEXT NOT NULL,
    delivery_id TEXT NOT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (provider, delivery_id)
);
