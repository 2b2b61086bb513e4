"""End-of-day exit rules for open trades (pure; the EOD exit review signals what they decide).

An ExitRule looks at one open trade and its daily bars up to the session just closed and says
why it should leave at the next open, or nothing. The defaults: the close fell below the N-day
moving average, and the trade was held for the maximum number of sessions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import ClassVar, Protocol, runtime_checkable

from pydantic import Field

from trading.broker_models import Bar, MarketClock, SessionDay
from trading.ledger_records import TradeRecord, TradeStatus
from trading.models import Frozen, evolve
from trading.registry import Named

MA_PLACES = Decimal("0.0001")


class ExitContext(Frozen):
    """What a rule sees of one open trade: identity, when it opened, bars (oldest first)."""

    trade_id: str
    symbol: str
    opened_on: date | None  # the session date the trade opened, on the broker's calendar
    entry_price: Decimal | None = None
    bars: list[Bar]
    session_date: date


class ExitVerdict(Frozen):
    """A rule's reason to exit at the next open."""

    rule: str
    reason: str
    detail: str = ""


@runtime_checkable
class ExitRule(Named, Protocol):
    """Decides, from one trade's context, whether it should exit at the next open.

    Its name is stable: it is the reason code of the exits it decides.
    """

    @property
    def bars_needed(self) -> int:
        """Daily bars this rule needs at most."""
        ...

    def evaluate(self, context: ExitContext) -> ExitVerdict | None:
        """A verdict when the trade should exit, else None."""
        ...


class CloseBelowMovingAverage(Frozen):
    """Exit when the session's close is below the simple moving average of the last N closes."""

    name: ClassVar[str] = "close_below_ma"
    days: int = Field(default=20, ge=1)

    @property
    def bars_needed(self) -> int:
        """N closes."""
        return self.days

    def evaluate(self, context: ExitContext) -> ExitVerdict | None:
        """Close < SMA(N); silent without N bars."""
        closes = [b.close for b in context.bars]
        if len(closes) < self.days:
            return None
        average = sum(closes[-self.days :], Decimal(0)) / self.days
        if closes[-1] >= average:
            return None
        return ExitVerdict(
            rule=self.name,
            reason=f"close {closes[-1]} below the {self.days}-day average",
            detail=f"close={closes[-1]} ma{self.days}={average.quantize(MA_PLACES)}",
        )


def sessions_held(opened_on: date | None, bars: Sequence[Bar]) -> int:
    """Sessions with a bar after the opening session (the opening day counts as 0)."""
    if opened_on is None:
        return 0
    return sum(1 for b in bars if b.timestamp.date() > opened_on)


class MaxHoldingDays(Frozen):
    """Exit once a trade has been held for N sessions."""

    name: ClassVar[str] = "max_holding_days"
    days: int = Field(default=10, ge=0)

    @property
    def bars_needed(self) -> int:
        """Enough bars to count N sessions."""
        return self.days + 1

    def evaluate(self, context: ExitContext) -> ExitVerdict | None:
        """Held sessions >= N."""
        held = sessions_held(context.opened_on, context.bars)
        if context.opened_on is None or held < self.days:
            return None
        return ExitVerdict(
            rule=self.name,
            reason=f"held {held} sessions (maximum {self.days})",
            detail=f"heldSessions={held} maxHoldingDays={self.days}",
        )


def default_exit_rules(ma_days: int = 20, max_holding_days: int = 10) -> list[ExitRule]:
    """The rules the EOD review uses unless told otherwise."""
    return [CloseBelowMovingAverage(days=ma_days), MaxHoldingDays(days=max_holding_days)]


class ExitDecision(Frozen):
    """Exit at the next open (with the first rule's reason) or keep, per trade."""

    trade_id: str
    symbol: str
    exit: bool
    reason: str
    detail: str = ""


def evaluate_exits(
    contexts: Sequence[ExitContext], rules: Sequence[ExitRule]
) -> list[ExitDecision]:
    """One decision per trade: the first rule that fires decides; no rule fires -> keep."""
    decisions: list[ExitDecision] = []
    for context in contexts:
        decision = ExitDecision(
            trade_id=context.trade_id, symbol=context.symbol, exit=False, reason="keep"
        )
        if not context.bars:
            decision = evolve(decision, reason="no_bars")
        for rule in rules if context.bars else ():
            verdict = rule.evaluate(context)
            if verdict is not None:
                decision = decision.model_copy(
                    update={"exit": True, "reason": verdict.rule, "detail": verdict.detail}
                )
                break
        decisions.append(decision)
    return decisions


def reviewable(trade: TradeRecord) -> bool:
    """An open trade with no exit planned yet (an exit already on its way is left alone)."""
    return trade.status is TradeStatus.OPEN and trade.exit_intent is None


def session_to_review(
    clock: MarketClock, sessions: Sequence[SessionDay]
) -> tuple[SessionDay | None, str]:
    """The session that closed today on the broker's clock, or None and why not.

    Reasons: `no_session` (weekend or holiday: nothing traded, nothing to review) and
    `before_close` (the session is still running or has not started).
    """
    today = clock.timestamp.date()
    session = next((s for s in sessions if s.date == today), None)
    if session is None:
        return None, "no_session"
    if clock.timestamp < session.close:
        return None, "before_close"
    return session, ""


def opened_session_date(opened_at: datetime | None, clock_now: datetime) -> date | None:
    """The date a trade opened, in the broker clock's (New York) offset."""
    if opened_at is None:
        return None
    return opened_at.astimezone(clock_now.tzinfo).date()


def bars_up_to(bars: Sequence[Bar], session_date: date) -> list[Bar]:
    """Daily bars up to and including the session, oldest first."""
    return sorted(
        (b for b in bars if b.timestamp.date() <= session_date), key=lambda b: b.timestamp
    )


# --- the workflow's and activities' values ---------------------------------------------------


class ExitReviewInput(Frozen):
    """One EOD review: which rules, and where the run came from."""

    ma_days: int = Field(default=20, ge=1)
    max_holding_days: int = Field(default=10, ge=0)
    run_source: str = Field(default="manual", min_length=1)


class ExitReviewResult(Frozen):
    """What the review decided and signalled."""

    run_id: str
    ended_early: bool = False
    reason: str = ""
    session_date: date | None = None
    reviewed: int = 0
    signalled: int = 0
    decisions: list[ExitDecision] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


def bars_by_symbol(bars: Sequence[Bar]) -> Mapping[str, list[Bar]]:
    """Group bars per symbol, oldest first."""
    grouped: dict[str, list[Bar]] = {}
    for bar in sorted(bars, key=lambda b: b.timestamp):
        grouped.setdefault(bar.symbol, []).append(bar)
    return grouped


def exit_contexts(
    trades: Sequence[TradeRecord],
    bars: Mapping[str, list[Bar]],
    clock: MarketClock,
    session_date: date,
) -> list[ExitContext]:
    """What the rules see of each trade: its bars up to the session, and when it opened.

    `opened_at` is the entry fill's time as the broker reported it (the broker's clock).
    """
    return [
        ExitContext(
            trade_id=t.id,
            symbol=t.symbol,
            opened_on=opened_session_date(t.opened_at, clock.timestamp),
            entry_price=t.entry_price,
            bars=bars_up_to(bars.get(t.symbol, []), session_date),
            session_date=session_date,
        )
        for t in trades
    ]
