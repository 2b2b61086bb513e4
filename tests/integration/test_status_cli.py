"""`starter.py status --json`: the documented schema; the skip reason when entries are gated."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import asyncpg
import pytest

from ledger.runs import EntryRuns
from paperbroker.admin_client import AdminClient
from paperbroker.testing import RunningBroker
from settings import Settings
from tests.integration.cli_helpers import run_cli, stack_env
from trading.ledger_records import EntryRunCreate
from trading.ops_status import OpsStatus

pytestmark = pytest.mark.integration


@pytest.fixture
def env(settings: Settings, paper_broker: RunningBroker, database_url: str) -> dict[str, str]:
    """The CLI pointed at this test's stack, with room for two open positions."""
    return stack_env(settings, paper_broker, database_url, MAX_OPEN_POSITIONS="2")


async def test_status_json_follows_the_schema_and_shows_why_entries_are_gated(
    env: dict[str, str], broker_admin: AdminClient, pool: asyncpg.Pool
) -> None:
    broker_admin.open_position("AAPL", 3)
    broker_admin.open_position("MSFT", 2)
    await EntryRuns(pool).record(
        EntryRunCreate(
            run_id="market-loop-test-1",
            entered=0,
            skipped=4,
            reason="max_open_positions",
            detail="brokerPositionsCount=2 maxOpenPositions=2",
            at=datetime.now(UTC),
        )
    )
    done = await asyncio.to_thread(run_cli, "status", "--json", env=env)
    assert done.returncode == 0, done.stdout + done.stderr  # broker and scoring healthy
    status = OpsStatus.model_validate(json.loads(done.stdout))  # the documented schema
    assert status.broker.connected and {p.symbol for p in status.broker.positions} == {
        "AAPL",
        "MSFT",
    }
    assert status.entries.ready is False
    assert status.entries.skip_reason == "max_open_positions"
    assert status.entries.skip_detail == "brokerPositionsCount=2 maxOpenPositions=2"
    assert status.entries.last_run is not None
    assert status.entries.last_run.reason == "max_open_positions"
    assert status.health.broker_connected and not status.health.entries_ready
    assert status.scoring is not None and status.reconcile is not None

    human = await asyncio.to_thread(run_cli, "status", env=env)
    assert "entries: gated: max_open_positions brokerPositionsCount=2" in human.stdout


async def test_status_reports_an_unreachable_broker_without_failing_the_rest(
    env: dict[str, str], broker_admin: AdminClient
) -> None:
    broker_admin.add_fault(method="GET", path="/v2/account", status=503)
    done = await asyncio.to_thread(run_cli, "status", "--json", env=env)
    assert done.returncode == 1
    status = OpsStatus.model_validate(json.loads(done.stdout))
    assert not status.broker.connected and "BrokerUnavailable" in (status.broker.error or "")
    assert status.entries.skip_reason in (
        "broker_truth_unavailable",
        "control_halted",
        "control_reducing",
    )
    assert status.scoring is not None  # the ledger still answered
