"""`halt`, `resume`, `pause-entries`, `flatten` and `control status` against the real stack."""

from __future__ import annotations

import argparse
import asyncio
import json
import re

import pytest

import cli.output
from cli.control import register
from settings import Settings
from tests.integration.control.conftest import ControlHarness

pytestmark = pytest.mark.integration


async def test_halt_resume_flatten_and_status_from_the_command_line(
    control: ControlHarness,
    cli_settings: Settings,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parser = argparse.ArgumentParser(prog="starter.py")
    register(parser.add_subparsers(dest="command", required=True))

    async def run(*argv: str) -> tuple[int, str, str]:
        args = parser.parse_args(argv)
        code = await asyncio.to_thread(args.handler, args, cli_settings)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    code, out, _ = await run("control", "status", "--json")  # starts the workflow
    shown = json.loads(out)
    assert code == 0 and shown["mode"] == "ACTIVE" and shown["entries_allowed"] is True

    code, out, _ = await run("halt", "--reason", "earnings")
    assert code == 0 and out.startswith("trading HALTED since ") and "by cli: earnings" in out
    code, _, err = await run("pause-entries")
    assert code == 1 and err.startswith("error: not paused:") and len(err.splitlines()) == 1
    code, out, _ = await run("control", "status")
    assert code == 0 and "HALTED" in out and "earnings" in out and "pause_entries" in out
    code, out, _ = await run("resume", "--reason", "done")
    assert code == 0 and "trading ACTIVE" in out

    view = await control.open_trade("AAPL")
    monkeypatch.setattr(cli.output, "ask", lambda prompt: print(prompt) or "no")
    code, out, err = await run("flatten")
    assert code == 2 and err == "error: flatten not confirmed; nothing changed\n"
    # The count is what the gateway's open-orders snapshot shows (see ControlHarness).
    assert re.search(r"Flatten will exit 1 positions \(AAPL\) and cancel \d+ orders\.", out)
    assert control.trades.gateway.get_positions() != []

    code, out, _ = await run("flatten", "--yes", "--reason", "cli test")
    assert code == 0 and out.startswith("flatten done"), out
    assert control.trades.gateway.get_positions() == []
    assert control.trades.gateway.get_open_orders() == [] and control.every_open_order() == []
    assert (await control.trades.trade_row(view.trade_id)).status == "CLOSED"
    code, out, _ = await run("control", "status", "--json")
    shown = json.loads(out)
    assert shown["mode"] == "HALTED" and shown["reason"] == "cli test"
    assert shown["flatten"]["done"] is True and shown["entries_allowed"] is False
