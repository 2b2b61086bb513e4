"""TradeGuardActivities: make sure a trade workflow is guarding a position (signal or start).

Used by ReconcileWorkflow (ghosts, drifted quantities, adoptions) and AutoManageWorkflow (every
broker position). This needs the Temporal client's describe, which a workflow cannot do: only
describe tells a failed, terminated or timed-out guard from a running one, and a definitive
"not running" is what allows a ledger close or a restart.
"""

from __future__ import annotations

from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.service import RPCError, RPCStatusCode

from trading.reconcile_models import GuardAction, GuardOutcome, GuardRequest
from trading.trade_models import TradeWorkflowInput, workflow_id_for

POSITION_UPDATE_SIGNAL = "position_update"
TRADE_WORKFLOW = "TradeWorkflow"
_GONE = (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION)


class TradeGuardActivities:
    """Describe, signal and (re)start trade workflows; built with the worker's Temporal client."""

    def __init__(self, client: Client) -> None:
        self._client = client

    async def _status(self, trade_id: str) -> WorkflowExecutionStatus | None:
        """The latest run's status, or None when the workflow id was never used."""
        handle = self._client.get_workflow_handle(workflow_id_for(trade_id))
        try:
            description = await handle.describe()
        except RPCError as err:
            if err.status is RPCStatusCode.NOT_FOUND:
                return None
            raise
        return description.status

    @activity.defn
    async def guard_trade(self, request: GuardRequest) -> GuardOutcome:
        """Signal the first running trade workflow; with none running, start the restart spec.

        The start is idempotent: the workflow id is the trade's, a running one is reused
        (USE_EXISTING) and a closed one (failed, terminated, timed out) gets a new run.
        """
        found: dict[str, str] = {}
        for trade_id in request.trade_ids:
            status = await self._status(trade_id)
            found[trade_id] = status.name.lower() if status is not None else "missing"
            if status is not WorkflowExecutionStatus.RUNNING:
                continue
            if request.update is None:
                return GuardOutcome(action=GuardAction.SIGNALLED, trade_id=trade_id, found=found)
            handle = self._client.get_workflow_handle(workflow_id_for(trade_id))
            try:
                await handle.signal(POSITION_UPDATE_SIGNAL, request.update)
            except RPCError as err:
                if err.status not in _GONE:
                    raise
                found[trade_id] = "ended"  # finished between describe and signal
                continue
            activity.logger.info("trade %s is running: signalled its position", trade_id)
            return GuardOutcome(action=GuardAction.SIGNALLED, trade_id=trade_id, found=found)
        spec = request.restart
        if spec is None:
            return GuardOutcome(action=GuardAction.NOT_RUNNING, trade_id=None, found=found)
        await self._client.start_workflow(
            TRADE_WORKFLOW,
            TradeWorkflowInput(spec=spec),
            id=spec.workflow_id,
            task_queue=activity.info().task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
        activity.logger.warning(
            "trade %s (%s x%s): no running guard (%s); started protect-only, stop %s order %s",
            spec.trade_id,
            spec.symbol,
            spec.qty,
            found or "unclaimed",
            spec.stop_price,
            spec.existing_stop_order_id,
        )
        return GuardOutcome(action=GuardAction.STARTED, trade_id=spec.trade_id, found=found)
