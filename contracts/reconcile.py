"""ReconcileWorkflow's interface: converge the ledger on one broker-truth snapshot.

Started by its schedule, by the market loop as a child (`child_id`) and by `starter.py
reconcile`; it reaches trades only through TradeLink.guard (activities/trade_link.py).
"""

from __future__ import annotations

from contracts.base import run_contract, run_progress
from trading.reconcile_models import ReconcileInput, ReconcileResult

CLI_ID_PREFIX = "reconcile-cli"

PROGRESS = run_progress(ReconcileResult)
WORKFLOW = run_contract(
    "ReconcileWorkflow", ReconcileInput, ReconcileResult, PROGRESS, CLI_ID_PREFIX
)


def child_id(parent_workflow_id: str) -> str:
    """The id of the reconcile run a market-loop run starts as its child."""
    return f"{parent_workflow_id}-reconcile"
