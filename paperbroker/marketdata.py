"""Market data derived from the same price paths orders fill on: bars, trades, quotes, snapshots."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

import numpy as np

from paperbroker.calendar import NEW_YORK, MarketCalendar, Session
from paperbroker.prices import PriceEngine, SymbolPath

TIMEFRAME = re.compile(r"^(\d+)(Min|T|Hour|H|Day|D|Week|W|Month|M)$")
UNIT_ALIASES = {"T": "Min", "H": "Hour", "D": "Day", "W": "Week", "M": "Month"}


@dataclass(frozen=True)
class Bar:
    """One OHLCV bar; `start` is epoch seconds."""

    start: float
    open: float
    high: float
    low: float
    close: float
    volume: float

    def json(self) -> dict[str, object]:
        """Render as Alpaca's bar object."""
        trades = max(1, int(self.volume // 100)) if self.volume else 0
        return {
            "t": datetime.fromtimestamp(self.start, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "o": _px(self.open),
            "h": _px(self.high),
            "l": _px(self.low),
            "c": _px(self.close),
            "v": int(self.volume),
            "n": trades,
            "vw": _px((self.high + self.low + self.close) / 3),
        }


def _px(value: float) -> float:
    return round(value, 2) if value >= 1 else round(value, 4)


def parse_timeframe(raw: str) -> tuple[int, str]:
    """Parse '5Min', '1Hour', '1Day' ... into (amount, unit)."""
    match = TIMEFRAME.match(raw or "")
    if not match:
        raise ValueError(f"invalid timeframe: {raw}")
    amount, unit = int(match.group(1)), match.group(2)
    unit = UNIT_ALIASES.get(unit, unit)
    if amount < 1 or (unit == "Min" and amount > 59) or (unit == "Hour" and amount > 23):
        raise ValueError(f"invalid timeframe: {raw}")
    if (unit in ("Day", "Week") and amount != 1) or (
        unit == "Month" and amount not in (1, 2, 3, 6, 12)
    ):
        raise ValueError(f"invalid timeframe: {raw}")
    return amount, unit


class PriceSource(Protocol):
    """Anything that exposes the current PriceEngine."""

    prices: PriceEngine


class MarketData:
    """Computes bars and quotes from a PriceEngine, caching completed sessions."""

    def __init__(self, source: PriceSource, calendar: MarketCalendar) -> None:
        self._source = source
        self.calendar = calendar
        self._minute_cache: dict[tuple[str, date], list[Bar]] = {}

    @property
    def prices(self) -> PriceEngine:
        """Return the live price engine (it changes on reset and restore)."""
        return self._source.prices

    def clear(self) -> None:
        """Forget cached bars (after a reset or restore)."""
        self._minute_cache.clear()

    def minute_bars(self, symbol: str, session: Session, now: datetime) -> list[Bar]:
        """Return the session's completed 1-minute bars (04:00-20:00 New York) up to `now`."""
        key = (symbol, session.day)
        cached = self._minute_cache.get(key)
        if cached is not None:
            return cached
        end = min(session.post_close, now.replace(second=0, microsecond=0))
        minutes = int((end - session.pre_open).total_seconds() // 60)
        if minutes <= 0:
            return []
        path = self.prices.path(symbol)
        bars = _bars_from_path(path, session.pre_open, minutes)
        if session.post_close <= now:
            self._minute_cache[key] = bars
        return bars

    def bars(
        self, symbol: str, amount: int, unit: str, start: datetime, end: datetime, now: datetime
    ) -> Iterator[Bar]:
        """Yield bars of the timeframe with start <= t < end, oldest first."""
        end = min(end, now)
        first = start.astimezone(NEW_YORK).date() - timedelta(days=1)
        sessions = self.calendar.sessions_between(first, end.astimezone(NEW_YORK).date())
        if unit in ("Min", "Hour"):
            size = amount * (60 if unit == "Min" else 3600)
            for session in sessions:
                yield from _aggregate(
                    [b for b in self.minute_bars(symbol, session, now)], size, start, end
                )
            return
        daily = (self.daily_bar(symbol, s, now) for s in sessions if s.open <= now)
        days = [d for d in daily if d is not None]
        if unit == "Day":
            yield from (d for d in days if start.timestamp() <= d.start < end.timestamp())
            return
        yield from _group_days(days, unit, amount, start, end)

    def daily_bar(self, symbol: str, session: Session, now: datetime) -> Bar | None:
        """Return the regular-session bar of `session` (partial while it is running)."""
        lo, hi = session.open.timestamp(), session.close.timestamp()
        inside = [b for b in self.minute_bars(symbol, session, now) if lo <= b.start < hi]
        if not inside:
            return None
        midnight = datetime.combine(session.day, datetime.min.time(), NEW_YORK).timestamp()
        return _merge(midnight, inside)

    def last_active(self, now: datetime) -> datetime:
        """Return `now` inside 04:00-20:00 of a session day, else the last post-market close."""
        if self.calendar.extended_session_for(now) is not None:
            return now
        session = self.calendar.previous_session(now)
        return min(session.post_close, now) if session else now


def _bars_from_path(path: SymbolPath, start: datetime, minutes: int) -> list[Bar]:
    prices, volumes = path.minute_series(start, minutes)
    opens, closes = prices[:-1], prices[1:]
    highs, lows = np.maximum(opens, closes), np.minimum(opens, closes)
    base = start.timestamp()
    end = start + timedelta(minutes=minutes)
    for anchor in path.anchors_between(start, end):
        i = int((anchor.timestamp() - base) // 60)
        before = math.exp(path.log_price(anchor - timedelta(microseconds=1)))
        after = math.exp(path.log_price(anchor))
        highs[i] = max(highs[i], before, after)
        lows[i] = min(lows[i], before, after)
    return [
        Bar(
            base + 60 * i,
            float(opens[i]),
            float(highs[i]),
            float(lows[i]),
            float(closes[i]),
            float(v),
        )
        for i, v in enumerate(volumes)
        if v > 0
    ]


def _merge(start: float, bars: list[Bar]) -> Bar:
    return Bar(
        start=start,
        open=bars[0].open,
        high=max(b.high for b in bars),
        low=min(b.low for b in bars),
        close=bars[-1].close,
        volume=sum(b.volume for b in bars),
    )


def _aggregate(bars: list[Bar], size: int, start: datetime, end: datetime) -> Iterator[Bar]:
    lo, hi = start.timestamp(), end.timestamp()
    bucket: list[Bar] = []
    bucket_start = None
    for bar in bars:
        if not lo <= bar.start < hi:
            continue
        key = bar.start - bar.start % size
        if bucket and key != bucket_start:
            yield _merge(bucket_start or key, bucket)
            bucket = []
        bucket_start = key
        bucket.append(bar)
    if bucket:
        yield _merge(bucket_start or 0.0, bucket)


def _group_days(
    days: list[Bar], unit: str, amount: int, start: datetime, end: datetime
) -> Iterator[Bar]:
    groups: dict[tuple[int, int], list[Bar]] = {}
    for day in days:
        d = datetime.fromtimestamp(day.start, NEW_YORK).date()
        if unit == "Week":
            iso = d.isocalendar()
            key = (iso[0], iso[1])
        else:
            key = (d.year, (d.month - 1) // amount)
        groups.setdefault(key, []).append(day)
    for members in groups.values():
        if start.timestamp() <= members[0].start < end.timestamp():
            yield _merge(members[0].start, members)
