"""Asynchronous cancel and replace: pending phases, refusals, and requests that fail late."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderClass, OrderSide, OrderStatus, OrderType, TimeInForce
from alpaca.trading.models import Order
from alpaca.trading.requests import (
    GetOrderByIdRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    ReplaceOrderRequest,
    StopLossRequest,
    StopOrderRequest,
    TakeProfitRequest,
)

from paperbroker.admin_client import AdminClient
from paperbroker.testing import StreamRecorder

pytestmark = pytest.mark.integration


def resting_buy(trading: TradingClient, limit: float = 90) -> Order:
    """A GTC buy limit on AAPL that will not fill at 100."""
    order = trading.submit_order(
        LimitOrderRequest(
            symbol="AAPL",
            qty=5,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.GTC,
            limit_price=limit,
        )
    )
    assert isinstance(order, Order)
    return order


def protective_stop(trading: TradingClient, sim: AdminClient) -> Order:
    """10 AAPL held at about 100, protected by a GTC sell stop at 95."""
    sim.open_position("AAPL", 10, 100)
    stop = trading.submit_order(
        StopOrderRequest(
            symbol="AAPL", qty=10, side=OrderSide.SELL, time_in_force=TimeInForce.GTC, stop_price=95
        )
    )
    assert isinstance(stop, Order)
    return stop


def get(trading: TradingClient, order_id: UUID) -> Order:
    """The order now."""
    order = trading.get_order_by_id(order_id)
    assert isinstance(order, Order)
    return order


def events_of(stream: StreamRecorder, order_id: UUID) -> list[str]:
    """The events seen so far for one order, in arrival order."""
    return [str(u.event) for u in stream.drain(0.3) if u.order.id == order_id]


def test_cancel_answers_at_once_and_streams_pending_cancel_then_canceled(
    trading: TradingClient, sim: AdminClient, stream: StreamRecorder
) -> None:
    sim.set_price("AAPL", 100, volatility=0)
    order = resting_buy(trading)
    sim.configure(cancel_delay_ms=300)
    trading.cancel_order_by_id(order.id)
    assert get(trading, order.id).status is OrderStatus.PENDING_CANCEL
    pending = stream.wait_for(lambda u: u.event == "pending_cancel" and u.order.id == order.id)
    assert pending.order.status is OrderStatus.PENDING_CANCEL
    with pytest.raises(APIError) as again:
        trading.cancel_order_by_id(order.id)
    assert again.value.status_code == 422 and "pending_cancel" in again.value.message
    sim.sync()
    assert get(trading, order.id).status is OrderStatus.CANCELED
    assert events_of(stream, order.id)[-2:] == ["pending_cancel", "canceled"]


def test_a_fill_during_pending_cancel_wins_and_the_cancel_is_rejected(
    trading: TradingClient, sim: AdminClient, stream: StreamRecorder
) -> None:
    sim.set_price("AAPL", 100, volatility=0)
    order = resting_buy(trading)
    sim.configure(cancel_delay_ms=300)
    trading.cancel_order_by_id(order.id)
    sim.fill_order(str(order.id), price=90)
    sim.sync()
    assert get(trading, order.id).status is OrderStatus.FILLED
    assert trading.get_open_position("AAPL").qty == "5"
    rejected = stream.wait_for(
        lambda u: u.event == "order_cancel_rejected" and u.order.id == order.id
    )
    assert rejected.order.status is OrderStatus.FILLED
    assert events_of(stream, order.id)[-3:] == ["pending_cancel", "fill", "order_cancel_rejected"]


def test_a_cancel_refused_after_acceptance_leaves_the_order_working(
    trading: TradingClient, sim: AdminClient, stream: StreamRecorder
) -> None:
    sim.set_price("AAPL", 100, volatility=0)
    stop = protective_stop(trading, sim)
    sim.reject_next_cancel(str(stop.id))
    assert trading.cancel_order_by_id(stop.id) is None  # 204
    sim.sync()
    assert get(trading, stop.id).status is OrderStatus.NEW
    stream.wait_for(lambda u: u.event == "order_cancel_rejected" and u.order.id == stop.id)
    sim.set_price("AAPL", 94)
    assert get(trading, stop.id).status is OrderStatus.FILLED  # it still protected


def test_replace_streams_pending_replace_then_replaced_and_new(
    trading: TradingClient, sim: AdminClient, stream: StreamRecorder
) -> None:
    sim.set_price("AAPL", 100, volatility=0)
    stop = protective_stop(trading, sim)
    sim.configure(replace_delay_ms=300)
    new = trading.replace_order_by_id(stop.id, ReplaceOrderRequest(stop_price=97))
    assert isinstance(new, Order) and new.status is OrderStatus.PENDING_NEW
    assert get(trading, stop.id).status is OrderStatus.PENDING_REPLACE
    assert trading.get_open_position("AAPL").qty_available == "0"  # held once, not twice
    with pytest.raises(APIError) as twice:
        trading.replace_order_by_id(stop.id, ReplaceOrderRequest(stop_price=98))
    assert twice.value.status_code == 422 and "pending_replace" in twice.value.message
    with pytest.raises(APIError) as cancel:
        trading.cancel_order_by_id(stop.id)
    assert cancel.value.status_code == 422
    with pytest.raises(APIError) as new_too:
        trading.replace_order_by_id(new.id, ReplaceOrderRequest(stop_price=98))
    assert new_too.value.status_code == 422 and "pending_new" in new_too.value.message
    sim.sync()
    old = get(trading, stop.id)
    assert old.status is OrderStatus.REPLACED and old.replaced_by == new.id
    live = get(trading, new.id)
    assert live.status is OrderStatus.NEW and live.stop_price == "97"
    assert events_of(stream, stop.id)[-2:] == ["pending_replace", "replaced"]
    assert events_of(stream, new.id) == ["pending_new", "new"]
    sim.set_price("AAPL", 96.5)
    assert get(trading, new.id).status is OrderStatus.FILLED


def test_a_replace_rejected_after_acceptance_leaves_the_old_order_live(
    trading: TradingClient, sim: AdminClient, stream: StreamRecorder
) -> None:
    sim.set_price("AAPL", 100, volatility=0)
    stop = protective_stop(trading, sim)
    sim.reject_next_replace(str(stop.id))
    new = trading.replace_order_by_id(stop.id, ReplaceOrderRequest(stop_price=97))
    assert isinstance(new, Order)
    sim.sync()
    assert get(trading, new.id).status is OrderStatus.REJECTED
    old = get(trading, stop.id)
    assert old.status is OrderStatus.NEW and old.replaced_by is None and old.stop_price == "95"
    stream.wait_for(lambda u: u.event == "order_replace_rejected" and u.order.id == stop.id)
    stream.wait_for(lambda u: u.event == "rejected" and u.order.id == new.id)
    sim.set_price("AAPL", 94)
    assert get(trading, stop.id).status is OrderStatus.FILLED


def test_an_order_filled_before_its_replace_lands_rejects_the_replacement(
    trading: TradingClient, sim: AdminClient, stream: StreamRecorder
) -> None:
    sim.set_price("AAPL", 100, volatility=0)
    stop = protective_stop(trading, sim)
    sim.configure(replace_delay_ms=300)
    new = trading.replace_order_by_id(stop.id, ReplaceOrderRequest(stop_price=97))
    assert isinstance(new, Order)
    sim.set_price("AAPL", 94)  # the old stop still works while pending_replace
    sim.sync()
    assert get(trading, stop.id).status is OrderStatus.FILLED
    assert get(trading, new.id).status is OrderStatus.REJECTED
    stream.wait_for(lambda u: u.event == "order_replace_rejected" and u.order.id == stop.id)
    assert trading.get_all_positions() == []


def test_replace_is_refused_while_accepted(trading: TradingClient, sim: AdminClient) -> None:
    sim.set_clock(datetime(2024, 3, 5, 22, 0, tzinfo=UTC))  # after the close: queued
    order = resting_buy(trading)
    sim.sync()
    assert get(trading, order.id).status is OrderStatus.ACCEPTED
    with pytest.raises(APIError) as error:
        trading.replace_order_by_id(order.id, ReplaceOrderRequest(limit_price=91))
    assert error.value.status_code == 422 and error.value.code == 42210000
    assert "accepted" in error.value.message


def test_a_cancel_of_a_replacement_in_flight_ends_the_chain(
    trading: TradingClient, sim: AdminClient
) -> None:
    sim.set_price("AAPL", 100, volatility=0)
    order = resting_buy(trading)
    new = trading.replace_order_by_id(order.id, ReplaceOrderRequest(limit_price=91))
    assert isinstance(new, Order)
    trading.cancel_order_by_id(new.id)
    sim.sync()
    assert get(trading, order.id).status is OrderStatus.REPLACED
    assert get(trading, new.id).status is OrderStatus.CANCELED
    assert trading.get_orders() == []


def test_a_bracket_leg_may_change_only_its_prices(trading: TradingClient, sim: AdminClient) -> None:
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
    with pytest.raises(APIError) as resize:
        trading.replace_order_by_id(stop.id, ReplaceOrderRequest(qty=5))
    assert resize.value.status_code == 422 and "only limit_price and stop_price" in str(
        resize.value.message
    )
    tighter = trading.replace_order_by_id(stop.id, ReplaceOrderRequest(stop_price=97))
    assert isinstance(tighter, Order)
    sim.sync()
    live = get(trading, tighter.id)
    assert live.status is OrderStatus.HELD and live.stop_price == "97"  # held but live
    after = trading.get_order_by_id(parent.id, GetOrderByIdRequest(nested=True))
    assert isinstance(after, Order)
    assert tighter.id in {leg.id for leg in after.legs or []}
    sim.configure(leg_replace="any")  # the lenient reading, for comparison
    resized = trading.replace_order_by_id(tighter.id, ReplaceOrderRequest(qty=10, stop_price=97.5))
    assert isinstance(resized, Order)
    sim.sync()
    assert get(trading, resized.id).status is OrderStatus.HELD


def test_oto_orders_cannot_be_replaced(trading: TradingClient, sim: AdminClient) -> None:
    sim.set_price("AAPL", 100, volatility=0)
    entry = trading.submit_order(
        MarketOrderRequest(
            symbol="AAPL",
            qty=5,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.GTC,
            order_class=OrderClass.OTO,
            stop_loss=StopLossRequest(stop_price=95),
        )
    )
    assert isinstance(entry, Order)
    stop = (entry.legs or [])[0]
    assert get(trading, entry.id).status is OrderStatus.FILLED
    with pytest.raises(APIError) as error:
        trading.replace_order_by_id(stop.id, ReplaceOrderRequest(stop_price=97))
    assert error.value.status_code == 422 and "oto" in error.value.message
