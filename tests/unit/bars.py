"""Bar builders for the strategy tests: bars placed by New York wall-clock time, in UTC."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from trading.broker_models import Bar

NEW_YORK = ZoneInfo("America/New_York")
SYMBOL = "AAPL"
Number = Decimal | int | str


def ny(day: date, clock: str) -> datetime:
    """The UTC instant of New York wall-clock `clock` ("09:30") on `day`."""
    hour, minute = (int(part) for part in clock.split(":"))
    return datetime.combine(day, time(hour, minute), tzinfo=NEW_YORK).astimezone(UTC)


def bar(
    start: datetime,
    close: Number,
    *,
    open: Number | None = None,
    high: Number | None = None,
    low: Number | None = None,
    volume: Number = 1000,
    symbol: str = SYMBOL,
) -> Bar:
    """One bar; open defaults to the close, high/low to the extremes of open and close."""
    c = Decimal(close)
    o = Decimal(open) if open is not None else c
    return Bar(
        symbol=symbol,
        timestamp=start,
        open=o,
        high=Decimal(high) if high is not None else max(o, c),
        low=Decimal(low) if low is not None else min(o, c),
        close=c,
        volume=Decimal(volume),
    )


def minutes(day: date, first: str, count: int) -> list[datetime]:
    """`count` consecutive minute starts from New York `first` on `day`."""
    start = ny(day, first)
    return [start + timedelta(minutes=i) for i in range(count)]


def flat_minutes(
    day: date,
    first: str,
    count: int,
    *,
    close: Number = 100,
    high: Number | None = None,
    low: Number | None = None,
    volume: Number = 1000,
    symbol: str = SYMBOL,
) -> list[Bar]:
    """`count` identical minute bars from New York `first` on `day`."""
    return [
        bar(moment, close, high=high, low=low, volume=volume, symbol=symbol)
        for moment in minutes(day, first, count)
    ]


def weekdays(first: date) -> Iterator[date]:
    """Monday-to-Friday dates from `first` on (no holiday calendar)."""
    day = first
    while True:
        if day.weekday() < 5:
            yield day
        day += timedelta(days=1)


def session_slots(first: date, count: int, step: timedelta) -> list[datetime]:
    """`count` bar starts of length `step` inside 09:30-16:00 New York, weekday after weekday."""
    slots: list[datetime] = []
    for day in weekdays(first):
        moment, close = ny(day, "09:30"), ny(day, "16:00")
        while moment < close:
            if len(slots) == count:
                return slots
            slots.append(moment)
            moment += step
    raise AssertionError("unreachable")


def series(
    slots: Iterable[datetime],
    rows: Iterable[tuple[Number, Number, Number, Number] | Number],
    *,
    volume: Number = 1000,
    symbol: str = SYMBOL,
) -> list[Bar]:
    """Bars at `slots` from rows of (open, high, low, close), or of a close alone (flat bar)."""
    built: list[Bar] = []
    for moment, row in zip(slots, rows, strict=True):
        if isinstance(row, tuple):
            o, h, low, c = row
            built.append(bar(moment, c, open=o, high=h, low=low, volume=volume, symbol=symbol))
        else:
            built.append(bar(moment, row, volume=volume, symbol=symbol))
    return built
