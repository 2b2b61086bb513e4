"""`trade status/list/exit` serve option trades: a real CLI process on the real stack."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from ledger.option_trades import OptionTrades
from paperbroker.testing import RunningBroker
from settings import Settings
from tests.integration.cli_helpers import run_cli, stack_env
from tests.integration.options.conftest import SHORT_PUT, OptionHarness
from trading.options.trade_models import OptionTradeResult, OptionTradeStatus

pytestmark = pytest.mark.integration


@pytest.fixture
def env(settings: Settings, paper_broker: RunningBroker, database_url: str) -> dict[str, str]:
    """The CLI pointed at this test's Temporal, task queue, database and paper broker."""
    return stack_env(settings, paper_broker, database_url)


async def _cli(env: dict[str, str], *args: str) -> Any:
    return await asyncio.to_thread(run_cli, *args, env=env)


async def test_trade_commands_show_and_exit_an_option_trade(
    option_trades: OptionHarness, env: dict[str, str]
) -> None:
    spec = option_trades.spec(check_interval=timedelta(minutes=10))
    handle = await option_trades.start(spec)
    await option_trades.wait_for(handle, lambda v: v.status is OptionTradeStatus.OPEN)
    await option_trades.wait_for(handle, lambda v: v.state.decision is not None)

    status = await _cli(env, "trade", "status", spec.trade_id, "--json")
    assert status.returncode == 0, status.stderr
    shown = json.loads(status.stdout)
    assert shown["kind"] == "iron_condor" and shown["status"] == "OPEN"
    assert SHORT_PUT in [leg["symbol"] for leg in shown["legs"]]
    assert Decimal(shown["state"]["credit"]) > 0
    assert shown["state"]["decision"]["next_rule"]
    human = await _cli(env, "trade", "status", spec.trade_id)
    assert human.returncode == 0 and "iron condor" in human.stdout and "next rule" in human.stdout

    listed = await _cli(env, "trade", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    mine = [t for t in json.loads(listed.stdout) if t["trade_id"] == spec.trade_id]
    assert len(mine) == 1 and mine[0]["kind"] == "iron_condor" and mine[0]["status"] == "OPEN"
    assert Decimal(mine[0]["max_loss"]) > 0

    later = await _cli(env, "trade", "exit", spec.trade_id, "--next-open")
    assert later.returncode == 2 and "exits now only" in later.stderr
    exited = await _cli(env, "trade", "exit", spec.trade_id, "--reason", "cli test")
    assert exited.returncode == 0, exited.stderr
    result: OptionTradeResult = await handle.result()
    assert result.status is OptionTradeStatus.CLOSED and result.exit_reason == "forced"
    assert option_trades.option_positions() == {}

    again = await _cli(env, "trade", "exit", spec.trade_id)
    assert again.returncode == 1 and "no longer running" in again.stderr
    closed = await _cli(env, "trade", "list", "--json")
    row = next(t for t in json.loads(closed.stdout) if t["trade_id"] == spec.trade_id)
    assert row["status"] == "CLOSED" and row["exit_reason"] == "forced"


async def test_condor_open_reserves_the_row_and_its_workflow_carries_it_on(
    option_trades: OptionHarness, env: dict[str, str], pool: asyncpg.Pool
) -> None:
    """`condor open` with a worker running: the row the command reserved under the option-entry
    lock is the row the workflow writes on - one row, each status audited once - from its
    first opening order to its end (a FORCE_EXIT while the entry still walks)."""
    done = await _cli(env, "condor", "open", "AAPL", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    opened = json.loads(done.stdout)
    trade_id = opened["trade_id"]
    handle = option_trades.client.get_workflow_handle(
        opened["workflow_id"], result_type=OptionTradeResult
    )
    option_trades.handles.append(handle)
    await option_trades.wait_for(handle, lambda v: v.state.entry_order_id is not None)
    row = await OptionTrades(pool).get(trade_id)
    assert row is not None and row.status is OptionTradeStatus.PENDING_ENTRY
    assert row.workflow_id == opened["workflow_id"] and row.max_loss == Decimal(
        str(opened["risk"]["risk"])
    )

    exited = await _cli(env, "trade", "exit", trade_id, "--reason", "cli test")
    assert exited.returncode == 0, exited.stderr
    result: OptionTradeResult = await handle.result()
    assert result.status.is_terminal
    final = await OptionTrades(pool).get(trade_id)
    assert final is not None and final.status is result.status
    actions = [
        r["action"]
        for r in await pool.fetch(
            "SELECT action FROM audit_log WHERE trade_id = $1 ORDER BY id", trade_id
        )
    ]
    assert actions[0] == "option_trade_pending_entry"
    assert len(actions) == len(set(actions)), actions  # each status once
    assert actions[-1] == f"option_trade_{result.status.value.lower()}"
