"""An mleg order is cancelled and replaced whole: its legs refuse both, as Alpaca's do.

Source: alpaca-py examples/options/options-trading-mleg.ipynb ("Querying, Replacing, and
Cancelling"): 422 ``{"code":42210000,"message":"cannot cancel individual legs of a mleg
order"}`` and the same with "replace". The broker's clock starts at SESSION_START (Tuesday
2024-03-05, 10:30 New York); the contracts expire on Friday 2024-03-08.
"""

from __future__ import annotations

import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderClass, OrderSide, OrderStatus, TimeInForce
from alpaca.trading.models import Order
from alpaca.trading.requests import (
    GetOrderByIdRequest,
    LimitOrderRequest,
    OptionLegRequest,
    ReplaceOrderRequest,
)

from paperbroker.admin_client import AdminClient

LONG_PUT = "SPY240308P00500000"
SHORT_PUT = "SPY240308P00510000"


def resting_put_spread(trading: TradingClient, sim: AdminClient) -> Order:
    """A 500/510 bull put spread asking a credit it cannot get: open, with its legs."""
    order = trading.submit_order(
        LimitOrderRequest(
            qty=1,
            order_class=OrderClass.MLEG,
            legs=[
                OptionLegRequest(symbol=LONG_PUT, ratio_qty=1, side=OrderSide.BUY),
                OptionLegRequest(symbol=SHORT_PUT, ratio_qty=1, side=OrderSide.SELL),
            ],
            limit_price=-9.50,
            time_in_force=TimeInForce.DAY,
        )
    )
    sim.sync()
    found = trading.get_order_by_id(order.id, GetOrderByIdRequest(nested=True))
    assert isinstance(found, Order) and found.status is OrderStatus.NEW and found.legs
    return found


def status_of(trading: TradingClient, order_id: object) -> OrderStatus:
    """The order's status now."""
    found = trading.get_order_by_id(str(order_id))
    assert isinstance(found, Order)
    return found.status


def test_cancelling_one_leg_of_an_mleg_order_is_refused_and_the_order_stays_whole(
    trading: TradingClient, sim: AdminClient
) -> None:
    order = resting_put_spread(trading, sim)
    assert order.legs is not None
    leg = order.legs[0]
    with pytest.raises(APIError) as refused:
        trading.cancel_order_by_id(str(leg.id))
    assert refused.value.status_code == 422
    assert refused.value.code == 42210000
    assert refused.value.message == "cannot cancel individual legs of a mleg order"
    sim.sync()
    assert status_of(trading, leg.id) is OrderStatus.NEW
    assert status_of(trading, order.id) is OrderStatus.NEW
    trading.cancel_order_by_id(str(order.id))  # the whole order cancels, legs with it
    sim.sync()
    assert status_of(trading, order.id) is OrderStatus.CANCELED
    assert {status_of(trading, x.id) for x in order.legs} == {OrderStatus.CANCELED}


def test_replacing_one_leg_of_an_mleg_order_is_refused(
    trading: TradingClient, sim: AdminClient
) -> None:
    order = resting_put_spread(trading, sim)
    assert order.legs is not None
    leg = order.legs[1]
    with pytest.raises(APIError) as refused:
        trading.replace_order_by_id(str(leg.id), ReplaceOrderRequest(qty=2))
    assert refused.value.status_code == 422
    assert refused.value.code == 42210000
    assert refused.value.message == "cannot replace individual legs of a mleg order"
    sim.sync()
    assert status_of(trading, leg.id) is OrderStatus.NEW


def test_cancel_all_cancels_an_mleg_order_whole(trading: TradingClient, sim: AdminClient) -> None:
    order = resting_put_spread(trading, sim)
    assert order.legs is not None
    answers = trading.cancel_orders()
    assert {str(a.id) for a in answers} == {str(order.id)}
    sim.sync()
    assert status_of(trading, order.id) is OrderStatus.CANCELED
    assert {status_of(trading, x.id) for x in order.legs} == {OrderStatus.CANCELED}
