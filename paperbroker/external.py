"""Things done to the account outside the API: dashboard cancels and fills, manual trades."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal
from uuid import uuid4

from paperbroker.broker import Broker
from paperbroker.errors import position_not_found, unprocessable
from paperbroker.models import OrderClass, OrderRecord, OrderType, Side, Status, TimeInForce


def cancel_elsewhere(broker: Broker, order_id: str) -> OrderRecord:
    """Cancel an open order as a person in the dashboard would (the stream reports it).

    It takes the same path as DELETE /v2/orders/{id}: pending_cancel, then canceled with
    the rest of its group.
    """
    return broker.cancel(order_id)


def set_status_elsewhere(broker: Broker, order_id: str, status: str) -> OrderRecord:
    """Park an order in one of Alpaca's less common statuses (or resume it with "new")."""
    try:
        wanted = Status(status)
    except ValueError as exc:
        raise unprocessable(f"unknown status: {status}") from exc
    return broker.set_status(order_id, wanted)


def arm_rejection(
    broker: Broker, order_id: str, action: Literal["cancel", "replace"]
) -> OrderRecord:
    """Make the next cancel (or replace) of an order fail after it was accepted."""
    order = broker.order(order_id)
    if not order.is_open:
        raise unprocessable(f'order is already in "{order.status.value}" state')
    if action not in order.reject_next:
        order.reject_next.append(action)
    return order


def end_elsewhere(broker: Broker, order_id: str, status: Status) -> OrderRecord:
    """Expire or reject an open order as the broker might on its own (the stream reports it)."""
    order = broker.order(order_id)
    now = broker.sync()
    if not order.is_open:
        raise unprocessable(f'order is already in "{order.status.value}" state')
    broker.matcher.end(order, now, status)
    return order


def fill_elsewhere(
    broker: Broker, order_id: str, price: Decimal | None, qty: Decimal | None
) -> OrderRecord:
    """Execute an open order now at `price` (default: the far side of the quote)."""
    order = broker.order(order_id)
    now = broker.sync()
    if not order.is_open or order.qty is None:
        raise unprocessable(f'order is already in "{order.status.value}" state')
    if order.replacement_in_flight:
        raise unprocessable("the order is a replacement that is not live yet")
    quote = broker.prices.quote(order.symbol, now)
    fill_price = (
        price if price is not None else (quote.ask if order.side is Side.BUY else quote.bid)
    )
    size = min(qty, order.remaining) if qty is not None else order.remaining
    if size <= 0:
        raise unprocessable("qty must be > 0")
    if order.status in (Status.ACCEPTED, Status.HELD):
        order.activated = True
    order.working = True
    broker.book.apply_fill(order, size, fill_price, now)
    broker.matcher.after_fill(order, now)
    return order


def trade_elsewhere(
    broker: Broker, symbol: str, qty: Decimal, price: Decimal | None
) -> OrderRecord:
    """Open, grow, shrink or close a position with an order the system never sent."""
    asset = broker.asset(symbol) or broker.add_symbol(symbol, price)
    now = broker.sync()
    if qty == 0:
        raise unprocessable("qty must not be 0")
    side = Side.BUY if qty > 0 else Side.SELL
    quote = broker.prices.quote(asset.symbol, now)
    fill_price = price if price is not None else (quote.ask if side is Side.BUY else quote.bid)
    order = OrderRecord(
        id=uuid4(),
        client_order_id=str(uuid4()),
        symbol=asset.symbol,
        asset_id=asset.id,
        side=side,
        type=OrderType.MARKET,
        time_in_force=TimeInForce.DAY,
        order_class=OrderClass.SIMPLE,
        qty=abs(qty),
        status=Status.NEW,
        created_at=now,
        updated_at=now,
        submitted_at=now,
        working=True,
    )
    broker.book.add(order)
    broker.book.emit("new", order, now)
    broker.book.apply_fill(order, abs(qty), fill_price, now)
    return order


def close_elsewhere(broker: Broker, symbol: str, cancel_orders: bool) -> OrderRecord:
    """Flatten a position outside the system, optionally cancelling its open orders first."""
    asset = broker.asset(symbol)
    position = broker.book.positions.get(asset.symbol) if asset else None
    if asset is None or position is None:
        raise position_not_found()
    if cancel_orders:
        broker.cancel_now(asset.symbol)
    return trade_elsewhere(broker, asset.symbol, -position.qty, None)
