"""Market data through StockHistoricalDataClient, consistent with the prices orders fill at."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.requests import (
    StockBarsRequest,
    StockLatestBarRequest,
    StockLatestQuoteRequest,
    StockLatestTradeRequest,
    StockSnapshotRequest,
)
from alpaca.data.timeframe import TimeFrame, TimeFrameUnit
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import MarketOrderRequest

from paperbroker.admin_client import AdminClient

pytestmark = pytest.mark.integration


def test_minute_bars_paginate_across_symbols(data: StockHistoricalDataClient) -> None:
    request = StockBarsRequest(
        symbol_or_symbols=["AAPL", "MSFT"],
        timeframe=TimeFrame.Minute,
        start=datetime(2024, 2, 20, tzinfo=UTC),
        end=datetime(2024, 3, 5, 15, 0, tzinfo=UTC),
    )
    bars = data.get_stock_bars(request).data
    # More than one 10,000-bar page: alpaca-py followed next_page_token.
    assert len(bars["AAPL"]) + len(bars["MSFT"]) > 10_000
    assert len(bars["AAPL"]) == len(bars["MSFT"])
    stamps = [b.timestamp for b in bars["AAPL"]]
    assert stamps == sorted(set(stamps))
    assert all(
        b.low <= min(b.open, b.close) and b.high >= max(b.open, b.close) for b in bars["AAPL"]
    )


def test_aggregated_timeframes_agree_with_minute_bars(data: StockHistoricalDataClient) -> None:
    day_start = datetime(2024, 3, 4, 14, 30, tzinfo=UTC)
    day_end = datetime(2024, 3, 4, 21, 0, tzinfo=UTC)
    minutes = data.get_stock_bars(
        StockBarsRequest(
            symbol_or_symbols="KO", timeframe=TimeFrame.Minute, start=day_start, end=day_end
        )
    ).data["KO"]
    five = data.get_stock_bars(
        StockBarsRequest(
            symbol_or_symbols="KO",
            timeframe=TimeFrame(5, TimeFrameUnit.Minute),
            start=day_start,
            end=day_end,
        )
    ).data["KO"]
    assert len(minutes) == 390 and len(five) == 78
    assert five[0].volume == sum(b.volume for b in minutes[:5])
    assert five[0].high == max(b.high for b in minutes[:5]) and five[0].close == minutes[4].close
    daily = data.get_stock_bars(
        StockBarsRequest(
            symbol_or_symbols="KO",
            timeframe=TimeFrame.Day,
            start=datetime(2024, 2, 26, tzinfo=UTC),
            end=datetime(2024, 3, 5, tzinfo=UTC),
        )
    ).data["KO"]
    monday = next(b for b in daily if b.timestamp.date().isoformat() == "2024-03-04")
    assert monday.open == minutes[0].open and monday.close == minutes[-1].close
    assert monday.high == max(b.high for b in minutes) and monday.low == min(b.low for b in minutes)
    hourly = data.get_stock_bars(
        StockBarsRequest(
            symbol_or_symbols="KO", timeframe=TimeFrame.Hour, start=day_start, end=day_end
        )
    ).data["KO"]
    assert [h.timestamp.hour for h in hourly] == [14, 15, 16, 17, 18, 19, 20]
    weekly = data.get_stock_bars(
        StockBarsRequest(
            symbol_or_symbols="KO",
            timeframe=TimeFrame.Week,
            start=datetime(2024, 2, 1, tzinfo=UTC),
            end=datetime(2024, 3, 1, tzinfo=UTC),
        )
    ).data["KO"]
    assert len(weekly) == 4


def test_no_bars_from_the_future(data: StockHistoricalDataClient, sim: AdminClient) -> None:
    now = sim.sync()
    bars = data.get_stock_bars(
        StockBarsRequest(
            symbol_or_symbols="AAPL",
            timeframe=TimeFrame.Minute,
            start=now - timedelta(hours=1),
            end=now + timedelta(days=2),
        )
    ).data["AAPL"]
    assert bars and bars[-1].timestamp < now
    empty = data.get_stock_bars(
        StockBarsRequest(
            symbol_or_symbols="UNKNOWN", timeframe=TimeFrame.Minute, start=now - timedelta(hours=1)
        )
    )
    assert empty.data == {}


def test_latest_quote_is_the_price_market_orders_fill_at(
    data: StockHistoricalDataClient, trading: TradingClient, sim: AdminClient
) -> None:
    sim.set_price("AAPL", 123.45, volatility=0)
    quote = data.get_stock_latest_quote(StockLatestQuoteRequest(symbol_or_symbols="AAPL"))["AAPL"]
    trade = data.get_stock_latest_trade(StockLatestTradeRequest(symbol_or_symbols=["AAPL"]))["AAPL"]
    assert quote.bid_price < trade.price == 123.45 < quote.ask_price
    bought = trading.submit_order(
        MarketOrderRequest(symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY)
    )
    sold = trading.submit_order(
        MarketOrderRequest(symbol="AAPL", qty=1, side=OrderSide.SELL, time_in_force=TimeInForce.DAY)
    )
    assert float(trading.get_order_by_id(bought.id).filled_avg_price or 0) == quote.ask_price
    assert float(trading.get_order_by_id(sold.id).filled_avg_price or 0) == quote.bid_price


def test_snapshot_and_latest_bar(data: StockHistoricalDataClient, sim: AdminClient) -> None:
    sim.advance(120)
    snapshot = data.get_stock_snapshot(StockSnapshotRequest(symbol_or_symbols=["AAPL", "SPY"]))
    assert set(snapshot) == {"AAPL", "SPY"}
    spy = snapshot["SPY"]
    assert spy.latest_trade and spy.latest_quote and spy.minute_bar and spy.daily_bar
    assert spy.previous_daily_bar and spy.previous_daily_bar.timestamp < spy.daily_bar.timestamp
    assert spy.daily_bar.low <= spy.latest_trade.price <= spy.daily_bar.high
    latest = data.get_stock_latest_bar(StockLatestBarRequest(symbol_or_symbols="SPY"))["SPY"]
    assert latest.timestamp == spy.minute_bar.timestamp


def test_prices_are_reproducible_for_a_seed(
    data: StockHistoricalDataClient, sim: AdminClient
) -> None:
    request = StockBarsRequest(
        symbol_or_symbols="NVDA",
        timeframe=TimeFrame.Minute,
        start=datetime(2024, 3, 1, 14, 30, tzinfo=UTC),
        end=datetime(2024, 3, 1, 15, 30, tzinfo=UTC),
    )
    first = [b.close for b in data.get_stock_bars(request).data["NVDA"]]
    sim.reset()
    again = [b.close for b in data.get_stock_bars(request).data["NVDA"]]
    assert first == again and len(set(first)) > 10
