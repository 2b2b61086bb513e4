"""Market-loop harness: production worker, paper broker through alpaca-py, a fresh ledger per test.

Each test gets its own database: the entry gate reads "today's" signals and trades, so rows
from another test would take part in its decisions.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError

from broker.alpaca import AlpacaGateway
from contracts.control import WORKFLOW_ID as CONTROL_WORKFLOW_ID
from contracts.trade import workflow_id as trade_workflow_id
from ledger.audit import AuditLog
from ledger.signals import Signals
from ledger.trades import Trades
from paperbroker.admin_client import AdminClient
from tests.integration.helpers import terminate_control, terminate_running
from trading.entry import MarketLoopInput, MarketLoopResult
from trading.exits import ExitReviewInput, ExitReviewResult
from trading.ledger_records import (
    EntryRunRecord,
    SignalCreate,
    SignalRecord,
    SignalScored,
    TradeCreate,
    TradeRecord,
    TradeStatus,
)
from trading.models import AuditRow
from trading.trade_models import TradeStatusView
from worker import create_worker
from workflows.exit_review import EodExitReviewWorkflow
from workflows.market_loop import MarketLoopWorkflow
from workflows.trade import TradeWorkflow

SYMBOLS = ("AAPL", "MSFT", "NVDA", "TSLA", "AMD")


@pytest.fixture
def database_url(fresh_database_url: str) -> str:
    """A fresh migrated database per test (overrides the module-scoped one)."""
    return fresh_database_url


@pytest.fixture
def pool(fresh_pool: asyncpg.Pool) -> asyncpg.Pool:
    """A pool on this test's database."""
    return fresh_pool


@dataclass
class MarketHarness:
    """Runs market loops and exit reviews on a running worker; reads broker, ledger, workflows."""

    client: Client
    task_queue: str
    admin: AdminClient
    gateway: AlpacaGateway
    pool: asyncpg.Pool
    started: list[str] = field(default_factory=list)

    async def run_loop(self, **fields: Any) -> MarketLoopResult:
        """One market-loop run to completion (no scan unless a watchlist is given)."""
        request = MarketLoopInput(**{"run_source": "test", "truth_attempts": 2, **fields})
        result: MarketLoopResult = await self.client.execute_workflow(
            MarketLoopWorkflow.run,
            request,
            id=f"market-loop-test-{uuid.uuid4().hex[:10]}",
            task_queue=self.task_queue,
        )
        self.started += [o.trade_id for o in result.decisions if o.trade_id]
        return result

    async def run_review(self, **fields: Any) -> ExitReviewResult:
        """One EOD exit review to completion."""
        result: ExitReviewResult = await self.client.execute_workflow(
            EodExitReviewWorkflow.run,
            ExitReviewInput(**{"run_source": "test", **fields}),
            id=f"exit-review-test-{uuid.uuid4().hex[:10]}",
            task_queue=self.task_queue,
        )
        return result

    async def scored_signal(
        self, symbol: str, score: str = "0.9", strategy: str = "test"
    ) -> SignalRecord:
        """A SCORED signal created now."""
        signals = Signals(self.pool)
        key = f"{strategy}:{symbol}:{uuid.uuid4().hex[:8]}"
        await signals.insert(
            SignalCreate(signal_key=key, symbol=symbol, strategy=strategy, features={})
        )
        written = await signals.mark_scored(
            SignalScored(signal_key=key, score=Decimal(score), confidence=Decimal("0.8"))
        )
        return written.signal

    async def ghost_trade(self, symbol: str) -> str:
        """An OPEN trade in the ledger only: no workflow, nothing at the broker."""
        trade_id = f"ghost-{uuid.uuid4().hex[:10]}"
        await Trades(self.pool).create(
            TradeCreate(
                trade_id=trade_id,
                symbol=symbol,
                workflow_id=trade_workflow_id(trade_id),
                status=TradeStatus.OPEN,
                qty=Decimal(10),
                entry_price=Decimal(100),
                as_of=datetime.now(UTC) - timedelta(hours=1),
            )
        )
        return trade_id

    async def entry_run(self, run_id: str) -> EntryRunRecord:
        row = await self.pool.fetchrow(
            "SELECT id, run_id, at, entered, skipped, reason, detail FROM entry_runs "
            "WHERE run_id = $1",
            run_id,
        )
        assert row is not None, f"no entry run {run_id}"
        return EntryRunRecord(**dict(row))

    async def count(self, table: str) -> int:
        value = await self.pool.fetchval(f"SELECT count(*) FROM {table}")
        return int(value)

    async def audit(self, action: str) -> list[AuditRow]:
        rows = await AuditLog(self.pool).recent(1000)
        return [row for row in reversed(rows) if row.action == action]

    async def open_trades(self) -> list[TradeRecord]:
        return await Trades(self.pool).list_open()

    def trade_handle(self, trade_id: str) -> WorkflowHandle[Any, Any]:
        return self.client.get_workflow_handle(trade_workflow_id(trade_id))

    async def wait_for(
        self, trade_id: str, predicate: Callable[[TradeStatusView], bool], within: float = 20.0
    ) -> TradeStatusView:
        """Poll the trade workflow's status query until the predicate holds."""
        deadline = time.monotonic() + within
        view: TradeStatusView | None = None
        while time.monotonic() < deadline:
            try:
                view = await self.trade_handle(trade_id).query(TradeWorkflow.status)
            except RPCError:
                view = None
            if view is not None and predicate(view):
                return view
            await asyncio.sleep(0.2)
        raise AssertionError(f"condition not met in {within}s; last view: {view}")

    async def cleanup(self) -> None:
        """Stop every trade workflow this test started or the ledger holds, and the control."""
        ids = {*self.started, *(t.id for t in await self.open_trades())}
        handles = [self.trade_handle(i) for i in ids]
        handles.append(self.client.get_workflow_handle(CONTROL_WORKFLOW_ID))
        await terminate_running(handles, "test finished")


@pytest_asyncio.fixture
async def market(
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    activity_executor: ThreadPoolExecutor,
    broker_admin: AdminClient,
    gateway: AlpacaGateway,
) -> AsyncIterator[MarketHarness]:
    """A production worker on a fresh queue, a fresh broker account and ledger."""
    for symbol in SYMBOLS:
        broker_admin.set_price(symbol, volatility=0)
    # The control id is a singleton across the session.
    await terminate_control(client, "test starting")
    harness = MarketHarness(client, task_queue, broker_admin, gateway, pool)
    async with create_worker(client, pool, task_queue, activity_executor, gateway.endpoint):
        try:
            yield harness
        finally:
            await harness.cleanup()
