"""The Strategy contract, for every built-in strategy, over random bars (hypothesis).

Causal: the signals of a prefix are the signals of the whole dated within the prefix.
The live scan proposes exactly the newest fresh signal of the closed bars. Every setup has
stop < entry < target and a confidence of 1-5; the ORB fires at most once a symbol a day.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.bars import NEW_YORK, minutes, ny, session_slots, weekdays
from trading.broker_models import Bar
from trading.strategies import (
    MomentumStrategy,
    OrbStrategy,
    PullbackConfig,
    PullbackStrategy,
    Strategy,
    builtin_strategies,
    timeframe_delta,
)

FIRST = date(2024, 3, 4)
SMALL_PULLBACK = PullbackStrategy(
    PullbackConfig(long_ma=8, short_ma=3, slope_bars=2, swing_lookback=6, volume_lookback=5)
)
EASY_ORB = OrbStrategy(range_minutes=5, volume_factor=Decimal("0.5"), cutoff="10:30")
STRATEGIES: list[Strategy] = [
    *(builtin_strategies().get(name) for name in builtin_strategies().names()),
    SMALL_PULLBACK,
    EASY_ORB,
]
SETUP_FEATURES = {"entry", "stop", "target", "reward_risk", "volume_ratio", "confidence"}

# One bar: close move and wicks in cents, and a volume. The drift up makes trends likely.
steps = st.lists(
    st.tuples(st.integers(-40, 45), st.integers(0, 30), st.integers(0, 30), st.integers(1, 4000)),
    min_size=1,
    max_size=260,
)


def slots(timeframe: str, count: int) -> list[datetime]:
    """Bar starts for a timeframe: minutes from 09:20 to 10:50 a day, sessions, or midnights."""
    if timeframe == "1Min":
        found: list[datetime] = []
        for day in weekdays(FIRST):
            found.extend(minutes(day, "09:20", 90))
            if len(found) >= count:
                return found[:count]
    if timeframe == "1Day":
        return [ny(day, "00:00") for day, _ in zip(weekdays(FIRST), range(count), strict=False)]
    return session_slots(FIRST, count, timeframe_delta(timeframe))


def walk(timeframe: str, moves: list[tuple[int, int, int, int]]) -> list[Bar]:
    price = Decimal(100)
    bars = []
    for start, (move, up, down, volume) in zip(slots(timeframe, len(moves)), moves, strict=True):
        close = max(Decimal("1"), price + Decimal(move) / 100)
        bars.append(
            Bar(
                symbol="SYM",
                timestamp=start,
                open=price,
                high=max(price, close) + Decimal(up) / 100,
                low=max(Decimal("0.5"), min(price, close) - Decimal(down) / 100),
                close=close,
                volume=Decimal(volume),
            )
        )
        price = close
    return bars


def ids(strategy: Strategy) -> str:
    return f"{strategy.name}-{strategy.timeframe}"


@pytest.mark.parametrize("strategy", STRATEGIES, ids=ids)
@settings(max_examples=60, deadline=None)
@given(moves=steps, cut=st.floats(min_value=0, max_value=1))
def test_signals_are_causal(
    strategy: Strategy, moves: list[tuple[int, int, int, int]], cut: float
) -> None:
    bars = walk(strategy.timeframe, moves)
    k = max(1, round(cut * len(bars)))
    end = bars[k - 1].timestamp + timeframe_delta(strategy.timeframe)
    whole = strategy.signals("SYM", bars)
    assert strategy.signals("SYM", bars[:k]) == [s for s in whole if s.at and s.at <= end]


@pytest.mark.parametrize("strategy", STRATEGIES, ids=ids)
@settings(max_examples=60, deadline=None)
@given(moves=steps)
def test_every_setup_is_well_formed(
    strategy: Strategy, moves: list[tuple[int, int, int, int]]
) -> None:
    bars = walk(strategy.timeframe, moves)
    length = timeframe_delta(strategy.timeframe)
    ends = {b.timestamp + length for b in bars}
    for signal in strategy.signals("SYM", bars):
        assert signal.symbol == "SYM" and signal.at in ends
        assert signal.entry is not None
        if signal.stop is None:  # momentum: no setup
            assert signal.target is None and signal.confidence is None
            continue
        assert signal.target is not None and signal.stop < signal.entry < signal.target
        assert signal.confidence is not None and 1 <= signal.confidence <= 5
        assert set(signal.features) >= SETUP_FEATURES
        assert all(isinstance(signal.features[name], int | float) for name in SETUP_FEATURES)


@pytest.mark.parametrize("strategy", [OrbStrategy(), EASY_ORB], ids=ids)
@settings(max_examples=60, deadline=None)
@given(moves=steps)
def test_the_orb_fires_at_most_once_a_day(
    strategy: Strategy, moves: list[tuple[int, int, int, int]]
) -> None:
    signals = strategy.signals("SYM", walk("1Min", moves))
    days = Counter(s.at.astimezone(NEW_YORK).date() for s in signals if s.at)
    assert all(count == 1 for count in days.values())


@pytest.mark.parametrize("strategy", [s for s in STRATEGIES if s.name != "momentum"], ids=ids)
@settings(max_examples=60, deadline=None)
@given(moves=steps, cut=st.floats(min_value=0, max_value=1), late=st.floats(0, 2.5))
def test_the_live_scan_proposes_the_newest_fresh_signal_of_the_closed_bars(
    strategy: Strategy, moves: list[tuple[int, int, int, int]], cut: float, late: float
) -> None:
    bars = walk(strategy.timeframe, moves)
    k = max(1, round(cut * len(bars)))
    now = bars[k - 1].timestamp + timeframe_delta(strategy.timeframe)
    now += strategy.max_signal_age * late
    closed = [b for b in bars if b.timestamp + timeframe_delta(strategy.timeframe) <= now]
    fired = strategy.signals("SYM", closed)
    expected = (
        [fired[-1]]
        if fired and fired[-1].at and now - fired[-1].at <= strategy.max_signal_age
        else []
    )
    # The scan gets every bar, the unfinished and future ones too, and filters them itself.
    assert strategy.scan({"SYM": bars, "NONE": []}, now) == expected


@settings(max_examples=60, deadline=None)
@given(moves=steps, cut=st.floats(min_value=0, max_value=1))
def test_the_momentum_scan_proposes_the_newest_bars_signal(
    moves: list[tuple[int, int, int, int]], cut: float
) -> None:
    strategy = MomentumStrategy()
    bars = walk("1Day", moves)
    k = max(1, round(cut * len(bars)))
    now = bars[k - 1].timestamp + timedelta(days=1)
    fired = strategy.signals("SYM", bars[:k])
    expected = [fired[-1]] if fired and fired[-1].at == now else []
    assert strategy.scan({"SYM": bars[:k]}, now) == expected
