"""`starter.py trade ...` as a user runs it: real CLI process, dev server, paper broker, ledger."""

from __future__ import annotations

import asyncio
import json
import re
from decimal import Decimal
from typing import Any

import pytest
from temporalio.client import Client

from paperbroker.testing import RunningBroker
from settings import Settings
from tests.integration.cli_helpers import run_cli, stack_env
from tests.integration.trade.conftest import SYMBOL, TradeHarness
from trading.ticks import protective_stop_price
from workflows.trade import TradeWorkflow

pytestmark = pytest.mark.integration


@pytest.fixture
def env(settings: Settings, paper_broker: RunningBroker, database_url: str) -> dict[str, str]:
    """The CLI pointed at this test's Temporal, task queue, database and paper broker."""
    return stack_env(settings, paper_broker, database_url)


async def _cli(env: dict[str, str], *args: str) -> Any:
    return await asyncio.to_thread(run_cli, *args, env=env)


def _error(done: Any) -> str:
    assert done.returncode == 2, done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return str(lines[0])


async def test_open_status_tighten_and_exit_through_the_cli(
    trades: TradeHarness, env: dict[str, str], client: Client
) -> None:
    stop = protective_stop_price(trades.market() * Decimal("0.95"))
    opened = await _cli(env, "trade", "open", SYMBOL, "--qty", "4", "--stop", str(stop))
    assert opened.returncode == 0, opened.stderr
    match = re.search(r"workflow: (trade-\S+)", opened.stdout)
    assert match and "/namespaces/default/workflows/trade-" in opened.stdout
    workflow_id = match.group(1)
    trade_id = workflow_id.removeprefix("trade-")
    handle = client.get_workflow_handle_for(TradeWorkflow.run, workflow_id)
    trades.handles.append(handle)
    view = await trades.wait_for(
        handle, lambda v: v.status == "OPEN" and v.state.stop_order_id is not None
    )

    status = await _cli(env, "trade", "status", trade_id, "--json")
    assert status.returncode == 0, status.stderr
    shown = json.loads(status.stdout)
    assert shown["status"] == "OPEN" and shown["symbol"] == SYMBOL
    assert Decimal(shown["state"]["position_qty"]) == 4

    looser = await _cli(env, "trade", "tighten", trade_id, str(stop - Decimal(1)))
    assert "tighten refused" in _error(looser)
    tighter = stop + Decimal("0.50")
    moved = await _cli(env, "trade", "tighten", trade_id, str(tighter))
    assert moved.returncode == 0, moved.stderr
    assert (
        trades.gateway.get_order(
            (await handle.query(TradeWorkflow.status)).state.stop_order_id or ""
        ).stop_price
        == tighter
    )

    exited = await _cli(env, "trade", "exit", trade_id, "--now", "--reason", "test exit")
    assert exited.returncode == 0, exited.stderr
    result = await handle.result()
    assert result.status == "CLOSED" and result.close_reason == "FORCE_EXIT"
    assert view.trade_id == trade_id

    listed = await _cli(env, "trade", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert trade_id in {t["trade_id"] for t in json.loads(listed.stdout)}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("trade", "open", "NOSUCH", "--qty", "1", "--stop", "1.00"), "unknown symbol 'NOSUCH'"),
        (("trade", "open", SYMBOL, "--qty", "1", "--stop", "100000"), "must be below the entry"),
        (("trade", "open", SYMBOL, "--qty", "1", "--stop", "100.123"), "sub-penny"),
        (("trade", "open", SYMBOL, "--qty", "1.5", "--stop", "1.00"), "whole shares"),
        (("trade", "status", "no-such-trade"), "unknown trade 'no-such-trade'"),
        (("trade", "exit", "Bad.Id"), "trade id"),
    ],
)
async def test_bad_input_gets_a_specific_error_and_exit_2(
    trades: TradeHarness, env: dict[str, str], args: tuple[str, ...], expected: str
) -> None:
    assert expected in _error(await _cli(env, *args))
