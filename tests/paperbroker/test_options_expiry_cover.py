"""A long leg covers a short leg only if it expires on or after it (through alpaca-py).

Alpaca's levels ("Options Trading", "Options Level 3 Trading") offer no uncovered short call at
any level; a long that expires before the short is gone while the short still lives, so it
covers nothing (paperbroker/options_expiry.py, `settlement_requirement`). A reverse calendar
(long near, short far) is refused as an uncovered short call; its put twin must be
cash-secured on its own; an ordinary calendar (short near, long far) stays covered.

The near contracts expire Friday 2024-03-08, the far ones Friday 2024-03-15; SPY is pinned at
520 with a 20% implied volatility at SESSION_START (Tuesday 2024-03-05, 10:30 New York).
"""

from __future__ import annotations

import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderClass, OrderSide, OrderStatus, TimeInForce
from alpaca.trading.requests import LimitOrderRequest, OptionLegRequest

from paperbroker.admin_client import AdminClient

NEAR_CALL = "SPY240308C00530000"
FAR_CALL = "SPY240315C00530000"
NEAR_PUT = "SPY240308P00510000"
FAR_PUT = "SPY240315P00510000"


def calendar(buy: str, sell: str, limit: float) -> LimitOrderRequest:
    """One unit buying `buy` and selling `sell` at a net limit (positive: debit)."""
    return LimitOrderRequest(
        qty=1,
        order_class=OrderClass.MLEG,
        legs=[
            OptionLegRequest(symbol=buy, ratio_qty=1, side=OrderSide.BUY),
            OptionLegRequest(symbol=sell, ratio_qty=1, side=OrderSide.SELL),
        ],
        limit_price=limit,
        time_in_force=TimeInForce.DAY,
    )


@pytest.fixture
def pinned(sim: AdminClient) -> AdminClient:
    """SPY at 520 with no price volatility and a 20% implied volatility."""
    sim.set_price("SPY", price=520, volatility=0)
    sim.set_option_iv("SPY", iv=0.2)
    return sim


def test_reverse_call_calendar_is_refused_as_an_uncovered_short_call(
    trading: TradingClient, pinned: AdminClient
) -> None:
    # Long the 530 call expiring first, short the same strike a week later: naked from 03-08.
    with pytest.raises(APIError) as refused:
        trading.submit_order(calendar(buy=NEAR_CALL, sell=FAR_CALL, limit=-0.01))
    assert refused.value.status_code == 403
    assert "uncovered" in str(refused.value)
    assert trading.get_all_positions() == []


def test_reverse_put_calendar_must_be_cash_secured(
    trading: TradingClient, pinned: AdminClient
) -> None:
    # $20,000 covers nothing of a 510 put left alone after 03-08 (it needs $51,000).
    pinned.reset(cash=20_000)
    pinned.set_price("SPY", price=520, volatility=0)
    pinned.set_option_iv("SPY", iv=0.2)
    with pytest.raises(APIError) as refused:
        trading.submit_order(calendar(buy=NEAR_PUT, sell=FAR_PUT, limit=-0.01))
    assert refused.value.status_code == 403
    assert "insufficient options buying power" in str(refused.value)


def test_calendar_with_the_long_expiring_last_is_covered(
    trading: TradingClient, pinned: AdminClient
) -> None:
    order = trading.submit_order(calendar(buy=FAR_CALL, sell=NEAR_CALL, limit=5.00))
    pinned.sync()
    assert trading.get_order_by_id(order.id).status is OrderStatus.FILLED
