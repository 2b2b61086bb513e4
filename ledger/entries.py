"""Entry reads for the market loop: SCORED signals no trade took yet, symbols entered today."""

from __future__ import annotations

from datetime import datetime

from ledger.repository import Repository
from trading.broker_models import OrderSide
from trading.entry import EntrySignal

_CANDIDATES = """
SELECT s.id, s.signal_key, s.symbol, s.strategy, s.side, s.score, s.confidence, s.created_at
FROM signals AS s
WHERE s.status = 'SCORED' AND s.created_at >= $1 AND s.score IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM trades AS t WHERE t.signal_id = s.id)
ORDER BY s.score DESC, s.created_at, s.id
LIMIT $2
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
            )
            for r in rows
        ]

    async def symbols_entered_since(self, symbols: list[str], since: datetime) -> list[str]:
        """Those of `symbols` with a trade created since `since` (one entry per symbol a day)."""
        if not symbols:
            return []
        return [r["symbol"] for r in await self._pool.fetch(_ENTERED, symbols, since)]
