"""Trend pullback (`trend_pullback`): buy the first recovery from a dip inside an uptrend.

The rule, over one timeframe's bars (default 15-minute), walked once:

- Uptrend: the close is above the long SMA (`long_ma` closes) and the long SMA is rising
  (above its value `slope_bars` bars ago).
- Pullback: a bar, right after an uptrend bar, while the long SMA is still rising, whose low
  touches the short SMA (`short_ma` closes) or whose RSI (`rsi_period`, Wilder) is at or
  below `rsi_oversold`. It starts a pullback; later bars belong to it until it ends.
- Entry: the first bar after the pullback's first bar that closes above the short SMA while
  the uptrend holds fires one BUY signal, and the pullback is over (one signal per pullback).
  A pullback is abandoned without a signal when the long SMA stops rising or after
  `max_pullback_bars` bars without a recovery.
- entry = that close; stop = the lowest low of the pullback (its first bar to the trigger bar)
  less `stop_buffer` of it; target = the prior swing high (the highest high of the
  `swing_lookback` bars before the pullback) when it is above the entry, otherwise
  entry + target_r x (entry - stop).

Intraday bars outside 09:30-16:00 New York are skipped (`regular_session_only`), so data with
or without extended hours gives the same signals; there is no calendar, so the afternoon of a
half day (after a 13:00 close) reads like any other thin bars. Daily and longer bars are all read.

Confidence (1-5) = 1, +1 when reward/risk is at least 2, +1 when the trigger bar's volume is
at least 1.2 x the average of the `volume_lookback` bars before it, +1 when the RSI went to
oversold during the pullback, +1 when the long SMA rose at least 0.5 % over `slope_bars`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import Field, field_validator, model_validator

from trading.broker_models import Bar, OrderSide
from trading.models import Frozen, JsonScalar, evolve
from trading.strategies.base import (
    SignalCandidate,
    feature,
    scan_with_signals,
    timeframe_delta,
)
from trading.strategies.momentum import WilderRsi
from trading.strategies.sessions import REGULAR_CLOSE, REGULAR_OPEN, NewYorkDay, NewYorkDays

_ACTIVE_VOLUME = Decimal("1.2")
_STRONG_SLOPE = Decimal("0.005")
_GOOD_REWARD_RISK = Decimal(2)


class PullbackConfig(Frozen):
    """The trend pullback's parameters (defaults: 15-minute bars, SMA 50/10, RSI(3) <= 20)."""

    timeframe: str = "15Min"
    long_ma: int = Field(50, ge=2)
    short_ma: int = Field(10, ge=1)
    slope_bars: int = Field(5, ge=1)
    rsi_period: int = Field(3, ge=1)
    rsi_oversold: Decimal = Field(Decimal(20), ge=0, le=100)
    swing_lookback: int = Field(20, ge=1)
    target_r: Decimal = Field(Decimal(2), gt=0)
    stop_buffer: Decimal = Field(Decimal("0.001"), gt=0, lt=1)
    volume_lookback: int = Field(20, ge=1)
    max_pullback_bars: int = Field(20, ge=1)
    regular_session_only: bool = True
    max_signal_age: timedelta | None = Field(None, gt=timedelta(0))  # None: one bar

    @field_validator("timeframe")
    @classmethod
    def _known_timeframe(cls, timeframe: str) -> str:
        timeframe_delta(timeframe)
        return timeframe

    @model_validator(mode="after")
    def _short_inside_long(self) -> PullbackConfig:
        if self.short_ma >= self.long_ma:
            raise ValueError(f"short_ma {self.short_ma} must be below long_ma {self.long_ma}")
        return self


class _Average:
    """A simple moving average over the last `length` values, by a running sum."""

    __slots__ = ("_length", "_sum", "_values")

    def __init__(self, length: int) -> None:
        self._length = length
        self._values: deque[Decimal] = deque()
        self._sum = Decimal(0)

    def add(self, value: Decimal) -> None:
        self._values.append(value)
        self._sum += value
        if len(self._values) > self._length:
            self._sum -= self._values.popleft()

    @property
    def full(self) -> bool:
        return len(self._values) == self._length

    @property
    def value(self) -> Decimal:
        return self._sum / len(self._values)


class _HighestHigh:
    """The highest of the last `length` highs, by a monotonic queue (amortised O(1))."""

    __slots__ = ("_count", "_length", "_queue")

    def __init__(self, length: int) -> None:
        self._length = length
        self._queue: deque[tuple[int, Decimal]] = deque()
        self._count = 0

    def add(self, high: Decimal) -> None:
        queue = self._queue
        while queue and queue[-1][1] <= high:
            queue.pop()
        queue.append((self._count, high))
        self._count += 1
        if queue[0][0] <= self._count - 1 - self._length:
            queue.popleft()

    @property
    def value(self) -> Decimal | None:
        return self._queue[0][1] if self._queue else None


class _Pullback:
    """A pullback in progress."""

    __slots__ = ("bars", "low", "min_rsi", "swing_high")

    def __init__(self, low: Decimal, rsi: Decimal | None, swing_high: Decimal | None) -> None:
        self.bars = 1
        self.low = low
        self.min_rsi = rsi
        self.swing_high = swing_high


class PullbackStrategy:
    """Trend pullback (the rule is in the module docstring)."""

    name = "trend_pullback"

    def __init__(self, config: PullbackConfig | None = None, **changes: Any) -> None:
        base = config if config is not None else PullbackConfig()
        self.config = evolve(base, **changes) if changes else base
        self._bar = timeframe_delta(self.config.timeframe)

    @property
    def timeframe(self) -> str:
        """The configured timeframe."""
        return self.config.timeframe

    @property
    def lookback_bars(self) -> int:
        """Enough bars for the averages to warm up and a whole pullback to be seen."""
        config = self.config
        return (
            config.long_ma
            + config.slope_bars
            + max(config.swing_lookback, config.volume_lookback)
            + config.max_pullback_bars
        )

    @property
    def same_day(self) -> bool:
        """Its moving averages reach back across sessions."""
        return False

    @property
    def max_signal_age(self) -> timedelta:
        """One bar unless configured: a recovery is acted on while it is the newest bar."""
        return self.config.max_signal_age or self._bar

    def signals(self, symbol: str, bars: Sequence[Bar]) -> list[SignalCandidate]:
        """Every pullback recovery over closed `bars` (oldest first)."""
        config = self.config
        session_only = config.regular_session_only and self._bar < timedelta(days=1)
        days = NewYorkDays()
        day: NewYorkDay | None = None
        session_open = session_close = datetime.min
        long_ma, short_ma = _Average(config.long_ma), _Average(config.short_ma)
        volume = _Average(config.volume_lookback)
        swing = _HighestHigh(config.swing_lookback)
        strength = WilderRsi(config.rsi_period)
        history: deque[Decimal] = deque(maxlen=config.slope_bars + 1)
        pullback: _Pullback | None = None
        was_uptrend = False
        fired: list[SignalCandidate] = []
        last: datetime | None = None
        for bar in bars:
            moment = bar.timestamp
            if last is not None and moment <= last:
                continue  # a duplicate or out-of-order bar: the walk is oldest first
            last = moment
            if session_only:
                if day is None or not day.contains(moment):
                    day = days.day_of(moment)
                    session_open, session_close = day.at(REGULAR_OPEN), day.at(REGULAR_CLOSE)
                if not session_open <= moment < session_close:
                    continue
            long_ma.add(bar.close)
            short_ma.add(bar.close)
            bar_rsi = strength.add(bar.close)
            if long_ma.full:
                history.append(long_ma.value)
            rising = len(history) == history.maxlen and history[-1] > history[0]
            uptrend = rising and bar.close > history[-1]
            if pullback is not None:
                pullback.bars += 1
                pullback.low = min(pullback.low, bar.low)
                if bar_rsi is not None and (pullback.min_rsi is None or bar_rsi < pullback.min_rsi):
                    pullback.min_rsi = bar_rsi
                if uptrend and bar.close > short_ma.value:
                    fired.append(
                        self._signal(symbol, bar, pullback, history, short_ma.value, volume)
                    )
                    pullback = None
                elif not rising or pullback.bars > config.max_pullback_bars:
                    pullback = None
            elif (
                was_uptrend
                and rising
                and (
                    bar.low <= short_ma.value
                    or (bar_rsi is not None and bar_rsi <= config.rsi_oversold)
                )
            ):
                pullback = _Pullback(bar.low, bar_rsi, swing.value)
            was_uptrend = uptrend
            swing.add(bar.high)
            volume.add(bar.volume)
        return fired

    def scan(
        self, bars_by_symbol: Mapping[str, Sequence[Bar]], now: datetime
    ) -> list[SignalCandidate]:
        """Per symbol, the newest recovery if it fired within max_signal_age of `now`."""
        return scan_with_signals(self, bars_by_symbol, now)

    def _signal(
        self,
        symbol: str,
        bar: Bar,
        pullback: _Pullback,
        history: deque[Decimal],
        ma_short: Decimal,
        volume: _Average,
    ) -> SignalCandidate:
        config = self.config
        entry = bar.close
        stop = pullback.low * (1 - config.stop_buffer)
        risk = entry - stop
        swing_high = pullback.swing_high
        target = (
            swing_high
            if swing_high is not None and swing_high > entry
            else entry + config.target_r * risk
        )
        reward_risk = (target - entry) / risk
        average = volume.value
        volume_ratio = bar.volume / average if average > 0 else Decimal(1)
        slope = (history[-1] - history[0]) / history[0] if history[0] > 0 else Decimal(0)
        oversold = pullback.min_rsi is not None and pullback.min_rsi <= config.rsi_oversold
        confidence = (
            1
            + (reward_risk >= _GOOD_REWARD_RISK)
            + (volume_ratio >= _ACTIVE_VOLUME)
            + oversold
            + (slope >= _STRONG_SLOPE)
        )
        features: dict[str, JsonScalar] = {
            "entry": feature(entry),
            "stop": feature(stop),
            "target": feature(target),
            "reward_risk": feature(reward_risk),
            "volume_ratio": feature(volume_ratio),
            "confidence": confidence,
            "ma_long": feature(history[-1]),
            "ma_long_slope": feature(slope),
            "ma_short": feature(ma_short),
            "pullback_low": feature(pullback.low),
            "pullback_bars": pullback.bars,
        }
        if swing_high is not None:
            features["swing_high"] = feature(swing_high)
        if pullback.min_rsi is not None:
            features["rsi_min"] = feature(pullback.min_rsi)
        return SignalCandidate(
            symbol=symbol,
            side=OrderSide.BUY,
            features=features,
            entry=entry,
            stop=stop,
            target=target,
            confidence=confidence,
            at=bar.timestamp + self._bar,
        )
