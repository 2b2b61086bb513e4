"""AutoManageWorkflow's interface: one sweep that puts a running guard behind every position.

Started by its schedule and by `starter.py auto-manage`; it reaches trades only through
TradeLink.guard (activities/trade_link.py).
"""

from __future__ import annotations

from contracts.base import WorkflowContract
from trading.reconcile_models import AutoManageInput, AutoManageResult

CLI_ID_PREFIX = "auto-manage-cli"

WORKFLOW = WorkflowContract(
    "AutoManageWorkflow", AutoManageInput, AutoManageResult, fixed_ids=(CLI_ID_PREFIX,)
)
