"""Replacing a whole mleg order is refused (stricter than Alpaca) before its body is checked.

alpaca-py's examples/options/options-trading-mleg.ipynb shows Alpaca replacing a whole mleg
order; the paper broker refuses it (never friendlier than Alpaca; our code cancels and
resubmits). A credit mleg order's replace carries a negative limit_price: the mleg refusal
must answer, not the stock rule "limit price must be > 0".
"""

from __future__ import annotations

import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderClass, OrderSide, OrderStatus, TimeInForce
from alpaca.trading.models import Order
from alpaca.trading.requests import (
    ClosePositionRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    OptionLegRequest,
    ReplaceOrderRequest,
)

from paperbroker.admin_client import AdminClient

LONG_PUT = "SPY240308P00500000"
SHORT_PUT = "SPY240308P00510000"


def test_replacing_a_credit_mleg_order_answers_the_mleg_refusal(
    trading: TradingClient, sim: AdminClient
) -> None:
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
    with pytest.raises(APIError) as refused:
        trading.replace_order_by_id(order.id, ReplaceOrderRequest(limit_price=-9.40))
    assert refused.value.status_code == 422 and refused.value.code == 42210000
    assert refused.value.message == "mleg orders cannot be replaced; cancel and resubmit"
    found = trading.get_order_by_id(order.id)
    assert isinstance(found, Order) and found.status is OrderStatus.NEW


def test_closing_an_option_position_by_percentage_is_refused(
    trading: TradingClient, sim: AdminClient
) -> None:
    trading.submit_order(
        MarketOrderRequest(
            symbol=LONG_PUT, qty=2, side=OrderSide.BUY, time_in_force=TimeInForce.DAY
        )
    )
    sim.sync()
    with pytest.raises(APIError) as refused:
        trading.close_position(LONG_PUT, ClosePositionRequest(percentage="50"))
    assert refused.value.status_code == 422
    assert "percentage" in refused.value.message
