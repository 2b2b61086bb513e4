"""Flatten closes option trades too: every open option trade is told to close (its workflow's
FORCE_EXIT) and the flatten is done only when the ledger shows none open.

The broker view flatten reads holds no option position (the stock gateway leaves options out),
so the option trade's own workflow closes the condor with one mleg order; an option trade with
no running workflow is reported and keeps the flatten from being done. Every round tells every
open option trade again: a trade whose workflow reconcile restarts (a new run of the same id,
OPEN) after the first signal, or after it was found with no running workflow, never saw
FORCE_EXIT, and is closed all the same.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from alpaca.trading.client import TradingClient
from temporalio.client import WorkflowHandle

from broker.option_orders import OptionOrdersGateway
from contracts.option_trade import workflow_id
from ledger.option_trades import OptionTrades
from tests.integration.control.conftest import ControlHarness
from tests.integration.helpers import terminate_running
from tests.integration.options.conftest import OptionHarness
from trading.control import FlattenReport, FlattenRequest
from trading.options.trade_models import (
    FORCED_EXIT,
    OptionTradeInput,
    OptionTradeResult,
    OptionTradeSpec,
    OptionTradeState,
    OptionTradeStatus,
)
from workflows.control import TradingControlWorkflow
from workflows.option_trade import OptionTradeWorkflow

pytestmark = pytest.mark.integration


def _options(control: ControlHarness) -> OptionHarness:
    """Option trades on the control harness's worker, queue, broker and ledger."""
    t = control.trades
    endpoint = t.gateway.endpoint
    trading = TradingClient(
        endpoint.key_id.get_secret_value(),
        endpoint.secret_key.get_secret_value(),
        paper=True,
        url_override=endpoint.trading_url,
    )
    return OptionHarness(
        t.client, t.task_queue, t.admin, OptionOrdersGateway(endpoint), trading, t.pool
    )


async def _new_run(
    options: OptionHarness, spec: OptionTradeSpec, credit: Decimal | None, task_queue: str
) -> WorkflowHandle[Any, Any]:
    """A new run of the trade's workflow id, OPEN at its credit, as reconcile's restart starts
    one (the legs are held, the row is OPEN): a run that never saw the first run's signals."""
    handle = await options.client.start_workflow(
        OptionTradeWorkflow.run,
        OptionTradeInput(
            spec=spec,
            state=OptionTradeState(
                status=OptionTradeStatus.OPEN, credit=credit, note="restarted by the test"
            ),
        ),
        id=workflow_id(spec.trade_id),
        task_queue=task_queue,
    )
    options.handles.append(handle)
    return handle


async def test_flatten_closes_an_open_condor_and_reports_it(control: ControlHarness) -> None:
    options = _options(control)
    stock = await control.open_trade("AAPL")
    spec = options.spec()
    handle = await options.start(spec)
    try:
        await options.wait_for(handle, lambda v: v.status is OptionTradeStatus.OPEN)
        assert len(options.option_positions()) == 4
        control_handle = await control.start_control()

        report: FlattenReport = await control_handle.execute_update(
            TradingControlWorkflow.flatten,
            FlattenRequest(reason="end of day", actor="ops", timeout=timedelta(seconds=45)),
        )

        assert report.done, report
        assert report.signalled_option_trades == [spec.trade_id]
        assert report.option_trades_left == [] and report.unreachable_option_trades == []
        assert report.signalled_trades == [stock.trade_id]
        assert report.note == (
            "flat: no position and no open order at the broker; 1 option trades closed"
        )
        result: OptionTradeResult = await handle.result()
        assert result.status is OptionTradeStatus.CLOSED
        assert result.exit_reason == FORCED_EXIT == "forced"
        assert options.option_positions() == {}
        assert control.trades.gateway.get_positions() == []
        row = await OptionTrades(options.pool).get(spec.trade_id)
        assert row is not None and row.status is OptionTradeStatus.CLOSED
        assert row.exit_reason == "forced"
        done = await control.audit("flatten_done")
        assert done[-1].detail["signalled_option_trades"] == 1
        assert done[-1].detail["option_trades_left"] == ""
    finally:
        await terminate_running(options.handles, "test finished")


async def test_an_option_trade_without_a_workflow_keeps_the_flatten_from_being_done(
    control: ControlHarness,
) -> None:
    """A ledger row open with no workflow behind it: flatten cannot close it, says so, and ends
    not flat (reconcile closes such a ghost once the broker shows none of its legs)."""
    legs = [{"symbol": f"SPY240419P0050{n}000", "side": "buy", "ratio_qty": 1} for n in range(4)]
    at = datetime(2024, 3, 5, 15, 0, tzinfo=UTC)
    await control.trades.pool.execute(
        """
        INSERT INTO option_trades (id, underlying, status, status_rank, expiry, qty, legs, width,
                                   credit, max_loss, workflow_id, opened_at, status_at)
        VALUES ('ic-orphan', 'SPY', 'OPEN', 1, $1, 1, $2::jsonb, 5, 1, 400,
                'option-trade-ic-orphan', $3, $3)
        """,
        date(2024, 4, 19),
        json.dumps(legs),
        at,
    )
    try:
        control_handle = await control.start_control()
        report: FlattenReport = await control_handle.execute_update(
            TradingControlWorkflow.flatten,
            FlattenRequest(reason="end of day", actor="ops", timeout=timedelta(seconds=3)),
        )
        assert not report.done, report
        assert report.unreachable_option_trades == ["ic-orphan"]
        assert report.signalled_option_trades == []
        assert report.option_trades_left == ["ic-orphan"]
        assert "option trades ic-orphan (no running workflow) left" in report.note, report.note
        incomplete = await control.audit("flatten_incomplete")
        assert incomplete[-1].detail["option_trades_left"] == "ic-orphan"
    finally:
        await control.trades.pool.execute("DELETE FROM option_trades WHERE id = 'ic-orphan'")


async def test_an_option_trade_restarted_after_the_signal_is_told_again_and_closed(
    control: ControlHarness,
) -> None:
    """The run FORCE_EXIT reached ends before acting on it (here: a run no worker serves, then
    terminated) and reconcile restarts the trade OPEN: the next rounds tell the new run, which
    closes the condor, and the flatten is done."""
    options = _options(control)
    spec = options.spec()
    first = await options.start(spec)
    opened = await options.wait_for(first, lambda v: v.status is OptionTradeStatus.OPEN)
    credit = opened.state.credit
    await first.terminate("test: a run on a queue no worker serves takes the signal instead")
    told = await _new_run(options, spec, credit, f"tq-unserved-{uuid.uuid4()}")
    control_handle = await control.start_control()
    flatten = asyncio.create_task(
        control_handle.execute_update(
            TradingControlWorkflow.flatten,
            FlattenRequest(reason="end of day", actor="ops", timeout=timedelta(seconds=30)),
        )
    )
    try:
        await control.wait_control(
            lambda s: s.flatten is not None and spec.trade_id in s.flatten.signalled_option_trades
        )
        await told.terminate("test: the run told to close ended with the signal unread")
        restarted = await _new_run(options, spec, credit, options.task_queue)

        report: FlattenReport = await flatten

        assert report.done, report
        assert report.signalled_option_trades == [spec.trade_id]
        assert report.unreachable_option_trades == [] and report.option_trades_left == []
        result: OptionTradeResult = await restarted.result()
        assert result.status is OptionTradeStatus.CLOSED
        assert result.exit_reason == FORCED_EXIT
        assert options.option_positions() == {}
        row = await OptionTrades(options.pool).get(spec.trade_id)
        assert row is not None and row.status is OptionTradeStatus.CLOSED
    finally:
        flatten.cancel()
        await terminate_running(options.handles, "test finished")


async def test_an_option_trade_unreachable_then_restarted_is_closed_and_reported_signalled(
    control: ControlHarness,
) -> None:
    """Found with no running workflow in the first rounds, then restarted OPEN by reconcile:
    told to close like any other, and reported by its latest delivery (signalled, not
    unreachable)."""
    options = _options(control)
    spec = options.spec()
    first = await options.start(spec)
    opened = await options.wait_for(first, lambda v: v.status is OptionTradeStatus.OPEN)
    await first.terminate("test: its workflow ended, the row stays OPEN")
    control_handle = await control.start_control()
    flatten = asyncio.create_task(
        control_handle.execute_update(
            TradingControlWorkflow.flatten,
            FlattenRequest(reason="end of day", actor="ops", timeout=timedelta(seconds=30)),
        )
    )
    try:
        seen = await control.wait_control(
            lambda s: s.flatten is not None and spec.trade_id in s.flatten.unreachable_option_trades
        )
        assert seen.flatten is not None and seen.flatten.signalled_option_trades == []
        restarted = await _new_run(options, spec, opened.state.credit, options.task_queue)

        report: FlattenReport = await flatten

        assert report.done, report
        assert report.signalled_option_trades == [spec.trade_id]
        assert report.unreachable_option_trades == []
        result: OptionTradeResult = await restarted.result()
        assert result.status is OptionTradeStatus.CLOSED
        assert result.exit_reason == FORCED_EXIT
        assert options.option_positions() == {}
    finally:
        flatten.cancel()
        await terminate_running(options.handles, "test finished")
