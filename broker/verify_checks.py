"""The checks of `broker verify`, each one broker behaviour the guard relies on.

Expectations are Alpaca's documented behaviour (Trading API reference, "Orders at Alpaca",
the forum and SDK threads collected for the paper broker), not what any one broker does today.
Each check is a small function over a VerifySession; the ones that share an order get it from
`_once`, so a bracket placed for "legs are held" is the one "group cancel" later cancels.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any
from uuid import uuid4
from zoneinfo import ZoneInfo

from alpaca.common.exceptions import APIError
from alpaca.trading.enums import OrderSide as SdkSide
from alpaca.trading.enums import TimeInForce as SdkTimeInForce
from alpaca.trading.models import Calendar, Clock
from alpaca.trading.requests import (
    GetCalendarRequest,
    LimitOrderRequest,
    ReplaceOrderRequest,
    StopOrderRequest,
)

from broker.verify_session import (
    NEVER_FILLS_BUY,
    NEVER_FILLS_SELL,
    BrokerAnswer,
    Observed,
    Skip,
    VerifySession,
    answer_of,
    failed,
    passed,
    verdict_of,
)
from broker.verify_stream import stream_events
from trading.broker_models import (
    BrokerOrder,
    OrderClass,
    OrderSide,
    OrderStatus,
    OrderType,
    ProbeOutcome,
)
from trading.ticks import tick_size

NEW_YORK = ZoneInfo("America/New_York")
HIDDEN_LEGS_NOTE = (
    "held legs are hidden from status=open here; the guard tolerates this: it probes by id "
    "the orders the ledger knows and never concludes 'no stop' from a listing"
)


class Needs(StrEnum):
    """What a check needs before it can run."""

    NOTHING = "nothing"
    OPEN_MARKET = "open_market"
    POSITION = "position"


@dataclass(frozen=True)
class Check:
    """One assumption, how to observe it, and the guard behaviour that relies on it."""

    name: str
    assumption: str
    expected: str
    affects: str
    probe: Callable[[VerifySession], Observed]
    needs: Needs = Needs.NOTHING


# ---- shared orders ----------------------------------------------------------------------
def _once(session: VerifySession, key: str, make: Callable[[], BrokerOrder]) -> BrokerOrder:
    """The order several checks share, made on first use (a failure is remembered too)."""
    if key not in session.shared:
        try:
            session.shared[key] = make()
        except Exception as exc:
            session.shared[key] = exc
    found = session.shared[key]
    if isinstance(found, BaseException):
        raise found
    order: BrokerOrder = found
    return order


def far_buy_limit(session: VerifySession) -> BrokerOrder:
    """A one-share buy limit at half the price: a resting order that never fills."""
    return _once(
        session,
        "far_buy",
        lambda: session.place(
            session.intent(OrderSide.BUY, OrderType.LIMIT, limit=session.price(NEVER_FILLS_BUY))
        ),
    )


def unfilled_bracket(session: VerifySession) -> BrokerOrder:
    """A one-share buy-limit bracket far below the market: its entry never fills."""
    return _once(
        session,
        "unfilled_bracket",
        lambda: session.place(
            session.intent(
                OrderSide.BUY,
                OrderType.LIMIT,
                limit=session.price(NEVER_FILLS_BUY),
                order_class=OrderClass.BRACKET,
                take_profit=session.price("0.55"),
                stop_loss=session.price("0.45"),
            )
        ),
    )


def filled_bracket(session: VerifySession) -> BrokerOrder:
    """One share bought with a market bracket (exits far away), once the entry has filled."""

    def buy() -> BrokerOrder:
        # The run's resting buys would make the sells below wash trades: end them first.
        session.cancel_open_orders()
        order = session.place(
            session.intent(
                OrderSide.BUY,
                OrderType.MARKET,
                order_class=OrderClass.BRACKET,
                take_profit=session.price(NEVER_FILLS_SELL),
                stop_loss=session.price(NEVER_FILLS_BUY),
            )
        )
        final, seen = session.wait_for(
            order.id, lambda o: o.status is OrderStatus.FILLED or o.is_terminal, 20.0
        )
        if final.status is not OrderStatus.FILLED:
            raise Skip(f"the 1-share bracket entry did not fill within 20 s ({_path(seen)})")
        return final

    return _once(session, "filled_bracket", buy)


def _legs(order: BrokerOrder) -> tuple[BrokerOrder | None, BrokerOrder | None]:
    """(take-profit, stop-loss) of a bracket: legs are told apart by type, not client id."""
    take = [leg for leg in order.legs if leg.type is OrderType.LIMIT]
    stop = [leg for leg in order.legs if leg.type in (OrderType.STOP, OrderType.STOP_LIMIT)]
    return (take[-1] if take else None), (stop[-1] if stop else None)


def _path(statuses: list[str]) -> str:
    return " -> ".join(statuses) or "nothing"


def _status(order: BrokerOrder | None) -> str:
    return order.status.value if order is not None else "missing"


def _limit(session: VerifySession, side: SdkSide, price: Decimal) -> LimitOrderRequest:
    return LimitOrderRequest(
        symbol=session.symbol,
        qty=1,
        side=side,
        time_in_force=SdkTimeInForce.DAY,
        limit_price=float(price),
        client_order_id=session.client_order_id(),
    )


def _offset(value: datetime) -> str:
    offset = value.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


# ---- clock, calendar, headers, 404 ------------------------------------------------------
def clock_in_new_york(session: VerifySession) -> Observed:
    """/v2/clock: New York offsets, 09:30 opens, 16:00/13:00 closes, consistent is_open."""
    raw: Any = session.client_call(session.raw.client.get_clock)
    missing = [f for f in ("timestamp", "is_open", "next_open", "next_close") if f not in raw]
    if missing:
        return failed(f"fields missing: {', '.join(missing)}")
    clock = Clock(**raw)
    problems = []
    for name in ("timestamp", "next_open", "next_close"):
        value: datetime = getattr(clock, name)
        if value.tzinfo is None:
            problems.append(f"{name} has no UTC offset")
        elif value.utcoffset() != value.astimezone(NEW_YORK).utcoffset():
            problems.append(f"{name} offset {_offset(value)} is not New York's")
    opens = clock.next_open.astimezone(NEW_YORK).strftime("%H:%M")
    closes = clock.next_close.astimezone(NEW_YORK).strftime("%H:%M")
    if opens != "09:30":
        problems.append(f"next open at {opens}")
    if closes not in ("16:00", "13:00"):
        problems.append(f"next close at {closes}")
    if clock.is_open != (clock.next_close < clock.next_open):
        problems.append("is_open disagrees with next_open/next_close")
    observed = (
        f"timestamp {_offset(clock.timestamp)}, next open {clock.next_open:%Y-%m-%d} {opens}, "
        f"next close {closes} New York, market {'open' if clock.is_open else 'closed'}"
    )
    return verdict_of(not problems, "; ".join([observed, *problems]))


def calendar_sessions(session: VerifySession) -> Observed:
    """/v2/calendar over the last 400 days: 09:30 opens, 16:00 or 13:00 closes, no weekends."""
    start, end = session.today - timedelta(days=400), session.today + timedelta(days=30)
    rows: Any = session.client_call(
        lambda: session.raw.client.get_calendar(GetCalendarRequest(start=start, end=end))
    )
    if not isinstance(rows, list) or not rows:
        return failed(f"no sessions between {start} and {end}")
    days = [Calendar(**dict(row)) for row in rows]  # alpaca-py must read every row
    opens = sorted({str(row.get("open")) for row in rows})
    closes = [str(row.get("close")) for row in rows]
    early = [str(row.get("date")) for row in rows if row.get("close") == "13:00"]
    weekend = [str(day.date) for day in days if day.date.weekday() >= 5]
    problems = []
    if opens != ["09:30"]:
        problems.append(f"opens at {', '.join(opens)}")
    odd = sorted(set(closes) - {"16:00", "13:00"})
    if odd:
        problems.append(f"closes at {', '.join(odd)}")
    if not early:
        problems.append("no early close (13:00) in the range")
    if weekend:
        problems.append(f"weekend sessions {', '.join(weekend[:3])}")
    observed = (
        f"{len(rows)} sessions {days[0].date}..{days[-1].date}: open {', '.join(opens)}; "
        f"close 16:00 x{closes.count('16:00')}, 13:00 x{len(early)}"
        + (f" (e.g. {early[-1]})" if early else "")
    )
    return verdict_of(not problems, "; ".join([observed, *problems]))


def rate_limit_headers(session: VerifySession) -> Observed:
    """X-RateLimit-Limit/-Remaining/-Reset on a /v2 answer, Reset in UNIX seconds."""
    session.client_call(session.raw.client.get_clock)
    headers = {k.lower(): v for k, v in session.raw.rate_limit_headers.items()}
    names = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")
    missing = [n for n in names if n not in headers]
    if missing:
        return failed(f"missing {', '.join(missing)}; present: {', '.join(headers) or 'none'}")
    try:
        limit, remaining, reset = (int(headers[n]) for n in names)
    except ValueError:
        return failed(f"not integers: {headers}")
    in_s = reset - time.time()
    observed = f"limit {limit}, remaining {remaining}, reset in {in_s:.0f} s"
    sane = 0 <= remaining <= limit and -5 <= in_s <= 3600
    return verdict_of(sane, observed if sane else observed + " (not a UNIX time within the hour)")


def not_found_is_404(session: VerifySession) -> Observed:
    """An unknown order id and an unheld symbol answer 404 40410000; the probes read absent."""
    unknown = str(uuid4())
    answers: list[BrokerAnswer] = []
    for call in (
        lambda: session.raw.client.get_order_by_id(unknown),
        lambda: session.raw.client.get_open_position(session.symbol),
    ):
        try:
            session.client_call(call)
        except APIError as exc:
            answers.append(answer_of(exc))
            continue
        return failed("an answer came back for an order id or a position that does not exist")
    order_probe = session.gateway.probe_order(unknown).outcome
    position_probe = session.gateway.probe_position(session.symbol).outcome
    ok = all(a.status == 404 and a.code == 40410000 for a in answers) and (
        order_probe is position_probe is ProbeOutcome.ABSENT
    )
    return verdict_of(
        ok,
        f"order: {answers[0].describe()}, probe {order_probe.value}; "
        f"position: {answers[1].describe()}, probe {position_probe.value}",
    )


# ---- error answers ----------------------------------------------------------------------
def duplicate_client_order_id(session: VerifySession) -> Observed:
    """A second POST with a used client_order_id: 422 40010001, and the lookup finds the first."""
    first = far_buy_limit(session)
    again = session.submit_raw(
        LimitOrderRequest(
            symbol=session.symbol,
            qty=1,
            side=SdkSide.BUY,
            time_in_force=SdkTimeInForce.DAY,
            limit_price=float(first.limit_price or session.price(NEVER_FILLS_BUY)),
            client_order_id=first.client_order_id,
        )
    )
    if not isinstance(again, BrokerAnswer):
        return failed(f"a second order {again.get('id')} was accepted with the same id")
    found = session.gateway.get_order_by_client_id(first.client_order_id)
    same = found.id == first.id
    ok = again.status == 422 and again.code == 40010001 and "unique" in again.message.lower()
    lookup = "found the first order" if same else f"found another order {found.id}"
    return verdict_of(ok and same, f"{again.describe()}; lookup by client_order_id {lookup}")


def sub_penny_refused(session: VerifySession) -> Observed:
    """A limit price off the tick grid: 422 42210000 naming the sub-penny increment."""
    base = session.price(NEVER_FILLS_BUY)
    off_grid = base + tick_size(base) * Decimal("0.3")
    answer = session.submit_raw(_limit(session, SdkSide.BUY, off_grid))
    if not isinstance(answer, BrokerAnswer):
        return failed(f"accepted at limit {answer.get('limit_price')} (price {off_grid} sent)")
    ok = answer.status == 422 and answer.code == 42210000 and "sub-penny" in answer.message
    return verdict_of(ok and answer.maps_to == "InvalidPrice", f"{answer.describe()}")


def wash_trade_refused(session: VerifySession) -> Observed:
    """A sell stop while the run's buy limit rests: refused as a potential wash trade."""
    far_buy_limit(session)
    answer = session.submit_raw(
        StopOrderRequest(
            symbol=session.symbol,
            qty=1,
            side=SdkSide.SELL,
            time_in_force=SdkTimeInForce.DAY,
            stop_price=float(session.price("0.4")),
            client_order_id=session.client_order_id(),
        )
    )
    if not isinstance(answer, BrokerAnswer):
        return failed(f"the opposite-side sell stop was accepted ({answer.get('status')})")
    ok = answer.status in (403, 422) and "wash trade" in answer.message.lower()
    return verdict_of(ok and answer.maps_to == "WashTrade", answer.describe())


# ---- brackets: legs, listing, replace rules, group cancel -------------------------------
def bracket_legs_held(session: VerifySession) -> Observed:
    """An unfilled bracket nests both legs under the entry, each held, each for its qty."""
    parent = session.gateway.get_order(unfilled_bracket(session).id)
    take, stop = _legs(parent)
    observed = (
        f"entry {parent.status.value}; {len(parent.legs)} legs: take-profit {_status(take)}, "
        f"stop-loss {_status(stop)}"
    )
    ok = (
        take is not None
        and stop is not None
        and take.status is stop.status is OrderStatus.HELD
        and take.qty == stop.qty == parent.qty
    )
    return verdict_of(ok, observed)


def held_legs_listed(session: VerifySession) -> Observed:
    """The entry is in status=open; its held legs are listed too, or at least found by id."""
    parent = session.gateway.get_order(unfilled_bracket(session).id)
    if not parent.legs:
        return failed("the entry has no legs to look for")
    listed = {order.id for order in session.gateway.get_open_orders()}
    if parent.id not in listed:
        return failed(f"the working entry ({parent.status.value}) is missing from status=open")
    hidden = [leg for leg in parent.legs if leg.id not in listed]
    if not hidden:
        return passed(f"entry and its {len(parent.legs)} held legs listed in status=open")
    return passed(
        f"{len(hidden)} of {len(parent.legs)} held legs hidden from status=open, found by id",
        note=HIDDEN_LEGS_NOTE,
    )


def bracket_leg_qty_refused(session: VerifySession) -> Observed:
    """PATCH of a bracket stop leg's qty is refused: only a leg's price may change."""
    _, stop = _legs(session.gateway.get_order(unfilled_bracket(session).id))
    if stop is None:
        raise Skip("the bracket has no stop-loss leg (see bracket_legs_held)")
    # No client_order_id: Alpaca ignores it on legs, and a refusal must be about the qty.
    answer = session.replace_raw(stop.id, ReplaceOrderRequest(qty=2))
    if not isinstance(answer, BrokerAnswer):
        return failed(f"replaced: new leg {answer.get('id')} with qty {answer.get('qty')}")
    refused = answer.status is not None and 400 <= answer.status < 500
    return verdict_of(refused, f"refused: {answer.describe()}")


def group_cancel_entry(session: VerifySession) -> Observed:
    """Cancelling an unfilled bracket entry cancels its held legs."""
    entry = unfilled_bracket(session)
    session.gateway.cancel_order(entry.id)
    final, seen = session.wait_for(
        entry.id, lambda o: o.is_terminal and all(leg.is_terminal for leg in o.legs)
    )
    take, stop = _legs(final)
    ok = (
        final.status is OrderStatus.CANCELED
        and take is not None
        and stop is not None
        and take.status is stop.status is OrderStatus.CANCELED
    )
    return verdict_of(
        ok,
        f"entry {_path(seen)}; take-profit {_status(take)}, stop-loss {_status(stop)}",
    )


def cancel_final_order(session: VerifySession) -> Observed:
    """DELETE of an order that already ended: 422 (or 204), read as already final."""
    entry = session.gateway.get_order(unfilled_bracket(session).id)
    if not entry.is_terminal:
        raise Skip(f"the bracket entry is still {entry.status.value} (see group_cancel_entry)")
    try:
        session.client_call(lambda: session.raw.client.cancel_order_by_id(entry.id))
        raw = "answered success"
        status_ok = True
    except APIError as exc:
        answer = answer_of(exc)
        raw = answer.describe()
        status_ok = answer.status == 422
    result = session.gateway.cancel_order(entry.id)
    ok = status_ok and result.order.is_terminal
    return verdict_of(
        ok,
        f"{raw}; gateway: {'already final' if result.already_final else 'cancelled'} "
        f"({result.order.status.value})",
    )


# ---- replace ----------------------------------------------------------------------------
def replace_working_limit(session: VerifySession) -> Observed:
    """PATCH of a working limit: a new order at the new price; the old one ends replaced."""
    order = far_buy_limit(session)
    current, _ = session.wait_for(
        order.id,
        lambda o: o.status not in (OrderStatus.ACCEPTED, OrderStatus.PENDING_NEW),
        5.0,
    )
    if current.status is not OrderStatus.NEW:
        raise Skip(f"the test order is {current.status.value}, not new: nothing working to replace")
    price = session.price("0.48")
    answer = session.replace_raw(
        order.id,
        ReplaceOrderRequest(limit_price=float(price), client_order_id=session.client_order_id()),
    )
    if isinstance(answer, BrokerAnswer):
        return failed(f"refused: {answer.describe()}")
    new_id = str(answer.get("id"))
    old, seen = session.wait_for(order.id, lambda o: o.is_terminal)
    new = session.gateway.get_order(new_id)
    session.shared["far_buy"] = new
    ok = (
        new_id != order.id
        and new.limit_price == price
        and new.replaces == order.id
        and new.is_active
        and old.status is OrderStatus.REPLACED
        and old.replaced_by == new_id
    )
    return verdict_of(
        ok,
        f"new order {'with a new id' if new_id != order.id else 'KEPT the old id'}, limit "
        f"{new.limit_price}, replaces {'the old id' if new.replaces == order.id else new.replaces}"
        f", {new.status.value}; old {_path(seen)}, replaced_by "
        f"{'the new id' if old.replaced_by == new_id else old.replaced_by}",
    )


def replace_refused_while_accepted(session: VerifySession) -> Observed:
    """PATCH of an order still accepted / pending_new is refused."""
    order = session.place(
        session.intent(OrderSide.BUY, OrderType.LIMIT, limit=session.price(NEVER_FILLS_BUY))
    )
    if order.status not in (OrderStatus.ACCEPTED, OrderStatus.PENDING_NEW):
        raise Skip(f"the order was already {order.status.value} when placed")
    answer = session.replace_raw(
        order.id,
        ReplaceOrderRequest(
            limit_price=float(session.price("0.49")), client_order_id=session.client_order_id()
        ),
    )
    if isinstance(answer, BrokerAnswer):
        refused = answer.status is not None and 400 <= answer.status < 500
        return verdict_of(refused, f"placed {order.status.value}; refused: {answer.describe()}")
    if session.market_open:
        raise Skip(
            "the order was routed (new) before the replace arrived, as it is within "
            "milliseconds while the market is open; run with the market closed to see this"
        )
    return failed(f"replaced while {order.status.value}: new order {answer.get('id')}")


# ---- with a position --------------------------------------------------------------------
def filled_bracket_legs(session: VerifySession) -> Observed:
    """After the entry fills, the take-profit works (new) and the stop-loss rests held."""
    parent = session.gateway.get_order(filled_bracket(session).id)
    take, stop = _legs(parent)
    listed = {order.id for order in session.gateway.get_open_orders()}
    shown = "listed in" if stop is not None and stop.id in listed else "hidden from"
    observed = (
        f"entry {parent.status.value}; take-profit {_status(take)}, stop-loss {_status(stop)}; "
        f"the stop leg is {shown} status=open"
    )
    ok = take is not None and stop is not None and take.is_active and stop.is_active
    documented = (_status(take), _status(stop)) == ("new", "held")
    note = None if documented else "active, though not the documented new/held pair"
    if shown == "hidden from":
        note = HIDDEN_LEGS_NOTE
    return verdict_of(ok, observed, note)


def replace_stop_leg_price(session: VerifySession) -> Observed:
    """PATCH of a filled bracket's stop leg price: a new stop leg, the old one replaced."""
    _, stop = _legs(session.gateway.get_order(filled_bracket(session).id))
    if stop is None:
        return failed("the filled bracket has no stop-loss leg")
    price = session.price("0.51")
    answer = session.replace_raw(stop.id, ReplaceOrderRequest(stop_price=float(price)))
    if isinstance(answer, BrokerAnswer):
        return failed(f"refused: {answer.describe()}")
    new_id = str(answer.get("id"))
    old, seen = session.wait_for(stop.id, lambda o: o.is_terminal)
    new = session.gateway.get_order(new_id)
    session.shared["stop_leg"] = new
    ok = old.status is OrderStatus.REPLACED and new.stop_price == price and new.is_active
    return verdict_of(
        ok, f"new stop leg at {new.stop_price}, {new.status.value}; old {_path(seen)}"
    )


def group_cancel_take_profit(session: VerifySession) -> Observed:
    """Cancelling a filled bracket's take-profit cancels its stop-loss too."""
    parent = session.gateway.get_order(filled_bracket(session).id)
    take, stop = _legs(parent)
    stop = session.shared.get("stop_leg") or stop
    if take is None or stop is None:
        return failed("the filled bracket lacks a leg")
    session.gateway.cancel_order(take.id)
    final, seen = session.wait_for(stop.id, lambda o: o.is_terminal)
    if not final.is_terminal:  # free the share for the next check
        session.gateway.cancel_order(stop.id)
        session.wait_for(stop.id, lambda o: o.is_terminal)
    return verdict_of(
        final.status is OrderStatus.CANCELED,
        f"take-profit cancelled; stop-loss {_path(seen)}"
        + ("" if final.is_terminal else " (still working after 10 s; cancelled it)"),
    )


def share_reservation(session: VerifySession) -> Observed:
    """A sell stop holds the share: a second sell is refused with the held quantity."""
    filled_bracket(session)
    session.place(
        session.intent(OrderSide.SELL, OrderType.STOP, stop=session.price(NEVER_FILLS_BUY))
    )
    answer = session.submit_raw(_limit(session, SdkSide.SELL, session.price(NEVER_FILLS_SELL)))
    if not isinstance(answer, BrokerAnswer):
        return failed(f"a second sell of the held share was accepted ({answer.get('status')})")
    fields = answer.fields
    available, held = _decimal(fields.get("available")), _decimal(fields.get("held_for_orders"))
    ok = (
        answer.status == 403
        and answer.code == 40310000
        and "insufficient qty" in answer.message.lower()
        and (available, held) == (Decimal(0), Decimal(1))
        and answer.maps_to == "InsufficientQty"
    )
    return verdict_of(
        ok,
        f"{answer.describe()}; available {fields.get('available')}, held_for_orders "
        f"{fields.get('held_for_orders')}, existing_qty {fields.get('existing_qty')}",
    )


def _decimal(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value)) if value is not None else None
    except ArithmeticError:
        return None


CHECKS: tuple[Check, ...] = (
    Check(
        "clock_in_new_york",
        "The clock answers in New York time",
        "timestamps with New York offsets; next open 09:30, next close 16:00 or 13:00",
        "next-open exits (planned 5-30 minutes after the open) and session gating",
        clock_in_new_york,
    ),
    Check(
        "calendar_sessions",
        "The calendar lists sessions in New York time, early closes included",
        "opens 09:30; closes 16:00 or 13:00 (at least one early close a year); no weekends",
        "the next session's opening window for planned exits; the market schedule profile",
        calendar_sessions,
    ),
    Check(
        "rate_limit_headers",
        "Answers carry the rate-limit headers",
        "X-RateLimit-Limit, -Remaining, -Reset (UNIX seconds)",
        "a 429 waits until X-RateLimit-Reset before the next attempt (RateLimited)",
        rate_limit_headers,
    ),
    Check(
        "not_found_is_404",
        "An unknown order or position answers 404 40410000",
        "404 40410000 for a random order id and an unheld symbol; the probes read absent",
        "three-valued probes: only a 404 reads as absent (ghost trades, missing stops)",
        not_found_is_404,
    ),
    Check(
        "duplicate_client_order_id",
        "A reused client_order_id is refused; the first order is found by it",
        "422 40010001 'client_order_id must be unique'; lookup returns the first order",
        "at most once: a submit retried after a lost answer resolves to the existing order",
        duplicate_client_order_id,
    ),
    Check(
        "sub_penny_refused",
        "Sub-penny prices are refused, not rounded",
        "422 42210000 '... sub-penny increment ...' (InvalidPrice)",
        "prices are put on the tick grid before they leave; an off-grid stop would be refused",
        sub_penny_refused,
    ),
    Check(
        "wash_trade_refused",
        "An opposite-side simple order on the symbol is a wash trade",
        "403 40310000 (or 422 42210000) 'potential wash trade detected' (WashTrade)",
        "an add-on buy while a protective sell stop is open goes out as a bracket/OTO",
        wash_trade_refused,
    ),
    Check(
        "bracket_legs_held",
        "An unfilled bracket's legs rest held",
        "take-profit and stop-loss nested under the entry (nested=true), both held",
        "a held stop leg counts as active protection; legs are mapped by parent and type",
        bracket_legs_held,
    ),
    Check(
        "held_legs_listed",
        "Held legs are listed in status=open (hidden is tolerated)",
        "the entry listed; its held legs listed, or found by id when hidden",
        "reconcile, auto-manage and flatten probe by id instead of trusting the listing",
        held_legs_listed,
    ),
    Check(
        "bracket_leg_qty_refused",
        "Only a bracket leg's price may be replaced",
        "PATCH of a stop leg's qty refused (4xx)",
        "resize of a bracket stop falls back to cancel-confirm-place",
        bracket_leg_qty_refused,
    ),
    Check(
        "group_cancel_entry",
        "Cancelling a bracket entry cancels its held legs",
        "entry and both legs canceled within 10 s (pending_cancel on the way is fine)",
        "a partly filled entry cancelled leaves its shares bare: the guard places a stop",
        group_cancel_entry,
    ),
    Check(
        "cancel_final_order",
        "Cancelling an order that already ended is refused, not an error",
        "422 on DELETE of a canceled order; the gateway reads it as already final",
        "exits and flatten treat 'already final' as success instead of retrying a cancel",
        cancel_final_order,
    ),
    Check(
        "replace_working_limit",
        "A replace makes a new order and marks the old one replaced",
        "new id at the new price (replaces = old id); old replaced (maybe via pending_replace)",
        "tighten via replace: the trade adopts the new id once the old one reads replaced",
        replace_working_limit,
        Needs.OPEN_MARKET,
    ),
    Check(
        "replace_refused_while_accepted",
        "A replace is refused while the order is accepted or pending_new",
        "4xx on PATCH of an order still accepted / pending_new",
        "tighten right after placing a stop: a refused replace falls back to cancel-and-place",
        replace_refused_while_accepted,
    ),
    Check(
        "stream_handshake_and_events",
        "trade_updates authorizes, listens and streams order events alpaca-py can read",
        "authorized + listening within 10 s; 'new' and 'canceled' for a test order",
        "broker-sync's one listener: trades hear of fills and cancels within seconds",
        stream_events,
    ),
    Check(
        "filled_bracket_legs",
        "After the entry fills, the take-profit is new and the stop-loss rests held",
        "entry filled; take-profit new; stop-loss held (both active)",
        "a filled bracket's held stop leg counts as active protection",
        filled_bracket_legs,
        Needs.POSITION,
    ),
    Check(
        "replace_stop_leg_price",
        "A bracket stop leg's price can be replaced",
        "a new stop leg at the new price; the old leg replaced",
        "tighten via replace of the stop leg (else cancel-confirm-place, gap measured)",
        replace_stop_leg_price,
        Needs.POSITION,
    ),
    Check(
        "group_cancel_take_profit",
        "Cancelling the take-profit cancels the stop-loss too",
        "the stop-loss leg canceled within 10 s of cancelling the take-profit",
        "freeing shares by cancelling the take-profit kills the stop: protection is restored",
        group_cancel_take_profit,
        Needs.POSITION,
    ),
    Check(
        "share_reservation",
        "An open sell order holds the shares",
        "403 40310000 'insufficient qty available' with available 0, held_for_orders 1",
        "an exit needs the stop cancelled first, or an OCO that carries the stop",
        share_reservation,
        Needs.POSITION,
    ),
)
