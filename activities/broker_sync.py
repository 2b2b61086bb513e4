"""BrokerSyncActivities: the one trade_updates listener and the broker-truth poll.

Both fan broker facts out to trade workflows as signals from here, so broker API calls stay
flat however many trades are open (one stream connection, two REST calls per poll) and the
BrokerSync workflow's history stays small.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
from pydantic import BaseModel
from temporalio import activity

from activities.broker import as_application_error
from activities.trade_link import TradeLink
from broker.endpoint import BrokerEndpoint
from broker.errors import BrokerError
from broker.gateway import BrokerGateway
from broker.stream import TradeUpdateStream
from contracts import trade
from ledger.trades import Trades
from trading.broker_sync_models import (
    ListenRequest,
    ListenSummary,
    SyncRequest,
    SyncSummary,
)
from trading.routing import OpenTradeRef, owners_of_order, route_positions
from trading.trade_models import PositionUpdate

OPEN_TRADES_MAX_AGE_S = 5.0
FORWARDER_DRAIN_S = 10.0


class _Progress(BaseModel):
    """Heartbeat details of the listener."""

    events: int
    forwarded: int
    missed: int
    reconnects: int
    last_event_at: datetime | None


class BrokerSyncActivities:
    """Listener and poller; built with the gateway, the stream's endpoint, TradeLink, the ledger."""

    def __init__(
        self,
        gateway: BrokerGateway,
        endpoint: BrokerEndpoint,
        link: TradeLink,
        pool: asyncpg.Pool,
    ) -> None:
        self._gateway = gateway
        self._endpoint = endpoint
        self._link = link
        self._trades = Trades(pool)
        self._open_cache: tuple[float, list[OpenTradeRef]] = (0.0, [])

    async def _open_trades(self, fresh: bool = False) -> list[OpenTradeRef]:
        loaded_at, cached = self._open_cache
        if fresh or time.monotonic() - loaded_at > OPEN_TRADES_MAX_AGE_S:
            records = await self._trades.list_open()
            cached = [OpenTradeRef(trade_id=r.id, symbol=r.symbol) for r in records]
            self._open_cache = (time.monotonic(), cached)
        return cached

    @activity.defn
    async def listen_trade_updates(self, request: ListenRequest) -> ListenSummary:
        """Hold the account's one trade_updates connection and forward every event."""
        # Returns after request.listen_for so the workflow starts a fresh run (and history);
        # heartbeats go on while the stream waits out a dropped connection.
        progress = _Progress(events=0, forwarded=0, missed=0, reconnects=0, last_event_at=None)
        stream = TradeUpdateStream(self._endpoint)
        forwarding = asyncio.create_task(self._forward_order_events(stream, progress))
        started = time.monotonic()
        try:
            while not forwarding.done():
                progress.reconnects = stream.reconnects
                activity.heartbeat(progress.model_dump(mode="json"))
                remaining = request.listen_for.total_seconds() - (time.monotonic() - started)
                if remaining <= 0:
                    break
                timeout = min(request.heartbeat_every.total_seconds(), remaining)
                await asyncio.wait({forwarding}, timeout=timeout)
        finally:
            await stream.close()
            await _stop(forwarding, within_s=FORWARDER_DRAIN_S)
        error = None if forwarding.cancelled() else forwarding.exception()
        if isinstance(error, BrokerError):
            raise as_application_error(error) from None
        if error is not None:
            raise error
        return ListenSummary(
            events=progress.events,
            forwarded=progress.forwarded,
            missed=progress.missed,
            last_event_at=progress.last_event_at,
        )

    async def _forward_order_events(self, stream: TradeUpdateStream, progress: _Progress) -> None:
        async for event in stream:
            progress.events += 1
            progress.last_event_at = event.timestamp
            order = event.order
            try:
                owners = owners_of_order(order, await self._open_trades())
                if not owners and order.symbol:
                    owners = owners_of_order(order, await self._open_trades(fresh=True))
                delivered = [await self._link.signal(t, trade.ORDER_EVENT, event) for t in owners]
            except Exception:
                # Losing this one event is covered by the broker-truth poll; ending the run
                # would drop the connection and every event until the next run.
                progress.missed += 1
                activity.logger.exception(
                    "trade update %s for %s (%s) not forwarded",
                    event.event,
                    order.client_order_id,
                    order.symbol,
                )
                continue
            progress.forwarded += sum(delivered)
            progress.missed += delivered.count(False)
            activity.logger.info(
                "trade update %s for %s (%s) -> %s",
                event.event,
                order.client_order_id,
                order.symbol,
                owners or "no open trade",
            )

    @activity.defn
    async def sync_positions(self, request: SyncRequest) -> SyncSummary:
        """Poll positions + open orders once and tell every open trade what the broker holds.

        A failed snapshot sends nothing: absence is only believed from a successful one.
        """
        try:
            positions = await _in_thread(self._gateway.get_positions)
            orders = await _in_thread(self._gateway.get_open_orders)
        except BrokerError as exc:
            raise as_application_error(exc) from None
        observed_at = datetime.now(UTC)
        trades = await self._open_trades(fresh=True)
        routes = route_positions(positions, orders, trades, observed_at)
        delivered = 0
        for route in routes:
            update = PositionUpdate(
                symbol=route.symbol,
                qty=route.qty,
                observed_at=observed_at,
                open_orders=list(route.open_orders),
            )
            delivered += await self._link.signal(route.trade_id, trade.POSITION_UPDATE, update)
        claimed = {t.symbol for t in trades}
        untracked = sorted(p.symbol for p in positions if p.qty != 0 and p.symbol not in claimed)
        return SyncSummary(
            observed_at=observed_at,
            positions=len(positions),
            open_orders=len(orders),
            open_trades=len(trades),
            signalled=delivered,
            untracked_symbols=untracked,
            broker_calls=2,
        )


async def _in_thread(fn: Callable[[], Any]) -> Any:
    return await asyncio.to_thread(fn)


async def _stop(task: asyncio.Task[None], within_s: float) -> None:
    """Let the task finish the event in hand once the stream has closed; cancel it if it hangs."""
    done, _ = await asyncio.wait({task}, timeout=within_s)
    if not done:
        task.cancel()
        await asyncio.wait({task})
