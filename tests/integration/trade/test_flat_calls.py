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
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle

from broker.alpaca import AlpacaGateway
from contracts import broker_sync
from contracts import trade as trade_contract
from paperbroker.admin_client import AdminClient
from paperbroker.testing import RunningBroker
from tests.conftest import endpoint_for
from tests.integration.trade.conftest import TradeHarness
from trading.broker_sync_models import BrokerSyncInput, BrokerSyncRun, BrokerSyncState
from trading.ticks import protective_stop_price
from trading.trade_models import TradeStatusView
from worker import create_worker
from workflows.broker_sync import BrokerSyncWorkflow

pytestmark = pytest.mark.integration

SYMBOLS = ("AAPL", "MSFT", "KO")
POLL_INTERVAL = timedelta(seconds=2)
# BrokerSync's own calls: positions + open orders per poll, the clock now and then.
BROKER_SYNC_ROUTES = {"GET /v2/positions", "GET /v2/orders", "GET /v2/clock"}


@pytest_asyncio.fixture
async def synced_trades(
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    activity_executor: ThreadPoolExecutor,
    paper_broker: RunningBroker,
    broker_admin: AdminClient,
    gateway: AlpacaGateway,
) -> AsyncIterator[tuple[TradeHarness, WorkflowHandle[Any, Any]]]:
    """The production worker (BrokerSync activities included) with BrokerSync listening."""
    for symbol in SYMBOLS:
        broker_admin.set_price(symbol, volatility=0)
    harness = TradeHarness(client, task_queue, broker_admin, gateway, pool)
    endpoint = endpoint_for(paper_broker)
    async with create_worker(client, pool, task_queue, activity_executor, endpoint):
        sync = await client.start_workflow(
            BrokerSyncWorkflow.run,
            BrokerSyncRun(settings=BrokerSyncInput(poll_interval=POLL_INTERVAL)),
            id=f"broker-sync-{uuid.uuid4().hex[:8]}",
            task_queue=task_queue,
        )
        try:
            await _eventually(lambda: broker_admin.state()["stream_listening"] == 1)
            yield harness, sync
        finally:
            await sync.signal(BrokerSyncWorkflow.stop)
            await sync.result()
            for handle in harness.handles:
                if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                    await handle.terminate("test finished")
    await pool.execute(
        "UPDATE trades SET status = 'CLOSED', closed_at = now(), "
        "close_reason = 'GHOST' WHERE closed_at IS NULL"
    )


async def _eventually(check: Callable[[], bool], within_s: float = 20) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.2)


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
    synced_trades: tuple[TradeHarness, WorkflowHandle[Any, Any]],
    broker_admin: AdminClient,
    gateway: AlpacaGateway,
) -> None:
    harness, sync = synced_trades
    handles = []
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
