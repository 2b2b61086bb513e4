"""TradingControlWorkflow against the paper broker, the ledger and a production worker."""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from temporalio.client import WorkflowHandle

from tests.integration.control.conftest import ControlHarness
from tests.integration.helpers import poll_until
from trading.broker_models import OrderIntent, OrderSide, OrderType, TimeInForce
from trading.control import ControlMode, ControlRequest, FlattenReport, FlattenRequest
from trading.entry_gate import ControlGate, control_gate, control_view_of
from trading.ledger_records import CloseReason, TradeStatus
from trading.ticks import protective_stop_price
from workflows.control import TradingControlWorkflow

pytestmark = pytest.mark.integration
logger = logging.getLogger("tests.control")


async def _gate(handle: WorkflowHandle[Any, Any]) -> ControlGate:
    """The entry gate's control part, as the market loop and `status` work it out."""
    return control_gate(control_view_of(await handle.query(TradingControlWorkflow.state)))


async def test_halt_blocks_entries_while_stops_stay_active_then_resume(
    control: ControlHarness,
) -> None:
    trades = control.trades
    first = await control.open_trade("AAPL")
    second = await control.open_trade("AMZN")
    handle = await control.start_control()
    gate = await _gate(handle)
    assert gate.allowed

    await handle.signal(TradingControlWorkflow.halt, ControlRequest(reason="news", actor="ops"))
    state = await control.wait_control(lambda s: s.mode is ControlMode.HALTED)
    assert (state.reason, state.actor) == ("news", "ops")
    gate = await _gate(handle)
    assert not gate.allowed and "HALTED" in gate.reason and "news" in gate.reason
    for view in (first, second):
        assert view.state.stop_order_id is not None
        assert trades.gateway.get_order(view.state.stop_order_id).is_active
        assert view.state.stop_order_id in control.every_open_order()
        assert (await trades.trade_row(view.trade_id)).status is TradeStatus.OPEN
        position = trades.gateway.probe_position(view.symbol).position
        assert position is not None and position.qty == Decimal(10)

    # Pausing would loosen a halt: it is refused (and audited), the halt stays.
    await handle.signal(TradingControlWorkflow.pause_entries, ControlRequest(reason="oops"))
    state = await control.wait_control(lambda s: s.seq == 2)
    assert state.mode is ControlMode.HALTED and state.reason == "news"

    await handle.signal(TradingControlWorkflow.resume, ControlRequest(reason="all clear"))
    await control.wait_control(lambda s: s.mode is ControlMode.ACTIVE)
    assert (await _gate(handle)).allowed
    halts = await control.audit("control_halt")
    assert [(r.actor, r.reason, r.detail["to_mode"]) for r in halts] == [("ops", "news", "HALTED")]
    refused = await control.audit("control_pause_entries")
    assert refused[0].detail["changed"] is False and "resume first" in str(refused[0].detail)
    resumed = await control.audit("control_resume")
    assert resumed[0].reason == "all clear" and resumed[0].detail["to_mode"] == "ACTIVE"


async def test_flatten_leaves_no_position_and_no_stray_order(control: ControlHarness) -> None:
    trades, gateway = control.trades, control.trades.gateway
    first = await control.open_trade("AAPL")
    second = await control.open_trade("AMZN")
    # A position opened outside the system, with its own stop, and a working outside entry.
    trades.admin.set_price("MSFT", volatility=0)
    trades.admin.open_position("MSFT", 5)
    msft = trades.market("MSFT")
    outside_stop = gateway.submit_order(
        OrderIntent(
            client_order_id="outside-msft-stop",
            symbol="MSFT",
            qty=Decimal(5),
            side=OrderSide.SELL,
            type=OrderType.STOP,
            stop_price=protective_stop_price(msft * Decimal("0.9")),
            time_in_force=TimeInForce.GTC,
        )
    )
    trades.admin.set_price("NVDA", volatility=0)
    outside_entry = gateway.submit_order(
        OrderIntent(
            client_order_id="outside-nvda-entry",
            symbol="NVDA",
            qty=Decimal(3),
            side=OrderSide.BUY,
            type=OrderType.LIMIT,
            limit_price=protective_stop_price(trades.market("NVDA") * Decimal("0.8")),
        )
    )
    assert outside_stop.is_active and outside_entry.is_active
    handle = await control.start_control()

    started = time.monotonic()
    report: FlattenReport = await handle.execute_update(
        TradingControlWorkflow.flatten,
        FlattenRequest(reason="end of test", actor="ops", timeout=timedelta(seconds=45)),
    )
    logger.info("flatten took %.1f s: %s", time.monotonic() - started, report)
    assert report.done, report
    assert gateway.get_positions() == []
    assert gateway.get_open_orders() == [] and control.every_open_order() == []
    assert sorted(report.signalled_trades) == sorted([first.trade_id, second.trade_id])
    assert report.closed_symbols == ["MSFT"]
    assert (
        outside_entry.id in report.cancelled_orders and outside_stop.id in report.cancelled_orders
    )
    for view in (first, second):
        row = await trades.trade_row(view.trade_id)
        assert row.status is TradeStatus.CLOSED and row.close_reason is CloseReason.FORCE_EXIT
    state = await control.control_state()
    assert state.mode is ControlMode.HALTED and state.reason == "end of test"
    assert not (await _gate(handle)).allowed
    assert [r.detail["to_mode"] for r in await control.audit("control_flatten")] == ["HALTED"]
    closes = await control.audit("flatten_close_position")
    assert [r.detail["symbol"] for r in closes] == ["MSFT"]
    # Its stop went first (a cancel may take a round): the unprotected gap is measured.
    assert closes[0].detail["protected_before"] is True
    assert isinstance(closes[0].detail["unprotected_gap_ms"], int)
    assert (await control.audit("flatten_done"))[0].actor == "ops"


async def test_control_state_survives_a_worker_restart(control: ControlHarness) -> None:
    handle = await control.start_control()
    await handle.signal(
        TradingControlWorkflow.halt, ControlRequest(reason="deploy freeze", actor="ops")
    )
    await control.wait_control(lambda s: s.mode is ControlMode.HALTED)
    await control.stop_worker()
    await control.start_worker()
    state = await control.control_state()
    assert (state.mode, state.reason, state.actor) == (ControlMode.HALTED, "deploy freeze", "ops")
    # The new worker carries on: commands still land on the same state.
    await handle.signal(TradingControlWorkflow.pause_entries, ControlRequest(reason="still"))
    state = await control.wait_control(lambda s: s.seq == 2)
    assert state.mode is ControlMode.HALTED and len(state.history) == 2


async def test_repeated_rescue_alerts_from_trades_halt_trading(control: ControlHarness) -> None:
    trades = control.trades
    handle = await control.start_control(rescue_alert_threshold=2)
    first = await control.open_trade("AAPL", rescue_alert_after=1)
    second = await control.open_trade("AMZN", rescue_alert_after=1)
    # Every rescue is refused: each trade alerts after its first failure.
    fault = trades.admin.add_fault(method="POST", path="/v2/orders", status=403, times=50)
    try:
        for view in (first, second):
            assert view.state.stop_order_id is not None
            trades.admin.cancel_order(view.state.stop_order_id)
        state = await control.wait_control(lambda s: s.mode is ControlMode.HALTED, within=30)
    finally:
        trades.admin.remove_fault(fault)
    assert state.actor == "auto" and "rescue alerts" in state.reason
    assert {a.trade_id for a in state.rescue_alerts} == {first.trade_id, second.trade_id}
    assert not (await _gate(handle)).allowed
    # The state shows the halt before the activities writing its audit rows have finished.
    both = {first.trade_id, second.trade_id}
    await poll_until(
        lambda: control.audit("rescue_alert"), lambda rows: {r.trade_id for r in rows} == both, 10
    )
    halts = await poll_until(lambda: control.audit("control_auto_halt"), bool, 10)
    assert halts[0].actor == "auto"


async def test_a_breached_daily_loss_limit_halts_trading(control: ControlHarness) -> None:
    trades = control.trades
    trades.admin.set_price("MSFT", volatility=0)
    price = trades.market("MSFT")
    trades.admin.open_position("MSFT", 10, price)
    handle = await control.start_control(
        daily_loss_limit=Decimal(100), loss_check_interval=timedelta(seconds=1)
    )
    state = await control.wait_control(lambda s: s.last_loss_check is not None)
    assert state.mode is ControlMode.ACTIVE
    trades.admin.set_price("MSFT", price - Decimal(20))  # 10 shares x $20 = $200 down
    state = await control.wait_control(lambda s: s.mode is ControlMode.HALTED)
    assert state.actor == "auto" and "daily loss" in state.reason
    assert state.last_loss_check is not None and state.last_loss_check.daily_pnl is not None
    assert state.last_loss_check.daily_pnl <= Decimal(-100)
    # A resume holds while the loss stays where it was (edge-triggered, not a loop).
    await handle.signal(TradingControlWorkflow.resume, ControlRequest(reason="accepted"))
    await control.wait_control(lambda s: s.mode is ControlMode.ACTIVE)
    checks = (await control.control_state()).last_loss_check
    await control.wait_control(lambda s: s.last_loss_check != checks, within=5)
    assert (await control.control_state()).mode is ControlMode.ACTIVE
    trades.admin.close_position("MSFT", cancel_orders=True)
