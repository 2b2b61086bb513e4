"""The listener's own read of the account's positions, attached to the events it forwards.

A stop that dies (cancelled, expired, rejected) needs a new one for the position's size. The
trade could probe its position itself - one broker call per trade, a hundred when a hundred
aged GTC stops expire in the same minute. Instead the listener reads all positions once (one
call, shared by every event within `max_age_s`) and attaches each symbol's size, with the time
it was read, to the event; the trade then needs only its submit.

Fills change positions: a fill drops its symbol from the read until the next refresh.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from broker.errors import BrokerError
from trading.broker_models import BrokerPosition
from trading.models import evolve
from trading.trade_knowledge import FILL_EVENTS
from trading.trade_models import OrderEvent, PositionSeen

# Events after which an order no longer protects anything: the trade will want the position.
ENDING_EVENTS = frozenset({"canceled", "expired", "rejected", "done_for_day"})
logger = logging.getLogger(__name__)


class ListenerPositions:
    """Positions as last read, refreshed (once for many events) when an ending event needs them."""

    def __init__(
        self, read: Callable[[], Awaitable[list[BrokerPosition]]], max_age_s: float = 2.0
    ) -> None:
        self._read = read
        self._max_age = timedelta(seconds=max_age_s)
        self._lock = asyncio.Lock()
        self._read_at: datetime | None = None
        self._qty: dict[str, Decimal] = {}
        self._moved: set[str] = set()
        self.refreshes = 0

    def _fresh(self, symbol: str) -> bool:
        return (
            self._read_at is not None
            and datetime.now(UTC) - self._read_at <= self._max_age
            and symbol not in self._moved
        )

    async def attach(self, event: OrderEvent) -> OrderEvent:
        """The event with its symbol's position attached when known (refreshed if it ended)."""
        symbol = event.order.symbol
        if event.event in FILL_EVENTS:
            self._moved.add(symbol)
            return event
        if not self._fresh(symbol) and event.event in ENDING_EVENTS:
            await self._refresh(symbol)
        if not self._fresh(symbol) or self._read_at is None:
            return event
        seen = PositionSeen(qty=self._qty.get(symbol, Decimal(0)), observed_at=self._read_at)
        return evolve(event, position_seen=seen)

    async def _refresh(self, symbol: str) -> None:
        async with self._lock:
            if self._fresh(symbol):
                return  # another event refreshed it while this one waited
            started = datetime.now(UTC)  # the read reflects the account at or after this
            try:
                positions = await self._read()
            except BrokerError as exc:
                logger.warning("positions read for trade events failed: %s", exc)
                return
            self.refreshes += 1
            self._qty = {p.symbol: p.qty for p in positions}
            self._read_at = started
            self._moved.clear()
