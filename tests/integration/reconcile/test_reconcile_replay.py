"""Saved ReconcileWorkflow histories replay against today's code (determinism guard).

reconcile_*.json was recorded before the plan moved into one activity (8331034): the run took
the broker snapshot and the open trades into its history and applied a ghost close, an
adoption and a quantity sync one at a time. A run in flight across the upgrade must replay.

reconcile_options_*.json are runs with option positions (behind the reconcile-options patch):
a condor held outside adopted by an OptionTradeWorkflow, and a ghost option row closed with a
leg mismatch reported (both recorded before orphaned option trades were restarted: they guard
the reconcile-option-restarts patch), and an orphaned option trade restarted (after it).
test_reconcile_options.py re-records them with
SAVE_RECONCILE_HISTORIES=1 (only for a deliberate workflow change; say so in the commit).
"""

from __future__ import annotations

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from tests.integration.trade.conftest import HISTORIES
from workflows.reconcile import ReconcileWorkflow

SAVED = {path.stem: path.read_text() for path in sorted(HISTORIES.glob("reconcile_*.json"))}


def test_reconcile_histories_are_saved() -> None:
    assert SAVED, f"no reconcile_*.json histories in {HISTORIES}"


@pytest.mark.parametrize("name", sorted(SAVED))
async def test_saved_reconcile_history_replays(name: str) -> None:
    replayer = Replayer(workflows=[ReconcileWorkflow], data_converter=pydantic_data_converter)
    history = WorkflowHistory.from_json(name, SAVED[name])
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{name}: {result.replay_failure!r}"
