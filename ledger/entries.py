"""Entry reads for the market loop: SCORED signals no trade took yet, and the entry context
(symbols entered today, open trades by symbol, realized P&L of recent closes, open option
trades' max loss)."""

from __future__ import annotations

from datetime import datetime

from ledger.codec import load_json_object
from ledger.repository import Repository
from trading.broker_models import OrderSide
from trading.entry import EntrySignal
from trading.entry_context import EntryContext, EntryContextQuery, LedgerTrade
from trading.ledger_records import TradeOrigin
from trading.risk import DefinedRisk

_CANDIDATES = """
SELECT s.id, s.signal_key, s.symbol, s.strategy, s.side, s.score, s.confidence, s.created_at,
       s.features
FROM signals AS s
WHERE s.status = 'SCORED' AND s.created_at >= $1 AND s.score IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM trades AS t WHERE t.signal_id = s.id)
  AND (s.decision IS NULL OR s.decision = 'skipped')
ORDER BY s.score DESC, s.created_at, s.id
LIMIT $2
"""

_OPEN_TRADES = """
SELECT id, symbol, origin, qty, stop_price FROM trades
WHERE symbol = ANY($1::text[]) AND closed_at IS NULL
ORDER BY symbol, id
"""

_CLOSED_PNLS = """
SELECT realized_pnl FROM trades
WHERE closed_at >= $1 AND realized_pnl IS NOT NULL
ORDER BY closed_at, id
"""

# Entering, open or closing: every one of them can still lose its max loss (option_trades_open).
_OPEN_OPTION_TRADES = """
SELECT id, underlying, max_loss FROM option_trades
WHERE closed_at IS NULL
ORDER BY created_at, id
"""

_ENTERED = """
SELECT DISTINCT symbol FROM trades
WHERE symbol = ANY($1::text[]) AND created_at >= $2
ORDER BY symbol
"""


class EntryReads(Repository):
    """What the entry gate reads from the ledger (it never counts open trades: the broker does)."""

    async def scored_signals_since(self, since: datetime, limit: int) -> list[EntrySignal]:
        """SCORED signals created since `since` without a trade, best score first."""
        rows = await self._pool.fetch(_CANDIDATES, since, limit)
        return [
            EntrySignal(
                signal_id=r["id"],
                signal_key=r["signal_key"],
                symbol=r["symbol"],
                strategy=r["strategy"],
                side=OrderSide(r["side"]),
                score=r["score"],
                confidence=r["confidence"],
                created_at=r["created_at"],
                features=load_json_object(r["features"]),
            )
            for r in rows
        ]

    async def symbols_entered_since(self, symbols: list[str], since: datetime) -> list[str]:
        """Those of `symbols` with a trade created since `since` (one entry per symbol a day)."""
        if not symbols:
            return []
        return [r["symbol"] for r in await self._pool.fetch(_ENTERED, symbols, since)]

    async def context(self, query: EntryContextQuery) -> EntryContext:
        """Symbols entered today, the open trades of `symbols`, P&L of trades closed since,
        and every open option trade's max loss."""
        entered = await self.symbols_entered_since(query.symbols, query.since)
        trades = await self._pool.fetch(_OPEN_TRADES, query.symbols) if query.symbols else []
        pnls = await self._pool.fetch(_CLOSED_PNLS, query.closed_since)
        options = await self._pool.fetch(_OPEN_OPTION_TRADES)
        return EntryContext(
            entered_symbols=entered,
            open_trades=[
                LedgerTrade(
                    trade_id=r["id"],
                    symbol=r["symbol"],
                    origin=TradeOrigin(r["origin"]),
                    qty=r["qty"],
                    stop_price=r["stop_price"],
                )
                for r in trades
            ],
            closed_pnls=[r["realized_pnl"] for r in pnls],
            open_option_trades=[
                DefinedRisk(trade_id=r["id"], symbol=r["underlying"], max_loss=r["max_loss"])
                for r in options
            ],
        )
