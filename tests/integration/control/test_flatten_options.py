"""Flatten closes option trades too: every open option trade is told to close (its workflow's
FORCE_EXIT) and the flatten is done only when the ledger shows none open.

The broker view flatten reads holds no option position (the stock gateway leaves options out),
so the option trade's own workflow closes the condor with one mleg order; an option trade with
no running workflow is reported and keeps the flatten from being done.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from alpaca.trading.client import TradingClient

from broker.option_orders import OptionOrdersGateway
from ledger.option_trades import OptionTrades
from tests.integration.control.conftest import ControlHarness
from tests.integration.helpers import terminate_running
from tests.integration.options.conftest import OptionHarness
from trading.control import FlattenReport, FlattenRequest
from trading.options.trade_models import FORCED_EXIT, OptionTradeResult, OptionTradeStatus
from workflows.control import TradingControlWorkflow

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
