"""OptionLedgerActivities: the option trades' ledger rows as Temporal activities.

Every write is safe to retry (ledger/option_trades.py): a repeat changes nothing.
"""

from __future__ import annotations

import asyncpg
from temporalio import activity

from ledger.option_trades import OptionTrades as OptionTradesRepository
from trading.options.records import (
    OptionTradeGhost,
    OptionTrades,
    OptionTradesQuery,
    OptionTradeWrite,
    OptionTradeWriteResult,
)


class OptionLedgerActivities:
    """Record, list and ghost-close option trades."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._trades = OptionTradesRepository(pool)

    @activity.defn
    async def record_option_trade(self, cmd: OptionTradeWrite) -> OptionTradeWriteResult:
        """Write the trade's row at its status now (forward only, idempotent)."""
        result = await self._trades.record(cmd)
        outcome = "applied" if result.applied else "unchanged"
        activity.logger.info(
            "option trade %s %s: %s (now %s)",
            cmd.trade_id,
            cmd.status,
            outcome,
            result.trade.status,
        )
        return result

    @activity.defn
    async def list_option_trades(self, query: OptionTradesQuery) -> OptionTrades:
        """Open option trades, or the latest ones."""
        return await self._trades.list(query)

    @activity.defn
    async def close_ghost_option_trade(self, cmd: OptionTradeGhost) -> OptionTradeWriteResult:
        """Close a row no broker legs and no running workflow back (first close wins)."""
        result = await self._trades.close_ghost(cmd)
        activity.logger.info(
            "option trade %s ghost close: applied=%s", cmd.trade_id, result.applied
        )
        return result
