"""`market-loop run` and `exit-review run` through the CLI handlers against the real stack."""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import UTC, datetime

import pytest

from cli.market import register
from settings import Settings
from tests.integration.market.conftest import MarketHarness

pytestmark = pytest.mark.integration


async def test_market_loop_and_exit_review_from_the_command_line(
    market: MarketHarness, cli_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser(prog="starter.py")
    register(parser.add_subparsers(dest="command", required=True))

    async def run(*argv: str) -> tuple[int, str, str]:
        args = parser.parse_args(argv)
        code = await asyncio.to_thread(args.handler, args, cli_settings)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    for symbol in ("MSFT", "NVDA"):
        market.admin.open_position(symbol, 5)
    await market.scored_signal("AAPL")
    code, out, _ = await run(
        "market-loop", "run", "--max-open-positions", "2", "--no-reconcile", "--json"
    )
    shown = json.loads(out)
    assert code == 0 and shown["entered"] == 0 and shown["reason"] == "max_open_positions"
    assert shown["detail"] == "brokerPositionsCount=2 maxOpenPositions=2"

    code, out, _ = await run("market-loop", "run", "--max-open-positions", "3", "--no-reconcile")
    assert code == 0 and "ENTER" in out and "entered 1, skipped 0" in out
    market.started += [line.split()[-1] for line in out.splitlines() if " ENTER " in line]

    code, _, err = await run("market-loop", "run", "--stop-distance", "2")
    assert code == 2 and err.startswith("error: invalid market-loop run")

    market.admin.set_clock(datetime(2024, 7, 4, 21, 30, tzinfo=UTC))
    code, out, _ = await run("exit-review", "run")
    assert code == 0 and "ended early: no_session" in out
    code, out, _ = await run("market-loop", "run")
    assert code == 0 and "ended early: market_closed" in out
