-- Alerts to people (issue 13): one row per alerting event, the record that makes a notice
-- go out once however often the workflows' retries, replays and restarts ask for it.
-- notifications: event_key is the event's stable key (`halt:<change id>`, ...); sent_at is
--   set in the same transaction that held the row while the webhook accepted the message,
--   so a row with sent_at is never sent again. attempts and last_error tell what went wrong.
-- uncovered_positions: each long position without an active stop, since when (the poll that
--   first saw it), so an episode keeps one start time across polls, workers and runs.
CREATE TABLE notifications (
    event_key   TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    severity    TEXT NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    sent_at     TIMESTAMPTZ NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT NULL
);

CREATE INDEX notifications_unsent ON notifications (created_at) WHERE sent_at IS NULL;

CREATE TABLE uncovered_positions (
    symbol      TEXT PRIMARY KEY,
    since       TIMESTAMPTZ NOT NULL,
    qty         NUMERIC NOT NULL,
    last_seen   TIMESTAMPTZ NOT NULL
);
