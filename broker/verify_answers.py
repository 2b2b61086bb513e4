"""`broker verify` checks of what the broker answers: clock, calendar, headers, error answers.

Expectations are Alpaca's documented behaviour (Trading API reference, error table, the forum
and SDK threads collected for the paper broker), not what any one broker does today. Refused
orders are sent through alpaca-py as they are, so the exact status, code and message show;
the gateway's reading of each refusal (`maps_to`) is part of what is checked.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import uuid4
from zoneinfo import ZoneInfo

from alpaca.common.exceptions import APIError
from alpaca.trading.enums import OrderSide as SdkSide
from alpaca.trading.enums import TimeInForce as SdkTimeInForce
from alpaca.trading.models import Calendar, Clock
from alpaca.trading.requests import GetCalendarRequest, LimitOrderRequest, StopOrderRequest

from broker.verify_session import (
    NEVER_FILLS_BUY,
    BrokerAnswer,
    Check,
    Observed,
    VerifySession,
    answer_of,
    failed,
    verdict_of,
)
from trading.broker_models import BrokerOrder, OrderSide, OrderType, ProbeOutcome
from trading.ticks import tick_size

NEW_YORK = ZoneInfo("America/New_York")


def far_buy_limit(session: VerifySession) -> BrokerOrder:
    """A one-share buy limit at half the price: a resting order that never fills."""
    return session.once(
        "far_buy",
        lambda: session.place(
            session.intent(OrderSide.BUY, OrderType.LIMIT, limit=session.price(NEVER_FILLS_BUY))
        ),
    )


def _one_share_day(
    session: VerifySession, side: SdkSide, client_order_id: str | None
) -> dict[str, Any]:
    """The fields of a one-share day order on the run's symbol (a fresh client_order_id if None)."""
    cid = session.client_order_id() if client_order_id is None else client_order_id
    return {
        "symbol": session.symbol,
        "qty": 1,
        "side": side,
        "time_in_force": SdkTimeInForce.DAY,
        "client_order_id": cid,
    }


def limit_request(
    session: VerifySession, side: SdkSide, price: Decimal, client_order_id: str | None = None
) -> LimitOrderRequest:
    """A one-share day limit as alpaca-py sends it (for orders the broker should refuse)."""
    return LimitOrderRequest(
        limit_price=float(price), **_one_share_day(session, side, client_order_id)
    )


def stop_request(session: VerifySession, side: SdkSide, price: Decimal) -> StopOrderRequest:
    """A one-share day stop as alpaca-py sends it (for orders the broker should refuse)."""
    return StopOrderRequest(stop_price=float(price), **_one_share_day(session, side, None))


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
    price = first.limit_price or session.price(NEVER_FILLS_BUY)
    again = session.submit_raw(
        limit_request(session, SdkSide.BUY, price, client_order_id=first.client_order_id)
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
    answer = session.submit_raw(limit_request(session, SdkSide.BUY, off_grid))
    if not isinstance(answer, BrokerAnswer):
        return failed(f"accepted at limit {answer.get('limit_price')} (price {off_grid} sent)")
    ok = answer.status == 422 and answer.code == 42210000 and "sub-penny" in answer.message
    return verdict_of(ok and answer.maps_to == "InvalidPrice", f"{answer.describe()}")


def wash_trade_refused(session: VerifySession) -> Observed:
    """A sell stop while the run's buy limit rests: refused as a potential wash trade."""
    far_buy_limit(session)
    answer = session.submit_raw(stop_request(session, SdkSide.SELL, session.price("0.4")))
    if not isinstance(answer, BrokerAnswer):
        return failed(f"the opposite-side sell stop was accepted ({answer.get('status')})")
    ok = answer.status in (403, 422) and "wash trade" in answer.message.lower()
    return verdict_of(ok and answer.maps_to == "WashTrade", answer.describe())


ANSWER_CHECKS: tuple[Check, ...] = (
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
)
