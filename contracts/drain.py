"""ScoreDrainWorkflow's interface: score PENDING signals until none are left.

Manual drains share the fixed id `score-drain` (a second trigger joins the running one); the
schedule and the market loop (`child_id`) start their own.
"""

from __future__ import annotations

from contracts.base import run_contract, run_progress
from trading.scoring import DrainInput, DrainProgress, DrainResult

WORKFLOW_ID = "score-drain"

PROGRESS = run_progress(DrainProgress)
WORKFLOW = run_contract("ScoreDrainWorkflow", DrainInput, DrainResult, PROGRESS, WORKFLOW_ID)


def child_id(parent_workflow_id: str) -> str:
    """The id of the drain a market-loop run starts as its child."""
    return f"{parent_workflow_id}-drain"
