"""EntryActivities: the market loop's and the exit review's reads and Temporal-client calls.

The control gate query, the trade start and the exit signal need the Temporal client, which a
workflow cannot use; the ledger reads are the entry gate's (ledger/entries.py).
"""

from __future__ import annotations

from datetime import timedelta

import asyncpg
from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from ledger.entries import EntryReads
from trading.control import CONTROL_WORKFLOW_ID
from trading.entry import (
    CONTROL_NOT_STARTED,
    ControlGate,
    EnteredSymbols,
    EnteredSymbolsQuery,
    EntryCandidates,
    EntryCandidatesQuery,
    TradeStart,
    TradeStartOutcome,
    gate_code,
)
from trading.exits import ExitSignal, ExitSignalOutcome
from trading.ledger_records import ExitUrgency
from trading.models import Frozen
from trading.trade_models import ForceExit, TradeWorkflowInput, workflow_id_for

TRADE_WORKFLOW = "TradeWorkflow"
ENTRY_GATE_QUERY = "entry_gate"
FORCE_EXIT_SIGNAL = "force_exit"
QUERY_TIMEOUT = timedelta(seconds=5)
_GONE = (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION)


class _GateAnswer(Frozen):
    """The control workflow's entry_gate answer (its EntryGate model, by shape)."""

    allowed: bool
    reason: str


class EntryActivities:
    """Entry candidates, the control gate, trade starts and exit signals."""

    def __init__(self, client: Client, pool: asyncpg.Pool) -> None:
        self._client = client
        self._reads = EntryReads(pool)

    @activity.defn
    async def list_entry_candidates(self, query: EntryCandidatesQuery) -> EntryCandidates:
        """Today's SCORED signals that no trade took yet, best first."""
        return EntryCandidates(
            signals=await self._reads.scored_signals_since(query.since, query.limit)
        )

    @activity.defn
    async def symbols_entered_since(self, query: EnteredSymbolsQuery) -> EnteredSymbols:
        """Symbols that already have a trade since the start of the session day."""
        return EnteredSymbols(
            symbols=await self._reads.symbols_entered_since(query.symbols, query.since)
        )

    @activity.defn
    async def control_gate(self) -> ControlGate:
        """The control workflow's entry gate; with no control workflow running, entries pass."""
        handle = self._client.get_workflow_handle(CONTROL_WORKFLOW_ID)
        try:
            description = await handle.describe()
        except RPCError as err:
            if err.status is not RPCStatusCode.NOT_FOUND:
                raise
            return ControlGate(allowed=True, code=CONTROL_NOT_STARTED, reason="never started")
        if description.status is not WorkflowExecutionStatus.RUNNING:
            status = description.status.name.lower() if description.status else "unknown"
            return ControlGate(allowed=True, code=CONTROL_NOT_STARTED, reason=status)
        answer = await handle.query(
            ENTRY_GATE_QUERY, result_type=_GateAnswer, rpc_timeout=QUERY_TIMEOUT
        )
        return ControlGate(
            allowed=answer.allowed,
            code=gate_code(answer.allowed, answer.reason),
            reason=answer.reason,
        )

    @activity.defn
    async def start_trade(self, request: TradeStart) -> TradeStartOutcome:
        """Start `trade-<id>` once: a workflow id used before (running or not) is never reused."""
        spec = request.spec
        try:
            handle = await self._client.start_workflow(
                TRADE_WORKFLOW,
                TradeWorkflowInput(spec=spec),
                id=spec.workflow_id,
                task_queue=activity.info().task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            )
        except WorkflowAlreadyStartedError:
            return TradeStartOutcome(workflow_id=spec.workflow_id, started=False)
        activity.logger.info(
            "trade %s: started %s x%s stop %s (signal %s)",
            spec.trade_id,
            spec.symbol,
            spec.qty,
            spec.stop_price,
            spec.signal_id,
        )
        return TradeStartOutcome(
            workflow_id=spec.workflow_id, started=True, run_id=handle.result_run_id
        )

    @activity.defn
    async def signal_next_open_exit(self, request: ExitSignal) -> ExitSignalOutcome:
        """Signal force_exit(NEXT_OPEN, reason); a trade whose workflow ended is reported."""
        handle = self._client.get_workflow_handle(workflow_id_for(request.trade_id))
        try:
            await handle.signal(
                FORCE_EXIT_SIGNAL, ForceExit(urgency=ExitUrgency.NEXT_OPEN, reason=request.reason)
            )
        except RPCError as err:
            if err.status not in _GONE:
                raise
            return ExitSignalOutcome(
                trade_id=request.trade_id, delivered=False, note="no running trade workflow"
            )
        activity.logger.info(
            "trade %s: next-open exit signalled (%s)", request.trade_id, request.reason
        )
        return ExitSignalOutcome(trade_id=request.trade_id, delivered=True)
