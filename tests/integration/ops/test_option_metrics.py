"""Option trades on a worker's Prometheus endpoint: dt_option_trades_total counts each
transition once (a worker restart between the open and the close replays the open without
counting it again, and a replay of the whole history counts nothing), and a close held back
for legs that do not match counts dt_option_legs_mismatch_total while it lasts.

The worker is the production one, its client built by make_client with a METRICS_ADDRESS
(ops/telemetry.runtime_for); the trades are condors on the paper broker (the options harness).
"""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import asyncpg
import pytest
import pytest_asyncio
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import MetricMeter
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import MetricBuffer, Runtime, TelemetryConfig
from temporalio.worker import Replayer, Worker

from broker.alpaca import AlpacaGateway
from clients import make_client
from ops import metrics
from ops.telemetry import metrics_url
from paperbroker.admin_client import AdminClient
from settings import Settings
from tests.conftest import free_port
from tests.integration.ops.test_metrics import Scrape, until_scraped
from tests.integration.options.conftest import (
    LONG_CALL,
    LONG_PUT,
    SHORT_CALL,
    SHORT_PUT,
    WEEKLY,
    OptionHarness,
    marketable_spec,
    option_harness,
)
from trading.options.legs import CLOSED_OUTSIDE
from trading.options.trade_models import (
    FORCED_EXIT,
    OptionForceExit,
    OptionTradeResult,
    OptionTradeStatus,
)
from worker import create_worker
from workflows.option_trade import OptionTradeWorkflow

pytestmark = pytest.mark.integration

TRADES = "dt_option_trades_total"
HELD_BACK = "dt_option_legs_mismatch_total"
CALLS = "dt_broker_calls_total"
CHAIN_ROUTE = "GET /v1beta1/options/snapshots/{underlying}"


@dataclass
class MeteredOptions:
    """Option trades on a client that serves Prometheus; workers are started by the test."""

    client: Client
    harness: OptionHarness
    url: str
    pool: asyncpg.Pool
    executor: ThreadPoolExecutor
    gateway: AlpacaGateway

    def worker(self) -> Worker:
        """A production worker on the harness's queue (an async context manager)."""
        return create_worker(
            self.client, self.pool, self.harness.task_queue, self.executor, self.gateway.endpoint
        )

    def scrape(self) -> Scrape:
        """The endpoint's samples now."""
        with urllib.request.urlopen(self.url, timeout=5) as answer:
            return Scrape(answer.read().decode())

    async def until(self, check: Callable[[Scrape], bool], within_s: float = 20) -> Scrape:
        """Scrape until `check` holds."""
        return await until_scraped(self.scrape, check, within_s, "dt_option")


@pytest_asyncio.fixture
async def metered(
    settings: Settings,
    pool: asyncpg.Pool,
    task_queue: str,
    activity_executor: ThreadPoolExecutor,
    broker_admin: AdminClient,
    gateway: AlpacaGateway,
) -> AsyncIterator[MeteredOptions]:
    """A client serving metrics on a free port; running option trades terminated after."""
    address = f"127.0.0.1:{free_port()}"
    client = await make_client(
        settings.model_copy(update={"metrics_address": address}), serve_metrics=True
    )
    harness = option_harness(client, task_queue, broker_admin, gateway, pool)
    try:
        yield MeteredOptions(
            client, harness, metrics_url(address), pool, activity_executor, gateway
        )
    finally:
        metrics.use_process_meter(MetricMeter.noop)
        for handle in harness.handles:
            if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                await handle.terminate("test finished")


def _moved(before: Scrape, after: Scrape, name: str, **labels: str) -> float:
    return after.value(name, **labels) - before.value(name, **labels)


def _events(before: Scrape, after: Scrape) -> dict[str, float]:
    """The events dt_option_trades_total moved on, and by how much."""
    moved = {
        event: _moved(before, after, TRADES, event=event)
        for event in metrics.CATALOG[TRADES].labels["event"]
    }
    return {event: n for event, n in moved.items() if n}


async def test_an_option_trade_counts_its_open_and_its_close_once_across_a_worker_restart(
    metered: MeteredOptions,
) -> None:
    harness = metered.harness
    before = await asyncio.to_thread(metered.scrape)
    spec = marketable_spec(harness, WEEKLY)
    async with metered.worker():
        handle = await harness.start(spec)
        await harness.wait_for(handle, lambda v: v.status is OptionTradeStatus.OPEN)
        opened = await metered.until(lambda s: _moved(before, s, TRADES, event="opened") == 1)

    # A new worker has no cached run: it replays the history (the open included) first.
    async with metered.worker():
        await handle.signal(OptionTradeWorkflow.force_exit, OptionForceExit(reason="test"))
        result: OptionTradeResult = await asyncio.wait_for(handle.result(), timeout=60)
    assert result.status is OptionTradeStatus.CLOSED and result.exit_reason == FORCED_EXIT
    after = await metered.until(lambda s: _moved(before, s, TRADES, event=FORCED_EXIT) == 1)

    assert _events(before, after) == {"opened": 1, FORCED_EXIT: 1}
    # Its broker calls are counted like every other, on their Alpaca routes: the opening and
    # the closing mleg, the marks' chain reads.
    assert _moved(before, after, CALLS, route="POST /v2/orders", outcome="ok") >= 2
    assert _moved(before, after, CALLS, route=CHAIN_ROUTE, outcome="ok") >= 1
    assert _moved(before, after, HELD_BACK) == 0
    series = {dict(labels)["workflow_type"] for name, labels in after.series(TRADES)}
    assert series == {"OptionTradeWorkflow"}
    assert opened.value(TRADES, event="opened") == after.value(TRADES, event="opened")

    # The whole history replayed records nothing: the counts are the live run's only.
    buffer = MetricBuffer(1_000)
    replayer = Replayer(
        workflows=[OptionTradeWorkflow],
        data_converter=pydantic_data_converter,
        runtime=Runtime(telemetry=TelemetryConfig(metrics=buffer)),
    )
    replayed = await replayer.replay_workflow(
        await handle.fetch_history(), raise_on_replay_failure=False
    )
    assert replayed.replay_failure is None
    assert [
        u.metric.name for u in buffer.retrieve_updates() if u.metric.name.startswith("dt_")
    ] == []


async def test_a_close_held_back_counts_while_it_lasts_then_the_trade_ends_closed_outside(
    metered: MeteredOptions,
) -> None:
    harness = metered.harness
    before = await asyncio.to_thread(metered.scrape)
    async with metered.worker():
        handle = await harness.start(marketable_spec(harness, WEEKLY))
        await harness.wait_for(handle, lambda v: v.status is OptionTradeStatus.OPEN)

        # Someone buys the short call back at the broker: the close is held back, each check.
        harness.trading.close_position(SHORT_CALL)
        await handle.signal(OptionTradeWorkflow.force_exit, OptionForceExit(reason="test"))
        await harness.wait_for(handle, lambda v: v.state.legs_mismatch is not None)
        held = await metered.until(lambda s: _moved(before, s, HELD_BACK) >= 2)
        assert _events(before, held) == {"opened": 1}

        for symbol in (LONG_PUT, SHORT_PUT, LONG_CALL):
            harness.trading.close_position(symbol)
        result: OptionTradeResult = await asyncio.wait_for(handle.result(), timeout=60)
        assert result.exit_reason == CLOSED_OUTSIDE
        after = await metered.until(lambda s: _moved(before, s, TRADES, event=CLOSED_OUTSIDE) == 1)
        assert _events(before, after) == {"opened": 1, CLOSED_OUTSIDE: 1}
        # The trade is over: nothing is held back any more, so the count stops growing.
        await asyncio.sleep(2.5)
        later = await asyncio.to_thread(metered.scrape)
    assert later.value(HELD_BACK) == after.value(HELD_BACK) >= held.value(HELD_BACK)
