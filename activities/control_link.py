"""Trading control from outside it: make sure it runs, and read the view the entry gate uses.

The market loop (through EntryActivities), `status` and `control status` all read it here,
so a missing, ended or silent control workflow means the same thing to each of them; the CLI
and `dev up` start it here.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal
from typing import Any

from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowQueryFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from contracts import control
from trading.control import ControlInput, ControlState
from trading.entry_gate import ControlPresence, ControlView, control_view_of

QUERY_TIMEOUT = timedelta(seconds=5)


async def ensure_control(
    client: Client,
    task_queue: str,
    daily_loss_limit: Decimal | None,
    daily_loss_limit_pct: Decimal | None = None,
) -> WorkflowHandle[Any, Any]:
    """The running control workflow, started on first use (an existing one is kept); it
    halts on its own when today's loss reaches the dollar or the percentage limit."""
    return await client.start_workflow(
        control.WORKFLOW.name,
        ControlInput(daily_loss_limit=daily_loss_limit, daily_loss_limit_pct=daily_loss_limit_pct),
        id=control.WORKFLOW_ID,
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )


class ControlUnreachable(Exception):
    """Temporal or the control workflow did not answer: its mode is unknown, not absent."""


async def read_control(client: Client) -> ControlView:
    """The control view; raises ControlUnreachable when it cannot be known now (retry it)."""
    handle = client.get_workflow_handle(control.WORKFLOW_ID)
    try:
        description = await handle.describe()
    except RPCError as err:
        if err.status is RPCStatusCode.NOT_FOUND:
            return ControlView(presence=ControlPresence.NOT_STARTED, detail="never started")
        raise ControlUnreachable(f"describe failed: {err}") from None
    if description.status is not WorkflowExecutionStatus.RUNNING:
        status = description.status.name.lower() if description.status else "unknown"
        return ControlView(presence=ControlPresence.NOT_RUNNING, detail=status)
    try:
        state = await asyncio.wait_for(
            handle.query(control.CONTROL_STATE.name, result_type=ControlState),
            timeout=QUERY_TIMEOUT.total_seconds(),
        )
    except TimeoutError:
        raise ControlUnreachable("did not answer its query (no worker?)") from None
    except (RPCError, WorkflowQueryFailedError) as err:
        raise ControlUnreachable(f"query failed: {err}") from None
    return control_view_of(state)


async def read_control_now(client: Client) -> ControlView:
    """The control view, with an unreachable control as UNREACHABLE (for `status`)."""
    try:
        return await read_control(client)
    except ControlUnreachable as exc:
        return ControlView(presence=ControlPresence.UNREACHABLE, detail=str(exc))
