"""OptionAdoptionActivities: reconcile's reach into option trade workflows.

Adopting a held condor starts `option-trade-<id>` already OPEN (its id is the condor's
deterministic trade id). The id is used once: a running workflow is kept (conflict policy
USE_EXISTING) and an ended one is never started again (reuse policy REJECT_DUPLICATE) - an
ended adopted trade closed its legs, and a second run of it would send a closing order for
legs nobody holds. So a repeated or overlapping reconcile starts nothing twice.

Whether a ghost row's workflow runs comes from the client's describe, as TradeLink decides
for stock trades: only a definitive "not running" (or an id never used) lets reconcile close
the row; any other failure fails the activity, and nothing is closed on unknown.
"""

from __future__ import annotations

import asyncio

from temporalio import activity
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from contracts import option_trade
from trading.reconcile_models import (
    OptionAdoptionOutcome,
    OptionAdoptionRequest,
    OptionWorkflowsQuery,
    OptionWorkflowsStatus,
)

MISSING = "missing"


class OptionAdoptionActivities:
    """Starts adopted option trades and tells whether option trades' workflows run."""

    def __init__(self, client: Client, task_queue: str) -> None:
        self._client = client
        self._task_queue = task_queue

    async def _status(self, trade_id: str) -> str:
        handle = self._client.get_workflow_handle(option_trade.workflow_id(trade_id))
        try:
            description = await handle.describe()
        except RPCError as err:
            if err.status is RPCStatusCode.NOT_FOUND:
                return MISSING
            raise
        return description.status.name.lower() if description.status else MISSING

    @activity.defn
    async def adopt_option_trade(self, request: OptionAdoptionRequest) -> OptionAdoptionOutcome:
        """Start the adopted condor's workflow once (see the module for the id policies)."""
        spec = request.trade.spec
        workflow_id = option_trade.workflow_id(spec.trade_id)
        # The SDK's start does not say whether USE_EXISTING found a run: look first, so a
        # repeat reports "already adopted" (a start racing this one is kept all the same).
        status = await self._status(spec.trade_id)
        if status != MISSING:
            activity.logger.info("option trade %s already adopted (%s)", spec.trade_id, status)
            return OptionAdoptionOutcome(workflow_id=workflow_id, started=False, status=status)
        try:
            await self._client.start_workflow(
                option_trade.WORKFLOW.name,
                request.trade,
                id=workflow_id,
                task_queue=self._task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            )
        except WorkflowAlreadyStartedError:
            status = await self._status(spec.trade_id)
            activity.logger.info("option trade %s already adopted (%s)", spec.trade_id, status)
            return OptionAdoptionOutcome(workflow_id=workflow_id, started=False, status=status)
        activity.logger.info(
            "option trade %s adopted: %s %s x%s, credit %s",
            spec.trade_id,
            spec.plan.underlying,
            spec.plan.expiry,
            spec.qty,
            spec.limit_credit,
        )
        return OptionAdoptionOutcome(workflow_id=workflow_id, started=True)

    @activity.defn
    async def option_workflows(self, query: OptionWorkflowsQuery) -> OptionWorkflowsStatus:
        """Each trade's latest run status (`running`, `completed`, ..., or `missing`)."""
        statuses = await asyncio.gather(*(self._status(t) for t in query.trade_ids))
        return OptionWorkflowsStatus(found=dict(zip(query.trade_ids, statuses, strict=True)))
