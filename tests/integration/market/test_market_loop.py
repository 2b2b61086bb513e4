"""MarketLoopWorkflow against the paper broker, the real ledger and the production worker."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from contracts import control
from tests.integration.market.conftest import MarketHarness
from trading.broker_models import OrderType
from trading.control import ControlInput, ControlMode, ControlRequest
from trading.entry_gate import ControlPresence
from trading.ledger_records import SignalStatus, TradeStatus
from trading.risk import RiskLimits
from workflows.control import TradingControlWorkflow

pytestmark = pytest.mark.integration

# Thursday 4 July 2024 11:30 New York: Independence Day, no session.
HOLIDAY = datetime(2024, 7, 4, 15, 30, tzinfo=UTC)


async def test_a_scored_signal_is_entered_and_its_trade_guarded_by_an_active_stop(
    market: MarketHarness,
) -> None:
    signal = await market.scored_signal("AAPL", score="0.9")
    result = await market.run_loop(
        risk=RiskLimits(
            risk_per_trade_usd=Decimal(50),
            default_stop_distance=Decimal("0.05"),
            daily_loss_limit_pct=None,
        )
    )
    assert (result.entered, result.skipped, result.reason) == (1, 0, "entered")
    (outcome,) = result.decisions
    assert outcome.signal_key == signal.signal_key and outcome.trade_id is not None
    decision = outcome.decision
    assert decision.enter and decision.qty is not None and decision.stop_price is not None
    # floor(risk / (entry - stop)), stop 5 % under the ask, on the tick grid.
    assert decision.entry_price is not None
    assert decision.qty == (Decimal(50) / (decision.entry_price - decision.stop_price)) // 1
    view = await market.wait_for(
        outcome.trade_id,
        lambda v: v.status is TradeStatus.OPEN and v.state.stop_order_id is not None,
    )
    assert view.state.stop_order_id is not None
    stop = market.gateway.get_order(view.state.stop_order_id)
    assert stop.is_active and stop.type is OrderType.STOP and stop.qty == decision.qty
    assert stop.stop_price == decision.stop_price
    (trade,) = await market.open_trades()
    assert trade.id == outcome.trade_id and trade.signal_id == signal.id
    run = await market.entry_run(result.run_id)
    assert (run.entered, run.skipped, run.reason) == (1, 0, "entered")
    (audit,) = await market.audit("entry_started")
    assert audit.trade_id == outcome.trade_id and audit.detail["signal_key"] == signal.signal_key

    # The same signal is never entered twice: the next run does not see it again, and a second
    # signal for the symbol the trade holds is an add-on (off by default), never a new trade.
    await market.scored_signal("AAPL", score="0.95", strategy="other")
    again = await market.run_loop()
    assert again.entered == 0
    assert [o.decision.reason for o in again.decisions] == ["addon_disabled"]


async def test_the_broker_position_count_gates_entries_even_when_the_ledger_shows_none(
    market: MarketHarness,
) -> None:
    for symbol in ("MSFT", "NVDA", "TSLA"):
        market.admin.open_position(symbol, 5)
    assert await market.open_trades() == []  # the ledger is stale: it knows of no trade
    await market.scored_signal("AAPL")
    result = await market.run_loop(max_open_positions=3, reconcile=False)
    assert result.entered == 0 and result.broker_positions == 3
    (outcome,) = result.decisions
    assert outcome.decision.reason == "max_open_positions"
    assert outcome.decision.detail == "brokerPositionsCount=3 maxOpenPositions=3"
    run = await market.entry_run(result.run_id)
    assert (run.reason, run.detail, run.entered, run.skipped) == (
        "max_open_positions",
        "brokerPositionsCount=3 maxOpenPositions=3",
        0,
        1,
    )
    (audit,) = await market.audit("entry_skipped")
    assert audit.reason == "max_open_positions"
    assert audit.detail["detail"] == "brokerPositionsCount=3 maxOpenPositions=3"
    assert market.gateway.get_open_orders() == []


async def test_ghost_open_trades_in_the_ledger_do_not_block_entries(
    market: MarketHarness,
) -> None:
    for symbol in ("MSFT", "NVDA", "TSLA"):
        await market.ghost_trade(symbol)
    await market.scored_signal("AAPL")
    result = await market.run_loop(max_open_positions=3, reconcile=False)
    assert result.broker_positions == 0
    assert (result.entered, result.reason) == (1, "entered")
    (outcome,) = result.decisions
    assert outcome.trade_id is not None
    await market.wait_for(outcome.trade_id, lambda v: v.status is TradeStatus.OPEN)


async def test_a_halted_control_skips_entries_with_its_reason(market: MarketHarness) -> None:
    handle = await market.client.start_workflow(
        TradingControlWorkflow.run,
        ControlInput(),
        id=control.WORKFLOW_ID,
        task_queue=market.task_queue,
    )
    await handle.signal(TradingControlWorkflow.halt, ControlRequest(reason="drill", actor="test"))
    await market.scored_signal("AAPL")
    result = await market.run_loop()
    assert result.gate is not None and not result.gate.open
    assert result.control is not None and result.control.mode is ControlMode.HALTED
    assert result.entered == 0 and result.reason == "control_halted"
    (outcome,) = result.decisions
    assert outcome.decision.reason == "control_halted" and "drill" in outcome.decision.detail
    run = await market.entry_run(result.run_id)
    assert run.reason == "control_halted" and "HALTED" in run.detail
    assert await market.open_trades() == []


async def test_entries_are_allowed_and_noted_when_no_control_workflow_runs(
    market: MarketHarness,
) -> None:
    await market.scored_signal("AAPL")
    result = await market.run_loop(reconcile=False)
    assert result.gate is not None and result.gate.open
    assert result.control is not None
    assert result.control.presence in (ControlPresence.NOT_STARTED, ControlPresence.NOT_RUNNING)
    assert result.gate.note.startswith("control_not_started")
    assert result.entered == 1


async def test_without_broker_truth_nothing_is_entered(market: MarketHarness) -> None:
    await market.scored_signal("AAPL")
    market.admin.add_fault(method="GET", path="/v2/positions", status=500)
    try:
        result = await market.run_loop(truth_attempts=2)
    finally:
        market.admin.clear_faults()
    assert result.broker_positions is None and result.reconcile == ""
    assert (result.entered, result.reason) == (0, "broker_truth_unavailable")
    assert [o.decision.reason for o in result.decisions] == ["broker_truth_unavailable"]
    run = await market.entry_run(result.run_id)
    assert run.reason == "broker_truth_unavailable" and run.skipped == 1
    assert await market.open_trades() == []
    assert market.gateway.get_open_orders() == []


async def test_a_run_on_a_market_holiday_ends_early_and_touches_nothing(
    market: MarketHarness,
) -> None:
    market.admin.set_clock(HOLIDAY)
    await market.scored_signal("AAPL")
    before = {t: await market.count(t) for t in ("signals", "trades", "audit_log", "orders")}
    # Any broker call past the clock would fail here and leave a note in the result.
    market.admin.add_fault(method="GET", path="/v2/positions", status=500)
    market.admin.add_fault(method="GET", path="/v2/stocks/*", status=500)
    try:
        result = await market.run_loop(watchlist=["AAPL", "MSFT"])
    finally:
        market.admin.clear_faults()
    assert result.ended_early and result.reason == "market_closed"
    assert result.decisions == [] and result.reconcile == "" and result.drain == ""
    assert result.notes == [] and result.broker_positions is None and result.control is None
    after = {t: await market.count(t) for t in before}
    assert after == before
    assert await market.count("entry_runs") == 1
    run = await market.entry_run(result.run_id)
    assert (run.reason, run.entered, run.skipped) == ("market_closed", 0, 0)
    assert "2024-07-05" in run.detail  # the next open


async def test_a_scan_scores_the_watchlist_and_enters_the_momentum_signal(
    market: MarketHarness,
) -> None:
    price = market.gateway.latest_quotes(["AMD"])[0].bid
    market.admin.advance(60)  # a jump applies from now on; the history before stays
    market.admin.set_price("AMD", price * Decimal("1.25"), volatility=0)
    result = await market.run_loop(watchlist=["AMD"], score_threshold=Decimal("0.1"))
    assert result.signals_created == 1 and result.drain.startswith("scored 1")
    signal = await market.pool.fetchrow(
        "SELECT signal_key, status, score FROM signals WHERE symbol = 'AMD'"
    )
    assert signal is not None and signal["status"] == SignalStatus.SCORED.value
    assert signal["signal_key"] == "momentum:AMD:2024-03-05" and signal["score"] > 0
    assert result.entered == 1 and result.decisions[0].symbol == "AMD"
    again = await market.run_loop(watchlist=["AMD"], score_threshold=Decimal("0.1"))
    assert again.signals_created == 0 and again.entered == 0  # one signal per session
