"""The scheduled operations' names, their schedule ids and the workflow each one starts.

A schedule id is the prefix plus the operation name (`dt-market-loop`); the server appends
each run's time to the workflow id. Cadences and inputs are trading/schedule_plan.py's.
"""

from __future__ import annotations

from contracts import auto_manage, drain, exit_review, market_loop, reconcile
from contracts.base import WorkflowContract

SCHEDULE_PREFIX = "dt-"

MARKET_LOOP = "market-loop"
DRAIN = "drain"
RECONCILE = "reconcile"
AUTO_MANAGE = "auto-manage"
EXIT_REVIEW = "exit-review"
OPERATION_NAMES = (MARKET_LOOP, DRAIN, RECONCILE, AUTO_MANAGE, EXIT_REVIEW)

WORKFLOWS: dict[str, WorkflowContract] = {
    MARKET_LOOP: market_loop.WORKFLOW,
    DRAIN: drain.WORKFLOW,
    RECONCILE: reconcile.WORKFLOW,
    AUTO_MANAGE: auto_manage.WORKFLOW,
    EXIT_REVIEW: exit_review.WORKFLOW,
}


def schedule_id_for(name: str, prefix: str = SCHEDULE_PREFIX) -> str:
    """The schedule id of an operation: `dt-market-loop`."""
    return f"{prefix}{name}"
