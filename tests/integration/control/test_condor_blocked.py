"""`condor open` honours trading control as the market loop does: while trading is HALTED
nothing opens (exit 1, the gate's reason); --dry-run shows it; after `resume` it opens."""

from __future__ import annotations

import argparse
import asyncio
import json

import pytest
from temporalio.client import WorkflowExecutionStatus

from cli.condor import register as register_condor
from cli.control import register as register_control
from settings import Settings
from tests.integration.control.conftest import ControlHarness

pytestmark = pytest.mark.integration


async def test_a_halt_blocks_condor_open_until_resume(
    control: ControlHarness, cli_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser(prog="starter.py")
    commands = parser.add_subparsers(dest="command", required=True)
    register_control(commands)
    register_condor(commands)

    async def run(*argv: str) -> tuple[int, str, str]:
        args = parser.parse_args(argv)
        code = await asyncio.to_thread(args.handler, args, cli_settings)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    # The harness holds prices still (no volatility): give AAPL's options an implied one.
    control.trades.admin.set_option_iv("AAPL", iv=0.3)
    code, _, _ = await run("halt", "--reason", "earnings")
    assert code == 0

    code, out, err = await run("condor", "open", "AAPL", "--dry-run")
    assert code == 0, out + err
    assert "trading control: would be refused: entries blocked: HALTED" in out
    code, out, _ = await run("condor", "open", "AAPL", "--json")
    shown = json.loads(out)
    assert code == 1 and shown["placed"] is False and "earnings" in shown["blocked"]
    code, _, err = await run("condor", "open", "AAPL")
    assert code == 1 and err.startswith("error: condor not placed: entries blocked: HALTED")

    code, _, _ = await run("resume", "--reason", "done")
    assert code == 0
    code, out, _ = await run("condor", "open", "AAPL", "--json")
    placed = json.loads(out)
    assert code == 0 and placed["placed"] is True and placed["blocked"] is None
    handle = control.client.get_workflow_handle(placed["workflow_id"])
    if (await handle.describe()).status is WorkflowExecutionStatus.RUNNING:
        await handle.terminate("test finished")
