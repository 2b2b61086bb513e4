-- Options (issue 14): one row per option structure (an iron condor), written by its
-- OptionTradeWorkflow at each status change and by reconcile (adoptions, ghosts).
-- Prices are per share; credit is what opening took in, exit_debit what closing paid;
-- max_loss and realized_pnl are dollars for the whole position (x100 x qty).
-- status_rank orders the statuses (PENDING_ENTRY 0, OPEN 1, CLOSING 2, CLOSED and
-- ENTRY_FAILED 3): a write never moves a row back, and a closed row never moves.
CREATE TABLE option_trades (
    id            TEXT PRIMARY KEY,               -- workflow id is option-trade-<id>
    underlying    TEXT NOT NULL,
    strategy      TEXT NOT NULL DEFAULT 'iron_condor',
    origin        TEXT NOT NULL DEFAULT 'internal' CHECK (origin IN ('internal', 'external')),
    status        TEXT NOT NULL CHECK (status IN
                  ('PENDING_ENTRY', 'OPEN', 'CLOSING', 'CLOSED', 'ENTRY_FAILED')),
    status_rank   SMALLINT NOT NULL,
    expiry        DATE NOT NULL,
    qty           INTEGER NOT NULL CHECK (qty > 0),
    legs          JSONB NOT NULL,                 -- [{"symbol", "side", "ratio_qty"}]
    width         NUMERIC NOT NULL,
    credit        NUMERIC,
    max_loss      NUMERIC NOT NULL,
    exit_debit    NUMERIC,
    exit_reason   TEXT,
    realized_pnl  NUMERIC,
    note          TEXT NOT NULL DEFAULT '',
    workflow_id   TEXT NOT NULL,
    opened_at     TIMESTAMPTZ,
    closed_at     TIMESTAMPTZ,
    status_at     TIMESTAMPTZ NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX option_trades_open ON option_trades (created_at) WHERE closed_at IS NULL;
