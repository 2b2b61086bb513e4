"""Risk events repository: append-once by event_key, read newest first."""

from __future__ import annotations

import asyncpg

from ledger.codec import dump_json, load_json_object
from ledger.repository import Repository
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


class RiskEvents(Repository):
    """Record risk events once each and list the recent ones."""

    async def record(self, cmd: RiskEventCreate) -> RiskEventWriteResult:
        """Insert the event; with its event_key already stored, return the stored row."""
        record, applied = await self._write_once(
            _INSERT,
            _BY_KEY,
            (
                cmd.event_key,
                cmd.at,
                cmd.kind,
                cmd.severity.value,
                cmd.trade_id,
                cmd.symbol,
                dump_json(cmd.detail),
            ),
            "risk event",
        )
        return RiskEventWriteResult(event=_event(record), applied=applied)

    async def recent(self, limit: int) -> list[RiskEventRecord]:
        """The newest events first."""
        return [_event(r) for r in await self._pool.fetch(_RECENT, limit)]
