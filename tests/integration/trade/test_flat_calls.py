"""With BrokerSync running, healthy trades are quiet and a dead stop is rescued cheaply.

Broker API calls per minute must stay flat as open trades grow (Alpaca allows 200/min), and
an idle trade must cost Temporal nothing: after BrokerSync told a trade its covered position,
later polls that see no change neither signal it nor make it ask the broker, so its history
does not grow; an outside stop cancel is still rescued, with the submit as its only call.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest
from temporalio.client import WorkflowHandle

from broker.alpaca import AlpacaGateway
from contracts import broker_sync
from contracts import trade as trade_contract
from paperbroker.admin_client import AdminClient
from tests.integration.trade.conftest import Synced
from trading.broker_sync_models import BrokerSyncState
from trading.ticks import protective_stop_price
from trading.trade_models import TradeStatusView

pytestmark = pytest.mark.integration

SYMBOLS = ("AAPL", "MSFT", "KO")
# BrokerSync's own calls: positions + open orders per poll, the clock now and then.
BROKER_SYNC_ROUTES = {"GET /v2/positions", "GET /v2/orders", "GET /v2/clock"}


async def _views(handles: list[WorkflowHandle[Any, Any]]) -> list[TradeStatusView]:
    return [await h.query(trade_contract.STATUS.name, result_type=TradeStatusView) for h in handles]


async def _until_all(
    handles: list[WorkflowHandle[Any, Any]],
    predicate: Callable[[int, TradeStatusView], bool],
    within_s: float = 20,
) -> list[TradeStatusView]:
    deadline = time.monotonic() + within_s
    while True:
        views = await _views(handles)
        if all(predicate(i, v) for i, v in enumerate(views)):
            return views
        assert time.monotonic() < deadline, f"condition not met in {within_s}s: {views}"
        await asyncio.sleep(0.2)


async def _polls(sync: WorkflowHandle[Any, Any]) -> int:
    state = await sync.query(broker_sync.STATUS.name, result_type=BrokerSyncState)
    return state.polls


async def _history_lengths(handles: list[WorkflowHandle[Any, Any]]) -> list[int]:
    return [len((await h.fetch_history()).events) for h in handles]


async def test_quiet_trades_write_nothing_between_polls_and_a_dead_stop_costs_one_call(
    synced: Synced, broker_admin: AdminClient, gateway: AlpacaGateway
) -> None:
    harness, sync = synced.harness, synced.sync
    handles = []
    for symbol in SYMBOLS:
        broker_admin.set_price(symbol, volatility=0)
    for symbol in SYMBOLS:
        handle, _ = await harness.open_trade(
            trade_id=f"{symbol.lower()}-{uuid.uuid4().hex[:8]}",
            symbol=symbol,
            qty=Decimal(5),
            stop_price=protective_stop_price(harness.market(symbol) * Decimal("0.95")),
        )
        handles.append(handle)
    await _until_all(handles, lambda _, v: v.state.snapshot_checks >= 1)
    polls = await _polls(sync)
    await _eventually_async(lambda: _polls(sync), polls + 2)  # the last changes settle

    lengths = await _history_lengths(handles)
    polls = await _polls(sync)
    broker_admin.reset_requests()
    await _eventually_async(lambda: _polls(sync), polls + 3)
    assert await _history_lengths(handles) == lengths  # three polls later: not one event
    calls = broker_admin.requests()["by_route"]
    assert calls.get("GET /v2/orders", 0) >= 3  # BrokerSync polled meanwhile ...
    assert set(calls) <= BROKER_SYNC_ROUTES  # ... and no trade asked the broker itself

    victim = handles[0]
    view = (await _views([victim]))[0]
    old_stop = view.state.stop_order_id
    assert old_stop is not None
    broker_admin.reset_requests()
    broker_admin.cancel_order(old_stop)  # as if from the dashboard
    rescued = await harness.wait_for(
        victim, lambda v: v.state.rescue.ok >= 1 and v.state.stop_order_id != old_stop
    )
    rescue_calls = broker_admin.requests()["by_route"]
    # The cancel (ours, through the admin API, is not counted), the listener's one positions
    # read for the event, the rescue's submit; no trade probe of the position or the stop.
    assert rescue_calls.get("POST /v2/orders") == 1, rescue_calls
    trade_probes = {
        r for r in rescue_calls if r.startswith(("GET /v2/positions/", "GET /v2/orders/"))
    }
    assert not trade_probes, rescue_calls
    open_orders = gateway.get_open_orders()
    active = [
        o
        for top in open_orders
        for o in (top, *top.legs)
        if o.id == rescued.state.stop_order_id and o.is_active
    ]
    assert active and active[0].symbol == SYMBOLS[0] and active[0].qty == Decimal(5)


async def _eventually_async(
    read: Callable[[], Awaitable[int]], at_least: int, within_s: float = 30
) -> None:
    deadline = time.monotonic() + within_s
    while await read() < at_least:
        assert time.monotonic() < deadline, f"still below {at_least} after {within_s}s"
        await asyncio.sleep(0.2)
