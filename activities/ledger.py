"""LedgerActivities: ledger reads and idempotent writes, as Temporal activities."""

from __future__ import annotations

import asyncpg
from temporalio import activity

from ledger.audit import AuditLog
from trading.models import AuditEntry, AuditLookup, AuditRow


class LedgerActivities:
    """Activities over the ledger's asyncpg pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._audit = AuditLog(pool)

    @activity.defn
    async def append_audit(self, entry: AuditEntry) -> AuditRow:
        """Append an audit record (idempotent by event_key)."""
        row = await self._audit.append(entry)
        activity.logger.info(
            "audit %s by %s (trade %s) -> row %s", entry.action, entry.actor, entry.trade_id, row.id
        )
        return row

    @activity.defn
    async def get_audit(self, lookup: AuditLookup) -> AuditRow | None:
        """Read one audit record back."""
        return await self._audit.get(lookup.id)
