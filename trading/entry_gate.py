"""The entry gate: may a new entry start now, and if not, the stable reason and a detail.

One pure function, `run_gate`, answers for the market loop (before each signal), `status` and
`control status`, so they cannot disagree. Its inputs are what each of them reads: the trading
control as seen from outside (`ControlView`, the mode as an enum), the broker's truth (None when
the snapshot failed) and the entry limits. The gate counts the broker's positions and entries
still on their way, never the ledger's.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from pydantic import Field

from trading.broker_models import BrokerTruth, OrderSide
from trading.control import ControlMode, ControlState
from trading.models import Frozen


class EntryReason(StrEnum):
    """Why a signal was entered or skipped (stable codes; the detail says more)."""

    ENTERED = "entered"
    MARKET_CLOSED = "market_closed"
    CONTROL_HALTED = "control_halted"
    CONTROL_PAUSED = "control_paused"
    CONTROL_UNAVAILABLE = "control_unavailable"
    CONTROL_NOT_STARTED = "control_not_started"  # entries allowed, noted
    BROKER_TRUTH_UNAVAILABLE = "broker_truth_unavailable"
    MAX_OPEN_POSITIONS = "max_open_positions"
    MAX_ENTRIES_PER_RUN = "max_entries_per_run"
    ALREADY_ENTERED_TODAY = "already_entered_today"
    POSITION_OPEN = "position_open"
    BELOW_THRESHOLD = "below_threshold"
    SIDE_NOT_SUPPORTED = "side_not_supported"
    NO_QUOTE = "no_quote"
    RISK_TOO_SMALL = "risk_too_small"
    INSUFFICIENT_BUYING_POWER = "insufficient_buying_power"
    ALREADY_STARTED = "already_started"
    START_FAILED = "start_failed"
    NO_SIGNALS = "no_signals"
    ADD_ON_FAILED = "add_on_failed"
    SIGNAL_STALE = "signal_stale"


class ControlPresence(StrEnum):
    """Whether the trading-control workflow could be read, and whether it runs."""

    RUNNING = "RUNNING"
    NOT_STARTED = "NOT_STARTED"  # never started: entries pass (nothing holds them)
    NOT_RUNNING = "NOT_RUNNING"  # completed, failed or terminated: entries pass, noted
    UNREACHABLE = "UNREACHABLE"  # Temporal or the workflow did not answer: entries wait


class ControlView(Frozen):
    """Trading control as a reader outside it sees it: presence, and the mode when running."""

    presence: ControlPresence
    mode: ControlMode | None = None
    reason: str = ""
    since: datetime | None = None
    actor: str = ""
    detail: str = ""  # why it is not running or could not be read


def control_view_of(state: ControlState) -> ControlView:
    """The view of a running control workflow's state."""
    return ControlView(
        presence=ControlPresence.RUNNING,
        mode=state.mode,
        reason=state.reason,
        since=state.since,
        actor=state.actor,
    )


class ControlGate(Frozen):
    """The control part of the gate: allowed or not, a stable code (None: nothing to say)."""

    allowed: bool
    code: EntryReason | None = None
    reason: str = ""


def control_gate(view: ControlView) -> ControlGate:
    """Entries pass only in ACTIVE, or with no control workflow at all; unknown holds them."""
    if view.presence is ControlPresence.UNREACHABLE:
        return ControlGate(allowed=False, code=EntryReason.CONTROL_UNAVAILABLE, reason=view.detail)
    if view.presence is not ControlPresence.RUNNING:
        state = view.presence.value.lower().replace("_", " ")
        detail = f" ({view.detail})" if view.detail else ""
        return ControlGate(
            allowed=True,
            code=EntryReason.CONTROL_NOT_STARTED,
            reason=f"trading control {state}{detail}: entries allowed",
        )
    if view.mode is ControlMode.ACTIVE:
        return ControlGate(allowed=True)
    halted = view.mode is ControlMode.HALTED
    code = EntryReason.CONTROL_HALTED if halted else EntryReason.CONTROL_PAUSED
    since = f" since {view.since:%Y-%m-%d %H:%M:%S} UTC" if view.since else ""
    mode = view.mode.value if view.mode else "?"
    return ControlGate(
        allowed=False,
        code=code,
        reason=f"entries blocked: {mode}{since} by {view.actor}: {view.reason}",
    )


class EntryLimits(Frozen):
    """How many entries the loop may make, and how good a signal must be (the risk engine's
    limits are MarketLoopInput.risk)."""

    max_open_positions: int = Field(default=3, ge=0)  # the MAX_OPEN_POSITIONS default
    score_threshold: Decimal = Field(default=Decimal("0.5"), ge=-1, le=1)
    max_entries_per_run: int = Field(default=3, ge=0)


class GateAnswer(Frozen):
    """The gate's answer for the next entry: open, or closed with a stable reason."""

    open: bool
    reason: EntryReason | None = None
    detail: str = ""
    note: str = ""  # said even when open (e.g. no control workflow)
    broker_positions: int | None = None
    pending_entries: int | None = None


def pending_entry_symbols(truth: BrokerTruth) -> set[str]:
    """Symbols with an open buy order and no position yet (an entry on its way)."""
    held = {p.symbol for p in truth.positions if p.qty != 0}
    return {o.symbol for o in truth.open_orders if o.side is OrderSide.BUY} - held


def run_gate(
    control: ControlView,
    truth: BrokerTruth | None,
    limits: EntryLimits,
    started_this_run: int = 0,
) -> GateAnswer:
    """The gates every signal of a run shares (control, broker truth, position and run caps).

    The open-position count is the broker's: positions plus entries still on their way, plus
    entries started in this run. A stale ledger never blocks or allows an entry.
    """
    positions = pending = None
    if truth is not None:
        positions = sum(1 for p in truth.positions if p.qty != 0)
        pending = len(pending_entry_symbols(truth))

    def answer(reason: EntryReason | None = None, detail: str = "", note: str = "") -> GateAnswer:
        return GateAnswer(
            open=reason is None,
            reason=reason,
            detail=detail,
            note=note,
            broker_positions=positions,
            pending_entries=pending,
        )

    gate = control_gate(control)
    if not gate.allowed:
        return answer(gate.code or EntryReason.CONTROL_UNAVAILABLE, gate.reason)
    note = f"{gate.code.value}: {gate.reason}" if gate.code else ""
    if positions is None or pending is None:
        return answer(EntryReason.BROKER_TRUTH_UNAVAILABLE, "no broker snapshot", note)
    if positions + pending + started_this_run >= limits.max_open_positions:
        detail = f"brokerPositionsCount={positions} maxOpenPositions={limits.max_open_positions}"
        if pending:
            detail += f" pendingEntries={pending}"
        if started_this_run:
            detail += f" enteredThisRun={started_this_run}"
        return answer(EntryReason.MAX_OPEN_POSITIONS, detail, note)
    if started_this_run >= limits.max_entries_per_run:
        return answer(
            EntryReason.MAX_ENTRIES_PER_RUN,
            f"enteredThisRun={started_this_run} maxEntriesPerRun={limits.max_entries_per_run}",
            note,
        )
    return answer(note=note)
