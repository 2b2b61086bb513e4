"""Exit rules: close below the moving average, maximum holding days; the session to review."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from trading.broker_models import Bar, MarketClock, SessionDay
from trading.exits import (
    CloseBelowMovingAverage,
    ExitContext,
    ExitRule,
    MaxHoldingDays,
    default_exit_rules,
    evaluate_exits,
    session_to_review,
    sessions_held,
)

DAY = date(2024, 3, 5)


def _bars(closes: list[str]) -> list[Bar]:
    start = datetime(2024, 3, 5, 5, 0, tzinfo=UTC) - timedelta(days=len(closes) - 1)
    return [
        Bar(
            symbol="AAPL",
            timestamp=start + timedelta(days=i),
            open=Decimal(c),
            high=Decimal(c),
            low=Decimal(c),
            close=Decimal(c),
            volume=Decimal(1),
        )
        for i, c in enumerate(closes)
    ]


def _context(closes: list[str], opened_on: date | None = DAY) -> ExitContext:
    return ExitContext(
        trade_id="t1", symbol="AAPL", opened_on=opened_on, bars=_bars(closes), session_date=DAY
    )


def test_a_close_below_the_average_exits_and_one_above_keeps() -> None:
    rules: list[ExitRule] = [CloseBelowMovingAverage(days=3)]
    (falling,) = evaluate_exits([_context(["10", "10", "7"])], rules)
    assert falling.exit and falling.reason == "close_below_ma"
    assert falling.detail == "close=7 ma3=9.0000"
    (rising,) = evaluate_exits([_context(["10", "10", "12"])], rules)
    assert not rising.exit and rising.reason == "keep"
    (short,) = evaluate_exits([_context(["10", "7"])], rules)
    assert not short.exit  # not enough bars: the rule stays silent


def test_the_maximum_holding_period_counts_sessions_after_the_opening_one() -> None:
    opened = DAY - timedelta(days=3)
    (held,) = evaluate_exits([_context(["1"] * 6, opened_on=opened)], [MaxHoldingDays(days=3)])
    assert held.exit and held.detail == "heldSessions=3 maxHoldingDays=3"
    (young,) = evaluate_exits([_context(["1"] * 6, opened_on=opened)], [MaxHoldingDays(days=4)])
    assert not young.exit
    (unknown,) = evaluate_exits([_context(["1"] * 6, opened_on=None)], [MaxHoldingDays(days=0)])
    assert not unknown.exit


def test_no_bars_keep_the_trade_and_the_first_rule_decides() -> None:
    (empty,) = evaluate_exits([_context([])], default_exit_rules())
    assert empty.reason == "no_bars" and not empty.exit
    both: list[ExitRule] = [CloseBelowMovingAverage(days=2), MaxHoldingDays(days=0)]
    (first,) = evaluate_exits([_context(["10", "5"])], both)
    assert first.reason == "close_below_ma"


def _clock(iso: str) -> MarketClock:
    now = datetime.fromisoformat(iso)
    return MarketClock(timestamp=now, is_open=False, next_open=now, next_close=now)


def test_the_review_needs_a_session_that_has_closed() -> None:
    session = SessionDay(
        date=DAY,
        open=datetime.fromisoformat("2024-03-05T09:30:00-05:00"),
        close=datetime.fromisoformat("2024-03-05T16:00:00-05:00"),
    )
    assert session_to_review(_clock("2024-03-05T16:15:00-05:00"), [session]) == (session, "")
    assert session_to_review(_clock("2024-03-05T15:59:00-05:00"), [session]) == (
        None,
        "before_close",
    )
    assert session_to_review(_clock("2024-03-06T16:15:00-05:00"), [session]) == (
        None,
        "no_session",
    )


@given(st.integers(min_value=0, max_value=40), st.integers(min_value=0, max_value=40))
def test_sessions_held_counts_bars_after_the_open(total: int, before: int) -> None:
    bars = _bars(["1"] * total)
    opened = DAY - timedelta(days=before)
    assert sessions_held(opened, bars) == min(total, before)
