"""The backtest's signal book: every strategy's signals on every symbol, scored, in time order.

Each strategy's `signals()` runs once over each symbol's whole series of its timeframe (one
pass, O(n); causal, so each signal is what a live scan would have seen when it fired). A
signal is kept when it is dated inside the window, is a long and the scorer can score it;
`skipped` counts the others by reason. Liquidity for the ranker is the dollar volume
(close * volume) of the `liquidity_bars` bars up to the trigger bar.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from trading.broker_models import Bar, OrderSide
from trading.ranker import RankInput
from trading.scoring import Scorer, ScoringError, SignalToScore
from trading.strategies.base import SignalCandidate, Strategy, timeframe_delta

_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class BookedSignal:
    """One scored signal waiting for its bar: the candidate and what the ranker reads."""

    at: datetime
    key: str
    strategy: str
    candidate: SignalCandidate
    score: Decimal
    rank_input: RankInput


@dataclass(frozen=True, slots=True)
class SignalBook:
    """Every kept signal, oldest first (ties by key), and the counts of those dropped."""

    signals: list[BookedSignal]
    skipped: Counter[str]
    bars_read: int


def booked_key(strategy: str, symbol: str, at: datetime) -> str:
    """A signal's key in a backtest: strategy, symbol and when it fired (unique per bar)."""
    return f"{strategy}:{symbol}:{at.isoformat()}"


def dollar_volume(bars: Sequence[Bar], at: datetime, timeframe: str, count: int) -> Decimal | None:
    """close * volume summed over up to `count` bars ending with the bar that closed at `at`."""
    last = bisect.bisect_right(bars, at - timeframe_delta(timeframe), key=lambda b: b.timestamp)
    window = bars[max(0, last - count) : last]
    if not window:
        return None
    return sum((b.close * b.volume for b in window), _ZERO)


def book_signals(
    strategies: Sequence[Strategy],
    bars: Mapping[str, Mapping[str, Sequence[Bar]]],
    scorer: Scorer,
    *,
    start: datetime | None,
    end: datetime | None,
    min_score: Decimal | None = None,
    liquidity_bars: int = 20,
) -> SignalBook:
    """Run each strategy over each symbol's bars of its timeframe (`bars[timeframe][symbol]`)."""
    kept: list[BookedSignal] = []
    skipped: Counter[str] = Counter()
    bars_read = 0
    for strategy in strategies:
        series = bars.get(strategy.timeframe, {})
        for symbol in sorted(series):
            symbol_bars = series[symbol]
            bars_read += len(symbol_bars)
            for candidate in strategy.signals(symbol, symbol_bars):
                at = candidate.at
                if at is None:
                    skipped["undated"] += 1
                    continue
                if (start is not None and at < start) or (end is not None and at >= end):
                    continue  # warm-up, or after the window: not a signal of this run
                if candidate.side is not OrderSide.BUY:
                    skipped["short_not_supported"] += 1
                    continue
                key = booked_key(strategy.name, symbol, at)
                try:
                    result = scorer.score(
                        SignalToScore(
                            signal_key=key,
                            symbol=symbol,
                            strategy=strategy.name,
                            side=candidate.side,
                            features=candidate.features,
                        )
                    )
                except ScoringError as exc:
                    skipped[f"scoring_error:{exc.code}"] += 1
                    continue
                if min_score is not None and result.score <= min_score:
                    skipped["below_min_score"] += 1
                    continue
                kept.append(
                    BookedSignal(
                        at=at,
                        key=key,
                        strategy=strategy.name,
                        candidate=candidate,
                        score=result.score,
                        rank_input=RankInput(
                            signal_key=key,
                            symbol=symbol,
                            strategy=strategy.name,
                            score=result.score,
                            confidence=candidate.confidence,
                            entry=candidate.entry,
                            stop=candidate.stop,
                            target=candidate.target,
                            liquidity=dollar_volume(
                                symbol_bars, at, strategy.timeframe, liquidity_bars
                            ),
                        ),
                    )
                )
    kept.sort(key=lambda s: (s.at, s.key))
    return SignalBook(signals=kept, skipped=skipped, bars_read=bars_read)
