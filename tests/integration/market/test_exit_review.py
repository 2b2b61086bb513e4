"""EodExitReviewWorkflow: next-open exits for trades that break a rule, after the close only."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from temporalio.client import WorkflowHandle

from contracts.trade import workflow_id as trade_workflow_id
from tests.integration.market.conftest import MarketHarness
from trading.ledger_records import ExitUrgency, TradeStatus
from trading.ticks import protective_stop_price
from trading.trade_models import TradeSpec, TradeWorkflowInput
from workflows.trade import TradeWorkflow

pytestmark = pytest.mark.integration

# Tuesday 5 March 2024 16:30 New York, after the close; Thursday 4 July 2024 is a holiday.
AFTER_CLOSE = datetime(2024, 3, 5, 21, 30, tzinfo=UTC)
HOLIDAY_EVENING = datetime(2024, 7, 4, 21, 30, tzinfo=UTC)


async def _open(market: MarketHarness, symbol: str) -> str:
    bid = market.gateway.latest_quotes([symbol])[0].bid
    spec = TradeSpec(
        trade_id=f"{symbol.lower()}-{uuid.uuid4().hex[:10]}",
        symbol=symbol,
        qty=Decimal(5),
        stop_price=protective_stop_price(bid * Decimal("0.4")),  # far: the drop below keeps it
        check_interval=timedelta(seconds=2),
    )
    handle: WorkflowHandle[object, object] = await market.client.start_workflow(
        TradeWorkflow.run,
        TradeWorkflowInput(spec=spec),
        id=trade_workflow_id(spec.trade_id),
        task_queue=market.task_queue,
    )
    assert handle.id == trade_workflow_id(spec.trade_id)
    market.started.append(spec.trade_id)
    await market.wait_for(
        spec.trade_id,
        lambda v: v.status is TradeStatus.OPEN and v.state.stop_order_id is not None,
    )
    return spec.trade_id


async def test_trades_that_close_below_their_average_get_a_next_open_exit(
    market: MarketHarness,
) -> None:
    falling = await _open(market, "MSFT")
    rising = await _open(market, "NVDA")
    market.admin.advance(60)  # a jump applies from now on; the history before stays
    for symbol, factor in (("MSFT", "0.7"), ("NVDA", "1.3")):
        bid = market.gateway.latest_quotes([symbol])[0].bid
        market.admin.set_price(symbol, bid * Decimal(factor), volatility=0)
    market.admin.set_clock(AFTER_CLOSE)
    result = await market.run_review(ma_days=20, max_holding_days=10)
    assert not result.ended_early and result.session_date.isoformat() == "2024-03-05"
    decisions = {d.trade_id: d for d in result.decisions}
    assert decisions[falling].exit and decisions[falling].reason == "close_below_ma"
    assert not decisions[rising].exit and decisions[rising].reason == "keep"
    assert result.signalled == 1
    view = await market.wait_for(falling, lambda v: v.state.exit is not None)
    assert view.state.exit is not None and view.state.exit.urgency is ExitUrgency.NEXT_OPEN
    assert view.state.exit.reason.startswith("close_below_ma")
    kept = await market.wait_for(rising, lambda v: True)
    assert kept.state.exit is None
    planned = await market.audit("exit_planned")
    assert [row.trade_id for row in planned] == [falling]
    assert [row.trade_id for row in await market.audit("exit_review_keep")] == [rising]


async def test_the_maximum_holding_period_plans_an_exit(market: MarketHarness) -> None:
    held = await _open(market, "AMD")
    market.admin.set_clock(AFTER_CLOSE)
    result = await market.run_review(ma_days=1, max_holding_days=0)
    (decision,) = result.decisions
    assert decision.trade_id == held and decision.exit
    assert decision.reason == "max_holding_days"
    assert decision.detail == "heldSessions=0 maxHoldingDays=0"


async def test_a_review_on_a_day_without_a_session_ends_early(market: MarketHarness) -> None:
    market.admin.set_clock(HOLIDAY_EVENING)
    before = await market.count("audit_log")
    result = await market.run_review()
    assert result.ended_early and result.reason == "no_session" and result.decisions == []
    skipped = await market.audit("exit_review_skipped")
    assert len(skipped) == 1 and skipped[0].reason == "no_session"
    assert await market.count("audit_log") == before + 1
