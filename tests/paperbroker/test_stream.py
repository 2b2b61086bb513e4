"""trade_updates via alpaca-py's TradingStream: a bracket's life, outside actions, drops."""

from __future__ import annotations

import pytest
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderClass, OrderSide, OrderStatus, OrderType, TimeInForce
from alpaca.trading.requests import (
    MarketOrderRequest,
    StopLossRequest,
    StopOrderRequest,
    TakeProfitRequest,
)

from paperbroker.admin_client import AdminClient
from paperbroker.testing import RunningBroker, StreamRecorder, wait_until

pytestmark = pytest.mark.integration


def test_bracket_whole_life_on_the_stream(
    trading: TradingClient, sim: AdminClient, stream: StreamRecorder
) -> None:
    sim.set_price("AAPL", 100, volatility=0)
    parent = trading.submit_order(
        MarketOrderRequest(
            symbol="AAPL",
            qty=10,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.GTC,
            order_class=OrderClass.BRACKET,
            take_profit=TakeProfitRequest(limit_price=110),
            stop_loss=StopLossRequest(stop_price=95),
        )
    )
    new = stream.wait_for(lambda u: u.event == "new" and u.order.id == parent.id)
    assert new.price is None and new.qty is None
    entry = stream.wait_for(lambda u: u.event == "fill" and u.order.id == parent.id)
    assert entry.qty == 10 and entry.position_qty == 10 and entry.order.status is OrderStatus.FILLED
    assert entry.price is not None and entry.execution_id is not None
    take_profit = stream.wait_for(lambda u: u.event == "new" and u.order.type is OrderType.LIMIT)
    assert (
        take_profit.order.side is OrderSide.SELL
        and take_profit.order.order_class is OrderClass.BRACKET
    )
    sim.set_price("AAPL", 94)
    stop_fill = stream.wait_for(lambda u: u.event == "fill" and u.order.type is OrderType.STOP)
    assert stop_fill.position_qty == 0 and stop_fill.qty == 10
    cancelled = stream.wait_for(
        lambda u: u.event == "canceled" and u.order.id == take_profit.order.id
    )
    assert cancelled.order.status is OrderStatus.CANCELED
    order = [stream.describe(u) for u in stream.seen]
    assert order.index(stream.describe(stop_fill)) < order.index(stream.describe(cancelled))


def test_external_stop_cancel_arrives_as_canceled(
    trading: TradingClient, sim: AdminClient, stream: StreamRecorder
) -> None:
    trading.submit_order(
        MarketOrderRequest(symbol="MSFT", qty=3, side=OrderSide.BUY, time_in_force=TimeInForce.DAY)
    )
    stop = trading.submit_order(
        StopOrderRequest(
            symbol="MSFT", qty=3, side=OrderSide.SELL, time_in_force=TimeInForce.GTC, stop_price=300
        )
    )
    stream.wait_for(lambda u: u.event == "new" and u.order.id == stop.id)
    sim.cancel_order(str(stop.id))
    update = stream.wait_for(lambda u: u.event == "canceled" and u.order.id == stop.id)
    assert update.order.canceled_at is not None
    assert trading.get_order_by_id(stop.id).status is OrderStatus.CANCELED


def test_ghost_trade_outside_the_system_is_streamed(
    trading: TradingClient, sim: AdminClient, stream: StreamRecorder
) -> None:
    sim.open_position("TSLA", 7)
    fill = stream.wait_for(lambda u: u.event == "fill" and u.order.symbol == "TSLA")
    assert fill.position_qty == 7
    assert trading.get_open_position("TSLA").qty == "7"
    sim.close_position("TSLA")
    assert trading.get_all_positions() == []


def test_dropped_stream_reconnects(
    paper_broker: RunningBroker, trading: TradingClient, sim: AdminClient, stream: StreamRecorder
) -> None:
    assert sim.drop_streams() == 1
    wait_until(lambda: sim.state()["stream_listening"] == 1, 15)
    order = trading.submit_order(
        MarketOrderRequest(symbol="KO", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY)
    )
    assert stream.wait_for(lambda u: u.event == "fill" and u.order.id == order.id).qty == 1


def test_only_one_stream_connection_per_account(
    paper_broker: RunningBroker, trading: TradingClient, sim: AdminClient, stream: StreamRecorder
) -> None:
    second = StreamRecorder(paper_broker)
    second._thread.start()
    try:
        order = trading.submit_order(
            MarketOrderRequest(
                symbol="KO", qty=2, side=OrderSide.BUY, time_in_force=TimeInForce.DAY
            )
        )
        stream.wait_for(lambda u: u.event == "fill" and u.order.id == order.id)
        assert sim.state()["stream_connections"] == 1
        assert second.drain(0.5) == []
    finally:
        second.stream.stop()
        second._thread.join(timeout=10)
