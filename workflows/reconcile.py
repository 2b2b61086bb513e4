"""ReconcileWorkflow: converge the ledger on one broker-truth snapshot, and record the run.

Its interface is contracts/reconcile.py. One snapshot (account, positions, open orders); the
diff is trading/reconcile.py's, taken by one activity where the snapshot and the open trades
are read (activities/reconcile.py), so only the plan enters the history however large the
account. A failed snapshot changes nothing (unknown is never absent). Every action is
idempotent (first close wins, adoption ids are deterministic and started with USE_EXISTING)
and names its own trade, so actions run a few at a time, and a repeated or overlapping run
converges on the same ledger.

Option positions (behind RECONCILE_OPTIONS): the same activity reads the option legs and the
open option trades and plans their diff (trading/options/positions.py). Held iron condors no
row claims are adopted (OptionTradeWorkflow started already OPEN at the credit they were
opened for, origin external, its id used once); ghost rows whose workflow is not running are
closed; leg mismatches and unmanaged legs are reported (result, audit, Details), never fixed.
The workflow asks the patches and plans; applying the options half is
workflows/reconcile_options.py's (a mixin, as TradeWorkflow's steps are).

Orphaned option trades (behind RECONCILE_OPTION_RESTARTS): an open row every leg of which is
held as it says, whose workflow ended without closing it (terminated, failed, timed out, or
gone), is restarted - a new run under the same id, OPEN at the row's credit (see
activities/option_adoption.py for why overlapping or repeated runs start it once).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from functools import partial

from temporalio import workflow
from temporalio.exceptions import ActivityError

from workflows.reconcile_options import ACTIONS_IN_FLIGHT, OptionReconcileSteps

with workflow.unsafe.imports_passed_through():
    from activities.ledger import LedgerActivities
    from activities.reconcile import ReconcileActivities
    from activities.trade_link import TradeLinkActivities
    from contracts import reconcile
    from ops import metrics
    from trading.ledger_records import (
        AuditedTradeClose,
        AuditedTradeCloses,
        OpenTradesQuery,
        ReconcileRunFinish,
        ReconcileRunStart,
        TradeClose,
        TradeEntryFill,
    )
    from trading.models import AuditEntry, JsonScalar
    from trading.reconcile import (
        Adoption,
        GhostClose,
        QuantitySync,
        ReconcilePlan,
        position_update_for,
        reconcile_plan,
    )
    from trading.reconcile_models import (
        GuardAction,
        GuardOutcome,
        GuardRequest,
        GuardRequests,
        PlannedReconcile,
        ReconcileInput,
        ReconcilePlanRequest,
        ReconcileResult,
    )
    from trading.trade_models import PositionUpdate, TradeSpec
    from workflows.broker_reads import broker_truth
    from workflows.calls import Failed, attempt, call, failure, ledger
    from workflows.details import Details
    from workflows.policies import TRADE_LINK, broker_snapshot
    from workflows.records import audit_entry


# Patch id: runs before it took the snapshot and the open trades into the workflow itself
# (megabytes at a few thousand trades) and applied the plan one action at a time.
PLAN_IN_ACTIVITY = "reconcile-plan-in-activity"
# Patch id: runs before it read no option positions (their plan has no options part).
RECONCILE_OPTIONS = "reconcile-options"
# Patch id: runs before it asked whether held option trades' workflows run (and restarted none).
RECONCILE_OPTION_RESTARTS = "reconcile-option-restarts"

Step = Adoption | GhostClose | QuantitySync
UpdateFor = Callable[[str], PositionUpdate]


@workflow.defn(name=reconcile.WORKFLOW.name)
class ReconcileWorkflow(OptionReconcileSteps):
    """One reconcile run: snapshot, plan, apply (or print with dry_run), record."""

    @workflow.init
    def __init__(self, request: ReconcileInput) -> None:
        self._request = request
        self._run_id = request.run_id or workflow.info().workflow_id
        self._in_activity = False  # PLAN_IN_ACTIVITY: set by run once the marker is known
        self._options = False  # RECONCILE_OPTIONS: likewise
        self._restarts = False  # RECONCILE_OPTION_RESTARTS: likewise
        self._planned_at = workflow.now()  # the plan's as_of: its legs were read after it
        self._progress = ReconcileResult(
            run_id=self._run_id, source=request.run_source, dry_run=request.dry_run, ok=False
        )

    @workflow.run
    async def run(self, request: ReconcileInput) -> ReconcileResult:
        """Snapshot, plan, apply unless dry_run, record the run."""
        started = workflow.now()
        await ledger(
            LedgerActivities.start_reconcile_run,
            ReconcileRunStart(
                run_id=self._run_id,
                source=request.run_source,
                dry_run=request.dry_run,
                started_at=started,
            ),
            f"ledger: reconcile run {self._run_id} started",
        )
        self._in_activity = in_activity = workflow.patched(PLAN_IN_ACTIVITY)
        self._options = in_activity and workflow.patched(RECONCILE_OPTIONS)
        self._restarts = self._options and workflow.patched(RECONCILE_OPTION_RESTARTS)
        planned = await (self._plan() if in_activity else self._plan_here())
        if planned is None:
            return await self._finish(started)  # unknown is never absent: nothing is done
        plan, update_for = planned
        self._update(plan=plan, checked=plan.checked_trades + plan.checked_positions, ok=True)
        workflow.logger.info(
            "reconcile %s: %d adoptions, %d ghosts, %d quantity syncs (%d deferred)%s",
            self._run_id,
            len(plan.adoptions),
            len(plan.ghost_closes),
            len(plan.quantity_syncs),
            plan.deferred,
            " [dry run]" if request.dry_run else "",
        )
        options = plan.options if self._options else None
        if options is not None:
            self._update(
                option_mismatches=len(options.mismatches),
                unmanaged_option_legs=len(options.unmanaged),
            )
        if not request.dry_run:
            await self._apply(plan, update_for, ACTIONS_IN_FLIGHT if in_activity else 1)
            if options is not None and not self._progress.partial:
                await self._apply_options(options)
        return await self._finish(started)

    # --- planning --------------------------------------------------------------------------

    async def _plan(self) -> tuple[ReconcilePlan, UpdateFor] | None:
        """The plan, taken where the snapshot and the open trades are read; None if unknown."""
        request = self._request
        self._planned_at = workflow.now()
        try:
            planned: PlannedReconcile = await call(
                ReconcileActivities.plan_reconcile,
                ReconcilePlanRequest(
                    as_of=self._planned_at,
                    grace=request.grace,
                    max_actions=request.max,
                    close_reason=request.close_reason,
                    stop_distance=request.stop_distance,
                    with_options=self._options,
                ),
                broker_snapshot(request.snapshot_attempts),
                "broker truth and the ledger's open trades, diffed into the reconcile plan",
            )
        except ActivityError as err:
            self._update(error=f"broker snapshot failed: {failure(err)}")
            return None
        return planned.plan, planned.update_for

    async def _plan_here(self) -> tuple[ReconcilePlan, UpdateFor] | None:
        """Runs started before PLAN_IN_ACTIVITY: the snapshot and the trades in history."""
        request = self._request
        truth, error = await broker_truth(request.snapshot_attempts, "reconcile")
        if truth is None:
            self._update(error=error)
            return None
        open_trades = await ledger(
            LedgerActivities.list_open_trades, OpenTradesQuery(), "ledger: open trades"
        )
        plan = reconcile_plan(
            truth,
            open_trades.trades,
            workflow.now(),
            grace=request.grace,
            max_actions=request.max,
            close_reason=request.close_reason,
            stop_distance=request.stop_distance,
        )
        return plan, partial(position_update_for, truth)

    # --- applying the plan -----------------------------------------------------------------

    async def _apply(self, plan: ReconcilePlan, update_for: UpdateFor, in_flight: int) -> None:
        steps: list[Step] = [*plan.adoptions, *plan.ghost_closes, *plan.quantity_syncs]
        errors: list[str] = []
        for done in range(0, len(steps), in_flight):
            deadline = self._request.deadline
            if deadline is not None and workflow.now() >= deadline:
                self._update(
                    partial=True,
                    ok=False,
                    error=f"deadline reached after {done} of {len(steps)} actions",
                )
                return
            wave = steps[done : done + in_flight]
            if self._in_activity:
                errors += await self._apply_wave(wave, update_for)
            elif (error := await self._act(wave[0], update_for)) is not None:
                errors.append(error)  # a run started before PLAN_IN_ACTIVITY: one at a time
        if errors:
            self._update(ok=False, error="; ".join(errors)[:1000])

    async def _apply_wave(self, wave: list[Step], update_for: UpdateFor) -> list[str]:
        """A wave's actions at once, its ghosts closed together; why each one failed."""
        ghosts = [step for step in wave if isinstance(step, GhostClose)]
        others = [step for step in wave if not isinstance(step, GhostClose)]
        ghost_errors, other_errors = await asyncio.gather(
            self._close_ghosts(ghosts, update_for),
            asyncio.gather(*(self._act(step, update_for) for step in others)),
        )
        return [*ghost_errors, *(e for e in other_errors if e is not None)]

    async def _act(self, step: Step, update_for: UpdateFor) -> str | None:
        """Apply one action; why it failed, or None."""
        try:
            if isinstance(step, Adoption):
                await self._adopt(step)
            elif isinstance(step, GhostClose):
                await self._close_ghost(step, update_for(step.symbol))
            else:
                await self._sync(step, update_for(step.symbol))
        except ActivityError as err:
            return self._failed(step, failure(err))
        return None

    def _failed(self, step: Step, why: str) -> str:
        error = f"{step.trade_id}: {why}"
        self._update(failed_actions=self._progress.failed_actions + 1)
        workflow.logger.error("reconcile %s: %s failed: %s", self._run_id, step, error)
        return error

    async def _adopt(self, adoption: Adoption) -> None:
        spec = TradeSpec(
            trade_id=adoption.trade_id,
            symbol=adoption.symbol,
            qty=adoption.qty,
            stop_price=adoption.stop_price,
            protect_only=True,
            existing_stop_order_id=adoption.existing_stop_order_id,
        )
        # The guard creates the ledger row (origin external) itself; a repeat finds it running.
        await self._guard(GuardRequest(trade_ids=[adoption.trade_id], restart=spec))
        self._update(adopted=self._progress.adopted + 1)
        await self._audit(
            "position_adopted",
            adoption.trade_id,
            f"{adoption.symbol} x{adoption.qty} @ {adoption.avg_entry_price}",
            {
                "stop_price": str(adoption.stop_price),
                "existing_stop_order_id": adoption.existing_stop_order_id,
            },
        )

    async def _close_ghosts(self, ghosts: list[GhostClose], update_for: UpdateFor) -> list[str]:
        """Guard the ghosts in one call; close those with no running workflow in one write."""
        if not ghosts:
            return []
        requests = [
            GuardRequest(trade_ids=[g.trade_id], update=update_for(g.symbol)) for g in ghosts
        ]
        guarded = await attempt(
            call(
                TradeLinkActivities.guard_trades,
                GuardRequests(requests=requests),
                TRADE_LINK,
                f"guard {len(ghosts)} ghost trades: signal each, or find it not running",
            )
        )
        if isinstance(guarded, Failed):  # unknown whether they run: none is closed
            return [self._failed(ghost, guarded.why) for ghost in ghosts]
        closes: list[AuditedTradeClose] = []
        for ghost, outcome in zip(ghosts, guarded.outcomes, strict=True):
            if outcome.action is GuardAction.SIGNALLED:
                # Its workflow asks the broker and closes itself with the reason it finds.
                self._update(ghosts_signalled=self._progress.ghosts_signalled + 1)
            else:
                closes.append(self._ghost_close(ghost))
        if not closes:
            return []
        try:
            written = await ledger(
                LedgerActivities.close_trades_audited,
                AuditedTradeCloses(closes=closes),
                f"ledger: close {len(closes)} ghost trades "
                + ", ".join(c.close.trade_id for c in closes),
            )
        except ActivityError as err:
            by_id = {g.trade_id: g for g in ghosts}
            return [self._failed(by_id[c.close.trade_id], failure(err)) for c in closes]
        self._update(closed=self._progress.closed + sum(r.applied for r in written.results))
        return []

    def _ghost_close(self, ghost: GhostClose) -> AuditedTradeClose:
        """The ghost's close with reconcile's audit row: written together, never one alone."""
        return AuditedTradeClose(
            close=self._ghost_trade_close(ghost),
            audit=self._audit_entry(
                "ghost_closed", ghost.trade_id, *self._ghost_closed_reason(ghost)
            ),
        )

    async def _close_ghost(self, ghost: GhostClose, update: PositionUpdate) -> None:
        """Runs started before PLAN_IN_ACTIVITY: guard, close and audit, one at a time."""
        outcome = await self._guard(GuardRequest(trade_ids=[ghost.trade_id], update=update))
        if outcome.action is GuardAction.SIGNALLED:
            self._update(ghosts_signalled=self._progress.ghosts_signalled + 1)
            return
        result = await ledger(
            LedgerActivities.close_trade,
            self._ghost_trade_close(ghost),
            f"ledger: close ghost trade {ghost.trade_id} ({ghost.symbol})",
        )
        if result.applied:
            self._update(closed=self._progress.closed + 1)
            await self._audit("ghost_closed", ghost.trade_id, *self._ghost_closed_reason(ghost))

    @staticmethod
    def _ghost_trade_close(ghost: GhostClose) -> TradeClose:
        return TradeClose(
            trade_id=ghost.trade_id, close_reason=ghost.close_reason, closed_at=workflow.now()
        )

    @staticmethod
    def _ghost_closed_reason(ghost: GhostClose) -> tuple[str, dict[str, JsonScalar]]:
        reason = f"{ghost.symbol}: no broker position or open order, no running workflow"
        return reason, {"status": ghost.status.value, "close_reason": ghost.close_reason.value}

    async def _sync(self, sync: QuantitySync, update: PositionUpdate) -> None:
        outcome = await self._guard(GuardRequest(trade_ids=[sync.trade_id], update=update))
        # A running guard resizes its stop; without one the ledger takes the broker's larger
        # qty (the ledger never shrinks a fill; AutoManage restarts the guard).
        unguarded = outcome.action is not GuardAction.SIGNALLED
        if unguarded and sync.sole_owner and sync.broker_qty > sync.ledger_qty:
            await ledger(
                LedgerActivities.record_entry_fill,
                TradeEntryFill(
                    trade_id=sync.trade_id,
                    qty=sync.broker_qty,
                    avg_price=sync.avg_entry_price,
                    filled_at=update.observed_at,
                ),
                f"ledger: trade {sync.trade_id} takes the broker's {sync.broker_qty}",
            )
        self._update(synced=self._progress.synced + 1)
        await self._audit(
            "quantity_synced",
            sync.trade_id,
            f"{sync.symbol}: ledger {sync.ledger_qty}, broker {sync.broker_qty}",
            {"workflow": outcome.action.value, "sole_owner": sync.sole_owner},
        )

    # --- helpers ---------------------------------------------------------------------------

    async def _guard(self, request: GuardRequest) -> GuardOutcome:
        return await call(
            TradeLinkActivities.guard_trade,
            request,
            TRADE_LINK,
            f"guard trade {', '.join(request.trade_ids)}: signal it, or "
            + ("start it protect-only" if request.restart else "find it not running"),
        )

    def _audit_entry(
        self, action: str, trade_id: str, reason: str, detail: dict[str, JsonScalar]
    ) -> AuditEntry:
        return audit_entry(
            action, reason, {"run_id": self._run_id, **detail}, key=trade_id, trade_id=trade_id
        )

    async def _finish(self, started: datetime) -> ReconcileResult:
        result = self._progress
        duration_ms = int((workflow.now() - started).total_seconds() * 1000)
        self._update(duration_ms=duration_ms)
        await ledger(
            LedgerActivities.finish_reconcile_run,
            ReconcileRunFinish(
                run_id=self._run_id,
                checked=result.checked,
                closed=result.closed,
                adopted=result.adopted,
                synced=result.synced,
                ok=result.ok,
                error=result.error,
                duration_ms=duration_ms,
                finished_at=workflow.now(),
            ),
            f"ledger: reconcile run {self._run_id} finished ok={result.ok}",
        )
        metrics.reconcile_run(result.ok, result.closed, result.adopted)
        return self._progress

    def _publish(self) -> None:
        r = self._progress
        page = Details(f"Reconcile {r.run_id}: {'ok' if r.ok else r.error or 'running'}")
        page.line(f"source `{r.source}`{' (dry run)' if r.dry_run else ''}").table(
            ("checked", "closed", "ghosts signalled", "adopted", "synced", "failed actions"),
            [(r.checked, r.closed, r.ghosts_signalled, r.adopted, r.synced, r.failed_actions)],
        )
        self._publish_options(page, r)
        page.publish()
