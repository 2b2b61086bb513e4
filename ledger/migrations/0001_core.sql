-- Core ledger tables. Money and quantities are NUMERIC (exact decimals).

CREATE TABLE signals (
    id              BIGSERIAL PRIMARY KEY,
    signal_key      TEXT NOT NULL UNIQUE,          -- idempotency key from the producer
    symbol          TEXT NOT NULL,
    strategy        TEXT NOT NULL,
    side            TEXT NOT NULL DEFAULT 'buy' CHECK (side IN ('buy', 'sell')),
    status          TEXT NOT NULL DEFAULT 'PENDING'
                    CHECK (status IN ('PENDING', 'SCORED', 'ERROR')),
    features        JSONB NOT NULL DEFAULT '{}'::jsonb,
    score           NUMERIC,
    confidence      NUMERIC,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    scored_at       TIMESTAMPTZ,
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX signals_pending_idx ON signals (created_at) WHERE status = 'PENDING';

CREATE TABLE trades (
    id              TEXT PRIMARY KEY,              -- trade id; workflow id is trade-<id>
    symbol          TEXT NOT NULL,
    side            TEXT NOT NULL DEFAULT 'long' CHECK (side IN ('long', 'short')),
    origin          TEXT NOT NULL DEFAULT 'internal' CHECK (origin IN ('internal', 'external')),
    status          TEXT NOT NULL,
    qty             NUMERIC NOT NULL DEFAULT 0,
    entry_price     NUMERIC,
    exit_price      NUMERIC,
    stop_price      NUMERIC,
    take_profit_price NUMERIC,
    stop_order_id   TEXT,
    take_profit_order_id TEXT,
    exit_intent     JSONB,
    close_reason    TEXT,
    realized_pnl    NUMERIC,
    signal_id       BIGINT REFERENCES signals (id),
    workflow_id     TEXT NOT NULL,
    opened_at       TIMESTAMPTZ,
    closed_at       TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX trades_open_idx ON trades (symbol) WHERE closed_at IS NULL;

CREATE TABLE orders (
    id              BIGSERIAL PRIMARY KEY,
    client_order_id TEXT NOT NULL UNIQUE CHECK (length(client_order_id) <= 48),
    broker_order_id TEXT UNIQUE,
    trade_id        TEXT REFERENCES trades (id),
    role            TEXT NOT NULL CHECK (role IN ('entry', 'stop', 'take_profit', 'exit')),
    symbol          TEXT NOT NULL,
    side            TEXT NOT NULL CHECK (side IN ('buy', 'sell')),
    order_type      TEXT NOT NULL,
    qty             NUMERIC NOT NULL,
    limit_price     NUMERIC,
    stop_price      NUMERIC,
    status          TEXT NOT NULL,
    filled_qty      NUMERIC NOT NULL DEFAULT 0,
    filled_avg_price NUMERIC,
    submitted_at    TIMESTAMPTZ,
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX orders_trade_idx ON orders (trade_id);

CREATE TABLE audit_log (
    id              BIGSERIAL PRIMARY KEY,
    at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    actor           TEXT NOT NULL,                 -- who: workflow id, cli user, schedule
    action          TEXT NOT NULL,                 -- what
    reason          TEXT NOT NULL DEFAULT '',      -- why
    trade_id        TEXT,
    detail          JSONB NOT NULL DEFAULT '{}'::jsonb,
    event_key       TEXT UNIQUE                    -- idempotency key for retried writes
);

-- The audit log is append-only: updates and deletes are refused.
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only (% refused)', TG_OP;
END;
$$;
CREATE TRIGGER audit_log_no_update_delete
    BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

CREATE TABLE risk_events (
    id              BIGSERIAL PRIMARY KEY,
    at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    kind            TEXT NOT NULL,
    severity        TEXT NOT NULL DEFAULT 'warning' CHECK (severity IN ('info', 'warning', 'critical')),
    trade_id        TEXT,
    symbol          TEXT,
    detail          JSONB NOT NULL DEFAULT '{}'::jsonb,
    event_key       TEXT UNIQUE
);

CREATE TABLE reconcile_runs (
    id              BIGSERIAL PRIMARY KEY,
    run_id          TEXT NOT NULL UNIQUE,
    source          TEXT NOT NULL,
    dry_run         BOOLEAN NOT NULL DEFAULT false,
    started_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at     TIMESTAMPTZ,
    checked         INTEGER NOT NULL DEFAULT 0,
    closed          INTEGER NOT NULL DEFAULT 0,
    adopted         INTEGER NOT NULL DEFAULT 0,
    synced          INTEGER NOT NULL DEFAULT 0,
    ok              BOOLEAN,
    error           TEXT,
    duration_ms     INTEGER
);

CREATE TABLE entry_runs (
    id              BIGSERIAL PRIMARY KEY,
    run_id          TEXT NOT NULL UNIQUE,
    at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    entered         INTEGER NOT NULL DEFAULT 0,
    skipped         INTEGER NOT NULL DEFAULT 0,
    reason          TEXT NOT NULL DEFAULT '',
    detail          TEXT NOT NULL DEFAULT ''
);
