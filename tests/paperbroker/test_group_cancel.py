"""Cancelling any order of a bracket / OCO / OTO group cancels the rest (forum t/11938)."""

from __future__ import annotations

from uuid import UUID

import pytest
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderClass, OrderSide, OrderStatus, OrderType, TimeInForce
from alpaca.trading.models import Order
from alpaca.trading.requests import (
    GetOrderByIdRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    StopLossRequest,
    TakeProfitRequest,
)

from paperbroker.admin_client import AdminClient
from paperbroker.testing import StreamRecorder

pytestmark = pytest.mark.integration


def bracket(trading: TradingClient, qty: int = 10, limit: float | None = None) -> Order:
    """A GTC buy bracket on AAPL around 100 (market entry unless `limit` is given)."""
    legs = {
        "symbol": "AAPL",
        "qty": qty,
        "side": OrderSide.BUY,
        "time_in_force": TimeInForce.GTC,
        "order_class": OrderClass.BRACKET,
        "take_profit": TakeProfitRequest(limit_price=110),
        "stop_loss": StopLossRequest(stop_price=95),
    }
    if limit is None:
        order = trading.submit_order(MarketOrderRequest(**legs))
    else:
        order = trading.submit_order(LimitOrderRequest(limit_price=limit, **legs))
    assert isinstance(order, Order)
    return order


def legs_of(trading: TradingClient, parent: UUID) -> dict[OrderType, Order]:
    """The parent's legs by type (limit = take-profit, stop = stop-loss)."""
    nested = trading.get_order_by_id(parent, GetOrderByIdRequest(nested=True))
    assert isinstance(nested, Order)
    return {leg.type: leg for leg in nested.legs or []}


def status(trading: TradingClient, order_id: UUID) -> OrderStatus:
    """The order's status now."""
    order = trading.get_order_by_id(order_id)
    assert isinstance(order, Order)
    return order.status


def test_cancelling_the_take_profit_cancels_the_live_stop_leg(
    trading: TradingClient, sim: AdminClient, stream: StreamRecorder
) -> None:
    sim.set_price("AAPL", 100, volatility=0)
    parent = bracket(trading)
    legs = legs_of(trading, parent.id)
    take_profit, stop = legs[OrderType.LIMIT], legs[OrderType.STOP]
    assert (take_profit.status, stop.status) == (OrderStatus.NEW, OrderStatus.HELD)
    trading.cancel_order_by_id(take_profit.id)
    sim.sync()
    assert status(trading, take_profit.id) is OrderStatus.CANCELED
    assert status(trading, stop.id) is OrderStatus.CANCELED  # the stop went with it
    for leg in (take_profit, stop):
        stream.wait_for(lambda u, leg=leg: u.event == "canceled" and u.order.id == leg.id)
    position = trading.get_open_position("AAPL")
    assert position.qty == "10" and position.qty_available == "10"  # shares stay, unprotected
    assert trading.get_orders() == []


def test_a_dashboard_cancel_of_the_stop_leg_cancels_the_take_profit(
    trading: TradingClient, sim: AdminClient
) -> None:
    sim.set_price("AAPL", 100, volatility=0)
    parent = bracket(trading)
    legs = legs_of(trading, parent.id)
    sim.cancel_order(str(legs[OrderType.STOP].id))
    sim.sync()
    assert status(trading, legs[OrderType.STOP].id) is OrderStatus.CANCELED
    assert status(trading, legs[OrderType.LIMIT].id) is OrderStatus.CANCELED
    assert status(trading, parent.id) is OrderStatus.FILLED


@pytest.mark.parametrize("how", ["delete_one", "delete_all", "dashboard"])
def test_cancelling_a_partly_filled_entry_cancels_its_held_legs(
    trading: TradingClient, sim: AdminClient, stream: StreamRecorder, how: str
) -> None:
    sim.set_price("AAPL", 100, volatility=0)
    parent = bracket(trading, limit=98)
    sim.fill_order(str(parent.id), price=98, qty=4)
    assert status(trading, parent.id) is OrderStatus.PARTIALLY_FILLED
    legs = legs_of(trading, parent.id)
    assert {leg.status for leg in legs.values()} == {OrderStatus.HELD}  # not yet active
    if how == "delete_one":
        trading.cancel_order_by_id(parent.id)
    elif how == "delete_all":
        assert {str(s.id) for s in trading.cancel_orders()} == {
            str(i) for i in (parent.id, *(leg.id for leg in legs.values()))
        }
    else:
        sim.cancel_order(str(parent.id))
    sim.sync()
    assert status(trading, parent.id) is OrderStatus.CANCELED
    legs = legs_of(trading, parent.id)
    assert {leg.status for leg in legs.values()} == {OrderStatus.CANCELED}  # never activated
    assert trading.get_open_position("AAPL").qty == "4"  # the filled shares stay ...
    assert trading.get_orders() == []  # ... with no order on them
    for order_id in (parent.id, *(leg.id for leg in legs.values())):
        stream.wait_for(lambda u, i=order_id: u.event == "canceled" and u.order.id == i)


def test_cancelling_the_oco_stop_cancels_the_take_profit(
    trading: TradingClient, sim: AdminClient
) -> None:
    sim.set_price("AAPL", 100, volatility=0)
    sim.open_position("AAPL", 10)
    oco = trading.submit_order(
        LimitOrderRequest(
            symbol="AAPL",
            qty=10,
            side=OrderSide.SELL,
            time_in_force=TimeInForce.GTC,
            order_class=OrderClass.OCO,
            take_profit=TakeProfitRequest(limit_price=110),
            stop_loss=StopLossRequest(stop_price=95),
        )
    )
    assert isinstance(oco, Order)
    stop = (oco.legs or [])[0]
    trading.cancel_order_by_id(stop.id)
    sim.sync()
    assert status(trading, stop.id) is OrderStatus.CANCELED
    assert status(trading, oco.id) is OrderStatus.CANCELED


def test_cancelling_the_held_leg_of_an_oto_cancels_its_entry(
    trading: TradingClient, sim: AdminClient
) -> None:
    sim.set_price("AAPL", 100, volatility=0)
    entry = trading.submit_order(
        LimitOrderRequest(
            symbol="AAPL",
            qty=5,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.GTC,
            limit_price=90,
            order_class=OrderClass.OTO,
            stop_loss=StopLossRequest(stop_price=85),
        )
    )
    assert isinstance(entry, Order)
    stop = (entry.legs or [])[0]
    trading.cancel_order_by_id(stop.id)
    sim.sync()
    assert status(trading, entry.id) is OrderStatus.CANCELED
    assert trading.get_orders() == []


def test_sibling_cancel_events_can_be_skipped_as_reported(
    trading: TradingClient, sim: AdminClient, stream: StreamRecorder
) -> None:
    sim.configure(skip_sibling_cancel_events=True)
    sim.set_price("AAPL", 100, volatility=0)
    parent = bracket(trading)
    stop = legs_of(trading, parent.id)[OrderType.STOP]
    sim.set_price("AAPL", 111)  # the take-profit fills
    take_profit_fill = stream.wait_for(lambda u: u.event == "fill" and u.order.side == "sell")
    assert take_profit_fill.order.type is OrderType.LIMIT
    assert status(trading, stop.id) is OrderStatus.CANCELED  # REST knows ...
    seen = stream.drain(0.5)
    assert not [u for u in seen if u.order.id == stop.id and u.event == "canceled"]  # stream not
    assert trading.get_all_positions() == []
