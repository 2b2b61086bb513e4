"""The market loop's scan, pure: which bars each strategy needs, and a candidate as a signal.

Strategies that read the same timeframe share one bars request. A request reaches back far
enough for the strategy with the longest lookback, counted in whole 6.5-hour sessions spread
over calendar days with weekends and holidays to spare - except that a group of `same_day`
strategies (ORB) asks only for today's bars from 04:00 New York, not a week of minute bars.
A candidate's setup (entry, stop, target, confidence) and the liquidity of its symbol go into
the signal's features, so the ranker and the risk engine read them from the ledger exactly as
the strategy proposed them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from pydantic import AwareDatetime, Field

from trading.broker_models import Bar
from trading.ledger_records import SignalCreate
from trading.models import Frozen, JsonScalar
from trading.strategies import SignalCandidate, Strategy, StrategyConfigs, signal_key
from trading.strategies.base import timeframe_delta

SESSION_MINUTES = 390
NEW_YORK = ZoneInfo("America/New_York")
PRE_MARKET = time(4, 0)
LIQUIDITY_BARS = 20  # dollar volume: the mean of close x volume over the last bars read
_PLACES = Decimal("0.0001")


class ScanRequest(Frozen):
    """Scan `symbols` with `strategies` (all reading `timeframe`) on bars since `start`."""

    symbols: list[str] = Field(min_length=1)
    timeframe: str
    strategies: list[str] = Field(min_length=1)
    strategy_configs: StrategyConfigs = Field(default_factory=StrategyConfigs)
    start: AwareDatetime
    now: AwareDatetime


class ScanResult(Frozen):
    """The signals a scan proposes (ledger rows to insert) and how many bars it read."""

    signals: list[SignalCreate] = Field(default_factory=list)
    bars_read: int = 0


def bars_start(
    timeframe: str, lookback_bars: int, now: datetime, same_day: bool = False
) -> datetime:
    """How far back to ask for `lookback_bars` closed bars of `timeframe` before `now`
    (`same_day`: today's pre-market start in New York)."""
    if same_day:
        local = now.astimezone(NEW_YORK)
        return datetime.combine(local.date(), PRE_MARKET, tzinfo=NEW_YORK).astimezone(now.tzinfo)
    step = timeframe_delta(timeframe)
    if step >= timedelta(days=1):
        days = math.ceil(lookback_bars * step / timedelta(days=1) * 7 / 5) + 4
        return now - timedelta(days=days)
    sessions = math.ceil(lookback_bars * step / timedelta(minutes=SESSION_MINUTES)) + 1
    return now - timedelta(days=math.ceil(sessions * 7 / 5) + 3)


def by_timeframe(strategies: Iterable[Strategy]) -> dict[str, list[Strategy]]:
    """Strategies grouped by the timeframe they read, in the order given."""
    groups: dict[str, list[Strategy]] = {}
    for strategy in strategies:
        groups.setdefault(strategy.timeframe, []).append(strategy)
    return groups


def dollar_volume(bars: Sequence[Bar]) -> Decimal | None:
    """Mean close x volume of the last LIQUIDITY_BARS bars (None without bars)."""
    recent = bars[-LIQUIDITY_BARS:]
    if not recent:
        return None
    total = sum((b.close * b.volume for b in recent), Decimal(0))
    return (total / len(recent)).quantize(_PLACES)


def _number(value: Decimal) -> float:
    return float(value.quantize(_PLACES))


def signal_for(
    strategy: Strategy,
    candidate: SignalCandidate,
    bars: Sequence[Bar],
    session: datetime,
) -> SignalCreate:
    """The ledger row of a candidate: its features plus its setup and its symbol's liquidity."""
    features: dict[str, JsonScalar] = dict(candidate.features)
    for name, value in (
        ("entry", candidate.entry),
        ("stop", candidate.stop),
        ("target", candidate.target),
        ("dollar_volume", dollar_volume(bars)),
    ):
        if value is not None:
            features[name] = _number(value)
    if candidate.confidence is not None:
        features["confidence"] = candidate.confidence
    return SignalCreate(
        signal_key=signal_key(strategy.name, candidate.symbol, session.date()),
        symbol=candidate.symbol,
        strategy=strategy.name,
        side=candidate.side,
        features=features,
    )
