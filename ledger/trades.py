"""Trades repository: one row per trade, idempotent writes, newest-wins guards, audited ends."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import asyncpg

from ledger.audit import insert_audit
from ledger.codec import Connection, dump_json, load_json
from ledger.repository import Repository, write_or_current
from trading import ledger_records as records
from trading.models import AuditEntry, JsonScalar

_COLUMNS = """
    id, symbol, side, origin, status, status_at, qty, entry_price, exit_price, stop_price,
    take_profit_price, stop_order_id, take_profit_order_id, protected_at, exit_intent,
    exit_intent_at, close_reason, realized_pnl, signal_id, workflow_id, opened_at, closed_at,
    created_at, updated_at
"""

_BY_ID = f"SELECT {_COLUMNS} FROM trades WHERE id = $1"

_CREATE = f"""
INSERT INTO trades (id, symbol, side, origin, status, status_at, qty, entry_price, signal_id,
                    workflow_id, opened_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
        CASE WHEN $7::numeric > 0 THEN $6::timestamptz END)
ON CONFLICT (id) DO NOTHING
RETURNING {_COLUMNS}
"""

# Newest wins: a transition older than (or as old as) the stored status is stale.
# A closed trade never moves again.
_TRANSITION = f"""
UPDATE trades SET status = $2, status_at = $3, updated_at = now()
WHERE id = $1 AND closed_at IS NULL AND (status_at IS NULL OR status_at < $3)
RETURNING {_COLUMNS}
"""

# Entry fills are cumulative, so the largest quantity is the newest; opened_at is the
# earliest fill. Both are order-independent, so a late fill after a close still lands.
_ENTRY_FILL = f"""
UPDATE trades SET
    qty = GREATEST(qty, $2),
    entry_price = CASE WHEN $2 > qty THEN $3 ELSE entry_price END,
    opened_at = LEAST(opened_at, $4),
    updated_at = now()
WHERE id = $1 AND ($2 > qty OR opened_at IS NULL OR $4 < opened_at)
RETURNING {_COLUMNS}
"""

_PROTECTION = f"""
UPDATE trades SET
    stop_price = $2, stop_order_id = $3, take_profit_price = $4, take_profit_order_id = $5,
    protected_at = $6, updated_at = now()
WHERE id = $1 AND (protected_at IS NULL OR protected_at < $6)
RETURNING {_COLUMNS}
"""

_EXIT_INTENT = f"""
UPDATE trades SET exit_intent = $2::jsonb, exit_intent_at = $3, updated_at = now()
WHERE id = $1 AND (exit_intent_at IS NULL OR exit_intent_at < $3)
RETURNING {_COLUMNS}
"""

# The first close wins; a later one (retry, duplicate event, reconcile race) changes nothing.
_CLOSE = f"""
UPDATE trades SET
    status = $2, status_at = $6, exit_price = $3, close_reason = $4, realized_pnl = $5,
    closed_at = $6, updated_at = now()
WHERE id = $1 AND closed_at IS NULL
RETURNING {_COLUMNS}
"""

_OPEN = f"""
SELECT {_COLUMNS} FROM trades
WHERE closed_at IS NULL AND ($1::text IS NULL OR symbol = $1)
ORDER BY created_at, id
"""


def _trade(record: asyncpg.Record) -> records.TradeRecord:
    values = dict(record)
    intent = load_json(values.pop("exit_intent"))
    return records.TradeRecord(
        **values,
        exit_intent=records.ExitIntent.model_validate(intent) if intent is not None else None,
    )


def _audit(
    trade: records.TradeRecord, action: str, reason: str, detail: dict[str, JsonScalar], event: str
) -> AuditEntry:
    """The audit row of a write that changed the trade, idempotent by `trade:<id>:<event>`."""
    return AuditEntry(
        actor=trade.workflow_id,
        action=action,
        reason=reason,
        trade_id=trade.id,
        detail=detail,
        event_key=f"trade:{trade.id}:{event}",
    )


class Trades(Repository):
    """Create, move, protect and close trades; every write is idempotent and stale-safe."""

    async def create(self, cmd: records.TradeCreate) -> records.TradeWriteResult:
        """Insert the trade; with its id already stored, return the stored row unchanged."""
        args = (
            cmd.trade_id,
            cmd.symbol,
            cmd.side.value,
            cmd.origin.value,
            cmd.status.value,
            cmd.as_of,
            cmd.qty,
            cmd.entry_price,
            cmd.signal_id,
            cmd.workflow_id,
        )
        return await self._write(
            _CREATE,
            args,
            lambda trade: _audit(
                trade,
                "trade_created",
                f"{trade.origin.value} {trade.side.value} {trade.symbol}",
                {"status": trade.status.value, "qty": str(trade.qty)},
                "created",
            ),
        )

    async def transition(self, cmd: records.TradeTransition) -> records.TradeWriteResult:
        """Move a live trade to a new status unless the stored status is as new or newer."""
        as_of = cmd.as_of.isoformat()
        return await self._write(
            _TRANSITION,
            (cmd.trade_id, cmd.status.value, cmd.as_of),
            lambda trade: _audit(
                trade,
                "trade_status",
                trade.status.value,
                {"as_of": as_of},
                f"status:{trade.status.value}:{as_of}",
            ),
        )

    async def record_entry_fill(self, cmd: records.TradeEntryFill) -> records.TradeWriteResult:
        """Record the cumulative entry fill; a smaller (older) fill changes nothing."""
        return await self._write(_ENTRY_FILL, (cmd.trade_id, cmd.qty, cmd.avg_price, cmd.filled_at))

    async def record_protection(self, cmd: records.TradeProtection) -> records.TradeWriteResult:
        """Record the stop (and take-profit) protecting the trade, newest as_of wins."""
        return await self._write(
            _PROTECTION,
            (
                cmd.trade_id,
                cmd.stop_price,
                cmd.stop_order_id,
                cmd.take_profit_price,
                cmd.take_profit_order_id,
                cmd.as_of,
            ),
        )

    async def record_exit_intent(self, cmd: records.TradeExitIntent) -> records.TradeWriteResult:
        """Record or withdraw the exit intent, newest as_of wins."""
        intent = cmd.exit_intent.model_dump(mode="json") if cmd.exit_intent else None
        return await self._write(_EXIT_INTENT, (cmd.trade_id, dump_json(intent), cmd.as_of))

    async def close(self, cmd: records.TradeClose) -> records.TradeWriteResult:
        """Close the trade; when it is already closed, return the first close unchanged."""
        async with self._pool.acquire() as conn, conn.transaction():
            return await _close_on(conn, cmd, None)

    async def close_all(
        self, closes: Sequence[tuple[records.TradeClose, AuditEntry | None]]
    ) -> list[records.TradeWriteResult]:
        """Close several trades in one transaction, each as `close` would; results in order.

        Each may carry the closer's own audit row, appended with the trade's when that close
        applies. Rows are written in trade-id order, so two batches never deadlock.
        """
        order = sorted(range(len(closes)), key=lambda i: closes[i][0].trade_id)
        written: dict[int, records.TradeWriteResult] = {}
        async with self._pool.acquire() as conn, conn.transaction():
            for i in order:
                written[i] = await _close_on(conn, *closes[i])
        return [written[i] for i in range(len(closes))]

    async def get(self, trade_id: str) -> records.TradeRecord | None:
        """The trade with this id, or None."""
        record = await self._pool.fetchrow(_BY_ID, trade_id)
        return _trade(record) if record else None

    async def list_open(self, symbol: str | None = None) -> list[records.TradeRecord]:
        """Trades not yet closed (optionally of one symbol), oldest first."""
        return [_trade(r) for r in await self._pool.fetch(_OPEN, symbol)]

    async def _write(
        self,
        sql: str,
        args: Sequence[object],
        audit: Callable[[records.TradeRecord], AuditEntry] | None = None,
    ) -> records.TradeWriteResult:
        """Run one trade write; when it applies, append its audit row in the same transaction."""
        async with self._pool.acquire() as conn, conn.transaction():
            return await _write_on(conn, sql, args, audit)


async def _write_on(
    conn: Connection,
    sql: str,
    args: Sequence[object],
    audit: Callable[[records.TradeRecord], AuditEntry] | None = None,
    also: AuditEntry | None = None,
) -> records.TradeWriteResult:
    """One trade write on `conn`; when it applies, its audit row (and `also`) go with it."""
    record, applied = await write_or_current(conn, sql, _BY_ID, args, "trade")
    trade = _trade(record)
    if applied and audit is not None:
        await insert_audit(conn, audit(trade))
    if applied and also is not None:
        await insert_audit(conn, also)
    return records.TradeWriteResult(trade=trade, applied=applied)


async def _close_on(
    conn: Connection, cmd: records.TradeClose, also: AuditEntry | None
) -> records.TradeWriteResult:
    """Close on `conn`: the first close wins and is audited (with `also`, the closer's row)."""
    status = records.terminal_status_for(cmd.close_reason)
    args = (
        cmd.trade_id,
        status.value,
        cmd.exit_price,
        cmd.close_reason.value,
        cmd.realized_pnl,
        cmd.closed_at,
    )
    detail: dict[str, JsonScalar] = {
        "status": status.value,
        "exit_price": None if cmd.exit_price is None else str(cmd.exit_price),
        "realized_pnl": None if cmd.realized_pnl is None else str(cmd.realized_pnl),
    }
    return await _write_on(
        conn,
        _CLOSE,
        args,
        lambda trade: _audit(trade, "trade_closed", cmd.close_reason.value, detail, "closed"),
        also,
    )
