"""An mleg order's legs are on one underlying (Alpaca "Options Level 3 Trading").

Source: docs.alpaca.markets/docs/options-level-3-trading - the legs of a multi-leg order are
on the same underlying security. Alpaca documents no error body for a mix; the paper broker
answers 422 with Alpaca's generic 42210000 code.
"""

from __future__ import annotations

import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderClass, OrderSide, QueryOrderStatus, TimeInForce
from alpaca.trading.requests import GetOrdersRequest, LimitOrderRequest, OptionLegRequest

SPY_PUT = "SPY240308P00500000"
QQQ_PUT = "QQQ240308P00430000"


def test_an_mleg_order_mixing_underlyings_is_refused(trading: TradingClient) -> None:
    request = LimitOrderRequest(
        qty=1,
        order_class=OrderClass.MLEG,
        legs=[
            OptionLegRequest(symbol=SPY_PUT, ratio_qty=1, side=OrderSide.BUY),
            OptionLegRequest(symbol=QQQ_PUT, ratio_qty=1, side=OrderSide.SELL),
        ],
        limit_price=0.50,
        time_in_force=TimeInForce.DAY,
    )
    with pytest.raises(APIError) as refused:
        trading.submit_order(request)
    assert refused.value.status_code == 422
    assert refused.value.code == 42210000
    assert "same underlying" in refused.value.message
    assert trading.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL)) == []
