"""The opening-range breakout: known days with known answers."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from pydantic import ValidationError

from tests.unit.bars import bar, flat_minutes, minutes, ny
from trading.broker_models import Bar, OrderSide
from trading.strategies import OrbConfig, OrbStrategy

DAY = date(2024, 3, 5)  # a Tuesday, New York on EST (UTC-5)
HALF_DAY = date(2024, 7, 3)  # closes at 13:00, New York on EDT (UTC-4)
ORB = OrbStrategy()


def opening_range(day: date = DAY, *, skip: frozenset[int] = frozenset()) -> list[Bar]:
    """09:30-09:44: flat at 100 within 99-101, one bar reaching 101.5, one 98.5; 1,000 shares."""
    bars = []
    for i, moment in enumerate(minutes(day, "09:30", 15)):
        if i in skip:
            continue
        high = Decimal("101.5") if i == 7 else Decimal(101)
        low = Decimal("98.5") if i == 3 else Decimal(99)
        bars.append(bar(moment, 100, high=high, low=low))
    return bars


def quiet(day: date, first: str, count: int) -> list[Bar]:
    """Bars inside the range (close 100.5, high 101), 1,000 shares each."""
    return flat_minutes(day, first, count, close="100.5", high=101, low=100)


def breakout(day: date, clock: str, close: str = "102", volume: int = 3000) -> Bar:
    return bar(
        ny(day, clock),
        close,
        open="101",
        high=Decimal(close) + Decimal("0.2"),
        low="100.9",
        volume=volume,
    )


def a_day(day: date = DAY) -> list[Bar]:
    """The range, quiet bars 09:45-09:59, a breakout at 10:00 on triple volume, quiet after."""
    return [
        *opening_range(day),
        *quiet(day, "09:45", 15),
        breakout(day, "10:00"),
        *quiet(day, "10:01", 30),
    ]


def test_a_breakout_gives_entry_at_the_close_stop_at_the_range_low_and_a_2r_target() -> None:
    (signal,) = ORB.signals("AAPL", a_day())
    assert signal.symbol == "AAPL" and signal.side is OrderSide.BUY
    assert (signal.entry, signal.stop, signal.target) == (
        Decimal("102"),
        Decimal("98.5"),
        Decimal("109.0"),
    )
    assert signal.at == ny(DAY, "10:01")  # the trigger bar's close
    # volume ratio 3 (+2), strength 0.5 / 3 < 0.25 (+0), 16 minutes after the range (+1)
    assert signal.confidence == 4
    features = signal.features
    assert features["range_high"] == 101.5 and features["range_low"] == 98.5
    assert features["volume_ratio"] == 3.0 and features["reward_risk"] == 2.0
    assert features["entry"] == 102.0 and features["stop"] == 98.5 and features["target"] == 109.0
    assert features["confidence"] == 4 and features["minutes_after_range"] == 16
    assert features["range_bars"] == 15


def test_the_fraction_stop_sits_that_share_of_the_range_below_its_high() -> None:
    (signal,) = OrbStrategy(stop_mode="fraction", stop_fraction=Decimal("0.5")).signals(
        "AAPL", a_day()
    )
    # range 98.5-101.5 (3 wide): stop 101.5 - 1.5 = 100.0, risk 2, target 106
    assert (signal.entry, signal.stop, signal.target) == (
        Decimal("102"),
        Decimal("100.0"),
        Decimal("106.0"),
    )


def test_a_range_that_holds_gives_nothing() -> None:
    # A close exactly at the range high is not above it.
    day = [*opening_range(), *quiet(DAY, "09:45", 15), breakout(DAY, "10:00", close="101.5")]
    assert ORB.signals("AAPL", day) == []


def test_a_breakout_without_volume_is_no_signal_and_a_later_one_with_volume_is() -> None:
    thin = [*opening_range(), *quiet(DAY, "09:45", 15), breakout(DAY, "10:00", volume=1000)]
    assert ORB.signals("AAPL", thin) == []  # 1,000 is the average, not above it
    later = [*thin, *quiet(DAY, "10:01", 5), breakout(DAY, "10:06", close="102.5")]
    (signal,) = ORB.signals("AAPL", later)
    assert signal.at == ny(DAY, "10:07") and signal.entry == Decimal("102.5")
    # A stricter factor refuses triple volume.
    assert OrbStrategy(volume_factor=Decimal(3)).signals("AAPL", a_day()) == []


def test_the_trigger_bar_must_close_by_the_cutoff() -> None:
    base = [*opening_range(), *quiet(DAY, "09:45", 15)]
    on_time = [*base, breakout(DAY, "11:29")]  # closes at 11:30
    too_late = [*base, breakout(DAY, "11:30")]
    (signal,) = ORB.signals("AAPL", on_time)
    assert signal.at == ny(DAY, "11:30")
    assert ORB.signals("AAPL", too_late) == []
    assert OrbStrategy(cutoff="10:00").signals("AAPL", a_day()) == []


def test_a_gap_above_the_range_must_still_close_above_it_after_the_range() -> None:
    # Bars during the range close far above its (growing) high: never a trigger.
    gapped_range = [bar(m, 104, open=104, high=105, low=100) for m in minutes(DAY, "09:30", 15)]
    fades = bar(ny(DAY, "09:45"), "104.5", open="106", high="106", low="104", volume=5000)
    assert ORB.signals("AAPL", [*gapped_range, fades]) == []  # opens above, closes below 105
    clears = bar(ny(DAY, "09:46"), "105.5", open="104.5", high="105.6", low="104.5", volume=5000)
    (signal,) = ORB.signals("AAPL", [*gapped_range, fades, clears])
    assert (signal.entry, signal.stop, signal.at) == (
        Decimal("105.5"),
        Decimal(100),
        ny(DAY, "09:47"),
    )


def test_a_half_day_breaks_normally_and_nothing_after_its_early_close_fires() -> None:
    morning = [*opening_range(HALF_DAY), *quiet(HALF_DAY, "09:45", 15), breakout(HALF_DAY, "10:00")]
    (signal,) = ORB.signals("AAPL", morning)
    assert signal.at == ny(HALF_DAY, "10:01") and signal.stop == Decimal("98.5")
    # A breakout only in the post-market bars after the 13:00 close gives nothing.
    late = [
        *opening_range(HALF_DAY),
        *quiet(HALF_DAY, "09:45", 30),
        *quiet(HALF_DAY, "13:00", 5),
        breakout(HALF_DAY, "13:05"),
    ]
    assert ORB.signals("AAPL", late) == []
    with pytest.raises(ValidationError, match="no later than 13:00"):
        OrbConfig(cutoff="14:00")
    with pytest.raises(ValidationError, match="after the range ends"):
        OrbConfig(cutoff="09:40")


def test_missing_minutes_in_the_range_still_count_until_the_range_is_too_thin() -> None:
    # 5 of 15 minutes without a bar (no trades): 10 bars cover the range; its extremes stand.
    sparse = [
        *opening_range(skip=frozenset({0, 1, 2, 10, 11})),
        *quiet(DAY, "09:45", 15),
        breakout(DAY, "10:00"),
    ]
    (signal,) = ORB.signals("AAPL", sparse)
    assert signal.stop == Decimal("98.5") and signal.features["range_bars"] == 10
    # A late first bar (data from 09:38 on): 7 of 15 minutes, under half - no range that day.
    late_start = [
        *opening_range(skip=frozenset(range(8))),
        *quiet(DAY, "09:45", 15),
        breakout(DAY, "10:00"),
    ]
    assert ORB.signals("AAPL", late_start) == []
    # Minutes missing after the range change nothing: the first bar after a hole can trigger.
    (after_hole,) = ORB.signals("AAPL", [*opening_range(), breakout(DAY, "10:20")])
    assert after_hole.at == ny(DAY, "10:21")


def test_a_zero_width_range_is_no_level() -> None:
    flat = flat_minutes(DAY, "09:30", 15, close=100)
    assert ORB.signals("AAPL", [*flat, breakout(DAY, "09:45", close="100.5")]) == []


def test_one_signal_per_day_and_a_new_range_each_day() -> None:
    first = [*a_day(), breakout(DAY, "10:31", close="103")]
    next_day = DAY + timedelta(days=1)
    signals = ORB.signals("AAPL", [*first, *a_day(next_day)])
    assert [s.at for s in signals] == [ny(DAY, "10:01"), ny(next_day, "10:01")]


def test_extended_hours_bars_are_ignored() -> None:
    pre_market = flat_minutes(DAY, "08:00", 30, close=90, high=120, low=80, volume=1)
    after_hours = flat_minutes(DAY, "16:00", 10, close=130, volume=99999)
    assert ORB.signals("AAPL", [*pre_market, *a_day(), *after_hours]) == ORB.signals(
        "AAPL", a_day()
    )


def test_the_volume_average_is_of_the_days_earlier_regular_bars() -> None:
    # The 09:45 bar is compared with the 15 range bars only (1,000 each): 1,500 passes.
    early = [*opening_range(), breakout(DAY, "09:45", volume=1500)]
    (signal,) = ORB.signals("AAPL", early)
    assert signal.features["volume_ratio"] == 1.5
    # Yesterday's heavy volume does not raise today's bar.
    heavy_yesterday = flat_minutes(DAY - timedelta(days=1), "15:00", 60, volume=10**6)
    assert ORB.signals("AAPL", [*heavy_yesterday, *early]) == [signal]


def test_the_live_scan_proposes_a_fresh_breakout_and_drops_a_stale_one() -> None:
    bars = a_day()
    fresh = ORB.scan({"AAPL": bars, "MSFT": []}, ny(DAY, "10:05"))
    assert [c.at for c in fresh] == [ny(DAY, "10:01")]
    assert ORB.scan({"AAPL": bars}, ny(DAY, "10:12")) == []  # 11 minutes old
    assert ORB.scan({"AAPL": bars}, ny(DAY, "10:00")) == []  # the trigger bar is still open
    assert ORB.lookback_bars == 450 and ORB.max_signal_age == timedelta(minutes=10)
