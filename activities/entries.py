"""EntryActivities: the market loop's reads - entry candidates, symbols entered today, and
trading control as the entry gate sees it (the ledger reads are ledger/entries.py's)."""

from __future__ import annotations

import asyncpg
from temporalio import activity
from temporalio.client import Client

from activities.control_link import read_control
from ledger.entries import EntryReads
from trading.entry import (
    EnteredSymbols,
    EnteredSymbolsQuery,
    EntryCandidates,
    EntryCandidatesQuery,
)
from trading.entry_gate import ControlView


class EntryActivities:
    """Entry candidates, symbols entered today, and the trading control view."""

    def __init__(self, client: Client, pool: asyncpg.Pool) -> None:
        self._client = client
        self._reads = EntryReads(pool)

    @activity.defn
    async def list_entry_candidates(self, query: EntryCandidatesQuery) -> EntryCandidates:
        """Today's SCORED signals that no trade took yet, best first."""
        return EntryCandidates(
            signals=await self._reads.scored_signals_since(query.since, query.limit)
        )

    @activity.defn
    async def symbols_entered_since(self, query: EnteredSymbolsQuery) -> EnteredSymbols:
        """Symbols that already have a trade since the start of the session day."""
        return EnteredSymbols(
            symbols=await self._reads.symbols_entered_since(query.symbols, query.since)
        )

    @activity.defn
    async def control_view(self) -> ControlView:
        """Trading control as the entry gate sees it (never started, running in a mode, ...)."""
        return await read_control(self._client)
