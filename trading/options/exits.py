"""Exit rules for an open iron condor (pure; whoever watches the position asks `next_exit`).

`mark` is the cost to close the whole structure now, per share (a debit: buy back the shorts,
sell the longs); the credit is what opening it took in, per share; P&L = credit - mark per
share (* 100 * qty in dollars). The rules, checked in this order, the first that holds closes:

- `take_profit`: P&L >= take_profit_fraction * credit, i.e. mark <= credit * (1 - fraction).
  Default 0.5: close once half the credit is kept.
- `stop_loss`: the cost to close reaches credit * (1 + stop_multiple), i.e. the loss is
  stop_multiple times the credit. Default 2: a 1.00 credit stops at a 3.00 mark (loss 2.00).
- `before_expiry`: today is the last session before expiry or later (never held into the
  expiry day). That session comes from the exchange calendar when the state carries it, else
  it is the weekday before the expiry.
- `dte_threshold`: days to expiry (calendar) <= close_at_dte. Default 21.

Each boundary closes (>=, <=); one tick short of it holds.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from pydantic import Field

from trading.models import Frozen
from trading.options.chain import CONTRACT_MULTIPLIER

_ONE = Decimal(1)
_SATURDAY = 5


class CondorExitRules(Frozen):
    """When to close an iron condor: profit target, stop, DTE threshold (expiry always)."""

    take_profit_fraction: Decimal = Field(default=Decimal("0.5"), gt=0, le=1)
    stop_multiple: Decimal = Field(default=Decimal(2), gt=0)
    close_at_dte: int = Field(default=21, ge=0)


class CondorPositionState(Frozen):
    """An open condor as the exit rules see it: credit taken in (per share), size, expiry."""

    underlying: str
    expiry: date
    credit: Decimal = Field(gt=0)  # per share, received at the open
    qty: int = Field(default=1, ge=1)
    last_session_before_expiry: date | None = None  # from the exchange calendar, when known


class ExitAction(StrEnum):
    """Keep the condor or close it."""

    HOLD = "hold"
    CLOSE = "close"


class CondorExitRule(StrEnum):
    """The exit rules (stable names: the reason of the close they decide)."""

    TAKE_PROFIT = "take_profit"
    STOP_LOSS = "stop_loss"
    BEFORE_EXPIRY = "before_expiry"
    DTE_THRESHOLD = "dte_threshold"


class ExitDecision(Frozen):
    """Hold or close, which rule decided (`hold` when none), the numbers, and what comes next."""

    action: ExitAction
    reason: str
    detail: str
    next_rule: str | None = None  # on hold: the calendar rule that fires first, and when
    pnl: Decimal  # per share: credit - mark
    pnl_usd: Decimal
    decided_at: datetime


def last_session_before(expiry: date) -> date:
    """The weekday before the expiry (holidays need the calendar: see the position state)."""
    day = expiry - timedelta(days=1)
    while day.weekday() >= _SATURDAY:
        day -= timedelta(days=1)
    return day


def take_profit_mark(credit: Decimal, rules: CondorExitRules) -> Decimal:
    """The mark at or below which the profit target is reached."""
    return credit * (_ONE - rules.take_profit_fraction)


def stop_loss_mark(credit: Decimal, rules: CondorExitRules) -> Decimal:
    """The mark at or above which the stop is reached: credit * (1 + stop_multiple)."""
    return credit * (_ONE + rules.stop_multiple)


def next_exit(
    position_state: CondorPositionState,
    mark: Decimal,
    today: date,
    now: datetime,
    rules: CondorExitRules | None = None,
) -> ExitDecision:
    """Close with the first rule that holds (see the module), else hold and say what is next."""
    if mark < 0:
        raise ValueError(f"mark is the cost to close (a debit), got {mark}")
    rules = rules or CondorExitRules()
    credit, expiry = position_state.credit, position_state.expiry
    pnl = credit - mark
    pnl_usd = pnl * CONTRACT_MULTIPLIER * position_state.qty
    profit_at, stop_at = take_profit_mark(credit, rules), stop_loss_mark(credit, rules)
    last_session = position_state.last_session_before_expiry or last_session_before(expiry)
    dte = (expiry - today).days
    dte_date = expiry - timedelta(days=rules.close_at_dte)
    prices = f"credit={credit} mark={mark} pnl={pnl}"
    checks = [
        (
            CondorExitRule.TAKE_PROFIT,
            mark <= profit_at,
            f"{prices} take profit at mark <= {profit_at} ({rules.take_profit_fraction} of credit)",
        ),
        (
            CondorExitRule.STOP_LOSS,
            mark >= stop_at,
            f"{prices} stop at mark >= {stop_at} (credit * (1 + {rules.stop_multiple}))",
        ),
        (
            CondorExitRule.BEFORE_EXPIRY,
            today >= last_session,
            f"today={today} last session before expiry {expiry} is {last_session}",
        ),
        (
            CondorExitRule.DTE_THRESHOLD,
            dte <= rules.close_at_dte,
            f"dte={dte} <= {rules.close_at_dte} (expiry {expiry})",
        ),
    ]
    for rule, holds, detail in checks:
        if holds:
            return ExitDecision(
                action=ExitAction.CLOSE,
                reason=rule,
                detail=detail,
                pnl=pnl,
                pnl_usd=pnl_usd,
                decided_at=now,
            )
    # A tie on the date goes to before_expiry, the rule checked first.
    if last_session <= dte_date:
        next_rule = f"{CondorExitRule.BEFORE_EXPIRY} on {last_session}"
    else:
        next_rule = f"{CondorExitRule.DTE_THRESHOLD} on {dte_date}"
    return ExitDecision(
        action=ExitAction.HOLD,
        reason="hold",
        detail=f"{prices} take profit at <= {profit_at}, stop at >= {stop_at}, dte={dte}",
        next_rule=next_rule,
        pnl=pnl,
        pnl_usd=pnl_usd,
        decided_at=now,
    )
