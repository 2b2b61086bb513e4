"""Reconcile harness: production worker, paper broker through alpaca-py, real ledger."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest_asyncio
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError

from broker.alpaca import AlpacaGateway
from contracts.trade import workflow_id as trade_workflow_id
from ledger.runs import ReconcileRuns
from ledger.trades import Trades
from paperbroker.admin_client import AdminClient
from tests.integration.helpers import terminate_running
from trading.ledger_records import (
    CloseReason,
    ReconcileRunRecord,
    TradeClose,
    TradeCreate,
    TradeRecord,
    TradeStatus,
)
from trading.reconcile_models import (
    AutoManageInput,
    AutoManageResult,
    ReconcileInput,
    ReconcileResult,
)
from trading.trade_models import TradeStatusView
from worker import create_worker
from workflows.auto_manage import AutoManageWorkflow
from workflows.reconcile import ReconcileWorkflow
from workflows.trade import TradeWorkflow

SYMBOL = "AAPL"


@dataclass
class ReconcileHarness:
    """Runs reconciles and sweeps on a running worker; reads broker, ledger and workflows."""

    client: Client
    task_queue: str
    admin: AdminClient
    gateway: AlpacaGateway
    pool: asyncpg.Pool

    async def reconcile(self, **fields: Any) -> ReconcileResult:
        """Run one reconcile to completion (grace 0: ledger rows here are created just now)."""
        request = ReconcileInput(**{"grace": timedelta(0), "run_source": "test", **fields})
        result: ReconcileResult = await self.client.execute_workflow(
            ReconcileWorkflow.run,
            request,
            id=f"reconcile-{uuid.uuid4().hex[:12]}",
            task_queue=self.task_queue,
        )
        return result

    async def auto_manage(self) -> AutoManageResult:
        """Run one protection sweep to completion."""
        result: AutoManageResult = await self.client.execute_workflow(
            AutoManageWorkflow.run,
            AutoManageInput(),
            id=f"auto-manage-{uuid.uuid4().hex[:12]}",
            task_queue=self.task_queue,
        )
        return result

    async def ledger_trade(self, symbol: str = SYMBOL, qty: Decimal = Decimal(10)) -> str:
        """An OPEN trade in the ledger only: no workflow, nothing at the broker."""
        trade_id = f"ghost-{uuid.uuid4().hex[:10]}"
        await Trades(self.pool).create(
            TradeCreate(
                trade_id=trade_id,
                symbol=symbol,
                workflow_id=trade_workflow_id(trade_id),
                status=TradeStatus.OPEN,
                qty=qty,
                entry_price=Decimal(100),
                as_of=datetime.now(UTC) - timedelta(hours=1),
            )
        )
        return trade_id

    async def trade(self, trade_id: str) -> TradeRecord | None:
        return await Trades(self.pool).get(trade_id)

    async def open_trades(self) -> list[TradeRecord]:
        return await Trades(self.pool).list_open()

    async def run_record(self, run_id: str) -> ReconcileRunRecord:
        runs = await ReconcileRuns(self.pool).recent(100)
        return next(r for r in runs if r.run_id == run_id)

    def trade_handle(self, trade_id: str) -> WorkflowHandle[Any, Any]:
        return self.client.get_workflow_handle(trade_workflow_id(trade_id))

    async def wait_for(
        self,
        trade_id: str,
        predicate: Callable[[TradeStatusView], bool],
        within: float = 20.0,
    ) -> TradeStatusView:
        """Poll the trade workflow's status query until the predicate holds."""
        deadline = time.monotonic() + within
        view: TradeStatusView | None = None
        while time.monotonic() < deadline:
            try:
                view = await self.trade_handle(trade_id).query(TradeWorkflow.status)
            except RPCError:
                view = None  # not started yet
            if view is not None and predicate(view):
                return view
            await asyncio.sleep(0.2)
        raise AssertionError(f"condition not met in {within}s; last view: {view}")

    async def cleanup(self) -> None:
        """Stop every running trade guard and close what the ledger still holds open."""
        for trade in await self.open_trades():
            await terminate_running([self.trade_handle(trade.id)], "test finished")
            await Trades(self.pool).close(
                TradeClose(
                    trade_id=trade.id,
                    close_reason=CloseReason.EXTERNAL_CLOSE,
                    closed_at=datetime.now(UTC),
                )
            )


@pytest_asyncio.fixture
async def harness(
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    activity_executor: ThreadPoolExecutor,
    broker_admin: AdminClient,
    gateway: AlpacaGateway,
) -> AsyncIterator[ReconcileHarness]:
    """A production worker on a fresh queue over a fresh broker account."""
    broker_admin.set_price(SYMBOL, volatility=0)
    state = ReconcileHarness(client, task_queue, broker_admin, gateway, pool)
    async with create_worker(client, pool, task_queue, activity_executor, gateway.endpoint):
        try:
            yield state
        finally:
            await state.cleanup()
