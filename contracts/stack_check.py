"""StackCheckWorkflow's interface: worker, Temporal, ledger and broker working together.

Started by `starter.py dev up` and `dev check` under a fresh id with ID_PREFIX.
"""

from __future__ import annotations

from contracts.base import WorkflowContract
from trading.models import StackCheckInput, StackCheckResult

ID_PREFIX = "stack-check"

WORKFLOW = WorkflowContract(
    "StackCheckWorkflow", StackCheckInput, StackCheckResult, fixed_ids=(ID_PREFIX,)
)
