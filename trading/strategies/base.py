"""The strategy protocol, its candidates, the signal key, the registry and the scan helpers (pure).

A strategy has one rule, written once in `signals`: walk one symbol's closed bars (oldest first)
and return every signal the rule fires, each dated `at`, the close of the bar that triggered it.
The backtest calls `signals` over history; the live scan (`scan_with_signals`) calls it over the
bars closed at `now` and proposes the newest signal per symbol while it is still fresh, so the
backtest and the market loop run the same rule.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Protocol, runtime_checkable

from pydantic import Field

from trading.broker_models import Bar, OrderSide
from trading.models import Frozen, JsonScalar
from trading.registry import Named, NamedRegistry

# Features are JSON numbers; six places keep prices and ratios readable and stable.
FEATURE_PLACES = Decimal("0.000001")

_TIMEFRAME = re.compile(r"^([1-9][0-9]*)(Min|Hour|Day|Week)$")
_UNIT = {
    "Min": timedelta(minutes=1),
    "Hour": timedelta(hours=1),
    "Day": timedelta(days=1),
    "Week": timedelta(weeks=1),
}


class UnknownStrategy(LookupError):
    """The market loop named a strategy no registry holds."""


class SignalCandidate(Frozen):
    """A strategy's proposal: trade `symbol` on `side`, with features the scorer reads.

    `entry` is the close of the trigger bar, `stop` the protective stop (below `entry` for a
    long), `target` the take-profit, `confidence` the rule's own 1-5 grade and `at` the moment
    the trigger bar closed. Strategies without a setup (momentum) leave what they lack as None.
    """

    symbol: str = Field(min_length=1)
    side: OrderSide = OrderSide.BUY
    features: dict[str, JsonScalar] = Field(default_factory=dict)
    entry: Decimal | None = None
    stop: Decimal | None = None
    target: Decimal | None = None
    confidence: int | None = Field(None, ge=1, le=5)
    at: datetime | None = None


@runtime_checkable
class Strategy(Named, Protocol):
    """Proposes candidates from one timeframe's bars (oldest first per symbol), deterministically.

    The market loop picks it by name, which is also the strategy its signals record.
    """

    @property
    def timeframe(self) -> str:
        """The bars it reads: "1Min", "5Min", "15Min", "1Hour" or "1Day"."""
        ...

    @property
    def lookback_bars(self) -> int:
        """How many bars per symbol the live scan needs at most."""
        ...

    @property
    def max_signal_age(self) -> timedelta:
        """A live signal older than this at `now` is not proposed."""
        ...

    @property
    def same_day(self) -> bool:
        """True when the live scan needs only today's bars (from 04:00 New York), whatever
        `lookback_bars` says: the market loop then asks for today's bars, not a week's."""
        ...

    def signals(self, symbol: str, bars: Sequence[Bar]) -> list[SignalCandidate]:
        """Every signal the rule fires over closed `bars` (oldest first), each dated `at`.

        Causal: the signals of a prefix are exactly the signals of the whole series whose
        `at` is at or before the end of the prefix's last bar.
        """
        ...

    def scan(
        self, bars_by_symbol: Mapping[str, Sequence[Bar]], now: datetime
    ) -> list[SignalCandidate]:
        """Candidates for the symbols whose bars qualify at `now`, in symbol order."""
        ...


def signal_key(strategy: str, symbol: str, session_date: date) -> str:
    """One signal per strategy, symbol and session: `momentum:AAPL:2024-03-05`."""
    return f"{strategy}:{symbol}:{session_date.isoformat()}"


class StrategyRegistry(NamedRegistry[Strategy]):
    """Strategies by name; the market loop names the one it wants."""

    kind = "strategy"
    unknown = UnknownStrategy


def timeframe_delta(timeframe: str) -> timedelta:
    """How long one bar of `timeframe` lasts: "15Min" -> 15 minutes; unknown forms raise."""
    match = _TIMEFRAME.match(timeframe)
    if match is None:
        raise ValueError(
            f"timeframe {timeframe!r} is not <n>Min, <n>Hour, <n>Day or <n>Week (e.g. 15Min)"
        )
    return int(match.group(1)) * _UNIT[match.group(2)]


def closed_bars(bars: Sequence[Bar], timeframe: str, now: datetime) -> list[Bar]:
    """The bars that have closed by `now` (start + timeframe <= now), oldest first."""
    length = timeframe_delta(timeframe)
    return sorted((b for b in bars if b.timestamp + length <= now), key=lambda b: b.timestamp)


def scan_with_signals(
    strategy: Strategy, bars_by_symbol: Mapping[str, Sequence[Bar]], now: datetime
) -> list[SignalCandidate]:
    """The live scan from `signals`: per symbol, its newest signal if at most max_signal_age old.

    Only bars closed at `now` count, so a live scan sees what the backtest saw at that moment.
    """
    candidates: list[SignalCandidate] = []
    for symbol in sorted(bars_by_symbol):
        fired = strategy.signals(
            symbol, closed_bars(bars_by_symbol[symbol], strategy.timeframe, now)
        )
        if not fired:
            continue
        newest = fired[-1]
        if newest.at is not None and now - newest.at <= strategy.max_signal_age:
            candidates.append(newest)
    return candidates


def feature(value: Decimal) -> float:
    """A Decimal as a JSON number, rounded to FEATURE_PLACES."""
    return float(value.quantize(FEATURE_PLACES))
