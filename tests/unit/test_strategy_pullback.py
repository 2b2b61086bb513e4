"""The trend pullback: a climb, a dip to the short average, a recovery - known answers."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from pydantic import ValidationError

from tests.unit.bars import Number, bar, ny, series, session_slots
from trading.broker_models import Bar
from trading.strategies import PullbackConfig, PullbackStrategy

FIRST = date(2024, 3, 4)  # a Monday
STEP = timedelta(minutes=15)
# Short averages so a hand-checked series triggers: SMA 5 rising over 2 bars, SMA 3.
SMALL = PullbackConfig(long_ma=5, short_ma=3, slope_bars=2, swing_lookback=5, volume_lookback=5)
STRATEGY = PullbackStrategy(SMALL)

Row = tuple[Number, Number, Number, Number] | Number


def climb(count: int = 9, start: int = 100) -> list[Row]:
    """Closes rising by 1, each bar 0.5 either side of its close."""
    return [
        (c, Decimal(c) + Decimal("0.5"), Decimal(c) - Decimal("0.5"), c)
        for c in range(start, start + count)
    ]


# Bar 8 closes 108 (SMA5 106, rising; SMA3 107). Bar 9 dips: low 105.5 touches SMA3 107.
DIP: Row = (108, "108.2", "105.5", 106)


def bars(rows: list[Row], volume: Number = 1000) -> list[Bar]:
    return series(session_slots(FIRST, len(rows), STEP), rows, volume=volume)


def test_a_recovery_under_the_swing_high_targets_the_swing_high() -> None:
    # Bar 10 closes 107.8 above SMA3 (108 + 106 + 107.8) / 3 = 107.27 with SMA5 106.96 rising.
    rows = [*climb(), DIP, (106, 108, "105.2", "107.8")]
    (signal,) = STRATEGY.signals("AAPL", bars(rows))
    # stop: the pullback's lowest low 105.2 less 0.1 %; target: the highest high of the five
    # bars before the dip (bar 8: 108.5), above the entry.
    assert signal.entry == Decimal("107.8")
    assert signal.stop == Decimal("105.2") * Decimal("0.999") == Decimal("105.0948")
    assert signal.target == Decimal("108.5")
    assert signal.at == session_slots(FIRST, 11, STEP)[-1] + STEP
    assert signal.features["pullback_low"] == 105.2 and signal.features["swing_high"] == 108.5
    assert signal.features["reward_risk"] == pytest.approx(0.7 / 2.7052, abs=1e-6)
    assert signal.features["ma_long"] == pytest.approx(106.96)


def test_a_recovery_above_the_swing_high_targets_two_r() -> None:
    rows = [*climb(), DIP, (106, "108.8", "105.2", "108.6")]
    (signal,) = STRATEGY.signals("AAPL", bars(rows))
    # risk 108.6 - 105.0948 = 3.5052; target 108.6 + 2 x 3.5052
    assert (signal.entry, signal.stop, signal.target) == (
        Decimal("108.6"),
        Decimal("105.0948"),
        Decimal("115.6104"),
    )
    assert signal.features["reward_risk"] == 2.0
    # reward/risk 2 (+1), flat volume (+0), RSI(3) never oversold (+0), SMA5 slope 1.9 % (+1)
    assert signal.confidence == 3


def test_one_signal_per_pullback_and_none_on_the_dip_itself() -> None:
    rows = [*climb(), DIP]
    assert STRATEGY.signals("AAPL", bars(rows)) == []
    # Two recoveries in a row: the second is not a new pullback (its low stays above SMA3).
    both = [*rows, (106, "108.8", "105.2", "108.6"), ("108.6", "109.8", "108.9", "109.5")]
    assert len(STRATEGY.signals("AAPL", bars(both))) == 1


def test_a_steady_climb_without_a_dip_gives_nothing() -> None:
    # Lows (close - 0.5) stay above SMA3 (close - 1); RSI stays at 100.
    assert STRATEGY.signals("AAPL", bars(climb(40))) == []


def test_a_downtrend_gives_nothing_even_with_bounces() -> None:
    rows: list[Row] = []
    price = Decimal(150)
    for i in range(60):
        price += Decimal(2) if i % 4 == 3 else Decimal(-1)  # falls 3, bounces 2
        rows.append((price, price + 1, price - 1, price))
    assert STRATEGY.signals("AAPL", bars(rows)) == []
    assert PullbackStrategy().signals("AAPL", bars(rows)) == []


def test_a_pullback_is_abandoned_when_the_long_average_stops_rising() -> None:
    # After the dip, closes sag until SMA5 turns down: the pullback is over. The climb that
    # follows never dips to SMA3 again, so no new pullback starts and nothing fires, though its
    # bars close above SMA3 with SMA5 rising once more.
    sag: list[Row] = [(c, c, c, c) for c in ("105.8", "105.5", "105", "104.5", "104", "103.5")]
    rise = [(c, c + Decimal("0.5"), c - Decimal("0.5"), c) for c in _steps("104.5", "1.5", 8)]
    assert STRATEGY.signals("AAPL", bars([*climb(), DIP, *sag, *rise])) == []


def test_a_pullback_without_a_recovery_in_max_pullback_bars_is_abandoned() -> None:
    inside: Row = ("106.5", 107, 106, "106.5")  # below SMA3 (106.83): no recovery yet
    recover: Row = ("106.5", "108.8", "106.4", "108.6")
    rows = [*climb(), DIP, inside, recover]
    (signal,) = STRATEGY.signals("AAPL", bars(rows))
    assert signal.stop == Decimal("105.5") * Decimal("0.999")
    assert signal.features["pullback_bars"] == 3
    assert PullbackStrategy(SMALL, max_pullback_bars=1).signals("AAPL", bars(rows)) == []


def _steps(first: str, step: str, count: int) -> list[Decimal]:
    return [Decimal(first) + Decimal(step) * i for i in range(count)]


def test_an_oversold_rsi_during_the_pullback_raises_the_confidence() -> None:
    # A sharp drop from 108 to 100: RSI(3) = 100 - 100 / (1 + (2/3) / (8/3)) = 20; SMA5 still
    # rises (105.2 over 105). The recovery to 109.5 clears SMA3 and a rising SMA5 (106.1).
    drop: Row = (108, 108, "99.9", 100)
    recover: Row = (100, "109.8", 100, "109.5")
    rows = [*climb(), drop, recover]
    oversold_at_30 = PullbackStrategy(SMALL, rsi_oversold=30)
    (signal,) = oversold_at_30.signals("AAPL", bars(rows))
    assert signal.features["rsi_min"] == pytest.approx(20)
    assert (signal.entry, signal.stop, signal.target) == (
        Decimal("109.5"),
        Decimal("99.8001"),
        Decimal("128.8998"),
    )
    # 2R (+1), RSI oversold (+1), SMA5 slope under 0.5 % (+0), flat volume (+0)
    assert signal.confidence == 3
    (plain,) = PullbackStrategy(SMALL, rsi_oversold=15).signals("AAPL", bars(rows))
    assert plain.confidence == 2 and plain.entry == signal.entry
    # Heavy volume on the recovery bar adds a point.
    heavy = bars(rows)
    heavy[-1] = heavy[-1].model_copy(update={"volume": Decimal(1200)})
    (loud,) = oversold_at_30.signals("AAPL", heavy)
    assert loud.confidence == 4 and loud.features["volume_ratio"] == 1.2


def test_extended_hours_bars_are_skipped() -> None:
    rows = [*climb(), DIP, (106, "108.8", "105.2", "108.6")]
    regular = bars(rows)
    pre_market = [bar(ny(FIRST, "08:00") + STEP * i, 50, volume=1) for i in range(4)]
    assert STRATEGY.signals("AAPL", [*pre_market, *regular]) == STRATEGY.signals("AAPL", regular)


def test_daily_bars_are_all_read() -> None:
    daily = PullbackStrategy(SMALL.model_copy(update={"timeframe": "1Day"}))
    rows = [*climb(), DIP, (106, "108.8", "105.2", "108.6")]
    slots = [ny(FIRST, "00:00") + timedelta(days=i) for i in range(len(rows))]
    (signal,) = daily.signals("AAPL", series(slots, rows))
    assert signal.target == Decimal("115.6104") and signal.at == slots[-1] + timedelta(days=1)
    assert daily.max_signal_age == timedelta(days=1)


def test_config_is_checked() -> None:
    with pytest.raises(ValidationError, match="short_ma 50 must be below long_ma 50"):
        PullbackConfig(short_ma=50)
    with pytest.raises(ValidationError, match="timeframe"):
        PullbackConfig(timeframe="15m")
    strategy = PullbackStrategy()
    assert strategy.timeframe == "15Min" and strategy.max_signal_age == STEP
    assert strategy.lookback_bars == 50 + 5 + 20 + 20
