"""Scenarios: held legs hidden from `GET /v2/orders?status=open` (field reports) while
reconcile, auto-manage and flatten run.

Nothing may conclude "no stop" or "absent" from a listing that can hide held legs: reconcile
and auto-manage must not start a second guard or place a second stop, and flatten must still
end flat (it cancels by id what the ledger knows).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from temporalio.client import WorkflowHandle

from contracts import control as control_contract
from tests.integration.scenarios.conftest import (
    SYMBOL,
    Scenario,
    assert_guarded,
    describe_orders,
    new_trade_id,
)
from trading.broker_models import OrderClass, OrderStatus
from trading.control import FlattenReport, FlattenRequest
from trading.ledger_records import CloseReason, TradeStatus
from trading.reconcile_models import GuardAction
from trading.ticks import protective_stop_price
from trading.trade_models import TradeResult

pytestmark = pytest.mark.integration
logger = logging.getLogger("tests.scenarios")


async def _bracket_with_hidden_stop(
    scenario: Scenario, symbol: str = SYMBOL
) -> tuple[WorkflowHandle[Any, Any], str, str, str]:
    """An open bracket trade whose held stop leg the open listing no longer shows."""
    scenario.admin.set_price(symbol, volatility=0)
    handle, view = await scenario.open_trade(
        trade_id=new_trade_id(symbol.lower()),
        symbol=symbol,
        stop_price=protective_stop_price(scenario.trades.market(symbol) * Decimal("0.95")),
        take_profit_price=scenario.take_profit(symbol),
    )
    stop, take_profit = view.state.stop_order_id, view.state.take_profit_order_id
    assert stop is not None and take_profit is not None
    scenario.admin.configure(hide_held_legs=True)
    assert scenario.order(stop).status is OrderStatus.HELD  # found by id ...
    assert stop not in scenario.open_listing()  # ... but hidden from status=open
    return handle, view.trade_id, stop, take_profit


async def test_reconcile_and_auto_manage_start_no_second_guard_or_stop_over_a_hidden_leg(
    scenario: Scenario,
) -> None:
    handle, trade_id, stop, _ = await _bracket_with_hidden_stop(scenario)
    runs = scenario.runs()
    reconciled = await runs.reconcile()
    assert reconciled.ok and reconciled.plan is not None
    assert (reconciled.adopted, reconciled.closed, reconciled.synced) == (0, 0, 0)
    assert reconciled.plan.adoptions == [] and reconciled.plan.ghost_closes == []

    before = (await scenario.view(handle)).state.broker_checks
    sweep = await runs.auto_manage()
    assert sweep.ok and (sweep.positions, sweep.signalled, sweep.started) == (1, 1, 0)
    (guard,) = sweep.guards
    assert guard.action is GuardAction.SIGNALLED and guard.trade_id == trade_id
    # The snapshot it was sent does not show the stop: the guard asks the broker by id.
    checked = await scenario.wait_for(handle, lambda v: v.state.broker_checks > before)
    assert checked.state.stop_order_id == stop and checked.state.rescue.attempted == 0
    assert checked.state.last_check_note.startswith("protected")

    guarded = await assert_guarded(scenario)
    assert guarded.stops[SYMBOL].id == stop
    assert len(scenario.stops()) == 1, describe_orders(scenario.all_orders())  # never a second
    assert [t.id for t in await scenario.open_trades()] == [trade_id]
    await scenario.assert_one_guard(trade_id)


async def test_a_guard_restarted_by_auto_manage_keeps_the_hidden_stop(scenario: Scenario) -> None:
    handle, trade_id, stop, _ = await _bracket_with_hidden_stop(scenario)
    await handle.terminate("guard lost")  # e.g. terminated by hand in the Web UI
    runs = scenario.runs()
    reconciled = await runs.reconcile()
    assert reconciled.ok and (reconciled.adopted, reconciled.closed) == (0, 0)

    sweep = await runs.auto_manage()
    assert sweep.ok and (sweep.signalled, sweep.started) == (0, 1)
    assert sweep.restarted == [f"{SYMBOL}:{trade_id}"]
    restarted = scenario.handle_of(trade_id)
    view = await scenario.wait_for(
        restarted,
        lambda v: v.state.broker_checks >= 1 and v.state.last_check_note.startswith("protected"),
    )
    assert view.status is TradeStatus.OPEN
    assert view.state.stop_order_id == stop and view.state.rescue.attempted == 0

    again = await runs.auto_manage()  # a second sweep finds it running
    assert (again.signalled, again.started) == (1, 0)
    guarded = await assert_guarded(scenario)
    assert guarded.stops[SYMBOL].id == stop
    assert len(scenario.stops()) == 1, describe_orders(scenario.all_orders())
    await scenario.assert_one_guard(trade_id)


async def test_a_guard_restarted_over_a_bracket_keeps_and_restores_its_take_profit(
    scenario: Scenario,
) -> None:
    handle, trade_id, stop, take_profit = await _bracket_with_hidden_stop(scenario)
    tp_price = scenario.order(take_profit).limit_price
    await handle.terminate("guard lost")
    sweep = await scenario.runs().auto_manage()
    assert sweep.started == 1
    restarted = scenario.handle_of(trade_id)
    await scenario.wait_for(restarted, lambda v: v.state.last_check_note.startswith("protected"))
    await assert_guarded(scenario)
    assert scenario.order(take_profit).status is OrderStatus.NEW  # still working at the broker
    row = await scenario.trades.trade_row(trade_id)
    assert row.stop_order_id == stop
    assert (row.take_profit_order_id, row.take_profit_price) == (take_profit, tp_price)

    # The stop leg is cancelled outside: the take-profit goes with it (group cancel), and the
    # rescue must bring both back, as it does for a guard that was never restarted.
    scenario.admin.cancel_order(stop)
    scenario.settle()
    # A restarted guard checks every 60 s; BrokerSync's event (here: a sweep) wakes it.
    assert (await scenario.runs().auto_manage()).signalled == 1
    rescued = await scenario.wait_for(restarted, lambda v: v.state.rescue.ok == 1)
    await assert_guarded(scenario)
    assert rescued.state.take_profit_order_id is not None
    oco = scenario.order(rescued.state.take_profit_order_id)
    assert oco.order_class is OrderClass.OCO and oco.limit_price == tp_price and oco.is_active


async def test_flatten_ends_flat_when_held_legs_are_hidden(scenario: Scenario) -> None:
    guarded_handle, guarded_id, _, _ = await _bracket_with_hidden_stop(scenario, SYMBOL)
    scenario.admin.configure(hide_held_legs=False)
    lost_handle, lost_id, lost_stop, _ = await _bracket_with_hidden_stop(scenario, "AMZN")
    await lost_handle.terminate("guard lost")  # flatten must close AMZN itself
    assert scenario.open_listing().isdisjoint(
        {o.id for o in scenario.stops(SYMBOL) + scenario.stops("AMZN")}
    )

    control = await scenario.start_control()
    report = await control.execute_update(
        control_contract.FLATTEN.name,
        FlattenRequest(reason="scenario", timeout=timedelta(seconds=45)),
        result_type=FlattenReport,
    )
    logger.info("flatten with hidden held legs: %s", report)
    assert report.done, report
    scenario.settle()
    assert scenario.gateway.get_positions() == []
    unfinished = [o for o in scenario.all_orders() if not o.is_terminal]
    assert unfinished == [], describe_orders(unfinished)
    assert report.signalled_trades == [guarded_id] and report.unreachable_trades == [lost_id]
    assert report.closed_symbols == ["AMZN"] and lost_stop in report.cancelled_orders

    result = await guarded_handle.result()
    assert isinstance(result, TradeResult) and result.close_reason is CloseReason.FORCE_EXIT
    # The lost guard's ledger row converges within one reconcile (broker truth: flat).
    reconciled = await scenario.runs().reconcile()
    assert reconciled.ok and reconciled.closed == 1
    await assert_guarded(scenario)
    assert await scenario.open_trades() == []
