"""Trade workflow harness: production worker, paper broker through alpaca-py, real ledger."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest
import pytest_asyncio
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle

from broker.alpaca import AlpacaGateway
from contracts.trade import workflow_id as trade_workflow_id
from ledger.orders import Orders
from ledger.risk import RiskEvents
from ledger.trades import Trades
from paperbroker.admin_client import AdminClient
from tests.integration.helpers import poll_until
from trading.broker_sync_models import BrokerSyncInput, BrokerSyncRun
from trading.ledger_records import OrderRecord, RiskEventRecord, TradeRecord
from trading.ticks import protective_stop_price
from trading.trade_models import TradeSpec, TradeStatusView, TradeWorkflowInput
from worker import create_worker
from workflows.broker_sync import BrokerSyncWorkflow
from workflows.trade import TradeWorkflow

logger = logging.getLogger("tests.trade")
T = TypeVar("T")
SYMBOL = "AAPL"
HISTORIES = Path(__file__).resolve().parents[2] / "histories"
# Flip to True and run this directory to re-record the replay histories of finished trades.
SAVE_HISTORIES = False


@dataclass
class TradeHarness:
    """Starts trades on a running worker and reads broker, ledger and workflow state."""

    client: Client
    task_queue: str
    admin: AdminClient
    gateway: AlpacaGateway
    pool: asyncpg.Pool
    handles: list[WorkflowHandle[Any, Any]] = field(default_factory=list)

    def market(self, symbol: str = SYMBOL) -> Decimal:
        """The current bid."""
        return self.gateway.latest_quotes([symbol])[0].bid

    def spec(self, **fields: Any) -> TradeSpec:
        """A long AAPL trade, stop 5% under the market, quick checks and backoff."""
        base: dict[str, Any] = {
            "trade_id": f"aapl-{uuid.uuid4().hex[:10]}",
            "symbol": SYMBOL,
            "qty": Decimal(10),
            "stop_price": protective_stop_price(self.market() * Decimal("0.95")),
            "check_interval": timedelta(seconds=2),
            "rescue_backoff_initial": timedelta(seconds=1),
            "rescue_backoff_max": timedelta(seconds=4),
        }
        base.update(fields)
        return TradeSpec(**base)

    async def start(self, spec: TradeSpec) -> WorkflowHandle[Any, Any]:
        """Start the trade's workflow."""
        handle = await self.client.start_workflow(
            TradeWorkflow.run,
            TradeWorkflowInput(spec=spec),
            id=trade_workflow_id(spec.trade_id),
            task_queue=self.task_queue,
        )
        self.handles.append(handle)
        return handle

    async def wait_for(
        self,
        handle: WorkflowHandle[Any, Any],
        predicate: Callable[[TradeStatusView], bool],
        within: float = 30.0,
    ) -> TradeStatusView:
        """Poll the status query until the predicate holds."""
        return await poll_until(lambda: handle.query(TradeWorkflow.status), predicate, within)

    async def settled(
        self, read: Callable[[], Awaitable[T]], check: Callable[[T], bool], within: float = 10.0
    ) -> T:
        """Read the ledger until `check` holds: a workflow shows a change in its query before
        the activity that writes it to the ledger has finished."""
        return await poll_until(read, check, within, every=0.1)

    async def open_trade(self, **fields: Any) -> tuple[WorkflowHandle[Any, Any], TradeStatusView]:
        """Start a trade and wait until it is OPEN with a stop order."""
        handle = await self.start(self.spec(**fields))
        view = await self.wait_for(
            handle, lambda v: v.status == "OPEN" and v.state.stop_order_id is not None
        )
        return handle, view

    async def trade_row(self, trade_id: str) -> TradeRecord:
        row = await Trades(self.pool).get(trade_id)
        assert row is not None
        return row

    async def orders(self, trade_id: str) -> list[OrderRecord]:
        return await Orders(self.pool).of_trade(trade_id)

    async def risk_events(self, trade_id: str) -> list[RiskEventRecord]:
        return [e for e in await RiskEvents(self.pool).recent(1000) if e.trade_id == trade_id]


@pytest_asyncio.fixture
async def trades(
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    activity_executor: ThreadPoolExecutor,
    broker_admin: AdminClient,
    gateway: AlpacaGateway,
    request: pytest.FixtureRequest,
) -> AsyncIterator[TradeHarness]:
    """A production worker on a fresh queue; running trades are terminated afterwards."""
    broker_admin.set_price(SYMBOL, volatility=0)
    harness = TradeHarness(client, task_queue, broker_admin, gateway, pool)
    async with create_worker(client, pool, task_queue, activity_executor, gateway.endpoint):
        try:
            yield harness
        finally:
            await finish(harness, request)


async def finish(harness: TradeHarness, request: pytest.FixtureRequest) -> None:
    """Terminate the trades still running; with SAVE_HISTORIES, save the finished ones."""
    for handle in harness.handles:
        description = await handle.describe()
        if description.status == WorkflowExecutionStatus.RUNNING:
            await handle.terminate("test finished")
        elif SAVE_HISTORIES:
            history = await handle.fetch_history()
            name = request.node.name.removeprefix("test_")[:60]
            (HISTORIES / f"trade_{name}.json").write_text(history.to_json())


@dataclass
class Synced:
    """Trades on the production worker with a BrokerSync listening and polling beside them."""

    harness: TradeHarness
    sync: WorkflowHandle[Any, Any]


SYNC_POLL_INTERVAL = timedelta(seconds=2)


@pytest_asyncio.fixture
async def synced(
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    activity_executor: ThreadPoolExecutor,
    broker_admin: AdminClient,
    gateway: AlpacaGateway,
    request: pytest.FixtureRequest,
) -> AsyncIterator[Synced]:
    """The production worker (BrokerSync activities included) with BrokerSync listening."""
    harness = TradeHarness(client, task_queue, broker_admin, gateway, pool)
    async with create_worker(client, pool, task_queue, activity_executor, gateway.endpoint):
        sync = await client.start_workflow(
            BrokerSyncWorkflow.run,
            BrokerSyncRun(settings=BrokerSyncInput(poll_interval=SYNC_POLL_INTERVAL)),
            id=f"broker-sync-{uuid.uuid4().hex[:8]}",
            task_queue=task_queue,
        )
        try:
            await eventually(lambda: broker_admin.state()["stream_listening"] == 1)
            yield Synced(harness, sync)
        finally:
            await sync.signal(BrokerSyncWorkflow.stop)
            await sync.result()
            await finish(harness, request)
    await pool.execute(
        "UPDATE trades SET status = 'CLOSED', closed_at = now(), "
        "close_reason = 'GHOST' WHERE closed_at IS NULL"
    )


async def eventually(check: Callable[[], bool], within_s: float = 20) -> None:
    """Wait until `check()` holds."""
    deadline = time.monotonic() + within_s
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)
