-- Guards for idempotent, order-independent ledger writes (extends 0001_core).

-- Signals: a claim lease, so two drains never hold the same signal and a crashed drain's
-- claim lapses (the signal is claimed again, attempts counting up to the cap).
ALTER TABLE signals ADD COLUMN claimed_until TIMESTAMPTZ;

-- Trades: statuses are a closed set; terminal statuses and closed_at go together.
-- *_at columns hold the deciding workflow's time of the newest applied write, so an
-- older (stale or retried) status, protection or exit intent never overwrites a newer one.
ALTER TABLE trades
    ADD COLUMN status_at      TIMESTAMPTZ,
    ADD COLUMN protected_at   TIMESTAMPTZ,
    ADD COLUMN exit_intent_at TIMESTAMPTZ,
    ADD CONSTRAINT trades_status_check CHECK (status IN (
        'PENDING_ENTRY', 'OPEN', 'EXIT_PLANNED', 'EXITING',
        'CLOSED', 'ENTRY_FAILED', 'ENTRY_CANCELLED')),
    ADD CONSTRAINT trades_closed_iff_terminal CHECK (
        (closed_at IS NOT NULL) = (status IN ('CLOSED', 'ENTRY_FAILED', 'ENTRY_CANCELLED')));

-- Orders: the broker's updated_at and a status progress rank order updates, so an older
-- update never overwrites a newer one whatever order they arrive in.
ALTER TABLE orders
    ADD COLUMN broker_updated_at TIMESTAMPTZ,
    ADD COLUMN status_rank       SMALLINT NOT NULL DEFAULT 0,
    ADD COLUMN created_at        TIMESTAMPTZ NOT NULL DEFAULT now();

-- Newest-first listings.
CREATE INDEX risk_events_at_idx ON risk_events (at DESC, id DESC);
CREATE INDEX reconcile_runs_started_idx ON reconcile_runs (started_at DESC, id DESC);
CREATE INDEX entry_runs_at_idx ON entry_runs (at DESC, id DESC);
CREATE INDEX signals_created_idx ON signals (created_at);
