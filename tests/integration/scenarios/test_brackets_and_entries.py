"""Scenarios: a bracket leg cancelled outside (group cancel), an entry partly filled then left.

On Alpaca cancelling one leg of a bracket cancels the other too, and a partly filled entry's
legs stay held until it fills completely (cancelled with it). The guard must put back a stop
and, for a bracket, the take-profit with it (a GTC OCO carrying both).
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.integration.scenarios.conftest import SYMBOL, Scenario, assert_guarded
from trading.broker_models import OrderClass, OrderStatus, OrderType, TimeInForce
from trading.ledger_records import TradeStatus
from trading.ticks import protective_stop_price
from trading.trade_models import EntryType

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("leg", ["take_profit", "stop"])
async def test_a_bracket_leg_cancelled_outside_is_rescued_with_both_legs_restored(
    scenario: Scenario, leg: str
) -> None:
    take_profit = scenario.take_profit()
    handle, view = await scenario.open_trade(take_profit_price=take_profit)
    stop_leg, tp_leg = view.state.stop_order_id, view.state.take_profit_order_id
    assert stop_leg is not None and tp_leg is not None
    assert scenario.order(stop_leg).status is OrderStatus.HELD
    assert scenario.order(tp_leg).status is OrderStatus.NEW

    # Cancelled from the dashboard: Alpaca cancels the rest of the group with it.
    scenario.admin.cancel_order(tp_leg if leg == "take_profit" else stop_leg)
    rescued = await scenario.wait_for(
        handle, lambda v: v.state.rescue.ok == 1 and v.state.stop_order_id != stop_leg
    )
    scenario.settle()
    assert scenario.order(stop_leg).status is OrderStatus.CANCELED
    assert scenario.order(tp_leg).status is OrderStatus.CANCELED

    # The rescue is one GTC OCO: the take-profit (limit) with the stop as its other leg.
    state = rescued.state
    assert state.take_profit_order_id is not None and state.stop_order_id is not None
    oco = scenario.order(state.take_profit_order_id)
    assert oco.order_class is OrderClass.OCO and oco.client_order_id == f"{view.trade_id}.rs.0"
    assert oco.type is OrderType.LIMIT and oco.limit_price == take_profit
    assert oco.time_in_force is TimeInForce.GTC and oco.is_active and oco.qty == Decimal(10)
    assert [leg.id for leg in oco.legs] == [state.stop_order_id]
    assert oco.legs[0].stop_price == view.state.stop_price

    guarded = await assert_guarded(scenario)
    assert guarded.stops[SYMBOL].id == state.stop_order_id
    row = await scenario.trades.trade_row(view.trade_id)
    assert row.take_profit_order_id == oco.id and row.take_profit_price == take_profit
    assert row.status is TradeStatus.OPEN
    event = await scenario.wait_risk_event(view.trade_id, "stop_rescued")
    assert event.detail["order_id"] == oco.id


@pytest.mark.parametrize("entry", ["oto", "bracket"])
async def test_an_entry_partly_filled_then_left_working_gets_its_own_stop_within_the_grace(
    scenario: Scenario, entry: str
) -> None:
    market = scenario.trades.market()
    limit = protective_stop_price(market * Decimal("0.98"))  # rests below the market
    take_profit = scenario.take_profit() if entry == "bracket" else None
    handle = await scenario.start(
        entry_type=EntryType.LIMIT,
        limit_price=limit,
        stop_price=protective_stop_price(market * Decimal("0.95")),
        take_profit_price=take_profit,
    )
    working = await scenario.wait_for(handle, lambda v: v.state.entry_order_id is not None)
    entry_id = working.state.entry_order_id
    assert entry_id is not None
    scenario.admin.fill_order(entry_id, price=limit, qty=4)  # 4 of 10, then left working
    held = scenario.order(entry_id)
    assert held.status is OrderStatus.PARTIALLY_FILLED
    assert held.legs and all(leg.status is OrderStatus.HELD for leg in held.legs)

    rescued = await scenario.wait_for(
        handle, lambda v: v.status is TradeStatus.OPEN and v.state.rescue.ok == 1
    )
    scenario.settle()
    cancelled = scenario.order(entry_id)
    assert cancelled.status is OrderStatus.CANCELED and cancelled.filled_qty == Decimal(4)
    # Its held legs never activated: they went with the rest of the entry.
    assert {leg.status for leg in cancelled.legs} == {OrderStatus.CANCELED}

    state = rescued.state
    assert state.filled_qty == Decimal(4) and state.entry_price == limit
    assert state.stop_order_id is not None
    stop = scenario.order(state.stop_order_id)
    assert stop.type is OrderType.STOP and stop.qty == Decimal(4) and stop.is_active
    assert stop.stop_price == working.state.stop_price
    assert stop.time_in_force is TimeInForce.GTC
    if take_profit is None:  # a standalone stop
        assert stop.order_class is OrderClass.SIMPLE
        assert stop.client_order_id == f"{working.trade_id}.rs.0"
    else:  # the take-profit comes back with it: one GTC OCO for the filled shares
        assert state.take_profit_order_id is not None
        oco = scenario.order(state.take_profit_order_id)
        assert oco.order_class is OrderClass.OCO and oco.limit_price == take_profit
        assert oco.qty == Decimal(4) and oco.client_order_id == f"{working.trade_id}.rs.0"
        assert [leg.id for leg in oco.legs] == [stop.id]

    # The gap is measured from the first partial fill the guard saw: at least the grace.
    gap = state.rescue.last_gap_ms
    assert gap is not None and 1000 <= gap < 15000, gap
    event = await scenario.wait_risk_event(working.trade_id, "stop_rescued")
    assert event.detail["gap_ms"] == gap and event.detail["qty"] == "4"

    await assert_guarded(scenario)
    row = await scenario.trades.trade_row(working.trade_id)
    assert row.qty == Decimal(4) and row.entry_price == limit


async def test_an_entry_whose_remainder_fills_before_its_cancel_lands_is_covered_whole(
    scenario: Scenario,
) -> None:
    market = scenario.trades.market()
    limit = protective_stop_price(market * Decimal("0.98"))
    handle = await scenario.start(
        entry_type=EntryType.LIMIT,
        limit_price=limit,
        stop_price=protective_stop_price(market * Decimal("0.95")),
    )
    working = await scenario.wait_for(handle, lambda v: v.state.entry_order_id is not None)
    entry_id = working.state.entry_order_id
    assert entry_id is not None
    scenario.admin.configure(cancel_delay_ms=1500)  # the guard's cancel stays in flight
    scenario.admin.fill_order(entry_id, price=limit, qty=4)
    await scenario.wait_for(handle, lambda v: v.state.entry_cancel_requested, within=10)
    assert scenario.order(entry_id).status is OrderStatus.PENDING_CANCEL
    scenario.admin.fill_order(entry_id, price=limit)  # the rest fills first: the fill wins

    opened = await scenario.wait_for(
        handle, lambda v: v.status is TradeStatus.OPEN and v.state.position_qty == Decimal(10)
    )
    scenario.settle()
    entry = scenario.order(entry_id)
    assert entry.status is OrderStatus.FILLED and entry.filled_qty == Decimal(10)
    guarded = await assert_guarded(scenario)
    stop = guarded.stops[SYMBOL]
    # The entry's own stop leg, activated by the complete fill, covers all ten: no rescue.
    assert [leg.id for leg in entry.legs] == [stop.id] == [opened.state.stop_order_id]
    assert opened.state.filled_qty == Decimal(10) and opened.state.rescue.attempted == 0
