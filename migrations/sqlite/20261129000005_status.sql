-- The last state each status item was seen in, so an alert is sent once per transition into a
-- state that needs attention, by whichever meshport replica records the transition first.
CREATE TABLE status_states (
    item_key    TEXT PRIMARY KEY NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('ok', 'due_soon', 'overdue', 'failing', 'expired')),
    changed_at  TEXT NOT NULL
);
