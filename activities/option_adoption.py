"""OptionAdoptionActivities: reconcile's reach into option trade workflows.

Adopting a held condor starts `option-trade-<id>` already OPEN. The id is the condor's
deterministic trade id (trading/options/condor_pairing.py), and each workflow id is used once: a
running workflow is kept (conflict policy USE_EXISTING) and an ended one is never started again
(reuse policy REJECT_DUPLICATE) - a second run of an ended trade would send a closing order for
legs it no longer holds. A repeated or overlapping reconcile therefore starts nothing twice.

The same legs at the same entry prices may be opened again after an adopted trade of them
ended (the id then names a closed row). Such legs are a new position when the earlier trade's
row was closed before they were read (`seen_before`): the condor is adopted under the next
generation of its id (`<id>-2`, `<id>-3`, ...). A row closed later (or still open) means the
legs read were that trade's own, and nothing is started.

Whether a ghost row's workflow runs comes from the client's describe, as TradeLink decides
for stock trades: only a definitive "not running" (or an id never used) lets reconcile close
the row; any other failure fails the activity, and nothing is closed on unknown.

Restarting an orphan (an open row whose legs are all held, its workflow terminated, failed,
timed out or gone) starts a new run under the same workflow id (`restart` in the request: one
activity starts both, so the worker's registrations stay as they are). Three guards keep it
to one run, however many reconciles overlap or repeat:
- the start allows a duplicate only of a run that did not complete (reuse policy
  ALLOW_DUPLICATE_FAILED_ONLY: a completed run wrote its final row, so nothing is restarted
  over a trade that ended properly) and fails on a running one (conflict policy FAIL: the
  server refuses atomically, so two reconciles racing start one run - the loser reads
  WorkflowAlreadyStartedError and starts nothing);
- the latest run is described first and the row read after it: a running run, or a row
  closed since the plan, starts nothing;
- a run restarted by another reconcile that already ended (the tiny window between that
  describe and the start) completed after writing its row closed, which the reuse policy
  refuses; a failed one would be restarted again - and a restarted trade sends no close
  for legs it no longer holds (OptionTradeWorkflow reads them first).
"""

from __future__ import annotations

import asyncio

import asyncpg
from temporalio import activity
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError

from activities.option_link import OptionTradeLink
from contracts import option_trade
from ledger.option_trades import OptionTrades
from trading.options.positions import RESTARTABLE_ENDS
from trading.reconcile_models import (
    OptionAdoptionOutcome,
    OptionAdoptionRequest,
    OptionWorkflowsQuery,
    OptionWorkflowsStatus,
)

MISSING = "missing"
RUNNING = "running"
MAX_GENERATIONS = 99  # `<id>-99` still fits the 32-character trade id


def generation_id(trade_id: str, generation: int) -> str:
    """The condor's id for its n-th adoption: the id itself first, then `<id>-<n>`."""
    return trade_id if generation == 1 else f"{trade_id}-{generation}"


class OptionAdoptionActivities:
    """Starts adopted option trades and tells whether option trades' workflows run."""

    def __init__(self, client: Client, task_queue: str, pool: asyncpg.Pool) -> None:
        self._client = client
        self._link = OptionTradeLink(client)
        self._task_queue = task_queue
        self._rows = OptionTrades(pool)

    async def _status(self, trade_id: str) -> str:
        status = await self._link.status(trade_id)
        return status.name.lower() if status is not None else MISSING

    async def _ended_before(self, trade_id: str, request: OptionAdoptionRequest) -> bool:
        """The trade's row was closed (or never written) before the legs were read."""
        row = await self._rows.get(trade_id)
        if row is None:
            return True  # its workflow ended before writing a row: it never held these legs
        return row.closed_at is not None and row.closed_at < request.seen_before

    @activity.defn
    async def adopt_option_trade(self, request: OptionAdoptionRequest) -> OptionAdoptionOutcome:
        """Start the adopted condor's workflow once (see the module for ids and generations),
        or with `restart` a new run of a held trade whose workflow ended."""
        if request.restart:
            return await self._restart(request)
        spec = request.trade.spec
        for generation in range(1, MAX_GENERATIONS + 1):
            trade_id = generation_id(spec.trade_id, generation)
            workflow_id = option_trade.workflow_id(trade_id)
            status = await self._status(trade_id)
            if status == MISSING:
                break
            if status == RUNNING or not await self._ended_before(trade_id, request):
                activity.logger.info("option trade %s already adopted (%s)", trade_id, status)
                return OptionAdoptionOutcome(
                    trade_id=trade_id, workflow_id=workflow_id, started=False, status=status
                )
        else:
            raise ApplicationError(
                f"option trade {spec.trade_id}: {MAX_GENERATIONS} adoptions used",
                type="AdoptionIdsExhausted",
                non_retryable=True,
            )
        trade = request.trade.model_copy(
            update={"spec": spec.model_copy(update={"trade_id": trade_id})}
        )
        # The SDK's start does not say whether USE_EXISTING found a run; the describe above
        # did, and a start racing this one is kept all the same.
        try:
            await self._client.start_workflow(
                option_trade.WORKFLOW.name,
                trade,
                id=workflow_id,
                task_queue=self._task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            )
        except WorkflowAlreadyStartedError:  # started and ended since the describe
            return OptionAdoptionOutcome(
                trade_id=trade_id, workflow_id=workflow_id, started=False, status="ended"
            )
        activity.logger.info(
            "option trade %s adopted: %s %s x%s, credit %s",
            trade_id,
            spec.plan.underlying,
            spec.plan.expiry,
            spec.qty,
            spec.limit_credit,
        )
        return OptionAdoptionOutcome(trade_id=trade_id, workflow_id=workflow_id, started=True)

    async def _restart(self, request: OptionAdoptionRequest) -> OptionAdoptionOutcome:
        """Start a new run of a held trade whose workflow ended (once; see the module)."""
        spec = request.trade.spec
        trade_id = spec.trade_id
        workflow_id = option_trade.workflow_id(trade_id)

        def kept(status: str) -> OptionAdoptionOutcome:
            activity.logger.info("option trade %s not restarted: %s", trade_id, status)
            return OptionAdoptionOutcome(
                trade_id=trade_id, workflow_id=workflow_id, started=False, status=status
            )

        status = await self._status(trade_id)
        if status not in RESTARTABLE_ENDS:
            return kept(status)
        row = await self._rows.get(trade_id)
        if row is None or not row.is_open:
            return kept("row closed")
        try:
            await self._client.start_workflow(
                option_trade.WORKFLOW.name,
                request.trade,
                id=workflow_id,
                task_queue=self._task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            )
        except WorkflowAlreadyStartedError:  # running again, or completed, since the describe
            return kept("started elsewhere")
        state = request.trade.state
        activity.logger.info(
            "option trade %s restarted (workflow was %s): %s x%s %s at a credit of %s",
            trade_id,
            status,
            spec.plan.underlying,
            spec.qty,
            state.status.value if state else "-",
            state.credit if state else "-",
        )
        return OptionAdoptionOutcome(
            trade_id=trade_id, workflow_id=workflow_id, started=True, status=status
        )

    @activity.defn
    async def option_workflows(self, query: OptionWorkflowsQuery) -> OptionWorkflowsStatus:
        """Each trade's latest run status (`running`, `completed`, ..., or `missing`)."""
        statuses = await asyncio.gather(*(self._status(t) for t in query.trade_ids))
        return OptionWorkflowsStatus(found=dict(zip(query.trade_ids, statuses, strict=True)))
