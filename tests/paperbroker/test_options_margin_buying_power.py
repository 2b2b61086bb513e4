"""Options buying power of credit spreads through alpaca-py (the stricter reading of Alpaca).

Alpaca's forum thread t/16425 ("Need clarity on margins while going short option spreads")
shows a $200-risk NVDA call credit spread raising cash by $155 while options_buying_power fell
by $984.55: Alpaca holds back far more than the maximum loss. The paper broker's rule
(paperbroker/options_margin.py, `OptionsMargin.held_back`): an opening spread's credit adds no
buying power, and each position holds back its worst settlement (the spread's width x 100 x
qty) plus the market value of its short legs.

SPY is pinned at 520 (no price volatility, implied volatility 20%) at SESSION_START (Tuesday
2024-03-05, 10:30 New York); the contracts expire Friday 2024-03-08; the account starts with
$100,000 cash.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderClass, OrderSide, TimeInForce
from alpaca.trading.requests import LimitOrderRequest, OptionLegRequest

from paperbroker.admin_client import AdminClient
from tests.paperbroker.test_options_orders import (
    LONG_PUT,
    SHORT_CALL,
    SHORT_PUT,
    iron_condor,
)

PUT_WIDTH = Decimal(1000)  # 510 - 500 = 10 points x 100, one spread
# (cash, options_buying_power, short legs' market value) after the fill, from $100,000 / $100,000.
# The put spread fills at a $58 credit: cash 100,058; buying power 100,000 - 1,000 - 65.39 (the
# short 510 put) = 98,934.61. The old rule (maximum loss only, credit added) answered 99,058.
EXPECTED_PUT_SPREAD = (Decimal(100_058), Decimal("98934.61"), Decimal("65.39"))
# The condor fills at a $105 credit: cash 100,105; buying power 100,000 - 1,000 (the wider wing)
# - 138.95 (the short 510 put and 530 call) = 98,861.05. The old rule answered 99,105.
EXPECTED_CONDOR = (Decimal(100_105), Decimal("98861.05"), Decimal("138.95"))


def put_credit_spread(limit: float) -> LimitOrderRequest:
    """Sell the 510 put, buy the 500 put: one spread at a net limit (negative: credit)."""
    return LimitOrderRequest(
        qty=1,
        order_class=OrderClass.MLEG,
        legs=[
            OptionLegRequest(symbol=LONG_PUT, ratio_qty=1, side=OrderSide.BUY),
            OptionLegRequest(symbol=SHORT_PUT, ratio_qty=1, side=OrderSide.SELL),
        ],
        limit_price=limit,
        time_in_force=TimeInForce.DAY,
    )


def money(trading: TradingClient) -> tuple[Decimal, Decimal]:
    """The account's (cash, options_buying_power)."""
    account = trading.get_account()
    return Decimal(str(account.cash)), Decimal(str(account.options_buying_power))


def short_value(trading: TradingClient, *symbols: str) -> Decimal:
    """The market value of the short positions held in `symbols` (a positive amount)."""
    return -sum(
        (Decimal(str(trading.get_open_position(s).market_value)) for s in symbols), Decimal(0)
    )


@pytest.fixture
def pinned(sim: AdminClient) -> AdminClient:
    """SPY at 520 with no price volatility and a 20% implied volatility: fixed quotes."""
    sim.set_price("SPY", price=520, volatility=0)
    sim.set_option_iv("SPY", iv=0.2)
    return sim


def test_put_credit_spread_holds_back_its_width_and_short_leg_and_its_credit(
    trading: TradingClient, pinned: AdminClient
) -> None:
    cash_before, power_before = money(trading)
    assert (cash_before, power_before) == (Decimal(100_000), Decimal(100_000))
    trading.submit_order(put_credit_spread(limit=-0.01))
    pinned.sync()
    cash_after, power_after = money(trading)
    credit = cash_after - cash_before
    assert credit > 0
    held = short_value(trading, SHORT_PUT)
    # The credit raised cash but not buying power; the width and the short put are held back.
    assert power_after == power_before - PUT_WIDTH - held
    assert (cash_after, power_after, held) == EXPECTED_PUT_SPREAD


def test_iron_condor_holds_back_its_wider_wing_and_both_short_legs(
    trading: TradingClient, pinned: AdminClient
) -> None:
    cash_before, power_before = money(trading)
    trading.submit_order(iron_condor(1, limit=-0.01))
    pinned.sync()
    cash_after, power_after = money(trading)
    assert cash_after > cash_before  # a credit was received
    held = short_value(trading, SHORT_PUT, SHORT_CALL)
    assert power_after == power_before - PUT_WIDTH - held
    assert (cash_after, power_after, held) == EXPECTED_CONDOR


def test_spread_needs_width_plus_short_leg_in_options_buying_power(
    trading: TradingClient, pinned: AdminClient
) -> None:
    # $1,000 of cash covers the put spread's $1,000 width plus its credit under the old rule,
    # but not the width plus the short put's market value.
    pinned.reset(cash=1000)
    pinned.set_price("SPY", price=520, volatility=0)
    pinned.set_option_iv("SPY", iv=0.2)
    with pytest.raises(APIError) as refused:
        trading.submit_order(put_credit_spread(limit=-0.01))
    assert refused.value.status_code == 403
    assert "insufficient options buying power" in str(refused.value)


def test_closing_the_spread_gives_the_buying_power_back(
    trading: TradingClient, pinned: AdminClient
) -> None:
    trading.submit_order(put_credit_spread(limit=-0.01))
    pinned.sync()
    closing = LimitOrderRequest(
        qty=1,
        order_class=OrderClass.MLEG,
        legs=[
            OptionLegRequest(symbol=LONG_PUT, ratio_qty=1, side=OrderSide.SELL),
            OptionLegRequest(symbol=SHORT_PUT, ratio_qty=1, side=OrderSide.BUY),
        ],
        limit_price=20,
        time_in_force=TimeInForce.DAY,
    )
    trading.submit_order(closing)
    pinned.sync()
    cash, power = money(trading)
    assert not [p for p in trading.get_all_positions() if p.symbol in (LONG_PUT, SHORT_PUT)]
    assert power == cash
