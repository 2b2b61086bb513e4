"""What a trade does when its plan meets trouble: a second exit request, an exit window that
ends unfilled, a stop rescue that fails. Pure: state in, the next plan out."""

from __future__ import annotations

from datetime import datetime

from trading.broker_models import BrokerOrder, OrderStatus
from trading.ledger_records import ExitUrgency
from trading.models import Frozen
from trading.trade_logic import rescue_backoff
from trading.trade_models import (
    ExitPlan,
    ForceExit,
    RescueEscalation,
    RescueTelemetry,
    TradeSpec,
    WindowEscalation,
)


def merge_force_exit(
    current: ExitPlan | None, request: ForceExit, now: datetime
) -> ExitPlan | None:
    """The exit plan after a force_exit request, or None to keep the current one.

    Repeats converge on one exit: the first request wins, except that IMMEDIATE upgrades a
    NEXT_OPEN plan (keeping the order it may already have working).
    """
    upgrade = (
        current is not None
        and current.urgency is ExitUrgency.NEXT_OPEN
        and request.urgency is ExitUrgency.IMMEDIATE
    )
    if current is not None and not upgrade:
        return None
    plan = ExitPlan(urgency=request.urgency, reason=request.reason, requested_at=now)
    if current is not None:
        plan.exit_order_id = current.exit_order_id
    return plan


class WindowOutcome(Frozen):
    """The plan after an exit window ended unfilled, and whether the stop is gone with it."""

    plan: ExitPlan
    stop_gone: bool  # the OCO's stop leg was cancelled with it: rescue a stop at once


def unfilled_window(plan: ExitPlan, escalation: WindowEscalation, now: datetime) -> WindowOutcome:
    """A next-open exit window ended with its OCO unfilled: exit at market, or plan again."""
    if escalation is WindowEscalation.MARKET_EXIT:
        return WindowOutcome(
            plan=ExitPlan(
                urgency=ExitUrgency.IMMEDIATE,
                reason=f"{plan.reason} (exit window ended unfilled)",
                requested_at=now,
            ),
            stop_gone=False,  # the market exit cancels what is left of it first
        )
    return WindowOutcome(
        plan=ExitPlan(urgency=ExitUrgency.NEXT_OPEN, reason=plan.reason, requested_at=now),
        stop_gone=True,
    )


class RescueFailure(Frozen):
    """What follows a failed stop rescue: telemetry, and whether to alert and how to escalate.

    The workflow applies it in order - count, record the failure, then (when `alert`) mark the
    alert, record it, report it, and exit only if no exit is planned by then - so an escalation
    whose record could not be written is tried again on the next failure.
    """

    telemetry: RescueTelemetry  # counted and backed off; `alerted` is left to the workflow
    alert: bool  # first time past the alert threshold since the last success
    report_to_control: bool  # RescueEscalation.HALT_ENTRIES: TradingControl counts the alert
    exit: ExitPlan | None  # RescueEscalation.MARKET_EXIT: exit now, the stop cannot be had
    free_take_profit: bool  # InsufficientQty: the take-profit holds the stop's shares


def rescue_failed(
    telemetry: RescueTelemetry, spec: TradeSpec, error_type: str, message: str, now: datetime
) -> RescueFailure:
    """Count a failed rescue, back off, and escalate once the failures reach the threshold."""
    failures = telemetry.consecutive_failures + 1
    alert = failures >= spec.rescue_alert_after and not telemetry.alerted
    counted = telemetry.model_copy(deep=True)
    counted.failed += 1
    counted.consecutive_failures = failures
    counted.last_status = "failed"
    counted.last_error = f"{error_type}: {message}"
    counted.last_failure_kind = error_type
    counted.next_at = now + rescue_backoff(
        failures, spec.rescue_backoff_initial, spec.rescue_backoff_max
    )
    exit_plan = None
    if alert and spec.rescue_escalation is RescueEscalation.MARKET_EXIT:
        exit_plan = ExitPlan(
            urgency=ExitUrgency.IMMEDIATE,
            reason=f"stop rescue failed {failures} times",
            requested_at=now,
        )
    return RescueFailure(
        telemetry=counted,
        alert=alert,
        report_to_control=alert and spec.rescue_escalation is RescueEscalation.HALT_ENTRIES,
        exit=exit_plan,
        free_take_profit=error_type == "InsufficientQty",
    )


class ReplaceSettled(Frozen):
    """The broker replaced the stop: the new order protects from now on."""

    order: BrokerOrder


class ReplacePending(Frozen):
    """The replace is still in flight: the old stop protects until the broker settles it."""

    new_order_id: str


class ReplaceFailed(Frozen):
    """The replace did not take (refused, or rejected after it was accepted): the old stop
    still protects; cancel it, and once the cancel is final a new stop goes in its place."""

    reason: str


ReplaceState = ReplaceSettled | ReplacePending | ReplaceFailed


def replace_state(old: BrokerOrder, new: BrokerOrder | None, refusal: str = "") -> ReplaceState:
    """Where a stop replace stands, from the broker's view of the old order and the new one.

    Alpaca replaces asynchronously: the old order passes through pending_replace and ends
    `replaced` (pointing at the new one); the new one can still be rejected, and then the old
    one works on as before. Only `replaced` settles it; never two stops, never none decided.
    """
    if new is None:
        return ReplaceFailed(reason=refusal or "the replace was refused")
    if new.status is OrderStatus.REJECTED or (new.is_terminal and new.filled_qty == 0):
        return ReplaceFailed(reason=f"replacement {new.id} was {new.status.value}")
    if old.status is OrderStatus.REPLACED:
        return ReplaceSettled(order=new)
    if old.is_terminal and old.filled_qty > 0:
        return ReplaceFailed(reason=f"stop {old.id} filled before the replace")
    return ReplacePending(new_order_id=new.id)
