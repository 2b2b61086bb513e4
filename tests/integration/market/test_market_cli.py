"""`market-loop run` and `exit-review run` through the CLI handlers against the real stack."""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from cli.market import register
from paperbroker.testing import RunningBroker
from settings import Settings
from tests.integration.market.conftest import MarketHarness

pytestmark = pytest.mark.integration


@pytest.fixture
def cli_settings(
    temporal_env: WorkflowEnvironment,
    task_queue: str,
    database_url: str,
    paper_broker: RunningBroker,
) -> Settings:
    """Settings for this test's Temporal queue, ledger and paper broker."""
    return Settings(
        temporal_address=temporal_env.client.service_client.config.target_host,
        temporal_namespace=temporal_env.client.namespace,
        temporal_task_queue=task_queue,
        database_url=SecretStr(database_url),
        alpaca_api_key=SecretStr(paper_broker.key_id),
        alpaca_secret_key=SecretStr(paper_broker.secret_key),
        alpaca_trading_url=paper_broker.trading_url,
        alpaca_data_url=paper_broker.data_url,
        alpaca_stream_url=paper_broker.stream_url,
        state_dir=Path("/nonexistent-state-dir"),
    )


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
