"""Render orders, positions, the account, clock and calendar exactly as Alpaca's JSON."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from paperbroker.book import ZERO, Book, TradeUpdate
from paperbroker.calendar import NEW_YORK, MarketCalendar, Session
from paperbroker.models import OptionPositionRecord, OrderRecord, Side, Status
from paperbroker.ticks import fmt, fmt_money

CONTRACT_SIZE = Decimal(100)  # shares per option contract


def ts(value: datetime | None) -> str | None:
    """Format a UTC timestamp as Alpaca does (RFC 3339, microseconds, Z)."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def ny_ts(value: datetime) -> str:
    """Format a timestamp in New York time with its offset (as /v2/clock does)."""
    return value.astimezone(NEW_YORK).isoformat()


def _num(value: Decimal | None) -> str | None:
    return None if value is None else fmt(value)


def order_json(
    order: OrderRecord, book: Book, nested: bool = False, hide_held: bool = False
) -> dict[str, Any]:
    """Render an order; with `nested` the legs appear under `legs` (held ones unless hidden)."""
    legs = None
    if nested and order.leg_ids:
        legs = [
            order_json(leg, book, nested=False)
            for leg in book.legs_of(order)
            if not (hide_held and leg.status is Status.HELD)
        ]
    option = order.asset_class == "us_option"
    # An mleg parent has no symbol or asset of its own (alpaca-py: "omitted from top-level of
    # response if the order is of mleg class"); its legs carry ratio_qty.
    mleg_parent = option and order.order_class.value == "mleg" and order.parent_id is None
    rendered = {
        "id": str(order.id),
        "client_order_id": order.client_order_id,
        "created_at": ts(order.created_at),
        "updated_at": ts(order.updated_at),
        "submitted_at": ts(order.submitted_at),
        "filled_at": ts(order.filled_at),
        "expired_at": ts(order.expired_at),
        "expires_at": ts(order.expires_at),
        "canceled_at": ts(order.canceled_at),
        "failed_at": ts(order.failed_at),
        "replaced_at": ts(order.replaced_at),
        "replaced_by": str(order.replaced_by) if order.replaced_by else None,
        "replaces": str(order.replaces) if order.replaces else None,
        "asset_id": None if mleg_parent else str(order.asset_id),
        "symbol": None if mleg_parent else order.symbol,
        "asset_class": None if mleg_parent else order.asset_class,
        "notional": _num(order.notional),
        "qty": _num(order.qty),
        "filled_qty": fmt(order.filled_qty),
        "filled_avg_price": _num(order.filled_avg_price),
        "order_class": order.order_class.value,
        "order_type": order.type.value,
        "type": order.type.value,
        "side": order.side.value,
        "position_intent": order.position_intent if option else _intent(order, book),
        "time_in_force": order.time_in_force.value,
        "limit_price": _num(order.limit_price),
        "stop_price": _num(order.stop_price),
        "status": order.status.value,
        "extended_hours": order.extended_hours,
        "legs": legs,
        "trail_percent": _num(order.trail_percent),
        "trail_price": _num(order.trail_price),
        "hwm": _num(order.hwm),
        "subtag": None,
        "source": None,
    }
    if order.ratio_qty is not None:
        rendered["ratio_qty"] = fmt(order.ratio_qty)
    return rendered


def _intent(order: OrderRecord, book: Book) -> str:
    held = book.position_qty(order.symbol)
    if order.side.value == "buy":
        return "buy_to_close" if held < 0 else "buy_to_open"
    return "sell_to_close" if held > 0 else "sell_to_open"


def trade_update_json(update: TradeUpdate, book: Book) -> dict[str, Any]:
    """Render one trade_updates message."""
    order = book.orders[update.order_id]
    data: dict[str, Any] = {
        "event": update.event,
        "timestamp": ts(update.timestamp),
        "order": order_json(order, book),
    }
    if update.execution_id is not None:
        data["execution_id"] = str(update.execution_id)
    if update.price is not None:
        data["price"] = fmt(update.price)
    if update.qty is not None:
        data["qty"] = fmt(update.qty)
    if update.position_qty is not None:
        data["position_qty"] = fmt(update.position_qty)
    return {"stream": "trade_updates", "data": data}


def position_json(
    book: Book, symbol: str, exchange: str, price: Decimal, lastday: Decimal
) -> dict[str, Any]:
    """Render a position valued at `price`, with `lastday` as the previous close."""
    position = book.positions[symbol]
    qty = position.qty
    market_value = qty * price
    cost_basis = qty * position.avg_entry_price
    unrealized = market_value - cost_basis
    intraday = market_value - qty * lastday
    held = book.held_for_orders(symbol, _closing_side(qty))
    lastday_value = qty * lastday
    values = {
        "avg_entry_price": fmt(position.avg_entry_price),
        "market_value": fmt_money(market_value),
        "cost_basis": fmt_money(cost_basis),
        "unrealized_pl": fmt_money(unrealized),
        "unrealized_plpc": _ratio(unrealized, abs(cost_basis)),
        "unrealized_intraday_pl": fmt_money(intraday),
        "unrealized_intraday_plpc": _ratio(intraday, abs(lastday_value)),
        "current_price": fmt(price),
        "lastday_price": fmt(lastday),
        "change_today": _ratio(price - lastday, lastday),
    }
    return {
        "asset_id": str(position.asset_id),
        "symbol": symbol,
        "exchange": exchange,
        "asset_class": "us_equity",
        "asset_marginable": True,
        "qty": fmt(qty),
        "qty_available": fmt(abs(qty) - held if qty > 0 else -(abs(qty) - held)),
        "side": "long" if qty > 0 else "short",
        **values,
    }


def option_position_json(
    position: OptionPositionRecord, asset_id: UUID, price: Decimal, available: Decimal
) -> dict[str, Any]:
    """Render an option position: qty in contracts, values per contract of 100 shares."""
    qty = position.qty
    market_value = qty * price * CONTRACT_SIZE
    cost_basis = qty * position.avg_entry_price * CONTRACT_SIZE
    unrealized = market_value - cost_basis
    plpc = _ratio(unrealized, abs(cost_basis))
    return {
        "asset_id": str(asset_id),
        "symbol": position.symbol,
        "exchange": "",
        "asset_class": "us_option",
        "asset_marginable": False,
        "qty": fmt(qty),
        "qty_available": fmt(available if qty > 0 else -available),
        "side": "long" if qty > 0 else "short",
        "avg_entry_price": fmt(position.avg_entry_price),
        "market_value": fmt_money(market_value),
        "cost_basis": fmt_money(cost_basis),
        "unrealized_pl": fmt_money(unrealized),
        "unrealized_plpc": plpc,
        "unrealized_intraday_pl": fmt_money(unrealized),
        "unrealized_intraday_plpc": plpc,
        "current_price": fmt(price),
        "lastday_price": fmt(price),
        "change_today": "0",
    }


def _closing_side(qty: Decimal) -> Side:
    return Side.SELL if qty > 0 else Side.BUY


def _ratio(numerator: Decimal, denominator: Decimal) -> str:
    if denominator == ZERO:
        return "0"
    return fmt((numerator / denominator).quantize(Decimal("0.0000000001")))


def clock_json(now: datetime, calendar: MarketCalendar) -> dict[str, Any]:
    """Render /v2/clock at `now`."""
    next_open = calendar.next_open_after(now) or now
    next_close = calendar.next_close_after(now) or now
    return {
        "timestamp": ny_ts(now),
        "is_open": calendar.is_open(now),
        "next_open": ny_ts(next_open),
        "next_close": ny_ts(next_close),
    }


def calendar_json(session: Session, calendar: MarketCalendar) -> dict[str, Any]:
    """Render one /v2/calendar entry."""
    settlement = calendar.next_session_day(session.day) or session.day
    return {
        "date": session.day.isoformat(),
        "open": session.open.astimezone(NEW_YORK).strftime("%H:%M"),
        "close": session.close.astimezone(NEW_YORK).strftime("%H:%M"),
        "session_open": session.pre_open.astimezone(NEW_YORK).strftime("%H%M"),
        "session_close": session.post_close.astimezone(NEW_YORK).strftime("%H%M"),
        "settlement_date": settlement.isoformat(),
    }
