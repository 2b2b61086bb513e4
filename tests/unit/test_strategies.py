"""The default momentum strategy and the strategy registry."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trading.broker_models import Bar
from trading.scoring import MomentumVolumeScorer, SignalToScore
from trading.strategies import (
    MomentumStrategy,
    Strategy,
    UnknownStrategy,
    builtin_strategies,
    signal_key,
)
from trading.strategies.momentum import momentum, rsi

NOW = datetime(2024, 3, 5, 21, 0, tzinfo=UTC)


def _bars(symbol: str, closes: list[Decimal], volume: int = 1000) -> list[Bar]:
    start = NOW - timedelta(days=len(closes))
    return [
        Bar(
            symbol=symbol,
            timestamp=start + timedelta(days=i),
            open=c,
            high=c,
            low=c,
            close=c,
            volume=Decimal(volume),
        )
        for i, c in enumerate(closes)
    ]


def test_rising_symbols_become_buy_candidates_the_scorer_understands() -> None:
    strategy = MomentumStrategy(lookback=10)
    rising = [Decimal(100 + i) for i in range(20)]
    falling = [Decimal(200 - i) for i in range(20)]
    bars = {"AAPL": _bars("AAPL", rising), "MSFT": _bars("MSFT", falling)}
    (candidate,) = strategy.scan(bars, NOW)
    assert candidate.symbol == "AAPL"
    assert candidate.features["momentum"] == pytest.approx(119 / 109 - 1, abs=1e-6)
    assert candidate.features["volume_ratio"] == 1.0 and candidate.features["rsi"] == 100.0
    score = MomentumVolumeScorer().score(
        SignalToScore(
            signal_key="k", symbol="AAPL", strategy="momentum", features=candidate.features
        )
    )
    assert score.score > 0


def test_too_few_bars_and_future_bars_are_ignored() -> None:
    strategy = MomentumStrategy(lookback=10)
    assert strategy.scan({"AAPL": _bars("AAPL", [Decimal(1)] * 5)}, NOW) == []
    assert (
        strategy.scan(
            {"AAPL": _bars("AAPL", [Decimal(100 + i) for i in range(20)])}, NOW - timedelta(days=15)
        )
        == []
    )


def test_registry_and_signal_key() -> None:
    registry = builtin_strategies()
    assert registry.names() == ["momentum", "orb", "trend_pullback"]
    assert all(isinstance(registry.get(name), Strategy) for name in registry.names())
    with pytest.raises(UnknownStrategy, match="registered: momentum, orb, trend_pullback"):
        registry.get("nope")
    assert signal_key("momentum", "AAPL", date(2024, 3, 5)) == "momentum:AAPL:2024-03-05"


@given(
    st.lists(
        st.decimals(min_value=Decimal(1), max_value=Decimal(1000), places=2),
        min_size=2,
        max_size=60,
    )
)
def test_rsi_stays_in_range_and_momentum_matches_the_closes(closes: list[Decimal]) -> None:
    value = rsi(closes, 14)
    if len(closes) < 15:
        assert value is None
    else:
        assert value is not None and 0 <= value <= 100
    move = momentum(closes, 1)
    assert move == closes[-1] / closes[-2] - 1
