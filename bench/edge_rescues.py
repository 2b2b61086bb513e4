"""Edge benchmark scenarios about rescues under pressure: sustained outside cancels, a mass
rescue, a broker outage and adoption of an outside fill - each for the system, then for the
baseline cron job on the same broker."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import MarketOrderRequest

from bench.edge_baseline import BaselineCron
from bench.edge_config import EdgeConfig, Say
from bench.edge_figures import (
    NOT_MEASURED,
    Figure,
    Sample,
    Section,
    Value,
    at_most,
    largest,
    quantile,
)
from bench.edge_stack import BrokerWatch, StopSeen
from bench.edge_system import (
    EdgeStack,
    baseline_book,
    book_stop_ids,
    broker_requests,
    broker_sync_state,
    guard_positions,
    settle,
    start_measuring,
    stop_system,
)

# --- cancelling from outside -------------------------------------------------------------------


@dataclass
class CancelRecord:
    """One outside cancel and the stop that replaced it."""

    symbol: str
    mono: float
    old_id: str
    rescued: StopSeen | None = None

    def sample(self, observed_until: float) -> Sample:
        """Cancel -> new working stop in ms; censored at `observed_until` if none came."""
        if self.rescued is not None:
            return Sample((self.rescued.mono - self.mono) * 1000)
        return Sample((observed_until - self.mono) * 1000, censored=True)


@dataclass
class CancelRun:
    """What a stream of outside cancels produced."""

    records: list[CancelRecord] = field(default_factory=list)
    skipped: int = 0  # ticks with no working stop left to cancel
    window_s: float = 0.0
    observed_until: float = 0.0  # monotonic

    def samples(self) -> list[Sample]:
        return [r.sample(self.observed_until) for r in self.records]

    @property
    def rescued(self) -> int:
        return sum(1 for r in self.records if r.rescued is not None)


def _check_pending(watch: BrokerWatch, pending: dict[str, CancelRecord]) -> None:
    for symbol, record in list(pending.items()):
        seen = watch.first_working_stop(symbol, record.mono, {record.old_id})
        if seen is not None:
            record.rescued = seen
            del pending[symbol]


async def cancel_stream(
    watch: BrokerWatch,
    symbols: list[str],
    window_s: float,
    per_min: float,
    rng: random.Random,
    wait_after_s: float,
) -> CancelRun:
    """Cancel a random working stop every 60/per_min s for window_s; then wait for rescues."""
    run = CancelRun()
    pending: dict[str, CancelRecord] = {}
    started = time.monotonic()
    due = started
    while time.monotonic() - started < window_s:
        _check_pending(watch, pending)
        stops = await watch.active_stops()
        candidates = sorted(s for s in symbols if s in stops and s not in pending)
        if candidates:
            symbol = rng.choice(candidates)
            old_id = stops[symbol][0]
            mono, _ = await watch.cancel([old_id])
            record = CancelRecord(symbol, mono, old_id)
            run.records.append(record)
            pending[symbol] = record
        else:
            run.skipped += 1
        due += 60.0 / per_min
        await asyncio.sleep(max(0.0, due - time.monotonic()))
    run.window_s = time.monotonic() - started
    deadline = time.monotonic() + wait_after_s
    while pending and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
        _check_pending(watch, pending)
    _check_pending(watch, pending)
    run.observed_until = time.monotonic()
    return run


def expected_note(config: EdgeConfig) -> str:
    """The baseline's expected detection latency, stated, not measured."""
    period = config.baseline_period_s
    return (
        f"baseline cron every {period:g} s (wall-clock aligned): a stop that dies at a random "
        f"moment waits {period / 2:g} s on average (up to {period:g} s) for the next pass, "
        "plus the pass's own calls"
    )


def _calls_figure(name: str, system: Value, baseline: Value, limit: float) -> Figure:
    return Figure(name, "calls", system, baseline, f"<= {limit:g}", at_most(system, limit))


def _per_rescue(calls: int, rescues: int) -> Value:
    if rescues == 0:
        return Value(None, text=f"0 rescued ({calls} calls)")
    return Value(calls / rescues)


# --- 1. sustained outside cancels --------------------------------------------------------------


async def sustained(stack_factory: Any, config: EdgeConfig, say: Say) -> Section:
    """Outside cancels at a steady rate over N minutes, rate limit on."""
    n, per_min = config.sustained_trades, config.cancels_per_min
    window_s = config.sustained_minutes * 60
    section = Section(
        "sustained",
        f"{n} trades, {per_min:g} outside stop cancels/min for {window_s:g} s, rate limit "
        f"{200}/min",
    )
    symbols = config.symbols(2 * n)
    ours, theirs = symbols[:n], symbols[n:]
    rng = random.Random(11)
    async with stack_factory("sustained", symbols) as stack:
        say(f"... sustained: {n} guards")
        await guard_positions(stack, ours, say, config.idle_check_interval)
        await settle(stack, say, config.settle_s)
        await start_measuring(stack)
        before = await broker_sync_state(stack.client)
        say(f"... sustained: system, {window_s:g} s of cancels")
        run = await cancel_stream(stack.watch, ours, window_s, per_min, rng, config.rescue_wait_s)
        counted = await broker_requests(stack)
        after = await broker_sync_state(stack.client)
        section.notes += stack.notes
        await stop_system(stack)

        baseline_run: CancelRun | None = None
        baseline_counted: dict[str, Any] = {}
        if config.baseline:
            say(f"... sustained: baseline cron, {window_s:g} s of cancels")
            cron = await baseline_book(stack, theirs, "sustained", config.baseline_period_s)
            cron.start("wall")
            await start_measuring(stack)
            baseline_run = await cancel_stream(stack.watch, theirs, window_s, per_min, rng, 0.0)
            baseline_counted = await broker_requests(stack)
            cron.stop()

    samples = run.samples()
    b_samples = baseline_run.samples() if baseline_run else []
    p50, p99 = quantile(samples, 0.5), quantile(samples, 0.99)
    calls = counted["total"]
    b_calls = baseline_counted.get("total", 0)
    section.figures = [
        Figure(
            "rescue latency p50 (cancel -> new working stop)",
            "ms",
            p50,
            quantile(b_samples, 0.5) if baseline_run else NOT_MEASURED,
            "-",
            None,
        ),
        Figure(
            "rescue latency p99",
            "ms",
            p99,
            quantile(b_samples, 0.99) if baseline_run else NOT_MEASURED,
            "<= 250 ms",
            at_most(p99, 250),
        ),
        _calls_figure(
            "broker calls per rescue (all calls / rescues)",
            _per_rescue(calls, run.rescued),
            _per_rescue(b_calls, baseline_run.rescued) if baseline_run else NOT_MEASURED,
            2,
        ),
        Figure(
            "HTTP 429 answers",
            "count",
            Value(counted["rate_limited_429"]),
            Value(baseline_counted["rate_limited_429"]) if baseline_run else NOT_MEASURED,
            "0",
            counted["rate_limited_429"] == 0,
        ),
    ]
    section.notes.append(expected_note(config))
    section.notes.append(
        "latency runs from the outside cancel request to the broker's event for the new stop "
        "(it includes the broker's 50 ms asynchronous cancel)"
    )
    section.details = {
        "system": _run_details(run, counted)
        | {
            "broker_sync_polls": after.polls - before.polls,
            "broker_sync_poll_calls": 2 * (after.polls - before.polls),
        },
        "baseline": _run_details(baseline_run, baseline_counted) if baseline_run else None,
    }
    return section


def _run_details(run: CancelRun | None, counted: dict[str, Any]) -> dict[str, Any]:
    if run is None:
        return {}
    samples = run.samples()
    return {
        "window_s": round(run.window_s, 1),
        "cancels": len(run.records),
        "ticks_without_a_working_stop_to_cancel": run.skipped,
        "rescued": run.rescued,
        "not_rescued_when_observation_ended": len(run.records) - run.rescued,
        "latency_ms": [round(s.value, 1) for s in samples if not s.censored],
        "censored_ms": [round(s.value, 1) for s in samples if s.censored],
        "broker_calls": counted.get("total"),
        "broker_calls_by_route": counted.get("by_route"),
        "rate_limited_429": counted.get("rate_limited_429"),
    }


# --- 2. mass rescue ----------------------------------------------------------------------------


async def _mass_cancel(
    watch: BrokerWatch, symbols: list[str], ids: list[str], within_s: float
) -> tuple[list[Sample], float]:
    mono, _ = await watch.cancel(ids, aged=True)
    found = await watch.wait_working_stops(symbols, mono, within_s, set(ids))
    until = time.monotonic()
    samples = [
        Sample(seen.mono - mono) if seen is not None else Sample(until - mono, censored=True)
        for seen in found.values()
    ]
    return samples, until - mono


async def mass(stack_factory: Any, config: EdgeConfig, say: Say) -> Section:
    """Every stop cancelled in the same instant (aged GTC orders at 16:15), rate limit on."""
    n = config.mass_trades
    section = Section("mass", f"{n} trades, all {n} stops cancelled at once (aged-GTC 16:15)")
    symbols = config.symbols(2 * n)
    ours, theirs = symbols[:n], symbols[n:]
    async with stack_factory("mass", symbols) as stack:
        say(f"... mass: {n} guards")
        await guard_positions(stack, ours, say, config.idle_check_interval)
        await settle(stack, say, config.settle_s)
        await start_measuring(stack)
        stops = await stack.watch.active_stops()
        ids = [stops[s][0] for s in ours]
        say(f"... mass: system, {n} stops cancelled")
        samples, _ = await _mass_cancel(stack.watch, ours, ids, config.mass_within_s)
        counted = await broker_requests(stack)
        section.notes += stack.notes
        await stop_system(stack)

        b_samples: list[Sample] = []
        b_counted: dict[str, Any] = {}
        if config.baseline:
            cron = await baseline_book(stack, theirs, "mass", config.baseline_period_s)
            cron.start("wall")
            await start_measuring(stack)
            cap = config.baseline_cap_s
            say(f"... mass: baseline cron, {n} stops cancelled, waiting up to {cap:g} s")
            ids = list(book_stop_ids(cron).values())
            b_samples, _ = await _mass_cancel(stack.watch, theirs, ids, cap)
            b_counted = await broker_requests(stack)
            cron.stop()
            section.details["baseline_passes"] = cron.of_kind("pass_end")
            section.details["baseline_errors"] = len(cron.of_kind("error"))

    all_back = largest(samples)
    section.figures = [
        Figure(
            f"all {n} protected again (cancel -> last new stop)",
            "s",
            all_back,
            largest(b_samples) if config.baseline else NOT_MEASURED,
            "<= 10 s",
            at_most(all_back, 10),
        ),
        Figure(
            "median stop back",
            "s",
            quantile(samples, 0.5),
            quantile(b_samples, 0.5) if config.baseline else NOT_MEASURED,
            "-",
            None,
        ),
        Figure(
            "HTTP 429 answers",
            "count",
            Value(counted["rate_limited_429"]),
            Value(b_counted["rate_limited_429"]) if config.baseline else NOT_MEASURED,
            "0",
            counted["rate_limited_429"] == 0,
        ),
        Figure(
            "broker calls",
            "calls",
            Value(counted["total"]),
            Value(b_counted["total"]) if config.baseline else NOT_MEASURED,
            "-",
            None,
        ),
    ]
    section.notes.append(expected_note(config))
    section.details |= {
        "system_seconds": [round(s.value, 3) for s in samples],
        "system_calls_by_route": counted["by_route"],
        "baseline_seconds": [round(s.value, 3) for s in b_samples],
        "baseline_censored": sum(1 for s in b_samples if s.censored),
        "baseline_calls_by_route": b_counted.get("by_route"),
    }
    return section


# --- 5. broker outage --------------------------------------------------------------------------


async def _outage(
    stack: EdgeStack, symbols: list[str], config: EdgeConfig, wait_after_s: float
) -> tuple[list[Sample], dict[str, Any]]:
    """503 on every /v2 call for outage_s; stops cancelled during it; timed from recovery."""
    admin, watch = stack.broker.admin, stack.watch
    outage_s = config.outage_s
    fault = await asyncio.to_thread(
        admin.add_fault,
        method="*",
        path="/v2/*",
        status=503,
        body={"message": "service unavailable"},
    )
    began = time.monotonic()
    # Cancels spread over the outage (first after 5 s, last 5 s before it ends).
    count = config.outage_cancels
    offsets = [5 + i * max(0.0, outage_s - 10) / max(1, count - 1) for i in range(count)]
    stops = await watch.active_stops()
    cancelled: list[tuple[str, float, str]] = []
    for symbol, offset in zip(symbols, offsets, strict=False):
        await asyncio.sleep(max(0.0, began + offset - time.monotonic()))
        old_id = stops[symbol][0]
        mono, _ = await watch.cancel([old_id])
        cancelled.append((symbol, mono, old_id))
    await asyncio.sleep(max(0.0, began + outage_s - time.monotonic()))
    recovered = time.monotonic()
    await asyncio.to_thread(admin.remove_fault, fault)
    samples: list[Sample] = []
    early = 0
    for symbol, mono, old_id in cancelled:
        found = await watch.wait_working_stops(
            [symbol], mono, wait_after_s - (time.monotonic() - recovered), {old_id}
        )
        seen = found[symbol]
        if seen is None:
            samples.append(Sample(time.monotonic() - recovered, censored=True))
        else:
            early += seen.mono < recovered
            samples.append(Sample(max(0.0, seen.mono - recovered)))
    return samples, {
        "cancelled_at_s": [round(m - began, 1) for _, m, _ in cancelled],
        "replaced_before_recovery": early,
    }


async def outage(stack_factory: Any, config: EdgeConfig, say: Say) -> Section:
    """The broker answers 503 to every REST call for a while; stops die meanwhile."""
    n = max(config.outage_cancels, 3)
    section = Section(
        "outage",
        f"503 on every REST call for {config.outage_s:g} s, {config.outage_cancels} stop(s) "
        "cancelled during it; timed from the broker answering again",
    )
    symbols = config.symbols(2 * n)
    ours, theirs = symbols[:n], symbols[n:]
    async with stack_factory("outage", symbols) as stack:
        say(f"... outage: {n} guards")
        await guard_positions(stack, ours, say, config.idle_check_interval)
        await settle(stack, say, config.settle_s)
        await start_measuring(stack)
        say(f"... outage: system, {config.outage_s:g} s of 503s")
        samples, detail = await _outage(stack, ours, config, config.rescue_wait_s)
        counted = await broker_requests(stack)
        section.notes += stack.notes
        await stop_system(stack)

        b_samples: list[Sample] = []
        b_detail: dict[str, Any] = {}
        if config.baseline:
            cron = await baseline_book(stack, theirs, "outage", config.baseline_period_s)
            cron.start("wall")
            await start_measuring(stack)
            say(
                f"... outage: baseline cron, {config.outage_s:g} s of 503s, then up to "
                f"{config.baseline_cap_s:g} s"
            )
            b_samples, b_detail = await _outage(stack, theirs, config, config.baseline_cap_s)
            b_detail["errors_reported"] = len(cron.of_kind("error"))
            cron.stop()

    worst = largest(samples)
    section.figures = [
        Figure(
            "broker back -> new working stop (worst)",
            "s",
            worst,
            largest(b_samples) if config.baseline else NOT_MEASURED,
            "<= 2 s",
            at_most(worst, 2),
        ),
        Figure(
            "HTTP 429 answers", "count", Value(counted["rate_limited_429"]), NOT_MEASURED, "-", None
        ),
    ]
    section.notes.append(expected_note(config))
    section.details = {
        "system_seconds": [round(s.value, 3) for s in samples],
        "system": detail,
        "system_calls": counted,
        "baseline_seconds": [round(s.value, 3) for s in b_samples],
        "baseline": b_detail,
    }
    return section


# --- 6. adoption of an outside fill ------------------------------------------------------------


def _outside_buy(stack: EdgeStack, symbol: str) -> str:
    """A market buy from another client of the account (a client_order_id no trade owns)."""
    broker = stack.broker
    client = TradingClient(
        broker.key_id, broker.secret_key, paper=True, url_override=broker.trading_url
    )
    cid = f"outside-{uuid.uuid4().hex[:12]}"
    client.submit_order(
        MarketOrderRequest(
            symbol=symbol,
            qty=10,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.DAY,
            client_order_id=cid,
        )
    )
    return cid


async def _adopt_one(stack: EdgeStack, symbol: str, within_s: float) -> Sample:
    watch = stack.watch
    asked = time.monotonic()
    await asyncio.to_thread(_outside_buy, stack, symbol)
    fill = next((f for f in list(watch.fills) if f.symbol == symbol and f.mono >= asked), None)
    filled = fill.mono if fill is not None else asked
    found = await watch.wait_working_stops([symbol], filled, within_s)
    seen = found[symbol]
    if seen is None:
        return Sample(time.monotonic() - filled, censored=True)
    return Sample(seen.mono - filled)


async def adoption(stack_factory: Any, config: EdgeConfig, say: Say) -> Section:
    """An outside buy fills; time until a protect-only guard's stop works at the broker."""
    k = config.adoptions
    section = Section("adoption", f"{k} outside buys (client_order_id no trade owns) fill")
    symbols = config.symbols(2 * k + 2)
    guarded, ours, theirs = symbols[:1], symbols[1 : k + 1], symbols[k + 1 : 2 * k + 1]
    async with stack_factory("adoption", symbols) as stack:
        say("... adoption: one guard, BrokerSync")
        await guard_positions(stack, guarded, say, config.idle_check_interval)
        await settle(stack, say, config.settle_s)
        await start_measuring(stack)
        samples: list[Sample] = []
        for symbol in ours:
            say(f"... adoption: system, outside buy of {symbol}")
            samples.append(await _adopt_one(stack, symbol, config.rescue_wait_s))
            await asyncio.sleep(2.0)
        counted = await broker_requests(stack)
        section.notes += stack.notes
        await stop_system(stack)

        b_samples: list[Sample] = []
        if config.baseline:
            cron = await baseline_book(stack, symbols[-1:], "adoption", config.baseline_period_s)
            cron.start("wall")
            await start_measuring(stack)
            wait = config.baseline_cap_s
            say(f"... adoption: baseline cron, {len(theirs)} outside buys, watching {wait:g} s")
            started = time.monotonic()
            for symbol in theirs:
                await asyncio.to_thread(_outside_buy, stack, symbol)
            found = await stack.watch.wait_working_stops(theirs, started, wait)
            b_samples = [
                Sample(time.monotonic() - started, censored=True)
                if v is None
                else Sample(v.mono - started)
                for v in found.values()
            ]
            section.details["baseline_passes"] = cron.of_kind("pass_end")
            cron.stop()

    worst = largest(samples)
    baseline = largest(b_samples) if config.baseline else NOT_MEASURED
    section.figures = [
        Figure(
            "outside fill -> guard's stop working (worst)",
            "s",
            worst,
            baseline,
            "<= 5 s",
            at_most(worst, 5),
        ),
        Figure("median", "s", quantile(samples, 0.5), NOT_MEASURED, "-", None),
    ]
    section.notes.append(
        "the baseline cron checks only the trades in its book: it has no way to learn of a "
        "position it did not open, so its figure is the time it was watched (a lower bound)"
    )
    section.details |= {
        "system_seconds": [round(s.value, 3) for s in samples],
        "system_calls": counted,
        "bench_outside_buys_in_those_calls": k,
        "baseline_seconds": [round(s.value, 3) for s in b_samples],
    }
    return section


__all__ = ["BaselineCron", "adoption", "mass", "outage", "sustained"]
