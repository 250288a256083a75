-- Access that follows the identity provider (#21).
-- A user an admin disabled, or the provider reported disabled: no sign-in, session or token
-- works until an admin enables them again.
ALTER TABLE users ADD COLUMN disabled_at TIMESTAMPTZ;
-- Why (shown to admins; never a secret).
ALTER TABLE users ADD COLUMN disabled_reason TEXT;
-- The provider's refresh token, sealed with AES-256-GCM (base64 of nonce and ciphertext), used
-- to re-check at the provider that the user is still active and still holds their groups.
ALTER TABLE users ADD COLUMN refresh_token TEXT;
-- When the provider last confirmed the user's groups (sign-in or re-validation).
ALTER TABLE users ADD COLUMN validated_at TIMESTAMPTZ;

-- One row per sign-in, so admins can list and revoke anyone's sessions. The id is kept in the
-- session's own data; the session cookie's value is never stored here.
CREATE TABLE user_sessions (
    id           UUID PRIMARY KEY,
    user_id      UUID NOT NULL REFERENCES users (id),
    method       TEXT NOT NULL,
    signed_in_at TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    revoked_at   TIMESTAMPTZ
);

CREATE INDEX user_sessions_by_user ON user_sessions (user_id, signed_in_at);
