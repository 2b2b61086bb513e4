"""BrokerSync: the truth poll and the trade_updates stream reach the owning trade workflows."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from temporalio.client import Client, WorkflowHandle
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.worker import Worker

from activities import ActivityDeps, build_activities
from broker.alpaca import AlpacaGateway
from ledger.trades import Trades
from paperbroker.admin_client import AdminClient
from paperbroker.testing import RunningBroker
from tests.conftest import endpoint_for
from tests.integration.sync.recorder import RecordingTradeWorkflow
from trading.broker_models import OrderIntent, OrderSide, OrderType, TimeInForce
from trading.broker_sync_models import BrokerSyncInput, BrokerSyncRun
from trading.ids import Leg, client_order_id
from trading.ledger_records import TradeCreate
from workflows.broker_sync import BrokerSyncWorkflow

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture
async def sync_worker(
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    activity_executor: ThreadPoolExecutor,
    paper_broker: RunningBroker,
    broker_admin: AdminClient,
) -> AsyncIterator[AlpacaGateway]:
    endpoint = endpoint_for(paper_broker)
    gateway = AlpacaGateway(endpoint)
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[BrokerSyncWorkflow, RecordingTradeWorkflow],
        activities=build_activities(ActivityDeps(pool, gateway, client, endpoint, task_queue)),
        activity_executor=activity_executor,
    ):
        yield gateway
    await pool.execute(
        "UPDATE trades SET status = 'CLOSED', closed_at = now(), "
        "close_reason = 'GHOST' WHERE closed_at IS NULL"
    )


async def _open_trade(
    client: Client, pool: asyncpg.Pool, task_queue: str, symbol: str
) -> tuple[str, WorkflowHandle[Any, Any]]:
    trade_id = f"t{uuid.uuid4().hex[:10]}"
    await Trades(pool).create(
        TradeCreate(
            trade_id=trade_id,
            symbol=symbol,
            workflow_id=f"trade-{trade_id}",
            qty=Decimal(0),
            as_of=datetime.now(UTC),
        )
    )
    handle = await client.start_workflow(
        RecordingTradeWorkflow.run, id=f"trade-{trade_id}", task_queue=task_queue
    )
    return trade_id, handle


async def _eventually(check: Callable[[], Awaitable[bool]], within_s: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + within_s
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.2)


async def test_poll_tells_each_open_trade_its_position(
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    sync_worker: AlpacaGateway,
    broker_admin: AdminClient,
) -> None:
    broker_admin.open_position("AAPL", 5)
    broker_admin.open_position("SPY", 2)  # no trade claims it
    held, held_handle = await _open_trade(client, pool, task_queue, "AAPL")
    flat, flat_handle = await _open_trade(client, pool, task_queue, "MSFT")
    state = await client.execute_workflow(
        BrokerSyncWorkflow.run,
        BrokerSyncRun(settings=BrokerSyncInput(listen=False, max_polls=1)),
        id=f"broker-sync-{uuid.uuid4().hex[:6]}",
        task_queue=task_queue,
    )
    assert state.polls == 1 and state.last_poll is not None
    assert state.last_poll.untracked_symbols == ["SPY"]
    assert state.last_poll.broker_calls == 2
    held_updates = await held_handle.query(RecordingTradeWorkflow.seen_positions)
    flat_updates = await flat_handle.query(RecordingTradeWorkflow.seen_positions)
    assert [(u.symbol, u.qty) for u in held_updates] == [("AAPL", Decimal(5))]
    assert [(u.symbol, u.qty) for u in flat_updates] == [("MSFT", Decimal(0))]
    for handle in (held_handle, flat_handle):
        await handle.signal(RecordingTradeWorkflow.finish)
    assert held and flat


async def test_stream_events_reach_the_owner_and_legs_reach_the_symbols_trades(
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    sync_worker: AlpacaGateway,
    broker_admin: AdminClient,
) -> None:
    trade_id, handle = await _open_trade(client, pool, task_queue, "AAPL")
    sync = await client.start_workflow(
        BrokerSyncWorkflow.run,
        BrokerSyncRun(settings=BrokerSyncInput(poll_interval=timedelta(minutes=10))),
        id=f"broker-sync-{uuid.uuid4().hex[:6]}",
        task_queue=task_queue,
    )
    try:

        async def listening() -> bool:  # the listener has subscribed to trade_updates
            return int(broker_admin.state()["stream_listening"]) == 1

        await _eventually(listening)
        price = sync_worker.latest_quotes(["AAPL"])[0].ask
        entry = OrderIntent(
            client_order_id=client_order_id(trade_id, Leg.ENTRY, 0),
            symbol="AAPL",
            qty=Decimal(3),
            side=OrderSide.BUY,
            type=OrderType.MARKET,
            time_in_force=TimeInForce.GTC,
            order_class="oto",  # type: ignore[arg-type]
            stop_loss_stop_price=(price * Decimal("0.9")).quantize(Decimal("0.01")),
        )
        placed = sync_worker.submit_order(entry)
        broker_admin.sync()
        stop_leg = next(leg for leg in sync_worker.get_order(placed.id).legs)
        broker_admin.cancel_order(stop_leg.id)  # as if from the dashboard

        async def saw_fill_and_leg_cancel() -> bool:
            events = await handle.query(RecordingTradeWorkflow.seen_events)
            mine = {(e.event, e.order.id) for e in events}
            return ("fill", placed.id) in mine and ("canceled", stop_leg.id) in mine

        await _eventually(saw_fill_and_leg_cancel)
    finally:
        await sync.signal(BrokerSyncWorkflow.stop)
        await handle.signal(RecordingTradeWorkflow.finish)
    final = await sync.result()
    assert final.events_forwarded >= 2 or final.listener_runs == 0


async def test_broker_sync_is_a_singleton(
    client: Client, task_queue: str, sync_worker: AlpacaGateway
) -> None:
    workflow_id = f"broker-sync-{uuid.uuid4().hex[:6]}"
    run = BrokerSyncRun(settings=BrokerSyncInput(listen=False, poll_interval=timedelta(hours=1)))
    first = await client.start_workflow(
        BrokerSyncWorkflow.run, run, id=workflow_id, task_queue=task_queue
    )
    with pytest.raises(WorkflowAlreadyStartedError):
        await client.start_workflow(
            BrokerSyncWorkflow.run, run, id=workflow_id, task_queue=task_queue
        )
    await first.signal(BrokerSyncWorkflow.stop)
    await first.result()
