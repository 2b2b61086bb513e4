"""Options trading levels 0-3: the account states its level and orders above it are refused.

Sources: Alpaca "Options Trading" (docs.alpaca.markets/docs/options-trading), the levels
table; alpaca-py TradeAccount ("0=disabled, 1=Covered Call/Cash-Secured Put, 2=Long Call/Put,
3=Spreads/Straddles"). Alpaca documents no body for an order above the account's level: the
paper broker answers 403 40310000 naming the level needed. Every mleg order needs level 3.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderClass, OrderSide, OrderStatus, PositionIntent, TimeInForce
from alpaca.trading.models import Order, TradeAccount
from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest, OptionLegRequest

from paperbroker.admin_client import AdminClient, AdminError
from paperbroker.testing import run_paper_broker
from tests.conftest import SESSION_START

LONG_PUT = "SPY240308P00500000"
SHORT_PUT = "SPY240308P00510000"
CALL = "SPY240308C00520000"


def level_of(trading: TradingClient) -> tuple[int | None, int | None]:
    """The account's (options_approved_level, options_trading_level)."""
    account = trading.get_account()
    assert isinstance(account, TradeAccount)
    return account.options_approved_level, account.options_trading_level


def buy_call(side: OrderSide = OrderSide.BUY) -> MarketOrderRequest:
    """One CALL at market (opening when bought with no position, closing when sold)."""
    return MarketOrderRequest(symbol=CALL, qty=1, side=side, time_in_force=TimeInForce.DAY)


def cash_secured_put() -> MarketOrderRequest:
    """Sell to open one SHORT_PUT (a cash-secured put: level 1)."""
    return MarketOrderRequest(
        symbol=SHORT_PUT,
        qty=1,
        side=OrderSide.SELL,
        time_in_force=TimeInForce.DAY,
        position_intent=PositionIntent.SELL_TO_OPEN,
    )


def put_spread() -> LimitOrderRequest:
    """A 500/510 bull put spread (level 3)."""
    return LimitOrderRequest(
        qty=1,
        order_class=OrderClass.MLEG,
        legs=[
            OptionLegRequest(symbol=LONG_PUT, ratio_qty=1, side=OrderSide.BUY),
            OptionLegRequest(symbol=SHORT_PUT, ratio_qty=1, side=OrderSide.SELL),
        ],
        limit_price=-1.00,
        time_in_force=TimeInForce.DAY,
    )


def refused(trading: TradingClient, request: MarketOrderRequest | LimitOrderRequest) -> APIError:
    """Submit and return Alpaca's refusal."""
    with pytest.raises(APIError) as answer:
        trading.submit_order(request)
    return answer.value


def accepted(trading: TradingClient, request: MarketOrderRequest | LimitOrderRequest) -> Order:
    """Submit and return the accepted order."""
    order = trading.submit_order(request)
    assert isinstance(order, Order)
    return order


def test_the_account_states_the_level_the_admin_route_sets_until_a_reset(
    trading: TradingClient, sim: AdminClient
) -> None:
    assert level_of(trading) == (3, 3)
    assert sim.set_options_level(1) == 1
    assert level_of(trading) == (1, 1)
    sim.reset(clock=SESSION_START)
    assert level_of(trading) == (3, 3)


def test_level_0_refuses_every_option_order(trading: TradingClient, sim: AdminClient) -> None:
    sim.set_options_level(0)
    for request in (buy_call(), cash_secured_put(), put_spread()):
        answer = refused(trading, request)
        assert answer.status_code == 403 and answer.code == 40310000


def test_level_1_sells_cash_secured_puts_and_closes_but_buys_nothing_to_open(
    trading: TradingClient, sim: AdminClient
) -> None:
    accepted(trading, buy_call())  # opened at level 3
    sim.sync()
    sim.set_options_level(1)
    answer = refused(trading, buy_call())
    assert answer.status_code == 403 and answer.code == 40310000
    assert "level 2" in answer.message
    answer = refused(trading, put_spread())
    assert answer.status_code == 403 and "level 3" in answer.message
    accepted(trading, cash_secured_put())
    closing = accepted(trading, buy_call(OrderSide.SELL))
    sim.sync()
    assert trading.get_order_by_id(closing.id).status is OrderStatus.FILLED


def test_level_2_buys_calls_but_refuses_mleg_orders(
    trading: TradingClient, sim: AdminClient
) -> None:
    sim.set_options_level(2)
    accepted(trading, buy_call())
    answer = refused(trading, put_spread())
    assert answer.status_code == 403 and answer.code == 40310000
    assert "level 3" in answer.message
    sim.set_options_level(3)
    accepted(trading, put_spread())


def test_the_admin_route_refuses_a_level_outside_0_to_3(sim: AdminClient) -> None:
    with pytest.raises(AdminError) as refused:
        sim.set_options_level(4)
    assert refused.value.status == 422


def test_a_configured_level_survives_reset_and_snapshot_restore(tmp_path: Path) -> None:
    with run_paper_broker(start=SESSION_START, rate_limit=0, options_level=1) as running:
        trading = TradingClient(
            running.key_id, running.secret_key, paper=True, url_override=running.trading_url
        )
        assert level_of(trading) == (1, 1)
        assert refused(trading, buy_call()).status_code == 403
        running.admin.set_options_level(3)
        running.admin.reset(clock=SESSION_START)
        assert level_of(trading) == (1, 1)
        snapshot = running.admin.snapshot(str(tmp_path / "state.json"))
        running.admin.set_options_level(2)
        running.admin.restore(snapshot)
        assert level_of(trading) == (1, 1)
