"""Control harness: a production worker that can be restarted, trades and the control singleton."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg
import pytest_asyncio
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import QueryOrderStatus
from alpaca.trading.requests import GetOrdersRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.worker import Worker

from broker.alpaca import AlpacaGateway
from contracts.control import WORKFLOW_ID as CONTROL_WORKFLOW_ID
from ledger.audit import AuditLog
from paperbroker.admin_client import AdminClient
from paperbroker.testing import RunningBroker
from tests.integration.helpers import terminate_control, terminate_running
from tests.integration.trade.conftest import SYMBOL, TradeHarness
from trading.control import ControlInput, ControlState
from trading.models import AuditRow
from trading.ticks import protective_stop_price
from trading.trade_models import TradeStatusView
from worker import create_worker
from workflows.control import TradingControlWorkflow


@dataclass
class ControlHarness:
    """TradeHarness plus the control workflow and a worker that can be stopped and replaced."""

    trades: TradeHarness
    executor: ThreadPoolExecutor
    broker: RunningBroker
    worker: Worker | None = None
    worker_task: asyncio.Task[None] | None = None

    @property
    def client(self) -> Client:
        return self.trades.client

    async def start_worker(self) -> None:
        """Run a production worker on the test's task queue."""
        t = self.trades
        self.worker = create_worker(
            t.client, t.pool, t.task_queue, self.executor, t.gateway.endpoint
        )
        self.worker_task = asyncio.create_task(self.worker.run())

    async def stop_worker(self) -> None:
        """Shut the worker down as a deploy would."""
        if self.worker is not None and self.worker_task is not None:
            await self.worker.shutdown()
            with contextlib.suppress(Exception):
                await self.worker_task
        self.worker, self.worker_task = None, None

    async def open_trade(self, symbol: str, **fields: Any) -> TradeStatusView:
        """Open a trade in `symbol` (one trade per symbol: trades own a symbol's position)."""
        t = self.trades
        t.admin.set_price(symbol, volatility=0)
        stop = protective_stop_price(t.market(symbol) * Decimal("0.95"))
        trade_id = f"{symbol.lower()}-{uuid.uuid4().hex[:10]}"
        _, view = await t.open_trade(symbol=symbol, stop_price=stop, trade_id=trade_id, **fields)
        return view

    async def start_control(self, **settings: Any) -> WorkflowHandle[Any, Any]:
        """Start (or join) the control singleton on this test's queue."""
        return await self.client.start_workflow(
            TradingControlWorkflow.run,
            ControlInput(**settings),
            id=CONTROL_WORKFLOW_ID,
            task_queue=self.trades.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )

    async def control_state(self) -> ControlState:
        handle = self.client.get_workflow_handle(CONTROL_WORKFLOW_ID)
        state: ControlState = await handle.query(TradingControlWorkflow.state)
        return state

    async def wait_control(
        self, predicate: Callable[[ControlState], bool], within: float = 20.0
    ) -> ControlState:
        """Poll the state query until the predicate holds."""
        deadline = time.monotonic() + within
        state: ControlState | None = None
        while time.monotonic() < deadline:
            state = await self.control_state()
            if predicate(state):
                return state
            await asyncio.sleep(0.2)
        raise AssertionError(f"control condition not met in {within}s; last state: {state}")

    def every_open_order(self) -> list[str]:
        """Ids of every open order, legs of filled parents included (nested=False)."""
        trading = TradingClient(
            self.broker.key_id, self.broker.secret_key, url_override=self.broker.trading_url
        )
        request = GetOrdersRequest(status=QueryOrderStatus.OPEN, nested=False, limit=500)
        orders: Any = trading.get_orders(request)
        return [str(order.id) for order in orders]

    async def audit(self, action: str) -> list[AuditRow]:
        """Audit rows of this action, oldest first."""
        rows = await AuditLog(self.trades.pool).recent(1000)
        return [row for row in reversed(rows) if row.action == action]


@pytest_asyncio.fixture
async def control(
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    activity_executor: ThreadPoolExecutor,
    broker_admin: AdminClient,
    gateway: AlpacaGateway,
    paper_broker: RunningBroker,
) -> AsyncIterator[ControlHarness]:
    """A running production worker, no control workflow yet; everything stopped afterwards."""
    broker_admin.set_price(SYMBOL, volatility=0)
    # The id is a singleton across the test session.
    await terminate_control(client, "test finished")
    harness = ControlHarness(
        TradeHarness(client, task_queue, broker_admin, gateway, pool),
        activity_executor,
        paper_broker,
    )
    await harness.start_worker()
    try:
        yield harness
    finally:
        await terminate_control(client, "test finished")
        await terminate_running(harness.trades.handles, "test finished")
        await harness.stop_worker()
