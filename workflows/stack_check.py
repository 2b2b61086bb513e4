"""StackCheckWorkflow: proves worker, Temporal and the ledger work together end to end.

Its interface is contracts/stack_check.py.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.broker import BrokerActivities
    from activities.ledger import LedgerActivities
    from contracts import stack_check
    from trading.models import (
        AuditLookup,
        StackCheckInput,
        StackCheckResult,
        evolve,
    )
    from workflows.calls import call, ledger
    from workflows.details import Details
    from workflows.policies import BROKER_READ
    from workflows.records import audit_entry


@workflow.defn(name=stack_check.WORKFLOW.name)
class StackCheckWorkflow:
    """Writes an audit row, reads it back, asks the broker for its clock; reports the lot."""

    @workflow.run
    async def run(self, request: StackCheckInput) -> StackCheckResult:
        info = workflow.info()
        Details("Stack check").line(f"writing an audit row for `{request.requested_by}`").publish()
        # The row is written here rather than through records.audit: the check reads it back.
        written = await ledger(
            LedgerActivities.append_audit,
            audit_entry(
                "stack_check",
                f"requested by {request.requested_by}",
                {"run_id": info.run_id},
                key=info.run_id,
            ),
            "ledger: write an audit row",
        )
        Details("Stack check").line(f"reading audit row {written.id} back").publish()
        read_back = await ledger(
            LedgerActivities.get_audit, AuditLookup(id=written.id), "ledger: read it back"
        )
        ok = read_back is not None and read_back == written
        result = StackCheckResult(
            workflow_id=info.workflow_id,
            audit_id=written.id,
            round_trip_ok=ok,
            written_at=written.at,
        )
        if request.check_broker:
            Details("Stack check").line("asking the broker for its clock").publish()
            clock = await call(BrokerActivities.get_clock, None, BROKER_READ, "broker clock")
            result = evolve(
                result, broker_checked=True, market_open=clock.is_open, broker_time=clock.timestamp
            )
        Details("Stack check").line(
            f"done: audit row {written.id}, round trip ok={ok}, market open={result.market_open}"
        ).publish()
        return result
