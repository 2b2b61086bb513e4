"""The stock guard never sees options: the gateway's positions and open orders leave them out.

A protective sell stop is the stock guard's answer to a position; for an option leg it would
be refused (and a refused rescue escalates to a halt), so options positions and orders are
OptionTradeWorkflow's alone. Through the production gateway against the paper broker: an
option position and an open option order sit beside a stock position and its stop; the
gateway lists the stock's and nothing of the options.
"""

from __future__ import annotations

from decimal import Decimal

from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest, StopOrderRequest

from broker.alpaca import AlpacaGateway
from paperbroker.admin_client import AdminClient
from tests.paperbroker.test_options_orders import AT_THE_MONEY_CALL, LONG_PUT
from trading.options.chain import is_option_symbol


def test_options_positions_and_orders_are_not_the_stock_guards(
    trading: TradingClient, sim: AdminClient, gateway: AlpacaGateway
) -> None:
    sim.open_position("AAPL", 10)
    trading.submit_order(
        StopOrderRequest(
            symbol="AAPL", qty=10, side=OrderSide.SELL, stop_price=1.00,
            time_in_force=TimeInForce.GTC,
        )
    )  # fmt: skip
    trading.submit_order(
        MarketOrderRequest(
            symbol=AT_THE_MONEY_CALL, qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY
        )
    )
    trading.submit_order(
        LimitOrderRequest(
            symbol=LONG_PUT, qty=1, side=OrderSide.BUY, limit_price=0.01,
            time_in_force=TimeInForce.DAY,
        )
    )  # fmt: skip
    held = {p.symbol for p in trading.get_all_positions()}  # type: ignore[union-attr]
    assert AT_THE_MONEY_CALL in held and "AAPL" in held  # the broker holds both

    positions = gateway.get_positions()
    assert [(p.symbol, p.qty) for p in positions] == [("AAPL", Decimal(10))]
    orders = gateway.get_open_orders()
    assert orders and all(not is_option_symbol(o.symbol) for o in orders)
    assert {o.symbol for o in orders} == {"AAPL"}


def test_an_occ_symbol_is_told_from_a_stock_symbol() -> None:
    assert is_option_symbol("SPY240308C00520000")
    assert is_option_symbol("BRKB261218P00450000")
    for stock in ("AAPL", "SPY", "BRK.B", "", "SPY240308X00520000", "GOOGL"):
        assert not is_option_symbol(stock), stock
