"""StackCheckWorkflow: proves worker, Temporal and the ledger work together end to end."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.broker import BrokerActivities
    from activities.ledger import LedgerActivities
    from trading.models import (
        AuditEntry,
        AuditLookup,
        StackCheckInput,
        StackCheckResult,
    )
    from workflows.calls import call, ledger
    from workflows.policies import BROKER_READ, LEDGER_READ


@workflow.defn
class StackCheckWorkflow:
    """Writes an audit row, reads it back, asks the broker for its clock; reports the lot."""

    @workflow.run
    async def run(self, request: StackCheckInput) -> StackCheckResult:
        info = workflow.info()
        workflow.set_current_details(f"writing an audit row for `{request.requested_by}`")
        written = await ledger(
            LedgerActivities.append_audit,
            AuditEntry(
                actor=info.workflow_id,
                action="stack_check",
                reason=f"requested by {request.requested_by}",
                detail={"run_id": info.run_id},
                event_key=f"stack-check:{info.workflow_id}:{info.run_id}",
            ),
        )
        workflow.set_current_details(f"reading audit row {written.id} back")
        read_back = await call(LedgerActivities.get_audit, AuditLookup(id=written.id), LEDGER_READ)
        ok = read_back is not None and read_back == written
        result = StackCheckResult(
            workflow_id=info.workflow_id,
            audit_id=written.id,
            round_trip_ok=ok,
            written_at=written.at,
        )
        if request.check_broker:
            workflow.set_current_details("asking the broker for its clock")
            clock = await call(BrokerActivities.get_clock, None, BROKER_READ)
            result = result.model_copy(
                update={
                    "broker_checked": True,
                    "market_open": clock.is_open,
                    "broker_time": clock.timestamp,
                }
            )
        workflow.set_current_details(
            f"done: audit row {written.id}, round trip ok={ok}, market open={result.market_open}"
        )
        return result
