"""`drain` and `signals add|funnel` as a user runs them, against the real dev server and ledger."""

from __future__ import annotations

import argparse
import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from broker.endpoint import BrokerEndpoint
from cli.drain import parse_feature, register
from settings import Settings
from worker import create_worker

pytestmark = pytest.mark.integration


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="starter.py")
    register(parser.add_subparsers(dest="command", required=True))
    return parser


async def test_add_drain_and_funnel_from_the_command_line(
    temporal_env: WorkflowEnvironment,
    client: Client,
    fresh_pool: asyncpg.Pool,
    fresh_database_url: str,
    task_queue: str,
    activity_executor: ThreadPoolExecutor,
    broker_endpoint: BrokerEndpoint,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = Settings(
        temporal_address=temporal_env.client.service_client.config.target_host,
        temporal_namespace=temporal_env.client.namespace,
        temporal_task_queue=task_queue,
        database_url=fresh_database_url,
        state_dir=Path("/nonexistent-state-dir"),
    )
    parser = _parser()

    async def run(*argv: str) -> tuple[int, str]:
        args = parser.parse_args(argv)
        # The CLI runs its own event loop, as it does from starter.py.
        code = await asyncio.to_thread(args.handler, args, settings)
        return code, capsys.readouterr().out

    code, out = await run(
        "signals",
        "add",
        "aapl",
        "--strategy",
        "breakout",
        "--feature",
        "momentum=0.03",
        "--feature",
        "volume_ratio=2",
        "--key",
        "cli-good",
        "--json",
    )
    assert code == 0
    added = json.loads(out)
    assert added["applied"] and added["signal"]["features"] == {
        "momentum": 0.03,
        "volume_ratio": 2,
    }
    code, out = await run("signals", "add", "msft", "--strategy", "breakout", "--key", "cli-bad")
    assert code == 0 and out.startswith("signal cli-bad added: MSFT breakout PENDING")

    async with create_worker(client, fresh_pool, task_queue, activity_executor, broker_endpoint):
        code, out = await run("drain", "--batch", "10", "--json")
    assert code == 0
    result = json.loads(out)
    assert (result["claimed"], result["scored"], result["error"]) == (2, 1, 1)
    assert result["remaining_pending"] == 0
    assert result["error_codes"] == {"missing_feature": 1}

    code, out = await run("signals", "funnel")
    assert code == 0
    assert [line.split() for line in out.splitlines()[:3]] == [
        ["signals", "created", "scored", "error", "pending"],
        ["last", "24", "h", "2", "1", "1", "0"],
        ["all", "time", "2", "1", "1", "0"],
    ]
    assert "entry: no entry pass yet" in out


def test_features_parse_as_json_scalars_or_text() -> None:
    assert parse_feature("momentum=0.02") == ("momentum", 0.02)
    assert parse_feature("gap=true") == ("gap", True)
    assert parse_feature("note=strong close") == ("note", "strong close")
    assert parse_feature("rsi=null") == ("rsi", None)
    assert parse_feature("tags=[1,2]") == ("tags", "[1,2]")
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_feature("momentum")
