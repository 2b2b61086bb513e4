-- BrokerSync's last successful snapshot, kept where every worker can read it.
-- broker_view_poll: when the last successful poll read the broker (one row).
-- broker_view_symbols: each symbol's position and open orders as of that poll, with a digest
--   of both so a poll rewrites only what changed.
-- broker_view_deliveries: the digest each open trade was last told, so an unchanged trade
--   is not signalled again (quiet guards).
CREATE TABLE broker_view_poll (
    id          SMALLINT PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    observed_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE broker_view_symbols (
    symbol      TEXT PRIMARY KEY,
    qty         NUMERIC NOT NULL,
    open_orders JSONB NOT NULL,
    digest      TEXT NOT NULL
);

CREATE TABLE broker_view_deliveries (
    trade_id     TEXT PRIMARY KEY,
    digest       TEXT NOT NULL,
    delivered_at TIMESTAMPTZ NOT NULL
);
