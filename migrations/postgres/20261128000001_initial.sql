-- People who signed in, keyed by their identity provider's issuer and subject.
CREATE TABLE users (
    id            UUID PRIMARY KEY,
    issuer        TEXT NOT NULL,
    subject       TEXT NOT NULL,
    email         TEXT NOT NULL,
    display_name  TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    last_login_at TIMESTAMPTZ NOT NULL,
    UNIQUE (issuer, subject)
);

-- One request to onboard a service to the mesh. `spec` is the submitted form as JSON and never
-- holds a secret value: those go to Vault only.
CREATE TABLE onboarding_requests (
    id            UUID PRIMARY KEY,
    service_name  TEXT NOT NULL,
    namespace     TEXT NOT NULL,
    team          TEXT NOT NULL,
    requested_by  UUID NOT NULL REFERENCES users (id),
    justification TEXT NOT NULL,
    spec          JSONB NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('submitted', 'approved', 'rejected', 'provisioning',
                                                  'pr_open', 'merged', 'failed', 'offboarded')),
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);

CREATE INDEX onboarding_requests_by_team ON onboarding_requests (team, created_at);
CREATE INDEX onboarding_requests_by_requester ON onboarding_requests (requested_by, created_at);
CREATE INDEX onboarding_requests_by_service ON onboarding_requests (namespace, service_name);
