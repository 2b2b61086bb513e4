"""Two-phase exit: decided after the close, executed in the next session's window, once.

Runs on the time-skipping dev server: the trade's virtual clock is fast-forwarded overnight
while the paper broker's manual clock is moved to the same market moment.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import QueryOrderStatus
from alpaca.trading.requests import GetOrdersRequest
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from broker.alpaca import AlpacaGateway
from contracts.trade import workflow_id as trade_workflow_id
from ledger.trades import Trades
from paperbroker.admin_client import AdminClient
from paperbroker.testing import RunningBroker
from tests.integration.trade.conftest import HISTORIES, SAVE_HISTORIES
from trading.ledger_records import ExitUrgency, TradeStatus
from trading.ticks import protective_stop_price
from trading.trade_models import ForceExit, TradeSpec, TradeStatusView, TradeWorkflowInput
from worker import create_worker
from workflows.trade import TradeWorkflow

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SYMBOL = "NVDA"
AFTER_CLOSE = datetime(2024, 3, 5, 21, 30, tzinfo=UTC)  # Tue 16:30 New York


async def _until(
    handle: WorkflowHandle[Any, Any], check: Any, within: float = 30
) -> TradeStatusView:
    deadline = time.monotonic() + within
    view: TradeStatusView | None = None
    while time.monotonic() < deadline:
        view = await handle.query(TradeWorkflow.status)
        if check(view):
            return view
        await asyncio.sleep(0.2)
    raise AssertionError(f"condition not met; last view {view}")


async def test_next_open_exit_runs_once_in_the_next_window_across_a_worker_restart(
    time_skipping_env: WorkflowEnvironment,
    pool: asyncpg.Pool,
    gateway: AlpacaGateway,
    paper_broker: RunningBroker,
    broker_admin: AdminClient,
    activity_executor: ThreadPoolExecutor,
) -> None:
    env, client = time_skipping_env, time_skipping_env.client
    task_queue = f"tq-{uuid.uuid4()}"
    broker_admin.set_price(SYMBOL, volatility=0)
    market = gateway.latest_quotes([SYMBOL])[0].bid
    spec = TradeSpec(
        trade_id=f"nvda-{uuid.uuid4().hex[:10]}",
        symbol=SYMBOL,
        qty=Decimal(4),
        stop_price=protective_stop_price(market * Decimal("0.9")),
        check_interval=timedelta(hours=6),
    )
    async with create_worker(client, pool, task_queue, activity_executor, gateway.endpoint):
        with env.with_time_skipping_disabled():  # real time until we fast-forward
            handle = await client.start_workflow(
                TradeWorkflow.run,
                TradeWorkflowInput(spec=spec),
                id=trade_workflow_id(spec.trade_id),
                task_queue=task_queue,
            )
        await _until(handle, lambda v: v.status == "OPEN" and v.state.stop_order_id)
        broker_admin.set_clock(AFTER_CLOSE)  # the session is over: decide after the close
        await handle.signal(
            TradeWorkflow.force_exit, ForceExit(urgency=ExitUrgency.NEXT_OPEN, reason="eod review")
        )
        planned = await _until(handle, lambda v: v.status == "EXIT_PLANNED")
    plan = planned.state.exit
    assert plan is not None and plan.window_start is not None and plan.window_end is not None
    # Next session: Wed 6 March 2024, 09:30 New York; the window starts 5 minutes later.
    assert plan.window_start == datetime(2024, 3, 6, 14, 35, tzinfo=UTC)
    row = await Trades(pool).get(spec.trade_id)
    assert row is not None and row.status is TradeStatus.EXIT_PLANNED
    assert row.exit_intent is not None

    # A new worker process (the old one is gone) executes the plan in the window.
    async with create_worker(client, pool, task_queue, activity_executor, gateway.endpoint):
        broker_admin.set_clock(plan.window_start + timedelta(minutes=1))
        overnight = plan.window_start - AFTER_CLOSE + timedelta(minutes=2)
        await env.fast_forward(handle, overnight)
        await _until(
            handle, lambda v: v.state.exit is not None and v.state.exit.exit_order_id is not None
        )
        broker_admin.sync()
        description = await handle.describe()
        if description.status == WorkflowExecutionStatus.RUNNING:  # fill not yet seen
            await env.fast_forward(handle, timedelta(minutes=30))
        result = await asyncio.wait_for(handle.result(), timeout=60)
    assert result.status == TradeStatus.CLOSED
    if SAVE_HISTORIES:
        history = await handle.fetch_history()
        (HISTORIES / "trade_next_open_exit_across_a_worker_restart.json").write_text(
            history.to_json()
        )

    trading = TradingClient(
        paper_broker.key_id,
        paper_broker.secret_key,
        paper=True,
        url_override=paper_broker.trading_url,
    )
    orders: Any = trading.get_orders(
        GetOrdersRequest(status=QueryOrderStatus.ALL, limit=500, symbols=[SYMBOL])
    )
    exits = [o for o in orders if o.client_order_id.startswith(f"{spec.trade_id}.ex.")]
    assert len(exits) == 1  # executed exactly once
    assert exits[0].filled_at is not None and exits[0].filled_at >= plan.window_start
    assert gateway.probe_position(SYMBOL).outcome.value == "absent"
    final = await Trades(pool).get(spec.trade_id)
    assert final is not None and final.status is TradeStatus.CLOSED
