"""Order semantics over simulated time: triggers, gaps, expiry, queues, TIFs and complex orders."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderClass, OrderSide, OrderStatus, TimeInForce
from alpaca.trading.requests import (
    GetOrderByIdRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    StopLimitOrderRequest,
    StopLossRequest,
    StopOrderRequest,
    TakeProfitRequest,
    TrailingStopOrderRequest,
)

from paperbroker.admin_client import AdminClient
from paperbroker.testing import wait_until

pytestmark = pytest.mark.integration


def market(
    trading: TradingClient,
    symbol: str,
    qty: float,
    side: OrderSide,
    tif: TimeInForce = TimeInForce.DAY,
) -> str:
    """Submit a market order and return its id."""
    return str(
        trading.submit_order(
            MarketOrderRequest(symbol=symbol, qty=qty, side=side, time_in_force=tif)
        ).id
    )


def test_buy_limit_fills_when_the_path_crosses_it(trading: TradingClient, sim: AdminClient) -> None:
    sim.set_price("AAPL", 100, volatility=0)
    order = trading.submit_order(
        LimitOrderRequest(
            symbol="AAPL", qty=5, side=OrderSide.BUY, time_in_force=TimeInForce.DAY, limit_price=99
        )
    )
    assert trading.get_order_by_id(order.id).status is OrderStatus.NEW
    sim.advance(60)
    assert trading.get_order_by_id(order.id).status is OrderStatus.NEW
    sim.set_price("AAPL", 98.5)
    filled = trading.get_order_by_id(order.id)
    assert filled.status is OrderStatus.FILLED
    assert Decimal(str(filled.filled_avg_price)) <= Decimal(99)


def test_stop_gap_fills_at_the_first_price_through_the_stop(
    trading: TradingClient, sim: AdminClient
) -> None:
    sim.set_price("AAPL", 100, volatility=0)
    market(trading, "AAPL", 10, OrderSide.BUY)
    stop = trading.submit_order(
        StopOrderRequest(
            symbol="AAPL", qty=10, side=OrderSide.SELL, time_in_force=TimeInForce.GTC, stop_price=95
        )
    )
    sim.set_price("AAPL", 96)
    assert trading.get_order_by_id(stop.id).status is OrderStatus.NEW
    sim.set_price("AAPL", 90)
    filled = trading.get_order_by_id(stop.id)
    assert filled.status is OrderStatus.FILLED
    assert Decimal(str(filled.filled_avg_price)) < Decimal(90)
    assert trading.get_all_positions() == []


def test_stop_limit_and_trailing_stop_trigger_on_the_path(
    trading: TradingClient, sim: AdminClient
) -> None:
    sim.set_price("MSFT", 400, volatility=0)
    market(trading, "MSFT", 4, OrderSide.BUY)
    stop_limit = trading.submit_order(
        StopLimitOrderRequest(
            symbol="MSFT",
            qty=2,
            side=OrderSide.SELL,
            time_in_force=TimeInForce.GTC,
            stop_price=390,
            limit_price=385,
        )
    )
    trailing = trading.submit_order(
        TrailingStopOrderRequest(
            symbol="MSFT", qty=2, side=OrderSide.SELL, time_in_force=TimeInForce.GTC, trail_price=5
        )
    )
    sim.set_price("MSFT", 410)
    assert trading.get_order_by_id(trailing.id).hwm == "410"
    sim.set_price("MSFT", 404.9)
    assert trading.get_order_by_id(trailing.id).status is OrderStatus.FILLED
    sim.set_price("MSFT", 380)
    assert (
        trading.get_order_by_id(stop_limit.id).status is OrderStatus.NEW
    )  # triggered, below its limit
    sim.set_price("MSFT", 386)
    assert trading.get_order_by_id(stop_limit.id).status is OrderStatus.FILLED


def test_day_orders_expire_at_the_close_gtc_survive(
    trading: TradingClient, sim: AdminClient
) -> None:
    day = trading.submit_order(
        LimitOrderRequest(
            symbol="KO", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY, limit_price=1
        )
    )
    gtc = trading.submit_order(
        LimitOrderRequest(
            symbol="KO", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.GTC, limit_price=1
        )
    )
    sim.set_clock(datetime(2024, 3, 5, 21, 0, 1, tzinfo=UTC))
    expired = trading.get_order_by_id(day.id)
    assert expired.status is OrderStatus.EXPIRED and expired.expired_at is not None
    assert trading.get_order_by_id(gtc.id).status is OrderStatus.NEW


def test_after_hours_orders_wait_as_accepted_until_the_open(
    trading: TradingClient, sim: AdminClient
) -> None:
    sim.set_clock(datetime(2024, 3, 5, 22, 0, tzinfo=UTC))  # 17:00 New York
    order_id = market(trading, "AAPL", 3, OrderSide.BUY)
    sim.sync()
    assert trading.get_order_by_id(order_id).status is OrderStatus.ACCEPTED
    sim.set_clock(datetime(2024, 3, 6, 14, 29, tzinfo=UTC))
    assert trading.get_order_by_id(order_id).status is OrderStatus.ACCEPTED
    sim.set_clock(datetime(2024, 3, 6, 14, 30, 5, tzinfo=UTC))
    filled = trading.get_order_by_id(order_id)
    assert filled.status is OrderStatus.FILLED
    assert (
        filled.filled_at is not None
        and filled.filled_at.hour == 14
        and filled.filled_at.minute == 30
    )


def test_ioc_and_fok_cancel_when_not_marketable(trading: TradingClient, sim: AdminClient) -> None:
    sim.set_price("AAPL", 100, volatility=0)
    ioc = trading.submit_order(
        LimitOrderRequest(
            symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.IOC, limit_price=90
        )
    )
    fok = trading.submit_order(
        LimitOrderRequest(
            symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.FOK, limit_price=110
        )
    )
    assert trading.get_order_by_id(ioc.id).status is OrderStatus.CANCELED
    assert trading.get_order_by_id(fok.id).status is OrderStatus.FILLED


def test_opening_and_closing_auction_orders(trading: TradingClient, sim: AdminClient) -> None:
    sim.reset(clock=datetime(2024, 3, 6, 13, 0, tzinfo=UTC))  # 08:00 New York
    opg = market(trading, "SPY", 1, OrderSide.BUY, TimeInForce.OPG)
    sim.set_clock(datetime(2024, 3, 6, 14, 31, tzinfo=UTC))
    assert trading.get_order_by_id(opg).status is OrderStatus.FILLED
    cls = market(trading, "SPY", 1, OrderSide.SELL, TimeInForce.CLS)
    sim.sync()
    assert trading.get_order_by_id(cls).status is OrderStatus.NEW
    late_opg = market(trading, "QQQ", 1, OrderSide.BUY, TimeInForce.OPG)
    sim.sync()
    assert trading.get_order_by_id(late_opg).status is OrderStatus.REJECTED
    sim.set_clock(datetime(2024, 3, 6, 21, 0, 1, tzinfo=UTC))
    closed = trading.get_order_by_id(cls)
    assert closed.status is OrderStatus.FILLED and closed.filled_at.hour == 21


def test_random_partial_fills_complete(trading: TradingClient, sim: AdminClient) -> None:
    sim.configure(partial_fill_probability=1.0)
    order_id = market(trading, "AAPL", 20, OrderSide.BUY)
    first = trading.get_order_by_id(order_id)
    assert first.status is OrderStatus.PARTIALLY_FILLED
    assert 0 < Decimal(str(first.filled_qty)) < 20
    wait_until(lambda: trading.get_order_by_id(order_id).status is OrderStatus.FILLED, 10)
    assert trading.get_open_position("AAPL").qty == "20"


def test_bracket_legs_are_held_until_the_entry_fills(
    trading: TradingClient, sim: AdminClient
) -> None:
    sim.set_price("AAPL", 100, volatility=0)
    parent = trading.submit_order(
        LimitOrderRequest(
            symbol="AAPL",
            qty=10,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.GTC,
            limit_price=98,
            order_class=OrderClass.BRACKET,
            take_profit=TakeProfitRequest(limit_price=110),
            stop_loss=StopLossRequest(stop_price=95),
        )
    )
    nested = trading.get_order_by_id(parent.id, GetOrderByIdRequest(nested=True))
    assert nested.status is OrderStatus.NEW
    assert [leg.status for leg in nested.legs or []] == [OrderStatus.HELD, OrderStatus.HELD]
    sim.set_price("AAPL", 97.5)
    active = trading.get_order_by_id(parent.id, GetOrderByIdRequest(nested=True))
    assert active.status is OrderStatus.FILLED
    legs = {leg.type.value: leg for leg in active.legs or []}
    assert legs["limit"].status is OrderStatus.NEW and legs["stop"].status is OrderStatus.HELD
    assert trading.get_open_position("AAPL").qty_available == "0"
    sim.set_price("AAPL", 111)
    done = trading.get_order_by_id(parent.id, GetOrderByIdRequest(nested=True))
    legs = {leg.type.value: leg for leg in done.legs or []}
    assert (
        legs["limit"].status is OrderStatus.FILLED and legs["stop"].status is OrderStatus.CANCELED
    )
    assert trading.get_all_positions() == []


def test_bracket_prices_are_checked_against_the_base_price(
    trading: TradingClient, sim: AdminClient
) -> None:
    from alpaca.common.exceptions import APIError

    sim.set_price("AAPL", 100, volatility=0)
    with pytest.raises(APIError) as error:
        trading.submit_order(
            MarketOrderRequest(
                symbol="AAPL",
                qty=1,
                side=OrderSide.BUY,
                time_in_force=TimeInForce.DAY,
                order_class=OrderClass.BRACKET,
                take_profit=TakeProfitRequest(limit_price=110),
                stop_loss=StopLossRequest(stop_price=100.5),
            )
        )
    assert error.value.status_code == 422 and "stop_loss.stop_price" in error.value.message


def test_oco_partial_take_profit_resizes_the_stop(trading: TradingClient, sim: AdminClient) -> None:
    sim.set_price("AAPL", 100, volatility=0)
    market(trading, "AAPL", 10, OrderSide.BUY)
    oco = trading.submit_order(
        LimitOrderRequest(
            symbol="AAPL",
            qty=10,
            side=OrderSide.SELL,
            time_in_force=TimeInForce.GTC,
            order_class=OrderClass.OCO,
            take_profit=TakeProfitRequest(limit_price=110),
            stop_loss=StopLossRequest(stop_price=95),
        )
    )
    nested = trading.get_order_by_id(oco.id, GetOrderByIdRequest(nested=True))
    assert nested.status is OrderStatus.NEW and nested.limit_price == "110"
    stop = (nested.legs or [])[0]
    assert stop.status is OrderStatus.HELD and stop.stop_price == "95"
    sim.fill_order(str(oco.id), price=110, qty=4)
    assert trading.get_order_by_id(stop.id).qty == "6"
    position = trading.get_open_position("AAPL")
    assert position.qty == "6" and position.qty_available == "0"
    sim.set_price("AAPL", 94)
    assert trading.get_order_by_id(stop.id).status is OrderStatus.FILLED
    assert trading.get_order_by_id(oco.id).status is OrderStatus.CANCELED
    assert trading.get_all_positions() == []


def test_day_bracket_legs_expire_with_the_day(trading: TradingClient, sim: AdminClient) -> None:
    sim.set_price("KO", 60, volatility=0)
    parent = trading.submit_order(
        MarketOrderRequest(
            symbol="KO",
            qty=5,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.DAY,
            order_class=OrderClass.BRACKET,
            take_profit=TakeProfitRequest(limit_price=70),
            stop_loss=StopLossRequest(stop_price=50),
        )
    )
    sim.set_clock(datetime(2024, 3, 5, 21, 1, tzinfo=UTC))
    legs = trading.get_order_by_id(parent.id, GetOrderByIdRequest(nested=True)).legs or []
    assert [leg.status for leg in legs] == [OrderStatus.EXPIRED, OrderStatus.EXPIRED]
    assert trading.get_open_position("KO").qty_available == "5"
