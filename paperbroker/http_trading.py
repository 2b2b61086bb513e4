"""aiohttp handlers for Alpaca's Trading API under /v2."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web

from paperbroker.assets import asset_json
from paperbroker.broker import Broker
from paperbroker.errors import ApiError, bad_body, unprocessable
from paperbroker.models import Side
from paperbroker.options_expiry import parse_contract
from paperbroker.serialize import calendar_json, clock_json, order_json
from paperbroker.ticks import fmt_money
from paperbroker.validation import (
    is_option_order,
    parse_option_order,
    parse_order,
    parse_replace,
)
from paperbroker.views import (
    OrderQuery,
    account_json,
    list_orders,
    one_position_json,
    positions_json,
)

BROKER_KEY = web.AppKey("broker", Broker)
trading_routes = web.RouteTableDef()


def json_response(data: Any, status: int = 200) -> web.Response:
    """Return a JSON response with Alpaca's content type."""
    return web.Response(
        text=json.dumps(data, separators=(",", ":")), status=status, content_type="application/json"
    )


async def read_json(request: web.Request) -> Any:
    """Parse the request body, keeping numbers exact."""
    text = await request.text()
    try:
        return json.loads(text, parse_float=Decimal) if text else None
    except ValueError as exc:
        raise bad_body() from exc


def flag(request: web.Request, name: str) -> bool:
    """Read a boolean query parameter (alpaca-py sends True/False capitalised)."""
    return request.query.get(name, "").lower() in ("true", "1", "yes")


def parse_time(raw: str | None, name: str) -> datetime | None:
    """Parse an RFC 3339 timestamp or a date from a query parameter."""
    if not raw:
        return None
    text = raw.strip().replace(" ", "+").replace("Z", "+00:00")
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise unprocessable(f"invalid {name}: {raw}", 40010001) from exc
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _broker(request: web.Request) -> Broker:
    return request.app[BROKER_KEY]


@trading_routes.get("/v2/account")
async def get_account(request: web.Request) -> web.Response:
    """GET /v2/account."""
    broker = _broker(request)
    now = broker.sync()
    return json_response(_with_options(account_json(broker, now), broker, now))


def _with_options(account: dict[str, Any], broker: Broker, now: datetime) -> dict[str, Any]:
    """Add option positions to the account's values and state the account's options level.

    The level is configured (BrokerConfig.options_level, --options-level, /_sim/options/level;
    default 3). alpaca-py TradeAccount: options_approved_level is the approved level and
    options_trading_level the effective one; this account has no lower configured maximum, so
    both answer the same level.
    """
    desk = broker.options
    account["options_approved_level"] = desk.level
    account["options_trading_level"] = desk.level
    account["options_buying_power"] = fmt_money(desk.buying_power(now))
    if not desk.positions:
        return account
    long_value, short_value = desk.market_value(now)
    for key in ("equity", "portfolio_value"):
        account[key] = fmt_money(Decimal(account[key]) + long_value + short_value)
    account["long_market_value"] = fmt_money(Decimal(account["long_market_value"]) + long_value)
    account["short_market_value"] = fmt_money(Decimal(account["short_market_value"]) + short_value)
    account["position_market_value"] = fmt_money(
        Decimal(account["long_market_value"]) - Decimal(account["short_market_value"])
    )
    return account


@trading_routes.get("/v2/positions")
async def get_positions(request: web.Request) -> web.Response:
    """GET /v2/positions."""
    broker = _broker(request)
    now = broker.sync()
    options = [broker.options.position_json(s, now) for s in sorted(broker.options.positions)]
    return json_response(positions_json(broker, now) + options)


@trading_routes.get("/v2/positions/{symbol}")
async def get_position(request: web.Request) -> web.Response:
    """GET /v2/positions/{symbol_or_id}."""
    broker = _broker(request)
    now = broker.sync()
    symbol = request.match_info["symbol"]
    if parse_contract(symbol) is not None:
        if symbol.upper() not in broker.options.positions:
            raise ApiError(404, "position does not exist", 40410000)
        return json_response(broker.options.position_json(symbol.upper(), now))
    return json_response(one_position_json(broker, symbol, now))


@trading_routes.post("/v2/positions/{symbol}/exercise")
async def exercise_position(request: web.Request) -> web.Response:
    """POST /v2/positions/{symbol_or_contract_id}/exercise: exercise all held contracts."""
    broker = _broker(request)
    broker.options.exercise(request.match_info["symbol"])
    return web.Response(status=200)


def _decimal_param(request: web.Request, name: str) -> Decimal | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return Decimal(raw)
    except InvalidOperation as exc:
        raise unprocessable(f"invalid {name}", 40010001) from exc


@trading_routes.delete("/v2/positions/{symbol}")
async def close_position(request: web.Request) -> web.Response:
    """DELETE /v2/positions/{symbol_or_id}?qty=|percentage=."""
    broker = _broker(request)
    qty, pct = _decimal_param(request, "qty"), _decimal_param(request, "percentage")
    if qty is not None and pct is not None:
        raise unprocessable("only one of qty or percentage must be given", 40010001)
    order = broker.close_position(request.match_info["symbol"], qty, pct)
    return json_response(order_json(order, broker.book))


@trading_routes.delete("/v2/positions")
async def close_all_positions(request: web.Request) -> web.Response:
    """DELETE /v2/positions?cancel_orders=."""
    broker = _broker(request)
    results = []
    for symbol, status, outcome in broker.close_all(flag(request, "cancel_orders")):
        if isinstance(outcome, ApiError):
            results.append({"symbol": symbol, "status": status, "body": outcome.body()})
        else:
            body = order_json(outcome, broker.book)  # type: ignore[arg-type]
            results.append(
                {"symbol": symbol, "status": status, "order_id": body["id"], "body": body}
            )
    return json_response(results, status=207)


@trading_routes.post("/v2/orders")
async def submit_order(request: web.Request) -> web.Response:
    """POST /v2/orders."""
    broker = _broker(request)
    body = await read_json(request)
    if is_option_order(body):
        order = broker.options.submit(parse_option_order(body))
        return json_response(order_json(order, broker.book, nested=bool(order.leg_ids)))
    intent = parse_order(body)
    order = broker.submit(intent)
    return json_response(order_json(order, broker.book, nested=bool(order.leg_ids)))


@trading_routes.get("/v2/orders")
async def get_orders(request: web.Request) -> web.Response:
    """GET /v2/orders with status, limit, after, until, direction, nested, side, symbols."""
    broker = _broker(request)
    broker.sync()
    q = request.query
    status = q.get("status", "open").lower()
    direction = q.get("direction", "desc").lower()
    if status not in ("open", "closed", "all") or direction not in ("asc", "desc"):
        raise unprocessable("invalid query parameter", 40010001)
    try:
        limit = int(q.get("limit", "50"))
        side = Side(q["side"].lower()) if q.get("side") else None
    except ValueError as exc:
        raise unprocessable("invalid query parameter", 40010001) from exc
    query = OrderQuery(
        status=status,
        limit=limit,
        after=parse_time(q.get("after"), "after"),
        until=parse_time(q.get("until"), "until"),
        direction=direction,
        nested=flag(request, "nested"),
        side=side,
        symbols=[s for s in q.get("symbols", "").split(",") if s] or None,
    )
    return json_response(list_orders(broker, query))


@trading_routes.get("/v2/orders/{order_id}")
async def get_order(request: web.Request) -> web.Response:
    """GET /v2/orders/{order_id}?nested=."""
    broker = _broker(request)
    broker.sync()
    order = broker.order(request.match_info["order_id"])
    return json_response(order_json(order, broker.book, nested=flag(request, "nested")))


@trading_routes.get("/v2/orders:by_client_order_id")
async def get_order_by_client_id(request: web.Request) -> web.Response:
    """GET /v2/orders:by_client_order_id?client_order_id=."""
    broker = _broker(request)
    broker.sync()
    client_order_id = request.query.get("client_order_id", "")
    if not client_order_id:
        raise unprocessable("client_order_id is required", 40010001)
    order = broker.order_by_client_id(client_order_id)
    return json_response(order_json(order, broker.book, nested=flag(request, "nested")))


@trading_routes.patch("/v2/orders/{order_id}")
async def replace_order(request: web.Request) -> web.Response:
    """PATCH /v2/orders/{order_id}."""
    broker = _broker(request)
    body = await read_json(request)
    # An mleg order is refused before its body is read (a credit mleg's negative limit_price
    # would otherwise answer "limit price must be > 0" instead): Broker.check_replaceable.
    broker.check_replaceable(broker.order(request.match_info["order_id"]))
    change = parse_replace(body)
    order = broker.replace(request.match_info["order_id"], change)
    return json_response(order_json(order, broker.book))


@trading_routes.delete("/v2/orders/{order_id}")
async def cancel_order(request: web.Request) -> web.Response:
    """DELETE /v2/orders/{order_id} -> 204."""
    _broker(request).cancel(request.match_info["order_id"])
    return web.Response(status=204)


@trading_routes.delete("/v2/orders")
async def cancel_orders(request: web.Request) -> web.Response:
    """DELETE /v2/orders -> 207 with one entry per cancelled order."""
    broker = _broker(request)
    results = []
    for entry in broker.cancel_all():
        order = entry["order"]
        body = order_json(order, broker.book)  # type: ignore[arg-type]
        results.append({"id": body["id"], "status": entry["status"], "body": body})
    return json_response(results, status=207)


@trading_routes.get("/v2/clock")
async def get_clock(request: web.Request) -> web.Response:
    """GET /v2/clock."""
    broker = _broker(request)
    return json_response(clock_json(broker.sync(), broker.calendar))


@trading_routes.get("/v2/calendar")
async def get_calendar(request: web.Request) -> web.Response:
    """GET /v2/calendar?start&end (dates, inclusive)."""
    broker = _broker(request)
    calendar = broker.calendar
    try:
        start = _date(request.query.get("start")) or calendar.first_day
        end = _date(request.query.get("end")) or calendar.last_day
    except ValueError as exc:
        raise unprocessable("invalid date", 40010001) from exc
    return json_response(
        [calendar_json(s, calendar) for s in calendar.sessions_between(start, end)]
    )


def _date(raw: str | None) -> date | None:
    if not raw:
        return None
    return date.fromisoformat(raw[:10])


@trading_routes.get("/v2/assets")
async def get_assets(request: web.Request) -> web.Response:
    """GET /v2/assets (us_equity only)."""
    broker = _broker(request)
    asset_class = request.query.get("asset_class")
    status = request.query.get("status")
    if asset_class not in (None, "", "us_equity") or status not in (None, "", "active"):
        return json_response([])
    exchange = request.query.get("exchange")
    assets = [a for a in broker.assets.values() if not exchange or a.exchange == exchange]
    return json_response([asset_json(a) for a in sorted(assets, key=lambda a: a.symbol)])


@trading_routes.get("/v2/assets/{symbol}")
async def get_asset(request: web.Request) -> web.Response:
    """GET /v2/assets/{symbol_or_id}."""
    asset = _broker(request).asset(request.match_info["symbol"])
    if asset is None:
        raise ApiError(404, "asset not found", 40410000)
    return json_response(asset_json(asset))
