"""TradeLink: the one way to reach a trade workflow from outside it.

Signal it, start it, start it or signal it (a guard behind a position), ask it an update or a
query - by trade id, with the names and payloads of contracts/trade.py. Workflows reach trades
through TradeLinkActivities (a workflow cannot hold a Temporal client); BrokerSync's activities,
the CLI and `dev up` use a TradeLink directly.

Only the client's describe tells a failed, terminated or timed-out guard from a running one,
and a definitive "not running" is what allows a ledger close or a restart.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, TypeVar

from pydantic import BaseModel
from temporalio import activity
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import ResetStickyTaskQueueRequest
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from contracts import trade
from contracts.base import Query, Signal, Update
from trading.entry import TradeStart, TradeStartOutcome
from trading.reconcile_models import (
    GuardAction,
    GuardOutcome,
    GuardOutcomes,
    GuardRequest,
    GuardRequests,
)
from trading.trade_models import (
    AddOnRequest,
    AddOnResult,
    SignalDelivery,
    TradeExitRequest,
    TradeSpec,
)

PayloadT = TypeVar("PayloadT", bound=BaseModel)
ResultT = TypeVar("ResultT")
# A workflow that ended (or never ran) answers a signal with one of these.
_GONE = (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION)
logger = logging.getLogger("durable_trader.trade_link")


class TradeLink:
    """Reaches `trade-<id>` workflows on one task queue through a Temporal client."""

    def __init__(self, client: Client, task_queue: str) -> None:
        self._client = client
        self._task_queue = task_queue

    def handle(self, trade_id: str) -> WorkflowHandle[Any, Any]:
        """The handle of a trade's workflow (its latest run)."""
        return self._client.get_workflow_handle(trade.workflow_id(trade_id))

    async def status(self, trade_id: str) -> WorkflowExecutionStatus | None:
        """The latest run's status, or None when the workflow id was never used."""
        try:
            description = await self.handle(trade_id).describe()
        except RPCError as err:
            if err.status is RPCStatusCode.NOT_FOUND:
                return None
            raise
        return description.status

    async def signal(self, trade_id: str, message: Signal[PayloadT], payload: PayloadT) -> bool:
        """Signal a trade; False when its workflow is not running (ended or never started)."""
        try:
            await self.handle(trade_id).signal(message.name, payload)
        except RPCError as err:
            if err.status in _GONE:
                return False
            raise
        return True

    async def unstick(self, trade_id: str) -> None:
        """Send the trade's next workflow task to the task queue, not to its last worker's cache.

        After a worker died, its cached trades' tasks would wait out the sticky timeout on
        its queue; a (re)started worker unsticks the trades it is about to wake.
        """
        request = ResetStickyTaskQueueRequest(
            namespace=self._client.namespace,
            execution=WorkflowExecution(workflow_id=trade.workflow_id(trade_id)),
        )
        try:
            await self._client.workflow_service.reset_sticky_task_queue(request)
        except RPCError as err:
            if err.status not in _GONE:
                raise

    async def update(
        self,
        trade_id: str,
        message: Update[PayloadT, ResultT],
        payload: PayloadT,
        update_id: str | None = None,
    ) -> ResultT:
        """Ask a trade an update and wait for its answer.

        With `update_id`, asking again (a retried activity) while the run that took it lives
        gets that first answer: Temporal runs an update id once per run.
        """
        result: ResultT = await self.handle(trade_id).execute_update(
            message.name, payload, id=update_id, result_type=message.result
        )
        return result

    async def query(self, trade_id: str, message: Query[ResultT]) -> ResultT:
        """Ask a trade a query."""
        result: ResultT = await self.handle(trade_id).query(
            message.name, result_type=message.result
        )
        return result

    async def start(self, spec: TradeSpec, *, once: bool) -> TradeStartOutcome:
        """Start a trade's workflow.

        `once`: the id is never used twice (an entry from a signal: a second start is refused
        even after the first run ended). Otherwise a running one is kept and an ended one gets
        a new run (a guard restarted behind a position).
        """
        workflow_id = trade.workflow_id(spec.trade_id)
        try:
            handle = await self._client.start_workflow(
                trade.WORKFLOW.name,
                trade.start_input(spec),
                id=workflow_id,
                task_queue=self._task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE
                if once
                else WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL
                if once
                else WorkflowIDConflictPolicy.USE_EXISTING,
            )
        except WorkflowAlreadyStartedError:
            return TradeStartOutcome(workflow_id=workflow_id, started=False)
        return TradeStartOutcome(workflow_id=workflow_id, started=True, run_id=handle.result_run_id)

    async def guard(self, request: GuardRequest) -> GuardOutcome:
        """Signal the first running trade of `request`; with none running, start the restart spec.

        The start is idempotent: the workflow id is the trade's, a running one is reused and a
        closed one (failed, terminated, timed out) gets a new run.
        """
        found: dict[str, str] = {}
        for trade_id in request.trade_ids:
            status = await self.status(trade_id)
            found[trade_id] = status.name.lower() if status is not None else "missing"
            if status is not WorkflowExecutionStatus.RUNNING:
                continue
            if not request.signal_running:
                return GuardOutcome(action=GuardAction.RUNNING, trade_id=trade_id, found=found)
            if request.update is not None and not await self.signal(
                trade_id, trade.POSITION_UPDATE, request.update
            ):
                found[trade_id] = "ended"  # finished between describe and signal
                continue
            return GuardOutcome(action=GuardAction.SIGNALLED, trade_id=trade_id, found=found)
        spec = request.restart
        if spec is None:
            return GuardOutcome(action=GuardAction.NOT_RUNNING, trade_id=None, found=found)
        await self.start(spec, once=False)
        logger.warning(
            "trade %s (%s x%s): no running guard (%s); started protect-only, stop %s order %s",
            spec.trade_id,
            spec.symbol,
            spec.qty,
            found or "unclaimed",
            spec.stop_price,
            spec.existing_stop_order_id,
        )
        return GuardOutcome(action=GuardAction.STARTED, trade_id=spec.trade_id, found=found)


class TradeLinkActivities:
    """TradeLink for workflows: start, force-exit and guard trades as activities."""

    def __init__(self, link: TradeLink) -> None:
        self._link = link

    @activity.defn
    async def start_trade(self, request: TradeStart) -> TradeStartOutcome:
        """Start `trade-<id>` once: a workflow id used before (running or not) is never reused."""
        spec = request.spec
        outcome = await self._link.start(spec, once=True)
        activity.logger.info(
            "trade %s: %s %s x%s stop %s (signal %s)",
            spec.trade_id,
            "started" if outcome.started else "already started",
            spec.symbol,
            spec.qty,
            spec.stop_price,
            spec.signal_id,
        )
        return outcome

    @activity.defn
    async def force_exit_trade(self, request: TradeExitRequest) -> SignalDelivery:
        """Tell a trade to exit; a trade whose workflow is not running is reported, not failed."""
        delivered = await self._link.signal(request.trade_id, trade.FORCE_EXIT, request.exit)
        activity.logger.info(
            "trade %s: %s exit %s (%s)",
            request.trade_id,
            request.exit.urgency.value,
            "signalled" if delivered else "not delivered: no running trade workflow",
            request.exit.reason,
        )
        return SignalDelivery(
            trade_id=request.trade_id,
            delivered=delivered,
            note="" if delivered else "no running trade workflow",
        )

    @activity.defn
    async def add_on(self, request: AddOnRequest) -> AddOnResult:
        """Ask a running trade to buy more (its ADD_ON update, update id = the signal key).

        A retry never adds twice: the update id and the trade's own memory of the signal key
        answer it. A refusal (the validator's or the handler's) is final: a non-retryable
        ApplicationError of the refusal's type and message; a trade not running, likewise.
        """
        add_on = request.add_on
        try:
            result = await self._link.update(
                request.trade_id, trade.ADD_ON, add_on, update_id=add_on.signal_key
            )
        except WorkflowUpdateFailedError as err:
            cause = err.cause
            refusal = cause if isinstance(cause, ApplicationError) else None
            kind = refusal.type if refusal is not None and refusal.type else "AddOnFailed"
            message = refusal.message if refusal is not None else str(cause or err)
            activity.logger.warning(
                "trade %s: add-on %s refused: %s: %s",
                request.trade_id,
                add_on.signal_key,
                kind,
                message,
            )
            raise ApplicationError(message, type=kind, non_retryable=True) from None
        except RPCError as err:
            if err.status in _GONE:
                raise ApplicationError(
                    f"trade {request.trade_id} has no running workflow",
                    type="TradeNotRunning",
                    non_retryable=True,
                ) from None
            raise
        activity.logger.info(
            "trade %s: add-on %s filled %s @ %s (order %s); position %s, stop %s covers %s",
            request.trade_id,
            result.client_order_id,
            result.filled_qty,
            result.avg_price,
            result.order_id,
            result.position_qty,
            result.stop_order_id,
            result.stop_qty,
        )
        return result

    @activity.defn
    async def guard_trade(self, request: GuardRequest) -> GuardOutcome:
        """Signal a running guard of the position, or start one (see TradeLink.guard)."""
        return await self._link.guard(request)

    @activity.defn
    async def guard_trades(self, batch: GuardRequests) -> GuardOutcomes:
        """guard_trade for each request at once; one failure fails the batch (retried whole:
        a repeated signal is a fresh look, a repeated start finds the guard running)."""
        outcomes = await asyncio.gather(*(self._link.guard(r) for r in batch.requests))
        return GuardOutcomes(outcomes=list(outcomes))
