"""TradingControlWorkflow's interface: the singleton `trading-control` (ACTIVE/REDUCING/HALTED).

Who talks to it: the CLI (`halt`, `resume`, `pause-entries`, `flatten`, `control status`),
`dev up` (starts it), trade workflows (REPORT_RESCUE_ALERT when a stop cannot be rescued), and
the market loop and `status`, which read CONTROL_STATE and let trading/entry_gate.py decide.
"""

from __future__ import annotations

from contracts.base import Query, Signal, Update, WorkflowContract
from trading.control import (
    ControlInput,
    ControlRequest,
    ControlState,
    FlattenReport,
    FlattenRequest,
    RescueAlert,
)

WORKFLOW_ID = "trading-control"

PAUSE_ENTRIES = Signal(
    "trading_control.pause_entries", ControlRequest, "no new entries; open trades go on (REDUCING)"
)
RESUME = Signal("trading_control.resume", ControlRequest, "back to ACTIVE; clears rescue alerts")
HALT = Signal(
    "trading_control.halt", ControlRequest, "no new entries until a resume; stops stay in place"
)
# Sent by trade workflows; the name predates the `trading_control.` convention and is kept
# because running trades and saved histories carry it.
REPORT_RESCUE_ALERT = Signal(
    "report_rescue_alert", RescueAlert, "a trade's stop rescue keeps failing; repeats halt"
)
FLATTEN = Update(
    "trading_control.flatten",
    FlattenRequest,
    FlattenReport,
    "halt, cancel entries, exit every position, wait until the broker shows none",
)
CONTROL_STATE = Query(
    "trading_control.state", ControlState, "mode, reason, history, alerts, loss check, flatten"
)

WORKFLOW = WorkflowContract(
    name="TradingControlWorkflow",
    input=ControlInput,
    result=ControlState,
    state=ControlState,
    signals=(PAUSE_ENTRIES, RESUME, HALT, REPORT_RESCUE_ALERT),
    queries=(CONTROL_STATE,),
    updates=(FLATTEN,),
    fixed_ids=(WORKFLOW_ID,),
)
