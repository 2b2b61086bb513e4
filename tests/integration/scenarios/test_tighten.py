"""Scenarios: a tighten meets Alpaca's replace - refused, rejected after acceptance, pending for
seconds, or not allowed at all (an OTO's leg).

A replace is asynchronous on Alpaca: the old stop passes through pending_replace and keeps
working; the new one can still be rejected. The guard follows the order's real state and
falls back to cancel-confirm-place - never two stops working, never a forgotten one.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from tests.integration.scenarios.conftest import (
    SYMBOL,
    Scenario,
    assert_guarded,
    describe_orders,
    watch_stops,
)
from trading.broker_models import OrderClass, OrderStatus, OrderType
from trading.ids import Leg, client_order_id
from trading.trade_models import TightenResult, TightenStop
from workflows.trade import TradeWorkflow

pytestmark = pytest.mark.integration


async def _tighten(scenario: Scenario, handle: object, price: Decimal) -> TightenResult:
    result = await handle.execute_update(  # type: ignore[attr-defined]
        TradeWorkflow.tighten_stop, TightenStop(price=price)
    )
    assert isinstance(result, TightenResult)
    return result


async def _cancel_confirm_placed(
    scenario: Scenario, trade_id: str, old_stop: str, price: Decimal, result: TightenResult
) -> None:
    """The old stop was cancelled to the end and one new stop placed at the tighter price."""
    assert "cancel and place" in result.note, result.note
    assert result.stop_price == price and result.stop_order_id != old_stop
    scenario.settle()
    assert scenario.order(old_stop).status is OrderStatus.CANCELED
    new = scenario.order(result.stop_order_id)
    assert new.type is OrderType.STOP and new.stop_price == price and new.is_active
    event = await scenario.wait_risk_event(trade_id, "stop_rescued")
    assert isinstance(event.detail["gap_ms"], int) and event.detail["stop_price"] == str(price)
    # The replacement asked under the trade's stop id never works.
    replacement = scenario.by_client_id(client_order_id(trade_id, Leg.STOP, 0))
    assert all(not o.is_active for o in replacement), describe_orders(replacement)


@pytest.mark.parametrize("refusal", ["stop_pending_new", "patch_422"])
async def test_a_tighten_whose_replace_is_refused_cancels_confirms_and_places(
    scenario: Scenario, refusal: str
) -> None:
    take_profit = scenario.take_profit()
    handle, view = await scenario.open_trade(take_profit_price=take_profit)
    old_stop = view.state.stop_order_id
    assert old_stop is not None
    if refusal == "stop_pending_new":
        # Alpaca refuses a replace while the order is accepted / pending_new.
        scenario.admin.set_order_status(old_stop, "pending_new")
    else:
        scenario.admin.add_fault(
            method="PATCH",
            path=f"/v2/orders/{old_stop}",
            status=422,
            body={"code": 42210000, "message": "order is not replaceable"},
            times=1,
        )
    price = view.state.stop_price + Decimal(1)
    with watch_stops(scenario) as watch:
        result = await _tighten(scenario, handle, price)
        await assert_guarded(scenario)
    assert watch.samples and watch.overlaps() == []
    await _cancel_confirm_placed(scenario, view.trade_id, old_stop, price, result)
    # Cancelling the bracket's stop took its take-profit with it: the rescue restores both.
    final = await scenario.view(handle)
    assert final.state.take_profit_order_id is not None
    oco = scenario.order(final.state.take_profit_order_id)
    assert oco.order_class is OrderClass.OCO and oco.limit_price == take_profit and oco.is_active
    assert [leg.id for leg in oco.legs] == [result.stop_order_id]


async def test_a_tighten_whose_replace_is_rejected_after_acceptance_keeps_the_old_stop_then_places(
    scenario: Scenario,
) -> None:
    handle, view = await scenario.open_trade(take_profit_price=scenario.take_profit())
    old_stop = view.state.stop_order_id
    assert old_stop is not None
    scenario.admin.configure(replace_delay_ms=1000)  # long enough to watch it in flight
    scenario.admin.reject_next_replace(old_stop)
    price = view.state.stop_price + Decimal(1)
    with watch_stops(scenario) as watch:
        result = await _tighten(scenario, handle, price)
        await assert_guarded(scenario)
    # While the replace was in flight the old stop worked (pending_replace), alone.
    assert (old_stop, OrderStatus.PENDING_REPLACE) in watch.seen_statuses
    assert watch.overlaps() == []
    (rejected,) = scenario.by_client_id(client_order_id(view.trade_id, Leg.STOP, 0))
    assert rejected.status is OrderStatus.REJECTED and rejected.replaces == old_stop
    await _cancel_confirm_placed(scenario, view.trade_id, old_stop, price, result)


async def test_a_tighten_whose_replace_stays_pending_for_seconds_is_followed_when_it_settles(
    scenario: Scenario,
) -> None:
    handle, view = await scenario.open_trade(
        take_profit_price=scenario.take_profit(), replace_settle=timedelta(seconds=1)
    )
    old_stop = view.state.stop_order_id
    assert old_stop is not None
    scenario.admin.configure(replace_delay_ms=3500)  # well past replace_settle
    price = view.state.stop_price + Decimal(1)
    with watch_stops(scenario) as watch:
        result = await _tighten(scenario, handle, price)
        # The update returns with the replace still pending: the old stop protects meanwhile.
        assert "replace pending" in result.note, result.note
        assert result.stop_order_id == old_stop
        assert scenario.order(old_stop).status is OrderStatus.PENDING_REPLACE
        (new,) = [o for o in scenario.all_orders() if o.replaces == old_stop]
        assert new.stop_price == price and new.status is OrderStatus.PENDING_NEW
        followed = await scenario.wait_for(
            handle, lambda v: v.state.stop_order_id == new.id, within=15
        )
        await assert_guarded(scenario)
    assert scenario.order(old_stop).status is OrderStatus.REPLACED
    assert followed.state.stop_price == price and followed.state.rescue.attempted == 0
    # Protected all along by exactly one working stop: the old one, then the new one.
    assert watch.samples and {len(sample) for sample in watch.samples} == {1}
    assert (old_stop, OrderStatus.PENDING_REPLACE) in watch.seen_statuses
    replaced = scenario.order(new.id)
    assert replaced.is_active and replaced.stop_price == price and replaced.qty == Decimal(10)
    assert await scenario.risk_events(view.trade_id, "stop_rescued") == []


async def test_an_oto_trade_tightened_cancels_its_leg_and_places_a_new_stop(
    scenario: Scenario,
) -> None:
    handle, view = await scenario.open_trade()  # no take-profit: the entry is an OTO
    old_stop = view.state.stop_order_id
    assert old_stop is not None
    entry = scenario.order(view.state.entry_order_id or "")
    assert entry.order_class is OrderClass.OTO
    price = view.state.stop_price + Decimal(1)
    with watch_stops(scenario) as watch:
        result = await _tighten(scenario, handle, price)
        await assert_guarded(scenario)
    assert watch.samples and watch.overlaps() == []
    await _cancel_confirm_placed(scenario, view.trade_id, old_stop, price, result)
    new = scenario.order(result.stop_order_id)
    assert new.order_class is OrderClass.SIMPLE and new.qty == Decimal(10)
    assert new.client_order_id == f"{view.trade_id}.rs.0"
    assert [o.id for o in scenario.stops(SYMBOL) if o.is_active] == [new.id]
