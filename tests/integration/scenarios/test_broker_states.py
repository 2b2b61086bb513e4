"""Scenarios: the broker changes the stop on its own - a GTC order aged out at 16:15 New York,
an order parked in pending_review.

An aged stop ends (through pending_cancel) like any cancelled stop: the guard rescues it. An
order in pending_review is neither working nor over: the guard waits, never rescues on it,
and acts once the review resolves.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.integration.scenarios.conftest import SYMBOL, Scenario, assert_guarded
from trading.broker_models import OrderStatus, OrderType, TimeInForce

pytestmark = pytest.mark.integration
NEW_YORK = ZoneInfo("America/New_York")


def _expires_at(scenario: Scenario, order_id: str) -> datetime:
    order: Any = scenario.trading.get_order_by_id(order_id)
    assert order.expires_at is not None
    expires: datetime = order.expires_at
    return expires


async def test_a_gtc_stop_expired_by_age_is_rescued(scenario: Scenario) -> None:
    handle, view = await scenario.open_trade()
    old_stop = view.state.stop_order_id
    assert old_stop is not None
    stop = scenario.order(old_stop)
    assert stop.time_in_force is TimeInForce.GTC
    expires = _expires_at(scenario, old_stop)
    assert expires - stop.created_at == timedelta(days=90)
    # Alpaca cancels aged GTC orders at 16:15 New York on their expires_at date.
    cutoff = datetime.combine(expires.astimezone(NEW_YORK).date(), time(16, 15), NEW_YORK)
    scenario.admin.set_clock(cutoff - timedelta(minutes=1))
    assert scenario.order(old_stop).is_active  # still working the minute before
    scenario.admin.set_clock(cutoff + timedelta(minutes=1))

    rescued = await scenario.wait_for(
        handle, lambda v: v.state.rescue.ok == 1 and v.state.stop_order_id != old_stop
    )
    aged = scenario.order(old_stop)
    assert aged.status is OrderStatus.CANCELED and aged.canceled_at is not None
    new_id = rescued.state.stop_order_id
    assert new_id is not None
    new = scenario.order(new_id)
    assert new.type is OrderType.STOP and new.time_in_force is TimeInForce.GTC
    assert new.qty == Decimal(10) and new.stop_price == view.state.stop_price and new.is_active
    assert new.client_order_id == f"{view.trade_id}.rs.0"
    assert _expires_at(scenario, new_id) > cutoff + timedelta(days=89)  # a fresh 90 days
    event = await scenario.wait_risk_event(view.trade_id, "stop_rescued")
    assert "canceled" in str(event.detail["why"])
    await assert_guarded(scenario)


@pytest.mark.parametrize("resolution", ["approved", "cancelled"])
async def test_a_stop_in_pending_review_is_waited_on_then_acted_on(
    scenario: Scenario, resolution: str
) -> None:
    handle, view = await scenario.open_trade()
    stop_id = view.state.stop_order_id
    assert stop_id is not None
    placed = len(scenario.all_orders())
    scenario.admin.set_order_status(stop_id, "pending_review")
    assert scenario.order(stop_id).status is OrderStatus.PENDING_REVIEW

    waiting = await scenario.wait_for(
        handle, lambda v: "pending_review" in v.state.last_check_note, within=10
    )
    await asyncio.sleep(2.5)  # a few more checks (every second while it is in transition)
    still = await scenario.view(handle)
    assert still.state.broker_checks >= waiting.state.broker_checks + 2
    assert "pending_review" in still.state.last_check_note
    assert still.state.stop_order_id == stop_id
    assert still.state.rescue.attempted == 0 and still.state.stop_missing_since is None
    assert len(scenario.all_orders()) == placed  # nothing placed while it waits
    assert scenario.order(stop_id).status is OrderStatus.PENDING_REVIEW

    if resolution == "approved":
        scenario.admin.set_order_status(stop_id, "new")
        settled = await scenario.wait_for(
            handle, lambda v: v.state.last_check_note.startswith("protected"), within=10
        )
        assert settled.state.stop_order_id == stop_id and settled.state.rescue.attempted == 0
        guarded = await assert_guarded(scenario)
        assert guarded.stops[SYMBOL].id == stop_id
        assert len(scenario.all_orders()) == placed
    else:
        scenario.admin.cancel_order(stop_id)  # the review ends it: now the guard rescues
        settled = await scenario.wait_for(
            handle, lambda v: v.state.rescue.ok == 1 and v.state.stop_order_id != stop_id
        )
        assert scenario.order(stop_id).status is OrderStatus.CANCELED
        guarded = await assert_guarded(scenario)
        assert guarded.stops[SYMBOL].id == settled.state.stop_order_id
        assert settled.state.rescue.attempted == 1
