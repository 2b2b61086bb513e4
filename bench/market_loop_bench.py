"""Benchmark one market-loop run's time from clock to entries at 50 and 80 symbols.

Runs on the embedded stack (bench/stack.py: Temporal dev server, embedded PostgreSQL, the
production worker) with an in-process paper broker whose manual clock stands at 10:30 New York
on Tuesday 5 March 2024, with no rate limit. Its symbols (bench.stack.symbols_for) follow a
deterministic price path: two of every five replay a generated CSV (an opening range from 09:30
to 09:45, inside it until 10:25, then a break above it on five times the volume, as
tests/integration/market/test_ranked_entries.py builds it), so ORB fires on exactly those; the
rest follow the broker's seeded random walk (seed `--seed`), on which momentum and the trend
pullback fire where the walk says so, the same way every run.

One MarketLoopWorkflow run per scenario (strategies orb, trend_pullback, momentum; reconcile
on; max `--max-entries` open positions and entries per run, the other limits the defaults), on
a fresh ledger, a fresh broker account and a fresh task queue. The figures:
- wall time: the client's start call to the result, and clock -> entries (from the workflow
  history: get_clock scheduled to the last start_trade completed);
- the phases, from the history's event times: get_clock, broker truth, the reconcile child,
  each scan_watchlist (one per timeframe: it reads the bars and runs the strategies in the
  activity; its window, bars read, signals and result bytes), the one insert_signals call, the
  drain child, the entry reads (control, candidates, context, quotes), the start_trade calls,
  the one record_signal_decisions call (every decision's path and audit row, one
  transaction) and the recorded run. The loop calls one thing at a time, so each call costs
  the run the time from the previous call's close to its own (the workflow task that
  schedules it plus the call): the rows add up to the workflow's start -> close;
- bars read (MarketLoopResult.bars_read), the largest payload in the history (against
  Temporal's 2 MB limit), signals created (by strategy), entered and skipped by reason, broker
  /v2 calls by route (during the run, the started trades' own calls included), history events.

Baseline, side by side in the same run: the same loop at 5 symbols (the first 5 of the 50, two
of which break out), so the figure shows how the loop scales with the watchlist; and the
momentum-only loop at 50 symbols (one daily scan, no ORB/pullback). A fourth column runs the
full loop at 80 symbols (`--large-symbols`; 0 leaves it out), the size whose bars used to
exceed the payload limit when they crossed the workflow. A warm-up run (5 symbols, uncounted)
loads the worker's sandbox first. Each scenario runs `--rounds` times (its
figures are the medians); the machine may be shared, so compare figures within one run.

Usage: python bench/market_loop_bench.py [--symbols 50] [--baseline-symbols 5]
                                         [--large-symbols 80] [--rounds 3] [--quick]
                                         [--json [PATH]]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import logging
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from bench.stack import SESSION_START, bench_servers, migrated_pool, running_worker, symbols_for
from contracts.control import WORKFLOW_ID as CONTROL_WORKFLOW_ID
from contracts.trade import workflow_id as trade_workflow_id
from devstack.postgres import EmbeddedPostgres
from paperbroker.testing import run_paper_broker
from trading.entry import MarketLoopInput, MarketLoopResult
from workflows.market_loop import MarketLoopWorkflow

STRATEGIES = ("orb", "trend_pullback", "momentum")
BREAKOUT_OF_FIVE = 2  # symbols 0 and 1 of every five replay the breakout
SESSION_OPEN = datetime(2024, 3, 5, 14, 30, tzinfo=UTC)  # 09:30 New York
BREAKOUT = datetime(2024, 3, 5, 15, 25, tzinfo=UTC)  # 10:25 New York
SESSION_CLOSE = datetime(2024, 3, 5, 21, 0, tzinfo=UTC)
RANGE_LOW, RANGE_HIGH = Decimal("100.00"), Decimal("101.00")
INSIDE_LOW, INSIDE_HIGH = Decimal("100.20"), Decimal("100.80")
BREAKOUT_CLOSE = Decimal("101.50")
CSV_FIELDS = ("symbol", "timestamp", "open", "high", "low", "close", "volume")
ACTIVITY_CLOSED = tuple(
    f"activity_task_{end}_event_attributes"
    for end in ("completed", "failed", "timed_out", "canceled")
)
CHILD_CLOSED = tuple(
    f"child_workflow_execution_{end}_event_attributes"
    for end in ("completed", "failed", "timed_out", "canceled", "terminated")
)
# Activities of the entry phase, each shown on its own row (in the order the loop calls them).
ENTRY_READS = ("control_view", "list_entry_candidates", "entry_context", "latest_quotes")
PER_CALL = ("insert_signals", "start_trade", "record_signal_decisions")
SCAN = "scan_watchlist"  # one per timeframe: reads the bars, runs the strategies


# --- the price path ----------------------------------------------------------------------------


def breakout_symbols(symbols: list[str]) -> list[str]:
    """The symbols whose price path is the replayed ORB breakout."""
    return [s for i, s in enumerate(symbols) if i % 5 < BREAKOUT_OF_FIVE]


def breakout_rows(symbol: str) -> Iterator[dict[str, str]]:
    """One session of minute bars: a 09:30-09:45 range, inside it until 10:25, then a close
    above it on five times the volume (the broker keeps a bar's open and close)."""
    at, last = SESSION_OPEN, (RANGE_LOW + RANGE_HIGH) / 2
    while at < SESSION_CLOSE:
        minute = int((at - SESSION_OPEN).total_seconds() // 60)
        volume = 1000 + minute % 3
        if at < SESSION_OPEN + timedelta(minutes=15):
            close = RANGE_HIGH if minute % 2 == 0 else RANGE_LOW
        elif at < BREAKOUT:
            close = INSIDE_HIGH if minute % 2 == 0 else INSIDE_LOW
        elif at == BREAKOUT:
            close, volume = BREAKOUT_CLOSE, 5000
        else:
            close = BREAKOUT_CLOSE
        yield {
            "symbol": symbol,
            "timestamp": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "open": str(last),
            "high": str(max(last, close)),
            "low": str(min(last, close)),
            "close": str(close),
            "volume": str(volume),
        }
        at, last = at + timedelta(minutes=1), close


def write_replay(path: Path, symbols: list[str]) -> Path:
    """The replay CSV of the breakout symbols among `symbols`."""
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for symbol in breakout_symbols(symbols):
            writer.writerows(breakout_rows(symbol))
    return path


# --- reading the history -----------------------------------------------------------------------


@dataclass
class Step:
    """One activity or child workflow of the run: what, and from scheduled to closed."""

    name: str
    summary: str
    began: datetime
    ended: datetime | None = None
    input_bytes: int = 0
    result_bytes: int = 0
    timeframe: str = ""  # a scan's timeframe
    window: str = ""  # a scan's bars start -> now
    bars_read: int | None = None  # a scan's ScanResult.bars_read
    signals: int | None = None  # a scan's signals
    failed: bool = False

    @property
    def seconds(self) -> float:
        return 0.0 if self.ended is None else (self.ended - self.began).total_seconds()


@dataclass
class RunHistory:
    """The run's steps in order, its start and close, and its workflow tasks."""

    steps: list[Step] = field(default_factory=list)
    started: datetime | None = None
    closed: datetime | None = None
    events: int = 0
    history_bytes: int = 0
    workflow_tasks: int = 0
    workflow_task_seconds: float = 0.0
    task_queue_waits: list[float] = field(default_factory=list)  # scheduled -> started
    task_runs: list[float] = field(default_factory=list)  # started -> completed
    largest_payload: tuple[int, str] = (0, "")  # bytes, and what carried them

    def saw_payloads(self, payloads: Any, what: str) -> None:
        """Keep the largest payload (input or result) the history holds."""
        size = sum(len(p.data) for p in payloads)
        if size > self.largest_payload[0]:
            self.largest_payload = (size, what)


def _summary(payload: Payload) -> str:
    with contextlib.suppress(ValueError):
        return str(json.loads(payload.data))
    return ""


async def read_history(handle: WorkflowHandle[Any, Any]) -> RunHistory:
    """Every activity and child workflow of a finished run, timed by the server's events."""
    run = RunHistory()
    open_steps: dict[int, Step] = {}
    task_scheduled: datetime | None = None
    task_started: datetime | None = None
    async for event in handle.fetch_history_events():
        run.events += 1
        run.history_bytes += event.ByteSize()
        at = event.event_time.ToDatetime(UTC)
        kind = event.WhichOneof("attributes") or ""
        if kind == "workflow_execution_started_event_attributes":
            run.started = at
            run.saw_payloads(
                event.workflow_execution_started_event_attributes.input.payloads, "input"
            )
        elif kind.startswith("workflow_execution_") and run.started is not None:
            run.closed = at
            if kind == "workflow_execution_completed_event_attributes":
                completed = event.workflow_execution_completed_event_attributes
                run.saw_payloads(completed.result.payloads, "MarketLoopResult")
        elif kind == "workflow_task_scheduled_event_attributes":
            task_scheduled = at
        elif kind == "workflow_task_started_event_attributes" and task_scheduled is not None:
            task_started = at
            run.task_queue_waits.append((at - task_scheduled).total_seconds())
        elif kind == "workflow_task_completed_event_attributes" and task_scheduled is not None:
            run.workflow_tasks += 1
            run.workflow_task_seconds += (at - task_scheduled).total_seconds()
            if task_started is not None:
                run.task_runs.append((at - task_started).total_seconds())
        elif kind == "activity_task_scheduled_event_attributes":
            scheduled = event.activity_task_scheduled_event_attributes
            name = scheduled.activity_type.name
            step = Step(name, _summary(event.user_metadata.summary), at)
            step.input_bytes = sum(len(p.data) for p in scheduled.input.payloads)
            run.saw_payloads(scheduled.input.payloads, f"{name} input")
            if name == SCAN:
                (arg,) = scheduled.input.payloads
                scan_request = json.loads(arg.data)
                step.timeframe = scan_request["timeframe"]
                step.window = f"{scan_request['start']} -> {scan_request['now']}"
            open_steps[event.event_id] = step
            run.steps.append(step)
        elif kind == "start_child_workflow_execution_initiated_event_attributes":
            child = event.start_child_workflow_execution_initiated_event_attributes
            step = Step(child.workflow_type.name, "child workflow", at)
            open_steps[event.event_id] = step
            run.steps.append(step)
        elif kind in ACTIVITY_CLOSED:
            step = open_steps[getattr(event, kind).scheduled_event_id]
            step.ended = at
            step.failed = kind != ACTIVITY_CLOSED[0]
            if kind == ACTIVITY_CLOSED[0]:
                payloads = event.activity_task_completed_event_attributes.result.payloads
                step.result_bytes = sum(len(p.data) for p in payloads)
                run.saw_payloads(payloads, f"{_label(step)} result")
                if step.name == SCAN and payloads:
                    scanned = json.loads(payloads[0].data)
                    step.bars_read = scanned["bars_read"]
                    step.signals = len(scanned["signals"])
        elif kind in CHILD_CLOSED:
            step = open_steps[getattr(event, kind).initiated_event_id]
            step.ended = at
            step.failed = kind != CHILD_CLOSED[0]
    return run


def _label(step: Step) -> str:
    if step.name == SCAN:
        return f"{SCAN} {step.timeframe}"
    if step.name in ("ReconcileWorkflow", "ScoreDrainWorkflow"):
        return f"{step.name} (child)"
    return step.name


def phases(run: RunHistory) -> dict[str, dict[str, Any]]:
    """Seconds per phase of the loop, in its order (one row per activity type, per bars
    timeframe and per child workflow).

    The loop calls one thing at a time, so each step costs the run the time from the previous
    step's close (or the run's start) to its own close: the workflow task that schedules it
    plus the call itself. The rows' `seconds` (those costs summed) and the `tail` row add up to
    the workflow's start -> close; `activity_s` is the median scheduled -> closed of one call,
    `per_call_s` the median cost of one call.
    """
    rows: dict[str, dict[str, Any]] = {}
    costs: dict[str, list[float]] = {}
    previous = run.started
    for step in run.steps:
        if step.ended is None or previous is None:
            continue
        label = _label(step)
        cost = (step.ended - previous).total_seconds()
        previous = step.ended
        costs.setdefault(label, []).append(cost)
        row = rows.setdefault(label, {"seconds": 0.0, "calls": 0, "activity": []})
        row["seconds"] += cost
        row["calls"] += 1
        row["activity"].append(step.seconds)
        if step.failed:
            row["failed"] = row.get("failed", 0) + 1
        row["payload_bytes"] = max(row.get("payload_bytes", 0), step.input_bytes, step.result_bytes)
        if step.bars_read is not None:
            row["bars"] = row.get("bars", 0) + step.bars_read
            row["signals"] = row.get("signals", 0) + (step.signals or 0)
            row["window"] = step.window
    for label, row in rows.items():
        row["seconds"] = round(row["seconds"], 3)
        row["activity_s"] = round(statistics.median(row.pop("activity")), 4)
        row["per_call_s"] = round(statistics.median(costs[label]), 4)
    if run.closed is not None and previous is not None:
        rows["tail (last workflow task)"] = {
            "seconds": round((run.closed - previous).total_seconds(), 3),
            "calls": 1,
        }
    return rows


def clock_to_entries(run: RunHistory) -> float | None:
    """Seconds from get_clock scheduled to the last start_trade closed (None: no entry)."""
    clock = next((s for s in run.steps if s.name == "get_clock"), None)
    starts = [s.ended for s in run.steps if s.name == "start_trade" and s.ended is not None]
    if clock is None or not starts:
        return None
    return (max(starts) - clock.began).total_seconds()


# --- one run -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """One column of the table: how many symbols, which strategies."""

    name: str
    symbols: int
    strategies: tuple[str, ...]


async def _terminate(client: Client, workflow_ids: list[str]) -> None:
    for workflow_id in workflow_ids:
        handle = client.get_workflow_handle(workflow_id)
        with contextlib.suppress(Exception):
            if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                await handle.terminate("benchmark finished")


def _outcomes(result: MarketLoopResult) -> dict[str, Any]:
    skipped = Counter(o.decision.reason for o in result.decisions if not o.decision.enter)
    entered = Counter(o.strategy for o in result.decisions if o.decision.enter)
    return {
        "bars_read": result.bars_read,
        "signals_created": result.signals_created,
        "signals_by_strategy": dict(sorted(result.signals_by_strategy.items())),
        "decided": len(result.decisions),
        "entered": result.entered,
        "entered_by_strategy": dict(sorted(entered.items())),
        "skipped": result.skipped,
        "skipped_by_reason": dict(skipped.most_common()),
        "reason": result.reason,
        "reconcile": result.reconcile,
        "drain": result.drain,
        "notes": result.notes,
    }


async def run_once(
    env: WorkflowEnvironment,
    postgres: EmbeddedPostgres,
    scenario: Scenario,
    universe: list[str],
    replay: Path,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """One loop run on a fresh ledger, broker account and task queue; its figures."""
    watchlist = universe[: scenario.symbols]
    request = MarketLoopInput(
        watchlist=watchlist,
        strategies=list(scenario.strategies),
        reconcile=True,
        run_source="bench",
        max_open_positions=args.max_entries,
        max_entries_per_run=args.max_entries,
    )
    trade_ids: list[str] = []
    async with migrated_pool(postgres, "bench_market_loop") as pool:
        with run_paper_broker(
            start=SESSION_START,
            rate_limit=0,
            seed=args.seed,
            symbols=tuple(watchlist),
            replay_csv=replay,
        ) as broker:
            async with running_worker(env.client, pool, broker) as task_queue:
                await asyncio.to_thread(broker.admin.reset_requests)
                began = time.perf_counter()
                handle = await env.client.start_workflow(
                    MarketLoopWorkflow.run,
                    request,
                    id=f"bench-market-loop-{uuid.uuid4().hex[:8]}",
                    task_queue=task_queue,
                )
                result = await handle.result()
                wall_s = time.perf_counter() - began
                calls = await asyncio.to_thread(broker.admin.requests)
                trade_ids = [t for o in result.decisions for t in o.trade_ids]
                try:
                    history = await read_history(handle)
                finally:
                    await _terminate(
                        env.client,
                        [*map(trade_workflow_id, trade_ids), CONTROL_WORKFLOW_ID],
                    )
    return {
        "wall_s": round(wall_s, 3),
        "workflow_s": round((history.closed - history.started).total_seconds(), 3)
        if history.closed and history.started
        else None,
        "clock_to_entries_s": _round(clock_to_entries(history)),
        "phases": phases(history),
        **_outcomes(result),
        "broker_calls": calls.get("total"),
        "broker_calls_by_route": calls.get("by_route"),
        "largest_payload_bytes": history.largest_payload[0],
        "largest_payload": history.largest_payload[1],
        "history_events": history.events,
        "history_bytes": history.history_bytes,
        "workflow_tasks": history.workflow_tasks,
        "workflow_task_s": round(history.workflow_task_seconds, 3),
        "workflow_task_wait_median_s": _round(statistics.median(history.task_queue_waits), 4)
        if history.task_queue_waits
        else None,
        "workflow_task_run_median_s": _round(statistics.median(history.task_runs), 4)
        if history.task_runs
        else None,
    }


def _round(value: float | None, places: int = 3) -> float | None:
    return None if value is None else round(value, places)


# --- rounds and medians ------------------------------------------------------------------------


def _median(values: list[Any]) -> Any:
    numbers = [v for v in values if isinstance(v, int | float)]
    if not numbers:
        return values[-1] if values else None
    middle = statistics.median(numbers)
    return round(middle, 3) if isinstance(middle, float) else middle


def summarize(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """The medians of a scenario's rounds (phases row by row); the last round's counts."""
    last = samples[-1]
    summary = dict(last)
    for key in (
        "wall_s",
        "workflow_s",
        "clock_to_entries_s",
        "workflow_task_s",
        "largest_payload_bytes",
        "workflow_task_wait_median_s",
        "workflow_task_run_median_s",
    ):
        summary[key] = _median([s[key] for s in samples])
    summary["phases"] = {
        label: {
            name: _median([s["phases"].get(label, {}).get(name) for s in samples]) for name in row
        }
        for label, row in last["phases"].items()
    }
    summary["rounds"] = len(samples)
    summary["samples_wall_s"] = [s["wall_s"] for s in samples]
    return summary


async def run(args: argparse.Namespace, scenarios: list[Scenario]) -> dict[str, dict[str, Any]]:
    """Start the servers once; a warm-up, then each round runs every scenario in turn."""
    universe = symbols_for(max(s.symbols for s in scenarios))
    samples: dict[str, list[dict[str, Any]]] = {s.name: [] for s in scenarios}
    with tempfile.TemporaryDirectory(prefix="market-loop-bench-") as tmp:
        replay = write_replay(Path(tmp) / "breakouts.csv", universe)
        async with bench_servers("market-loop-bench-") as (env, postgres):
            print("... warm-up: one uncounted run at 5 symbols", file=sys.stderr, flush=True)
            warm_up = Scenario("warm-up", 5, STRATEGIES)
            await run_once(env, postgres, warm_up, universe, replay, args)
            for round_no in range(1, args.rounds + 1):
                for scenario in scenarios:
                    print(
                        f"... round {round_no}/{args.rounds}: {scenario.name}",
                        file=sys.stderr,
                        flush=True,
                    )
                    samples[scenario.name].append(
                        await run_once(env, postgres, scenario, universe, replay, args)
                    )
    return {name: summarize(runs) for name, runs in samples.items()}


# --- reporting ---------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _phase_cell(row: dict[str, Any] | None) -> str:
    if not row:
        return "-"
    text = f"{row['seconds']:.3f}"
    if row.get("calls", 1) > 1:
        text += f" ({row['calls']:g}x)"
    if row.get("failed"):
        text += " FAILED"
    return text


def _counts(counter: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counter.items()) or "-"


def report(results: dict[str, dict[str, Any]], scenarios: list[Scenario]) -> None:
    """Print the table: one column per scenario, the first (largest) against the baseline."""
    names = [s.name for s in scenarios]
    main, base = results[names[0]], results[names[1]] if len(names) > 1 else None
    width = 24
    print(f"market-loop benchmark: one run, {main['rounds']} round(s), medians; 2 cores shared")
    header = f"{'figure':<48}" + "".join(f"{n:>{width}}" for n in names)
    if base is not None:
        header += f"{names[0] + ' / ' + names[1]:>{width}}"
    print(header)
    print("-" * len(header))

    def line(label: str, cells: list[str], ratio: float | None = None) -> None:
        text = f"{label:<48}" + "".join(f"{c:>{width}}" for c in cells)
        if base is not None:
            text += f"{'-' if ratio is None else f'{ratio:.2f}x':>{width}}"
        print(text)

    def ratio(a: Any, b: Any) -> float | None:
        return a / b if isinstance(a, int | float) and isinstance(b, int | float) and b else None

    for key, label in (
        ("wall_s", "wall time, start -> result (s)"),
        ("workflow_s", "workflow started -> closed (s)"),
        ("clock_to_entries_s", "clock -> last entry started (s)"),
    ):
        line(label, [_cell(results[n][key]) for n in names], ratio(main[key], base and base[key]))
    labels: list[str] = []
    for name in names:
        labels += [label for label in results[name]["phases"] if label not in labels]
    for label in labels:
        rows = [results[n]["phases"].get(label) for n in names]
        main_row, base_row = rows[0], rows[1] if len(rows) > 1 else None
        line(
            f"  {label} (s)",
            [_phase_cell(r) for r in rows],
            ratio(main_row and main_row["seconds"], base_row and base_row["seconds"]),
        )
    for label in PER_CALL:
        rows = [results[n]["phases"].get(label) for n in names]
        if any(rows):
            line(
                f"  one {label}: act. / cost (s)",
                [_cell(r and r["activity_s"]) + " / " + _cell(r and r["per_call_s"]) for r in rows],
            )
    line("workflow tasks (count)", [_cell(results[n]["workflow_tasks"]) for n in names])
    line(
        "  one task: queued / run, median (s)",
        [
            _cell(results[n]["workflow_task_wait_median_s"])
            + " / "
            + _cell(results[n]["workflow_task_run_median_s"])
            for n in names
        ],
    )
    line("bars read (result.bars_read)", [_cell(results[n]["bars_read"]) for n in names])
    line(
        "largest payload (MB)",
        [f"{results[n]['largest_payload_bytes'] / 1e6:.3f}" for n in names],
        ratio(main["largest_payload_bytes"], base and base["largest_payload_bytes"]),
    )
    line("signals created", [_cell(results[n]["signals_created"]) for n in names])
    line("entered", [_cell(results[n]["entered"]) for n in names])
    line("skipped", [_cell(results[n]["skipped"]) for n in names])
    line("broker calls", [_cell(results[n]["broker_calls"]) for n in names])
    line("history events", [_cell(results[n]["history_events"]) for n in names])
    for name in names:
        r = results[name]
        print(
            f"{name}: signals {_counts(r['signals_by_strategy'])}; "
            f"entered {_counts(r['entered_by_strategy'])}; "
            f"skipped {_counts(r['skipped_by_reason'])}; "
            f"bars {_counts({k: v.get('bars') for k, v in r['phases'].items() if 'bars' in v})}; "
            f"largest payload {r['largest_payload']} {r['largest_payload_bytes']} B; "
            f"broker {_counts(r['broker_calls_by_route'] or {})}"
        )
        for note in r["notes"]:
            print(f"{name}: note: {note}")


def main() -> None:
    """Parse arguments, run the benchmark, print the results."""
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Each figure is printed beside its baseline; see the module docstring.",
    )
    parser.add_argument("--symbols", type=int, default=50, help="watchlist of the main run")
    parser.add_argument(
        "--baseline-symbols", type=int, default=5, help="watchlist of the baseline run"
    )
    parser.add_argument(
        "--large-symbols",
        type=int,
        default=80,
        help="watchlist of the large run, the full loop (0: leave it out)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="runs of each scenario (medians)")
    parser.add_argument("--seed", type=int, default=7, help="the broker's random-walk seed")
    parser.add_argument(
        "--max-entries", type=int, default=10, help="max open positions and entries per run"
    )
    parser.add_argument(
        "--no-momentum-only", action="store_true", help="skip the momentum-only scenario"
    )
    parser.add_argument("--quick", action="store_true", help="one round, no momentum-only scenario")
    parser.add_argument(
        "--json",
        nargs="?",
        const="-",
        metavar="PATH",
        help="also print the whole result as JSON (to PATH when given)",
    )
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.no_momentum_only = 1, True
    if len({args.symbols, args.baseline_symbols, args.large_symbols}) < 3:
        parser.error("--symbols, --baseline-symbols and --large-symbols must differ")
    if min(args.symbols, args.baseline_symbols, args.rounds) < 1 or args.large_symbols < 0:
        parser.error("--symbols, --baseline-symbols and --rounds must be positive")
    scenarios = [
        Scenario(f"{args.symbols} symbols", args.symbols, STRATEGIES),
        Scenario(f"{args.baseline_symbols} symbols", args.baseline_symbols, STRATEGIES),
    ]
    if not args.no_momentum_only:
        scenarios.append(Scenario(f"{args.symbols} momentum", args.symbols, ("momentum",)))
    if args.large_symbols:
        scenarios.append(Scenario(f"{args.large_symbols} symbols", args.large_symbols, STRATEGIES))
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    try:
        results = asyncio.run(run(args, scenarios))
    except KeyboardInterrupt:
        raise SystemExit("interrupted; servers stopped") from None
    report(results, scenarios)
    if args.json:
        document = json.dumps(
            {"scenarios": [s.__dict__ for s in scenarios], "results": results},
            indent=2,
            default=str,
        )
        if args.json == "-":
            print(document)
        else:
            Path(args.json).write_text(document)


if __name__ == "__main__":
    main()
