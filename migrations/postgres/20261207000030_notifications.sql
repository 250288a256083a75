-- Notifications (#26): one row per message to one recipient on one channel, rendered when its
-- event happened (in the event's transaction) and delivered by whichever meshport process holds
-- its lease, like a job. The unique key suppresses a second row for the same event.
CREATE TABLE notifications (
    id          UUID PRIMARY KEY,
    event_key   TEXT NOT NULL,
    kind        TEXT NOT NULL,
    channel     TEXT NOT NULL CHECK (channel IN ('email', 'webhook')),
    -- An e-mail address, or the name of a configured webhook (`platform`, `team:<name>`).
    recipient   TEXT NOT NULL,
    user_id     UUID REFERENCES users (id),
    subject     TEXT NOT NULL,
    body_text   TEXT NOT NULL,
    body_html   TEXT NOT NULL,
    link        TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('queued', 'running', 'sent', 'failed')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    next_run_at TIMESTAMPTZ NOT NULL,
    lease_owner TEXT,
    lease_until TIMESTAMPTZ,
    last_error  TEXT,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    sent_at     TIMESTAMPTZ,
    UNIQUE (event_key, channel, recipient)
);
CREATE INDEX notifications_runnable ON notifications (state, next_run_at);

-- The kinds of notification a person does not want (their account page).
CREATE TABLE notification_mutes (
    user_id    UUID NOT NULL REFERENCES users (id),
    kind       TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, kind)
);
