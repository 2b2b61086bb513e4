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
from decimal import Decimal
from typing import Any

import asyncpg
from alpaca.trading.models import TradeUpdate
from alpaca.trading.stream import TradingStream
from pydantic import BaseModel
from temporalio import activity
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from activities.broker import as_application_error
from broker.alpaca import to_order
from broker.endpoint import BrokerEndpoint
from broker.errors import BrokerError
from broker.gateway import BrokerGateway
from ledger.trades import Trades
from trading.broker_sync_models import (
    ListenRequest,
    ListenSummary,
    SyncRequest,
    SyncSummary,
)
from trading.routing import OpenTradeRef, owners_of_order, route_positions
from trading.trade_models import OrderEvent, PositionUpdate, workflow_id_for

ORDER_EVENT_SIGNAL = "order_event"
POSITION_UPDATE_SIGNAL = "position_update"
OPEN_TRADES_MAX_AGE_S = 5.0


class _Progress(BaseModel):
    """Heartbeat details of the listener."""

    events: int
    forwarded: int
    missed: int
    last_event_at: datetime | None


class BrokerSyncActivities:
    """Listener and poller; built with the gateway, a Temporal client and the ledger pool."""

    def __init__(
        self,
        gateway: BrokerGateway,
        endpoint: BrokerEndpoint,
        client: Client,
        pool: asyncpg.Pool,
    ) -> None:
        self._gateway = gateway
        self._endpoint = endpoint
        self._client = client
        self._trades = Trades(pool)
        self._open_cache: tuple[float, list[OpenTradeRef]] = (0.0, [])

    async def _open_trades(self, fresh: bool = False) -> list[OpenTradeRef]:
        loaded_at, cached = self._open_cache
        if fresh or time.monotonic() - loaded_at > OPEN_TRADES_MAX_AGE_S:
            records = await self._trades.list_open()
            cached = [OpenTradeRef(trade_id=r.id, symbol=r.symbol) for r in records]
            self._open_cache = (time.monotonic(), cached)
        return cached

    async def _signal(self, trade_id: str, name: str, payload: BaseModel) -> bool:
        """Signal a trade workflow; False when it is not running (closed or never started)."""
        handle = self._client.get_workflow_handle(workflow_id_for(trade_id))
        try:
            await handle.signal(name, payload)
        except RPCError as err:
            if err.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
                return False
            raise
        return True

    @activity.defn
    async def listen_trade_updates(self, request: ListenRequest) -> ListenSummary:
        """Hold the account's one trade_updates connection and forward every event.

        Heartbeats every few seconds; returns after request.listen_for so the workflow can
        start a fresh run; alpaca-py reconnects with backoff when the connection drops.
        """
        progress = _Progress(events=0, forwarded=0, missed=0, last_event_at=None)

        async def on_update(update: TradeUpdate) -> None:
            nonlocal progress
            order = to_order(update.order)
            event = OrderEvent(
                event=str(getattr(update.event, "value", update.event)),
                order=order,
                timestamp=update.timestamp,
                price=_dec(update.price),
                qty=_dec(update.qty),
                position_qty=_dec(update.position_qty),
            )
            owners = owners_of_order(order, await self._open_trades())
            if not owners and order.symbol:
                owners = owners_of_order(order, await self._open_trades(fresh=True))
            delivered = [await self._signal(t, ORDER_EVENT_SIGNAL, event) for t in owners]
            progress = progress.model_copy(
                update={
                    "events": progress.events + 1,
                    "forwarded": progress.forwarded + sum(delivered),
                    "missed": progress.missed + delivered.count(False),
                    "last_event_at": update.timestamp,
                }
            )
            activity.logger.info(
                "trade update %s for %s (%s) -> %s",
                event.event,
                order.client_order_id,
                order.symbol,
                owners or "no open trade",
            )

        stream = TradingStream(
            self._endpoint.key_id.get_secret_value(),
            self._endpoint.secret_key.get_secret_value(),
            paper=self._endpoint.paper,
            url_override=self._endpoint.stream_url,
        )
        stream.subscribe_trade_updates(on_update)
        # alpaca-py's public run() owns a private event loop; the coroutine behind it runs the
        # same connect/auth/listen/reconnect cycle inside the worker's loop.
        runner = asyncio.create_task(stream._run_forever())  # type: ignore[no-untyped-call]
        started = time.monotonic()
        try:
            while not runner.done():
                activity.heartbeat(progress.model_dump(mode="json"))
                if time.monotonic() - started >= request.listen_for.total_seconds():
                    break
                await asyncio.sleep(request.heartbeat_every.total_seconds())
        finally:
            await stream.stop_ws()
            try:
                await asyncio.wait_for(runner, timeout=10)
            except (TimeoutError, asyncio.CancelledError):
                runner.cancel()
        if runner.done() and not runner.cancelled() and runner.exception() is not None:
            raise runner.exception()  # type: ignore[misc]
        return ListenSummary(
            events=progress.events,
            forwarded=progress.forwarded,
            missed=progress.missed,
            last_event_at=progress.last_event_at,
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
            delivered += await self._signal(route.trade_id, POSITION_UPDATE_SIGNAL, update)
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


def _dec(value: float | None) -> Decimal | None:
    return None if value is None else Decimal(str(value))
