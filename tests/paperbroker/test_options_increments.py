"""Single-leg option limit prices follow Alpaca's option price increments.

Source: Alpaca support "Options pricing increments and options order handling": Penny
Program classes trade in $0.01 below $3.00 and $0.05 at or above; SPY, QQQ, IWM in $0.01 at
any price; other classes in $0.05 below $3.00 and $0.10 at or above. Off-increment limits
are refused (422 42210000); mleg net prices stay on the cent.
"""

from __future__ import annotations

import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderClass, OrderSide, TimeInForce
from alpaca.trading.models import Order
from alpaca.trading.requests import (
    GetOptionContractsRequest,
    LimitOrderRequest,
    OptionLegRequest,
    ReplaceOrderRequest,
)

from paperbroker.admin_client import AdminClient

SPY_CALL = "SPY240308C00520000"


def a_contract(trading: TradingClient, underlying: str) -> str:
    """The first listed contract of `underlying`."""
    answer = trading.get_option_contracts(
        GetOptionContractsRequest(underlying_symbols=[underlying])
    )
    contracts = getattr(answer, "option_contracts", None)
    assert contracts
    return str(contracts[0].symbol)


def buy_limit(symbol: str, limit: float) -> LimitOrderRequest:
    """Buy one contract at `limit`."""
    return LimitOrderRequest(
        symbol=symbol, qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY, limit_price=limit
    )


def refusal(trading: TradingClient, request: LimitOrderRequest) -> APIError:
    """Submit and return the refusal."""
    with pytest.raises(APIError) as refused:
        trading.submit_order(request)
    return refused.value


@pytest.mark.parametrize(
    ("underlying", "limit", "increment"),
    [
        ("AAPL", 3.02, "$0.05"),
        ("AAPL", 4.33, "$0.05"),
        ("XYZ", 2.97, "$0.05"),
        ("XYZ", 3.05, "$0.10"),
    ],
)
def test_a_limit_off_the_increment_is_refused(
    trading: TradingClient, sim: AdminClient, underlying: str, limit: float, increment: str
) -> None:
    if underlying == "XYZ":
        sim.set_price("XYZ", price=100)  # not a Penny Program class
    refused = refusal(trading, buy_limit(a_contract(trading, underlying), limit))
    assert refused.status_code == 422 and refused.code == 42210000
    assert refused.message.startswith(f"invalid limit_price {limit}.")
    assert f"{increment} increments" in refused.message


@pytest.mark.parametrize(
    ("underlying", "limit"),
    [("AAPL", 2.97), ("AAPL", 3.05), ("SPY", 3.02), ("QQQ", 7.07), ("XYZ", 2.95), ("XYZ", 3.10)],
)
def test_a_limit_on_the_increment_is_accepted(
    trading: TradingClient, sim: AdminClient, underlying: str, limit: float
) -> None:
    if underlying == "XYZ":
        sim.set_price("XYZ", price=100)
    order = trading.submit_order(buy_limit(a_contract(trading, underlying), limit))
    assert isinstance(order, Order)


def test_a_replace_to_an_off_increment_limit_is_refused(
    trading: TradingClient, sim: AdminClient
) -> None:
    order = trading.submit_order(buy_limit(a_contract(trading, "AAPL"), 0.05))
    sim.sync()
    with pytest.raises(APIError) as refused:
        trading.replace_order_by_id(order.id, ReplaceOrderRequest(limit_price=3.02))
    assert refused.value.status_code == 422 and "$0.05 increments" in refused.value.message


def test_an_mleg_net_price_stays_on_the_cent(trading: TradingClient, sim: AdminClient) -> None:
    order = trading.submit_order(
        LimitOrderRequest(
            qty=1,
            order_class=OrderClass.MLEG,
            legs=[
                OptionLegRequest(symbol="SPY240308P00500000", ratio_qty=1, side=OrderSide.BUY),
                OptionLegRequest(symbol="SPY240308P00510000", ratio_qty=1, side=OrderSide.SELL),
            ],
            limit_price=-3.07,
            time_in_force=TimeInForce.DAY,
        )
    )
    assert isinstance(order, Order)
