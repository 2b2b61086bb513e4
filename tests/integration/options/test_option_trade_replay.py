"""Saved OptionTradeWorkflow histories replay against today's code (determinism guard).

option_trade_take_profit_after_an_iv_fall.json and option_trade_force_exit.json are runs of
test_option_trade.py (entry by one mleg order with its ledger row, rule checks on the legs'
marks, one closing mleg order), recorded once the workflow wrote its ledger rows. Re-record
them with SAVE_OPTION_HISTORIES=1 only for a deliberate change, and say so in the commit.
"""

from __future__ import annotations

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from tests.integration.trade.conftest import HISTORIES
from workflows.option_trade import OptionTradeWorkflow

SAVED = {path.stem: path.read_text() for path in sorted(HISTORIES.glob("option_trade_*.json"))}


def test_option_trade_histories_are_saved() -> None:
    assert {"option_trade_take_profit_after_an_iv_fall", "option_trade_force_exit"} <= set(SAVED)


@pytest.mark.parametrize("name", sorted(SAVED))
async def test_saved_option_trade_history_replays(name: str) -> None:
    replayer = Replayer(workflows=[OptionTradeWorkflow], data_converter=pydantic_data_converter)
    history = WorkflowHistory.from_json(f"option-trade-{name}", SAVED[name])
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{name}: {result.replay_failure!r}"
