"""AutoManageWorkflow: the second layer - every broker position has a live guard and a stop.

For each long broker position, the trade workflow of the ledger's open trade in that symbol
must be running: a running one is signalled the snapshot (it checks its stop at once and
rescues it if needed); a missing, failed, terminated or timed-out one is restarted as a
protect-only guard. An unclaimed position gets the adoption id reconcile would give it.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.broker import BrokerActivities
    from activities.ledger import LedgerActivities
    from activities.reconcile import TradeGuardActivities
    from trading.broker_models import BrokerTruth
    from trading.ledger_records import OpenTrades, OpenTradesQuery
    from trading.models import AuditEntry
    from trading.reconcile import protection_sweep
    from trading.reconcile_models import (
        AutoManageInput,
        AutoManageResult,
        GuardAction,
        GuardOutcome,
        GuardRequest,
        SymbolGuard,
    )
    from workflows.calls import call, failure, ledger
    from workflows.policies import GUARD_CALL, broker_snapshot


@workflow.defn
class AutoManageWorkflow:
    """One sweep: a running trade workflow (and so a checked stop) behind every position."""

    @workflow.run
    async def run(self, request: AutoManageInput) -> AutoManageResult:
        """Snapshot, then signal or (re)start a guard per position, then audit the sweep."""
        try:
            truth: BrokerTruth = await call(
                BrokerActivities.get_broker_truth, None, broker_snapshot(request.snapshot_attempts)
            )
        except ActivityError as err:
            result = AutoManageResult(ok=False, error=f"broker snapshot failed: {failure(err)}")
            await self._audit(result)
            return result
        open_trades: OpenTrades = await ledger(LedgerActivities.list_open_trades, OpenTradesQuery())
        guards: list[SymbolGuard] = []
        for target in protection_sweep(truth, open_trades.trades, request.stop_distance):
            try:
                outcome: GuardOutcome = await call(
                    TradeGuardActivities.guard_trade,
                    GuardRequest(
                        trade_ids=target.trade_ids, update=target.update, restart=target.restart
                    ),
                    GUARD_CALL,
                )
            except ActivityError as err:
                guards.append(
                    SymbolGuard(
                        symbol=target.symbol,
                        qty=target.qty,
                        covered=target.covered,
                        action=None,
                        trade_id=None,
                        error=failure(err),
                    )
                )
                continue
            guards.append(
                SymbolGuard(
                    symbol=target.symbol,
                    qty=target.qty,
                    covered=target.covered,
                    action=outcome.action,
                    trade_id=outcome.trade_id,
                )
            )
        failed = [g for g in guards if g.action is None]
        result = AutoManageResult(
            ok=not failed,
            error="; ".join(f"{g.symbol}: {g.error}" for g in failed)[:1000] or None,
            positions=len(guards),
            signalled=sum(g.action is GuardAction.SIGNALLED for g in guards),
            started=sum(g.action is GuardAction.STARTED for g in guards),
            uncovered=sum(not g.covered for g in guards),
            guards=guards,
        )
        await self._audit(result)
        return result

    async def _audit(self, result: AutoManageResult) -> None:
        info = workflow.info()
        started = [
            f"{g.symbol}:{g.trade_id}" for g in result.guards if g.action is GuardAction.STARTED
        ]
        await ledger(
            LedgerActivities.append_audit,
            AuditEntry(
                actor=info.workflow_id,
                action="auto_manage",
                reason=result.error or "ok",
                detail={
                    "ok": result.ok,
                    "positions": result.positions,
                    "signalled": result.signalled,
                    "started": result.started,
                    "uncovered": result.uncovered,
                    "restarted": ",".join(started),
                },
                event_key=f"auto-manage:{info.workflow_id}:{info.run_id}",
            ),
        )
