"""Saved TradeWorkflow histories replay against today's code (determinism guard)."""

from __future__ import annotations

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from tests.integration.trade.conftest import HISTORIES
from workflows.trade import TradeWorkflow

SAVED = {path.stem: path.read_text() for path in sorted(HISTORIES.glob("trade_*.json"))}


@pytest.mark.parametrize("name", sorted(SAVED))
async def test_saved_trade_history_replays(name: str) -> None:
    replayer = Replayer(workflows=[TradeWorkflow], data_converter=pydantic_data_converter)
    history = WorkflowHistory.from_json(name, SAVED[name])
    result = await replayer.replay_workflow(history)
    assert result.replay_failure is None
