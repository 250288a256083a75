-- The Vault objects meshport created (or an admin adopted) that carry no owner of their own:
-- ACL policies, Kubernetes-auth roles, PKI roles, named by API path (`sys/policies/acl/<name>`,
-- `auth/<mount>/role/<name>`, `<pki>/roles/<name>`), and KV secrets an admin adopted
-- (`<kv>/metadata/<path>`; created KV secrets carry `owner` in their custom_metadata). meshport
-- overwrites or deletes an existing object only when it is recorded here for that service.
CREATE TABLE vault_objects (
    path         TEXT PRIMARY KEY NOT NULL,
    -- `<namespace>/<service>`.
    owner        TEXT NOT NULL,
    recorded_at  TIMESTAMPTZ NOT NULL,
    -- Who adopted it (user id, or the operator's name at the command line); NULL when meshport
    -- created it.
    adopted_by   TEXT
);

CREATE INDEX vault_objects_by_owner ON vault_objects (owner);
