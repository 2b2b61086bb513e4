"""Shares that cover a short call are held: selling them would leave the call naked.

Sources: Alpaca "Options Trading" levels table (a covered call needs the user to "own
sufficient underlying shares"; no level allows an uncovered call). The refusal is Alpaca's
share reservation answer: 403 40310000 "insufficient qty available for order" with the
covering shares counted in held_for_orders.
"""

from __future__ import annotations

import json

import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, OrderStatus, TimeInForce
from alpaca.trading.models import Order
from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest, ReplaceOrderRequest

from paperbroker.admin_client import AdminClient

CALL = "SPY240308C00530000"


def market(symbol: str, qty: int, side: OrderSide) -> MarketOrderRequest:
    """A day market order."""
    return MarketOrderRequest(symbol=symbol, qty=qty, side=side, time_in_force=TimeInForce.DAY)


def filled(trading: TradingClient, sim: AdminClient, request: MarketOrderRequest) -> Order:
    """Submit, let it fill, return the order."""
    order = trading.submit_order(request)
    assert isinstance(order, Order)
    sim.sync()
    found = trading.get_order_by_id(order.id)
    assert isinstance(found, Order) and found.status is OrderStatus.FILLED
    return found


def test_shares_covering_a_short_call_cannot_be_sold_until_the_call_is_bought_back(
    trading: TradingClient, sim: AdminClient
) -> None:
    filled(trading, sim, market("SPY", 150, OrderSide.BUY))
    filled(trading, sim, market(CALL, 1, OrderSide.SELL))  # a covered call: 100 shares
    with pytest.raises(APIError) as refused:
        trading.submit_order(market("SPY", 100, OrderSide.SELL))
    assert refused.value.status_code == 403 and refused.value.code == 40310000
    body = json.loads(str(refused.value))
    assert body["message"] == "insufficient qty available for order (requested: 100, available: 50)"
    assert (body["available"], body["held_for_orders"], body["existing_qty"]) == (
        "50",
        "100",
        "150",
    )
    filled(trading, sim, market("SPY", 50, OrderSide.SELL))  # the uncovered 50 sell
    filled(trading, sim, market(CALL, 1, OrderSide.BUY))  # the call bought back
    filled(trading, sim, market("SPY", 100, OrderSide.SELL))


def test_a_replace_cannot_grow_a_sell_into_the_covering_shares(
    trading: TradingClient, sim: AdminClient
) -> None:
    filled(trading, sim, market("SPY", 150, OrderSide.BUY))
    filled(trading, sim, market(CALL, 1, OrderSide.SELL))
    resting = trading.submit_order(
        LimitOrderRequest(
            symbol="SPY",
            qty=50,
            side=OrderSide.SELL,
            time_in_force=TimeInForce.DAY,
            limit_price=900,
        )
    )
    sim.sync()
    with pytest.raises(APIError) as refused:
        trading.replace_order_by_id(resting.id, ReplaceOrderRequest(qty=100))
    assert refused.value.status_code == 403
    assert "insufficient qty available" in refused.value.message
