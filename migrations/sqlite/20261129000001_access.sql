-- The roles and teams a user held at their latest sign-in (comma-separated). API tokens act
-- with the intersection of their own roles and these, so losing a group at the identity
-- provider takes effect on the owner's tokens at their next sign-in.
ALTER TABLE users ADD COLUMN roles TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN teams TEXT NOT NULL DEFAULT '';

-- Who decided on a request, when and why (four-eyes: never the requester; enforced in code).
ALTER TABLE onboarding_requests ADD COLUMN decided_by BLOB REFERENCES users (id);
ALTER TABLE onboarding_requests ADD COLUMN decided_at TEXT;
ALTER TABLE onboarding_requests ADD COLUMN decision_reason TEXT;

-- API tokens for automation. Only a SHA-256 hash of the token is kept; `roles` and `teams` are
-- comma-separated: a subset of the creator's roles, and their teams, when the token was made.
CREATE TABLE api_tokens (
    id           BLOB PRIMARY KEY NOT NULL,
    user_id      BLOB NOT NULL REFERENCES users (id),
    name         TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    roles        TEXT NOT NULL,
    teams        TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    revoked_at   TEXT,
    last_used_at TEXT
);

CREATE INDEX api_tokens_by_user ON api_tokens (user_id, created_at);

-- One live request per service: a second team cannot claim a service that is being onboarded
-- or runs (rejected and offboarded requests do not count).
CREATE UNIQUE INDEX onboarding_requests_one_live_per_service ON onboarding_requests (namespace, service_name)
    WHERE status NOT IN ('rejected', 'offboarded');
