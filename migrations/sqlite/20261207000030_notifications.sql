-- Notifications (#26): one row per message to one recipient on one channel, rendered when its
-- event happened (in the event's transaction) and delivered by whichever meshport process holds
-- its lease, like a job. The unique key suppresses a second row for the same event.
CREATE TABLE notifications (
    id          BLOB PRIMARY KEY NOT NULL,
    event_key   TEXT NOT NULL,
    kind        TEXT NOT NULL,
    channel     TEXT NOT NULL CHECK (channel IN ('email', 'webhook')),
    -- An e-mail address, or the name of a configured webhook (`platform`, `team:<name>`).
    recipient   TEXT NOT NULL,
    user_id     BLOB REFERENCES users (id),
    subject     TEXT NOT NULL,
    body_text   TEXT NOT NULL,
    body_html   TEXT NOT NULL,
    link        TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('queued', 'running', 'sent', 'failed')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    next_run_at TEXT NOT NULL,
    lease_owner TEXT,
    lease_until TEXT,
    last_error  TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    sent_at     TEXT,
    UNIQUE (event_key, channel, recipient)
);
CREATE INDEX notifications_runnable ON notifications (state, next_run_at);

-- The kinds of notification a person does not want (their account page).
CREATE TABLE notification_mutes (
    user_id    BLOB NOT NULL REFERENCES users (id),
    kind       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (user_id, kind)
);
