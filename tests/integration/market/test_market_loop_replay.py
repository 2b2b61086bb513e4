"""Saved MarketLoopWorkflow histories replay against today's code (determinism guard).

market_loop_orb_entry_and_heat_cap.json is the ORB run of test_ranked_entries.py (scan with
the ORB strategy, drain, rank, one entry, one heat-cap refusal), recorded when the loop
learned to rank and risk-gate entries. Re-record it with SAVE_MARKET_LOOP_HISTORY=1 only for
a deliberate change, and say so in the commit.
"""

from __future__ import annotations

import re

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from tests.integration.trade.conftest import HISTORIES
from workflows.market_loop import MarketLoopWorkflow

SAVED = {path.stem: path.read_text() for path in sorted(HISTORIES.glob("market_loop_*.json"))}
# The loop names its children after itself; the recorded id is read back from them.
CHILD_ID = re.compile(r'"workflowId": *"([^"]+)-drain"')


def test_market_loop_histories_are_saved() -> None:
    assert SAVED, f"no market_loop_*.json histories in {HISTORIES}"


@pytest.mark.parametrize("name", sorted(SAVED))
async def test_saved_market_loop_history_replays(name: str) -> None:
    replayer = Replayer(workflows=[MarketLoopWorkflow], data_converter=pydantic_data_converter)
    recorded = CHILD_ID.search(SAVED[name])
    assert recorded is not None, f"{name}: no score-drain child to read the workflow id from"
    history = WorkflowHistory.from_json(recorded.group(1), SAVED[name])
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{name}: {result.replay_failure!r}"
