"""The backtest engine on hand-built minute bars: fills, exits, ranking, risk gates, figures.

A scripted strategy fires fixed signals and a fixed scorer rates them, so each test checks the
engine alone. 2024-03-05 is before the DST change: 09:30 New York is 14:30 UTC.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from trading.backtest import BacktestConfig, ExitReason, run_backtest
from trading.backtest.fills import exit_on_bar
from trading.backtest.metrics import max_drawdown, sharpe
from trading.backtest.models import EquityPoint
from trading.broker_models import Bar
from trading.risk import RiskLimits
from trading.scoring import ScoreResult, SignalToScore
from trading.strategies.base import SignalCandidate

OPEN = datetime(2024, 3, 5, 14, 30, tzinfo=UTC)  # 09:30 New York
D = Decimal
# Wide allocation and heat so sizing is the risk budget alone unless a test narrows them.
WIDE = RiskLimits(max_allocation_pct=D("0.9"), max_heat_pct=D("0.5"))


def bar(symbol: str, minute: int, o: str, h: str, low: str, c: str, day: int = 0) -> Bar:
    """A minute bar `minute` minutes after the open of the session `day` days later."""
    return Bar(
        symbol=symbol,
        timestamp=OPEN + timedelta(days=day, minutes=minute),
        open=D(o),
        high=D(h),
        low=D(low),
        close=D(c),
        volume=D(1000),
    )


def flat(symbol: str, minutes: range, price: str, day: int = 0) -> list[Bar]:
    """Bars that do not move."""
    return [bar(symbol, m, price, price, price, price, day) for m in minutes]


def signal(
    symbol: str, minute: int, entry: str, stop: str, target: str | None, day: int = 0
) -> SignalCandidate:
    """A long fired at the close of the bar `minute` (so `at` is the next minute)."""
    return SignalCandidate(
        symbol=symbol,
        entry=D(entry),
        stop=D(stop),
        target=D(target) if target else None,
        confidence=3,
        at=OPEN + timedelta(days=day, minutes=minute + 1),
    )


class Scripted:
    """A 1Min strategy that fires the signals it was given (each at its `at`)."""

    name = "scripted"
    timeframe = "1Min"
    lookback_bars = 1
    max_signal_age = timedelta(minutes=5)

    def __init__(self, fired: Sequence[SignalCandidate]) -> None:
        self.fired = list(fired)

    def signals(self, symbol: str, bars: Sequence[Bar]) -> list[SignalCandidate]:
        """The scripted signals of `symbol`."""
        return [s for s in self.fired if s.symbol == symbol]

    def scan(self, bars_by_symbol: object, now: datetime) -> list[SignalCandidate]:
        """Not used by the backtest."""
        return []


class FixedScorer:
    """Scores by symbol from a table (default 0.5)."""

    name = "fixed"

    def __init__(self, scores: dict[str, str] | None = None) -> None:
        self.scores = scores or {}

    def score(self, signal: SignalToScore) -> ScoreResult:
        """The table's score, confidence 0.5."""
        return ScoreResult(score=D(self.scores.get(signal.symbol, "0.5")), confidence=D("0.5"))


def run(
    bars: list[Bar],
    fired: list[SignalCandidate],
    *,
    slippage: str = "0",
    limits: RiskLimits = WIDE,
    scores: dict[str, str] | None = None,
):  # type: ignore[no-untyped-def]
    by_symbol: dict[str, list[Bar]] = {}
    for b in sorted(bars, key=lambda b: b.timestamp):
        by_symbol.setdefault(b.symbol, []).append(b)
    config = BacktestConfig(equity=D(100_000), slippage_bps=D(slippage), limits=limits)
    return run_backtest([Scripted(fired)], {"1Min": by_symbol}, FixedScorer(scores), config)


def test_an_entry_fills_at_the_next_open_plus_slippage_and_exits_at_the_target() -> None:
    """Signal at the close of 09:30 (entry 100, stop 99, target 102), 10 bps slippage.

    Size: 0.5 % of 100,000 = 500 risk / (100 - 99) = 500 shares.
    Entry: the 09:31 open 100.50 * 1.001 = 100.6005. 09:32 reaches 102.5 >= 102: the target
    fills at 102 (a limit: no slippage). P&L (102 - 100.6005) * 500 = 699.75;
    R = 699.75 / ((100.6005 - 99) * 500 = 800.25) = 0.8744.
    """
    bars = [
        bar("AAA", 0, "100", "100", "100", "100"),
        bar("AAA", 1, "100.50", "101", "100.20", "100.80"),
        bar("AAA", 2, "101", "102.50", "100.90", "102.20"),
        *flat("AAA", range(3, 6), "102.20"),
    ]
    result = run(bars, [signal("AAA", 0, "100", "99", "102")], slippage="10")
    [trade] = result.trades
    assert trade.entry_time == OPEN + timedelta(minutes=1)
    assert trade.entry_price == D("100.6005")
    assert trade.qty == 500
    assert (trade.exit_price, trade.exit_reason) == (D("102"), ExitReason.TARGET)
    assert trade.exit_time == OPEN + timedelta(minutes=2)
    assert trade.pnl == D("699.75")
    assert trade.r_multiple == D("0.8744")
    assert result.summary.total_pnl == D("699.75")
    assert result.summary.end_equity == D("100699.75")
    assert result.summary.win_rate == 1


def test_a_gap_through_the_stop_fills_at_the_open_minus_slippage() -> None:
    """Entry at the 09:31 open 100 * 1.001 = 100.10, stop 99; 09:32 opens at 98, below it.

    The stop fills at the open: 98 * 0.999 = 97.902; P&L (97.902 - 100.10) * 500 = -1099.
    """
    bars = [
        bar("AAA", 0, "100", "100", "100", "100"),
        bar("AAA", 1, "100", "100.50", "99.50", "100"),
        bar("AAA", 2, "98", "98.50", "97", "98"),
        *flat("AAA", range(3, 5), "98"),
    ]
    result = run(bars, [signal("AAA", 0, "100", "99", "103")], slippage="10")
    [trade] = result.trades
    assert trade.entry_price == D("100.1")
    assert (trade.exit_price, trade.exit_reason) == (D("97.902"), ExitReason.STOP)
    assert trade.pnl == D("-1099.0000")
    assert result.summary.losses == 1


def test_a_bar_touching_stop_and_target_is_the_stop_and_a_gap_over_the_target_fills_at_open() -> (
    None
):
    """AAA's 09:32 bar spans 98-104 (stop 99, target 103): the stop at 99.
    BBB's 09:32 bar opens at 106 over its 103 target: filled at 106."""
    bars = [
        bar("AAA", 0, "100", "100", "100", "100"),
        bar("AAA", 1, "100", "100", "100", "100"),
        bar("AAA", 2, "100", "104", "98", "101"),
        bar("BBB", 0, "100", "100", "100", "100"),
        bar("BBB", 1, "100", "100", "100", "100"),
        bar("BBB", 2, "106", "107", "105", "106"),
    ]
    result = run(bars, [signal("AAA", 0, "100", "99", "103"), signal("BBB", 0, "100", "99", "103")])
    by_symbol = {t.symbol: t for t in result.trades}
    assert (by_symbol["AAA"].exit_price, by_symbol["AAA"].exit_reason) == (
        D("99"),
        ExitReason.STOP,
    )
    assert (by_symbol["BBB"].exit_price, by_symbol["BBB"].exit_reason) == (
        D("106"),
        ExitReason.TARGET,
    )


def test_still_open_at_the_end_closes_at_the_last_close() -> None:
    bars = [bar("AAA", 0, "100", "100", "100", "100"), *flat("AAA", range(1, 4), "101")]
    result = run(bars, [signal("AAA", 0, "100", "99", None)], slippage="10")
    [trade] = result.trades
    assert trade.exit_reason is ExitReason.END_OF_DATA
    assert trade.exit_time == OPEN + timedelta(minutes=3)
    assert trade.exit_price == D("100.899")  # 101 * 0.999
    assert result.summary.exposure_time == D("0.75")  # 3 of the 4 bar times held


def test_bars_outside_the_regular_session_are_not_walked() -> None:
    """A 09:29 bar is not an entry bar: the 09:30 one is."""
    early = Bar(
        symbol="AAA",
        timestamp=OPEN - timedelta(minutes=1),
        open=D(50),
        high=D(50),
        low=D(50),
        close=D(50),
        volume=D(1),
    )
    bars = [early, *flat("AAA", range(3), "100")]
    fired = [signal("AAA", -2, "100", "99", "105")]  # at 09:29, before the session
    result = run(bars, fired)
    [trade] = result.trades
    assert trade.entry_time == OPEN
    assert trade.entry_price == D("100")
    assert result.bars_walked == 3


def test_one_entry_per_symbol_a_day_and_none_while_a_position_is_open() -> None:
    bars = [
        *flat("AAA", range(2), "100"),
        bar("AAA", 2, "100", "100", "98", "98"),  # stopped out
        *flat("AAA", range(3, 8), "98"),
        *flat("AAA", range(3), "98", day=1),
    ]
    fired = [
        signal("AAA", 0, "100", "99", "105"),
        signal("AAA", 1, "100", "99", "105"),  # position open
        signal("AAA", 4, "98", "97", "100"),  # already entered today
        signal("AAA", 0, "98", "97", "100", day=1),  # a new day: entered
    ]
    result = run(bars, fired)
    assert [t.entry_time for t in result.trades] == [
        OPEN + timedelta(minutes=1),
        OPEN + timedelta(days=1, minutes=1),
    ]
    assert result.skipped == {"position_open": 1, "signal_already_today": 1}


def test_signals_of_one_bar_are_ranked_and_the_heat_cap_takes_the_best_first() -> None:
    """Heat cap 0.6 % of 100,000 = 600: each entry risks 500, so only the first fits; the
    scorer rates BBB higher, so BBB is entered and AAA refused for heat."""
    bars = [*flat("AAA", range(4), "100"), *flat("BBB", range(4), "100")]
    fired = [signal("AAA", 0, "100", "99", "105"), signal("BBB", 0, "100", "99", "105")]
    limits = RiskLimits(max_allocation_pct=D("0.9"), max_heat_pct=D("0.006"))
    result = run(bars, fired, limits=limits, scores={"AAA": "0.2", "BBB": "0.9"})
    assert [(t.symbol, t.rank) for t in result.trades] == [("BBB", 1)]
    assert result.skipped == {"heat_cap": 1}


def test_the_daily_loss_limit_halts_entries_until_the_next_session() -> None:
    """A 1,500 loss (1.5 %) against a 1 % daily limit: the next signal that day is refused."""
    bars = [
        *flat("AAA", range(2), "100"),
        bar("AAA", 2, "97", "97", "97", "97"),  # gap through the stop: 3 * 500 = 1,500 lost
        *flat("AAA", range(3, 6), "97"),
        *flat("BBB", range(6), "50"),
        *flat("BBB", range(3), "50", day=1),
    ]
    fired = [
        signal("AAA", 0, "100", "99", "105"),
        signal("BBB", 3, "50", "49", "55"),
        signal("BBB", 0, "50", "49", "55", day=1),
    ]
    limits = RiskLimits(
        max_allocation_pct=D("0.9"), max_heat_pct=D("0.5"), daily_loss_limit_pct=D("0.01")
    )
    result = run(bars, fired, limits=limits)
    assert [t.symbol for t in result.trades] == ["AAA", "BBB"]
    assert result.trades[1].entry_time == OPEN + timedelta(days=1, minutes=1)
    assert result.skipped == {"daily_loss_limit": 1}


def test_the_system_guard_pauses_after_a_losing_streak() -> None:
    """max_consecutive_losses=1: after one loss the guard pauses the rest of the session."""
    bars = [
        *flat("AAA", range(2), "100"),
        bar("AAA", 2, "98", "98", "98", "98"),
        *flat("AAA", range(3, 6), "98"),
        *flat("BBB", range(6), "50"),
    ]
    fired = [signal("AAA", 0, "100", "99", "105"), signal("BBB", 3, "50", "49", "55")]
    limits = RiskLimits(
        max_allocation_pct=D("0.9"),
        max_heat_pct=D("0.5"),
        max_consecutive_losses=1,
        daily_loss_limit_pct=None,
    )
    result = run(bars, fired, limits=limits)
    assert [t.symbol for t in result.trades] == ["AAA"]
    assert result.skipped == {"system_guard": 1}


def test_the_same_input_gives_the_same_result() -> None:
    bars = [
        bar("AAA", 0, "100", "100", "100", "100"),
        bar("AAA", 1, "100.50", "101", "100.20", "100.80"),
        bar("AAA", 2, "101", "102.50", "100.90", "102.20"),
    ]
    fired = [signal("AAA", 0, "100", "99", "102")]
    assert run(bars, fired, slippage="5") == run(bars, fired, slippage="5")


@pytest.mark.parametrize(
    ("o", "h", "low", "expected"),
    [
        ("100", "101", "99.5", None),
        ("98", "99", "97", (D("98"), ExitReason.STOP)),
        ("106", "106", "105", (D("106"), ExitReason.TARGET)),
        ("100", "106", "98", (D("99"), ExitReason.STOP)),
        ("100", "106", "99.5", (D("105"), ExitReason.TARGET)),
    ],
)
def test_exit_on_bar(o: str, h: str, low: str, expected: object) -> None:
    assert exit_on_bar(bar("A", 0, o, h, low, o), D(99), D(105), D(0)) == expected


def test_drawdown_and_sharpe() -> None:
    curve = [EquityPoint(at=OPEN, equity=D(v)) for v in ("100", "120", "90", "110", "80")]
    assert max_drawdown(curve) == (D(40), D(40) / D(120))
    assert sharpe([0.01]) == 0
    assert sharpe([0.01, 0.01]) == 0
    assert sharpe([0.01, -0.01]) == 0
    assert sharpe([0.02, 0.0]) == D("11.2250")  # mean 0.01 / sd 0.014142 * sqrt(252)
