"""trading/options/adoption.py: the exit rules of an adopted or restarted condor, and what
reconcile may adopt (pure)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from tests.unit.test_option_positions import NOW, TODAY, condor_legs, leg, plan, row
from trading.options.adoption import adopted_exit_rules, adoption_input, restart_input
from trading.options.chain import OptionRight
from trading.options.condor_pairing import AdoptableCondor
from trading.options.exits import (
    CondorExitRule,
    CondorExitRules,
    CondorPositionState,
    ExitAction,
    next_exit,
)
from trading.options.trade_models import OptionTradeStatus

DEFAULT_DTE = CondorExitRules().close_at_dte


def _condor(expiry: date) -> AdoptableCondor:
    """The 500/510p 530/535c condor held at this expiry, as reconcile adopts it."""
    legs = [
        leg(500, OptionRight.PUT, 1, "1", expiry=expiry),
        leg(510, OptionRight.PUT, -1, "3", expiry=expiry),
        leg(530, OptionRight.CALL, -1, "2.5", expiry=expiry),
        leg(535, OptionRight.CALL, 1, "0.8", expiry=expiry),
    ]
    (condor,) = plan(legs, []).adoptions
    return condor


def _first_check(condor: AdoptableCondor, rules: CondorExitRules, mark: Decimal) -> ExitAction:
    state = CondorPositionState(
        underlying=condor.underlying, expiry=condor.expiry, credit=condor.credit
    )
    return next_exit(state, mark, TODAY, NOW, rules).action


def test_a_weekly_adopted_condor_is_not_closed_at_once_for_its_days_to_expiry() -> None:
    weekly = _condor(TODAY + timedelta(days=10))
    rules = adoption_input(weekly).spec.rules
    assert rules.close_at_dte == 0
    # Its first check at the opening credit holds (the default rules would close it: dte 10).
    assert _first_check(weekly, CondorExitRules(), weekly.credit) is ExitAction.CLOSE
    assert _first_check(weekly, rules, weekly.credit) is ExitAction.HOLD
    # The take profit and the stop still close it.
    assert _first_check(weekly, rules, Decimal(0)) is ExitAction.CLOSE
    assert _first_check(weekly, rules, weekly.credit * 4) is ExitAction.CLOSE


def test_an_adopted_condor_still_closes_before_expiry() -> None:
    weekly = _condor(TODAY + timedelta(days=1))  # tomorrow: today is the last session
    state = CondorPositionState(
        underlying=weekly.underlying, expiry=weekly.expiry, credit=weekly.credit
    )
    decision = next_exit(state, weekly.credit, TODAY, NOW, adoption_input(weekly).spec.rules)
    assert decision.reason == CondorExitRule.BEFORE_EXPIRY


def test_a_condor_past_the_threshold_keeps_the_default_rules() -> None:
    monthly = _condor(TODAY + timedelta(days=DEFAULT_DTE + 1))
    assert adoption_input(monthly).spec.rules == CondorExitRules()
    at_threshold = _condor(TODAY + timedelta(days=DEFAULT_DTE))
    assert adoption_input(at_threshold).spec.rules.close_at_dte == 0


def test_a_restarted_trade_near_expiry_gets_the_same_rules() -> None:
    weekly = _condor(TODAY + timedelta(days=3))
    legs = weekly.legs
    result = plan(legs, [row("mine", [p.symbol for p in legs])])
    (held,) = result.held
    restarted = restart_input(held, "terminated")
    assert restarted.spec.rules.close_at_dte == 0
    # The ended run may have left a close working: the new run looks for it before sending.
    assert restarted.resume_orders and not adoption_input(weekly).resume_orders


@given(
    st.integers(min_value=-5, max_value=60),
    st.integers(min_value=0, max_value=45),
)
def test_adopted_rules_only_ever_lower_the_threshold_to_zero(dte: int, close_at: int) -> None:
    rules = CondorExitRules(close_at_dte=close_at, stop_multiple=Decimal(3))
    adopted = adopted_exit_rules(dte, rules)
    assert adopted.close_at_dte == (0 if dte <= close_at else close_at)
    assert adopted.model_copy(update={"close_at_dte": close_at}) == rules


# --- reconcile never adopts a contract an open row claims ---------------------------------


def test_a_contract_an_open_row_claims_is_not_adopted_even_when_more_is_held() -> None:
    """A second condor on the same strikes opened outside (2 held, the row says 1): the legs
    stay the row's - a mismatch reported - and nothing is adopted over them."""
    mine = condor_legs(qty=1)
    doubled = condor_legs(qty=2)
    for status in (
        OptionTradeStatus.PENDING_ENTRY,
        OptionTradeStatus.OPEN,
        OptionTradeStatus.CLOSING,
    ):
        claimed = row("mine", [p.symbol for p in mine], status=status)
        result = plan(doubled, [claimed])
        assert result.adoptions == [] and result.unmanaged == []
        assert [m.trade_id for m in result.mismatches] == ["mine"]


def test_a_row_claiming_one_leg_keeps_the_held_condor_from_being_adopted() -> None:
    legs = condor_legs()
    result = plan(legs, [row("one", [legs[1].symbol] * 4)])
    assert result.adoptions == []
    assert sorted(u.symbol for u in result.unmanaged) == sorted(
        p.symbol for p in legs if p.symbol != legs[1].symbol
    )
