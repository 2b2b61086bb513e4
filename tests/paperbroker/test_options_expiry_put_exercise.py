"""An in-the-money long put is exercised at expiry only with available shares to deliver.

Alpaca support "What is automatic exercise": "If your account has long available shares to
cover the exercise deliverables of the put contract, the put will be exercised ... if your
account does not have enough available shares ... a do not exercise may be placed after the
close"; shares securing a covered call "would not be considered available to sell". So the
paper broker never turns a long put into short stock: without the shares the put gets a
do-not-exercise and is recorded as expired (OPEXP), with no share move (OPTRD) and no cash.

The 500 put expires Friday 2024-03-08; SPY closes that day at 490 (the put is $10 in the money).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import MarketOrderRequest

from paperbroker.admin_client import AdminClient
from tests.paperbroker.test_options_orders import (
    AFTER_EXPIRY_CLOSE,
    LONG_PUT,
    SHORT_CALL,
    positions_by_symbol,
)


def trade(trading: TradingClient, symbol: str, qty: int, side: OrderSide) -> None:
    """A day market order for `qty` contracts."""
    trading.submit_order(
        MarketOrderRequest(symbol=symbol, qty=qty, side=side, time_in_force=TimeInForce.DAY)
    )


def settle_at(trading: TradingClient, sim: AdminClient, price: float) -> Decimal:
    """Hold through the 2024-03-08 close with SPY there at `price`; return the cash before."""
    sim.sync()
    sim.set_price("SPY", price=price, volatility=0)
    cash_before = Decimal(str(trading.get_account().cash))
    sim.set_clock(AFTER_EXPIRY_CLOSE)
    return cash_before


def events(trading: TradingClient) -> list[tuple[str, str, str]]:
    """The recorded option events and share moves as (type, symbol, qty), sorted (one instant)."""
    found: Any = trading.get("/account/activities")
    return sorted((row["activity_type"], row["symbol"], row["qty"]) for row in found)


def test_long_put_without_shares_is_not_exercised_and_leaves_no_short_stock(
    trading: TradingClient, sim: AdminClient
) -> None:
    trade(trading, LONG_PUT, 1, OrderSide.BUY)
    cash_before = settle_at(trading, sim, price=490)
    assert positions_by_symbol(trading) == {}  # no -100 SPY
    assert Decimal(str(trading.get_account().cash)) == cash_before
    assert events(trading) == [("OPEXP", LONG_PUT, "-1")]


def test_long_put_with_the_shares_is_exercised_and_delivers_them(
    trading: TradingClient, sim: AdminClient
) -> None:
    sim.open_position("SPY", 100, price=520)
    trade(trading, LONG_PUT, 1, OrderSide.BUY)
    cash_before = settle_at(trading, sim, price=490)
    assert positions_by_symbol(trading) == {}
    assert Decimal(str(trading.get_account().cash)) == cash_before + 500 * 100
    assert events(trading) == sorted([("OPEXC", LONG_PUT, "-1"), ("OPTRD", "SPY", "-100")])


def test_shares_securing_a_covered_call_are_not_available_to_the_put(
    trading: TradingClient, sim: AdminClient
) -> None:
    sim.open_position("SPY", 100, price=520)
    trade(trading, SHORT_CALL, 1, OrderSide.SELL)  # covered call on the 100 shares
    trade(trading, LONG_PUT, 1, OrderSide.BUY)
    cash_before = settle_at(trading, sim, price=490)
    assert positions_by_symbol(trading) == {"SPY": Decimal(100)}
    assert Decimal(str(trading.get_account().cash)) == cash_before
    assert events(trading) == sorted([("OPEXP", LONG_PUT, "-1"), ("OPEXP", SHORT_CALL, "1")])


def test_only_the_contracts_the_shares_deliver_are_exercised(
    trading: TradingClient, sim: AdminClient
) -> None:
    sim.open_position("SPY", 150, price=520)
    trade(trading, LONG_PUT, 2, OrderSide.BUY)
    cash_before = settle_at(trading, sim, price=490)
    assert positions_by_symbol(trading) == {"SPY": Decimal(50)}
    assert Decimal(str(trading.get_account().cash)) == cash_before + 500 * 100
    assert events(trading) == sorted(
        [("OPEXC", LONG_PUT, "-1"), ("OPTRD", "SPY", "-100"), ("OPEXP", LONG_PUT, "-1")]
    )
