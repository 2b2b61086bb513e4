"""A trade's answers to trouble: a second exit request, an unfilled exit window, failed rescues."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from trading.ledger_records import ExitUrgency
from trading.models import evolve
from trading.trade_escalation import merge_force_exit, rescue_failed, unfilled_window
from trading.trade_models import (
    ExitPlan,
    ForceExit,
    RescueEscalation,
    RescueTelemetry,
    TradeSpec,
    WindowEscalation,
)

NOW = datetime(2024, 3, 5, 15, 30, tzinfo=UTC)
SPEC = TradeSpec(trade_id="aapl-1", symbol="AAPL", qty=Decimal(10), stop_price=Decimal("95.00"))


def _exit(urgency: ExitUrgency, reason: str = "r") -> ForceExit:
    return ForceExit(urgency=urgency, reason=reason)


def test_the_first_exit_request_wins_and_immediate_upgrades_next_open() -> None:
    first = merge_force_exit(None, _exit(ExitUrgency.NEXT_OPEN, "rule"), NOW)
    assert first is not None and first.urgency is ExitUrgency.NEXT_OPEN
    first.exit_order_id = "oco-1"
    assert merge_force_exit(first, _exit(ExitUrgency.NEXT_OPEN, "again"), NOW) is None
    upgraded = merge_force_exit(first, _exit(ExitUrgency.IMMEDIATE, "now"), NOW)
    assert upgraded is not None and upgraded.urgency is ExitUrgency.IMMEDIATE
    assert upgraded.exit_order_id == "oco-1" and upgraded.reason == "now"
    assert merge_force_exit(upgraded, _exit(ExitUrgency.IMMEDIATE), NOW) is None
    assert merge_force_exit(upgraded, _exit(ExitUrgency.NEXT_OPEN), NOW) is None


def test_an_unfilled_window_exits_at_market_or_plans_again_without_the_stop() -> None:
    plan = ExitPlan(urgency=ExitUrgency.NEXT_OPEN, reason="below ma", requested_at=NOW)
    market = unfilled_window(plan, WindowEscalation.MARKET_EXIT, NOW)
    assert market.plan.urgency is ExitUrgency.IMMEDIATE and not market.stop_gone
    assert "exit window ended unfilled" in market.plan.reason
    again = unfilled_window(plan, WindowEscalation.REPLAN, NOW)
    assert again.plan.urgency is ExitUrgency.NEXT_OPEN and again.stop_gone
    assert again.plan.window_start is None  # planned afresh against the broker's calendar


def test_failed_rescues_back_off_and_alert_once_at_the_threshold() -> None:
    telemetry = RescueTelemetry(attempted=1)
    outcomes = []
    for _ in range(4):
        outcome = rescue_failed(telemetry, SPEC, "BrokerUnavailable", "boom", NOW)
        outcomes.append(outcome)
        telemetry = outcome.telemetry
        telemetry.alerted = telemetry.alerted or outcome.alert  # as the workflow marks it
    assert [o.alert for o in outcomes] == [False, False, True, False]  # rescue_alert_after=3
    assert [o.report_to_control for o in outcomes] == [False, False, True, False]
    assert all(o.exit is None for o in outcomes)  # HALT_ENTRIES: the trade keeps trying
    waits = [o.telemetry.next_at - NOW for o in outcomes if o.telemetry.next_at]
    assert waits == sorted(waits) and waits[0] == SPEC.rescue_backoff_initial
    assert telemetry.failed == 4 and telemetry.consecutive_failures == 4
    assert telemetry.last_error == "BrokerUnavailable: boom"


def test_an_alert_not_marked_is_raised_again_on_the_next_failure() -> None:
    # The workflow marks `alerted` only once it records the alert; if it could not, the next
    # failure escalates again instead of staying silent.
    first = rescue_failed(RescueTelemetry(consecutive_failures=2), SPEC, "X", "y", NOW)
    again = rescue_failed(first.telemetry, SPEC, "X", "y", NOW)
    assert first.alert and again.alert


def test_market_exit_escalation_plans_an_immediate_exit() -> None:
    spec = evolve(SPEC, rescue_escalation=RescueEscalation.MARKET_EXIT, rescue_alert_after=1)
    outcome = rescue_failed(RescueTelemetry(), spec, "X", "y", NOW)
    assert outcome.exit is not None and outcome.exit.urgency is ExitUrgency.IMMEDIATE
    assert not outcome.report_to_control
    assert "stop rescue failed 1 times" in outcome.exit.reason


def test_insufficient_qty_asks_to_free_the_take_profits_shares() -> None:
    outcome = rescue_failed(RescueTelemetry(), SPEC, "InsufficientQty", "held", NOW)
    assert outcome.free_take_profit
    assert outcome.telemetry.next_at == NOW + timedelta(seconds=2)  # until the cancel lands
    other = rescue_failed(RescueTelemetry(), SPEC, "BrokerUnavailable", "x", NOW)
    assert not other.free_take_profit


def test_evolve_validates_like_a_new_model_and_refuses_unknown_fields() -> None:
    spec = evolve(SPEC, qty=Decimal(20))
    assert spec.qty == Decimal(20) and SPEC.qty == Decimal(10)
    with pytest.raises(ValueError, match="no field"):
        evolve(SPEC, qyt=Decimal(20))  # a misspelled field is an error, not ignored
    with pytest.raises(ValueError):
        evolve(SPEC, take_profit_price=Decimal("90.00"))  # the spec's own invariant holds
