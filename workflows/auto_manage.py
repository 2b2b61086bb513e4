"""AutoManageWorkflow: the second layer - every broker position has a live guard and a stop.

Its interface is contracts/auto_manage.py. For each long broker position, the trade workflow
of the ledger's open trade in that symbol must be running: a running one is signalled the
snapshot when no stop covers the position (it checks its stop at once and rescues it if
needed; a covered one is left alone, so the sweep costs quiet trades nothing); a missing,
failed, terminated or timed-out one is restarted as a protect-only guard. An unclaimed
position gets the adoption id reconcile would give it.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.ledger import LedgerActivities
    from activities.trade_link import TradeLinkActivities
    from contracts import auto_manage
    from trading.ledger_records import OpenTrades, OpenTradesQuery
    from trading.models import evolve
    from trading.reconcile import GuardTarget, protection_sweep
    from trading.reconcile_models import (
        AutoManageInput,
        AutoManageResult,
        GuardRequest,
        SymbolGuard,
        sweep_result,
    )
    from workflows.broker_reads import broker_truth
    from workflows.calls import call, failure, ledger
    from workflows.policies import TRADE_LINK
    from workflows.records import audit


@workflow.defn(name=auto_manage.WORKFLOW.name)
class AutoManageWorkflow:
    """One sweep: a running trade workflow (and so a checked stop) behind every position."""

    @workflow.run
    async def run(self, request: AutoManageInput) -> AutoManageResult:
        """Snapshot, then signal or (re)start a guard per position, then audit the sweep."""
        truth, error = await broker_truth(request.snapshot_attempts, "a guard per position")
        if truth is None:
            result = AutoManageResult(ok=False, error=error)
            await self._audit(result)
            return result
        open_trades: OpenTrades = await ledger(
            LedgerActivities.list_open_trades, OpenTradesQuery(), "ledger: open trades"
        )
        guards = [
            await self._guard(target)
            for target in protection_sweep(truth, open_trades.trades, request.stop_distance)
        ]
        result = sweep_result(guards)
        await self._audit(result)
        return result

    async def _guard(self, target: GuardTarget) -> SymbolGuard:
        """Signal or (re)start the guard of one position."""
        guard = SymbolGuard(symbol=target.symbol, qty=target.qty, covered=target.covered)
        try:
            outcome = await call(
                TradeLinkActivities.guard_trade,
                GuardRequest(
                    trade_ids=target.trade_ids,
                    update=target.update,
                    restart=target.restart,
                    signal_running=not target.covered,
                ),
                TRADE_LINK,
                f"guard {target.symbol} x{target.qty}: signal or start its trade",
            )
        except ActivityError as err:
            return evolve(guard, error=failure(err))
        return evolve(guard, action=outcome.action, trade_id=outcome.trade_id)

    async def _audit(self, result: AutoManageResult) -> None:
        await audit(
            "auto_manage",
            result.error or "ok",
            {
                "ok": result.ok,
                "positions": result.positions,
                "signalled": result.signalled,
                "running": result.running,
                "started": result.started,
                "uncovered": result.uncovered,
                "restarted": ",".join(result.restarted),
            },
            key=workflow.info().run_id,
        )
