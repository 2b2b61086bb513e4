"""Option trades repository: one row per option structure, written forward only.

The workflow writes its row at every status change (`record`): the row moves only to a
status of equal or later rank (trading/options/records.py), a closed row never moves, and a
repeated write changes nothing, so retries and replays are harmless. Reconcile closes a
ghost (`close_ghost`, first close wins). Every change that moves the status is audited
under `option-trade:<id>:<status>`, once.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

from ledger.audit import insert_audit
from ledger.codec import dump_json, load_json
from ledger.repository import Repository, write_or_current
from trading.models import AuditEntry
from trading.options import records
from trading.options.trade_models import OptionLeg

_COLUMNS = """
    id, underlying, strategy, origin, status, expiry, qty, legs, width, credit, max_loss,
    exit_debit, exit_reason, realized_pnl, note, workflow_id, opened_at, closed_at, status_at,
    created_at, updated_at
"""

_BY_ID = f"SELECT {_COLUMNS} FROM option_trades WHERE id = $1"

# $5 status, $6 its rank, $17 the time the workflow saw it. A write of an earlier rank, or to
# a closed row, leaves the row alone; an open row takes the new numbers at the same rank
# (the units opened - a partly filled entry - the max loss and the note change with them).
_RECORD = f"""
INSERT INTO option_trades AS t (
    id, underlying, strategy, origin, status, status_rank, expiry, qty, legs, width, credit,
    max_loss, exit_debit, exit_reason, realized_pnl, note, status_at, workflow_id, opened_at,
    closed_at)
VALUES ($1, $2, $3, $4, $5, $6::smallint, $7, $8, $9::jsonb, $10, $11, $12, $13, $14, $15, $16, $17,
        $18, CASE WHEN $6::smallint >= 1 AND $11::numeric IS NOT NULL THEN $17::timestamptz END,
        CASE WHEN $6::smallint = 3 THEN $17::timestamptz END)
ON CONFLICT (id) DO UPDATE SET
    status = EXCLUDED.status, status_rank = EXCLUDED.status_rank, qty = EXCLUDED.qty,
    credit = EXCLUDED.credit,
    max_loss = EXCLUDED.max_loss, exit_debit = EXCLUDED.exit_debit,
    exit_reason = EXCLUDED.exit_reason, realized_pnl = EXCLUDED.realized_pnl,
    note = EXCLUDED.note, status_at = EXCLUDED.status_at,
    opened_at = COALESCE(t.opened_at, EXCLUDED.opened_at),
    closed_at = EXCLUDED.closed_at, updated_at = now()
WHERE t.closed_at IS NULL AND t.status_rank <= EXCLUDED.status_rank
  AND (t.status, t.qty, t.credit, t.max_loss, t.exit_debit, t.note)
      IS DISTINCT FROM (EXCLUDED.status, EXCLUDED.qty, EXCLUDED.credit, EXCLUDED.max_loss,
                        EXCLUDED.exit_debit, EXCLUDED.note)
RETURNING {_COLUMNS}
"""

# The first close wins.
_GHOST = f"""
UPDATE option_trades SET status = 'CLOSED', status_rank = 3, exit_reason = $2, note = $2,
    status_at = $3, closed_at = $3, updated_at = now()
WHERE id = $1 AND closed_at IS NULL
RETURNING {_COLUMNS}
"""

_OPEN = f"SELECT {_COLUMNS} FROM option_trades WHERE closed_at IS NULL ORDER BY created_at, id"
_CLAIMING = f"""
SELECT {_COLUMNS} FROM option_trades WHERE closed_at IS NULL OR closed_at >= $1
ORDER BY created_at, id
"""
_LATEST = f"SELECT {_COLUMNS} FROM option_trades ORDER BY created_at DESC, id LIMIT $1"


def _trade(record: asyncpg.Record) -> records.OptionTradeRecord:
    values = dict(record)
    legs = [OptionLeg.model_validate(leg) for leg in load_json(values.pop("legs")) or []]
    return records.OptionTradeRecord(**values, legs=legs)


def _audit(trade: records.OptionTradeRecord, action: str, event: str) -> AuditEntry:
    detail: dict[str, str | None] = {
        "status": trade.status.value,
        "underlying": trade.underlying,
        "credit": None if trade.credit is None else str(trade.credit),
        "max_loss": str(trade.max_loss),
        "exit_reason": trade.exit_reason,
        "realized_pnl": None if trade.realized_pnl is None else str(trade.realized_pnl),
    }
    return AuditEntry(
        actor=trade.workflow_id,
        action=action,
        reason=trade.note or trade.status.value,
        trade_id=trade.id,
        detail=detail,
        event_key=f"option-trade:{trade.id}:{event}",
    )


class OptionTrades(Repository):
    """Record, list and ghost-close option trades."""

    async def record(self, cmd: records.OptionTradeWrite) -> records.OptionTradeWriteResult:
        """Write the trade's row (insert, or move it forward); audited once per status."""
        args = (
            cmd.trade_id,
            cmd.underlying,
            cmd.strategy,
            cmd.origin.value,
            cmd.status.value,
            records.status_rank(cmd.status),
            cmd.expiry,
            cmd.qty,
            dump_json([leg.model_dump(mode="json") for leg in cmd.legs]),
            cmd.width,
            cmd.credit,
            cmd.max_loss,
            cmd.exit_debit,
            cmd.exit_reason,
            cmd.realized_pnl,
            cmd.note,
            cmd.at,
            cmd.workflow_id,
        )
        async with self._pool.acquire() as conn, conn.transaction():
            row, applied = await write_or_current(conn, _RECORD, _BY_ID, args, "option trade")
            trade = _trade(row)
            if applied:
                status = trade.status.value
                await insert_audit(conn, _audit(trade, f"option_trade_{status.lower()}", status))
        return records.OptionTradeWriteResult(trade=trade, applied=applied)

    async def close_ghost(self, cmd: records.OptionTradeGhost) -> records.OptionTradeWriteResult:
        """Close a row the broker and the workflows no longer back (first close wins)."""
        async with self._pool.acquire() as conn, conn.transaction():
            row, applied = await write_or_current(
                conn, _GHOST, _BY_ID, (cmd.trade_id, cmd.reason, cmd.at), "option trade"
            )
            trade = _trade(row)
            if applied:
                await insert_audit(conn, _audit(trade, "option_trade_ghost_closed", "ghost"))
        return records.OptionTradeWriteResult(trade=trade, applied=applied)

    async def get(self, trade_id: str) -> records.OptionTradeRecord | None:
        """The option trade with this id, or None."""
        record = await self._pool.fetchrow(_BY_ID, trade_id)
        return _trade(record) if record else None

    async def list(self, query: records.OptionTradesQuery) -> records.OptionTrades:
        """Open trades oldest first, or the latest `limit` trades newest first."""
        if query.open_only:
            rows = await self._pool.fetch(_OPEN)
        else:
            rows = await self._pool.fetch(_LATEST, query.limit)
        return records.OptionTrades(trades=[_trade(row) for row in rows])

    async def claiming(self, since: datetime) -> records.OptionTrades:
        """Open rows and rows closed at or after `since`, oldest first: every row that may
        claim legs a positions read taken at `since` saw (reconcile's options diff)."""
        rows = await self._pool.fetch(_CLAIMING, since)
        return records.OptionTrades(trades=[_trade(row) for row in rows])
