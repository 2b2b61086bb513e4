"""ReconcileWorkflow: converge the ledger on one broker-truth snapshot, and record the run.

Its interface is contracts/reconcile.py. One snapshot (account, positions, open orders); the
diff is trading/reconcile.py's. A failed snapshot changes nothing (unknown is never absent).
Every action is idempotent (first close wins, adoption ids are deterministic and started with
USE_EXISTING), so a repeated or overlapping run converges on the same ledger.
"""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.ledger import LedgerActivities
    from activities.trade_link import TradeLinkActivities
    from contracts import reconcile
    from trading.broker_models import BrokerTruth
    from trading.ledger_records import (
        OpenTradesQuery,
        ReconcileRunFinish,
        ReconcileRunStart,
        TradeClose,
        TradeEntryFill,
    )
    from trading.models import JsonScalar
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
        ReconcileInput,
        ReconcileResult,
    )
    from trading.trade_models import TradeSpec
    from workflows.broker_reads import broker_truth
    from workflows.calls import call, failure, ledger
    from workflows.details import Details
    from workflows.policies import TRADE_LINK
    from workflows.records import audit
    from workflows.run_base import RunWorkflow


@workflow.defn(name=reconcile.WORKFLOW.name)
class ReconcileWorkflow(RunWorkflow[ReconcileResult]):
    """One reconcile run: snapshot, plan, apply (or print with dry_run), record."""

    @workflow.init
    def __init__(self, request: ReconcileInput) -> None:
        self._request = request
        self._run_id = request.run_id or workflow.info().workflow_id
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
        truth, error = await broker_truth(request.snapshot_attempts, "reconcile")
        if truth is None:
            # Unknown is never absent: without a snapshot nothing is closed or adopted.
            self._update(error=error)
            return await self._finish(started)
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
        if not request.dry_run:
            await self._apply(plan, truth)
        return await self._finish(started)

    # --- applying the plan -----------------------------------------------------------------

    async def _apply(self, plan: ReconcilePlan, truth: BrokerTruth) -> None:
        steps: list[Adoption | GhostClose | QuantitySync] = [
            *plan.adoptions,
            *plan.ghost_closes,
            *plan.quantity_syncs,
        ]
        errors: list[str] = []
        for done, step in enumerate(steps):
            deadline = self._request.deadline
            if deadline is not None and workflow.now() >= deadline:
                self._update(
                    partial=True,
                    ok=False,
                    error=f"deadline reached after {done} of {len(steps)} actions",
                )
                return
            try:
                if isinstance(step, Adoption):
                    await self._adopt(step)
                elif isinstance(step, GhostClose):
                    await self._close_ghost(step, truth)
                else:
                    await self._sync(step, truth)
            except ActivityError as err:
                errors.append(f"{step.trade_id}: {failure(err)}")
                self._update(failed_actions=self._progress.failed_actions + 1)
                workflow.logger.error("reconcile %s: %s failed: %s", self._run_id, step, errors[-1])
        if errors:
            self._update(ok=False, error="; ".join(errors)[:1000])

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

    async def _close_ghost(self, ghost: GhostClose, truth: BrokerTruth) -> None:
        outcome = await self._guard(
            GuardRequest(
                trade_ids=[ghost.trade_id], update=position_update_for(truth, ghost.symbol)
            )
        )
        if outcome.action is GuardAction.SIGNALLED:
            # Its workflow asks the broker and closes itself with the reason it finds.
            self._update(ghosts_signalled=self._progress.ghosts_signalled + 1)
            return
        result = await ledger(
            LedgerActivities.close_trade,
            TradeClose(
                trade_id=ghost.trade_id,
                close_reason=ghost.close_reason,
                closed_at=workflow.now(),
            ),
            f"ledger: close ghost trade {ghost.trade_id} ({ghost.symbol})",
        )
        if result.applied:
            self._update(closed=self._progress.closed + 1)
            await self._audit(
                "ghost_closed",
                ghost.trade_id,
                f"{ghost.symbol}: no broker position or open order, no running workflow",
                {"status": ghost.status.value, "close_reason": ghost.close_reason.value},
            )

    async def _sync(self, sync: QuantitySync, truth: BrokerTruth) -> None:
        outcome = await self._guard(
            GuardRequest(trade_ids=[sync.trade_id], update=position_update_for(truth, sync.symbol))
        )
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
                    filled_at=truth.fetched_at,
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

    async def _audit(
        self, action: str, trade_id: str, reason: str, detail: dict[str, JsonScalar]
    ) -> None:
        await audit(
            action,
            reason,
            {"run_id": self._run_id, **detail},
            key=trade_id,
            trade_id=trade_id,
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
        return self._progress

    def _publish(self) -> None:
        r = self._progress
        page = Details(f"Reconcile {r.run_id}: {'ok' if r.ok else r.error or 'running'}")
        page.line(f"source `{r.source}`{' (dry run)' if r.dry_run else ''}").table(
            ("checked", "closed", "ghosts signalled", "adopted", "synced", "failed actions"),
            [(r.checked, r.closed, r.ghosts_signalled, r.adopted, r.synced, r.failed_actions)],
        )
        page.publish()
