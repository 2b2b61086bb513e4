"""EodExitReviewWorkflow's interface: after the close, plan next-open exits.

Started by its schedule (16:15 New York) and by `starter.py exit-review`; it sends FORCE_EXIT
(NEXT_OPEN) to trades through TradeLink.
"""

from __future__ import annotations

from contracts.base import run_contract, run_progress
from trading.exits import ExitReviewInput, ExitReviewResult

CLI_ID_PREFIX = "exit-review-cli"

PROGRESS = run_progress(ExitReviewResult)
WORKFLOW = run_contract(
    "EodExitReviewWorkflow", ExitReviewInput, ExitReviewResult, PROGRESS, CLI_ID_PREFIX
)
