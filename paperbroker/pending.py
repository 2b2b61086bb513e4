"""Cancels and replaces in flight: the pending_cancel / pending_replace phase and its outcome.

Alpaca answers DELETE with 204 and PATCH with 200 before the venue has acted: the order sits
in `pending_cancel` / `pending_replace`, keeps working, and the request can still fail - a
fill that comes first wins (`order_cancel_rejected`), a replaced order filled first rejects
its replacement (`order_replace_rejected`). Sources: the replace-order reference ("A success
return code from a replaced order does NOT guarantee the existing open order has been
replaced"), forum t/18469, and ALPACA.md "What the guard must survive".
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID, uuid4

from paperbroker.errors import duplicate_client_order_id, unprocessable
from paperbroker.fidelity import LegReplace
from paperbroker.models import (
    OrderClass,
    OrderRecord,
    OrderType,
    PendingChange,
    Status,
)
from paperbroker.orders import build_replacement
from paperbroker.rules import check_qty_available
from paperbroker.validation import ReplaceIntent

if TYPE_CHECKING:
    from paperbroker.broker import Broker

log = logging.getLogger(__name__)

# "Order cannot be replaced when the status is accepted, pending_new, pending_cancel or
# pending_replace" (replace-order reference); the parked statuses (done_for_day, stopped,
# suspended, ...) are not working either, so the stricter reading refuses them too.
REPLACEABLE = frozenset({Status.NEW, Status.PARTIALLY_FILLED, Status.HELD})
IN_FLIGHT = frozenset({Status.PENDING_CANCEL, Status.PENDING_REPLACE})


class PendingChanges:
    """Starts cancels and replaces, and finishes (or fails) them after their delay."""

    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self.in_flight: set[UUID] = set()
        self._idle_waiters: list[Callable[[], None]] = []

    # ---- cancel -------------------------------------------------------------------------
    def request_cancel(self, order: OrderRecord, now: datetime, by_broker: bool = False) -> None:
        """Put an open order in pending_cancel; it is cancelled when the delay has passed."""
        if order.status in IN_FLIGHT:
            raise unprocessable(f'order is not cancelable in "{order.status.value}" state')
        order.pending = PendingChange(
            action="cancel", resume_status=order.status, by_broker=by_broker
        )
        if by_broker:
            order.working = False  # an aged order is out of the market at 16:15
        self._broker.book.set_status(order, Status.PENDING_CANCEL, now, "pending_cancel")
        self._schedule(order, self._broker.fidelity.cancel_delay)

    def _finish_cancel(self, order: OrderRecord, pending: PendingChange, now: datetime) -> None:
        book, matcher = self._broker.book, self._broker.matcher
        if order.status is Status.FILLED:
            book.emit("order_cancel_rejected", order, now)  # the fill came first
            return
        if order.status is not Status.PENDING_CANCEL:
            return  # ended meanwhile (a group member filled, the day ended, ...)
        if "cancel" in order.reject_next and not pending.by_broker:
            order.reject_next.remove("cancel")
            order.status = pending.resume_status
            order.updated_at = now
            book.emit("order_cancel_rejected", order, now)
            if order.status is Status.ACCEPTED:
                matcher.route(order)
            return
        matcher.cancel_group(order, now)

    # ---- replace ------------------------------------------------------------------------
    def request_replace(
        self, old: OrderRecord, change: ReplaceIntent, now: datetime
    ) -> OrderRecord:
        """Accept a replace: the old order goes pending_replace, the new one pending_new."""
        broker = self._broker
        if not old.is_open:
            raise unprocessable(f'order is already in "{old.status.value}" state')
        if old.status not in REPLACEABLE or old.replacement_in_flight:
            raise unprocessable(f'order is not replaceable in "{old.status.value}" state')
        if old.notional is not None:
            raise unprocessable("notional orders cannot be replaced")
        self._check_group_rules(old, change)
        _check_fields(old, change)
        client_order_id = change.client_order_id or str(uuid4())
        if client_order_id in broker.book.client_ids:
            raise duplicate_client_order_id()
        new = build_replacement(old, change, client_order_id, now)
        if old.activated and not (old.leg_ids and old.order_class.value in ("bracket", "oto")):
            covering = broker.options.shares_covering_calls(old.symbol)
            check_qty_available(
                broker.book, old.symbol, old.side, new.remaining, old.remaining, covering
            )
        new.status = Status.PENDING_NEW
        new.working = False
        new.replacement_in_flight = True
        broker.book.add(new)
        old.pending = PendingChange(
            action="replace",
            resume_status=old.status,
            replacement_id=new.id,
            filled_qty=old.filled_qty,
            explicit_qty=change.qty is not None,
        )
        broker.book.set_status(old, Status.PENDING_REPLACE, now, "pending_replace")
        broker.book.emit("pending_new", new, now)
        self._schedule(old, broker.fidelity.replace_delay)
        return new

    def _check_group_rules(self, old: OrderRecord, change: ReplaceIntent) -> None:
        """Bracket/OCO legs: prices only; OTO orders: not at all (Orders at Alpaca, t/11938)."""
        if self._broker.fidelity.leg_replace is LegReplace.ANY:
            return
        if old.order_class is OrderClass.OTO:
            raise unprocessable("oto orders cannot be replaced")
        is_leg = old.parent_id is not None or old.order_class is OrderClass.OCO
        if is_leg and (
            change.qty is not None or change.time_in_force is not None or change.trail is not None
        ):
            raise unprocessable(
                f"only limit_price and stop_price of a {old.order_class.value} leg can be replaced"
            )

    def _finish_replace(self, old: OrderRecord, pending: PendingChange, now: datetime) -> None:
        book = self._broker.book
        new = book.orders.get(pending.replacement_id) if pending.replacement_id else None
        if new is None:
            return
        new.replacement_in_flight = False
        rejected = "replace" in old.reject_next
        if rejected:
            old.reject_next.remove("replace")
        live = old.status is Status.PENDING_REPLACE and not rejected and new.is_open
        if live and self._land(old, new, pending, now):
            return
        # The replace failed: the old order goes on as it was (unless it ended meanwhile).
        if old.status is Status.PENDING_REPLACE:
            old.status = pending.resume_status
            old.updated_at = now
        book.emit("order_replace_rejected", old, now)
        if new.is_open:
            new.pending = None
            book.set_status(new, Status.REJECTED, now, "rejected")

    def _land(
        self, old: OrderRecord, new: OrderRecord, pending: PendingChange, now: datetime
    ) -> bool:
        """Make the replacement live and the old order `replaced`; False if nothing is left."""
        broker = self._broker
        if pending.explicit_qty:
            new.qty = (new.qty or old.remaining) - (old.filled_qty - pending.filled_qty)
        else:
            new.qty = old.remaining  # fills (and OCO resizes) during the wait count
        if new.remaining <= 0:
            return False
        live = pending.resume_status
        if live is Status.PARTIALLY_FILLED:
            live = Status.NEW
        working, activated = old.working, old.activated
        broker.relink(old, new)
        old.replaced_by = new.id
        broker.book.set_status(old, Status.REPLACED, now, "replaced")
        new.activated = activated
        new.working = working
        new.updated_at = now
        if new.pending is not None:  # its cancel is already in flight: that wins next
            new.pending.resume_status = live
            return True
        new.status = live
        if live is Status.NEW:
            broker.book.emit("new", new, now)
        broker.matcher.evaluate(new, now)
        return True

    # ---- scheduling ---------------------------------------------------------------------
    def _schedule(self, order: OrderRecord, delay: float) -> None:
        self.in_flight.add(order.id)
        order_id = order.id
        self._broker.matcher.defer(delay, lambda: self.finish(order_id))

    def when_idle(self, callback: Callable[[], None]) -> None:
        """Call `callback` once nothing is in flight (at once if nothing is)."""
        if self.in_flight:
            self._idle_waiters.append(callback)
        else:
            callback()

    def finish(self, order_id: UUID) -> None:
        """Carry out (or fail) the cancel or replace in flight on an order."""
        try:
            self._finish(order_id)
        finally:
            self.in_flight.discard(order_id)
            if not self.in_flight:
                waiters, self._idle_waiters = self._idle_waiters, []
                for callback in waiters:
                    callback()

    def _finish(self, order_id: UUID) -> None:
        broker = self._broker
        order = broker.book.orders.get(order_id)
        if order is None or order.pending is None:
            return
        now = broker.sync()
        pending = order.pending
        if order.replacement_in_flight and order.replaces is not None:
            # A cancel of a replacement that is not live yet: the replace lands first.
            old = broker.book.orders.get(order.replaces)
            if old is not None and old.pending is not None and old.pending.action == "replace":
                self.finish(old.id)
            pending = order.pending
            if pending is None:
                return
        order.pending = None
        if pending.action == "cancel":
            self._finish_cancel(order, pending, now)
        else:
            self._finish_replace(order, pending, now)
        log.info("%s of order %s finished: %s", pending.action, order.client_order_id, order.status)

    def resume_all(self) -> None:
        """Schedule again every cancel/replace a restored snapshot had in flight."""
        fidelity = self._broker.fidelity
        for order in self._broker.book.orders.values():
            if order.pending is not None:
                cancel = order.pending.action == "cancel"
                self._schedule(order, fidelity.cancel_delay if cancel else fidelity.replace_delay)

    def reset(self) -> None:
        """Forget what was in flight (the book it belonged to is gone)."""
        self.in_flight.clear()
        waiters, self._idle_waiters = self._idle_waiters, []
        for callback in waiters:
            callback()


def _check_fields(old: OrderRecord, change: ReplaceIntent) -> None:
    kind = old.type
    if change.limit_price is not None and kind not in (OrderType.LIMIT, OrderType.STOP_LIMIT):
        raise unprocessable("cannot replace limit_price of a non-limit order")
    if change.stop_price is not None and kind not in (OrderType.STOP, OrderType.STOP_LIMIT):
        raise unprocessable("cannot replace stop_price of a non-stop order")
    if change.trail is not None and kind is not OrderType.TRAILING_STOP:
        raise unprocessable("cannot replace trail of a non-trailing-stop order")
    if change.qty is not None and change.qty != change.qty.to_integral_value():
        raise unprocessable("qty must be a whole number for replace")
