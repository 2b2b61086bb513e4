"""The default strategy: positive momentum over N daily bars, with volume and RSI features.

Features match trading/scoring.py's MomentumVolumeScorer: `momentum` (fractional return over
the lookback), `volume_ratio` (the last bar's volume over the average of the bars before it)
and `rsi` (Wilder's RSI when there are enough bars), plus `close` for the record.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from itertools import pairwise

from trading.broker_models import Bar, OrderSide
from trading.models import JsonScalar
from trading.strategies.base import SignalCandidate

FEATURE_PLACES = Decimal("0.000001")


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


def _feature(value: Decimal) -> float:
    return float(value.quantize(FEATURE_PLACES))


class MomentumStrategy:
    """Buy candidates whose close rose more than `min_momentum` over `lookback` daily bars."""

    name = "momentum"

    def __init__(
        self, lookback: int = 10, min_momentum: Decimal = Decimal(0), rsi_period: int = 14
    ) -> None:
        if lookback < 1 or rsi_period < 1:
            raise ValueError("lookback and rsi_period must be at least 1")
        self._lookback = lookback
        self._min_momentum = min_momentum
        self._rsi_period = rsi_period

    @property
    def lookback_bars(self) -> int:
        """Enough bars for the momentum and the RSI."""
        return max(self._lookback, self._rsi_period) + 1

    def scan(
        self, bars_by_symbol: Mapping[str, Sequence[Bar]], now: datetime
    ) -> list[SignalCandidate]:
        """One BUY candidate per symbol with enough bars and momentum above the minimum."""
        candidates: list[SignalCandidate] = []
        for symbol in sorted(bars_by_symbol):
            bars = sorted(
                (b for b in bars_by_symbol[symbol] if b.timestamp <= now),
                key=lambda b: b.timestamp,
            )
            closes = [b.close for b in bars]
            move = momentum(closes, self._lookback)
            if move is None or move <= self._min_momentum:
                continue
            features: dict[str, JsonScalar] = {
                "momentum": _feature(move),
                "close": _feature(closes[-1]),
                "lookback": self._lookback,
            }
            ratio = volume_ratio([b.volume for b in bars], self._lookback)
            if ratio is not None:
                features["volume_ratio"] = _feature(ratio)
            strength = rsi(closes, self._rsi_period)
            if strength is not None:
                features["rsi"] = _feature(strength)
            candidates.append(SignalCandidate(symbol=symbol, side=OrderSide.BUY, features=features))
        return candidates
