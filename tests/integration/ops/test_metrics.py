"""A worker's Prometheus endpoint during trades' lives: entry, a stop cancelled outside and
rescued, an exit - the counters and histograms move; label sets stay bounded however many
trades run. The worker is the production one, its client built by make_client with a
METRICS_ADDRESS (ops/telemetry.runtime_for); BrokerSync polls and listens beside it."""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import MetricMeter

from broker.alpaca import AlpacaGateway
from clients import make_client
from ops import metrics
from ops.telemetry import metrics_url
from paperbroker.admin_client import AdminClient
from settings import Settings
from tests.conftest import free_port
from tests.integration.helpers import poll_until
from tests.integration.trade.conftest import TradeHarness, eventually
from trading.broker_budget import BudgetConfig
from trading.broker_sync_models import BrokerSyncInput, BrokerSyncRun
from trading.ledger_records import ExitUrgency, TradeStatus
from trading.ticks import protective_stop_price
from trading.trade_models import ForceExit, TradeResult
from worker import create_worker
from workflows.broker_sync import BrokerSyncWorkflow
from workflows.trade import TradeWorkflow

pytestmark = pytest.mark.integration
logger = logging.getLogger("tests.metrics")

Series = tuple[str, frozenset[tuple[str, str]]]
_SAMPLE = re.compile(r"^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
_UUIDISH = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}", re.IGNORECASE)
_QUEUES = itertools.count(1)
# Twenty trades in about a minute spend more than Alpaca's 190 a minute; the paper broker has no
# limit here, and the budget is not what this module tests.
ROOMY_BUDGET = BudgetConfig(calls_per_min=5_000)
ROUND_B = ("AMZN", "GOOGL", "META", "NVDA", "TSLA", "AMD", "JPM", "KO", "SPY")


@pytest.fixture
def task_queue() -> str:
    """A queue name that is no uuid, so the id-shaped-label check can look at every label."""
    return f"metrics-queue-{next(_QUEUES)}"


class Scrape:
    """One scrape of the endpoint: value per (metric, labels)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples: dict[Series, float] = {}
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            match = _SAMPLE.match(line)
            assert match is not None, f"not a Prometheus sample line: {line!r}"
            name, labels, value = match.groups()
            key = frozenset(_LABEL.findall(labels or ""))
            self.samples[(name, key)] = float(value)

    def value(self, name: str, **labels: str) -> float:
        """Sum over the series of `name` whose labels include `labels` (0 when none)."""
        wanted = set(labels.items())
        return sum(v for (n, ls), v in self.samples.items() if n == name and wanted <= ls)

    def names(self) -> set[str]:
        return {name for name, _ in self.samples}

    def series(self, prefix: str = "") -> set[Series]:
        return {key for key in self.samples if key[0].startswith(prefix)}


async def until_scraped(
    scrape: Callable[[], Scrape], check: Callable[[Scrape], bool], within_s: float, prefix: str
) -> Scrape:
    """Scrape until `check` holds; on a timeout show the samples whose names start `prefix`."""
    return await poll_until(
        lambda: asyncio.to_thread(scrape),
        check,
        within_s,
        every=0.3,
        shown=lambda last: (
            "the scrape never showed it:\n"
            + "\n".join(line for line in last.text.splitlines() if line.startswith(prefix))
        ),
    )


@dataclass
class Metered:
    """Trades on a worker whose client serves Prometheus, with BrokerSync running."""

    harness: TradeHarness
    url: str
    sync: WorkflowHandle[Any, Any]

    def scrape(self) -> Scrape:
        with urllib.request.urlopen(self.url, timeout=5) as answer:
            return Scrape(answer.read().decode())

    async def until(self, check: Callable[[Scrape], bool], within_s: float = 20) -> Scrape:
        """Scrape until `check` holds."""
        return await until_scraped(self.scrape, check, within_s, "dt_")


@pytest_asyncio.fixture
async def metered(
    settings: Settings,
    pool: asyncpg.Pool,
    task_queue: str,
    activity_executor: ThreadPoolExecutor,
    broker_admin: AdminClient,
    gateway: AlpacaGateway,
) -> AsyncIterator[Metered]:
    """A production worker serving metrics on a free port; BrokerSync polling every 3 s."""
    address = f"127.0.0.1:{free_port()}"
    client = await make_client(
        settings.model_copy(update={"metrics_address": address}), serve_metrics=True
    )
    harness = TradeHarness(client, task_queue, broker_admin, gateway, pool)
    try:
        async with create_worker(
            client, pool, task_queue, activity_executor, gateway.endpoint, budget=ROOMY_BUDGET
        ):
            sync = await client.start_workflow(
                BrokerSyncWorkflow.run,
                BrokerSyncRun(settings=BrokerSyncInput(poll_interval=timedelta(seconds=3))),
                id=f"broker-sync-{uuid.uuid4().hex[:8]}",
                task_queue=task_queue,
            )
            try:
                await eventually(lambda: broker_admin.state()["stream_listening"] == 1)
                yield Metered(harness, metrics_url(address), sync)
            finally:
                await sync.signal(BrokerSyncWorkflow.stop)
                await sync.result()
                for handle in harness.handles:
                    if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                        await handle.terminate("test finished")
    finally:
        metrics.use_process_meter(MetricMeter.noop)
        await pool.execute(
            "UPDATE trades SET status = 'CLOSED', closed_at = now(), "
            "close_reason = 'GHOST' WHERE closed_at IS NULL"
        )


async def _open(harness: TradeHarness, symbol: str) -> WorkflowHandle[Any, Any]:
    harness.admin.set_price(symbol, volatility=0)
    handle, _ = await harness.open_trade(
        trade_id=f"{symbol.lower()}-{uuid.uuid4().hex[:8]}",
        symbol=symbol,
        qty=Decimal(3),
        stop_price=protective_stop_price(harness.market(symbol) * Decimal("0.95")),
    )
    return handle


async def _exit(handle: WorkflowHandle[Any, Any]) -> TradeResult:
    await handle.signal(
        TradeWorkflow.force_exit, ForceExit(urgency=ExitUrgency.IMMEDIATE, reason="test")
    )
    result: TradeResult = await asyncio.wait_for(handle.result(), timeout=30)
    assert result.status is TradeStatus.CLOSED
    return result


def _moved(before: Scrape, after: Scrape, name: str, **labels: str) -> float:
    return after.value(name, **labels) - before.value(name, **labels)


async def test_a_trades_life_moves_the_counters_and_histograms(metered: Metered) -> None:
    harness = metered.harness
    started = time.time()
    before = await asyncio.to_thread(metered.scrape)

    handle, view = await harness.open_trade()
    covered = await metered.until(
        lambda s: (
            s.value("dt_positions_covered") == 1 and s.value("dt_trades_open", status="OPEN") == 1
        )
    )
    assert covered.value("dt_positions_uncovered") == 0
    assert covered.value("dt_position_uncovered_max_seconds") == 0

    original = view.state.stop_order_id
    assert original is not None
    harness.admin.cancel_order(original)
    await harness.wait_for(handle, lambda v: v.state.rescue.ok == 1)
    await _exit(handle)
    after = await metered.until(
        lambda s: (
            s.value("dt_positions_covered") == 0 and s.value("dt_trades_open", status="OPEN") == 0
        )
    )

    # The rescue: attempted and ok once, its latency and the gap each one observation.
    assert _moved(before, after, "dt_stop_rescues_total", outcome="attempted") == 1
    assert _moved(before, after, "dt_stop_rescues_total", outcome="ok") == 1
    assert _moved(before, after, "dt_stop_rescues_total", outcome="failed") == 0
    assert _moved(before, after, "dt_stop_rescue_latency_ms_count") == 1
    # Two unprotected gaps: the rescue's (stop gone -> new stop) and the exit's (stop cancel
    # confirmed -> exit order accepted).
    assert _moved(before, after, "dt_unprotected_gap_ms_count") == 2
    gap_ms = _moved(before, after, "dt_unprotected_gap_ms_sum")
    assert 0 <= gap_ms < 30_000
    # Broker calls by route and outcome: the entry, the rescue and the exit were all answered.
    assert (
        _moved(before, after, "dt_broker_calls_total", route="POST /v2/orders", outcome="ok") >= 3
    )
    ok_routes = {
        dict(labels)["route"]
        for (name, labels), value in after.samples.items()
        if name == "dt_broker_calls_total" and dict(labels)["outcome"] == "ok" and value > 0
    }
    assert {"POST /v2/orders", "GET /v2/positions", "GET /v2/orders"} <= ok_routes
    assert after.value("dt_broker_calls_total", outcome="budget") == 0
    # The stream saw the entry fill and the stop cancelled outside; it is connected.
    assert _moved(before, after, "dt_trade_updates_events_total", event="fill") >= 2
    assert _moved(before, after, "dt_trade_updates_events_total", event="canceled") >= 1
    assert after.value("dt_trade_updates_stream_age_seconds") > 0
    # BrokerSync's poll is fresh.
    assert after.value("dt_truth_poll_last_success_timestamp_seconds") >= started - 1
    assert after.value("dt_truth_poll_age_seconds") < 10
    assert after.value("dt_signals_pending") == 0
    # The SDK's own metrics share the endpoint.
    names = after.names()
    for sdk_metric in (
        "temporal_workflow_task_schedule_to_start_latency_bucket",
        "temporal_activity_execution_latency_count",
        "temporal_sticky_cache_size",
        "temporal_worker_task_slots_available",
    ):
        assert sdk_metric in names, sorted(n for n in names if n.startswith("temporal_"))


async def test_labels_stay_bounded_and_twenty_trades_do_not_multiply_series(
    metered: Metered,
) -> None:
    harness = metered.harness
    seen_ids: list[str] = []
    symbols: set[str] = set()

    async def round_of(batch: Iterable[str]) -> None:
        batch = list(batch)
        symbols.update(batch)
        handles = await asyncio.gather(*(_open(harness, s) for s in batch))
        seen_ids.extend(h.id for h in handles)
        await asyncio.gather(*(_exit(h) for h in handles))

    await round_of(("AAPL", "MSFT"))
    first = await metered.until(lambda s: s.value("dt_trades_open", status="OPEN") == 0)
    await round_of(ROUND_B)
    await round_of(ROUND_B)
    second = await metered.until(lambda s: s.value("dt_trades_open", status="OPEN") == 0)
    assert len(seen_ids) == 20

    ours, sdk = second.series("dt_"), second.series("temporal_")
    # Eighteen more trades add at most a handful of series (enum values first seen), never
    # one per trade, order or symbol.
    assert len(ours - first.series("dt_")) <= 6, sorted(ours - first.series("dt_"))
    # The SDK's series grow with activity and workflow types first seen, not with trades.
    new_sdk = _label_sets(sdk) - _label_sets(first.series("temporal_"))
    assert len(new_sdk) <= 12, sorted(new_sdk)
    assert all(
        dict(labels).get("task_queue", harness.task_queue) == harness.task_queue
        for _, labels in sdk
    )
    assert len(ours) < 300
    logger.info(
        "after 20 trades: %d dt_ series (%d after 2), %d temporal_ series (%d after 2)",
        len(ours),
        len(first.series("dt_")),
        len(sdk),
        len(first.series("temporal_")),
    )

    for name, labels in ours:
        family = _family(name)
        definition = metrics.CATALOG.get(family)
        assert definition is not None, f"{name} is not in ops/metrics.py's catalog"
        for label, value in labels:
            if label in metrics.SDK_LABELS:
                allowed = _sdk_label_ok(label, value, harness.task_queue)
                assert allowed, f"{name}: {label}={value!r}"
            elif label == "le":
                assert definition.kind is metrics.Kind.HISTOGRAM and name.endswith("_bucket")
            else:
                assert value in definition.labels[label], f"{name}: {label}={value!r}"
            assert not _UUIDISH.search(value) and not value.startswith("trade-"), (name, value)
            assert value not in symbols, (name, value)
            assert not any(trade_id in value for trade_id in seen_ids), (name, value)


def _label_sets(series: set[Series]) -> set[tuple[str, frozenset[tuple[str, str]]]]:
    """Each metric's label sets, a histogram's buckets and _sum/_count counted once."""
    return {
        (re.sub(r"_(bucket|sum|count)$", "", name), frozenset(kv for kv in ls if kv[0] != "le"))
        for name, ls in series
    }


def _family(name: str) -> str:
    for suffix in ("_bucket", "_sum", "_count"):
        base = name.removesuffix(suffix)
        if base != name and base in metrics.CATALOG:
            return base
    return name


def _sdk_label_ok(label: str, value: str, task_queue: str) -> bool:
    if label == "task_queue":
        return value == task_queue
    if label == "namespace":
        return value == "default"
    if label == "service_name":
        return value == "temporal-core-sdk"
    return re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", value) is not None  # registered names
