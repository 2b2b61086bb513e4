"""Alpaca's less common statuses, aged GTC orders, every stream event type, hidden held legs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import (
    OrderClass,
    OrderSide,
    OrderStatus,
    OrderType,
    QueryOrderStatus,
    TimeInForce,
    TradeEvent,
)
from alpaca.trading.models import Order
from alpaca.trading.requests import (
    GetOrderByIdRequest,
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    ReplaceOrderRequest,
    StopLossRequest,
    TakeProfitRequest,
)

from paperbroker.admin_client import AdminClient
from paperbroker.testing import StreamRecorder

pytestmark = pytest.mark.integration

PARKED = [
    "done_for_day",
    "pending_review",
    "stopped",
    "suspended",
    "calculated",
    "pending_new",
    "accepted_for_bidding",
    "held",
]
STREAMED = {"done_for_day", "stopped", "suspended", "calculated", "pending_new"}
DOCUMENTED_EVENTS = {
    "new",
    "fill",
    "partial_fill",
    "canceled",
    "expired",
    "done_for_day",
    "replaced",
    "rejected",
    "pending_new",
    "stopped",
    "pending_cancel",
    "pending_replace",
    "calculated",
    "suspended",
    "order_replace_rejected",
    "order_cancel_rejected",
}


def resting_buy(trading: TradingClient, limit: float = 90, symbol: str = "AAPL") -> Order:
    """A GTC buy limit that will not fill at 100."""
    order = trading.submit_order(
        LimitOrderRequest(
            symbol=symbol,
            qty=5,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.GTC,
            limit_price=limit,
        )
    )
    assert isinstance(order, Order)
    return order


def get(trading: TradingClient, order_id: UUID) -> Order:
    """The order now."""
    order = trading.get_order_by_id(order_id)
    assert isinstance(order, Order)
    return order


def test_every_documented_status_is_reachable_listed_and_streamed(
    trading: TradingClient, sim: AdminClient, stream: StreamRecorder
) -> None:
    sim.set_price("AAPL", 100, volatility=0)
    parked = {status: resting_buy(trading, 80 + i) for i, status in enumerate(PARKED)}
    for status, order in parked.items():
        assert sim.set_order_status(str(order.id), status)["status"] == status
    listed = {o.id: o.status for o in trading.get_orders()}  # alpaca-py parses every one
    assert {listed[o.id].value for o in parked.values()} == set(PARKED)
    for status in STREAMED:
        order_id = parked[status].id
        stream.wait_for(lambda u, s=status, i=order_id: u.event == s and u.order.id == i)
    pending_review = parked["pending_review"].id
    with pytest.raises(APIError) as refused:
        trading.replace_order_by_id(pending_review, ReplaceOrderRequest(limit_price=70))
    assert refused.value.status_code == 422
    sim.set_price("AAPL", 70)  # below every limit: parked orders do not work
    assert all(get(trading, o.id).filled_qty == "0" for o in parked.values())
    sim.set_order_status(str(parked["suspended"].id), "new")  # back to work
    assert get(trading, parked["suspended"].id).status is OrderStatus.FILLED
    trading.cancel_order_by_id(pending_review)  # parked orders stay cancelable
    sim.sync()
    assert get(trading, pending_review).status is OrderStatus.CANCELED


def test_done_for_day_resumes_at_the_next_session(
    trading: TradingClient, sim: AdminClient, stream: StreamRecorder
) -> None:
    sim.set_price("AAPL", 100, volatility=0)
    order = resting_buy(trading)
    sim.set_order_status(str(order.id), "done_for_day")
    sim.set_clock(datetime(2024, 3, 6, 14, 0, tzinfo=UTC))  # next morning, before the open
    assert get(trading, order.id).status is OrderStatus.DONE_FOR_DAY
    sim.set_clock(datetime(2024, 3, 6, 14, 30, 1, tzinfo=UTC))
    assert get(trading, order.id).status is OrderStatus.NEW
    assert [str(u.event) for u in stream.drain(0.3) if u.order.id == order.id][-2:] == [
        "done_for_day",
        "new",
    ]


def test_gtc_orders_are_cancelled_at_1615_new_york_on_their_expires_at_date(
    trading: TradingClient, sim: AdminClient, stream: StreamRecorder
) -> None:
    sim.set_price("AAPL", 100, volatility=0)
    order = resting_buy(trading)
    created = get(trading, order.id)
    assert created.expires_at is not None
    assert created.expires_at - created.created_at == timedelta(days=90)
    cutoff = datetime(2024, 6, 3, 20, 15, tzinfo=UTC)  # 16:15 New York (EDT) on 2024-06-03
    assert created.expires_at.date() == cutoff.date()
    sim.set_clock(cutoff - timedelta(minutes=1))
    assert get(trading, order.id).status is OrderStatus.NEW
    sim.set_clock(cutoff + timedelta(minutes=1))
    assert get(trading, order.id).status in (OrderStatus.PENDING_CANCEL, OrderStatus.CANCELED)
    sim.sync()
    aged = get(trading, order.id)
    assert aged.status is OrderStatus.CANCELED and aged.canceled_at is not None
    updates = [u for u in stream.drain(0.3) if u.order.id == order.id]
    assert [str(u.event) for u in updates][-2:] == ["pending_cancel", "canceled"]
    assert updates[-2].timestamp == cutoff  # at 16:15 New York, not when the clock stopped


def test_every_documented_event_type_is_emitted_and_parses(
    trading: TradingClient, sim: AdminClient, stream: StreamRecorder
) -> None:
    sim.set_price("AAPL", 100, volatility=0)
    parked = resting_buy(trading)
    for status in ("done_for_day", "stopped", "suspended", "calculated", "pending_new"):
        sim.set_order_status(str(parked.id), status)
        sim.set_order_status(str(parked.id), "new")
    trading.cancel_order_by_id(parked.id)
    bought = trading.submit_order(
        LimitOrderRequest(
            symbol="MSFT", qty=4, side=OrderSide.BUY, time_in_force=TimeInForce.GTC, limit_price=1
        )
    )
    assert isinstance(bought, Order)
    sim.fill_order(str(bought.id), price=1, qty=1)
    sim.fill_order(str(bought.id), price=1)
    sim.expire_order(str(resting_buy(trading, 81).id))
    sim.reject_order(str(resting_buy(trading, 82).id))
    replaced = resting_buy(trading, 83)
    trading.replace_order_by_id(replaced.id, ReplaceOrderRequest(limit_price=84))
    refused_replace = resting_buy(trading, 85)
    sim.reject_next_replace(str(refused_replace.id))
    trading.replace_order_by_id(refused_replace.id, ReplaceOrderRequest(limit_price=86))
    refused_cancel = resting_buy(trading, 87)
    sim.reject_next_cancel(str(refused_cancel.id))
    trading.cancel_order_by_id(refused_cancel.id)
    sim.sync()
    stream.wait_for(lambda u: u.event == "order_cancel_rejected")
    seen = stream.drain(0.5)
    names = {_name(u.event) for u in seen}  # every update parsed as alpaca-py's TradeUpdate
    assert names == DOCUMENTED_EVENTS  # all of them, and nothing Alpaca does not send


def _name(event: TradeEvent | str) -> str:
    return event.value if isinstance(event, TradeEvent) else event


def test_held_legs_can_be_hidden_from_open_listings_but_not_from_lookups(
    trading: TradingClient, sim: AdminClient
) -> None:
    sim.configure(hide_held_legs=True)
    sim.set_price("AAPL", 100, volatility=0)
    parent = trading.submit_order(
        MarketOrderRequest(
            symbol="AAPL",
            qty=10,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.GTC,
            order_class=OrderClass.BRACKET,
            take_profit=TakeProfitRequest(limit_price=110),
            stop_loss=StopLossRequest(stop_price=95),
        )
    )
    assert isinstance(parent, Order)
    nested = trading.get_order_by_id(parent.id, GetOrderByIdRequest(nested=True))
    assert isinstance(nested, Order)
    stop = next(leg for leg in nested.legs or [] if leg.type is OrderType.STOP)
    assert stop.status is OrderStatus.HELD  # by id, with its parent: still there
    flat = trading.get_orders()
    assert [o.type for o in flat] == [OrderType.LIMIT]  # only the take-profit
    listed_nested = trading.get_orders(GetOrdersRequest(nested=True, status=QueryOrderStatus.ALL))
    assert any(stop.id in {leg.id for leg in o.legs or []} for o in listed_nested)
    open_nested = trading.get_orders(GetOrdersRequest(nested=True))
    assert all(stop.id not in {leg.id for leg in o.legs or []} for o in open_nested)
    assert get(trading, stop.id).status is OrderStatus.HELD
    assert trading.get_order_by_client_id(stop.client_order_id).id == stop.id
    sim.reset()  # a reset restores the configured (faithful) defaults
    assert sim.fidelity()["hide_held_legs"] is False
