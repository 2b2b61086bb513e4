-- Prelive (issue 13): every `starter.py prelive` run, so a live worker can ask whether the
-- last run for its configuration passed before it starts.
-- config_digest: a digest of the non-secret settings that matter for live money (trading
--   mode, paper flag, broker endpoint URLs, a digest of the key id - never a key itself).
-- checks: the run's checks as [{"name", "passed", "reason"}], in the order they ran.
CREATE TABLE prelive_runs (
    id            BIGSERIAL PRIMARY KEY,
    at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    config_digest TEXT NOT NULL,
    passed        BOOLEAN NOT NULL,
    checks        JSONB NOT NULL
);

CREATE INDEX prelive_runs_by_config ON prelive_runs (config_digest, at DESC);
