"""The account's books: orders, positions and cash, with fills and trade-update events."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

from paperbroker.models import (
    AccountRecord,
    LegRole,
    OrderClass,
    OrderRecord,
    PositionRecord,
    Side,
    Status,
    after_fill,
)

log = logging.getLogger(__name__)

ZERO = Decimal(0)
PENDING_STATUSES = frozenset({Status.PENDING_CANCEL, Status.PENDING_REPLACE})

# The time field each final status (other than a fill) stamps on the order.
FINAL_STAMPS: dict[Status, str] = {
    Status.CANCELED: "canceled_at",
    Status.EXPIRED: "expired_at",
    Status.REJECTED: "failed_at",
    Status.REPLACED: "replaced_at",
}


@dataclass(frozen=True)
class TradeUpdate:
    """One trade_updates event before serialization."""

    event: str
    order_id: UUID
    timestamp: datetime
    price: Decimal | None = None
    qty: Decimal | None = None
    position_qty: Decimal | None = None
    execution_id: UUID | None = None


@dataclass
class Book:
    """Orders, positions and cash of the single paper account."""

    account: AccountRecord
    orders: dict[UUID, OrderRecord] = field(default_factory=dict)
    positions: dict[str, PositionRecord] = field(default_factory=dict)
    client_ids: dict[str, UUID] = field(default_factory=dict)
    seq: int = 0
    listeners: list[Callable[[TradeUpdate], None]] = field(default_factory=list)
    open_ids: dict[UUID, None] = field(default_factory=dict)
    # The same ids by symbol: a symbol's open orders (positions, reservations, per-symbol
    # rules) are read without walking every open order of the account.
    open_ids_by_symbol: dict[str, dict[UUID, None]] = field(default_factory=dict)

    def add(self, order: OrderRecord) -> None:
        """Register a new order."""
        self.seq += 1
        order.seq = self.seq
        self.orders[order.id] = order
        self.client_ids.setdefault(order.client_order_id, order.id)
        self.track_open(order)

    def track_open(self, order: OrderRecord) -> None:
        """Index a registered order as open (a no-op for one that is not)."""
        if order.is_open:
            self.open_ids[order.id] = None
            self.open_ids_by_symbol.setdefault(order.symbol, {})[order.id] = None

    def emit(self, event: str, order: OrderRecord, when: datetime, **fill: Any) -> None:
        """Send a trade update to every listener."""
        update = TradeUpdate(event=event, order_id=order.id, timestamp=when, **fill)
        for listener in list(self.listeners):
            try:
                listener(update)
            except Exception:
                log.exception("trade update listener failed for order %s", order.client_order_id)

    def open_orders(self, symbol: str | None = None) -> list[OrderRecord]:
        """Return open orders (optionally for one symbol) in submission order."""
        ids = self.open_ids if symbol is None else self.open_ids_by_symbol.get(symbol, {})
        found: list[OrderRecord] = []
        closed: list[OrderRecord] = []
        for order_id in ids:
            order = self.orders[order_id]
            (found if order.is_open else closed).append(order)
        for order in closed:
            self.open_ids.pop(order.id, None)
            self.open_ids_by_symbol.get(order.symbol, {}).pop(order.id, None)
        return found

    def set_status(
        self, order: OrderRecord, status: Status, when: datetime, event: str | None
    ) -> None:
        """Move an order to `status`, stamp the matching time field and emit `event`."""
        order.status = status
        order.updated_at = when
        stamp = FINAL_STAMPS.get(status)
        if stamp is not None:
            setattr(order, stamp, when)
            order.working = False
        if event is not None:
            self.emit(event, order, when)

    def position_qty(self, symbol: str) -> Decimal:
        """Return the signed position quantity for `symbol`."""
        position = self.positions.get(symbol)
        return position.qty if position else ZERO

    def held_for_orders(self, symbol: str, side: Side) -> Decimal:
        """Return the quantity reserved by open orders on `side` (OCO peers count once)."""
        groups: dict[UUID, Decimal] = {}
        for order in self.open_orders(symbol):
            if order.side is not side or not order.activated or order.replacement_in_flight:
                continue
            if order.leg_ids and order.order_class in (OrderClass.BRACKET, OrderClass.OTO):
                continue
            key = order.id if order.oco_peer_id is None else min(order.id, order.oco_peer_id)
            groups[key] = max(groups.get(key, ZERO), order.remaining)
        return sum(groups.values(), ZERO)

    def apply_fill(self, order: OrderRecord, qty: Decimal, price: Decimal, when: datetime) -> None:
        """Execute `qty` of `order` at `price`: update order, position and cash, emit the event."""
        total = order.filled_qty + qty
        previous_value = (order.filled_avg_price or ZERO) * order.filled_qty
        order.filled_avg_price = ((previous_value + price * qty) / total).quantize(
            Decimal("0.0001")
        )
        order.filled_avg_price = order.filled_avg_price.normalize()
        order.filled_qty = total
        order.updated_at = when
        signed = qty if order.side is Side.BUY else -qty
        self._move_position(order, signed, price)
        self.account.cash -= signed * price
        if order.remaining <= 0:
            order.status = Status.FILLED
            order.filled_at = when
            order.working = False
            event = "fill"
        else:
            if order.pending is not None and order.status in PENDING_STATUSES:
                order.pending.resume_status = Status.PARTIALLY_FILLED  # still pending
            else:
                order.status = Status.PARTIALLY_FILLED
            event = "partial_fill"
        self.emit(
            event,
            order,
            when,
            price=price,
            qty=qty,
            position_qty=self.position_qty(order.symbol),
            execution_id=uuid4(),
        )

    def _move_position(self, order: OrderRecord, signed: Decimal, price: Decimal) -> None:
        position = self.positions.get(order.symbol)
        if position is None:
            self.positions[order.symbol] = PositionRecord(
                symbol=order.symbol, asset_id=order.asset_id, qty=signed, avg_entry_price=price
            )
            return
        qty, avg = after_fill(position.qty, position.avg_entry_price, signed, price)
        if qty == 0:
            del self.positions[order.symbol]
        else:
            position.qty, position.avg_entry_price = qty, avg

    def legs_of(self, order: OrderRecord) -> list[OrderRecord]:
        """Return the legs of a complex order."""
        return [self.orders[i] for i in order.leg_ids if i in self.orders]

    def group_of(self, order: OrderRecord) -> list[OrderRecord]:
        """Return every order of the bracket/OCO/OTO group `order` belongs to (parent first)."""
        if order.order_class is OrderClass.SIMPLE:
            return [order]
        root = self.orders.get(order.parent_id) if order.parent_id else order
        if root is None:
            return [order]
        return [root, *self.legs_of(root)]

    def leg(self, order: OrderRecord, role: LegRole) -> OrderRecord | None:
        """Return the leg of `order` with the given role."""
        return next((leg for leg in self.legs_of(order) if leg.leg_role is role), None)
