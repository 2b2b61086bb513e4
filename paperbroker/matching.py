"""Order execution against the price path: triggers, fills, complex-order links, session events."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Protocol

from paperbroker.book import ZERO, Book
from paperbroker.calendar import NEW_YORK, MarketCalendar, Session
from paperbroker.fidelity import Fidelity
from paperbroker.models import (
    LegRole,
    OrderClass,
    OrderRecord,
    OrderType,
    Side,
    Status,
    TimeInForce,
)
from paperbroker.orders import gtc_cancel_times, gtc_deadline
from paperbroker.prices import PriceEngine, Quote
from paperbroker.ticks import round_price

log = logging.getLogger(__name__)

BUY_STOP_COLLAR_LOW = Decimal("1.04")
BUY_STOP_COLLAR_HIGH = Decimal("1.025")
Defer = Callable[[float, Callable[[], None]], None]
AgedHook = Callable[[OrderRecord, datetime], None]


class OptionHooks(Protocol):
    """What the matcher asks of the options desk (paperbroker/options_orders.py)."""

    def evaluate(self, order: OrderRecord, when: datetime) -> None:
        """Fill an option order if it is marketable at `when`."""

    def on_close(self, session: Session, when: datetime) -> None:
        """Settle contracts expiring at this close."""

    def value(self, when: datetime) -> Decimal:
        """Return the net market value of the option positions."""


def _immediate(_delay: float, action: Callable[[], None]) -> None:
    action()


class Matcher:
    """Walks simulated time forward and executes every working order on the way."""

    def __init__(
        self,
        book: Book,
        prices: PriceEngine,
        calendar: MarketCalendar,
        seed: int,
        now: Callable[[], datetime],
        fidelity: Fidelity | None = None,
    ) -> None:
        self.book = book
        self.prices = prices
        self.calendar = calendar
        self.now = now
        self.rng = random.Random(seed)
        self.partial_fill_probability = 0.0
        self.partial_fill_delay = 0.05
        self.defer: Defer = _immediate
        self.fidelity = fidelity or Fidelity()
        self.on_aged: AgedHook | None = None
        self.options: OptionHooks | None = None

    # ---- time ---------------------------------------------------------------------------
    def catch_up(self, last: datetime, now: datetime) -> None:
        """Process every price point and session boundary in (last, now]."""
        if now <= last:
            return
        cursor = last
        aging = gtc_cancel_times(last, now)
        points = sorted({*self.calendar.boundaries_between(last, now), *aging})
        for boundary in [*points, now]:
            self._walk(cursor, boundary)
            if boundary in aging:
                self._age_gtc(boundary)
            self._on_boundary(boundary)
            self._evaluate_all(boundary)
            cursor = boundary

    def _walk(self, start: datetime, end: datetime) -> None:
        """Evaluate working orders at each minute and price jump strictly inside (start, end)."""
        middle = start + (end - start) / 2
        if self._phase(middle) == "closed":
            return
        symbols = {
            o.symbol for o in self.book.open_orders() if o.working and o.asset_class == "us_equity"
        }
        if not symbols:
            return
        points: set[datetime] = set()
        minute = (start + timedelta(minutes=1)).replace(second=0, microsecond=0)
        while minute < end:
            if minute > start:
                points.add(minute)
            minute += timedelta(minutes=1)
        for symbol in symbols:
            points.update(self.prices.path(symbol).anchors_between(start, end))
        for point in sorted(points):
            self._evaluate_all(point, symbols)

    def _phase(self, when: datetime) -> str:
        if self.calendar.is_open(when):
            return "regular"
        return "extended" if self.calendar.extended_session_for(when) else "closed"

    def _on_boundary(self, when: datetime) -> None:
        session = self.calendar.session_on(when.astimezone(NEW_YORK).date())
        if session is None:
            return
        if when == session.pre_open:
            self._release_accepted(when, extended_only=True)
        elif when == session.open:
            self._open_auction(session, when)
        elif when == session.close:
            self._close_auction(session, when)
        elif when == session.post_close:
            self._expire(when, lambda o: o.extended_hours and _day_of(o, session))

    def _release_accepted(self, when: datetime, extended_only: bool) -> None:
        for order in self.book.open_orders():
            if not order.is_open or order.status is not Status.ACCEPTED or order.parent_id:
                continue
            if extended_only and not order.extended_hours:
                continue
            self._make_new(order, when)

    def _age_gtc(self, when: datetime) -> None:
        """Alpaca cancels GTC orders at 16:15 New York on their expires_at date (aged orders)."""
        if self.on_aged is None:
            return
        for order in self.book.open_orders():
            if order.pending is not None or order.replacement_in_flight:
                continue  # a cancel/replace in flight settles it first; checked again tomorrow
            deadline = gtc_deadline(order)
            if deadline is not None and deadline <= when:
                self.on_aged(order, when)

    def _open_auction(self, session: Session, when: datetime) -> None:
        for order in self.book.open_orders():
            if order.status is Status.DONE_FOR_DAY:
                self.resume(order, when)  # done for the day: it works again the next session
        self._release_accepted(when, extended_only=False)
        for order in self.book.open_orders():
            if order.is_open and order.time_in_force is TimeInForce.OPG and order.working:
                self.evaluate(order, when)
                if order.is_open:
                    self._cancel(order, when)

    def _close_auction(self, session: Session, when: datetime) -> None:
        for order in self.book.open_orders():
            if (
                order.time_in_force is TimeInForce.CLS
                and order.status is Status.NEW
                and not order.leg_ids
            ):
                order.working = True
                self.evaluate(order, when, auction=True)
                if order.is_open:
                    self._cancel(order, when)
        self._expire(when, lambda o: not o.extended_hours and _day_of(o, session))
        if self.options is not None:
            self.options.on_close(session, when)  # expiry: exercise, assignment, worthless
        self.book.account.last_equity = self.equity(when)
        self.book.account.last_equity_day = session.day

    def _expire(self, when: datetime, which: Callable[[OrderRecord], bool]) -> None:
        for order in self.book.open_orders():
            if order.is_open and order.time_in_force is TimeInForce.DAY and which(order):
                self.book.set_status(order, Status.EXPIRED, when, "expired")
                self._after_terminal(order, when)

    # ---- routing ------------------------------------------------------------------------
    def route(self, order: OrderRecord) -> None:
        """Take a just-accepted order live if its session allows, else leave it queued."""
        if order.status is not Status.ACCEPTED:
            return
        now = self.now()
        phase = self._phase(now)
        tif = order.time_in_force
        if tif is TimeInForce.OPG and phase == "regular":
            self.book.set_status(order, Status.REJECTED, now, "rejected")
            return
        if tif is TimeInForce.CLS:
            self._route_close_order(order, now, phase)
            return
        if phase == "regular" or (phase == "extended" and order.extended_hours):
            if tif is TimeInForce.OPG:
                return
            self._make_new(order, now)
            self.evaluate(order, now)
            if tif in (TimeInForce.IOC, TimeInForce.FOK) and order.is_open:
                self._cancel(order, now)

    def _route_close_order(self, order: OrderRecord, now: datetime, phase: str) -> None:
        session = self.calendar.trading_session_for(now)
        if phase == "regular" and session and now > session.close - timedelta(minutes=10):
            self.book.set_status(order, Status.REJECTED, now, "rejected")
            return
        order.status = Status.NEW
        order.updated_at = now
        self.book.emit("new", order, now)

    def resume(self, order: OrderRecord, when: datetime) -> None:
        """Return an order parked in a non-working status to the status it had before."""
        status = order.paused_from or Status.NEW
        order.paused_from = None
        if status is Status.NEW and order.filled_qty > 0:
            status = Status.PARTIALLY_FILLED
        order.status = status
        order.updated_at = when
        if status is Status.ACCEPTED:
            self.route(order)
            return
        order.working = order.activated and order.time_in_force is not TimeInForce.CLS
        if status in (Status.NEW, Status.PARTIALLY_FILLED):
            self.book.emit("new", order, when)
        self.evaluate(order, when)

    def _make_new(self, order: OrderRecord, when: datetime) -> None:
        order.status = Status.NEW
        order.working = order.time_in_force is not TimeInForce.CLS
        order.updated_at = when
        self.book.emit("new", order, when)
        if order.order_class is OrderClass.OCO:
            for leg in self.book.legs_of(order):
                leg.working = leg.is_open

    # ---- execution ----------------------------------------------------------------------
    def _evaluate_all(self, when: datetime, symbols: set[str] | None = None) -> None:
        for order in self.book.open_orders():
            if order.is_open and order.working and (symbols is None or order.symbol in symbols):
                self.evaluate(order, when)

    def evaluate(self, order: OrderRecord, when: datetime, auction: bool = False) -> None:
        """Fill `order` (fully or partly) if it is marketable at `when`."""
        if not order.working or not order.is_open or (order.remaining <= 0 and order.qty):
            return
        phase = self._phase(when)
        if not auction and (
            phase == "closed" or (phase == "extended" and not order.extended_hours)
        ):
            return
        if order.asset_class == "us_option":
            if self.options is not None and phase == "regular":
                self.options.evaluate(order, when)
            return
        quote = self.prices.quote(order.symbol, when)
        price = self._execution_price(order, quote, phase)
        if price is None:
            return
        if order.qty is None and order.notional is not None:
            order.qty = (order.notional / price).quantize(Decimal("0.000000001"), ROUND_DOWN)
        qty = order.remaining
        partial = self._partial_size(order)
        if partial is not None:
            qty = partial
        self.book.apply_fill(order, qty, price, when)
        self.after_fill(order, when)
        if order.is_open and order.time_in_force in (TimeInForce.IOC, TimeInForce.FOK):
            self._cancel(order, when)
        elif order.is_open:
            order_id = order.id
            self.defer(self.partial_fill_delay, lambda: self._retry(order_id))

    def _retry(self, order_id: object) -> None:
        order = self.book.orders.get(order_id)  # type: ignore[call-overload]
        if order is not None:
            self.evaluate(order, self.now())

    def _partial_size(self, order: OrderRecord) -> Decimal | None:
        remaining = order.remaining
        if (
            self.partial_fill_probability <= 0
            or order.time_in_force is TimeInForce.FOK
            or remaining < 2
            or remaining != remaining.to_integral_value()
            or self.rng.random() >= self.partial_fill_probability
        ):
            return None
        return Decimal(self.rng.randint(1, int(remaining) - 1))

    def _execution_price(self, order: OrderRecord, quote: Quote, phase: str) -> Decimal | None:
        buy = order.side is Side.BUY
        far = quote.ask if buy else quote.bid
        kind = order.type
        if kind is OrderType.TRAILING_STOP:
            if phase != "regular" or not self._trail_triggered(order, quote.mid):
                return None
            return far
        if kind in (OrderType.STOP, OrderType.STOP_LIMIT) and not order.triggered:
            stop = order.stop_price or ZERO
            if (buy and quote.mid < stop) or (not buy and quote.mid > stop):
                return None
            order.triggered = True
        limit = order.limit_price
        if kind is OrderType.STOP and buy:
            stop = order.stop_price or ZERO
            collar = BUY_STOP_COLLAR_LOW if stop < 50 else BUY_STOP_COLLAR_HIGH
            limit = round_price(stop * collar)
        if limit is None or kind in (OrderType.MARKET,) or (kind is OrderType.STOP and not buy):
            return far
        if buy:
            return far if far <= limit else None
        return far if far >= limit else None

    def _trail_triggered(self, order: OrderRecord, mid: Decimal) -> bool:
        buy = order.side is Side.BUY
        if order.hwm is None or (not buy and mid > order.hwm) or (buy and mid < order.hwm):
            order.hwm = mid
        hwm = order.hwm
        if order.trail_price is not None:
            offset = order.trail_price
        else:
            offset = hwm * (order.trail_percent or ZERO) / Decimal(100)
        order.stop_price = round_price(hwm + offset if buy else hwm - offset)
        return mid >= order.stop_price if buy else mid <= order.stop_price

    # ---- complex orders -----------------------------------------------------------------
    def after_fill(self, order: OrderRecord, when: datetime) -> None:
        """Apply complex-order consequences of a fill: activate legs, cancel or resize peers."""
        if order.leg_ids and order.order_class in (OrderClass.BRACKET, OrderClass.OTO):
            if order.status is Status.FILLED:
                self._activate_legs(order, when)
            return
        peer = self.book.orders.get(order.oco_peer_id) if order.oco_peer_id else None
        if peer is None or not peer.is_open:
            return
        if order.status is Status.FILLED:
            self.cancel_sibling(peer, when)
        else:
            peer.qty = peer.filled_qty + order.remaining
            peer.updated_at = when

    def _activate_legs(self, parent: OrderRecord, when: datetime) -> None:
        legs = self.book.legs_of(parent)
        for leg in legs:
            if not leg.is_open:
                continue
            leg.qty = parent.filled_qty
            leg.activated = True
            leg.working = True
            leg.updated_at = when
            if leg.leg_role is LegRole.TAKE_PROFIT or leg.oco_peer_id is None:
                if leg.pending is not None:
                    leg.pending.resume_status = Status.NEW  # a cancel/replace is in flight
                    continue
                leg.status = Status.NEW
                self.book.emit("new", leg, when)
        for leg in legs:
            self.evaluate(leg, when)

    def _after_terminal(self, order: OrderRecord, when: datetime) -> None:
        """End the legs of a complex entry that ended without filling completely.

        Legs activate only on a complete fill (forum t/3697), so a partly filled entry that
        ends takes its held legs with it: the filled shares stay, with no order on them.
        """
        if not order.leg_ids:
            return
        status = order.status
        if order.order_class is not OrderClass.OCO and status is not Status.EXPIRED:
            status = Status.CANCELED
        for leg in self.book.legs_of(order):
            if not leg.is_open:
                continue
            if status is Status.CANCELED:
                self.cancel_sibling(leg, when)
            else:
                self.book.set_status(leg, status, when, status.value)

    def _cancel(self, order: OrderRecord, when: datetime) -> None:
        self.book.set_status(order, Status.CANCELED, when, "canceled")
        self._after_terminal(order, when)

    def cancel_group(self, order: OrderRecord, when: datetime) -> None:
        """Cancel an order and every other open order of its bracket/OCO/OTO group.

        "Canceling one leg of a bracket order will cancel the other leg too" (forum t/11938).
        """
        self.book.set_status(order, Status.CANCELED, when, "canceled")
        for member in self.book.group_of(order):
            if member.id != order.id and member.is_open:
                self.cancel_sibling(member, when)

    def cancel_sibling(self, order: OrderRecord, when: datetime) -> None:
        """Cancel a group member because another member ended (its event may be skipped).

        The stream may skip the stop leg's `canceled` when the take-profit fills (alpaca-py
        #198); `skip_sibling_cancel_events` reproduces that.
        """
        event = None if self.fidelity.skip_sibling_cancel_events else "canceled"
        self.book.set_status(order, Status.CANCELED, when, event)

    def end(self, order: OrderRecord, when: datetime, status: Status) -> None:
        """End an open order as expired or rejected (the broker's doing, not the client's)."""
        self.book.set_status(order, status, when, status.value)
        self._after_terminal(order, when)

    # ---- valuation ----------------------------------------------------------------------
    def equity(self, when: datetime) -> Decimal:
        """Return cash plus positions marked at the mid price."""
        value = self.book.account.cash
        for symbol, position in self.book.positions.items():
            value += position.qty * self.prices.quote(symbol, when).mid
        if self.options is not None:
            value += self.options.value(when)
        return value


def _day_of(order: OrderRecord, session: Session) -> bool:
    return order.session_day is not None and order.session_day <= session.day
