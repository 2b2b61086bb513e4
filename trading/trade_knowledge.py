"""What a trade already knows about its position and its stop, so it asks the broker less.

Stream events and BrokerSync snapshots arrive as signals; together they often answer the two
questions a protection check asks (how many shares, is the stop working) without a broker
call. The rule is the three-valued probe's: a fact is used only while it is fresh and nothing
since could have changed it; anything else stays unknown and the trade probes, as before.

- A terminal status from an event is final: a cancelled stop stays cancelled.
- An active status is believed from an event, or from a fresh snapshot that lists the order;
  a fresh snapshot that does not list the stop is not proof of anything (it may have been
  replaced): probe it.
- A position is believed from the newest fresh observation (a snapshot, the listener's
  positions read attached to an event, a fill event's position_qty). A fill without a
  position_qty makes every older observation stale.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from trading.broker_models import (
    BrokerOrder,
    BrokerPosition,
    OrderProbe,
    PositionProbe,
    ProbeOutcome,
)
from trading.trade_models import OrderEvent, PositionSeen, PositionUpdate

FILL_EVENTS = frozenset({"fill", "partial_fill"})
# How fresh a position read must be to place or resize a stop from it without asking again.
ACT_MAX_AGE = timedelta(seconds=5)
# Broker and workflow clocks further apart than this are not compared (see event_time).
COMPARABLE_CLOCKS = timedelta(minutes=5)
# Broker failures after which a fresh snapshot means "the broker answers again".
TRANSIENT_FAILURES = frozenset(
    {"BrokerUnavailable", "RateLimited", "BudgetExhausted", "TimeoutError", "ActivityError"}
)


@dataclass(frozen=True)
class Known:
    """The answers a protection check needs; None means "ask the broker"."""

    position: PositionProbe | None
    stop: OrderProbe | None
    position_seen_at: datetime | None = None

    @property
    def complete(self) -> bool:
        """Both answers are known: keeping the stop needs no broker call."""
        return self.position is not None and self.stop is not None

    def fit_to_act(self, now: datetime) -> bool:
        """The position was read moments ago (ACT_MAX_AGE): enough to size a new stop on.

        Keeping a stop may rest on older knowledge (doing nothing is always safe); placing or
        resizing one may not - a stale size could sell more than the account holds.
        """
        seen = self.position_seen_at
        return seen is not None and now - seen <= ACT_MAX_AGE


def moved_by_its_fill(stop: OrderProbe | None) -> bool:
    """The stop (partly) filled: the position changed by a size no snapshot saw yet."""
    return stop is not None and stop.order is not None and stop.order.filled_qty > 0


@dataclass
class Knowledge:
    """The facts signals brought since this run started (not carried over continue-as-new)."""

    snapshot: PositionUpdate | None = None
    position: PositionSeen | None = None
    orders: dict[str, tuple[BrokerOrder, datetime]] | None = None  # latest status, when seen
    moved_at: datetime | None = None  # a fill of unknown size: older observations are stale

    def saw_snapshot(self, update: PositionUpdate) -> bool:
        """Take a BrokerSync snapshot unless a newer one is already known; True if taken."""
        if self.snapshot is not None and update.observed_at < self.snapshot.observed_at:
            return False
        if self.moved_at is not None and update.observed_at < self.moved_at:
            return False
        self.snapshot = update
        self._saw_position(PositionSeen(qty=update.qty, observed_at=update.observed_at))
        return True

    def saw_order(self, order: BrokerOrder, at: datetime) -> None:
        """The broker said this about one of the trade's orders (an event, a submit's answer)."""
        orders = self.orders if self.orders is not None else {}
        known = orders.get(order.id)
        if known is None or not known[0].is_terminal:  # a terminal status is final
            orders[order.id] = (order, at)
        self.orders = orders

    def saw_event(self, event: OrderEvent, received_at: datetime) -> None:
        """Take a stream event: the order's status, and what it says about the position."""
        at = event_time(event, received_at)
        self.saw_order(event.order, at)
        if event.event in FILL_EVENTS:
            if event.position_qty is None:
                self.position = None  # the position moved by an amount we cannot tell
                self.snapshot = None
                self.moved_at = received_at
            else:
                self._saw_position(PositionSeen(qty=event.position_qty, observed_at=at))
        if event.position_seen is not None:
            self._saw_position(event.position_seen)

    def _saw_position(self, seen: PositionSeen) -> None:
        if self.moved_at is not None and seen.observed_at < self.moved_at:
            return
        if self.position is None or seen.observed_at >= self.position.observed_at:
            self.position = seen

    def ended(self) -> frozenset[str]:
        """Orders the stream said are over."""
        return frozenset(o.id for o in self.ended_orders())

    def ended_orders(self) -> list[BrokerOrder]:
        """The orders known to be over (carried across continue-as-new: that is final)."""
        return [o for o, _ in (self.orders or {}).values() if o.is_terminal]

    def known(
        self, symbol: str, stop_order_id: str | None, now: datetime, max_age: timedelta
    ) -> Known:
        """What is known now about the position in `symbol` and the stop."""
        position = self._position_probe(symbol, now, max_age)
        return Known(
            position=position,
            stop=self._stop_probe(stop_order_id, now, max_age),
            position_seen_at=self.position.observed_at if position and self.position else None,
        )

    def _position_probe(
        self, symbol: str, now: datetime, max_age: timedelta
    ) -> PositionProbe | None:
        seen = self.position
        if seen is None or now - seen.observed_at > max_age:
            return None
        if seen.qty == 0:
            return PositionProbe(outcome=ProbeOutcome.ABSENT)
        # avg_entry_price is not part of what was seen: callers that need it probe.
        position = BrokerPosition(symbol=symbol, qty=seen.qty, avg_entry_price=Decimal(0))
        return PositionProbe(outcome=ProbeOutcome.EXISTS, position=position)

    def _stop_probe(
        self, stop_order_id: str | None, now: datetime, max_age: timedelta
    ) -> OrderProbe | None:
        if stop_order_id is None:
            return None
        seen = (self.orders or {}).get(stop_order_id)
        if seen is not None and seen[0].is_terminal:
            return OrderProbe(outcome=ProbeOutcome.EXISTS, order=seen[0])
        snapshot = self.snapshot
        if snapshot is not None and now - snapshot.observed_at > max_age:
            snapshot = None
        # An active status seen after the latest fresh snapshot is the newest word on it.
        newer = seen is not None and (snapshot is None or seen[1] >= snapshot.observed_at)
        if seen is not None and newer and seen[0].is_active and now - seen[1] <= max_age:
            return OrderProbe(outcome=ProbeOutcome.EXISTS, order=seen[0])
        listed = _find(snapshot.open_orders, stop_order_id) if snapshot is not None else None
        return OrderProbe(outcome=ProbeOutcome.EXISTS, order=listed) if listed else None


def event_time(event: OrderEvent, received_at: datetime) -> datetime:
    """When an event's news dates from: when it happened, if that is earlier than its arrival.

    An event delivered late (a backlog, a worker restart) must not pass for newer than a
    snapshot taken after it. A broker timestamp far from our clock (a simulated paper clock)
    says nothing comparable: then the arrival time is all there is.
    """
    happened = event.timestamp
    if abs(received_at - happened) > COMPARABLE_CLOCKS:
        return received_at
    return min(happened, received_at)


def _find(orders: list[BrokerOrder], order_id: str) -> BrokerOrder | None:
    for order in orders:
        for candidate in (order, *order.legs):
            if candidate.id == order_id:
                return candidate
    return None


def broker_answers_again(
    last_failure_kind: str | None, failed_at: datetime | None, observed_at: datetime
) -> bool:
    """A snapshot taken after a transient broker failure: the rescue need not wait its backoff."""
    return (
        last_failure_kind in TRANSIENT_FAILURES
        and failed_at is not None
        and observed_at > failed_at
    )
