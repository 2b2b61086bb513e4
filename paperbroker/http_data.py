"""aiohttp handlers for Alpaca's Market Data API under /v2/stocks."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from paperbroker.calendar import NEW_YORK
from paperbroker.errors import ApiError
from paperbroker.http_trading import BROKER_KEY, json_response, parse_time
from paperbroker.marketdata import Bar, MarketData, parse_timeframe
from paperbroker.serialize import ts

MARKET_DATA_KEY = web.AppKey("market_data", MarketData)
PAGE_LIMIT_KEY = web.AppKey("max_page", int)
data_routes = web.RouteTableDef()


def _bad(message: str) -> ApiError:
    return ApiError(400, message, 40010001)


def _symbols(request: web.Request) -> list[str]:
    raw = request.query.get("symbols", "")
    symbols = [s.strip().upper() for s in raw.split(",") if s.strip()]
    if not symbols:
        raise _bad("missing symbols")
    return symbols


def _known(request: web.Request, symbols: list[str]) -> list[str]:
    prices = request.app[BROKER_KEY].prices
    return [s for s in symbols if prices.has(s)]


def _window(request: web.Request, now: datetime) -> tuple[datetime, datetime]:
    start = parse_time(request.query.get("start"), "start")
    end = parse_time(request.query.get("end"), "end") or now
    if start is None:
        start = datetime.combine(now.astimezone(NEW_YORK).date(), datetime.min.time(), NEW_YORK)
    return start.astimezone(UTC), end.astimezone(UTC)


def _limit(request: web.Request) -> int:
    cap = request.app[PAGE_LIMIT_KEY]
    raw = request.query.get("limit", "")
    try:
        value = int(raw) if raw and raw != "None" else 1000
    except ValueError as exc:
        raise _bad("invalid limit") from exc
    return max(1, min(value, cap))


def _token(symbol: str, start: float) -> str:
    return base64.urlsafe_b64encode(json.dumps([symbol, start]).encode()).decode()


def _untoken(raw: str | None) -> tuple[str, float] | None:
    if not raw or raw == "None":
        return None
    try:
        symbol, start = json.loads(base64.urlsafe_b64decode(raw.encode()))
        return str(symbol), float(start)
    except (ValueError, TypeError) as exc:
        raise _bad("invalid page_token") from exc


def _paginate(
    symbols: list[str], series: Any, limit: int, token: tuple[str, float] | None
) -> tuple[dict[str, list[dict[str, Any]]], str | None]:
    out: dict[str, list[dict[str, Any]]] = {}
    count = 0
    for symbol in sorted(symbols):
        if token and symbol < token[0]:
            continue
        items: Iterator[tuple[float, dict[str, Any]]] = series(symbol)
        for start, item in items:
            if token and symbol == token[0] and start < token[1]:
                continue
            if count == limit:
                return out, _token(symbol, start)
            out.setdefault(symbol, []).append(item)
            count += 1
    return out, None


@data_routes.get("/v2/stocks/bars")
async def get_bars(request: web.Request) -> web.Response:
    """GET /v2/stocks/bars."""
    broker, data = request.app[BROKER_KEY], request.app[MARKET_DATA_KEY]
    now = broker.sync()
    try:
        amount, unit = parse_timeframe(request.query.get("timeframe", ""))
    except ValueError as exc:
        raise _bad(str(exc)) from exc
    start, end = _window(request, now)
    symbols = _known(request, _symbols(request))
    descending = request.query.get("sort", "asc") == "desc"

    def series(symbol: str) -> Iterator[tuple[float, dict[str, Any]]]:
        bars: list[Bar] | Iterator[Bar] = data.bars(symbol, amount, unit, start, end, now)
        if descending:
            bars = list(bars)[::-1]
            return ((-b.start, b.json()) for b in bars)
        return ((b.start, b.json()) for b in bars)

    bars, token = _paginate(
        symbols, series, _limit(request), _untoken(request.query.get("page_token"))
    )
    return json_response({"bars": bars, "next_page_token": token})


def _series(request: web.Request, kind: str) -> web.Response:
    broker, data = request.app[BROKER_KEY], request.app[MARKET_DATA_KEY]
    now = broker.sync()
    start, end = _window(request, now)
    symbols = _known(request, _symbols(request))

    def series(symbol: str) -> Iterator[tuple[float, dict[str, Any]]]:
        for bar in data.bars(symbol, 1, "Min", start, end, now):
            when = datetime.fromtimestamp(bar.start + 59, UTC)
            if kind == "trades":
                yield bar.start, _trade(broker.prices.quote(symbol, when).mid, when, int(bar.start))
            else:
                yield bar.start, _quote(broker.prices.quote(symbol, when), when)

    items, token = _paginate(
        symbols, series, _limit(request), _untoken(request.query.get("page_token"))
    )
    return json_response({kind: items, "next_page_token": token})


@data_routes.get("/v2/stocks/trades")
async def get_trades(request: web.Request) -> web.Response:
    """GET /v2/stocks/trades (one print per active minute)."""
    return _series(request, "trades")


@data_routes.get("/v2/stocks/quotes")
async def get_quotes(request: web.Request) -> web.Response:
    """GET /v2/stocks/quotes (one quote per active minute)."""
    return _series(request, "quotes")


def _trade(price: Any, when: datetime, trade_id: int) -> dict[str, Any]:
    return {
        "t": ts(when),
        "x": "V",
        "p": float(price),
        "s": 100,
        "c": ["@"],
        "i": trade_id,
        "z": "C",
    }


def _quote(quote: Any, when: datetime) -> dict[str, Any]:
    return {
        "t": ts(when),
        "ax": "V",
        "ap": float(quote.ask),
        "as": 3,
        "bx": "V",
        "bp": float(quote.bid),
        "bs": 2,
        "c": ["R"],
        "z": "C",
    }


@data_routes.get("/v2/stocks/trades/latest")
async def latest_trades(request: web.Request) -> web.Response:
    """GET /v2/stocks/trades/latest."""
    broker, data = request.app[BROKER_KEY], request.app[MARKET_DATA_KEY]
    when = data.last_active(broker.sync())
    trades = {
        s: _trade(broker.prices.quote(s, when).mid, when, int(when.timestamp() * 1000))
        for s in _known(request, _symbols(request))
    }
    return json_response({"trades": trades})


@data_routes.get("/v2/stocks/quotes/latest")
async def latest_quotes(request: web.Request) -> web.Response:
    """GET /v2/stocks/quotes/latest."""
    broker, data = request.app[BROKER_KEY], request.app[MARKET_DATA_KEY]
    when = data.last_active(broker.sync())
    quotes = {
        s: _quote(broker.prices.quote(s, when), when) for s in _known(request, _symbols(request))
    }
    return json_response({"quotes": quotes})


def _last_minute_bar(data: MarketData, symbol: str, now: datetime) -> Bar | None:
    bars = list(data.bars(symbol, 1, "Min", now - timedelta(days=5), now, now))
    return bars[-1] if bars else None


@data_routes.get("/v2/stocks/bars/latest")
async def latest_bars(request: web.Request) -> web.Response:
    """GET /v2/stocks/bars/latest."""
    broker, data = request.app[BROKER_KEY], request.app[MARKET_DATA_KEY]
    now = broker.sync()
    out = {}
    for symbol in _known(request, _symbols(request)):
        bar = _last_minute_bar(data, symbol, now)
        if bar is not None:
            out[symbol] = bar.json()
    return json_response({"bars": out})


@data_routes.get("/v2/stocks/snapshots")
async def snapshots(request: web.Request) -> web.Response:
    """GET /v2/stocks/snapshots."""
    broker, data = request.app[BROKER_KEY], request.app[MARKET_DATA_KEY]
    now = broker.sync()
    when = data.last_active(now)
    out: dict[str, Any] = {}
    for symbol in _known(request, _symbols(request)):
        days = list(data.bars(symbol, 1, "Day", now - timedelta(days=10), now, now))
        minute = _last_minute_bar(data, symbol, now)
        out[symbol] = {
            "latestTrade": _trade(
                broker.prices.quote(symbol, when).mid, when, int(when.timestamp())
            ),
            "latestQuote": _quote(broker.prices.quote(symbol, when), when),
            "minuteBar": minute.json() if minute else None,
            "dailyBar": days[-1].json() if days else None,
            "prevDailyBar": days[-2].json() if len(days) > 1 else None,
        }
    return json_response(out)
