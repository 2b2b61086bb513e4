"""Inputs and outputs of ReconcileWorkflow, AutoManageWorkflow and the trade-guard activity."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from enum import StrEnum

from pydantic import AwareDatetime, Field

from trading.ledger_records import CloseReason
from trading.models import Frozen
from trading.options.trade_models import OptionTradeInput
from trading.reconcile import DEFAULT_GRACE, DEFAULT_STOP_DISTANCE, ReconcilePlan
from trading.trade_models import PositionUpdate, TradeSpec


class ReconcileInput(Frozen):
    """One reconcile run: converge the ledger on one broker-truth snapshot."""

    dry_run: bool = False
    max: int | None = Field(default=None, ge=0)  # actions applied per run; the rest wait
    close_reason: CloseReason = CloseReason.GHOST
    run_source: str = Field(default="manual", min_length=1)
    run_id: str | None = None  # default: the workflow id
    deadline: AwareDatetime | None = None  # stop applying actions here; record what was done
    grace: timedelta = DEFAULT_GRACE
    stop_distance: Decimal = Field(default=DEFAULT_STOP_DISTANCE, gt=0, lt=1)
    snapshot_attempts: int = Field(default=5, ge=1)  # broker-truth activity attempts


class ReconcilePlanRequest(Frozen):
    """Diff one broker snapshot against the ledger's open trades, as of `as_of`."""

    as_of: AwareDatetime  # the run's now: trades changed within `grace` of it are left alone
    grace: timedelta = DEFAULT_GRACE
    max_actions: int | None = Field(default=None, ge=0)
    close_reason: CloseReason = CloseReason.GHOST
    stop_distance: Decimal = Field(default=DEFAULT_STOP_DISTANCE, gt=0, lt=1)
    # Also diff the option positions against the open option trades (plan.options).
    with_options: bool = False


class PlannedReconcile(Frozen):
    """The plan over one snapshot, and the snapshot's view of each symbol a sync tells.

    The snapshot itself (every position and open order) stays in the activity that read it:
    at a few thousand trades it outgrows a Temporal payload. A ghost's symbol needs no view
    carried - it has no position and no open order in the snapshot, or it would not be a ghost.
    """

    fetched_at: AwareDatetime
    plan: ReconcilePlan
    sync_updates: dict[str, PositionUpdate] = Field(default_factory=dict)

    def update_for(self, symbol: str) -> PositionUpdate:
        """What the snapshot says about `symbol`, as the trade workflow's signal (0 = flat)."""
        return self.sync_updates.get(symbol) or PositionUpdate(
            symbol=symbol, qty=Decimal(0), observed_at=self.fetched_at
        )


class ReconcileResult(Frozen):
    """What a run saw, planned and did; with dry_run the plan only."""

    run_id: str
    source: str
    dry_run: bool
    ok: bool
    error: str | None = None
    partial: bool = False  # the deadline stopped it before every action was applied
    checked: int = 0
    closed: int = 0  # ghosts closed in the ledger (no workflow was running)
    ghosts_signalled: int = 0  # ghosts whose running workflow was told the symbol is flat
    adopted: int = 0
    synced: int = 0
    failed_actions: int = 0
    duration_ms: int = 0
    plan: ReconcilePlan | None = None  # None when the snapshot failed
    # Options (plan.options names each one): condors adopted, ghost rows closed, ghosts left
    # to their running workflow, and what was only reported.
    options_adopted: int = 0
    adopted_option_trades: list[str] = Field(default_factory=list)  # their trade ids
    options_closed: int = 0
    options_ghosts_running: int = 0
    option_mismatches: int = 0
    unmanaged_option_legs: int = 0
    # Held option trades whose workflow had ended (terminated, failed, ...): a new run started.
    options_restarted: int = 0
    restarted_option_trades: list[str] = Field(default_factory=list)  # their trade ids


class OptionAdoptionRequest(Frozen):
    """Start `option-trade-<id>` for a held condor; a repeat finds it (running or ended).

    With `restart`, the condor is an open row's whose workflow ended (terminated, failed,
    ...): a new run starts under the same id, never while one runs.
    """

    trade: OptionTradeInput
    seen_before: AwareDatetime  # the legs were read after this (the plan's as_of)
    restart: bool = False


class OptionAdoptionOutcome(Frozen):
    """Whether this call started the workflow, or found the condor adopted already."""

    trade_id: str  # the condor's id, or a later generation of it (`<id>-2`, ...)
    workflow_id: str
    started: bool
    status: str | None = None  # the existing run's status when not started


class OptionWorkflowsQuery(Frozen):
    """Which of these option trades' workflows run."""

    trade_ids: list[str] = Field(min_length=1)


class OptionWorkflowsStatus(Frozen):
    """Each trade id's latest run status (`missing`: the id was never used)."""

    found: dict[str, str]

    def running(self, trade_id: str) -> bool:
        """The trade's workflow runs (a ghost row it will close itself)."""
        return self.found.get(trade_id) == "running"


class GuardAction(StrEnum):
    """What the guard activity did for a trade workflow."""

    SIGNALLED = "signalled"  # it was running and heard the snapshot
    RUNNING = "running"  # it was running and had nothing to hear (a covered position)
    STARTED = "started"  # none was running: a protect-only guard was started
    NOT_RUNNING = "not_running"  # none was running and no restart was asked for


class GuardRequest(Frozen):
    """Signal the first running workflow of `trade_ids`, else start `restart` (if given)."""

    trade_ids: list[str]
    update: PositionUpdate | None = None
    restart: TradeSpec | None = None
    # False: a running guard is left alone (its stop covers the position; BrokerSync tells
    # it of any change), so a sweep writes nothing into quiet trades' histories.
    signal_running: bool = True


class GuardOutcome(Frozen):
    """What the guard activity found and did."""

    action: GuardAction
    trade_id: str | None  # the trade signalled or started
    found: dict[str, str] = Field(default_factory=dict)  # trade id -> workflow status seen


class GuardRequests(Frozen):
    """Several guard requests (each for its own position or trade), answered together."""

    requests: list[GuardRequest] = Field(min_length=1)


class GuardOutcomes(Frozen):
    """Each request's outcome, in the order asked."""

    outcomes: list[GuardOutcome]


class AutoManageInput(Frozen):
    """One protection sweep over every broker position."""

    stop_distance: Decimal = Field(default=DEFAULT_STOP_DISTANCE, gt=0, lt=1)
    snapshot_attempts: int = Field(default=5, ge=1)


class SymbolGuard(Frozen):
    """What the sweep did for one position."""

    symbol: str
    qty: Decimal
    covered: bool
    action: GuardAction | None = None  # None: the guard activity failed
    trade_id: str | None = None
    error: str | None = None


class AutoManageResult(Frozen):
    """What one sweep saw and did."""

    ok: bool
    error: str | None = None
    positions: int = 0
    signalled: int = 0
    running: int = 0  # running guards of covered positions, left alone
    started: int = 0
    uncovered: int = 0  # positions the snapshot showed without a covering stop
    guards: list[SymbolGuard] = Field(default_factory=list)

    @property
    def restarted(self) -> list[str]:
        """`symbol:trade_id` of every guard this sweep started."""
        return [f"{g.symbol}:{g.trade_id}" for g in self.guards if g.action is GuardAction.STARTED]


def sweep_result(guards: list[SymbolGuard]) -> AutoManageResult:
    """A sweep's result from what it did per position (ok only when every guard answered)."""
    failed = [g for g in guards if g.action is None]
    return AutoManageResult(
        ok=not failed,
        error="; ".join(f"{g.symbol}: {g.error}" for g in failed)[:1000] or None,
        positions=len(guards),
        signalled=sum(g.action is GuardAction.SIGNALLED for g in guards),
        running=sum(g.action is GuardAction.RUNNING for g in guards),
        started=sum(g.action is GuardAction.STARTED for g in guards),
        uncovered=sum(not g.covered for g in guards),
        guards=guards,
    )
