"""EodExitReviewWorkflow's interface: after the close, plan next-open exits.

Started by its schedule (16:15 New York) and by `starter.py exit-review`; it sends FORCE_EXIT
(NEXT_OPEN) to trades through TradeLink.
"""

from __future__ import annotations

from contracts.base import Query, WorkflowContract
from trading.exits import ExitReviewInput, ExitReviewResult

CLI_ID_PREFIX = "exit-review-cli"

PROGRESS = Query("exit_review.progress", ExitReviewResult, "the review's result so far")

WORKFLOW = WorkflowContract(
    name="EodExitReviewWorkflow",
    input=ExitReviewInput,
    result=ExitReviewResult,
    queries=(PROGRESS,),
    fixed_ids=(CLI_ID_PREFIX,),
)
