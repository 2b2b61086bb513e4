"""Every trading endpoint and error case, spoken to only through alpaca-py's TradingClient."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import (
    AssetExchange,
    OrderSide,
    OrderStatus,
    QueryOrderStatus,
    TimeInForce,
)
from alpaca.trading.requests import (
    ClosePositionRequest,
    GetCalendarRequest,
    GetOrderByIdRequest,
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    ReplaceOrderRequest,
    StopOrderRequest,
)

from paperbroker.admin_client import AdminClient
from paperbroker.testing import RunningBroker

pytestmark = pytest.mark.integration


def buy(client: TradingClient, symbol: str, qty: int, cid: str | None = None) -> str:
    """Submit a day market buy and return its id."""
    order = client.submit_order(
        MarketOrderRequest(
            symbol=symbol,
            qty=qty,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.DAY,
            client_order_id=cid,
        )
    )
    return str(order.id)


def test_account_reports_cash_equity_and_buying_power(trading: TradingClient) -> None:
    account = trading.get_account()
    assert account.cash == "100000"
    assert account.equity == "100000"
    assert Decimal(account.buying_power or "0") == Decimal(200000)
    assert account.status.value == "ACTIVE"


def test_assets_cover_every_priced_symbol(trading: TradingClient, sim: AdminClient) -> None:
    assets = {a.symbol: a for a in trading.get_all_assets()}
    assert set(sim.state()["quotes"]) <= set(assets)
    apple = trading.get_asset("AAPL")
    assert apple.exchange is AssetExchange.NASDAQ and apple.tradable and apple.fractionable
    assert trading.get_asset(str(apple.id)).symbol == "AAPL"
    with pytest.raises(APIError) as error:
        trading.get_asset("NOPE")
    assert error.value.status_code == 404


def test_clock_follows_the_simulated_time(trading: TradingClient, sim: AdminClient) -> None:
    clock = trading.get_clock()
    assert clock.is_open
    assert clock.timestamp.utcoffset().total_seconds() == -5 * 3600
    assert clock.next_close.hour == 16
    sim.advance(6 * 3600)
    later = trading.get_clock()
    assert not later.is_open
    assert later.next_open.date() == date(2024, 3, 6) and later.next_open.hour == 9


def test_calendar_has_holidays_and_early_closes(trading: TradingClient) -> None:
    days = trading.get_calendar(GetCalendarRequest(start=date(2024, 11, 25), end=date(2024, 12, 2)))
    by_date = {d.date: d for d in days}
    assert date(2024, 11, 28) not in by_date  # Thanksgiving
    assert by_date[date(2024, 11, 29)].close.hour == 13  # early close
    assert by_date[date(2024, 11, 27)].close.hour == 16
    july = trading.get_calendar(GetCalendarRequest(start=date(2024, 7, 1), end=date(2024, 7, 5)))
    assert [d.date.day for d in july] == [1, 2, 3, 5]
    assert july[2].close.hour == 13


def test_market_order_fills_at_the_ask_and_builds_a_position(trading: TradingClient) -> None:
    order = trading.submit_order(
        MarketOrderRequest(symbol="AAPL", qty=10, side=OrderSide.BUY, time_in_force=TimeInForce.DAY)
    )
    assert order.status is OrderStatus.ACCEPTED
    filled = trading.get_order_by_id(order.id)
    assert filled.status is OrderStatus.FILLED and filled.filled_qty == "10"
    position = trading.get_open_position("AAPL")
    assert position.qty == "10" and position.avg_entry_price == filled.filled_avg_price
    assert [p.symbol for p in trading.get_all_positions()] == ["AAPL"]
    account = trading.get_account()
    assert Decimal(account.cash or "0") == Decimal(100000) - 10 * Decimal(
        str(filled.filled_avg_price)
    )


def test_orders_list_filters(trading: TradingClient) -> None:
    buy(trading, "AAPL", 1, "f-1")
    for i, symbol in enumerate(["MSFT", "KO", "MSFT"]):
        trading.submit_order(
            LimitOrderRequest(
                symbol=symbol,
                qty=1,
                side=OrderSide.BUY,
                time_in_force=TimeInForce.GTC,
                limit_price=10 + i,
                client_order_id=f"f-l{i}",
            )
        )
    open_orders = trading.get_orders()
    assert {o.client_order_id for o in open_orders} == {"f-l0", "f-l1", "f-l2"}
    closed = trading.get_orders(GetOrdersRequest(status=QueryOrderStatus.CLOSED))
    assert [o.client_order_id for o in closed] == ["f-1"]
    everything = trading.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, direction="asc"))
    assert [o.client_order_id for o in everything] == ["f-1", "f-l0", "f-l1", "f-l2"]
    msft = trading.get_orders(GetOrdersRequest(symbols=["MSFT"]))
    assert {o.client_order_id for o in msft} == {"f-l0", "f-l2"}
    assert len(trading.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, limit=2))) == 2
    sells = trading.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, side=OrderSide.SELL))
    assert sells == []
    first = everything[0].submitted_at
    after = trading.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, after=first))
    until = trading.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, until=first))
    assert len(after) + len(until) <= 4


def test_get_by_client_order_id_and_unknown_ids(trading: TradingClient) -> None:
    order_id = buy(trading, "AAPL", 1, "lookup-me")
    assert str(trading.get_order_by_client_id("lookup-me").id) == order_id
    with pytest.raises(APIError) as missing:
        trading.get_order_by_client_id("never-sent")
    assert missing.value.status_code == 404 and missing.value.code == 40410000
    with pytest.raises(APIError) as unknown:
        trading.get_order_by_id("00000000-0000-4000-8000-000000000000")
    assert unknown.value.status_code == 404 and unknown.value.message == "order not found"


def test_replace_creates_a_new_order_and_marks_the_old_one(
    trading: TradingClient, sim: AdminClient
) -> None:
    old = trading.submit_order(
        LimitOrderRequest(
            symbol="MSFT",
            qty=3,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.GTC,
            limit_price=300,
            client_order_id="rep-1",
        )
    )
    trading.get_order_by_id(old.id)
    new = trading.replace_order_by_id(old.id, ReplaceOrderRequest(qty=4, limit_price=301.5))
    assert new.id != old.id and str(new.replaces) == str(old.id)
    assert new.qty == "4" and new.limit_price == "301.5"
    assert new.status is OrderStatus.PENDING_NEW
    assert trading.get_order_by_id(old.id).status is OrderStatus.PENDING_REPLACE
    sim.sync()  # waits for the replace in flight
    assert trading.get_order_by_id(new.id).status is OrderStatus.NEW
    replaced = trading.get_order_by_id(old.id)
    assert replaced.status is OrderStatus.REPLACED and str(replaced.replaced_by) == str(new.id)
    assert str(trading.get_order_by_client_id("rep-1").id) == str(old.id)


def test_cancel_one_and_cancel_all(trading: TradingClient, sim: AdminClient) -> None:
    ids = [
        trading.submit_order(
            LimitOrderRequest(
                symbol="KO",
                qty=1,
                side=OrderSide.BUY,
                time_in_force=TimeInForce.DAY,
                limit_price=50 + i,
            )
        ).id
        for i in range(3)
    ]
    assert trading.cancel_order_by_id(ids[0]) is None
    assert trading.get_order_by_id(ids[0]).status is OrderStatus.PENDING_CANCEL
    sim.sync()  # waits for the cancel in flight
    assert trading.get_order_by_id(ids[0]).status is OrderStatus.CANCELED
    with pytest.raises(APIError) as again:
        trading.cancel_order_by_id(ids[0])
    assert again.value.status_code == 422 and "canceled" in again.value.message
    statuses = trading.cancel_orders()
    assert {str(s.id) for s in statuses} == {str(i) for i in ids[1:]}
    assert all(s.status == 200 for s in statuses)
    sim.sync()
    assert trading.get_orders() == []
    with pytest.raises(APIError) as unknown:
        trading.cancel_order_by_id("00000000-0000-4000-8000-000000000000")
    assert unknown.value.status_code == 404


def test_close_position_by_qty_percentage_and_all(trading: TradingClient) -> None:
    buy(trading, "AAPL", 10)
    buy(trading, "KO", 4)
    part = trading.close_position("AAPL", ClosePositionRequest(qty="3"))
    assert part.side is OrderSide.SELL and part.qty == "3"
    assert trading.get_open_position("AAPL").qty == "7"
    half = trading.close_position("AAPL", ClosePositionRequest(percentage="50"))
    assert half.qty == "3.5"
    assert trading.get_open_position("AAPL").qty == "3.5"
    trading.submit_order(
        LimitOrderRequest(
            symbol="KO", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY, limit_price=1
        )
    )
    results = trading.close_all_positions(cancel_orders=True)
    assert {r.symbol for r in results} == {"AAPL", "KO"} and all(r.status == 200 for r in results)
    assert trading.get_all_positions() == []
    assert trading.get_orders() == []
    with pytest.raises(APIError) as missing:
        trading.get_open_position("AAPL")
    assert missing.value.status_code == 404 and missing.value.message == "position does not exist"
    with pytest.raises(APIError):
        trading.close_position("AAPL")


def test_sub_penny_prices_are_rejected(trading: TradingClient) -> None:
    with pytest.raises(APIError) as error:
        trading.submit_order(
            LimitOrderRequest(
                symbol="AAPL",
                qty=1,
                side=OrderSide.BUY,
                time_in_force=TimeInForce.DAY,
                limit_price=190.123,
            )
        )
    assert error.value.status_code == 422 and error.value.code == 42210000
    assert error.value.message.startswith("invalid limit_price 190.123. sub-penny increment")
    with pytest.raises(APIError) as stop_error:
        trading.submit_order(
            StopOrderRequest(
                symbol="F",
                qty=1,
                side=OrderSide.BUY,
                time_in_force=TimeInForce.DAY,
                stop_price=12.005,
            )
        )
    assert "stop_price 12.005" in stop_error.value.message
    cheap = trading.submit_order(
        LimitOrderRequest(
            symbol="F", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY, limit_price=0.5123
        )
    )
    assert cheap.limit_price == "0.5123"


def test_duplicate_client_order_id(trading: TradingClient) -> None:
    buy(trading, "AAPL", 1, "same-id")
    with pytest.raises(APIError) as error:
        buy(trading, "AAPL", 1, "same-id")
    assert error.value.status_code == 422 and error.value.code == 40010001
    assert error.value.message == "client_order_id must be unique"


def test_malformed_bodies(trading: TradingClient) -> None:
    with pytest.raises(APIError) as both:
        trading.post(
            "/orders",
            {
                "symbol": "AAPL",
                "qty": 1,
                "notional": 100,
                "side": "buy",
                "type": "market",
                "time_in_force": "day",
            },
        )
    assert both.value.status_code == 400
    with pytest.raises(APIError) as bad_type:
        trading.post(
            "/orders",
            {"symbol": "AAPL", "qty": 1, "side": "buy", "type": "wild", "time_in_force": "day"},
        )
    assert bad_type.value.status_code == 422
    with pytest.raises(APIError) as no_limit:
        trading.post(
            "/orders",
            {"symbol": "AAPL", "qty": 1, "side": "buy", "type": "limit", "time_in_force": "day"},
        )
    assert no_limit.value.status_code == 422 and "limit price" in no_limit.value.message
    with pytest.raises(APIError) as not_json:
        trading.post("/orders", ["not", "an", "object"])  # type: ignore[arg-type]
    assert not_json.value.status_code == 400 and not_json.value.code == 40010000
    with pytest.raises(APIError) as unknown_symbol:
        trading.post(
            "/orders",
            {"symbol": "ZZZZ", "qty": 1, "side": "buy", "type": "market", "time_in_force": "day"},
        )
    assert unknown_symbol.value.status_code == 422


def test_bad_credentials_get_401(paper_broker: RunningBroker, sim: AdminClient) -> None:
    intruder = TradingClient(
        paper_broker.key_id, "wrong-secret", paper=True, url_override=paper_broker.trading_url
    )
    with pytest.raises(APIError) as error:
        intruder.get_account()
    assert error.value.status_code == 401
    assert error.value.message == "unauthorized"


def test_open_sell_orders_reserve_shares(trading: TradingClient) -> None:
    buy(trading, "AAPL", 10)
    trading.submit_order(
        StopOrderRequest(
            symbol="AAPL",
            qty=10,
            side=OrderSide.SELL,
            time_in_force=TimeInForce.GTC,
            stop_price=150,
        )
    )
    assert trading.get_open_position("AAPL").qty_available == "0"
    with pytest.raises(APIError) as error:
        trading.submit_order(
            MarketOrderRequest(
                symbol="AAPL", qty=10, side=OrderSide.SELL, time_in_force=TimeInForce.DAY
            )
        )
    assert error.value.status_code == 403 and error.value.code == 40310000
    assert (
        error.value.message == "insufficient qty available for order (requested: 10, available: 0)"
    )
    import json

    body = json.loads(str(error.value))
    assert (
        body["held_for_orders"] == "10"
        and body["existing_qty"] == "10"
        and body["available"] == "0"
    )
    with pytest.raises(APIError):
        trading.close_position("AAPL")


def test_wash_trade_rule_and_complex_order_exemption(trading: TradingClient) -> None:
    buy(trading, "AAPL", 10)
    trading.submit_order(
        StopOrderRequest(
            symbol="AAPL",
            qty=10,
            side=OrderSide.SELL,
            time_in_force=TimeInForce.GTC,
            stop_price=150,
        )
    )
    with pytest.raises(APIError) as error:
        buy(trading, "AAPL", 5)
    assert error.value.status_code == 403
    assert error.value.message == "potential wash trade detected. use complex orders"
    from alpaca.trading.enums import OrderClass
    from alpaca.trading.requests import StopLossRequest

    add_on = trading.submit_order(
        MarketOrderRequest(
            symbol="AAPL",
            qty=5,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.DAY,
            order_class=OrderClass.OTO,
            stop_loss=StopLossRequest(stop_price=150),
        )
    )
    assert trading.get_order_by_id(add_on.id).status is OrderStatus.FILLED
    assert trading.get_open_position("AAPL").qty == "15"


def test_limits_cross_only_when_buy_at_or_above_sell(trading: TradingClient) -> None:
    buy(trading, "MSFT", 5)
    trading.submit_order(
        LimitOrderRequest(
            symbol="MSFT",
            qty=5,
            side=OrderSide.SELL,
            time_in_force=TimeInForce.GTC,
            limit_price=500,
        )
    )
    below = trading.submit_order(
        LimitOrderRequest(
            symbol="MSFT", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.GTC, limit_price=300
        )
    )
    assert below.status is OrderStatus.ACCEPTED
    with pytest.raises(APIError):
        trading.submit_order(
            LimitOrderRequest(
                symbol="MSFT",
                qty=1,
                side=OrderSide.BUY,
                time_in_force=TimeInForce.GTC,
                limit_price=500,
            )
        )


def test_buying_power_is_enforced(trading: TradingClient) -> None:
    with pytest.raises(APIError) as error:
        buy(trading, "SPY", 1000)
    assert error.value.status_code == 403 and error.value.message == "insufficient buying power"
    buy(trading, "SPY", 300)
    account = trading.get_account()
    assert Decimal(account.buying_power or "0") < Decimal(200000) - Decimal(300 * 500)


def test_nested_orders_show_legs(trading: TradingClient) -> None:
    from alpaca.trading.enums import OrderClass
    from alpaca.trading.requests import StopLossRequest, TakeProfitRequest

    parent = trading.submit_order(
        LimitOrderRequest(
            symbol="MSFT",
            qty=2,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.GTC,
            limit_price=300,
            order_class=OrderClass.BRACKET,
            take_profit=TakeProfitRequest(limit_price=320),
            stop_loss=StopLossRequest(stop_price=280),
        )
    )
    flat = trading.get_orders()
    nested = trading.get_orders(GetOrdersRequest(nested=True))
    assert len(flat) == 3 and len(nested) == 1
    assert {leg.type.value for leg in nested[0].legs or []} == {"limit", "stop"}
    one = trading.get_order_by_id(parent.id, GetOrderByIdRequest(nested=True))
    assert [leg.status for leg in one.legs or []] == [OrderStatus.HELD, OrderStatus.HELD]
