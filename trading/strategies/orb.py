"""Opening-range breakout (`orb`) on 1-minute bars: one long per symbol per New York day.

The rule, per New York session day:

1. The opening range is the high and low of the 1-minute bars that start in
   [09:30, 09:30 + range_minutes). It counts only when at least `min_range_coverage` of its
   minutes have a bar (a minute without trades has no bar and changes neither extreme; a range
   missing more than that is a gap in the data or a late open, and the day gives no signal)
   and when its width is at least `min_range_pct` of its low (a zero-width range is no level).
2. After the range is complete, the first bar that closes above the range high, whose volume
   exceeds `volume_factor` times the average volume of the up to `volume_lookback` regular-session
   bars of the same day before it, and that closes at or before `cutoff`, fires one BUY signal.
   A gap open above the range is no exception: the bar must still close above the range high
   after the range is complete. Bars during the range never fire, whatever they close at.
3. entry = that close; stop = the range low (`stop_mode="range_low"`) or the range high minus
   `stop_fraction` of the range (`"fraction"`); target = entry + target_r x (entry - stop).
   At most one signal per symbol per day: after it fires, the day is done.

Only regular-session bars (09:30-16:00 New York) are read, so data with or without extended
hours gives the same signals, and the volume average restarts each day (it needs no history
before the open, so a live scan needs only today's bars). Half days (13:00 closes) need no
calendar: the cutoff may not be later than 13:00, so no bar after an early close can fire.

Confidence (1-5) = 1, +1 when the volume ratio is at least 1.5, +1 more at 3 or more, +1 when
the close clears the range high by at least a quarter of the range (breakout strength), +1
when the trigger bar closes within 30 minutes of the range's end (an early, decisive break).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal

from pydantic import Field, model_validator

from trading.broker_models import Bar, OrderSide
from trading.models import Frozen, JsonScalar, evolve
from trading.strategies.base import SignalCandidate, feature, scan_with_signals
from trading.strategies.sessions import EARLY_CLOSE, REGULAR_CLOSE, REGULAR_OPEN, NewYorkDays

MINUTE = timedelta(minutes=1)
# Extended-hours data starts at 04:00 New York; a live scan's bars reach back that far.
_PRE_MARKET = time(4, 0)
_STRONG_VOLUME = Decimal("1.5")
_HEAVY_VOLUME = Decimal(3)
_CLEAN_BREAK = Decimal("0.25")
_EARLY_BREAK = timedelta(minutes=30)


def _minutes_of(clock: time) -> int:
    return clock.hour * 60 + clock.minute


class OrbConfig(Frozen):
    """The opening-range breakout's parameters (defaults: a 15-minute range, 2R target)."""

    range_minutes: int = Field(15, ge=1, le=120)
    volume_lookback: int = Field(20, ge=1)
    volume_factor: Decimal = Field(Decimal(1), ge=0)
    stop_mode: Literal["range_low", "fraction"] = "range_low"
    stop_fraction: Decimal = Field(Decimal("0.5"), gt=0, le=1)
    target_r: Decimal = Field(Decimal(2), gt=0)
    cutoff: time = time(11, 30)
    max_signal_age: timedelta = Field(timedelta(minutes=10), gt=timedelta(0))
    min_range_pct: Decimal = Field(Decimal("0.001"), ge=0)
    min_range_coverage: Decimal = Field(Decimal("0.5"), gt=0, le=1)

    @model_validator(mode="after")
    def _cutoff_inside_the_session(self) -> OrbConfig:
        range_end = _minutes_of(REGULAR_OPEN) + self.range_minutes
        if not range_end < _minutes_of(self.cutoff) <= _minutes_of(EARLY_CLOSE):
            raise ValueError(
                f"cutoff {self.cutoff} must be after the range ends and no later than "
                f"{EARLY_CLOSE} (the close of half days)"
            )
        return self

    @property
    def min_range_bars(self) -> int:
        """Bars the opening range needs to count."""
        return max(1, math.ceil(self.min_range_coverage * self.range_minutes))


class _Day:
    """One symbol's state on one New York day (UTC bounds computed once)."""

    __slots__ = (
        "bars",
        "close",
        "cutoff",
        "done",
        "end",
        "high",
        "low",
        "open",
        "range_end",
        "ready",
        "volume_sum",
        "volumes",
    )

    def __init__(self, days: NewYorkDays, moment: datetime, config: OrbConfig) -> None:
        day = days.day_of(moment)
        self.end = day.end
        self.open = day.at(REGULAR_OPEN)
        self.range_end = self.open + config.range_minutes * MINUTE
        self.cutoff = day.at(config.cutoff)
        self.close = day.at(REGULAR_CLOSE)
        self.high = Decimal(0)
        self.low = Decimal(0)
        self.bars = 0
        self.ready: bool | None = None  # decided at the first bar after the range
        self.done = False
        self.volumes: deque[Decimal] = deque()
        self.volume_sum = Decimal(0)

    def add_volume(self, volume: Decimal, lookback: int) -> None:
        self.volumes.append(volume)
        self.volume_sum += volume
        if len(self.volumes) > lookback:
            self.volume_sum -= self.volumes.popleft()


class OrbStrategy:
    """Opening-range breakout on 1-minute bars (the rule is in the module docstring)."""

    name = "orb"
    timeframe = "1Min"

    def __init__(self, config: OrbConfig | None = None, **changes: Any) -> None:
        base = config if config is not None else OrbConfig()
        self.config = evolve(base, **changes) if changes else base

    @property
    def lookback_bars(self) -> int:
        """Every minute of the day up to the cutoff, pre-market included (04:00 on)."""
        return _minutes_of(self.config.cutoff) - _minutes_of(_PRE_MARKET)

    @property
    def same_day(self) -> bool:
        """The range, the volume average and the breakout are all today's."""
        return True

    @property
    def max_signal_age(self) -> timedelta:
        """A breakout older than this is not chased."""
        return self.config.max_signal_age

    def signals(self, symbol: str, bars: Sequence[Bar]) -> list[SignalCandidate]:
        """Every breakout over closed 1-minute `bars` (oldest first), at most one a day."""
        config = self.config
        days = NewYorkDays()
        fired: list[SignalCandidate] = []
        day: _Day | None = None
        last: datetime | None = None
        for bar in bars:
            moment = bar.timestamp
            if last is not None and moment <= last:
                continue  # a duplicate or out-of-order bar: the walk is oldest first
            last = moment
            if day is None or moment >= day.end:
                day = _Day(days, moment, config)
            if day.done or moment < day.open:
                continue
            if moment >= day.close or moment + MINUTE > day.cutoff:
                day.done = True
                continue
            if moment < day.range_end:
                if day.bars == 0:
                    day.high, day.low = bar.high, bar.low
                else:
                    day.high = max(day.high, bar.high)
                    day.low = min(day.low, bar.low)
                day.bars += 1
                day.add_volume(bar.volume, config.volume_lookback)
                continue
            if day.ready is None:
                day.ready = self._range_counts(day)
                day.done = not day.ready
                if day.done:
                    continue
            if bar.close > day.high and day.volumes:
                average = day.volume_sum / len(day.volumes)
                if average > 0 and bar.volume > config.volume_factor * average:
                    fired.append(self._signal(symbol, bar, day, bar.volume / average))
                    day.done = True
                    continue
            day.add_volume(bar.volume, config.volume_lookback)
        return fired

    def scan(
        self, bars_by_symbol: Mapping[str, Sequence[Bar]], now: datetime
    ) -> list[SignalCandidate]:
        """Per symbol, today's breakout if it fired within max_signal_age of `now`."""
        return scan_with_signals(self, bars_by_symbol, now)

    def _range_counts(self, day: _Day) -> bool:
        config = self.config
        return (
            day.bars >= config.min_range_bars
            and day.low > 0
            and day.high - day.low >= config.min_range_pct * day.low
        )

    def _signal(self, symbol: str, bar: Bar, day: _Day, volume_ratio: Decimal) -> SignalCandidate:
        config = self.config
        width = day.high - day.low
        entry = bar.close
        stop = (
            day.low if config.stop_mode == "range_low" else day.high - config.stop_fraction * width
        )
        risk = entry - stop
        target = entry + config.target_r * risk
        strength = (entry - day.high) / width if width > 0 else Decimal(0)
        closed = bar.timestamp + MINUTE
        since_range = closed - day.range_end
        confidence = (
            1
            + (volume_ratio >= _STRONG_VOLUME)
            + (volume_ratio >= _HEAVY_VOLUME)
            + (strength >= _CLEAN_BREAK)
            + (since_range <= _EARLY_BREAK)
        )
        features: dict[str, JsonScalar] = {
            "entry": feature(entry),
            "stop": feature(stop),
            "target": feature(target),
            "reward_risk": feature((target - entry) / risk),
            "volume_ratio": feature(volume_ratio),
            "confidence": confidence,
            "range_high": feature(day.high),
            "range_low": feature(day.low),
            "range_pct": feature(width / day.low),
            "range_bars": day.bars,
            "breakout_strength": feature(strength),
            "minutes_after_range": int(since_range.total_seconds() // 60),
        }
        return SignalCandidate(
            symbol=symbol,
            side=OrderSide.BUY,
            features=features,
            entry=entry,
            stop=stop,
            target=target,
            confidence=confidence,
            at=closed,
        )
