"""Signals repository: idempotent inserts, leased claims for scoring, a final SCORED or ERROR."""

from __future__ import annotations

import asyncpg

from ledger.codec import dump_json, load_json_object
from ledger.repository import Repository
from trading import ledger_records as records

_COLUMNS = """
    id, signal_key, symbol, strategy, side, status, features, score, confidence, attempts,
    last_error, claimed_until, created_at, scored_at, updated_at
"""

_INSERT = f"""
INSERT INTO signals (signal_key, symbol, strategy, side, features, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5::jsonb, COALESCE($6, now()), COALESCE($6, now()))
ON CONFLICT (signal_key) DO NOTHING
RETURNING {_COLUMNS}
"""
_BY_KEY = f"SELECT {_COLUMNS} FROM signals WHERE signal_key = $1"

# SKIP LOCKED keeps two drains claiming at the same moment apart; the lease keeps them apart
# afterwards (a claimed signal stays PENDING while it is scored) and lapses if a drain dies.
_CLAIM = """
WITH claimable AS (
    SELECT id FROM signals
    WHERE status = 'PENDING' AND attempts < $2
      AND (claimed_until IS NULL OR claimed_until < now())
    ORDER BY created_at, id
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE signals AS s SET
    attempts = s.attempts + 1,
    claimed_until = now() + $3::int * interval '1 second',
    updated_at = now()
FROM claimable WHERE s.id = claimable.id
RETURNING s.id, s.signal_key, s.symbol, s.strategy, s.side, s.status, s.features, s.score,
          s.confidence, s.attempts, s.last_error, s.claimed_until, s.created_at, s.scored_at,
          s.updated_at
"""

# Only a PENDING signal takes an outcome: the first SCORED or ERROR is final.
_SCORED = f"""
UPDATE signals SET status = 'SCORED', score = $2, confidence = $3, scored_at = now(),
                   claimed_until = NULL, updated_at = now()
WHERE signal_key = $1 AND status = 'PENDING'
RETURNING {_COLUMNS}
"""
_FAILED = f"""
UPDATE signals SET status = 'ERROR', last_error = $2, claimed_until = NULL, updated_at = now()
WHERE signal_key = $1 AND status = 'PENDING'
RETURNING {_COLUMNS}
"""

# Signals under a live claim are left to the drain that holds them.
_EXPIRE = """
UPDATE signals SET
    status = 'ERROR',
    last_error = CASE
        WHEN attempts >= $1 THEN format('gave up after %s scoring attempts', attempts)
        ELSE format('still pending after %s s', $2::int)
    END,
    claimed_until = NULL,
    updated_at = now()
WHERE status = 'PENDING'
  AND (claimed_until IS NULL OR claimed_until < now())
  AND (attempts >= $1 OR created_at < now() - $2::int * interval '1 second')
RETURNING signal_key
"""

_FUNNEL = """
SELECT
    count(*) AS created,
    count(*) FILTER (WHERE status = 'SCORED') AS scored,
    count(*) FILTER (WHERE status = 'ERROR') AS error,
    count(*) FILTER (WHERE status = 'PENDING') AS pending,
    count(*) FILTER (WHERE recent) AS recent_created,
    count(*) FILTER (WHERE recent AND status = 'SCORED') AS recent_scored,
    count(*) FILTER (WHERE recent AND status = 'ERROR') AS recent_error,
    count(*) FILTER (WHERE recent AND status = 'PENDING') AS recent_pending
FROM (
    SELECT status, created_at >= now() - $1::int * interval '1 hour' AS recent FROM signals
) AS s
"""


_OLDEST_PENDING = """
SELECT extract(epoch FROM now() - min(created_at)) FROM signals WHERE status = 'PENDING'
"""
# Both read only PENDING rows through signals_pending_idx (the funnel reads the whole table).
_PENDING = """
SELECT count(*), extract(epoch FROM now() - min(created_at)) FROM signals
WHERE status = 'PENDING'
"""


def _signal(record: asyncpg.Record) -> records.SignalRecord:
    values = dict(record)
    return records.SignalRecord(**values | {"features": load_json_object(values["features"])})


class Signals(Repository):
    """Insert signals once, hand them to one drain at a time, record one outcome each."""

    async def insert(self, cmd: records.SignalCreate) -> records.SignalWriteResult:
        """Insert the signal PENDING; with its key already stored, return the stored row."""
        return await self._write(
            _INSERT,
            cmd.signal_key,
            cmd.symbol,
            cmd.strategy,
            cmd.side.value,
            dump_json(cmd.features),
            cmd.created_at,
        )

    async def claim(self, cmd: records.SignalClaim) -> list[records.SignalRecord]:
        """Claim up to `limit` unclaimed PENDING signals under the attempts cap, oldest first."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(_CLAIM, cmd.limit, cmd.max_attempts, cmd.lease_seconds)
        claimed = [_signal(r) for r in rows]
        return sorted(claimed, key=lambda s: (s.created_at, s.id))

    async def mark_scored(self, cmd: records.SignalScored) -> records.SignalWriteResult:
        """Record the score of a PENDING signal; otherwise return it unchanged."""
        return await self._write(_SCORED, cmd.signal_key, cmd.score, cmd.confidence)

    async def mark_error(self, cmd: records.SignalFailed) -> records.SignalWriteResult:
        """End a PENDING signal in ERROR; otherwise return it unchanged."""
        return await self._write(_FAILED, cmd.signal_key, cmd.reason)

    async def expire(self, cmd: records.SignalExpiry) -> list[str]:
        """End in ERROR unclaimed PENDING signals past the attempts cap or maximum age."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(_EXPIRE, cmd.max_attempts, cmd.max_age_seconds)
        return sorted(r["signal_key"] for r in rows)

    async def get(self, signal_key: str) -> records.SignalRecord | None:
        """The signal with this key, or None."""
        record = await self._pool.fetchrow(_BY_KEY, signal_key)
        return _signal(record) if record else None

    async def funnel(self, window_hours: int) -> records.SignalFunnel:
        """How many signals were created, scored, errored and still pending."""
        row = await self._pool.fetchrow(_FUNNEL, window_hours)
        assert row is not None
        return records.SignalFunnel(
            window_hours=window_hours,
            recent=records.SignalCounts(
                created=row["recent_created"],
                scored=row["recent_scored"],
                error=row["recent_error"],
                pending=row["recent_pending"],
            ),
            all_time=records.SignalCounts(
                created=row["created"],
                scored=row["scored"],
                error=row["error"],
                pending=row["pending"],
            ),
        )

    async def pending(self) -> tuple[int, float | None]:
        """How many signals are PENDING, and the oldest one's age in seconds (None: none)."""
        row = await self._pool.fetchrow(_PENDING)
        assert row is not None
        return int(row[0]), None if row[1] is None else float(row[1])

    async def oldest_pending_age_s(self) -> float | None:
        """Seconds since the oldest PENDING signal was created (None when none is pending)."""
        age = await self._pool.fetchval(_OLDEST_PENDING)
        return None if age is None else float(age)

    async def _write(self, sql: str, signal_key: str, *args: object) -> records.SignalWriteResult:
        record, applied = await self._write_once(sql, _BY_KEY, (signal_key, *args), "signal")
        return records.SignalWriteResult(signal=_signal(record), applied=applied)
