"""RunWorkflow: what every run-to-completion workflow shares.

Its progress model, answered to the `run.progress` query (contracts/base.py), changed only
through validation (a misspelled field is an error, not silently dropped), and shown in the
Web UI after each change by the workflow's own `_publish`.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.base import RUN_PROGRESS
    from trading.models import evolve

ProgressT = TypeVar("ProgressT", bound=BaseModel)


def current_run_id() -> str:
    """`<workflow id>:<run id>`: names this run in its ledger record and audit rows."""
    info = workflow.info()
    return f"{info.workflow_id}:{info.run_id}"


class RunWorkflow(Generic[ProgressT]):
    """A workflow that runs once to a result, with progress the Web UI and queries can see."""

    _progress: ProgressT

    @workflow.query(name=RUN_PROGRESS)
    def progress(self) -> ProgressT:
        """The run's progress so far."""
        return self._progress

    def _update(self, **fields: object) -> None:
        """Change the progress (validated like a new model), then show it."""
        self._progress = evolve(self._progress, **fields)
        self._publish()

    def _publish(self) -> None:
        """Show the progress in the Web UI; each workflow draws its own page."""
