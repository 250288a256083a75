-- People who signed in, keyed by their identity provider's issuer and subject.
CREATE TABLE users (
    id            BLOB PRIMARY KEY NOT NULL,
    issuer        TEXT NOT NULL,
    subject       TEXT NOT NULL,
    email         TEXT NOT NULL,
    display_name  TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    last_login_at TEXT NOT NULL,
    UNIQUE (issuer, subject)
);

-- One request to onboard a service to the mesh. `spec` is the submitted form as JSON and never
-- holds a secret value: those go to Vault only.
CREATE TABLE onboarding_requests (
    id            BLOB PRIMARY KEY NOT NULL,
    service_name  TEXT NOT NULL,
    namespace     TEXT NOT NULL,
    team          TEXT NOT NULL,
    requested_by  BLOB NOT NULL REFERENCES users (id),
    justification TEXT NOT NULL,
    spec          TEXT NOT NULL CHECK (json_valid(spec)),
    status        TEXT NOT NULL CHECK (status IN ('submitted', 'approved', 'rejected', 'provisioning',
                                                  'pr_open', 'merged', 'failed', 'offboarded')),
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);

CREATE INDEX onboarding_requests_by_team ON onboarding_requests (team, created_at);
CREATE INDEX onboarding_requests_by_requester ON onboarding_requests (requested_by, created_at);
CREATE INDEX onboarding_requests_by_service ON onboarding_requests (namespace, service_name);
