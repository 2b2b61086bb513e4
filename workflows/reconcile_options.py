"""OptionReconcileSteps: the options part of a ReconcileWorkflow run (workflows/reconcile.py).

The plan's options half (trading/options/positions.py), applied: held iron condors no row
claims adopted (OptionTradeWorkflow started already OPEN at the credit they were opened for,
origin external, its id used once: trading/options/adoption.py); ghost rows whose workflow is
not running closed; held trades whose workflow ended restarted (behind
RECONCILE_OPTION_RESTARTS, asked in the workflow's run); leg mismatches and unmanaged legs
reported (result, audit, Details), never fixed. A mixin of the workflow, as TradeWorkflow's
steps are (workflows/trade_exits.py): it shares the run's progress, id and deadline.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.option_adoption import OptionAdoptionActivities
    from activities.option_ledger import OptionLedgerActivities
    from trading.models import JsonScalar
    from trading.options.adoption import adoption_input, restart_input
    from trading.options.condor_pairing import AdoptableCondor
    from trading.options.positions import (
        HeldOptionTrade,
        OptionGhost,
        OptionsPlan,
        restartable,
    )
    from trading.options.records import OptionTradeGhost
    from trading.reconcile_models import (
        OptionAdoptionRequest,
        OptionWorkflowsQuery,
        ReconcileInput,
        ReconcileResult,
    )
    from workflows.calls import Failed, attempt, call, failure, ledger
    from workflows.details import Details
    from workflows.policies import TRADE_LINK
    from workflows.records import audit
    from workflows.run_base import RunWorkflow

# Actions in flight at once: each names its own trade (a ghost, an adoption, a sync).
ACTIONS_IN_FLIGHT = 16


class OptionReconcileSteps(RunWorkflow[ReconcileResult]):
    """Applies and reports a reconcile plan's options half; the workflow sets the fields."""

    _request: ReconcileInput
    _run_id: str
    _restarts: bool  # RECONCILE_OPTION_RESTARTS: set by run once the marker is known
    _planned_at: datetime  # the plan's as_of: its legs were read after it

    async def _apply_options(self, options: OptionsPlan) -> None:
        """Adopt the held condors, close the ghosts, report mismatches and unmanaged legs."""
        errors: list[str] = []
        adoptions = options.adoptions
        for done in range(0, len(adoptions), ACTIONS_IN_FLIGHT):
            if self._past_deadline(f"deadline reached after {done} option adoptions"):
                return
            wave = adoptions[done : done + ACTIONS_IN_FLIGHT]
            found = await asyncio.gather(*(self._adopt_condor(c) for c in wave))
            errors += [e for e in found if e is not None]
        if options.ghosts and not self._past_deadline("deadline reached before option ghosts"):
            errors += await self._close_option_ghosts(options.ghosts)
        restarts = self._restarts and options.held
        if restarts and not self._past_deadline("deadline reached before option restarts"):
            errors += await self._restart_orphans(options.held)
        await self._report_options(options)
        if errors:
            error = "; ".join(filter(None, [self._progress.error, *errors]))
            self._update(ok=False, error=error[:1000])

    def _past_deadline(self, why: str) -> bool:
        deadline = self._request.deadline
        if deadline is None or workflow.now() < deadline:
            return False
        self._update(partial=True, ok=False, error=why)
        return True

    def _option_failed(self, trade_id: str, why: str) -> str:
        self._update(failed_actions=self._progress.failed_actions + 1)
        workflow.logger.error("reconcile %s: option trade %s: %s", self._run_id, trade_id, why)
        return f"{trade_id}: {why}"

    async def _adopt_condor(self, condor: AdoptableCondor) -> str | None:
        """Start the condor's workflow already OPEN (once); why it failed, or None."""
        try:
            outcome = await call(
                OptionAdoptionActivities.adopt_option_trade,
                OptionAdoptionRequest(trade=adoption_input(condor), seen_before=self._planned_at),
                TRADE_LINK,
                f"adopt {condor.underlying} {condor.expiry} condor {condor.strikes} "
                f"x{condor.qty} as option trade {condor.trade_id}",
            )
        except ActivityError as err:
            return self._option_failed(condor.trade_id, failure(err))
        if not outcome.started:
            return None  # adopted before (its workflow runs, or ended): nothing to do
        self._update(
            options_adopted=self._progress.options_adopted + 1,
            adopted_option_trades=[*self._progress.adopted_option_trades, outcome.trade_id],
        )
        await self._audit(
            "option_trade_adopted",
            outcome.trade_id,
            f"{condor.underlying} {condor.expiry} {condor.strikes} x{condor.qty} "
            f"for a credit of {condor.credit}",
            {"legs": ",".join(leg.symbol for leg in condor.legs), "credit": str(condor.credit)},
        )
        return None

    async def _close_option_ghosts(self, ghosts: list[OptionGhost]) -> list[str]:
        """Close each ghost row whose workflow is not running (a running one closes itself)."""
        ids = [g.trade_id for g in ghosts]
        statuses = await attempt(
            call(
                OptionAdoptionActivities.option_workflows,
                OptionWorkflowsQuery(trade_ids=ids),
                TRADE_LINK,
                f"which of {len(ids)} ghost option trades run: {', '.join(ids)}"[:200],
            )
        )
        if isinstance(statuses, Failed):  # unknown whether they run: none is closed
            return [self._option_failed(t, statuses.why) for t in ids]
        errors: list[str] = []
        for ghost in ghosts:
            if statuses.running(ghost.trade_id):
                self._update(options_ghosts_running=self._progress.options_ghosts_running + 1)
                continue
            reason = (
                f"reconcile {self._run_id}: no leg held at the broker, workflow "
                f"{statuses.found.get(ghost.trade_id, 'missing')}"
            )
            try:
                result = await ledger(
                    OptionLedgerActivities.close_ghost_option_trade,
                    OptionTradeGhost(trade_id=ghost.trade_id, reason=reason, at=workflow.now()),
                    f"ledger: close ghost option trade {ghost.trade_id} ({ghost.underlying})",
                )
            except ActivityError as err:
                errors.append(self._option_failed(ghost.trade_id, failure(err)))
                continue
            if result.applied:
                self._update(options_closed=self._progress.options_closed + 1)
        return errors

    async def _restart_orphans(self, held: list[HeldOptionTrade]) -> list[str]:
        """Ask whether the held trades' workflows run; restart those that ended (orphans)."""
        ids = [h.trade_id for h in held]
        statuses = await attempt(
            call(
                OptionAdoptionActivities.option_workflows,
                OptionWorkflowsQuery(trade_ids=ids),
                TRADE_LINK,
                f"which of {len(ids)} held option trades run: {', '.join(ids)}"[:200],
            )
        )
        if isinstance(statuses, Failed):  # unknown whether any ended: none is restarted
            return [self._option_failed(f"{len(ids)} held option trades", statuses.why)]
        orphans = restartable(held, statuses.found)
        errors: list[str] = []
        for done in range(0, len(orphans), ACTIONS_IN_FLIGHT):
            if self._past_deadline(f"deadline reached after {done} option restarts"):
                break
            wave = orphans[done : done + ACTIONS_IN_FLIGHT]
            found = await asyncio.gather(
                *(self._restart_orphan(h, statuses.found[h.trade_id]) for h in wave)
            )
            errors += [e for e in found if e is not None]
        return errors

    async def _restart_orphan(self, held: HeldOptionTrade, workflow_status: str) -> str | None:
        """Start a new run of a held trade whose workflow ended; why it failed, or None."""
        trade = restart_input(held, workflow_status)
        state, condor = trade.state, held.condor
        assert state is not None
        what = (
            f"{condor.underlying} {condor.expiry} {condor.strikes} x{condor.qty}: workflow "
            f"{workflow_status}, every leg held; restarted {state.status.value} at a credit "
            f"of {condor.credit}"
        )
        try:
            outcome = await call(
                OptionAdoptionActivities.adopt_option_trade,
                OptionAdoptionRequest(trade=trade, seen_before=self._planned_at, restart=True),
                TRADE_LINK,
                f"restart option trade {held.trade_id} ({held.status.value} row, workflow "
                f"{workflow_status})",
            )
        except ActivityError as err:
            return self._option_failed(held.trade_id, failure(err))
        if not outcome.started:
            return None  # running again, or its row closed, since the plan: nothing to do
        self._update(
            options_restarted=self._progress.options_restarted + 1,
            restarted_option_trades=[*self._progress.restarted_option_trades, held.trade_id],
        )
        workflow.logger.warning(
            "reconcile %s: option trade %s %s", self._run_id, held.trade_id, what
        )
        await self._audit(
            "option_trade_restarted",
            held.trade_id,
            what,
            {
                "workflow": workflow_status,
                "row_status": held.status.value,
                "status": state.status.value,
                "credit": str(condor.credit),
                "origin": held.origin.value,
                "legs": ",".join(leg.symbol for leg in condor.legs),
            },
        )
        return None

    async def _report_options(self, options: OptionsPlan) -> None:
        """Audit what reconcile does not fix: leg mismatches and unmanaged legs."""
        for mismatch in options.mismatches:
            await self._audit(
                "option_legs_mismatch",
                mismatch.trade_id,
                f"{mismatch.underlying} x{mismatch.qty} ({mismatch.status.value}): "
                f"{mismatch.summary}",
                {leg.symbol: f"held {leg.held} expected {leg.expected}" for leg in mismatch.legs},
            )
        if options.unmanaged:
            await audit(
                "option_legs_unmanaged",
                f"{len(options.unmanaged)} option legs no trade manages",
                {
                    "run_id": self._run_id,
                    **{u.symbol: f"{u.qty}: {u.reason}" for u in options.unmanaged},
                },
                key="unmanaged",
            )

    def _publish_options(self, page: Details, r: ReconcileResult) -> None:
        """The options line and findings table of the run's Details page, if it read them."""
        options = r.plan.options if r.plan is not None else None
        if options is not None:
            page.line(
                f"options: adopted {r.options_adopted}, restarted {r.options_restarted}, closed "
                f"{r.options_closed}, ghosts running {r.options_ghosts_running}"
            )
            page.table(
                ("action", "underlying / leg", "trade", "detail"),
                options.findings() + options.restarted_findings(r.restarted_option_trades),
            )

    # --- helpers ---------------------------------------------------------------------------

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
