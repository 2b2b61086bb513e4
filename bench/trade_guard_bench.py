"""Benchmark the trade guard: stop-rescue latency and broker API calls/min as open trades grow.

Self-contained: a Temporal dev server, an embedded PostgreSQL, an in-process paper broker
(manual clock inside a regular session, no rate limit, flat prices) and the production
worker with BrokerSync (trade_updates listener + positions/open-orders poll). For each trade
count N it opens N trades on N symbols, waits until every one is OPEN with an active stop and
BrokerSync has polled, zeroes the broker's request counter, then for the measured window
cancels a random trade's stop from outside every --cancel-every seconds and times the rescue:
from the cancel until the broker lists a new active stop for that symbol. The bench's own
order listings go through a separate client and are subtracted from the broker's count.

Usage: python bench/trade_guard_bench.py [--trades 10,100] [--minutes 1] [--cancel-every 2]
       python bench/trade_guard_bench.py --quick        # 10 and 30 trades, 30 s each
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import random
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alpaca.trading.client import TradingClient
from alpaca.trading.enums import QueryOrderStatus
from alpaca.trading.requests import GetOrdersRequest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from bench.stack import (
    SESSION_START,
    bench_servers,
    migrated_pool,
    paper_endpoint,
    percentile,
    running_worker,
    symbols_for,
)
from broker.alpaca import AlpacaGateway, to_order
from contracts.trade import workflow_id as trade_workflow_id
from devstack.postgres import EmbeddedPostgres
from paperbroker.testing import RunningBroker, run_paper_broker
from trading.broker_models import BrokerOrder, OrderSide, OrderType
from trading.broker_sync_models import BrokerSyncInput, BrokerSyncRun
from trading.ticks import protective_stop_price
from trading.trade_models import TradeSpec, TradeStatusView, TradeWorkflowInput
from workflows.broker_sync import BrokerSyncWorkflow
from workflows.trade import TradeWorkflow

POLL_INTERVAL = timedelta(seconds=15)
RESCUE_TIMEOUT_S = 30.0
WATCH_EVERY_S = 0.05
QTY = Decimal(10)
STOP_TYPES = (OrderType.STOP, OrderType.STOP_LIMIT, OrderType.TRAILING_STOP)


@dataclass
class RoundResult:
    """One trade count's figures."""

    trades: int
    window_s: float
    broker_calls: int
    bench_calls: int
    by_route: dict[str, int]
    cancels: int
    latencies_ms: list[float] = field(default_factory=list)
    unrescued: int = 0
    snapshot_checks: int = 0
    broker_checks: int = 0
    delay_ms: int = 0  # the paper broker's asynchronous cancel/replace delay in this round

    @property
    def calls_per_min(self) -> float:
        return self.broker_calls * 60 / self.window_s

    def as_json(self) -> dict[str, Any]:
        p50, p99 = percentile(self.latencies_ms, 0.5), percentile(self.latencies_ms, 0.99)
        return {
            "trades": self.trades,
            "cancel_replace_delay_ms": self.delay_ms,
            "window_s": round(self.window_s, 1),
            "broker_calls": self.broker_calls,
            "broker_calls_per_min": round(self.calls_per_min, 1),
            "calls_per_min_per_trade": round(self.calls_per_min / self.trades, 2),
            "by_route_per_min": {
                route: round(n * 60 / self.window_s, 1) for route, n in self.by_route.items()
            },
            "bench_calls_subtracted": self.bench_calls,
            "cancels": self.cancels,
            "rescues": len(self.latencies_ms),
            "unrescued": self.unrescued,
            "rescue_p50_ms": round(p50, 1) if p50 is not None else None,
            "rescue_p99_ms": round(p99, 1) if p99 is not None else None,
            "trade_snapshot_checks": self.snapshot_checks,
            "trade_broker_checks": self.broker_checks,
        }


class StopWatcher:
    """Lists the broker's open orders through its own client, counting every call it makes."""

    def __init__(self, broker: RunningBroker) -> None:
        self._client = TradingClient(
            broker.key_id, broker.secret_key, paper=True, url_override=broker.trading_url
        )
        self.calls = 0

    async def active_stops(self) -> dict[str, list[BrokerOrder]]:
        """Active sell stops by symbol (legs listed on their own, so held legs show)."""
        request = GetOrdersRequest(status=QueryOrderStatus.OPEN, limit=500, nested=False)
        self.calls += 1
        page: Any = await asyncio.to_thread(self._client.get_orders, request)
        stops: dict[str, list[BrokerOrder]] = {}
        for raw in page:
            order = to_order(raw)
            if order.is_active and order.side is OrderSide.SELL and order.type in STOP_TYPES:
                stops.setdefault(order.symbol, []).append(order)
        return stops


async def _views(handles: list[WorkflowHandle[Any, Any]]) -> list[TradeStatusView]:
    return list(await asyncio.gather(*(h.query(TradeWorkflow.status) for h in handles)))


async def _wait_views(
    handles: list[WorkflowHandle[Any, Any]], ready: Any, within_s: float, what: str
) -> list[TradeStatusView]:
    deadline = time.monotonic() + within_s
    while True:
        views = await _views(handles)
        done = sum(1 for v in views if ready(v))
        if done == len(views):
            return views
        if time.monotonic() > deadline:
            raise SystemExit(f"only {done}/{len(views)} trades {what} after {within_s:.0f} s")
        await asyncio.sleep(0.5)


@contextlib.asynccontextmanager
async def trade_stack(
    env: WorkflowEnvironment, postgres: EmbeddedPostgres, count: int, delay_ms: int
) -> AsyncIterator[tuple[Client, RunningBroker, str]]:
    """A fresh database, broker, worker and BrokerSync for one round; all stopped after."""
    client = env.client
    async with migrated_pool(postgres, f"bench_{count}") as pool:
        with run_paper_broker(
            start=SESSION_START,
            rate_limit=0,
            symbols=tuple(symbols_for(count)),
            cash=Decimal(100_000_000),
            volatility=0.0,
            cancel_delay_ms=delay_ms,
            replace_delay_ms=delay_ms,
        ) as broker:
            async with running_worker(client, pool, broker) as task_queue:
                sync = await client.start_workflow(
                    BrokerSyncWorkflow.run,
                    BrokerSyncRun(settings=BrokerSyncInput(poll_interval=POLL_INTERVAL)),
                    id=f"broker-sync-bench-{uuid.uuid4().hex[:8]}",
                    task_queue=task_queue,
                )
                try:
                    yield client, broker, task_queue
                finally:
                    with contextlib.suppress(Exception):
                        await client.get_workflow_handle(sync.id).signal(BrokerSyncWorkflow.stop)
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(
                            client.get_workflow_handle(sync.id).result(), timeout=30
                        )


async def _terminate(handles: list[WorkflowHandle[Any, Any]]) -> None:
    for handle in handles:
        with contextlib.suppress(Exception):
            if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                await handle.terminate("benchmark finished")


async def run_round(
    env: WorkflowEnvironment,
    postgres: EmbeddedPostgres,
    count: int,
    window_s: float,
    cancel_every_s: float,
    rng: random.Random,
    delay_ms: int,
) -> RoundResult:
    """Open `count` trades, then cancel stops from outside for `window_s`; measure."""
    async with trade_stack(env, postgres, count, delay_ms) as (client, broker, task_queue):
        admin = broker.admin
        listening = time.monotonic() + 30
        while (await asyncio.to_thread(admin.state))["stream_listening"] != 1:
            if time.monotonic() > listening:
                raise SystemExit("BrokerSync's trade_updates listener did not connect")
            await asyncio.sleep(0.2)
        symbols = symbols_for(count)
        gateway_quotes = await asyncio.to_thread(
            AlpacaGateway(paper_endpoint(broker)).latest_quotes,
            symbols,
        )
        handles: list[WorkflowHandle[Any, Any]] = []
        try:
            for quote in gateway_quotes:
                spec = TradeSpec(
                    trade_id=f"{quote.symbol.lower()}-{uuid.uuid4().hex[:8]}",
                    symbol=quote.symbol,
                    qty=QTY,
                    stop_price=protective_stop_price(quote.bid * Decimal("0.95")),
                )
                handles.append(
                    await client.start_workflow(
                        TradeWorkflow.run,
                        TradeWorkflowInput(spec=spec),
                        id=trade_workflow_id(spec.trade_id),
                        task_queue=task_queue,
                    )
                )
            await _wait_views(
                handles,
                lambda v: v.status == "OPEN" and v.state.stop_order_id is not None,
                120,
                "OPEN with a stop",
            )
            # One BrokerSync poll after the opening, so the steady state is what gets measured.
            before = await _wait_views(
                handles,
                lambda v: v.state.snapshot_checks >= 1,
                POLL_INTERVAL.total_seconds() * 3,
                "settled by a snapshot",
            )
            result = await _measure(broker, handles, before, count, window_s, cancel_every_s, rng)
            result.delay_ms = delay_ms
            return result
        finally:
            await _terminate(handles)


async def _measure(
    broker: RunningBroker,
    handles: list[WorkflowHandle[Any, Any]],
    before: list[TradeStatusView],
    count: int,
    window_s: float,
    cancel_every_s: float,
    rng: random.Random,
) -> RoundResult:
    admin = broker.admin
    watcher = StopWatcher(broker)
    pending: dict[str, tuple[float, str]] = {}  # symbol -> (cancelled at, cancelled stop id)
    latencies: list[float] = []
    unrescued = 0
    cancels = 0
    stop_watching = asyncio.Event()

    async def watch() -> None:
        nonlocal unrescued
        while not (stop_watching.is_set() and not pending):
            if pending:
                stops = await watcher.active_stops()
                seen_at = time.monotonic()
                for symbol, (cancelled_at, old_id) in list(pending.items()):
                    if any(o.id != old_id for o in stops.get(symbol, [])):
                        latencies.append((seen_at - cancelled_at) * 1000)
                        del pending[symbol]
                    elif seen_at - cancelled_at > RESCUE_TIMEOUT_S:
                        unrescued += 1
                        del pending[symbol]
            await asyncio.sleep(WATCH_EVERY_S)

    await asyncio.to_thread(admin.reset_requests)
    started = time.monotonic()
    watching = asyncio.create_task(watch())
    try:
        next_cancel = started
        while time.monotonic() - started < window_s:
            stops = await watcher.active_stops()
            candidates = sorted(s for s in stops if s not in pending)
            if candidates:
                symbol = rng.choice(candidates)
                victim = stops[symbol][0]
                pending[symbol] = (time.monotonic(), victim.id)
                await asyncio.to_thread(admin.cancel_order, victim.id)
                cancels += 1
            next_cancel += cancel_every_s
            await asyncio.sleep(max(0.0, next_cancel - time.monotonic()))
        stop_watching.set()
        await watching
    finally:
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching
    elapsed = time.monotonic() - started
    counted = await asyncio.to_thread(admin.requests)
    by_route = dict(counted["by_route"])
    by_route["GET /v2/orders"] = by_route.get("GET /v2/orders", 0) - watcher.calls
    after = await _views(handles)
    return RoundResult(
        trades=count,
        window_s=elapsed,
        broker_calls=int(counted["total"]) - watcher.calls,
        bench_calls=watcher.calls,
        by_route={route: n for route, n in sorted(by_route.items()) if n},
        cancels=cancels,
        latencies_ms=latencies,
        unrescued=unrescued,
        snapshot_checks=sum(
            a.state.snapshot_checks - b.state.snapshot_checks
            for a, b in zip(after, before, strict=True)
        ),
        broker_checks=sum(
            a.state.broker_checks - b.state.broker_checks
            for a, b in zip(after, before, strict=True)
        ),
    )


async def run(
    counts: list[int], delays: list[int], window_s: float, cancel_every_s: float
) -> list[RoundResult]:
    """Start the servers once, run every round, stop everything (also on error or Ctrl-C)."""
    rng = random.Random(7)
    results: list[RoundResult] = []
    async with bench_servers("trade-guard-bench-") as (env, postgres):
        for delay_ms in delays:
            for count in counts:
                print(
                    f"... {count} trades, cancel/replace delay {delay_ms} ms: opening, then "
                    f"{window_s:g} s of cancels",
                    flush=True,
                )
                results.append(
                    await run_round(env, postgres, count, window_s, cancel_every_s, rng, delay_ms)
                )
    return results


def report(results: list[RoundResult], window_s: float, cancel_every_s: float) -> None:
    """Print the table and the JSON."""
    rows = [r.as_json() for r in results]
    header = (
        f"{'delay ms':>9}{'trades':>7}{'calls/min':>11}{'per trade':>11}{'cancels':>9}"
        f"{'rescues':>9}{'p50 ms':>9}{'p99 ms':>9}{'snap chk':>10}{'brk chk':>9}"
    )
    print(
        f"trade guard benchmark: {window_s:g} s window, a stop cancelled every "
        f"{cancel_every_s:g} s, BrokerSync poll {POLL_INTERVAL.total_seconds():g} s"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row['cancel_replace_delay_ms']:>9}{row['trades']:>7}{row['broker_calls_per_min']:>11}"
            f"{row['calls_per_min_per_trade']:>11}{row['cancels']:>9}{row['rescues']:>9}"
            f"{row['rescue_p50_ms']!s:>9}{row['rescue_p99_ms']!s:>9}"
            f"{row['trade_snapshot_checks']:>10}{row['trade_broker_checks']:>9}"
        )
    growth = None
    same_delay = [
        r for r in rows if r["cancel_replace_delay_ms"] == rows[-1]["cancel_replace_delay_ms"]
    ]
    if len(same_delay) >= 2 and same_delay[0]["broker_calls_per_min"]:
        first, last = same_delay[0], same_delay[-1]
        growth = round(last["broker_calls_per_min"] / first["broker_calls_per_min"], 2)
        print(f"calls/min grew x{growth} while trades grew x{last['trades'] / first['trades']:g}")
    print(
        json.dumps(
            {
                "window_s": window_s,
                "cancel_every_s": cancel_every_s,
                "poll_interval_s": POLL_INTERVAL.total_seconds(),
                "calls_per_min_growth": growth,
                "results": rows,
            },
            indent=2,
        )
    )


def main() -> None:
    """Parse arguments, run the rounds, print the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trades", default="10,100", help="comma-separated trade counts")
    parser.add_argument("--minutes", type=float, default=1.0, help="measured window per count")
    parser.add_argument("--cancel-every", type=float, default=2.0, help="seconds between cancels")
    parser.add_argument("--quick", action="store_true", help="10 and 30 trades, 30 s each")
    parser.add_argument(
        "--delays-ms",
        default="0,50",
        help="the paper broker's asynchronous cancel/replace delays to compare (Alpaca-like: 50)",
    )
    args = parser.parse_args()
    counts = [10, 30] if args.quick else [int(n) for n in args.trades.split(",") if n.strip()]
    window_s = 30.0 if args.quick else args.minutes * 60
    if max(counts) > len(symbols_for(10_000)):
        raise SystemExit(f"at most {len(symbols_for(10_000))} trades")
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    try:
        delays = [int(d) for d in args.delays_ms.split(",") if d.strip()]
        results = asyncio.run(run(counts, delays, window_s, args.cancel_every))
    except KeyboardInterrupt:
        raise SystemExit("interrupted; servers stopped") from None
    report(results, window_s, args.cancel_every)


if __name__ == "__main__":
    main()
