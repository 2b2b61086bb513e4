"""AuditLog repository: the append-only audit_log table."""

from __future__ import annotations

import asyncpg

from ledger.codec import Connection, dump_json, load_json_object
from ledger.repository import Repository, write_or_current
from trading.models import AuditEntry, AuditRow

_INSERT = """
INSERT INTO audit_log (event_key, actor, action, reason, trade_id, detail)
VALUES ($1, $2, $3, $4, $5, $6::jsonb)
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
    values = dict(record)
    return AuditRow(**values | {"detail": load_json_object(values["detail"])})


async def insert_audit(conn: Connection, entry: AuditEntry) -> AuditRow:
    """Append an entry on `conn` (inside the caller's transaction); idempotent by event_key."""
    args = (
        entry.event_key,
        entry.actor,
        entry.action,
        entry.reason,
        entry.trade_id,
        dump_json(entry.detail),
    )
    record, _ = await write_or_current(conn, _INSERT, _BY_KEY, args, "audit row")
    return _row(record)


class AuditLog(Repository):
    """Append and read audit records; a repeated event_key returns the first row."""

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
