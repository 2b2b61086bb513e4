"""BrokerView repository: BrokerSync's last snapshot and what each trade was last told.

A poll writes only the symbols whose digest changed; a trade's self-check reads its symbol
and the poll time (no broker call); BrokerSync signals a trade when its digest differs from
the one it was last told, or while no stop covers its position.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from ledger.repository import Repository
from trading.broker_models import BrokerOrder
from trading.trade_models import PositionUpdate

_POLL = """
INSERT INTO broker_view_poll (id, observed_at) VALUES (1, $1)
ON CONFLICT (id) DO UPDATE SET observed_at = GREATEST(broker_view_poll.observed_at, $1)
"""
_LATEST = "SELECT observed_at FROM broker_view_poll WHERE id = 1 FOR UPDATE"
_DIGESTS = "SELECT symbol, digest FROM broker_view_symbols"
_UPSERT_SYMBOL = """
INSERT INTO broker_view_symbols (symbol, qty, open_orders, digest) VALUES ($1, $2, $3::jsonb, $4)
ON CONFLICT (symbol) DO UPDATE SET qty = $2, open_orders = $3::jsonb, digest = $4
"""
_DELETE_SYMBOLS = "DELETE FROM broker_view_symbols WHERE symbol = ANY($1::text[])"
_READ_SYMBOL = """
SELECT p.observed_at, s.qty, s.open_orders
FROM broker_view_poll p LEFT JOIN broker_view_symbols s ON s.symbol = $1
"""
_DELIVERED = "SELECT trade_id, digest FROM broker_view_deliveries WHERE trade_id = ANY($1::text[])"
_DELIVER = """
INSERT INTO broker_view_deliveries (trade_id, digest, delivered_at) VALUES ($1, $2, $3)
ON CONFLICT (trade_id) DO UPDATE SET digest = $2, delivered_at = $3
WHERE broker_view_deliveries.delivered_at <= $3
"""
_FORGET = "DELETE FROM broker_view_deliveries WHERE NOT (trade_id = ANY($1::text[]))"


@dataclass(frozen=True)
class SymbolView:
    """One symbol's position and open orders, as written by a poll."""

    symbol: str
    qty: Decimal
    open_orders: tuple[BrokerOrder, ...]
    digest: str


class BrokerView(Repository):
    """Read and write BrokerSync's stored snapshot and the trades' delivered digests."""

    async def store(self, observed_at: datetime, views: Iterable[SymbolView]) -> int:
        """Record a successful poll: rewrite changed symbols, drop vanished ones; rows written.

        Polls may overlap (a starting worker, a poll-now, a timed-out poll still running): one
        older than the stored poll writes nothing, so no row is stamped newer than its data.
        """
        by_symbol = {v.symbol: v for v in views}
        async with self._pool.acquire() as conn, conn.transaction():
            latest = await conn.fetchval(_LATEST)
            if latest is not None and observed_at < latest:
                return 0
            stored = {r["symbol"]: r["digest"] for r in await conn.fetch(_DIGESTS)}
            changed = [v for s, v in by_symbol.items() if stored.get(s) != v.digest]
            gone = [s for s in stored if s not in by_symbol]
            if changed:
                await conn.executemany(
                    _UPSERT_SYMBOL,
                    [(v.symbol, v.qty, _orders_json(v.open_orders), v.digest) for v in changed],
                )
            if gone:
                await conn.execute(_DELETE_SYMBOLS, gone)
            await conn.execute(_POLL, observed_at)
        return len(changed) + len(gone)

    async def read(self, symbol: str) -> PositionUpdate | None:
        """The symbol as of the last successful poll (flat when absent); None before any poll."""
        row = await self._pool.fetchrow(_READ_SYMBOL, symbol)
        if row is None:
            return None
        orders = json.loads(row["open_orders"]) if row["open_orders"] is not None else []
        return PositionUpdate(
            symbol=symbol,
            qty=row["qty"] if row["qty"] is not None else Decimal(0),
            observed_at=row["observed_at"],
            open_orders=[BrokerOrder.model_validate(o) for o in orders],
        )

    async def delivered(self, trade_ids: list[str]) -> dict[str, str]:
        """The digest each of these trades was last told."""
        rows = await self._pool.fetch(_DELIVERED, trade_ids)
        return {r["trade_id"]: r["digest"] for r in rows}

    async def mark_delivered(self, digests: Mapping[str, str], at: datetime) -> None:
        """Remember what these trades were told."""
        if digests:
            await self._pool.executemany(_DELIVER, [(t, d, at) for t, d in digests.items()])

    async def forget_except(self, open_trade_ids: list[str]) -> None:
        """Drop the delivered digests of trades that are no longer open."""
        await self._pool.execute(_FORGET, open_trade_ids)


def _orders_json(orders: tuple[BrokerOrder, ...]) -> str:
    return json.dumps([o.model_dump(mode="json") for o in orders])
