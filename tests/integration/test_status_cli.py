"""`starter.py status --json`: the documented schema; the skip reason when entries are gated."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime
from decimal import Decimal

import asyncpg
import pytest

from ledger.option_trades import OptionTrades
from ledger.runs import EntryRuns
from paperbroker.admin_client import AdminClient
from paperbroker.testing import RunningBroker
from settings import Settings
from tests.integration.cli_helpers import run_cli, stack_env
from trading.broker_models import OrderSide
from trading.ledger_records import EntryRunCreate
from trading.ops_status import OpsStatus
from trading.options.records import OptionTradeWrite
from trading.options.trade_models import OptionLeg, OptionTradeStatus

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


async def test_status_shows_open_option_trades_and_their_max_loss(
    env: dict[str, str], pool: asyncpg.Pool
) -> None:
    legs = [
        OptionLeg(symbol="SPY240419P00480000", side=OrderSide.BUY),
        OptionLeg(symbol="SPY240419P00485000", side=OrderSide.SELL),
        OptionLeg(symbol="SPY240419C00540000", side=OrderSide.SELL),
        OptionLeg(symbol="SPY240419C00545000", side=OrderSide.BUY),
    ]
    for trade_id, status, max_loss in (
        ("ic-status-open", OptionTradeStatus.OPEN, Decimal(350)),
        ("ic-status-entering", OptionTradeStatus.PENDING_ENTRY, Decimal(400)),
        ("ic-status-done", OptionTradeStatus.CLOSED, Decimal(900)),
    ):
        await OptionTrades(pool).record(
            OptionTradeWrite(
                trade_id=trade_id,
                underlying="SPY",
                status=status,
                expiry=date(2024, 4, 19),
                qty=1,
                legs=legs,
                width=Decimal(5),
                credit=Decimal("1.50"),
                max_loss=max_loss,
                workflow_id=f"option-trade-{trade_id}",
                at=datetime.now(UTC),
            )
        )
    done = await asyncio.to_thread(run_cli, "status", "--json", env=env)
    status = OpsStatus.model_validate(json.loads(done.stdout))
    assert status.options is not None
    assert {t.id for t in status.options.open_trades} == {"ic-status-open", "ic-status-entering"}
    assert status.options.max_loss_open == Decimal(750)
    human = await asyncio.to_thread(run_cli, "status", env=env)
    assert "options: 2 open, max loss together 750 USD" in human.stdout
    assert "ic-status-open: SPY iron_condor x1 exp 2024-04-19 OPEN (internal)" in human.stdout


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
