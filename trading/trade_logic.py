"""TradeWorkflow's decisions as pure functions: frozen inputs and `now` in, a plan out.

Nothing here does I/O; the workflow asks the broker, calls these, and acts on the answer.
The protection rule: whenever the broker holds a position, an active sell stop covers all
of it, judged by the stop's real status at the broker; nothing is decided on UNKNOWN.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

from trading.broker_models import (
    BrokerOrder,
    OrderClass,
    OrderIntent,
    OrderProbe,
    OrderSide,
    OrderStatus,
    OrderType,
    PositionProbe,
    ProbeOutcome,
    SessionDay,
    TimeInForce,
)
from trading.errors import TradingInputError
from trading.ids import MAX_ATTEMPT, Leg, client_order_id
from trading.ledger_records import CloseReason, ExitUrgency, TradeStatus
from trading.models import Frozen, evolve
from trading.ticks import normalize_price, protective_stop_price, tick_size
from trading.trade_models import EntryType, PositionUpdate, TradeSpec

# --- protection ------------------------------------------------------------------------


class Keep(Frozen):
    """The stop is active and covers the whole position."""

    qty: Decimal


class Rescue(Frozen):
    """No working stop: place a new standalone GTC stop for the position."""

    qty: Decimal
    stop_price: Decimal
    why: str


class Resize(Frozen):
    """The stop is active but covers a different quantity: replace it with this qty."""

    order_id: str
    qty: Decimal


class Follow(Frozen):
    """The stop was replaced at the broker (dashboard, earlier tighten): guard the new one."""

    order_id: str


class Flat(Frozen):
    """The broker definitively holds no position in the symbol."""


class Wait(Frozen):
    """Not enough is known (or something is in flight): decide again at the next check."""

    reason: str
    # A cancel or replace settling at the broker (milliseconds on Alpaca): worth a quick second
    # look. An unknown answer, a review or a status not known yet is not: looking every second
    # through those only adds broker calls.
    in_transition: bool = False


ProtectionAction = Keep | Rescue | Resize | Follow | Flat | Wait
_SHORT_TRANSITIONS = frozenset(
    {OrderStatus.PENDING_CANCEL, OrderStatus.PENDING_REPLACE, OrderStatus.PENDING_NEW}
)


def protection_action(
    stop_price: Decimal,
    stop_order_id: str | None,
    position: PositionProbe,
    stop: OrderProbe | None,
) -> ProtectionAction:
    """What to do so the position is covered by an active stop (never acts on UNKNOWN)."""
    if position.outcome is ProbeOutcome.UNKNOWN:
        return Wait(reason=f"position unknown: {position.error or 'no answer'}")
    if position.outcome is ProbeOutcome.ABSENT or position.position is None:
        return Flat()
    qty = position.position.qty
    if qty == 0:
        return Flat()
    if qty < 0:
        return Wait(reason=f"short position {qty}: a long trade's sell stop cannot cover it")
    if stop_order_id is None:
        return Rescue(qty=qty, stop_price=stop_price, why="no stop order")
    if stop is None or stop.outcome is ProbeOutcome.UNKNOWN:
        detail = stop.error if stop is not None and stop.error else "not probed"
        return Wait(reason=f"stop {stop_order_id} unknown: {detail}")
    if stop.outcome is ProbeOutcome.ABSENT or stop.order is None:
        return Rescue(qty=qty, stop_price=stop_price, why=f"stop {stop_order_id} absent")
    order = stop.order
    if order.status is OrderStatus.REPLACED and order.replaced_by:
        return Follow(order_id=order.replaced_by)
    if order.side is not OrderSide.SELL or order.type not in (OrderType.STOP, OrderType.STOP_LIMIT):
        return Rescue(qty=qty, stop_price=stop_price, why=f"order {order.id} is not a sell stop")
    if order.is_active:
        remaining = (order.qty or Decimal(0)) - order.filled_qty
        if remaining == qty:
            return Keep(qty=qty)
        return Resize(order_id=order.id, qty=qty)
    if order.is_terminal:
        return Rescue(
            qty=qty, stop_price=stop_price, why=f"stop {order.id} is {order.status.value}"
        )
    return Wait(
        reason=f"stop {order.id} is {order.status.value} (in transition)",
        in_transition=order.status in _SHORT_TRANSITIONS,
    )


def rescue_backoff(consecutive_failures: int, initial: timedelta, maximum: timedelta) -> timedelta:
    """Delay before the next rescue after this many failures in a row (doubling, capped)."""
    if consecutive_failures <= 0:
        return timedelta(0)
    exponent = min(consecutive_failures - 1, 30)
    delay: timedelta = initial * (2**exponent)
    return min(delay, maximum)


# --- tighten ---------------------------------------------------------------------------


def validate_tighten(current_stop: Decimal, new_price: Decimal, market: Decimal | None) -> Decimal:
    """The tick-normalized new stop, or TradingInputError if it would not tighten a long."""
    if not new_price.is_finite() or new_price <= 0:
        raise TradingInputError(f"stop price must be a positive number, got {new_price}")
    normalized = protective_stop_price(new_price)
    if normalized <= current_stop:
        raise TradingInputError(
            f"stop {normalized} would not tighten the current stop {current_stop}: "
            "a stop only moves up"
        )
    if market is not None and normalized > market - tick_size(market):
        raise TradingInputError(f"stop {normalized} must stay below the market price {market}")
    return normalized


# --- entry -----------------------------------------------------------------------------


def entry_intent(spec: TradeSpec, attempt: int) -> OrderIntent:
    """The entry: a GTC bracket with a take-profit, else an OTO carrying only the stop."""
    with_take_profit = spec.take_profit_price is not None
    return OrderIntent(
        client_order_id=client_order_id(spec.trade_id, Leg.ENTRY, attempt),
        symbol=spec.symbol,
        qty=spec.qty,
        side=OrderSide.BUY,
        type=OrderType.LIMIT if spec.entry_type is EntryType.LIMIT else OrderType.MARKET,
        limit_price=spec.limit_price if spec.entry_type is EntryType.LIMIT else None,
        time_in_force=TimeInForce.GTC,
        order_class=OrderClass.BRACKET if with_take_profit else OrderClass.OTO,
        stop_loss_stop_price=spec.stop_price,
        take_profit_limit_price=spec.take_profit_price,
    )


def protective_legs(order: BrokerOrder) -> tuple[BrokerOrder | None, BrokerOrder | None]:
    """(stop leg, take-profit leg) of a bracket/OTO/OCO order."""
    stop = next(
        (leg for leg in order.legs if leg.type in (OrderType.STOP, OrderType.STOP_LIMIT)), None
    )
    take_profit = next((leg for leg in order.legs if leg.type is OrderType.LIMIT), None)
    return stop, take_profit


class EntryWorking(Frozen):
    """The entry is still working (maybe partly filled) and not yet due."""

    filled_qty: Decimal


class EntryFilled(Frozen):
    """The entry filled (completely, or partly before it ended); the trade is open."""

    filled_qty: Decimal
    avg_price: Decimal
    complete: bool


class EntryDead(Frozen):
    """The entry ended with nothing filled."""

    reason: CloseReason


class EntryDue(Frozen):
    """The entry did not fill in time (or fills too slowly to leave shares bare): cancel the rest.

    On Alpaca, cancelling a partly filled entry cancels its held legs too: the filled shares
    are then protected by a standalone stop (see the protection rules).
    """

    partial: bool = False


EntryStep = EntryWorking | EntryFilled | EntryDead | EntryDue


def entry_step(
    order: BrokerOrder,
    now: datetime,
    deadline: datetime | None,
    partial_since: datetime | None = None,
    partial_grace: timedelta | None = None,
) -> EntryStep:
    """Where the entry order stands, given the broker's view of it and the entry deadline.

    A partly filled entry leaves its filled shares without a working stop (bracket and OTO legs
    wait for a complete fill): after `partial_grace` from the first partial fill it is due.
    """
    if order.status is OrderStatus.FILLED:
        return EntryFilled(
            filled_qty=order.filled_qty,
            avg_price=order.filled_avg_price or Decimal(0),
            complete=True,
        )
    if order.is_terminal:
        if order.filled_qty > 0 and order.filled_avg_price is not None:
            return EntryFilled(
                filled_qty=order.filled_qty, avg_price=order.filled_avg_price, complete=False
            )
        if order.status is OrderStatus.REJECTED:
            return EntryDead(reason=CloseReason.ENTRY_FAILED)
        return EntryDead(reason=CloseReason.ENTRY_CANCELLED)
    if deadline is not None and now >= deadline:
        return EntryDue()
    if (
        order.filled_qty > 0
        and partial_since is not None
        and partial_grace is not None
        and now - partial_since >= partial_grace
    ):
        return EntryDue(partial=True)
    return EntryWorking(filled_qty=order.filled_qty)


# --- add-ons ---------------------------------------------------------------------------

# An add-on is a further entry of its trade: its client_order_id is an entry id whose attempt
# comes from the signal key, at ADD_ON_FIRST_ATTEMPT or above (the entry's own attempts stay
# below), so BrokerSync routes its events to the trade like the entry's.
ADD_ON_FIRST_ATTEMPT = 10_000
ENTRY_PRICE_PLACES = Decimal("0.0001")


def add_on_refusal(
    status: TradeStatus, exit_planned: bool, protect_only: bool, qty: Decimal
) -> str | None:
    """Why a trade cannot take an add-on now, or None: only an open, entered trade can."""
    if protect_only:
        return "cannot add to an external position"
    if status is not TradeStatus.OPEN:
        return f"cannot add to a trade in {status.value}"
    if exit_planned:
        return "cannot add to a trade with an exit planned"
    if not qty.is_finite() or qty <= 0 or qty != qty.to_integral_value():
        return f"an add-on buys a whole number of shares above 0, not {qty}"
    return None


def add_on_client_order_id(trade_id: str, signal_key: str, taken: Collection[str]) -> str:
    """The add-on's client_order_id: the same trade and signal key always give the same one.

    The attempt is a digest of the signal key; when an earlier add-on of the trade (`taken`)
    already has it, the next free attempt is used - `taken` only grows, so the choice is stable.
    """
    span = MAX_ATTEMPT - ADD_ON_FIRST_ATTEMPT + 1
    digest = hashlib.sha256(signal_key.encode()).digest()
    start = int.from_bytes(digest[:8], "big") % span
    for step in range(span):
        attempt = ADD_ON_FIRST_ATTEMPT + (start + step) % span
        candidate = client_order_id(trade_id, Leg.ENTRY, attempt)
        if candidate not in taken:
            return candidate
    raise TradingInputError(f"trade {trade_id} has no add-on client_order_id left")


def add_on_intent(
    client_order_id: str, symbol: str, qty: Decimal, stop_price: Decimal
) -> OrderIntent:
    """A day market buy whose OTO stop-loss leg sells the bought shares at the trade's stop.

    Alpaca refuses a simple buy while the trade's sell stop is open (wash-trade rule: "potential
    wash trade detected. use complex orders"); bracket, OCO and OTO orders are exempt.
    """
    return OrderIntent(
        client_order_id=client_order_id,
        symbol=symbol,
        qty=qty,
        side=OrderSide.BUY,
        type=OrderType.MARKET,
        time_in_force=TimeInForce.DAY,
        order_class=OrderClass.OTO,
        stop_loss_stop_price=stop_price,
    )


def add_on_too_large(qty: Decimal, ask: Decimal | None, max_notional: Decimal | None) -> str | None:
    """Why `qty` at the ask would cost more than `max_notional` (None: within it, or no cap).

    With a cap but no ask the cost cannot be bounded: refused.
    """
    if max_notional is None:
        return None
    if ask is None or ask <= 0:
        return f"no ask to bound the add-on's cost by {max_notional}"
    cost = qty * ask
    if cost > max_notional:
        return f"add-on of {qty} at {ask} costs {cost}, above max_notional {max_notional}"
    return None


def average_entry(
    qty: Decimal, price: Decimal | None, added_qty: Decimal, added_price: Decimal
) -> Decimal:
    """The average entry price of `qty` at `price` plus `added_qty` at `added_price`."""
    if price is None or qty <= 0:
        return added_price
    total = qty + added_qty
    average = (qty * price + added_qty * added_price) / total
    return average.quantize(ENTRY_PRICE_PLACES, rounding=ROUND_HALF_EVEN)


# --- exits -----------------------------------------------------------------------------


def _sell_position(trade_id: str, leg: Leg, attempt: int, symbol: str, qty: Decimal) -> OrderIntent:
    """A day market sell of `qty` under the trade's client_order_id for `leg`.

    Every order that guards or closes a position starts as this one.
    """
    return OrderIntent(
        client_order_id=client_order_id(trade_id, leg, attempt),
        symbol=symbol,
        qty=qty,
        side=OrderSide.SELL,
        type=OrderType.MARKET,
        time_in_force=TimeInForce.DAY,
    )


def rescue_intent(
    trade_id: str,
    symbol: str,
    qty: Decimal,
    stop_price: Decimal,
    attempt: int,
    take_profit_price: Decimal | None = None,
) -> OrderIntent:
    """A GTC sell stop for the whole position; with a take-profit, an OCO that restores both.

    The stop never depends on a take-profit left over: a take-profit lost with its group (or
    cancelled to free the stop's shares) comes back as the OCO's other leg.
    """
    stop = evolve(
        _sell_position(trade_id, Leg.RESCUE, attempt, symbol, qty),
        type=OrderType.STOP,
        stop_price=stop_price,
        time_in_force=TimeInForce.GTC,
    )
    if take_profit_price is None:
        return stop
    return evolve(
        stop,
        type=OrderType.LIMIT,
        stop_price=None,
        limit_price=take_profit_price,
        order_class=OrderClass.OCO,
        take_profit_limit_price=take_profit_price,
        stop_loss_stop_price=stop_price,
    )


def market_exit_intent(trade_id: str, symbol: str, qty: Decimal, attempt: int) -> OrderIntent:
    """A market sell for the whole position (day)."""
    return _sell_position(trade_id, Leg.EXIT, attempt, symbol, qty)


def oco_exit_intent(
    trade_id: str, symbol: str, qty: Decimal, limit: Decimal, stop_price: Decimal, attempt: int
) -> OrderIntent:
    """An OCO exit: the market exit made a limit sell at `limit`, with the stop as its other leg."""
    return evolve(
        market_exit_intent(trade_id, symbol, qty, attempt),
        type=OrderType.LIMIT,
        limit_price=normalize_price(limit),
        order_class=OrderClass.OCO,
        take_profit_limit_price=normalize_price(limit),
        stop_loss_stop_price=stop_price,
    )


class ExitWindow(Frozen):
    """When a next-open exit may run."""

    session: SessionDay
    start: datetime
    end: datetime


def next_open_exit_window(
    sessions: list[SessionDay], now: datetime, start_after: timedelta, end_after: timedelta
) -> ExitWindow:
    """The window after the first session opening strictly after `now` (clipped to its close)."""
    if end_after <= start_after:
        raise TradingInputError("the exit window must end after it starts")
    for session in sorted(sessions, key=lambda day: day.open):
        if session.open > now:
            start = session.open + start_after
            end = min(session.open + end_after, session.close)
            if end <= start:
                continue  # a session too short for the window
            return ExitWindow(session=session, start=start, end=end)
    raise TradingInputError(f"no session opens after {now.isoformat()} in the calendar given")


def close_reason_for(
    stop: BrokerOrder | None,
    take_profit: BrokerOrder | None,
    exit_order: BrokerOrder | None,
    exit_urgency: ExitUrgency | None,
) -> CloseReason:
    """Why a flat position ended: the leg that filled, else somebody else closed it."""
    if exit_order is not None:
        oco_stop, _ = protective_legs(exit_order)
        if oco_stop is not None and oco_stop.filled_qty > 0:
            return CloseReason.STOP_FILLED
        if exit_order.filled_qty > 0:
            if exit_urgency is ExitUrgency.IMMEDIATE:
                return CloseReason.FORCE_EXIT
            return CloseReason.EXIT_FILLED
    if stop is not None and stop.filled_qty > 0:
        return CloseReason.STOP_FILLED
    if take_profit is not None and take_profit.filled_qty > 0:
        return CloseReason.TAKE_PROFIT
    return CloseReason.EXTERNAL_CLOSE


def exit_price_of(*orders: BrokerOrder | None) -> Decimal | None:
    """The fill price of the first order (or OCO leg) that filled."""
    for order in orders:
        if order is None:
            continue
        for candidate in (order, *order.legs):
            if candidate.filled_qty > 0 and candidate.filled_avg_price is not None:
                return candidate.filled_avg_price
    return None


def realized_pnl(entry: Decimal | None, exit_price: Decimal | None, qty: Decimal) -> Decimal | None:
    """Profit of a long: (exit - entry) x qty, when both prices are known."""
    if entry is None or exit_price is None:
        return None
    return (exit_price - entry) * qty


def confirmed_by_snapshot(
    snapshot: PositionUpdate | None,
    now: datetime,
    max_age: timedelta,
    position_qty: Decimal,
    stop_order_id: str | None,
    terminal_since: frozenset[str],
) -> bool:
    """True when a fresh BrokerSync snapshot shows the position covered by our active stop.

    Only ever used to confirm (no broker call needed); a stale snapshot, a different
    quantity, a missing or inactive stop, or a stream event saying the stop ended since,
    all send the trade to ask the broker itself.
    """
    if snapshot is None or stop_order_id is None or stop_order_id in terminal_since:
        return False
    if now - snapshot.observed_at > max_age or position_qty <= 0:
        return False
    if snapshot.qty != position_qty:
        return False
    orders = [*snapshot.open_orders, *(leg for o in snapshot.open_orders for leg in o.legs)]
    stop = next((o for o in orders if o.id == stop_order_id), None)
    return (
        stop is not None
        and stop.is_active
        and stop.type in (OrderType.STOP, OrderType.STOP_LIMIT, OrderType.TRAILING_STOP)
        and (stop.qty or Decimal(0)) - stop.filled_qty >= position_qty
    )
