"""Reading trading control from outside it: the ControlView the entry gate decides on.

The market loop (through EntryActivities), `status` and `control status` all read it here,
so a missing, ended or silent control workflow means the same thing to each of them.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowQueryFailedError
from temporalio.service import RPCError, RPCStatusCode

from contracts import control
from trading.control import ControlState
from trading.entry_gate import ControlPresence, ControlView, control_view_of

QUERY_TIMEOUT = timedelta(seconds=5)


async def read_control_state(client: Client) -> tuple[ControlView, ControlState | None]:
    """The control view, and the full state when the workflow runs and answered."""
    handle = client.get_workflow_handle(control.WORKFLOW_ID)
    try:
        description = await handle.describe()
    except RPCError as err:
        if err.status is RPCStatusCode.NOT_FOUND:
            return ControlView(presence=ControlPresence.NOT_STARTED, detail="never started"), None
        return ControlView(presence=ControlPresence.UNREACHABLE, detail=str(err)), None
    if description.status is not WorkflowExecutionStatus.RUNNING:
        status = description.status.name.lower() if description.status else "unknown"
        return ControlView(presence=ControlPresence.NOT_RUNNING, detail=status), None
    try:
        state = await asyncio.wait_for(
            handle.query(control.CONTROL_STATE.name, result_type=ControlState),
            timeout=QUERY_TIMEOUT.total_seconds(),
        )
    except (TimeoutError, RPCError, WorkflowQueryFailedError) as err:
        detail = "did not answer (no worker?)" if isinstance(err, TimeoutError) else str(err)
        return ControlView(presence=ControlPresence.UNREACHABLE, detail=detail), None
    return control_view_of(state), state


async def read_control(client: Client) -> ControlView:
    """The control view the entry gate decides on."""
    view, _ = await read_control_state(client)
    return view
