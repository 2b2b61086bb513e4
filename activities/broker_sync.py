"""BrokerSyncActivities: the one trade_updates listener and the broker-truth poll.

Both fan broker facts out to trade workflows as signals from here, so broker API calls stay
flat however many trades are open (one stream connection, two REST calls per poll) and the
BrokerSync workflow's history stays small.

Quiet guards: a poll stores the snapshot in the ledger (broker_view) and signals only the
trades whose view changed since they were last told, or whose position no stop covers; an
idle trade's self-check reads the stored view instead of the broker. The listener attaches
the position to events that end an order, asks BrokerSync to poll whenever it (re)connects
(events may have been missed), and starts a protect-only guard when an order nobody owns
fills (adoption from the stream; reconcile stays the backstop).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
from pydantic import BaseModel
from temporalio import activity
from temporalio.service import RPCError

from activities.broker import as_application_error
from activities.listener_positions import ListenerPositions
from activities.trade_link import TradeLink
from broker.endpoint import BrokerEndpoint
from broker.errors import BrokerError
from broker.metered import MeteredGateway
from broker.stream import TradeUpdateStream
from contracts import broker_sync, trade
from ledger.broker_view import BrokerView, SymbolView
from ledger.signals import Signals
from ledger.trades import Trades
from ops import metrics
from trading.broker_models import BrokerOrder, BrokerPosition, SymbolRef
from trading.broker_sync_models import (
    ListenRequest,
    ListenSummary,
    SyncRequest,
    SyncSummary,
)
from trading.options.chain import is_option_symbol
from trading.reconcile import protection_sweep
from trading.reconcile_models import GuardRequest
from trading.routing import (
    OpenTradeRef,
    PositionRoute,
    owners_of_order,
    route_positions,
    view_digest,
)
from trading.trade_knowledge import FILL_EVENTS
from trading.trade_models import OrderEvent, PositionUpdate

OPEN_TRADES_MAX_AGE_S = 5.0
FORWARDER_DRAIN_S = 10.0
SIGNALS_AT_ONCE = 16
OPEN_ORDERS_PAGE = 500  # Alpaca's largest page of orders
ADOPTION_MEMORY_S = 60.0  # by then the adopted guard's ledger row claims its symbol
SHUTDOWN_DRAIN_S = 1.0


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
        broker: MeteredGateway,
        endpoint: BrokerEndpoint,
        link: TradeLink,
        pool: asyncpg.Pool,
    ) -> None:
        self._broker = broker
        self._endpoint = endpoint
        self._link = link
        self._trades = Trades(pool)
        self._view = BrokerView(pool)
        self._signals = Signals(pool)
        self._open_cache: tuple[float, list[OpenTradeRef]] = (0.0, [])
        self._open_statuses: list[str] = []  # of the last fresh read (dt_trades_open)
        self._uncovered_since: dict[str, float] = {}  # symbol -> first poll that saw it bare
        # symbol -> (trade id of the guard the listener started, when); None while starting
        self._adopted: dict[str, tuple[str | None, float]] = {}

    async def _open_trades(self, fresh: bool = False) -> list[OpenTradeRef]:
        loaded_at, cached = self._open_cache
        if fresh or time.monotonic() - loaded_at > OPEN_TRADES_MAX_AGE_S:
            records = await self._trades.list_open()
            cached = [OpenTradeRef(trade_id=r.id, symbol=r.symbol) for r in records]
            self._open_statuses = [r.status.value for r in records]
            self._open_cache = (time.monotonic(), cached)
        return cached

    @activity.defn
    async def listen_trade_updates(self, request: ListenRequest) -> ListenSummary:
        """Hold the account's one trade_updates connection and forward every event."""
        # Returns after request.listen_for so the workflow starts a fresh run (and history);
        # heartbeats go on while the stream waits out a dropped connection.
        progress = _Progress(events=0, forwarded=0, missed=0, reconnects=0, last_event_at=None)
        connected_at = time.monotonic()

        async def on_listening() -> None:
            nonlocal connected_at
            connected_at = time.monotonic()
            await _ask_for_a_poll()

        stream = TradeUpdateStream(self._endpoint, on_listening=on_listening)
        positions = ListenerPositions(self._broker.get_positions)
        forwarding = asyncio.create_task(self._forward_order_events(stream, positions, progress))
        # A worker shutting down ends the run at once (the next run starts on a live worker)
        # instead of holding the stream until its graceful-shutdown timeout cancels it.
        shutdown = asyncio.ensure_future(activity.wait_for_worker_shutdown())
        started = time.monotonic()
        drain_s = FORWARDER_DRAIN_S
        try:
            while not forwarding.done() and not shutdown.done():
                progress.reconnects = stream.reconnects
                activity.heartbeat(progress.model_dump(mode="json"))
                metrics.stream_age(time.monotonic() - connected_at if stream.listening else 0)
                remaining = request.listen_for.total_seconds() - (time.monotonic() - started)
                if remaining <= 0:
                    break
                timeout = min(request.heartbeat_every.total_seconds(), remaining)
                await asyncio.wait(
                    {forwarding, shutdown}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
            if shutdown.done():
                drain_s = SHUTDOWN_DRAIN_S
        except asyncio.CancelledError:
            drain_s = 0.0  # cancelled (the worker stops): do not finish the event in hand
            raise
        finally:
            metrics.stream_age(0)  # this worker holds the stream no more
            shutdown.cancel()
            await stream.close()
            await _stop(forwarding, within_s=drain_s)
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
            position_reads=positions.refreshes,
        )

    async def _forward_order_events(
        self, stream: TradeUpdateStream, positions: ListenerPositions, progress: _Progress
    ) -> None:
        adoptions: set[asyncio.Task[None]] = set()
        try:
            async for event in stream:
                await self._forward_one(event, positions, progress, adoptions)
        finally:
            for task in adoptions:  # a guard start cut short is finished by reconcile
                task.cancel()

    async def _forward_one(
        self,
        event: OrderEvent,
        positions: ListenerPositions,
        progress: _Progress,
        adoptions: set[asyncio.Task[None]],
    ) -> None:
        progress.events += 1
        progress.last_event_at = event.timestamp
        metrics.trade_update(event.event)
        order = event.order
        try:
            owners = await self._owners(order)
            if owners:
                event = await positions.attach(event)
            elif (
                event.event in FILL_EVENTS
                and order.symbol
                and not is_option_symbol(order.symbol)  # options are not the stock guard's
                and not self._adoption_of(order.symbol)
            ):
                self._adopted[order.symbol] = (None, time.monotonic())  # one at a time
                task = asyncio.create_task(self._adopt(order.symbol))
                adoptions.add(task)
                task.add_done_callback(adoptions.discard)
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
            return
        progress.forwarded += sum(delivered)
        progress.missed += delivered.count(False)
        _log_forwarded(event, owners)

    async def _owners(self, order: BrokerOrder) -> list[str]:
        owners = owners_of_order(order, await self._open_trades())
        if not owners and order.symbol:
            owners = owners_of_order(order, await self._open_trades(fresh=True))
        adopted = self._adoption_of(order.symbol)
        if not owners and adopted is not None and adopted[0] is not None:
            owners = [adopted[0]]  # adopted moments ago; its ledger row may not exist yet
        return owners

    def _adoption_of(self, symbol: str) -> tuple[str | None, float] | None:
        """The guard this listener started for `symbol` lately (None id: being started)."""
        adopted = self._adopted.get(symbol)
        if adopted is not None and time.monotonic() - adopted[1] > ADOPTION_MEMORY_S:
            del self._adopted[symbol]
            return None
        return adopted

    async def _adopt(self, symbol: str) -> None:
        """An order nobody owns filled: guard the position now instead of at the next reconcile.

        Starts the protect-only guard reconcile and auto-manage would start (same trade id,
        same stop rule). Later fills in the symbol go to that guard (it resizes its stop)
        rather than to a second adoption, until its ledger row claims the symbol.
        """
        started: str | None = None
        try:
            truth = await self._broker.broker_truth()
            records = await self._trades.list_open(symbol)
            for target in protection_sweep(truth, records):
                if target.symbol != symbol:
                    continue
                request = GuardRequest(
                    trade_ids=target.trade_ids, update=target.update, restart=target.restart
                )
                outcome = await self._link.guard(request)
                started = outcome.trade_id
                activity.logger.warning(
                    "fill in %s outside the system: guard %s (%s)",
                    symbol,
                    outcome.trade_id,
                    outcome.action.value,
                )
            self._open_cache = (0.0, [])  # the new trade claims the symbol's next events
        except Exception:
            activity.logger.exception("adopting %s from the stream failed; reconcile will", symbol)
        finally:
            if started is None:
                self._adopted.pop(symbol, None)  # nothing started: the next fill tries again
            else:
                self._adopted[symbol] = (started, time.monotonic())

    @activity.defn
    async def sync_positions(self, request: SyncRequest) -> SyncSummary:
        """Poll positions + open orders once; tell each trade whose view changed or is uncovered.

        A failed snapshot sends nothing: absence is only believed from a successful one. The
        snapshot is stored for the trades' self-checks.
        """
        observed_at = datetime.now(UTC)  # the snapshot reflects the broker at or after this
        try:
            positions = await self._broker.get_positions()
            orders = await self._broker.get_open_orders()
        except BrokerError as exc:
            raise as_application_error(exc) from None
        trades = await self._open_trades(fresh=True)
        await self._view.store(observed_at, _symbol_views(positions, orders, trades))
        routes = route_positions(positions, orders, trades, observed_at)
        told = await self._view.delivered([r.trade_id for r in routes])
        due = [r for r in routes if _needs_telling(r, told.get(r.trade_id))]
        delivered = await self._tell(due, unstick=request.unstick)
        await self._view.mark_delivered(delivered, observed_at)
        await self._view.forget_except([t.trade_id for t in trades])
        await self._poll_metrics(positions, orders)
        claimed = {t.symbol for t in trades}
        untracked = sorted(p.symbol for p in positions if p.qty != 0 and p.symbol not in claimed)
        return SyncSummary(
            observed_at=observed_at,
            positions=len(positions),
            open_orders=len(orders),
            open_trades=len(trades),
            signalled=len(delivered),
            unchanged=len(routes) - len(due),
            untracked_symbols=untracked,
            broker_calls=1 + len(orders) // OPEN_ORDERS_PAGE + 1,  # positions, order pages
        )

    async def _poll_metrics(
        self, positions: list[BrokerPosition], orders: list[BrokerOrder]
    ) -> None:
        """The poll's gauges: coverage, open trades by status, PENDING signals (the poll is
        the system's steady heartbeat, so these stay fresh on every worker it lands on)."""
        coverage = metrics.position_coverage(
            positions, orders, self._uncovered_since, time.monotonic()
        )
        self._uncovered_since = dict(coverage.uncovered_since)
        metrics.coverage(coverage)
        metrics.trades_open(self._open_statuses)
        try:
            pending, oldest = await self._signals.pending()
        except (OSError, asyncpg.PostgresError) as exc:  # metrics never fail the poll
            activity.logger.warning("signal gauges not refreshed: %s", exc)
            return
        metrics.signals_pending(pending, oldest)

    async def _tell(self, routes: list[PositionRoute], *, unstick: bool) -> dict[str, str]:
        """Signal each trade its view, a few at a time; trade id -> digest of those told.

        One trade that cannot be told (a Temporal hiccup) is left for the next poll, which
        tells it again (its digest is not marked); it never fails the whole poll.
        """
        gate = asyncio.Semaphore(SIGNALS_AT_ONCE)
        delivered: dict[str, str] = {}

        async def tell(route: PositionRoute) -> None:
            async with gate:
                try:
                    if unstick:
                        await self._link.unstick(route.trade_id)
                    update = _update_of(route)
                    if await self._link.signal(route.trade_id, trade.POSITION_UPDATE, update):
                        delivered[route.trade_id] = route.digest
                except RPCError as err:
                    activity.logger.warning("trade %s not told: %s", route.trade_id, err.message)

        await asyncio.gather(*(tell(r) for r in routes))
        return delivered

    @activity.defn
    async def stored_view(self, ref: SymbolRef) -> PositionUpdate | None:
        """The symbol as BrokerSync's last successful poll saw it (None before any poll)."""
        return await self._view.read(ref.symbol)


def _needs_telling(route: PositionRoute, told: str | None) -> bool:
    """Changed since the trade was last told, or still uncovered (it may be waiting to rescue)."""
    return told != route.digest or not route.covered


def _update_of(route: PositionRoute) -> PositionUpdate:
    return PositionUpdate(
        symbol=route.symbol,
        qty=route.qty,
        observed_at=route.observed_at,
        open_orders=list(route.open_orders),
    )


def _symbol_views(
    positions: list[BrokerPosition], orders: list[BrokerOrder], trades: list[OpenTradeRef]
) -> list[SymbolView]:
    """Every symbol with a position, an open order or an open trade, fingerprinted."""
    qty = {p.symbol: p.qty for p in positions}
    by_symbol: dict[str, list[BrokerOrder]] = {}
    for order in orders:
        by_symbol.setdefault(order.symbol, []).append(order)
    symbols = set(qty) | set(by_symbol) | {t.symbol for t in trades}
    views = []
    for symbol in sorted(symbols):
        held, listed = qty.get(symbol, Decimal(0)), tuple(by_symbol.get(symbol, []))
        views.append(SymbolView(symbol, held, listed, view_digest(held, listed)))
    return views


async def _ask_for_a_poll() -> None:
    """The stream (re)connected: events may have been missed, so BrokerSync polls now."""
    try:
        workflow_id = activity.info().workflow_id or broker_sync.WORKFLOW_ID
        handle = activity.client().get_workflow_handle(workflow_id)
        await handle.signal(broker_sync.POLL_NOW.name)
    except Exception as exc:  # the poll's own interval still comes
        activity.logger.warning("could not ask BrokerSync to poll: %s", exc)


def _log_forwarded(event: OrderEvent, owners: list[str]) -> None:
    activity.logger.info(
        "trade update %s for %s (%s) -> %s",
        event.event,
        event.order.client_order_id,
        event.order.symbol,
        owners or "no open trade",
    )


async def _stop(task: asyncio.Task[None], within_s: float) -> None:
    """Let the task finish the event in hand once the stream has closed; cancel it if it hangs."""
    done, _ = await asyncio.wait({task}, timeout=within_s)
    if not done:
        task.cancel()
        await asyncio.wait({task})
