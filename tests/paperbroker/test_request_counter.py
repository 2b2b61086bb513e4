"""The /v2 request counter behind GET /_sim/state: what counts, per route, and its reset."""

from __future__ import annotations

import pytest
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.requests import StockLatestQuoteRequest
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import MarketOrderRequest

from paperbroker.admin_client import AdminClient

pytestmark = pytest.mark.integration


def test_counts_every_authenticated_v2_request_per_route_until_reset(
    trading: TradingClient, data: StockHistoricalDataClient, sim: AdminClient
) -> None:
    assert sim.requests() == {"total": 0, "by_route": {}}
    order = trading.submit_order(
        MarketOrderRequest(symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY)
    )
    for _ in range(3):
        trading.get_order_by_id(order.id)
    trading.get_all_positions()
    data.get_stock_latest_quote(StockLatestQuoteRequest(symbol_or_symbols=["AAPL"]))
    sim.state()  # admin calls are not broker API calls
    counts = sim.requests()
    assert counts["by_route"] == {
        "POST /v2/orders": 1,
        "GET /v2/orders/{order_id}": 3,
        "GET /v2/positions": 1,
        "GET /v2/stocks/quotes/latest": 1,
    }
    assert counts["total"] == 6
    assert sim.reset_requests()["total"] == 6
    assert sim.requests() == {"total": 0, "by_route": {}}
