"""Orders repository: one row per client_order_id; newer broker state wins, in any order."""

from __future__ import annotations

import asyncpg

from ledger.repository import Repository
from trading.ledger_records import (
    LedgerRecordMissing,
    OrderRecord,
    OrderUpsert,
    OrderWriteResult,
    order_status_rank,
)

_COLUMNS = """
    id, client_order_id, broker_order_id, trade_id, role, symbol, side, order_type, qty,
    limit_price, stop_price, status, filled_qty, filled_avg_price, submitted_at,
    broker_updated_at, created_at, updated_at
"""

# The first write inserts the order's terms; later writes replace only its state, and only
# when they are newer by (broker updated_at, filled qty, status progress, status). That key
# orders every update totally, so any arrival order and any duplication end in one state.
_UPSERT = f"""
INSERT INTO orders AS o (
    client_order_id, trade_id, role, symbol, side, order_type, qty, limit_price, stop_price,
    status, status_rank, broker_order_id, filled_qty, filled_avg_price, submitted_at,
    broker_updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
ON CONFLICT (client_order_id) DO UPDATE SET
    status = EXCLUDED.status,
    status_rank = EXCLUDED.status_rank,
    broker_order_id = COALESCE(EXCLUDED.broker_order_id, o.broker_order_id),
    filled_qty = EXCLUDED.filled_qty,
    filled_avg_price = COALESCE(EXCLUDED.filled_avg_price, o.filled_avg_price),
    submitted_at = LEAST(o.submitted_at, EXCLUDED.submitted_at),
    broker_updated_at = EXCLUDED.broker_updated_at,
    updated_at = now()
WHERE (COALESCE(EXCLUDED.broker_updated_at, '-infinity'), EXCLUDED.filled_qty,
       EXCLUDED.status_rank, EXCLUDED.status)
    > (COALESCE(o.broker_updated_at, '-infinity'), o.filled_qty, o.status_rank, o.status)
RETURNING {_COLUMNS}
"""
_BY_CLIENT_ID = f"SELECT {_COLUMNS} FROM orders WHERE client_order_id = $1"
_OF_TRADE = f"SELECT {_COLUMNS} FROM orders WHERE trade_id = $1 ORDER BY created_at, id"


def _order(record: asyncpg.Record) -> OrderRecord:
    return OrderRecord(**dict(record))


class Orders(Repository):
    """Record orders and their broker state by client_order_id."""

    async def upsert(self, cmd: OrderUpsert) -> OrderWriteResult:
        """Insert the order, or apply its newer state; an older or repeated update is a no-op."""
        args = (
            cmd.client_order_id,
            cmd.trade_id,
            cmd.role.value,
            cmd.symbol,
            cmd.side.value,
            cmd.order_type.value,
            cmd.qty,
            cmd.limit_price,
            cmd.stop_price,
            cmd.status.value,
            order_status_rank(cmd.status),
            cmd.broker_order_id,
            cmd.filled_qty,
            cmd.filled_avg_price,
            cmd.submitted_at,
            cmd.broker_updated_at,
        )
        try:
            record, applied = await self._write_once(_UPSERT, _BY_CLIENT_ID, args, "order")
        except asyncpg.ForeignKeyViolationError as exc:
            raise LedgerRecordMissing(
                f"order {cmd.client_order_id}: no trade {cmd.trade_id!r} in the ledger"
            ) from exc
        return OrderWriteResult(order=_order(record), applied=applied)

    async def get(self, client_order_id: str) -> OrderRecord | None:
        """The order with this client_order_id, or None."""
        record = await self._pool.fetchrow(_BY_CLIENT_ID, client_order_id)
        return _order(record) if record else None

    async def of_trade(self, trade_id: str) -> list[OrderRecord]:
        """The trade's orders, oldest first."""
        return [_order(r) for r in await self._pool.fetch(_OF_TRADE, trade_id)]
