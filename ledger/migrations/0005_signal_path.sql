-- Each signal's path after scoring: where the ranker put it, what the risk engine said and
-- what the market loop did with it (entered, added to a trade, or skipped with a reason).
-- The latest decision is kept on the signal; every decision is also in the audit log.
ALTER TABLE signals
    ADD COLUMN rank            INTEGER,
    ADD COLUMN rank_score      NUMERIC,
    ADD COLUMN decision        TEXT CHECK (decision IN ('entered', 'added', 'skipped')),
    ADD COLUMN decision_reason TEXT,
    ADD COLUMN decision_detail TEXT,
    ADD COLUMN decided_at      TIMESTAMPTZ,
    ADD COLUMN decided_run     TEXT,
    ADD COLUMN trade_id        TEXT;

CREATE INDEX signals_decided_idx ON signals (decided_at) WHERE decided_at IS NOT NULL;
