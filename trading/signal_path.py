"""A signal's path after scoring: rank, risk verdict, and entered / added / skipped (records).

The market loop writes one `SignalDecision` per signal it considers (the latest stays on the
signal's ledger row; every one is also audited), and `signals funnel` and `status` read them
back as `SignalPath` rows and counts by reason.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from pydantic import AwareDatetime, Field

from trading.ledger_records import SignalStatus
from trading.models import AuditEntry, Frozen


class DecisionKind(StrEnum):
    """What the market loop did with a scored signal."""

    ENTERED = "entered"  # a new trade started
    ADDED = "added"  # an add-on bought into the trade that holds the symbol
    SKIPPED = "skipped"  # not traded; the reason says why


class SignalDecision(Frozen):
    """One decision about one signal, by one market-loop run."""

    signal_key: str = Field(min_length=1)
    decision: DecisionKind
    reason: str = Field(min_length=1)
    detail: str = ""
    rank: int | None = Field(default=None, ge=1)
    rank_score: Decimal | None = None
    run_id: str = Field(min_length=1)
    trade_id: str | None = None
    at: AwareDatetime


class SignalDecisions(Frozen):
    """A run's decisions and their audit rows, written in one ledger call (one transaction)."""

    decisions: list[SignalDecision]
    audits: list[AuditEntry] = Field(default_factory=list)


class SignalPathQuery(Frozen):
    """The newest signals' paths (created in the last `window_hours`)."""

    window_hours: int = Field(default=24, ge=1)
    limit: int = Field(default=20, ge=1, le=500)


class SignalPath(Frozen):
    """Strategy -> score -> rank -> verdict -> decision, for one signal."""

    signal_key: str
    symbol: str
    strategy: str
    status: SignalStatus
    score: Decimal | None = None
    rank: int | None = None
    rank_score: Decimal | None = None
    decision: DecisionKind | None = None
    reason: str | None = None
    detail: str | None = None
    decided_at: datetime | None = None
    trade_id: str | None = None
    created_at: datetime


class SignalPaths(Frozen):
    """Recent paths, and how many recent decisions each reason had."""

    window_hours: int
    paths: list[SignalPath]
    reasons: dict[str, int] = Field(default_factory=dict)  # "entered", "skipped:heat_cap", ...


def reason_key(decision: DecisionKind, reason: str) -> str:
    """The funnel's count key: `entered`, `added`, or `skipped:<reason>`."""
    return decision.value if decision is not DecisionKind.SKIPPED else f"skipped:{reason}"
