"""OptionTradeWorkflow under the faults a review found, on the real stack: a refused close backs
off instead of resending every second; no order goes out while the broker's clock says the
market is closed, and the close goes at the next open; a run restarted by reconcile takes over
the closing order the ended run left working instead of sending a second; a trade whose ledger
row was closed before it sent anything sends nothing."""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from decimal import Decimal

import asyncpg
from alpaca.trading.enums import OrderStatus as SdkOrderStatus
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from broker.alpaca import AlpacaGateway
from contracts.option_trade import workflow_id
from ledger.option_trades import OptionTrades
from paperbroker.admin_client import AdminClient
from tests.conftest import SESSION_START
from tests.integration.options.conftest import (
    WEEKLY,
    OptionHarness,
    marketable_spec,
    option_harness,
)
from trading.options.records import OptionTradeGhost, option_trade_write
from trading.options.trade_models import (
    FORCED_EXIT,
    MlegOrderIntent,
    OptionForceExit,
    OptionTradeInput,
    OptionTradeResult,
    OptionTradeState,
    OptionTradeStatus,
    closing_legs,
    opening_legs,
)
from worker import create_worker
from workflows.option_trade import OptionTradeWorkflow

REFUSED = {"code": 40310000, "message": "order rejected by the test"}


def _closes(harness: OptionHarness, trade_id: str) -> dict[str, SdkOrderStatus]:
    return {
        o.client_order_id: o.status
        for o in harness.mleg_orders(trade_id)
        if o.client_order_id.startswith(f"{trade_id}-close-")
    }


async def _check_timers(handle: WorkflowHandle[object, object]) -> list[timedelta]:
    """The durations of the trade's 'next check' timers, in order."""
    history = await handle.fetch_history()
    return [
        e.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta()
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED
    ]


async def test_a_refused_close_waits_twice_as_long_each_time_then_closes(
    option_trades: OptionHarness,
) -> None:
    spec = marketable_spec(option_trades, WEEKLY, check_interval=timedelta(seconds=30))
    handle = await option_trades.start(spec)
    await option_trades.wait_for(handle, lambda v: v.status is OptionTradeStatus.OPEN)
    timers_open = len(await _check_timers(handle))
    rule = option_trades.admin.add_fault(method="POST", path="/v2/orders", status=403, body=REFUSED)
    try:
        await handle.signal(OptionTradeWorkflow.force_exit, OptionForceExit(reason="test"))
        view = await option_trades.wait_for(
            handle, lambda v: v.state.close_refusals >= 3, within=30
        )
        assert (
            view.status is OptionTradeStatus.CLOSING and "refused (3 in a row)" in view.state.note
        )
    finally:
        option_trades.admin.remove_fault(rule)
    # After each refusal the next try waited 2 s, then 4 s (a second each before the change).
    waits = (await _check_timers(handle))[timers_open:]
    assert [w for w in waits if w > timedelta(seconds=1)][:2] == [
        timedelta(seconds=2),
        timedelta(seconds=4),
    ], waits
    result: OptionTradeResult = await asyncio.wait_for(handle.result(), timeout=40)
    assert result.status is OptionTradeStatus.CLOSED and result.exit_reason == FORCED_EXIT
    closes = _closes(option_trades, spec.trade_id)
    assert list(closes.values()) == [SdkOrderStatus.FILLED]  # the refused ones never existed
    assert option_trades.option_positions() == {}


NEW_YORK_AFTER_CLOSE = SESSION_START.replace(hour=21, minute=30)  # 16:30 New York (EST: UTC-5)
NEXT_SESSION = SESSION_START + timedelta(days=1)


async def test_no_close_goes_out_while_the_market_is_closed_and_it_goes_at_the_open(
    time_skipping_env: WorkflowEnvironment,
    pool: asyncpg.Pool,
    gateway: AlpacaGateway,
    broker_admin: AdminClient,
    activity_executor: ThreadPoolExecutor,
) -> None:
    env, client = time_skipping_env, time_skipping_env.client
    harness = option_harness(client, f"tq-{uuid.uuid4()}", broker_admin, gateway, pool)
    spec = marketable_spec(harness, WEEKLY, check_interval=timedelta(hours=1))
    async with create_worker(client, pool, harness.task_queue, activity_executor, gateway.endpoint):
        with env.with_time_skipping_disabled():
            handle = await harness.start(spec)
        try:
            await harness.wait_for(handle, lambda v: v.status is OptionTradeStatus.OPEN)
            broker_admin.set_clock(NEW_YORK_AFTER_CLOSE)
            await handle.signal(OptionTradeWorkflow.force_exit, OptionForceExit(reason="test"))
            waiting = await harness.wait_for(handle, lambda v: v.state.wait_until is not None)
            assert "market closed" in waiting.state.note
            assert _closes(harness, spec.trade_id) == {}  # nothing sent while closed

            broker_admin.set_clock(NEXT_SESSION)
            assert waiting.state.wait_until is not None
            await env.fast_forward(handle, timedelta(hours=18))
            result: OptionTradeResult = await asyncio.wait_for(handle.result(), timeout=30)
        finally:
            if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                await handle.terminate("test finished")
    assert result.status is OptionTradeStatus.CLOSED and result.exit_reason == FORCED_EXIT
    assert list(_closes(harness, spec.trade_id).values()) == [SdkOrderStatus.FILLED]
    assert harness.option_positions() == {}


async def test_a_restarted_trade_takes_over_the_close_its_ended_run_left_working(
    option_trades: OptionHarness,
) -> None:
    spec = marketable_spec(option_trades, WEEKLY)
    first = await option_trades.start(spec)
    view = await option_trades.wait_for(first, lambda v: v.status is OptionTradeStatus.OPEN)
    await first.terminate("the worker's run ended")
    # The ended run's close attempt 1 is working (attempt 0 was refused: no such order); it
    # bids a cent, so it stays working until someone cancels it.
    working = option_trades.options.submit_mleg(
        MlegOrderIntent(
            client_order_id=f"{spec.trade_id}-close-1",
            qty=1,
            legs=closing_legs(opening_legs(spec.plan)),
            limit_price=Decimal("0.01"),
        )
    )
    assert not working.is_final
    # Reconcile's restart: a new run, CLOSING, its attempt counter lost.
    state = OptionTradeState(
        status=OptionTradeStatus.CLOSING, credit=view.state.credit, exit_reason="restarted_close"
    )
    second = await option_trades.client.start_workflow(
        OptionTradeWorkflow.run,
        OptionTradeInput(spec=spec, state=state, resume_orders=True),
        id=workflow_id(spec.trade_id),
        task_queue=option_trades.task_queue,
    )
    option_trades.handles.append(second)
    result: OptionTradeResult = await asyncio.wait_for(second.result(), timeout=40)
    assert result.status is OptionTradeStatus.CLOSED
    # It took attempt 1 over (cancelled it to reprice) and never sent attempt 0 beside it (a
    # broker holding the legs for attempt 1 refuses that one; a looser one would fill it).
    history = await second.fetch_history()
    failed = [
        e for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED
    ]
    assert failed == []
    assert _closes(option_trades, spec.trade_id) == {
        f"{spec.trade_id}-close-1": SdkOrderStatus.CANCELED,
        f"{spec.trade_id}-close-2": SdkOrderStatus.FILLED,
    }
    assert option_trades.option_positions() == {}


async def test_a_trade_whose_row_was_closed_before_it_sent_anything_sends_nothing(
    option_trades: OptionHarness,
) -> None:
    spec = marketable_spec(option_trades, WEEKLY)
    rows = OptionTrades(option_trades.pool)
    at = datetime.now().astimezone()
    await rows.record(option_trade_write(spec, OptionTradeState(), workflow_id(spec.trade_id), at))
    # The start was given up (or reconcile found no workflow): the row is closed.
    await rows.close_ghost(OptionTradeGhost(trade_id=spec.trade_id, reason="not started", at=at))
    handle = await option_trades.start(spec)
    result: OptionTradeResult = await asyncio.wait_for(handle.result(), timeout=20)
    assert result.status is OptionTradeStatus.ENTRY_FAILED
    view = await handle.query(OptionTradeWorkflow.status)
    assert "ledger row was closed (not started) before any order was sent" in view.state.note
    assert option_trades.mleg_orders(spec.trade_id) == []
