"""Iron condor exit rules: each at its boundary and one tick either side; the P&L identity."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trading.options.exits import (
    CondorExitRule,
    CondorExitRules,
    CondorPositionState,
    ExitAction,
    ExitDecision,
    last_session_before,
    next_exit,
    stop_loss_mark,
    take_profit_mark,
)

D = Decimal
TICK = D("0.01")
EXPIRY = date(2027, 1, 15)  # a Friday
FAR = date(2026, 11, 30)  # 46 days out: no calendar rule
NOW = datetime(2026, 11, 30, 15, 30, tzinfo=UTC)
STATE = CondorPositionState(underlying="XYZ", expiry=EXPIRY, credit=D("1.00"), qty=2)


def decide(mark: Decimal, today: date = FAR, state: CondorPositionState = STATE) -> ExitDecision:
    return next_exit(state, mark, today, NOW)


def test_the_defaults() -> None:
    rules = CondorExitRules()
    assert rules.take_profit_fraction == D("0.5")
    assert rules.stop_multiple == D(2)
    assert rules.close_at_dte == 21
    assert take_profit_mark(D("1.00"), rules) == D("0.50")
    assert stop_loss_mark(D("1.00"), rules) == D("3.00")  # a loss of twice the credit


def test_holding_says_what_comes_next() -> None:
    decision = decide(D("1.00"))
    assert decision.action is ExitAction.HOLD and decision.reason == "hold"
    assert decision.next_rule == "dte_threshold on 2026-12-25"  # 21 days before expiry
    assert decision.decided_at == NOW
    assert "take profit at <= 0.500" in decision.detail


@pytest.mark.parametrize(
    ("mark", "action"),
    [(D("0.49"), ExitAction.CLOSE), (D("0.50"), ExitAction.CLOSE), (D("0.51"), ExitAction.HOLD)],
)
def test_take_profit_at_half_the_credit(mark: Decimal, action: ExitAction) -> None:
    decision = decide(mark)
    assert decision.action is action
    if action is ExitAction.CLOSE:
        assert decision.reason == CondorExitRule.TAKE_PROFIT
        assert decision.pnl >= D("0.50")


@pytest.mark.parametrize(
    ("mark", "action"),
    [(D("2.99"), ExitAction.HOLD), (D("3.00"), ExitAction.CLOSE), (D("3.01"), ExitAction.CLOSE)],
)
def test_stop_when_the_cost_to_close_reaches_three_times_the_credit(
    mark: Decimal, action: ExitAction
) -> None:
    decision = decide(mark)
    assert decision.action is action
    if action is ExitAction.CLOSE:
        assert decision.reason == CondorExitRule.STOP_LOSS
        assert decision.pnl <= D("-2.00")
        assert decision.pnl_usd == decision.pnl * 100 * 2


@pytest.mark.parametrize(
    ("days_left", "action"),
    [(22, ExitAction.HOLD), (21, ExitAction.CLOSE), (20, ExitAction.CLOSE)],
)
def test_close_at_21_days_to_expiry(days_left: int, action: ExitAction) -> None:
    decision = decide(D("1.00"), today=EXPIRY - timedelta(days=days_left))
    assert decision.action is action
    if action is ExitAction.CLOSE:
        assert decision.reason == CondorExitRule.DTE_THRESHOLD
        assert f"dte={days_left}" in decision.detail


def test_the_last_session_before_expiry_closes_without_a_dte_threshold() -> None:
    rules = CondorExitRules(close_at_dte=0)
    thursday = date(2027, 1, 14)
    before = next_exit(STATE, D("1.00"), thursday - timedelta(days=1), NOW, rules)
    assert before.action is ExitAction.HOLD
    assert before.next_rule == "before_expiry on 2027-01-14"
    on = next_exit(STATE, D("1.00"), thursday, NOW, rules)
    assert (on.action, on.reason) == (ExitAction.CLOSE, CondorExitRule.BEFORE_EXPIRY)
    after = next_exit(STATE, D("1.00"), EXPIRY, NOW, rules)
    assert (after.action, after.reason) == (ExitAction.CLOSE, CondorExitRule.BEFORE_EXPIRY)


def test_the_last_session_skips_the_weekend_or_comes_from_the_calendar() -> None:
    monday = date(2027, 1, 18)
    assert last_session_before(monday) == date(2027, 1, 15)
    assert last_session_before(EXPIRY) == date(2027, 1, 14)
    # a holiday on Thursday: the calendar says Wednesday
    state = CondorPositionState(
        underlying="XYZ",
        expiry=EXPIRY,
        credit=D(1),
        last_session_before_expiry=date(2027, 1, 13),
    )
    rules = CondorExitRules(close_at_dte=0)
    assert next_exit(state, D(1), date(2027, 1, 12), NOW, rules).action is ExitAction.HOLD
    assert next_exit(state, D(1), date(2027, 1, 13), NOW, rules).action is ExitAction.CLOSE


def test_the_price_rules_come_before_the_calendar() -> None:
    decision = decide(D("0.40"), today=EXPIRY - timedelta(days=5))
    assert decision.reason == CondorExitRule.TAKE_PROFIT
    decision = decide(D("3.50"), today=EXPIRY)
    assert decision.reason == CondorExitRule.STOP_LOSS


def test_a_negative_mark_is_not_a_cost_to_close() -> None:
    with pytest.raises(ValueError, match="debit"):
        decide(D("-0.01"))


marks = st.decimals(min_value=0, max_value=50, places=2)
credits = st.decimals(min_value=D("0.01"), max_value=20, places=2)
days = st.integers(min_value=-5, max_value=120)
fractions = st.decimals(min_value=D("0.01"), max_value=1, places=2)
multiples = st.decimals(min_value=D("0.1"), max_value=5, places=2)
thresholds = st.integers(min_value=0, max_value=60)


@given(marks, credits, days, st.integers(min_value=1, max_value=50))
def test_pnl_plus_mark_is_the_credit(mark: Decimal, credit: Decimal, day: int, qty: int) -> None:
    state = CondorPositionState(underlying="XYZ", expiry=EXPIRY, credit=credit, qty=qty)
    decision = decide(mark, today=EXPIRY - timedelta(days=day), state=state)
    assert decision.pnl + mark == credit
    assert decision.pnl_usd == decision.pnl * 100 * qty


@given(marks, credits, fractions, multiples, thresholds, st.integers(min_value=0, max_value=3))
def test_never_hold_on_the_expiry_day_or_after(
    mark: Decimal,
    credit: Decimal,
    fraction: Decimal,
    multiple: Decimal,
    threshold: int,
    late: int,
) -> None:
    rules = CondorExitRules(
        take_profit_fraction=fraction, stop_multiple=multiple, close_at_dte=threshold
    )
    state = CondorPositionState(underlying="XYZ", expiry=EXPIRY, credit=credit)
    decision = next_exit(state, mark, EXPIRY + timedelta(days=late), NOW, rules)
    assert decision.action is ExitAction.CLOSE


@given(marks, credits, fractions, multiples)
def test_a_hold_is_strictly_between_the_price_boundaries(
    mark: Decimal, credit: Decimal, fraction: Decimal, multiple: Decimal
) -> None:
    rules = CondorExitRules(take_profit_fraction=fraction, stop_multiple=multiple)
    state = CondorPositionState(underlying="XYZ", expiry=EXPIRY, credit=credit)
    decision = next_exit(state, mark, FAR, NOW, rules)
    inside = take_profit_mark(credit, rules) < mark < stop_loss_mark(credit, rules)
    assert (decision.action is ExitAction.HOLD) == inside
