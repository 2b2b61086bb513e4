"""`starter.py prelive` on the real stack: PASS when healthy, FAIL with the right reason for an
uncovered position, a stale poll, HALTED control and a PENDING signal past its maximum age;
a secret in a workflow history is named (never shown); the live gate on its stored runs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from aiohttp import web
from pydantic import SecretStr
from temporalio.client import Client
from temporalio.service import RPCError

from activities.control_link import ensure_control
from broker.alpaca import AlpacaGateway
from broker.endpoint import broker_endpoint
from cli.prelive import run_prelive
from cli.schedule_ops import apply_plan, plan_for
from clients import make_client
from contracts import control
from ledger.prelive import PreliveRuns
from ledger.signals import Signals
from ops.live_gate import require_prelive, settings_digest
from paperbroker.admin_client import AdminClient
from paperbroker.testing import RunningBroker
from settings import LIVE_CONFIRMATION, ROOT, ConfigError, Settings
from tests.conftest import free_port
from tests.integration.cli_helpers import run_cli, stack_env
from tests.integration.helpers import terminate_control
from trading.broker_models import OrderIntent, OrderSide, OrderType, TimeInForce
from trading.broker_sync_models import BrokerSyncInput, BrokerSyncRun
from trading.control import ControlMode, ControlRequest, ControlState
from trading.ledger_records import SignalCreate
from trading.prelive import (
    SKIP_PRELIVE_CONFIRMATION,
    CheckOutcome,
    PreliveCheck,
    PreliveReport,
    prelive_report,
)
from trading.reconcile_models import ReconcileInput
from trading.ticks import protective_stop_price
from worker import create_worker
from workflows.broker_sync import BrokerSyncWorkflow
from workflows.reconcile import ReconcileWorkflow

pytestmark = [pytest.mark.integration, pytest.mark.slow]
CALLS_PER_MIN = 5000


@dataclass
class Stack:
    """A healthy stack: a worker serving metrics, control ACTIVE, market schedules, one poll
    and one clean reconcile; the settings prelive runs with."""

    settings: Settings
    client: Client
    pool: asyncpg.Pool
    admin: AdminClient

    async def prelive(self) -> PreliveReport:
        report, run_id = await run_prelive(self.settings, history_limit=40)
        assert run_id is not None  # every run is recorded
        return report


def _failed(report: PreliveReport) -> dict[PreliveCheck, str]:
    return {c.name: c.reason for c in report.checks if not c.passed}


@pytest_asyncio.fixture
async def stack(
    cli_settings: Settings,
    pool: asyncpg.Pool,
    broker_admin: AdminClient,
    activity_executor: ThreadPoolExecutor,
) -> AsyncIterator[Stack]:
    broker_admin.set_clock_mode("real")  # the clock check compares the broker's with ours
    settings = cli_settings.model_copy(
        update={
            "metrics_address": f"127.0.0.1:{free_port()}",
            "health_address": "",
            # broker verify spends ~50 calls a run; this paper broker has no limit, and the
            # tests run prelive more often a minute than the 190 calls allow
            "broker_calls_per_min": CALLS_PER_MIN,
        }
    )
    queue = settings.temporal_task_queue
    client = await make_client(settings, serve_metrics=True)  # the real Prometheus runtime
    endpoint = broker_endpoint(settings)
    budget = settings.broker_budget
    worker = create_worker(client, pool, queue, activity_executor, endpoint, budget=budget)
    plan = plan_for(settings, "market")
    async with worker:
        await terminate_control(client, "prelive test: a control of this test's own")
        await ensure_control(client, queue, None)
        await apply_plan(client, plan, queue)
        try:
            await client.execute_workflow(
                BrokerSyncWorkflow.run,
                BrokerSyncRun(settings=BrokerSyncInput(listen=False, max_polls=1)),
                id=f"broker-sync-{uuid.uuid4().hex[:8]}",
                task_queue=queue,
            )
            await client.execute_workflow(
                ReconcileWorkflow.run,
                ReconcileInput(run_source="prelive-test"),
                id=f"reconcile-{uuid.uuid4().hex[:8]}",
                task_queue=queue,
            )
            yield Stack(settings, client, pool, broker_admin)
        finally:
            await terminate_control(client, "prelive test done")
            for operation in plan.operations:
                with contextlib.suppress(RPCError):
                    await client.get_schedule_handle(operation.schedule_id).delete()
            await pool.execute("DELETE FROM signals WHERE strategy = 'prelive-test'")


async def test_prelive_passes_on_a_healthy_stack(stack: Stack) -> None:
    report = await stack.prelive()
    assert _failed(report) == {}
    assert report.passed and report.trading_mode == "paper"
    reasons = {c.name: c.reason for c in report.checks}
    assert reasons[PreliveCheck.LIVE_SETTINGS].startswith("paper mode")
    assert "samples" in reasons[PreliveCheck.METRICS_ENDPOINT]
    assert "ALPACA_SECRET_KEY" in reasons[PreliveCheck.NO_SECRETS]
    last = await PreliveRuns(stack.pool).last_for(report.config_digest)
    assert last is not None and last.passed and last.checks == report.checks


async def test_an_uncovered_position_fails_prelive(stack: Stack) -> None:
    stack.admin.open_position("AAPL", 5)  # no stop anywhere
    failed = _failed(await stack.prelive())
    assert failed[PreliveCheck.POSITIONS_COVERED] == "no active stop covers: AAPL 5 shares"
    gateway = AlpacaGateway(broker_endpoint(stack.settings))
    price = gateway.latest_quotes(["AAPL"])[0].bid
    gateway.submit_order(
        OrderIntent(
            client_order_id=f"prelive-stop-{uuid.uuid4().hex[:8]}",
            symbol="AAPL",
            qty=Decimal(5),
            side=OrderSide.SELL,
            type=OrderType.STOP,
            time_in_force=TimeInForce.GTC,
            stop_price=protective_stop_price(price * Decimal("0.9")),
        )
    )
    report = await stack.prelive()
    covered = next(c for c in report.checks if c.name is PreliveCheck.POSITIONS_COVERED)
    assert covered.passed and covered.reason == "1 position(s), each covered by an active stop"


async def test_a_stale_truth_poll_fails_prelive(stack: Stack) -> None:
    await stack.pool.execute(
        "UPDATE broker_view_poll SET observed_at = now() - interval '10 minutes'"
    )
    failed = _failed(await stack.prelive())
    assert set(failed) == {PreliveCheck.TRUTH_POLL}, failed
    assert failed[PreliveCheck.TRUTH_POLL].startswith("stale: last BrokerSync poll 6")


async def test_halted_control_fails_prelive_and_the_command_exits_1(
    stack: Stack, paper_broker: RunningBroker, database_url: str
) -> None:
    handle = stack.client.get_workflow_handle(control.WORKFLOW_ID)
    await handle.signal(control.HALT.name, ControlRequest(reason="prelive test halt"))
    for _ in range(50):
        state = await handle.query(control.CONTROL_STATE.name, result_type=ControlState)
        if state.mode is ControlMode.HALTED:
            break
        await asyncio.sleep(0.1)
    env = stack_env(
        stack.settings,
        paper_broker,
        database_url,
        METRICS_ADDRESS=stack.settings.metrics_address,
        HEALTH_ADDRESS="",
        BROKER_CALLS_PER_MIN=str(CALLS_PER_MIN),
    )
    done = await asyncio.to_thread(run_cli, "prelive", "--histories", "20", env=env, timeout=180)
    assert done.returncode == 1, done.stdout + done.stderr
    row = next(line for line in done.stdout.splitlines() if line.startswith("trading_control"))
    assert row.split()[1] == "FAIL" and "trading control is HALTED: prelive test halt" in row
    assert "prelive: FAIL (1 of 11 failed)" in done.stdout
    document = json.loads(
        (
            await asyncio.to_thread(
                run_cli, "prelive", "--json", "--histories", "0", env=env, timeout=180
            )
        ).stdout
    )
    assert document["passed"] is False and document["recorded_run_id"] is not None
    assert [c["name"] for c in document["checks"] if not c["passed"]] == ["trading_control"]


async def test_a_pending_signal_past_its_max_age_fails_prelive(stack: Stack) -> None:
    await Signals(stack.pool).insert(
        SignalCreate(
            signal_key=f"prelive-{uuid.uuid4().hex[:8]}",
            symbol="MSFT",
            strategy="prelive-test",
            created_at=datetime.now(UTC) - timedelta(hours=7),
        )
    )
    posts: list[dict[str, object]] = []

    async def hook(request: web.Request) -> web.Response:
        posts.append(await request.json())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook/{token}", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    url = f"http://127.0.0.1:{port}/hook/{uuid.uuid4().hex}"
    try:
        told = stack.settings.model_copy(update={"alert_webhook_url": SecretStr(url)})
        report, run_id = await run_prelive(told, history_limit=10)
    finally:
        await runner.cleanup()
    failed = _failed(report)
    assert set(failed) == {PreliveCheck.PENDING_SIGNALS}
    assert failed[PreliveCheck.PENDING_SIGNALS].startswith("a PENDING signal is 7.0 h old")
    assert len(posts) == 1  # the failure reaches people once, naming the check
    assert "prelive FAILED: 1 check" in json.dumps(posts[0])
    assert "pending_signals" in json.dumps(posts[0]) and str(run_id) in json.dumps(posts[0])


async def test_a_secret_in_a_workflow_history_is_named_never_shown(stack: Stack) -> None:
    secret = stack.settings.alpaca_secret_key
    assert secret is not None
    leaked = await stack.client.start_workflow(
        "NoWorkerRunsThis",
        {"careless": secret.get_secret_value()},
        id=f"leak-{uuid.uuid4().hex[:8]}",
        task_queue=f"nobody-{uuid.uuid4().hex[:8]}",
    )
    try:
        report = await stack.prelive()
    finally:
        await leaked.terminate("prelive test")
    failed = _failed(report)
    assert set(failed) == {PreliveCheck.NO_SECRETS}
    run = leaked.result_run_id or ""
    where = f"workflow {leaked.id} (run {run[:8]})"
    assert failed[PreliveCheck.NO_SECRETS] == f"secret leaked: ALPACA_SECRET_KEY in {where}"
    assert secret.get_secret_value() not in report.model_dump_json()


# --- the live gate ---------------------------------------------------------------------------
def _live(settings: Settings, **overrides: object) -> Settings:
    fields = {
        "trading_mode": "live",
        "trading_live_confirm": LIVE_CONFIRMATION,
        "alpaca_paper": False,
        "alpaca_api_key": SecretStr(f"AK{uuid.uuid4().hex[:18].upper()}"),
        "alpaca_secret_key": SecretStr("not-a-real-live-secret"),
    }
    return settings.model_copy(update=fields | overrides)


def _report(settings: Settings, passed: bool, at: datetime) -> PreliveReport:
    checks = [CheckOutcome(name=name, passed=passed, reason="test") for name in PreliveCheck]
    return prelive_report(checks, at, settings_digest(settings), settings.trading_mode)


async def test_live_refuses_to_start_without_a_recent_passing_prelive(
    settings: Settings, pool: asyncpg.Pool, caplog: pytest.LogCaptureFixture
) -> None:
    live = _live(settings)
    with pytest.raises(ConfigError, match="no prelive run for this configuration"):
        await require_prelive(live, pool)
    await PreliveRuns(pool).record(_report(live, True, datetime.now(UTC) - timedelta(hours=30)))
    with pytest.raises(ConfigError, match="older than"):
        await require_prelive(live, pool)
    await PreliveRuns(pool).record(_report(live, True, datetime.now(UTC)))
    await require_prelive(live, pool)  # starts
    other_key = _live(settings)  # another account: its own configuration, no run of its own
    with pytest.raises(ConfigError, match="no prelive run"):
        await require_prelive(other_key, pool)
    await PreliveRuns(pool).record(_report(live, False, datetime.now(UTC)))
    with pytest.raises(ConfigError, match="FAILED"):
        await require_prelive(live, pool)
    overridden = live.model_copy(update={"live_skip_prelive": SKIP_PRELIVE_CONFIRMATION})
    with caplog.at_level(logging.CRITICAL, logger="ops.live_gate"):
        await require_prelive(overridden, pool)  # starts, loudly
    assert sum("LIVE TRADING WITHOUT PRELIVE" in r.message for r in caplog.records) == 3
    await require_prelive(settings, pool)  # paper: nothing to check


async def test_a_live_worker_process_exits_2_without_prelive_and_starts_with_the_override(
    settings: Settings, paper_broker: RunningBroker, database_url: str, tmp_path: Path
) -> None:
    env = stack_env(
        settings,
        paper_broker,
        database_url,
        TRADING_MODE="live",
        TRADING_LIVE_CONFIRM=LIVE_CONFIRMATION,
        ALPACA_PAPER="false",
        HEALTH_ADDRESS="",
        METRICS_ADDRESS="",
    )
    done = await asyncio.to_thread(run_cli, script="worker.py", env=env, timeout=60)
    assert done.returncode == 2
    assert "TRADING_MODE=live refused: no prelive run for this configuration" in done.stderr
    log = tmp_path / "worker.log"
    started = await asyncio.to_thread(
        _run_until_running, {**env, "LIVE_SKIP_PRELIVE": SKIP_PRELIVE_CONFIRMATION}, log
    )
    assert started, log.read_text(errors="replace")
    assert "LIVE TRADING WITHOUT PRELIVE" in log.read_text(errors="replace")


def _run_until_running(env: dict[str, str], log: Path) -> bool:
    """Start `python worker.py`; True once it says it runs (then stopped with SIGTERM)."""
    worker = subprocess.Popen(
        [sys.executable, str(ROOT / "worker.py")],
        env=env,
        cwd=ROOT,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while "worker running" not in log.read_text(errors="replace"):
            if worker.poll() is not None or time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
