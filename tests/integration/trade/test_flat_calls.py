"""With BrokerSync running, healthy trades settle routine checks from its snapshots.

Broker API calls per minute must stay flat as open trades grow (Alpaca allows 200/min):
after a poll, a trade whose snapshot shows its position covered by its active stop does not
ask the broker, while an outside stop cancel still gets rescued.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle

from broker.alpaca import AlpacaGateway
from contracts import trade as trade_contract
from paperbroker.admin_client import AdminClient
from paperbroker.testing import RunningBroker
from tests.conftest import endpoint_for
from tests.integration.trade.conftest import TradeHarness
from trading.broker_sync_models import BrokerSyncInput, BrokerSyncRun
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
) -> AsyncIterator[TradeHarness]:
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
            yield harness
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


async def test_snapshots_settle_routine_checks_and_an_outside_cancel_is_still_rescued(
    synced_trades: TradeHarness, broker_admin: AdminClient, gateway: AlpacaGateway
) -> None:
    harness = synced_trades
    handles = []
    for symbol in SYMBOLS:
        handle, _ = await harness.open_trade(
            trade_id=f"{symbol.lower()}-{uuid.uuid4().hex[:8]}",
            symbol=symbol,
            qty=Decimal(5),
            stop_price=protective_stop_price(harness.market(symbol) * Decimal("0.95")),
            check_interval=timedelta(seconds=60),  # BrokerSync's polls drive the checks
        )
        handles.append(handle)

    settled = await _until_all(handles, lambda _, v: v.state.snapshot_checks >= 1)
    broker_admin.reset_requests()
    later = await _until_all(
        handles,
        lambda i, v: v.state.snapshot_checks >= settled[i].state.snapshot_checks + 2,
    )
    assert [v.state.broker_checks for v in later] == [v.state.broker_checks for v in settled]
    calls = broker_admin.requests()["by_route"]
    assert calls.get("GET /v2/orders", 0) >= 2  # BrokerSync polled meanwhile ...
    assert set(calls) <= BROKER_SYNC_ROUTES  # ... and no trade asked the broker itself

    victim, view = handles[0], later[0]
    old_stop = view.state.stop_order_id
    assert old_stop is not None
    broker_admin.cancel_order(old_stop)  # as if from the dashboard
    rescued = await harness.wait_for(
        victim, lambda v: v.state.rescue.ok >= 1 and v.state.stop_order_id != old_stop
    )
    open_orders = gateway.get_open_orders()
    active = [
        o
        for top in open_orders
        for o in (top, *top.legs)
        if o.id == rescued.state.stop_order_id and o.is_active
    ]
    assert active and active[0].symbol == SYMBOLS[0] and active[0].qty == Decimal(5)
