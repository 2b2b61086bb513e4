"""ScoreDrainWorkflow's interface: score PENDING signals until none are left.

Manual drains share the fixed id `score-drain` (a second trigger joins the running one); the
schedule and the market loop (`child_id`) start their own.
"""

from __future__ import annotations

from contracts.base import Query, WorkflowContract
from trading.scoring import DrainInput, DrainProgress, DrainResult

WORKFLOW_ID = "score-drain"

PROGRESS = Query("drain.progress", DrainProgress, "counts so far and the current phase")

WORKFLOW = WorkflowContract(
    name="ScoreDrainWorkflow",
    input=DrainInput,
    result=DrainResult,
    queries=(PROGRESS,),
    fixed_ids=(WORKFLOW_ID,),
)


def child_id(parent_workflow_id: str) -> str:
    """The id of the drain a market-loop run starts as its child."""
    return f"{parent_workflow_id}-drain"
