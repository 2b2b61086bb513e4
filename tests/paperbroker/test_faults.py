"""Fault injection and rate limits, as alpaca-py experiences them."""

from __future__ import annotations

import time

import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, QueryOrderStatus, TimeInForce
from alpaca.trading.requests import GetOrdersRequest, MarketOrderRequest
from requests import Response

from paperbroker.admin_client import AdminClient
from paperbroker.testing import RunningBroker

pytestmark = pytest.mark.integration


def test_rate_limit_burst_gets_429_with_headers(trading: TradingClient, sim: AdminClient) -> None:
    seen: list[Response] = []
    trading._session.hooks["response"].append(lambda r, *args, **kwargs: seen.append(r))
    sim.configure(rate_limit=5)
    for _ in range(5):
        trading.get_clock()
    assert [r.headers["X-RateLimit-Remaining"] for r in seen] == ["4", "3", "2", "1", "0"]
    assert all(r.headers["X-RateLimit-Limit"] == "5" for r in seen)
    with pytest.raises(APIError) as error:
        trading.get_account()
    response = error.value.response
    assert error.value.status_code == 429
    assert len(seen) == 5 + 4  # the first try plus alpaca-py's three retries
    assert response.headers["X-RateLimit-Limit"] == "5"
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert int(response.headers["X-RateLimit-Reset"]) >= int(time.time())


def test_accepted_then_504_makes_alpaca_py_repost_and_the_repost_is_a_duplicate(
    paper_broker: RunningBroker, sim: AdminClient
) -> None:
    # alpaca-py's real retry policy: 504 -> wait 3 s -> post the same body again.
    client = TradingClient(
        paper_broker.key_id,
        paper_broker.secret_key,
        paper=True,
        url_override=paper_broker.trading_url,
    )
    sim.add_fault(method="POST", path="/v2/orders", status=504, after=True, times=1)
    with pytest.raises(APIError) as error:
        client.submit_order(
            MarketOrderRequest(
                symbol="AAPL",
                qty=2,
                side=OrderSide.BUY,
                time_in_force=TimeInForce.DAY,
                client_order_id="once-only-1",
            )
        )
    assert error.value.status_code == 422
    assert error.value.code == 40010001 and error.value.message == "client_order_id must be unique"
    orders = client.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL))
    assert [o.client_order_id for o in orders] == ["once-only-1"]
    assert client.get_order_by_client_id("once-only-1").filled_qty == "2"
    assert client.get_open_position("AAPL").qty == "2"


def test_injected_error_then_recovery(trading: TradingClient, sim: AdminClient) -> None:
    rule = sim.add_fault(method="GET", path="/v2/positions*", status=500, body={"message": "boom"})
    with pytest.raises(APIError) as error:
        trading.get_all_positions()
    assert error.value.status_code == 500 and error.value.message == "boom"
    sim.remove_fault(rule)
    assert trading.get_all_positions() == []


def test_hang_then_gateway_timeout_is_retried(trading: TradingClient, sim: AdminClient) -> None:
    sim.add_fault(path="/v2/account", hang=True, hang_seconds=0.3, status=504, times=1)
    started = time.monotonic()
    assert trading.get_account().cash == "100000"
    assert time.monotonic() - started >= 0.3
    assert sim.faults() == []


def test_latency_and_probability(trading: TradingClient, sim: AdminClient) -> None:
    sim.add_fault(path="/v2/clock", status=0, latency_ms=50)
    assert trading.get_clock().is_open
    sim.clear_faults()
    sim.add_fault(path="/v2/clock", status=500, probability=0.0)
    assert all(trading.get_clock().is_open for _ in range(5))


def test_accepted_then_error_leaves_the_order_in_place(
    trading: TradingClient, sim: AdminClient
) -> None:
    sim.add_fault(method="POST", path="/v2/orders", status=500, after=True, times=1)
    with pytest.raises(APIError) as error:
        trading.submit_order(
            MarketOrderRequest(
                symbol="KO",
                qty=1,
                side=OrderSide.BUY,
                time_in_force=TimeInForce.DAY,
                client_order_id="ghost-1",
            )
        )
    assert error.value.status_code == 500
    assert trading.get_order_by_client_id("ghost-1").symbol == "KO"
