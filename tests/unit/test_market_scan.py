"""The market loop's scan: how far back bars are asked for, grouping, liquidity, the signal row."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from trading.broker_models import Bar, OrderSide
from trading.entry import EntrySignal
from trading.market_scan import LIQUIDITY_BARS, bars_start, by_timeframe, dollar_volume, signal_for
from trading.strategies import SignalCandidate, Strategy, builtin_strategies, timeframe_delta

NEW_YORK = ZoneInfo("America/New_York")
SESSION_OPEN, SESSION_MINUTES = time(9, 30), 390


@dataclass(frozen=True)
class FakeStrategy:
    """Just what the scan reads of a strategy: its name, timeframe and lookback."""

    name: str
    timeframe: str
    lookback_bars: int = 10
    max_signal_age: timedelta = timedelta(minutes=30)
    same_day: bool = False

    def signals(self, symbol: str, bars: Sequence[Bar]) -> list[SignalCandidate]:
        """No rule: the scan's plumbing is under test, not a strategy."""
        return []

    def scan(
        self, bars_by_symbol: Mapping[str, Sequence[Bar]], now: datetime
    ) -> list[SignalCandidate]:
        """No rule."""
        return []


def _bar(start: datetime, close: str, volume: int, symbol: str = "AAPL") -> Bar:
    price = Decimal(close)
    return Bar(
        symbol=symbol,
        timestamp=start,
        open=price,
        high=price,
        low=price,
        close=price,
        volume=Decimal(volume),
    )


# --- bars_start --------------------------------------------------------------------------------


def _session_bars(day: date, step: timedelta) -> list[datetime]:
    """The bar starts of one regular session (09:30-16:00 New York), one bar per step from the
    open; a step that does not divide the session ends it with a bar that runs past the close
    (an hour's bars: 09:30 ... 15:30, seven of them)."""
    if step >= timedelta(days=1):
        return [datetime.combine(day, time(0), tzinfo=NEW_YORK)]  # a daily bar: midnight ET
    opening = datetime.combine(day, SESSION_OPEN, tzinfo=NEW_YORK)
    session = timedelta(minutes=SESSION_MINUTES)
    return [opening + n * step for n in range(-(-session // step))]


def _closed_bars_between(start: datetime, now: datetime, step: timedelta) -> int:
    """Regular-session bars of a calendar with weekends and no holidays in [start, now]."""
    first, last = start.astimezone(NEW_YORK).date(), now.astimezone(NEW_YORK).date()
    count, day = 0, first
    while day <= last:
        if day.weekday() < 5:
            count += sum(1 for s in _session_bars(day, step) if start <= s and s + step <= now)
        day += timedelta(days=1)
    return count


@given(
    timeframe=st.sampled_from(["1Min", "5Min", "15Min", "30Min", "1Hour"]),
    lookback=st.integers(min_value=1, max_value=2000),
    now=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 12, 31)),
)
def test_an_intraday_window_holds_the_lookback_in_regular_sessions(
    timeframe: str, lookback: int, now: datetime
) -> None:
    at = now.replace(tzinfo=UTC)
    start = bars_start(timeframe, lookback, at)
    assert start < at
    assert _closed_bars_between(start, at, timeframe_delta(timeframe)) >= lookback


@given(
    lookback=st.integers(min_value=1, max_value=400),
    now=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 12, 31)),
)
def test_a_daily_window_holds_the_lookback_in_weekdays(lookback: int, now: datetime) -> None:
    at = now.replace(tzinfo=UTC)
    start = bars_start("1Day", lookback, at)
    assert _closed_bars_between(start, at, timedelta(days=1)) >= lookback


def test_the_window_at_a_monday_open_reaches_into_last_week() -> None:
    monday_open = datetime(2024, 3, 11, 13, 31, tzinfo=UTC)  # 09:31 New York
    start = bars_start("1Min", 390, monday_open)
    assert start <= datetime(2024, 3, 8, 14, 30, tzinfo=UTC)  # last Friday's open
    assert _closed_bars_between(start, monday_open, timedelta(minutes=1)) >= 390


def test_the_builtin_lookbacks_fit_their_windows() -> None:
    now = datetime(2024, 3, 11, 14, 0, tzinfo=UTC)
    for name in builtin_strategies().names():
        strategy = builtin_strategies().get(name)
        step = timeframe_delta(strategy.timeframe)
        start = bars_start(strategy.timeframe, strategy.lookback_bars, now, strategy.same_day)
        if strategy.same_day:  # today's bars from 04:00 New York (08:00 UTC in EDT)
            assert start == datetime(2024, 3, 11, 8, 0, tzinfo=UTC), name
        else:
            assert _closed_bars_between(start, now, step) >= strategy.lookback_bars, name


def test_a_same_day_window_is_today_from_the_pre_market_in_new_york() -> None:
    winter = datetime(2024, 3, 5, 15, 30, tzinfo=UTC)  # 10:30 EST
    assert bars_start("1Min", 450, winter, same_day=True) == datetime(2024, 3, 5, 9, 0, tzinfo=UTC)
    late = datetime(2024, 3, 6, 0, 30, tzinfo=UTC)  # 19:30 EST on the 5th
    assert bars_start("1Min", 450, late, same_day=True) == datetime(2024, 3, 5, 9, 0, tzinfo=UTC)


# --- grouping and liquidity ---------------------------------------------------------------------


def test_strategies_reading_one_timeframe_share_a_group_in_the_order_given() -> None:
    a, b, c, d = (
        FakeStrategy("orb", "1Min"),
        FakeStrategy("trend_pullback", "15Min"),
        FakeStrategy("momentum", "1Day"),
        FakeStrategy("scalper", "1Min"),
    )
    groups = by_timeframe([a, b, c, d])
    assert list(groups) == ["1Min", "15Min", "1Day"]
    assert groups["1Min"] == [a, d]
    assert groups["15Min"] == [b] and groups["1Day"] == [c]
    assert by_timeframe([]) == {}


def test_dollar_volume_is_the_mean_over_the_last_bars() -> None:
    start = datetime(2024, 3, 5, 14, 30, tzinfo=UTC)
    old = [_bar(start + timedelta(minutes=n), "1000", 1_000_000) for n in range(5)]
    recent = [
        _bar(start + timedelta(minutes=5 + n), "10.5" if n % 2 else "9.5", 100)
        for n in range(LIQUIDITY_BARS)
    ]
    assert LIQUIDITY_BARS == 20
    assert dollar_volume(old + recent) == Decimal("1000.0000")  # (1050 + 950) / 2
    assert dollar_volume([_bar(start, "12.345", 3)]) == Decimal("37.0350")
    assert dollar_volume([]) is None


# --- signal_for ---------------------------------------------------------------------------------


def test_a_candidates_setup_and_liquidity_go_into_the_signals_features() -> None:
    strategy = FakeStrategy("orb", "1Min")
    assert isinstance(strategy, Strategy)
    session = datetime.fromisoformat("2024-03-05T10:05:00-05:00")
    bars = [_bar(session - timedelta(minutes=n), "100", 2000) for n in range(3)]
    candidate = SignalCandidate(
        symbol="AAPL",
        features={"range_high": 101.5, "volume_ratio": 2.0},
        entry=Decimal("101.62"),
        stop=Decimal("99.875"),
        target=Decimal("105.111111"),
        confidence=4,
        at=session,
    )
    row = signal_for(strategy, candidate, bars, session)
    assert row.signal_key == "orb:AAPL:2024-03-05"
    assert (row.symbol, row.strategy, row.side) == ("AAPL", "orb", OrderSide.BUY)
    assert row.features == {
        "range_high": 101.5,
        "volume_ratio": 2.0,
        "entry": 101.62,
        "stop": 99.875,
        "target": 105.1111,
        "dollar_volume": 200000.0,
        "confidence": 4,
    }
    # The entry decision reads the setup back from the features.
    signal = EntrySignal(
        signal_id=1,
        signal_key=row.signal_key,
        symbol=row.symbol,
        strategy=row.strategy,
        score=Decimal("0.7"),
        created_at=session,
        features=row.features,
    )
    assert signal.entry == Decimal("101.62") and signal.stop == Decimal("99.875")
    assert signal.target == Decimal("105.1111") and signal.setup_confidence == 4
    assert signal.liquidity == Decimal("200000.0")


def test_a_candidate_without_a_setup_keeps_its_own_features_only() -> None:
    session = datetime.fromisoformat("2024-03-05T15:55:00-05:00")
    candidate = SignalCandidate(symbol="MSFT", features={"momentum": 0.12})
    row = signal_for(FakeStrategy("momentum", "1Day"), candidate, [], session)
    assert row.signal_key == "momentum:MSFT:2024-03-05"
    assert row.features == {"momentum": 0.12}
