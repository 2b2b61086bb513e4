"""Benchmark throughput: draining signals, reconciling open trades, a trade's way to the broker.

Runs on the embedded stack (bench/stack.py: Temporal dev server, embedded PostgreSQL, an
in-process paper broker with a manual clock inside a regular session and no rate limit, the
production worker). Each figure is measured next to a baseline taken in the same run: the
design this system replaces.

1. Drain. `--signals` PENDING signals go into a fresh ledger through the Signals repository
   (every `--invalid-every`-th lacks its momentum feature and must end ERROR, the rest are
   scored). ScoreDrainWorkflow runs until none is PENDING; the figure is signals/s and the
   time from the workflow's start to its result, checked against the ledger (no PENDING
   left; each signal of the round ended SCORED or ERROR in this drain).
   Baseline - one scoring call per signal, sequentially: a loop over a second ledger with the
   same signals that claims one signal (the same leased claim), scores it with the same
   scorer and records SCORED or ERROR, then takes the next; no Temporal in the loop at all.
2. Reconcile. `--trades` OPEN trades go into a fresh ledger through the Trades repository,
   each in its own symbol and older than reconcile's grace. The paper broker holds a
   matching position (same symbol and quantity) with its protective GTC stop for all but
   `--ghosts` of them, and the ledger records that stop; the rest are ghosts (no position,
   no order, no workflow) that reconcile must close. Each later round adds `--ghosts` new
   ghosts in place of those closed, so every run faces the same account. The figure is one
   ReconcileWorkflow run end to end (start to result), with its checks and closes.
   Baseline - per-trade broker lookups: a loop over a second ledger with the same trades that
   asks the broker for each trade's position (GET /v2/positions/{symbol}, one call per
   trade) and closes the trade as a ghost when the broker answers "no position" (404).
3. Trade start. `--starts` trades on their own symbols are started the way `trade open`
   starts them (TradeLink.start: TradeWorkflow `trade-<id>`, market OTO entry with its stop);
   the figure is the time from the start call until the broker reports the entry order on
   trade_updates (its `new` event: accepted), p50/p90/p99.
   Baseline - the broker's own floor: the same order (market OTO with the stop leg) submitted
   directly with alpaca-py's TradingClient, timed the same way (from the call until its
   `new` event). Samples alternate between the two, `--gap` seconds apart, after
   `--warmup` uncounted ones of each.

Drain and reconcile run `--rounds` times, each round baseline first and then the system on
its own copy of the same data; their figures are the medians. The machine may be shared:
compare a figure with its baseline from the same run rather than across runs.

Usage: python bench/throughput_bench.py [--signals 10000] [--trades 5000] [--ghosts 50]
                                        [--starts 30] [--only drain,reconcile,start]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import statistics
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderClass, TimeInForce
from alpaca.trading.enums import OrderSide as SdkOrderSide
from alpaca.trading.models import TradeUpdate
from alpaca.trading.requests import MarketOrderRequest, StopLossRequest, StopOrderRequest
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.testing import WorkflowEnvironment

from activities.trade_link import TradeLink
from bench.stack import (
    SESSION_START,
    bench_servers,
    migrated_pool,
    paper_endpoint,
    percentile,
    running_worker,
    symbols_for,
)
from broker.alpaca import AlpacaGateway
from contracts.trade import workflow_id as trade_workflow_id
from devstack.postgres import EmbeddedPostgres
from ledger.signals import Signals
from ledger.trades import Trades
from paperbroker.admin_client import AdminClient
from paperbroker.testing import RunningBroker, StreamRecorder, run_paper_broker
from trading.broker_models import OrderSide, ProbeOutcome
from trading.ids import Leg, client_order_id
from trading.ledger_records import (
    CloseReason,
    SignalClaim,
    SignalCreate,
    SignalFailed,
    SignalScored,
    TradeClose,
    TradeCreate,
    TradeProtection,
    TradeStatus,
)
from trading.reconcile import DEFAULT_GRACE
from trading.reconcile_models import ReconcileInput
from trading.scoring import (
    DrainInput,
    DrainResult,
    MomentumVolumeScorer,
    ScoringError,
    SignalToScore,
)
from trading.ticks import protective_stop_price
from trading.trade_models import TradeSpec
from workflows.drain import ScoreDrainWorkflow
from workflows.reconcile import ReconcileWorkflow

T = TypeVar("T")
GOAL_DRAIN_S = 30.0
GOAL_RECONCILE_S = 2.0
GOAL_START_P50_MS = 150.0
QTY = Decimal(10)
SEED_CONCURRENCY = 16
ACCEPT_TIMEOUT_S = 30.0
ACTIVITY_COMPLETED = "activity_task_completed_event_attributes"
ACTIVITY_CLOSED = frozenset(
    f"activity_task_{end}_event_attributes"
    for end in ("completed", "failed", "timed_out", "canceled")
)
SAME_INSTANT = 400  # orders seeded per manual-clock instant (under the listing's page of 500)


# --- shared helpers --------------------------------------------------------------------------


async def bounded(jobs: Iterable[Awaitable[T]], concurrency: int = SEED_CONCURRENCY) -> list[T]:
    """Await `jobs` with at most `concurrency` in flight (seeding the ledger, not measured)."""
    gate = asyncio.Semaphore(concurrency)

    async def one(job: Awaitable[T]) -> T:
        async with gate:
            return await job

    return list(await asyncio.gather(*(one(j) for j in jobs)))


async def activity_counts(handle: WorkflowHandle[Any, Any]) -> dict[str, Any]:
    """What a finished workflow did: activities by type (how many, how long from scheduled
    to closed, and the span from the first scheduled to the last closed), events, bytes."""
    by_type: Counter[str] = Counter()
    busy_s: dict[str, float] = {}
    span: dict[str, list[datetime]] = {}
    scheduled: dict[int, tuple[str, datetime]] = {}
    events = size = 0
    async for event in handle.fetch_history_events():
        events += 1
        size += event.ByteSize()
        at = event.event_time.ToDatetime(UTC)
        if event.HasField("activity_task_scheduled_event_attributes"):
            name = event.activity_task_scheduled_event_attributes.activity_type.name
            by_type[name] += 1
            scheduled[event.event_id] = (name, at)
            continue
        kind = event.WhichOneof("attributes")
        if kind in ACTIVITY_CLOSED:
            name, began = scheduled[getattr(event, kind).scheduled_event_id]
            busy_s[name] = busy_s.get(name, 0.0) + (at - began).total_seconds()
            first, last = span.setdefault(name, [began, at])
            span[name] = [min(first, began), max(last, at)]
    return {
        "activities": sum(by_type.values()),
        "activities_by_type": dict(sorted(by_type.items())),
        "activity_seconds_by_type": {n: round(v, 3) for n, v in sorted(busy_s.items())},
        "activity_span_seconds_by_type": {
            n: round((last - first).total_seconds(), 3) for n, (first, last) in sorted(span.items())
        },
        "history_events": events,
        "history_bytes": size,
    }


async def outcome(handle: WorkflowHandle[Any, T]) -> tuple[T | None, str | None]:
    """The workflow's result, or None and its failure as `Type: message <- cause ...`."""
    try:
        return await handle.result(), None
    except WorkflowFailureError as err:
        causes: list[str] = []
        cause: BaseException | None = err.cause
        while cause is not None:
            causes.append(f"{type(cause).__name__}: {str(cause).splitlines()[0][:200]}")
            cause = cause.__cause__
        return None, " <- ".join(causes) or str(err)


def _round(value: float | None, places: int = 1) -> float | None:
    return None if value is None else round(value, places)


@dataclass
class Figure:
    """One measured figure next to its baseline and goal."""

    name: str
    unit: str
    system: float | None
    baseline: float | None
    goal: str
    met: bool | None
    higher_is_better: bool = False

    @property
    def speedup(self) -> float | None:
        """How many times better the system is than the baseline."""
        if self.system is None or self.baseline is None or not self.system or not self.baseline:
            return None
        better, worse = (
            (self.system, self.baseline) if self.higher_is_better else (self.baseline, self.system)
        )
        return round(better / worse, 2)

    def as_json(self) -> dict[str, Any]:
        return {
            "figure": self.name,
            "unit": self.unit,
            "system": _round(self.system, 2),
            "baseline": _round(self.baseline, 2),
            "x_baseline": self.speedup,
            "goal": self.goal,
            "met": self.met,
        }


@dataclass
class Section:
    """One part of the benchmark: its figures and the details behind them."""

    name: str
    figures: list[Figure] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


# --- 1. drain ----------------------------------------------------------------------------------


def _signal(index: int, invalid_every: int, run: str) -> SignalCreate:
    """A momentum signal; every `invalid_every`-th lacks momentum (it must end ERROR)."""
    features: dict[str, Any] = {"volume_ratio": 0.5 + (index % 7) / 2.0, "rsi": index % 100}
    if invalid_every <= 0 or index % invalid_every:
        features["momentum"] = (index % 101 - 50) / 1000.0
    return SignalCreate(
        signal_key=f"bench-{run}-{index:06d}",
        symbol=f"S{index % 500}",
        strategy="momentum",
        side=OrderSide.SELL if index % 3 == 0 else OrderSide.BUY,
        features=features,
    )


async def seed_signals(pool: asyncpg.Pool, count: int, invalid_every: int) -> None:
    """Insert `count` PENDING signals through the Signals repository."""
    signals = Signals(pool)
    run = uuid.uuid4().hex[:6]
    await bounded(signals.insert(_signal(i, invalid_every, run)) for i in range(count))


async def status_counts(pool: asyncpg.Pool) -> dict[str, int]:
    """Signals by status."""
    rows = await pool.fetch("SELECT status, count(*) AS n FROM signals GROUP BY status")
    return {r["status"]: r["n"] for r in rows}


async def score_one_at_a_time(pool: asyncpg.Pool) -> float:
    """The baseline: claim one signal, score it, record it; repeat until none is left."""
    signals = Signals(pool)
    scorer = MomentumVolumeScorer()
    claim = SignalClaim(limit=1)
    started = time.perf_counter()
    while claimed := await signals.claim(claim):
        (signal,) = claimed
        try:
            result = scorer.score(SignalToScore.model_validate(signal, from_attributes=True))
        except ScoringError as exc:
            await signals.mark_error(SignalFailed(signal_key=signal.signal_key, reason=exc.reason))
            continue
        await signals.mark_scored(
            SignalScored(
                signal_key=signal.signal_key, score=result.score, confidence=result.confidence
            )
        )
    return time.perf_counter() - started


async def _drain_once(
    client: Client, task_queue: str, request: DrainInput
) -> tuple[float, DrainResult | None, str | None, WorkflowHandle[Any, Any]]:
    started = time.perf_counter()
    handle = await client.start_workflow(
        ScoreDrainWorkflow.run,
        request,
        id=f"bench-drain-{uuid.uuid4().hex[:8]}",
        task_queue=task_queue,
    )
    result, failure = await outcome(handle)
    return time.perf_counter() - started, result, failure, handle


async def bench_drain(
    env: WorkflowEnvironment,
    postgres: EmbeddedPostgres,
    count: int,
    invalid_every: int,
    batch: int,
    rounds: int,
) -> Section:
    """Drain `count` signals with ScoreDrainWorkflow, and one at a time as the baseline;
    `rounds` times, each over `count` freshly seeded signals (the figure is the median)."""
    section = Section("drain")
    expected_error = 0 if invalid_every <= 0 else len(range(0, count, invalid_every))
    request = DrainInput(limit=max(count, DrainInput().limit), batch=batch)
    samples: list[dict[str, Any]] = []
    async with (
        migrated_pool(postgres, "bench_drain") as pool,
        migrated_pool(postgres, "bench_drain_baseline") as baseline_pool,
    ):
        with run_paper_broker(start=SESSION_START, rate_limit=0, volatility=0.0) as broker:
            async with running_worker(env.client, pool, broker) as task_queue:
                for round_no in range(1, rounds + 1):
                    print(f"... drain {round_no}/{rounds}: seeding 2 x {count} signals", flush=True)
                    await seed_signals(pool, count, invalid_every)
                    await seed_signals(baseline_pool, count, invalid_every)
                    print(f"... drain {round_no}/{rounds}: baseline, then the workflow", flush=True)
                    baseline_s = await score_one_at_a_time(baseline_pool)
                    drain_s, result, failure, handle = await _drain_once(
                        env.client, task_queue, request
                    )
                    pending = (await status_counts(pool)).get("PENDING", 0)
                    samples.append(
                        {
                            "seconds": round(drain_s, 3),
                            "baseline_seconds": round(baseline_s, 3),
                            "pending_after": pending,
                            "baseline_pending_after": (await status_counts(baseline_pool)).get(
                                "PENDING", 0
                            ),
                            "result": result.model_dump(mode="json", exclude={"funnel"})
                            if result
                            else None,
                            "failure": failure,
                            # each signal of the round ended SCORED or ERROR in this drain
                            "all_final": result is not None
                            and pending == 0
                            and result.scored + result.error == count,
                        }
                    )
                history = await activity_counts(handle)
        counts = await status_counts(pool)
        baseline_counts = await status_counts(baseline_pool)

    done = all(sample["all_final"] for sample in samples)
    median_s = statistics.median(s["seconds"] for s in samples) if done else None
    baseline_s = statistics.median(s["baseline_seconds"] for s in samples)
    met = done and median_s is not None and median_s <= GOAL_DRAIN_S
    section.figures = [
        Figure(
            f"drain {count} signals: time", "s", median_s, baseline_s, f"<= {GOAL_DRAIN_S:g} s", met
        ),
        Figure(
            "drain: signals/s",
            "1/s",
            count / median_s if median_s else None,
            count / baseline_s,
            f">= {count / GOAL_DRAIN_S:.0f}/s",
            met,
            higher_is_better=True,
        ),
    ]
    failures = [s["failure"] for s in samples if s["failure"]]
    section.details = {
        "signals": count,
        "rounds": rounds,
        "expected_error_per_round": expected_error,
        "ledger_after": counts,
        "baseline_ledger_after": baseline_counts,
        "seconds": samples[-1]["seconds"],
        "failure": failures[0] if failures else None,
        "request": {"batch": request.batch, "limit": request.limit},
        "samples": samples,
        "last_run": history,
    }
    return section


# --- 2. reconcile ------------------------------------------------------------------------------


def _trade_id(symbol: str) -> str:
    return f"rc-{symbol.lower()}"


async def seed_trades(pool: asyncpg.Pool, symbols: list[str], as_of: datetime) -> None:
    """One OPEN trade per symbol through the Trades repository, opened at `as_of`.

    The repository stamps created_at with the database's clock; the rows are then dated
    back to `as_of`, as trades opened then would be (reconcile leaves younger ones alone).
    """
    trades = Trades(pool)
    await bounded(
        trades.create(
            TradeCreate(
                trade_id=_trade_id(symbol),
                symbol=symbol,
                workflow_id=trade_workflow_id(_trade_id(symbol)),
                status=TradeStatus.OPEN,
                qty=QTY,
                entry_price=Decimal(100),
                as_of=as_of,
            )
        )
        for symbol in symbols
    )
    await pool.execute("UPDATE trades SET created_at = $1, updated_at = $1", as_of)


def seed_positions(broker: RunningBroker, symbols: list[str]) -> dict[str, tuple[str, Decimal]]:
    """A position of QTY in each symbol with its protective GTC sell stop (10 % under the
    fill), as a guarded trade has; (stop order id, stop price) by symbol. Eight threads."""
    local = threading.local()

    def open_one(symbol: str) -> tuple[str, tuple[str, Decimal]]:
        if not hasattr(local, "admin"):
            local.admin = AdminClient(broker.trading_url, broker.key_id, broker.secret_key)
            local.trading = TradingClient(
                broker.key_id, broker.secret_key, paper=True, url_override=broker.trading_url
            )
        fill = local.admin.open_position(symbol, QTY)
        stop_price = protective_stop_price(Decimal(fill["filled_avg_price"]) * Decimal("0.9"))
        stop: Any = local.trading.submit_order(
            StopOrderRequest(
                symbol=symbol,
                qty=float(QTY),
                side=SdkOrderSide.SELL,
                time_in_force=TimeInForce.GTC,
                stop_price=float(stop_price),
            )
        )
        return symbol, (str(stop.id), stop_price)

    stops: dict[str, tuple[str, Decimal]] = {}
    with ThreadPoolExecutor(max_workers=8) as pool:
        for start in range(0, len(symbols), SAME_INSTANT):
            stops.update(pool.map(open_one, symbols[start : start + SAME_INSTANT]))
            # The manual clock stands still: step it, so that no more orders share one instant
            # than a page of the open-orders listing holds (it pages by submission time).
            broker.admin.advance(1)
    return stops


async def record_stops(
    pool: asyncpg.Pool, stops: dict[str, tuple[str, Decimal]], as_of: datetime
) -> None:
    """Each held trade's stop in the ledger, as its guard would have recorded it."""
    trades = Trades(pool)
    await bounded(
        trades.record_protection(
            TradeProtection(
                trade_id=_trade_id(symbol),
                stop_price=stops[symbol][1],
                stop_order_id=stops[symbol][0],
                as_of=as_of,
            )
        )
        for symbol in stops
    )


async def reconcile_by_lookups(pool: asyncpg.Pool, gateway: AlpacaGateway) -> dict[str, Any]:
    """The baseline: one position lookup per open trade; close the trade on a definite 404."""
    trades = Trades(pool)
    started = time.perf_counter()
    now = datetime.now(UTC)
    checked = closed = unknown = 0
    for trade in await trades.list_open():
        checked += 1
        probe = await asyncio.to_thread(gateway.probe_position, trade.symbol)
        if probe.outcome is ProbeOutcome.UNKNOWN:
            unknown += 1  # unknown is never absent
            continue
        if probe.outcome is ProbeOutcome.ABSENT and now - trade.created_at >= DEFAULT_GRACE:
            written = await trades.close(
                TradeClose(trade_id=trade.id, close_reason=CloseReason.GHOST, closed_at=now)
            )
            closed += written.applied
    return {
        "seconds": time.perf_counter() - started,
        "checked": checked,
        "closed": closed,
        "unknown": unknown,
    }


async def _reconcile_once(client: Client, task_queue: str) -> dict[str, Any]:
    started = time.perf_counter()
    handle = await client.start_workflow(
        ReconcileWorkflow.run,
        ReconcileInput(run_source="bench"),
        id=f"bench-reconcile-{uuid.uuid4().hex[:8]}",
        task_queue=task_queue,
    )
    result, failure = await outcome(handle)
    return {
        "seconds": round(time.perf_counter() - started, 3),
        "result": result.model_dump(mode="json", exclude={"plan"}) if result else None,
        "failure": failure,
        "handle": handle,
    }


async def bench_reconcile(
    env: WorkflowEnvironment, postgres: EmbeddedPostgres, count: int, ghosts: int, rounds: int
) -> Section:
    """One ReconcileWorkflow over `count` open trades, and per-trade lookups as the baseline;
    `rounds` times, each facing `ghosts` new ghosts (the figure is the median)."""
    section = Section("reconcile")
    symbols = symbols_for(count + ghosts * (rounds - 1))
    held = symbols[: count - ghosts]
    # Each round's ghosts: the first round's fill the count, later ones replace those closed.
    ghost_rounds = [symbols[count - ghosts + r * ghosts :][:ghosts] for r in range(rounds)]
    as_of = datetime.now(UTC) - timedelta(hours=1)
    print(f"... reconcile: seeding 2 x {count} trades, {len(held)} broker positions", flush=True)
    samples: list[dict[str, Any]] = []
    async with (
        migrated_pool(postgres, "bench_reconcile") as pool,
        migrated_pool(postgres, "bench_reconcile_baseline") as baseline_pool,
    ):
        for ledger_pool in (pool, baseline_pool):
            await seed_trades(ledger_pool, held, as_of)
        with run_paper_broker(
            start=SESSION_START, rate_limit=0, volatility=0.0, cash=Decimal(10**9)
        ) as broker:
            stops = await asyncio.to_thread(seed_positions, broker, held)
            for ledger_pool in (pool, baseline_pool):
                await record_stops(ledger_pool, stops, as_of)
            gateway = AlpacaGateway(paper_endpoint(broker))
            async with running_worker(env.client, pool, broker) as task_queue:
                for round_no, round_ghosts in enumerate(ghost_rounds, start=1):
                    for ledger_pool in (pool, baseline_pool):
                        await seed_trades(ledger_pool, round_ghosts, as_of)
                    print(f"... reconcile {round_no}/{rounds}: baseline, then the workflow")
                    baseline = await reconcile_by_lookups(baseline_pool, gateway)
                    await asyncio.to_thread(broker.admin.reset_requests)
                    sample = await _reconcile_once(env.client, task_queue)
                    calls = await asyncio.to_thread(broker.admin.requests)
                    handle = sample.pop("handle")
                    result = sample["result"]
                    samples.append(
                        sample
                        | {
                            "baseline": {**baseline, "broker_calls": baseline["checked"]},
                            "broker_calls": calls.get("total"),
                            "broker_calls_by_route": calls.get("by_route"),
                            # the ghosts have no workflow: a converged run closes each one
                            "converged": result is not None
                            and result["ok"]
                            and result["closed"] == ghosts,
                        }
                    )
                history = await activity_counts(handle)
        still_open = len(await Trades(pool).list_open())

    converged = all(sample["converged"] for sample in samples)
    reconcile_s = statistics.median(s["seconds"] for s in samples) if converged else None
    section.figures = [
        Figure(
            f"reconcile {count} trades ({ghosts} ghosts): one run",
            "s",
            reconcile_s,
            statistics.median(s["baseline"]["seconds"] for s in samples),
            f"<= {GOAL_RECONCILE_S:g} s",
            reconcile_s is not None and reconcile_s <= GOAL_RECONCILE_S,
        )
    ]
    failures = [s["failure"] for s in samples if s["failure"]]
    section.details = {
        "trades": count,
        "broker_positions": len(held),
        "broker_open_orders": len(stops),
        "ghosts": ghosts,
        "rounds": rounds,
        "seconds": samples[-1]["seconds"],
        "failure": failures[0] if failures else None,
        "open_after": still_open,
        "samples": samples,
        "last_run": history,
    }
    return section


# --- 3. trade start ----------------------------------------------------------------------------


class AcceptWatch(StreamRecorder):
    """trade_updates through alpaca-py: when the broker first reported each client_order_id."""

    def __init__(self, broker: RunningBroker) -> None:
        super().__init__(broker)
        self.first_seen: dict[str, float] = {}

    async def _on_update(self, update: TradeUpdate) -> None:
        cid = update.order.client_order_id
        if cid not in self.first_seen:
            self.first_seen[cid] = time.perf_counter()

    async def accepted_at(self, cid: str) -> float:
        """The moment the broker reported `cid` (waits for it)."""
        deadline = time.monotonic() + ACCEPT_TIMEOUT_S
        while cid not in self.first_seen:
            if time.monotonic() > deadline:
                raise SystemExit(f"the broker never reported order {cid}")
            await asyncio.sleep(0.002)
        return self.first_seen[cid]


@dataclass
class StartSamples:
    """Start-to-accepted latencies (ms) of both paths."""

    trade_ms: list[float] = field(default_factory=list)
    direct_ms: list[float] = field(default_factory=list)
    trade_ids: list[str] = field(default_factory=list)


async def entry_path(handle: WorkflowHandle[Any, Any]) -> dict[str, float]:
    """Milliseconds from the trade workflow's start to each step before its entry is sent,
    by the server's event times: the first workflow task, the ledger row, the submit."""
    steps: dict[str, float] = {}
    scheduled: dict[int, str] = {}
    began: datetime | None = None
    async for event in handle.fetch_history_events():
        at = event.event_time.ToDatetime(UTC)
        began = began or at
        kind = event.WhichOneof("attributes")
        name = ""
        if kind == "workflow_task_started_event_attributes":
            name = "first workflow task started"
        elif kind == "activity_task_scheduled_event_attributes":
            activity_name = event.activity_task_scheduled_event_attributes.activity_type.name
            scheduled[event.event_id] = activity_name
            name = f"{activity_name} scheduled"
        elif kind in ("activity_task_started_event_attributes", ACTIVITY_COMPLETED):
            ref = getattr(event, kind).scheduled_event_id
            name = f"{scheduled[ref]} {kind.split('_')[2]}"
        if name and name not in steps:
            steps[name] = (at - began).total_seconds() * 1000
        if name == "submit_order completed":
            return steps
    return steps


async def _time_trade(
    link: TradeLink, watch: AcceptWatch, symbol: str, stop: Decimal
) -> tuple[str, float]:
    trade_id = f"{symbol.lower()}-{uuid.uuid4().hex[:10]}"
    spec = TradeSpec(trade_id=trade_id, symbol=symbol, qty=QTY, stop_price=stop)
    cid = client_order_id(trade_id, Leg.ENTRY, 0)
    started = time.perf_counter()
    await link.start(spec, once=True)
    return trade_id, (await watch.accepted_at(cid) - started) * 1000


async def _time_direct(
    trading: TradingClient, watch: AcceptWatch, symbol: str, stop: Decimal
) -> float:
    cid = f"direct-{uuid.uuid4().hex[:16]}"
    request = MarketOrderRequest(
        symbol=symbol,
        qty=float(QTY),
        side=SdkOrderSide.BUY,
        time_in_force=TimeInForce.GTC,
        order_class=OrderClass.OTO,
        stop_loss=StopLossRequest(stop_price=float(stop)),
        client_order_id=cid,
    )
    started = time.perf_counter()
    await asyncio.to_thread(trading.submit_order, request)
    return (await watch.accepted_at(cid) - started) * 1000


async def _terminate(client: Client, trade_ids: list[str]) -> None:
    for trade_id in trade_ids:
        handle = client.get_workflow_handle(trade_workflow_id(trade_id))
        with contextlib.suppress(Exception):
            if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                await handle.terminate("benchmark finished")


@contextlib.asynccontextmanager
async def accept_watch(broker: RunningBroker) -> AsyncIterator[AcceptWatch]:
    """A trade_updates listener, started and stopped around the samples."""
    watch = AcceptWatch(broker)
    await asyncio.to_thread(watch.start)
    try:
        yield watch
    finally:
        await asyncio.to_thread(watch.stop)


async def bench_start(
    env: WorkflowEnvironment, postgres: EmbeddedPostgres, starts: int, warmup: int, gap_s: float
) -> Section:
    """Alternate trade starts (TradeLink) and direct submits; time each to its `new` event."""
    section = Section("trade start")
    total = starts + warmup
    symbols = symbols_for(2 * total)
    samples = StartSamples()
    print(f"... trade start: {warmup} + {starts} trades and as many direct submits", flush=True)
    async with migrated_pool(postgres, "bench_start") as pool:
        with run_paper_broker(
            start=SESSION_START,
            rate_limit=0,
            volatility=0.0,
            symbols=tuple(symbols),
            cash=Decimal(10**9),
        ) as broker:
            gateway = AlpacaGateway(paper_endpoint(broker))
            stops = {
                q.symbol: protective_stop_price(q.bid * Decimal("0.95"))
                for q in await asyncio.to_thread(gateway.latest_quotes, symbols)
            }
            trading = TradingClient(
                broker.key_id, broker.secret_key, paper=True, url_override=broker.trading_url
            )
            async with (
                running_worker(env.client, pool, broker) as task_queue,
                accept_watch(broker) as watch,
            ):
                link = TradeLink(env.client, task_queue)
                try:
                    for i in range(total):
                        trade_symbol, direct_symbol = symbols[2 * i], symbols[2 * i + 1]
                        direct_ms = await _time_direct(
                            trading, watch, direct_symbol, stops[direct_symbol]
                        )
                        await asyncio.sleep(gap_s)
                        trade_id, trade_ms = await _time_trade(
                            link, watch, trade_symbol, stops[trade_symbol]
                        )
                        samples.trade_ids.append(trade_id)
                        if i >= warmup:
                            samples.direct_ms.append(direct_ms)
                            samples.trade_ms.append(trade_ms)
                        await asyncio.sleep(gap_s)
                    handles = [
                        env.client.get_workflow_handle(trade_workflow_id(t))
                        for t in samples.trade_ids[warmup:]
                    ]
                    paths = [await entry_path(h) for h in handles]
                    history = await activity_counts(handles[-1])
                finally:
                    await _terminate(env.client, samples.trade_ids)

    quantiles = {"p50": 0.5, "p90": 0.9, "p99": 0.99}
    p50 = percentile(samples.trade_ms, 0.5)
    section.figures = [
        Figure(
            f"trade start -> entry accepted {name}",
            "ms",
            percentile(samples.trade_ms, q),
            percentile(samples.direct_ms, q),
            f"<= {GOAL_START_P50_MS:g} ms" if name == "p50" else "-",
            (p50 is not None and p50 <= GOAL_START_P50_MS) if name == "p50" else None,
        )
        for name, q in quantiles.items()
    ]
    section.details = {
        "starts": starts,
        "warmup": warmup,
        "gap_s": gap_s,
        "trade_ms": [round(v, 1) for v in samples.trade_ms],
        "direct_ms": [round(v, 1) for v in samples.direct_ms],
        # median over the counted trades; each step once, in the order it happened
        "entry_path_ms": {
            step: round(statistics.median(p[step] for p in paths if step in p), 1)
            for step in paths[-1]
        },
        "last_trade_history": history,
    }
    return section


# --- running and reporting ---------------------------------------------------------------------

PARTS = ("drain", "reconcile", "start")


async def run(args: argparse.Namespace, parts: list[str]) -> list[Section]:
    """Start the servers once, run the chosen parts, stop everything (also on error)."""
    sections: list[Section] = []
    async with bench_servers("throughput-bench-") as (env, postgres):
        benches: dict[str, Callable[[], Awaitable[Section]]] = {
            "drain": lambda: bench_drain(
                env, postgres, args.signals, args.invalid_every, args.drain_batch, args.rounds
            ),
            "reconcile": lambda: bench_reconcile(
                env, postgres, args.trades, args.ghosts, args.rounds
            ),
            "start": lambda: bench_start(env, postgres, args.starts, args.warmup, args.gap),
        }
        for part in parts:
            sections.append(await benches[part]())
    return sections


def report(sections: list[Section]) -> None:
    """Print the table and the JSON."""
    header = f"{'figure':<46}{'unit':>5}{'system':>11}{'baseline':>11}{'x base':>8}  goal"
    print("throughput benchmark (baseline: the design this system replaces, same run)")
    print(header)
    print("-" * (len(header) + 14))
    for section in sections:
        for figure in section.figures:
            row = figure.as_json()
            met = {True: "met", False: "MISSED", None: ""}[figure.met]
            system = "failed" if row["system"] is None else row["system"]
            print(
                f"{row['figure']:<46}{row['unit']:>5}{system!s:>11}"
                f"{row['baseline']!s:>11}{row['x_baseline'] or '-'!s:>8}  {row['goal']} {met}"
            )
    for section in sections:
        if section.details.get("failure"):
            print(
                f"{section.name}: the workflow failed after {section.details['seconds']:.1f} s: "
                f"{section.details['failure']}"
            )
    print(
        json.dumps(
            {
                "sections": [
                    {
                        "name": s.name,
                        "figures": [f.as_json() for f in s.figures],
                        "details": s.details,
                    }
                    for s in sections
                ]
            },
            indent=2,
            default=str,
        )
    )


def main() -> None:
    """Parse arguments, run the benchmark, print the results."""
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Each figure is printed beside its baseline; see the module docstring.",
    )
    parser.add_argument("--signals", type=int, default=10_000, help="signals to drain")
    parser.add_argument(
        "--drain-batch", type=int, default=DrainInput().batch, help="signals per score activity"
    )
    parser.add_argument(
        "--invalid-every",
        type=int,
        default=20,
        help="every Nth signal lacks a feature and must end ERROR (0: none)",
    )
    parser.add_argument("--trades", type=int, default=5_000, help="open trades to reconcile")
    parser.add_argument(
        "--ghosts", type=int, default=50, help="of those, trades with no broker position"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="drain and reconcile runs (each with its baseline; the figures are the medians)",
    )
    parser.add_argument("--starts", type=int, default=30, help="trade starts to time")
    parser.add_argument("--warmup", type=int, default=2, help="uncounted starts first")
    parser.add_argument("--gap", type=float, default=0.3, help="seconds between start samples")
    parser.add_argument(
        "--only", default=",".join(PARTS), help=f"comma-separated parts: {', '.join(PARTS)}"
    )
    args = parser.parse_args()
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    if unknown := sorted(set(parts) - set(PARTS)):
        parser.error(f"unknown part(s): {', '.join(unknown)}")
    if not 0 <= args.ghosts <= args.trades:
        parser.error("--ghosts must be between 0 and --trades")
    if min(args.starts, args.signals, args.trades, args.rounds) < 1:
        parser.error("--starts, --signals, --trades and --rounds must be positive")
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    try:
        sections = asyncio.run(run(args, parts))
    except KeyboardInterrupt:
        raise SystemExit("interrupted; servers stopped") from None
    report(sections)


if __name__ == "__main__":
    main()
