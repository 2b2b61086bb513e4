"""EntryActivities: what the market loop reads and records around its entries - candidates,
the entry context, trading control as the gate sees it, orders to trading control (a halt
or a pause the risk engine asks for) and each signal's decision (ledger/entries.py and
ledger/signal_paths.py hold the SQL)."""

from __future__ import annotations

import asyncpg
from temporalio import activity
from temporalio.client import Client

from activities.control_link import read_control
from contracts import control
from ledger.entries import EntryReads
from ledger.signal_paths import SignalPathsRepository
from trading.control import ControlRequest
from trading.entry import (
    EntryCandidates,
    EntryCandidatesQuery,
)
from trading.entry_context import ControlOrder, EntryContext, EntryContextQuery
from trading.entry_gate import ControlView
from trading.signal_path import SignalDecisions, SignalPathQuery, SignalPaths


class EntryActivities:
    """Entry candidates, symbols entered today, and the trading control view."""

    def __init__(self, client: Client, pool: asyncpg.Pool) -> None:
        self._client = client
        self._reads = EntryReads(pool)
        self._paths = SignalPathsRepository(pool)

    @activity.defn
    async def list_entry_candidates(self, query: EntryCandidatesQuery) -> EntryCandidates:
        """Today's SCORED signals that no trade took yet, best first."""
        return EntryCandidates(
            signals=await self._reads.scored_signals_since(query.since, query.limit)
        )

    @activity.defn
    async def control_view(self) -> ControlView:
        """Trading control as the entry gate sees it (never started, running in a mode, ...)."""
        return await read_control(self._client)

    @activity.defn
    async def entry_context(self, query: EntryContextQuery) -> EntryContext:
        """Symbols entered today, open trades of the symbols, P&L of trades closed since, and
        the open option trades' max loss (heat)."""
        return await self._reads.context(query)

    @activity.defn
    async def record_signal_decisions(self, batch: SignalDecisions) -> int:
        """Store each decision on its signal (rank, verdict, entered/added/skipped) and its
        audit row, in one transaction."""
        return await self._paths.record(batch.decisions, batch.audits)

    @activity.defn
    async def signal_paths(self, query: SignalPathQuery) -> SignalPaths:
        """Recent signals' paths and the decisions counted by reason."""
        return await self._paths.paths(query)

    @activity.defn
    async def tell_control(self, order: ControlOrder) -> None:
        """Ask trading control to halt or pause entries (it keeps the mode; repeats are no-ops)."""
        message = control.HALT if order.halt else control.PAUSE_ENTRIES
        handle = self._client.get_workflow_handle(control.WORKFLOW_ID)
        await handle.signal(
            message.name, ControlRequest(reason=order.reason[:500], actor=order.actor)
        )
