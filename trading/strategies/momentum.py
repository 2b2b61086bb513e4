"""The default strategy: positive momentum over N daily bars, with volume and RSI features.

Features match trading/scoring.py's MomentumVolumeScorer: `momentum` (fractional return over
the lookback), `volume_ratio` (the last bar's volume over the average of the bars before it)
and `rsi` (Wilder's RSI when there are enough bars), plus `close` for the record.
`signals` walks a symbol's daily bars once, keeping running sums, and fires on every bar whose
momentum passes; `scan` proposes the newest bar's signal.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from typing import Any

from pydantic import Field

from trading.broker_models import Bar, OrderSide
from trading.models import Frozen, JsonScalar, evolve
from trading.strategies.base import SignalCandidate, feature

DAY = timedelta(days=1)


def momentum(closes: Sequence[Decimal], lookback: int) -> Decimal | None:
    """Return over the last `lookback` bars (0.02 = +2 %), or None without enough bars."""
    if lookback < 1 or len(closes) < lookback + 1 or closes[-1 - lookback] <= 0:
        return None
    return closes[-1] / closes[-1 - lookback] - 1


def volume_ratio(volumes: Sequence[Decimal], lookback: int) -> Decimal | None:
    """The last volume over the average of up to `lookback` volumes before it."""
    before = list(volumes[-1 - lookback : -1])
    if not before:
        return None
    average = sum(before, Decimal(0)) / len(before)
    if average <= 0:
        return None
    return volumes[-1] / average


def rsi(closes: Sequence[Decimal], period: int = 14) -> Decimal | None:
    """Wilder's RSI (0-100) over `period`, or None with fewer than period + 1 closes."""
    if period < 1 or len(closes) < period + 1:
        return None
    changes = [b - a for a, b in pairwise(closes)]
    gains = [max(c, Decimal(0)) for c in changes]
    losses = [max(-c, Decimal(0)) for c in changes]
    avg_gain = sum(gains[:period], Decimal(0)) / period
    avg_loss = sum(losses[:period], Decimal(0)) / period
    for gain, loss in zip(gains[period:], losses[period:], strict=True):
        avg_gain = (avg_gain * (period - 1) + gain) / period
        avg_loss = (avg_loss * (period - 1) + loss) / period
    if avg_loss == 0:
        return Decimal(100) if avg_gain > 0 else Decimal(50)
    return Decimal(100) - Decimal(100) / (1 + avg_gain / avg_loss)


class MomentumConfig(Frozen):
    """The momentum strategy's parameters."""

    lookback: int = Field(10, ge=1)
    min_momentum: Decimal = Decimal(0)
    rsi_period: int = Field(14, ge=1)
    # A daily signal dates from the midnight after its bar; four days carry it over a long
    # weekend to the next session's open.
    max_signal_age: timedelta = Field(timedelta(days=4), gt=timedelta(0))


class WilderRsi:
    """Wilder's RSI over a stream of closes, equal to `rsi` of every prefix."""

    def __init__(self, period: int) -> None:
        self._period = period
        self._previous: Decimal | None = None
        self._changes = 0
        self._gain = Decimal(0)
        self._loss = Decimal(0)

    def add(self, close: Decimal) -> Decimal | None:
        previous, self._previous = self._previous, close
        if previous is None:
            return None
        change = close - previous
        gain, loss = max(change, Decimal(0)), max(-change, Decimal(0))
        period = self._period
        self._changes += 1
        if self._changes < period:
            self._gain += gain
            self._loss += loss
            return None
        if self._changes == period:
            self._gain = (self._gain + gain) / period
            self._loss = (self._loss + loss) / period
        else:
            self._gain = (self._gain * (period - 1) + gain) / period
            self._loss = (self._loss * (period - 1) + loss) / period
        if self._loss == 0:
            return Decimal(100) if self._gain > 0 else Decimal(50)
        return Decimal(100) - Decimal(100) / (1 + self._gain / self._loss)


class MomentumStrategy:
    """Buy candidates whose close rose more than `min_momentum` over `lookback` daily bars."""

    name = "momentum"
    timeframe = "1Day"

    def __init__(self, config: MomentumConfig | None = None, **changes: Any) -> None:
        base = config if config is not None else MomentumConfig()
        self.config = evolve(base, **changes) if changes else base

    @property
    def lookback_bars(self) -> int:
        """Enough bars for the momentum and the RSI."""
        return max(self.config.lookback, self.config.rsi_period) + 1

    @property
    def same_day(self) -> bool:
        """Its lookback is in daily bars."""
        return False

    @property
    def max_signal_age(self) -> timedelta:
        """How long a daily signal stays actionable."""
        return self.config.max_signal_age

    def signals(self, symbol: str, bars: Sequence[Bar]) -> list[SignalCandidate]:
        """A BUY signal on each daily bar (oldest first) whose momentum passes the minimum.

        Features are those `scan` always gave for the bar: `momentum`, `close`, `lookback`,
        and `volume_ratio` and `rsi` when there are bars enough; `entry` is the close.
        """
        lookback = self.config.lookback
        strength = WilderRsi(self.config.rsi_period)
        closes: deque[Decimal] = deque(maxlen=lookback + 1)
        volumes: deque[Decimal] = deque(maxlen=lookback)
        volume_sum = Decimal(0)
        fired: list[SignalCandidate] = []
        last: datetime | None = None
        for bar in bars:
            if last is not None and bar.timestamp <= last:
                continue  # a duplicate or out-of-order bar: the walk is oldest first
            last = bar.timestamp
            closes.append(bar.close)
            bar_rsi = strength.add(bar.close)
            move = momentum(closes, lookback)
            if move is not None and move > self.config.min_momentum:
                features: dict[str, JsonScalar] = {
                    "momentum": feature(move),
                    "close": feature(bar.close),
                    "lookback": lookback,
                }
                if volumes and volume_sum > 0:
                    features["volume_ratio"] = feature(bar.volume / (volume_sum / len(volumes)))
                if bar_rsi is not None:
                    features["rsi"] = feature(bar_rsi)
                fired.append(
                    SignalCandidate(
                        symbol=symbol,
                        side=OrderSide.BUY,
                        features=features,
                        entry=bar.close,
                        at=bar.timestamp + DAY,
                    )
                )
            if len(volumes) == lookback:
                volume_sum -= volumes[0]
            volumes.append(bar.volume)
            volume_sum += bar.volume
        return fired

    def scan(
        self, bars_by_symbol: Mapping[str, Sequence[Bar]], now: datetime
    ) -> list[SignalCandidate]:
        """One BUY candidate per symbol whose newest bar at `now` passes the minimum.

        Unlike the intraday strategies, the daily bar still in progress counts: the market
        loop scans daily bars during the session and acts on the session so far, as it always
        has. A candidate from that bar is dated `now`.
        """
        candidates: list[SignalCandidate] = []
        for symbol in sorted(bars_by_symbol):
            bars = sorted(
                (b for b in bars_by_symbol[symbol] if b.timestamp <= now),
                key=lambda b: b.timestamp,
            )
            if not bars:
                continue
            fired = self.signals(symbol, bars)
            newest_end = bars[-1].timestamp + DAY
            if fired and fired[-1].at == newest_end:
                candidates.append(fired[-1].model_copy(update={"at": min(newest_end, now)}))
        return candidates
