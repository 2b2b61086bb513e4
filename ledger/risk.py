"""Risk events repository: append-once by event_key, read newest first."""

from __future__ import annotations

import asyncpg

from ledger.codec import dump_json, load_json_object
from trading.ledger_records import RiskEventCreate, RiskEventRecord, RiskEventWriteResult

_COLUMNS = "id, event_key, at, kind, severity, trade_id, symbol, detail"

_INSERT = f"""
INSERT INTO risk_events (event_key, at, kind, severity, trade_id, symbol, detail)
VALUES ($1, COALESCE($2, now()), $3, $4, $5, $6, $7::jsonb)
ON CONFLICT (event_key) DO NOTHING
RETURNING {_COLUMNS}
"""
_BY_KEY = f"SELECT {_COLUMNS} FROM risk_events WHERE event_key = $1"
_RECENT = f"SELECT {_COLUMNS} FROM risk_events ORDER BY at DESC, id DESC LIMIT $1"


def _event(record: asyncpg.Record) -> RiskEventRecord:
    values = dict(record)
    return RiskEventRecord(**values | {"detail": load_json_object(values["detail"])})


class RiskEvents:
    """Record risk events once each and list the recent ones."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def record(self, cmd: RiskEventCreate) -> RiskEventWriteResult:
        """Insert the event; with its event_key already stored, return the stored row."""
        async with self._pool.acquire() as conn, conn.transaction():
            record = await conn.fetchrow(
                _INSERT,
                cmd.event_key,
                cmd.at,
                cmd.kind,
                cmd.severity.value,
                cmd.trade_id,
                cmd.symbol,
                dump_json(cmd.detail),
            )
            applied = record is not None
            if record is None:
                record = await conn.fetchrow(_BY_KEY, cmd.event_key)
        assert record is not None
        return RiskEventWriteResult(event=_event(record), applied=applied)

    async def recent(self, limit: int) -> list[RiskEventRecord]:
        """The newest events first."""
        return [_event(r) for r in await self._pool.fetch(_RECENT, limit)]
