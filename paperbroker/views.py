"""Read models over the broker: account, positions and the filtered order list."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

from paperbroker.book import ZERO
from paperbroker.broker import Broker
from paperbroker.errors import position_not_found
from paperbroker.models import OrderRecord, Side, Status
from paperbroker.serialize import order_json, position_json, ts
from paperbroker.ticks import fmt_money

MAX_ORDER_LIMIT = 500
DEFAULT_ORDER_LIMIT = 50


class OrderQuery(BaseModel):
    """Filters of GET /v2/orders."""

    status: str = "open"
    limit: int = DEFAULT_ORDER_LIMIT
    after: datetime | None = None
    until: datetime | None = None
    direction: str = "desc"
    nested: bool = False
    side: Side | None = None
    symbols: list[str] | None = None


def account_json(broker: Broker, now: datetime) -> dict[str, Any]:
    """Render GET /v2/account."""
    book = broker.book
    long_value = short_value = ZERO
    for symbol, position in book.positions.items():
        value = position.qty * broker.prices.quote(symbol, now).mid
        if value > 0:
            long_value += value
        else:
            short_value += value
    equity = book.account.cash + long_value + short_value
    initial_margin = (long_value - short_value) / 2
    maintenance = long_value * Decimal("0.3") - short_value * Decimal("0.3")
    buying_power = broker.buying_power(now)
    reserved = broker.reserved_for_buys(now)
    return {
        "id": str(book.account.id),
        "account_number": book.account.account_number,
        "status": "ACTIVE",
        "crypto_status": "ACTIVE",
        "currency": "USD",
        "buying_power": fmt_money(buying_power),
        "regt_buying_power": fmt_money(buying_power),
        "non_marginable_buying_power": fmt_money(max(ZERO, book.account.cash - reserved)),
        "options_buying_power": fmt_money(max(ZERO, book.account.cash - reserved)),
        "cash": fmt_money(book.account.cash),
        "accrued_fees": "0",
        "pending_transfer_in": "0",
        "pending_transfer_out": "0",
        "portfolio_value": fmt_money(equity),
        "trading_blocked": False,
        "transfers_blocked": False,
        "account_blocked": False,
        "created_at": ts(book.account.created_at),
        "trade_suspended_by_user": False,
        "multiplier": str(broker.multiplier),
        "shorting_enabled": True,
        "equity": fmt_money(equity),
        "last_equity": fmt_money(book.account.last_equity),
        "long_market_value": fmt_money(long_value),
        "short_market_value": fmt_money(short_value),
        "position_market_value": fmt_money(long_value - short_value),
        "initial_margin": fmt_money(initial_margin),
        "maintenance_margin": fmt_money(maintenance),
        "last_maintenance_margin": "0",
        "sma": fmt_money(equity),
        "options_approved_level": 0,
        "options_trading_level": 0,
        "balance_asof": now.date().isoformat(),
    }


def positions_json(broker: Broker, now: datetime) -> list[dict[str, Any]]:
    """Render GET /v2/positions, sorted by symbol."""
    return [_position(broker, symbol, now) for symbol in sorted(broker.book.positions)]


def one_position_json(broker: Broker, symbol_or_id: str, now: datetime) -> dict[str, Any]:
    """Render GET /v2/positions/{symbol_or_id} or raise 404."""
    asset = broker.asset(symbol_or_id)
    if asset is None or asset.symbol not in broker.book.positions:
        raise position_not_found()
    return _position(broker, asset.symbol, now)


def _position(broker: Broker, symbol: str, now: datetime) -> dict[str, Any]:
    price = broker.prices.quote(symbol, now).mid
    exchange = broker.assets[symbol].exchange if symbol in broker.assets else "NASDAQ"
    return position_json(broker.book, symbol, exchange, price, broker.lastday_price(symbol, now))


def list_orders(broker: Broker, query: OrderQuery) -> list[dict[str, Any]]:
    """Render GET /v2/orders with Alpaca's filters."""
    book = broker.book
    selected: list[OrderRecord] = []
    symbols = {s.upper() for s in query.symbols} if query.symbols else None
    # Field reports (alpaca-trade-api-python #322, alpaca-trade-api-js #87, forum t/11938):
    # held stop legs can be missing from status=open listings.
    hide_held = broker.fidelity.hide_held_legs and query.status == "open"
    for order in book.orders.values():
        if query.nested and order.parent_id is not None:
            continue
        if hide_held and order.status is Status.HELD:
            continue
        if query.status == "open" and not order.is_open:
            continue
        if query.status == "closed" and order.is_open:
            continue
        if query.after is not None and order.submitted_at <= query.after:
            continue
        if query.until is not None and order.submitted_at >= query.until:
            continue
        if query.side is not None and order.side is not query.side:
            continue
        if symbols is not None and order.symbol not in symbols:
            continue
        selected.append(order)
    selected.sort(key=lambda o: (o.submitted_at, o.seq), reverse=query.direction != "asc")
    limit = max(1, min(query.limit, MAX_ORDER_LIMIT))
    return [order_json(o, book, nested=query.nested, hide_held=hide_held) for o in selected[:limit]]
