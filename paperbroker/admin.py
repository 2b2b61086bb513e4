"""The /_sim admin API: drive the clock and prices, inject faults, act outside the system."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web
from pydantic import ValidationError

from paperbroker.clock import ClockMode
from paperbroker.errors import ApiError, bad_body, unprocessable
from paperbroker.external import (
    arm_rejection,
    cancel_elsewhere,
    close_elsewhere,
    end_elsewhere,
    fill_elsewhere,
    set_status_elsewhere,
    trade_elsewhere,
)
from paperbroker.faults import FaultRule
from paperbroker.http_trading import json_response, read_json
from paperbroker.models import Status
from paperbroker.serialize import order_json, ts

if TYPE_CHECKING:
    from paperbroker.server import PaperBrokerServer

SERVER_KEY: web.AppKey[Any] = web.AppKey("server")
admin_routes = web.RouteTableDef()


def _server(request: web.Request) -> PaperBrokerServer:
    server: PaperBrokerServer = request.app[SERVER_KEY]
    return server


async def _body(request: web.Request) -> dict[str, Any]:
    body = await read_json(request)
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise bad_body()
    return body


def _decimal(body: dict[str, Any], key: str) -> Decimal | None:
    value = body.get(key)
    return None if value is None else Decimal(str(value))


@admin_routes.get("/_sim/health")
async def health(request: web.Request) -> web.Response:
    """GET /_sim/health: readiness probe (no auth)."""
    return json_response({"status": "ok"})


@admin_routes.get("/_sim/state")
async def state(request: web.Request) -> web.Response:
    """GET /_sim/state: clock, quotes, counts and faults."""
    server = _server(request)
    broker = server.broker
    now = broker.sync()
    quotes = {}
    for symbol in sorted(broker.prices.paths):
        quote = broker.prices.quote(symbol, now)
        quotes[symbol] = {"bid": str(quote.bid), "ask": str(quote.ask), "mid": str(quote.mid)}
    return json_response(
        {
            "now": ts(now),
            "clock_mode": broker.clock.mode.value,
            "is_open": broker.calendar.is_open(now),
            "quotes": quotes,
            "open_orders": len(broker.book.open_orders()),
            "orders": len(broker.book.orders),
            "positions": {s: str(p.qty) for s, p in broker.book.positions.items()},
            "cash": str(broker.book.account.cash),
            "faults": [r.model_dump() for r in server.faults.rules],
            "stream_connections": len(server.hub.sockets),
            "stream_listening": sum(1 for c in server.hub.connections if c.listening),
            "rate_limit": server.limiter.limit,
            "partial_fill_probability": broker.matcher.partial_fill_probability,
            "fidelity": broker.fidelity.as_json(),
            "in_flight": len(broker.pending.in_flight),
            "requests": server.requests.as_json(),
        }
    )


@admin_routes.post("/_sim/clock")
async def clock(request: web.Request) -> web.Response:
    """POST /_sim/clock: {"set": iso} | {"advance": seconds} | {"mode": m, "rate": r}."""
    broker = _server(request).broker
    body = await _body(request)
    broker.sync()
    if "mode" in body:
        broker.clock.set_mode(ClockMode(body["mode"]), body.get("rate"))
    if "set" in body:
        target = datetime.fromisoformat(str(body["set"]).replace("Z", "+00:00"))
        if target.tzinfo is None:
            raise unprocessable("set needs a timezone-aware timestamp")
        if target < broker.clock.now():
            raise unprocessable("the clock cannot go backwards; use /_sim/reset")
        broker.clock.set(target)
    if "advance" in body:
        seconds = float(body["advance"])
        if seconds < 0:
            raise unprocessable("advance must be >= 0")
        broker.clock.advance(seconds)
    now = broker.sync()
    return json_response({"now": ts(now), "is_open": broker.calendar.is_open(now)})


@admin_routes.post("/_sim/sync")
async def sync(request: web.Request) -> web.Response:
    """POST /_sim/sync: process everything due now; returns once no cancel/replace is in flight."""
    server = _server(request)
    server.broker.sync()
    await server.settle()
    return json_response({"now": ts(server.broker.sync())})


@admin_routes.post("/_sim/prices/{symbol}")
async def set_price(request: web.Request) -> web.Response:
    """POST /_sim/prices/{symbol}: {"price": p, "volatility": v} (either or both)."""
    broker = _server(request).broker
    symbol = request.match_info["symbol"].upper()
    body = await _body(request)
    price = _decimal(body, "price")
    if not broker.prices.has(symbol):
        broker.add_symbol(symbol, price)
    now = broker.sync()
    if body.get("volatility") is not None:
        broker.prices.path(symbol).set_volatility(now, float(body["volatility"]))
    if price is not None:
        broker.prices.set_price(symbol, now, price)
    broker.matcher.catch_up(now, now)
    for order in broker.book.open_orders(symbol):
        broker.matcher.evaluate(order, now)
    quote = broker.prices.quote(symbol, now)
    return json_response(
        {"symbol": symbol, "bid": str(quote.bid), "ask": str(quote.ask), "mid": str(quote.mid)}
    )


@admin_routes.post("/_sim/faults")
async def add_fault(request: web.Request) -> web.Response:
    """POST /_sim/faults: add a FaultRule."""
    try:
        rule = FaultRule.model_validate(await _body(request))
    except ValidationError as exc:
        raise unprocessable(str(exc.errors()[0]["msg"])) from exc
    return json_response(_server(request).faults.add(rule).model_dump())


@admin_routes.get("/_sim/faults")
async def list_faults(request: web.Request) -> web.Response:
    """GET /_sim/faults."""
    return json_response([r.model_dump() for r in _server(request).faults.rules])


@admin_routes.delete("/_sim/faults")
async def clear_faults(request: web.Request) -> web.Response:
    """DELETE /_sim/faults: remove every rule."""
    _server(request).faults.clear()
    return web.Response(status=204)


@admin_routes.delete("/_sim/faults/{rule_id}")
async def remove_fault(request: web.Request) -> web.Response:
    """DELETE /_sim/faults/{id}."""
    if not _server(request).faults.remove(request.match_info["rule_id"]):
        raise ApiError(404, "fault not found", 40410000)
    return web.Response(status=204)


@admin_routes.post("/_sim/orders/{order_id}/cancel")
async def cancel_order(request: web.Request) -> web.Response:
    """POST /_sim/orders/{id}/cancel: cancel as if from the dashboard."""
    broker = _server(request).broker
    order = cancel_elsewhere(broker, request.match_info["order_id"])
    return json_response(order_json(order, broker.book))


@admin_routes.post("/_sim/orders/{order_id}/expire")
async def expire_order(request: web.Request) -> web.Response:
    """POST /_sim/orders/{id}/expire: the broker expires the order (e.g. a GTC aged out)."""
    broker = _server(request).broker
    order = end_elsewhere(broker, request.match_info["order_id"], Status.EXPIRED)
    return json_response(order_json(order, broker.book))


@admin_routes.post("/_sim/orders/{order_id}/reject")
async def reject_order(request: web.Request) -> web.Response:
    """POST /_sim/orders/{id}/reject: the broker rejects an accepted order after the fact."""
    broker = _server(request).broker
    order = end_elsewhere(broker, request.match_info["order_id"], Status.REJECTED)
    return json_response(order_json(order, broker.book))


@admin_routes.post("/_sim/orders/{order_id}/status")
async def set_order_status(request: web.Request) -> web.Response:
    """POST /_sim/orders/{id}/status: {"status"} park an order (done_for_day, ...) or resume it."""
    broker = _server(request).broker
    status = (await _body(request)).get("status")
    if not isinstance(status, str):
        raise unprocessable("status is required")
    order = set_status_elsewhere(broker, request.match_info["order_id"], status)
    return json_response(order_json(order, broker.book))


@admin_routes.post("/_sim/orders/{order_id}/reject-next-cancel")
async def reject_next_cancel(request: web.Request) -> web.Response:
    """POST /_sim/orders/{id}/reject-next-cancel: its next cancel is accepted, then refused."""
    broker = _server(request).broker
    order = arm_rejection(broker, request.match_info["order_id"], "cancel")
    return json_response(order_json(order, broker.book))


@admin_routes.post("/_sim/orders/{order_id}/reject-next-replace")
async def reject_next_replace(request: web.Request) -> web.Response:
    """POST /_sim/orders/{id}/reject-next-replace: its next replace is accepted, then rejected."""
    broker = _server(request).broker
    order = arm_rejection(broker, request.match_info["order_id"], "replace")
    return json_response(order_json(order, broker.book))


@admin_routes.post("/_sim/orders/{order_id}/fill")
async def fill_order(request: web.Request) -> web.Response:
    """POST /_sim/orders/{id}/fill: {"price"?, "qty"?} execute now regardless of the market.

    An option order (single-leg or mleg parent) fills `qty` units at its (net) limit.
    """
    broker = _server(request).broker
    body = await _body(request)
    order_id, price, qty = (
        request.match_info["order_id"],
        _decimal(body, "price"),
        _decimal(body, "qty"),
    )
    order = broker.order(order_id)
    if order.asset_class == "us_option":
        order = broker.options.fill_now(order, qty, price)
    else:
        order = fill_elsewhere(broker, order_id, price, qty)
    return json_response(order_json(order, broker.book))


@admin_routes.post("/_sim/positions")
async def open_position(request: web.Request) -> web.Response:
    """POST /_sim/positions: {"symbol", "qty" (signed), "price"?} trade outside the system."""
    broker = _server(request).broker
    body = await _body(request)
    qty = _decimal(body, "qty")
    if not body.get("symbol") or qty is None:
        raise unprocessable("symbol and qty are required")
    order = trade_elsewhere(broker, str(body["symbol"]).upper(), qty, _decimal(body, "price"))
    return json_response(order_json(order, broker.book))


@admin_routes.delete("/_sim/positions/{symbol}")
async def close_position(request: web.Request) -> web.Response:
    """DELETE /_sim/positions/{symbol}?cancel_orders=true: flatten outside the system."""
    broker = _server(request).broker
    cancel = request.query.get("cancel_orders", "").lower() in ("true", "1")
    order = close_elsewhere(broker, request.match_info["symbol"], cancel)
    return json_response(order_json(order, broker.book))


@admin_routes.post("/_sim/stream/drop")
async def drop_streams(request: web.Request) -> web.Response:
    """POST /_sim/stream/drop: close every trade_updates connection."""
    return json_response({"dropped": await _server(request).hub.drop_all()})


@admin_routes.post("/_sim/reset")
async def reset(request: web.Request) -> web.Response:
    """POST /_sim/reset: {"cash"?, "clock"?} fresh account, prices, faults; clock may move."""
    server = _server(request)
    body = await _body(request)
    when = body.get("clock")
    server.reset(
        cash=_decimal(body, "cash"),
        when=datetime.fromisoformat(str(when).replace("Z", "+00:00")) if when else None,
    )
    return json_response({"now": ts(server.broker.clock.now())})


@admin_routes.post("/_sim/snapshot")
async def snapshot(request: web.Request) -> web.Response:
    """POST /_sim/snapshot: {"path"?} write the state file."""
    server = _server(request)
    path = (await _body(request)).get("path")
    written = server.save(Path(path) if path else None)
    return json_response({"path": str(written)})


@admin_routes.post("/_sim/restore")
async def restore(request: web.Request) -> web.Response:
    """POST /_sim/restore: {"path"?} load a state file."""
    server = _server(request)
    path = (await _body(request)).get("path")
    loaded = server.load(Path(path) if path else None)
    return json_response({"path": str(loaded), "now": ts(server.broker.clock.now())})


@admin_routes.post("/_sim/requests/reset")
async def reset_requests(request: web.Request) -> web.Response:
    """POST /_sim/requests/reset: zero the /v2 request counter; returns the counts before."""
    counter = _server(request).requests
    before = counter.as_json()
    counter.reset()
    return json_response(before)


@admin_routes.post("/_sim/config")
async def configure(request: web.Request) -> web.Response:
    """POST /_sim/config: {"rate_limit"?, "rate_window_s"?, "partial_fill_probability"?, ...}."""
    server = _server(request)
    body = await _body(request)
    server.broker.fidelity.configure(body)
    if "rate_limit" in body:
        server.limiter.limit = int(body["rate_limit"])
        server.limiter.reset()
    if "rate_window_s" in body:
        server.limiter.window_s = float(body["rate_window_s"])
        server.limiter.reset()
    if "partial_fill_probability" in body:
        server.broker.matcher.partial_fill_probability = float(body["partial_fill_probability"])
    if "fill_delay_ms" in body:
        server.broker.route_delay = int(body["fill_delay_ms"]) / 1000
    return json_response({key: str(value) for key, value in body.items()})


@admin_routes.post("/_sim/options/level")
async def set_options_level(request: web.Request) -> web.Response:
    """POST /_sim/options/level {"level": 0-3}: the account's options level until the next reset."""
    broker = _server(request).broker
    level = (await _body(request)).get("level")
    if not isinstance(level, int) or isinstance(level, bool):
        raise unprocessable("level must be an integer 0-3")
    broker.set_options_level(level)
    return json_response({"level": broker.options.level})
