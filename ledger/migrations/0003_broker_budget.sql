-- The account-wide broker-call budget (issue 11). Alpaca counts REST requests per API key, so
-- every process using the same keys (all workers, the CLI) counts its calls here and shares
-- one sliding 60 s window. `account` is a short SHA-256 digest of the trading URL and key id,
-- never the key. Rows older than a few minutes are pruned as calls are made.
CREATE TABLE broker_calls (
    id        BIGSERIAL PRIMARY KEY,
    account   TEXT        NOT NULL,
    at        TIMESTAMPTZ NOT NULL,
    priority  TEXT        NOT NULL CHECK (priority IN ('protect', 'trade', 'read')),
    slots     SMALLINT    NOT NULL DEFAULT 1 CHECK (slots > 0),
    call      TEXT        NOT NULL
);
CREATE INDEX broker_calls_account_at_idx ON broker_calls (account, at);

-- One row per account: a 429 recorded so every process waits for the reset, and the broker's
-- own count from the X-RateLimit-* headers of its latest answer.
CREATE TABLE broker_budget (
    account           TEXT PRIMARY KEY,
    blocked_until     TIMESTAMPTZ,
    blocked_reason    TEXT,
    broker_limit      INTEGER,
    broker_remaining  INTEGER,
    broker_reset_at   TIMESTAMPTZ,
    observed_at       TIMESTAMPTZ
);
