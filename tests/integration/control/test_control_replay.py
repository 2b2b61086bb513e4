"""Saved TradingControlWorkflow histories replay against today's code (determinism guard).

The control_*.json histories were recorded with the pre-contracts code (296963d): the old
signal/update names (halt, pause_entries, resume, flatten) and flatten signalling each trade's
force_exit directly. A trading-control started before the refactor must still replay.
"""

from __future__ import annotations

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from tests.integration.trade.conftest import HISTORIES
from workflows.control import TradingControlWorkflow

SAVED = {path.stem: path.read_text() for path in sorted(HISTORIES.glob("control_*.json"))}


def test_control_histories_are_saved() -> None:
    assert SAVED, f"no control_*.json histories in {HISTORIES}"


@pytest.mark.parametrize("name", sorted(SAVED))
async def test_saved_control_history_replays(name: str) -> None:
    replayer = Replayer(workflows=[TradingControlWorkflow], data_converter=pydantic_data_converter)
    history = WorkflowHistory.from_json(name, SAVED[name])
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{name}: {result.replay_failure!r}"
