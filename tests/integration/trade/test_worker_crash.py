"""The worker process is killed mid-trade; after a restart each trade finishes with exactly one
set of orders at the broker and a correct ledger."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import QueryOrderStatus
from alpaca.trading.requests import GetOrdersRequest
from temporalio.client import Client, WorkflowHandle

from broker.alpaca import AlpacaGateway
from contracts.trade import workflow_id as trade_workflow_id
from ledger.trades import Trades
from paperbroker.admin_client import AdminClient
from paperbroker.testing import RunningBroker
from settings import ROOT, Settings
from tests.integration.cli_helpers import stack_env
from trading.ledger_records import CloseReason, ExitUrgency, TradeStatus
from trading.ticks import protective_stop_price
from trading.trade_models import (
    EntryType,
    ForceExit,
    TradeSpec,
    TradeStatusView,
    TradeWorkflowInput,
)
from workflows.trade import TradeWorkflow

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SYMBOL = "MSFT"


class WorkerProcess:
    """`python worker.py` as production runs it, pointed at the test's servers."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = self.log_dir / f"worker-{self.starts}.log"
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "worker.py")],
            env=self.env,
            cwd=ROOT,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while "worker running" not in log.read_text(errors="replace"):
            assert self.process.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, "worker did not start"
            time.sleep(0.1)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)  # a crash: no graceful shutdown
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()


@pytest.fixture
def worker(
    settings: Settings,
    paper_broker: RunningBroker,
    database_url: str,
    tmp_path: Path,
    broker_admin: AdminClient,
) -> Iterator[WorkerProcess]:
    broker_admin.set_price(SYMBOL, volatility=0)
    env = stack_env(settings, paper_broker, database_url, LOG_LEVEL="INFO")
    process = WorkerProcess(env, tmp_path)
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest_asyncio.fixture
async def handles(client: Client) -> AsyncIterator[list[WorkflowHandle[Any, Any]]]:
    started: list[WorkflowHandle[Any, Any]] = []
    yield started
    for handle in started:
        description = await handle.describe()
        if description.status is not None and description.status.name == "RUNNING":
            await handle.terminate("test finished")


def _all_orders(paper_broker: RunningBroker, trade_id: str) -> list[Any]:
    trading = TradingClient(
        paper_broker.key_id,
        paper_broker.secret_key,
        paper=True,
        url_override=paper_broker.trading_url,
    )
    orders: Any = trading.get_orders(
        GetOrdersRequest(status=QueryOrderStatus.ALL, limit=500, nested=False, symbols=[SYMBOL])
    )
    return [o for o in orders if o.client_order_id.startswith(f"{trade_id}.")]


async def _start(
    client: Client, settings: Settings, gateway: AlpacaGateway, handles: list[Any], **fields: Any
) -> tuple[TradeSpec, WorkflowHandle[Any, Any]]:
    market = gateway.latest_quotes([SYMBOL])[0].bid
    spec = TradeSpec(
        **{
            "trade_id": f"msft-{uuid.uuid4().hex[:10]}",
            "symbol": SYMBOL,
            "qty": Decimal(6),
            "stop_price": protective_stop_price(market * Decimal("0.95")),
            "check_interval": timedelta(seconds=2),
            "rescue_backoff_initial": timedelta(seconds=1),
            **fields,
        }
    )
    handle = await client.start_workflow(
        TradeWorkflow.run,
        TradeWorkflowInput(spec=spec),
        id=trade_workflow_id(spec.trade_id),
        task_queue=settings.temporal_task_queue,
    )
    handles.append(handle)
    return spec, handle


async def _until(
    handle: WorkflowHandle[Any, Any], check: Any, within: float = 90
) -> TradeStatusView:
    deadline = time.monotonic() + within
    view: TradeStatusView | None = None
    while time.monotonic() < deadline:
        try:
            view = await handle.query(TradeWorkflow.status)
            if check(view):
                return view
        except Exception:  # no worker to answer the query right now
            pass
        await asyncio.sleep(0.3)
    raise AssertionError(f"condition not met in {within}s; last view {view}")


def _open(view: TradeStatusView) -> bool:
    return view.status == "OPEN" and view.state.stop_order_id is not None


async def test_killed_during_entry(
    client: Client,
    settings: Settings,
    gateway: AlpacaGateway,
    paper_broker: RunningBroker,
    broker_admin: AdminClient,
    worker: WorkerProcess,
    pool: asyncpg.Pool,
    handles: list[Any],
) -> None:
    market = gateway.latest_quotes([SYMBOL])[0].ask
    below = (market * Decimal("0.98")).quantize(Decimal("0.01"))
    spec, handle = await _start(
        client, settings, gateway, handles, entry_type=EntryType.LIMIT, limit_price=below
    )
    await _until(handle, lambda v: v.state.entry_order_id is not None)  # resting at the broker
    worker.kill()
    broker_admin.set_price(SYMBOL, price=below - Decimal("0.50"))  # fills while nobody watches
    worker.start()
    view = await _until(handle, _open)
    orders = _all_orders(paper_broker, spec.trade_id)
    assert [o.client_order_id for o in orders if o.client_order_id.endswith(".en.0")] == [
        f"{spec.trade_id}.en.0"
    ]
    assert len(orders) == 1  # one entry (its stop leg carries the broker's own id)
    row = await Trades(pool).get(spec.trade_id)
    assert row is not None and row.status is TradeStatus.OPEN and row.qty == Decimal(6)
    assert view.state.position_qty == Decimal(6)


async def test_killed_during_a_rescue(
    client: Client,
    settings: Settings,
    gateway: AlpacaGateway,
    paper_broker: RunningBroker,
    broker_admin: AdminClient,
    worker: WorkerProcess,
    pool: asyncpg.Pool,
    handles: list[Any],
) -> None:
    spec, handle = await _start(client, settings, gateway, handles)
    view = await _until(handle, _open)
    original = view.state.stop_order_id
    assert original is not None
    # The rescue's POST reaches the broker only after 3 s; the worker dies before the answer.
    broker_admin.add_fault(method="POST", path="/v2/orders", status=0, latency_ms=3000, times=1)
    broker_admin.cancel_order(original)
    await _until(handle, lambda v: v.state.rescue.attempted >= 1, within=30)
    await asyncio.sleep(0.5)
    worker.kill()
    await asyncio.sleep(3.5)  # the delayed POST lands at the broker meanwhile
    worker.start()
    rescued = await _until(
        handle, lambda v: v.state.stop_order_id not in (None, original) and v.state.rescue.ok >= 1
    )
    rescues = [o for o in _all_orders(paper_broker, spec.trade_id) if ".rs." in o.client_order_id]
    assert [o.client_order_id for o in rescues] == [f"{spec.trade_id}.rs.0"]  # exactly once
    stop = gateway.get_order(rescued.state.stop_order_id or "")
    assert stop.is_active and stop.qty == Decimal(6)
    row = await Trades(pool).get(spec.trade_id)
    assert row is not None and row.stop_order_id == stop.id and row.status is TradeStatus.OPEN


async def test_killed_during_an_exit(
    client: Client,
    settings: Settings,
    gateway: AlpacaGateway,
    paper_broker: RunningBroker,
    broker_admin: AdminClient,
    worker: WorkerProcess,
    pool: asyncpg.Pool,
    handles: list[Any],
) -> None:
    spec, handle = await _start(client, settings, gateway, handles)
    await _until(handle, _open)
    broker_admin.add_fault(method="POST", path="/v2/orders", status=0, latency_ms=3000, times=1)
    await handle.signal(
        TradeWorkflow.force_exit, ForceExit(urgency=ExitUrgency.IMMEDIATE, reason="crash drill")
    )
    await _until(
        handle,
        lambda v: v.state.exit is not None and v.state.exit.stop_cancel_confirmed_at is not None,
        within=30,
    )
    await asyncio.sleep(0.5)
    worker.kill()
    await asyncio.sleep(3.5)
    worker.start()
    result = await asyncio.wait_for(handle.result(), timeout=120)
    assert result.status == TradeStatus.CLOSED and result.close_reason == CloseReason.FORCE_EXIT
    exits = [o for o in _all_orders(paper_broker, spec.trade_id) if ".ex." in o.client_order_id]
    assert [o.client_order_id for o in exits] == [f"{spec.trade_id}.ex.0"]  # exactly once
    assert gateway.probe_position(SYMBOL).outcome.value == "absent"
    row = await Trades(pool).get(spec.trade_id)
    assert row is not None and row.status is TradeStatus.CLOSED
    assert row.close_reason is CloseReason.FORCE_EXIT


async def test_a_stop_that_died_while_no_worker_ran_is_rescued_by_the_start_up_check(
    client: Client,
    settings: Settings,
    gateway: AlpacaGateway,
    broker_admin: AdminClient,
    worker: WorkerProcess,
    handles: list[Any],
) -> None:
    # No BrokerSync, and a self-check ten minutes away: only the new worker's own look at the
    # broker can wake this trade in time.
    _, handle = await _start(
        client, settings, gateway, handles, check_interval=timedelta(minutes=10)
    )
    view = await _until(handle, _open)
    old_stop = view.state.stop_order_id or ""
    worker.kill()
    broker_admin.cancel_order(old_stop)  # dies while no worker listens
    worker.start()
    rescued = await _until(
        handle, lambda v: v.state.rescue.ok >= 1 and v.state.stop_order_id != old_stop, within=30
    )
    assert gateway.get_order(rescued.state.stop_order_id or "").is_active
    log = (worker.log_dir / f"worker-{worker.starts}.log").read_text(errors="replace")
    woken = re.search(r"start-up broker check: \d+ positions, (\d+) trades woken", log)
    assert woken is not None and int(woken.group(1)) >= 1, log[-2000:]
