"""AuditLog repository: the append-only audit_log table."""

from __future__ import annotations

import json

import asyncpg

from ledger.codec import Connection
from trading.models import AuditEntry, AuditRow

_INSERT = """
INSERT INTO audit_log (actor, action, reason, trade_id, detail, event_key)
VALUES ($1, $2, $3, $4, $5::jsonb, $6)
ON CONFLICT (event_key) DO NOTHING
RETURNING id, at, actor, action, reason, trade_id, detail, event_key
"""
_BY_KEY = """
SELECT id, at, actor, action, reason, trade_id, detail, event_key
FROM audit_log WHERE event_key = $1
"""
_BY_ID = """
SELECT id, at, actor, action, reason, trade_id, detail, event_key
FROM audit_log WHERE id = $1
"""
_RECENT = """
SELECT id, at, actor, action, reason, trade_id, detail, event_key
FROM audit_log ORDER BY id DESC LIMIT $1
"""


def _row(record: asyncpg.Record) -> AuditRow:
    detail = record["detail"]
    return AuditRow(
        id=record["id"],
        at=record["at"],
        actor=record["actor"],
        action=record["action"],
        reason=record["reason"],
        trade_id=record["trade_id"],
        detail=json.loads(detail) if isinstance(detail, str) else detail,
        event_key=record["event_key"],
    )


async def insert_audit(conn: Connection, entry: AuditEntry) -> AuditRow:
    """Append an entry on `conn` (inside the caller's transaction); idempotent by event_key."""
    record = await conn.fetchrow(
        _INSERT,
        entry.actor,
        entry.action,
        entry.reason,
        entry.trade_id,
        json.dumps(entry.detail),
        entry.event_key,
    )
    if record is None:
        record = await conn.fetchrow(_BY_KEY, entry.event_key)
    assert record is not None
    return _row(record)


class AuditLog:
    """Append and read audit records; a repeated event_key returns the first row."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def append(self, entry: AuditEntry) -> AuditRow:
        """Append an entry; with an event_key already stored, return that row instead."""
        async with self._pool.acquire() as conn, conn.transaction():
            return await insert_audit(conn, entry)

    async def get(self, audit_id: int) -> AuditRow | None:
        """The row with this id, or None."""
        record = await self._pool.fetchrow(_BY_ID, audit_id)
        return _row(record) if record else None

    async def recent(self, limit: int = 20) -> list[AuditRow]:
        """The newest rows first."""
        return [_row(r) for r in await self._pool.fetch(_RECENT, limit)]
