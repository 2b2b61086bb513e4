"""Benchmark the guard at its edges (issue 11), each figure beside the design it replaces.

The system runs as `dev up` runs it: a Temporal dev server (temporal-dev.yaml's search
attributes and dynamic config), an embedded PostgreSQL, `python worker.py` as its own process
(production settings: broker-call budget, sticky timeout, BrokerSync under its singleton id)
and an in-process paper broker (its clock running in real time from 10:30 New York in a
regular session, flat prices, 50 ms asynchronous cancels like Alpaca's). Trades are
protect-only guards over positions opened outside the system; each places its own GTC stop.
The in-process broker is the benchmark's Alpaca: its CPU is not the system's. Stops are
cancelled from outside through
the broker's own cancel path, and the new stop is timed from the broker's trade update - the
benchmark never sends a /v2 request of its own while measuring, so the broker's request
counter (by route) and its 429s belong to the system alone.

BASELINE, same run, same paper broker (after the system of the scenario has stopped): the
design this system replaces - every trade checked by a cron job (default every 5 min, wall-clock
aligned) through its own broker calls: get its position, get its stop order, re-submit the
stop if it is gone (bench/edge_baseline.py, an asyncio loop over alpaca-py, its own process).
Where a window ends before the cron acts, the stops it had not protected are reported as
censored (">= the time watched") and the expected latency is stated (period/2 on average).

Scenarios (--only a,b,...):
  sustained  15 trades, 40 outside stop cancels/min for N min, rate limit 200/min on:
             rescue p50/p99, broker calls per rescue, 429s      goals p99 <= 250 ms, <= 2, 0
  mass       100 trades, every stop cancelled at once (aged GTC at 16:15): all protected
             again, 429s                                          goals <= 10 s, 0
  idle       10 / 100 / 1,000 protected trades at rest for one idle_check_interval: CPU and
             RSS of worker + Temporal + PostgreSQL, broker calls/min, history events and
             billable actions per trade-hour; then stops cancelled one at a time
             goals per trade <= 60 events/h, <= 20 actions/h; at 1,000: < 10 % of a core,
             < 2 GiB, <= 10 calls/min, replacement p99 <= 300 ms
  crash      worker SIGKILLed while N trades' stops are cancelled, new worker after a delay:
             kill -> all protected, with a breakdown                goal <= 5 s
  outage     503 on every REST call for 45 s, stops cancelled meanwhile: broker back ->
             new stop                                               goal <= 2 s
  adoption   an outside buy fills: fill -> guard's stop working    goal <= 5 s

Usage: python bench/edge_bench.py [--only sustained,mass,...] [--quick] [--json PATH]
       python bench/edge_bench.py --quick --only crash --no-baseline
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.edge_config import SCENARIOS, EdgeConfig, Say
from bench.edge_figures import Section, print_section, table
from bench.edge_recovery import crash, idle
from bench.edge_rescues import adoption, mass, outage, sustained
from bench.edge_system import edge_stack
from bench.stack import bench_servers

RUNNERS: dict[str, Callable[[Any, EdgeConfig, Say], Awaitable[Section]]] = {
    "sustained": sustained,
    "mass": mass,
    "idle": idle,
    "crash": crash,
    "outage": outage,
    "adoption": adoption,
}

QUICK: dict[str, Any] = {
    "sustained_minutes": 0.5,
    "mass_trades": 20,
    "idle_counts": (10, 30),
    "idle_check_interval": timedelta(seconds=60),
    "idle_probes": 3,
    "crash_trades": 5,
    "outage_s": 15.0,
    "outage_cancels": 2,
    "adoptions": 2,
    "baseline_period_s": 60.0,
}


def say(message: str) -> None:
    """Progress on stderr, so stdout holds only the tables and the JSON."""
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


async def run(config: EdgeConfig) -> list[Section]:
    """Start the servers once, run the chosen scenarios, stop everything (also on error)."""
    sections: list[Section] = []
    async with bench_servers("edge-bench-") as (env, postgres):

        def stack_factory(name: str, symbols: list[str]) -> Any:
            return edge_stack(env, postgres, name, symbols)

        for name in config.scenarios:
            began = time.monotonic()
            section = await RUNNERS[name](stack_factory, config, say)
            section.details["scenario_seconds"] = round(time.monotonic() - began, 1)
            print_section(section)
            sys.stdout.flush()
            sections.append(section)
    return sections


def summary(sections: list[Section], config: EdgeConfig, command: str) -> dict[str, Any]:
    """Every figure of the run, and the run's settings."""
    return {
        "command": command,
        "settings": {
            k: (str(v) if isinstance(v, timedelta) else v) for k, v in config.__dict__.items()
        },
        "sections": [s.as_json() for s in sections],
        "missed": [f"{s.name}: {f.name}" for s in sections for f in s.figures if f.met is False],
    }


def parse(argv: list[str] | None = None) -> tuple[EdgeConfig, Path | None]:
    """The command line: the run's settings and where to write the JSON (if anywhere)."""
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Each figure is printed beside its baseline; see the module docstring.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenarios")
    parser.add_argument("--quick", action="store_true", help="small sizes and short windows")
    parser.add_argument("--json", type=Path, help="also write the whole result here")
    parser.add_argument("--sustained-trades", type=int)
    parser.add_argument("--minutes", type=float, help="sustained cancels: window in minutes")
    parser.add_argument("--cancels-per-min", type=float)
    parser.add_argument("--mass-trades", type=int)
    parser.add_argument("--idle-counts", help="comma-separated trade counts (10,100,1000)")
    parser.add_argument(
        "--idle-check-s", type=float, help="trades' idle_check_interval (default: TradeSpec's)"
    )
    parser.add_argument("--idle-window", type=float, help="seconds (default: one interval+)")
    parser.add_argument("--idle-probes", type=int, help="stops cancelled one at a time after")
    parser.add_argument("--crash-trades", type=int)
    parser.add_argument("--restart-delays", help="seconds before the new worker, e.g. 0,1.6")
    parser.add_argument("--outage-seconds", type=float)
    parser.add_argument("--outage-cancels", type=int)
    parser.add_argument("--adoptions", type=int)
    parser.add_argument("--baseline-period", type=float, help="cron period in s (default 300)")
    parser.add_argument(
        "--baseline-idle-window", type=float, help="seconds the idle baseline is watched"
    )
    parser.add_argument("--no-baseline", action="store_true", help="system figures only")
    args = parser.parse_args(argv)
    scenarios = tuple(s.strip() for s in args.only.split(",") if s.strip())
    if unknown := sorted(set(scenarios) - set(SCENARIOS)):
        parser.error(f"unknown scenario(s): {', '.join(unknown)}; choose from {SCENARIOS}")
    config = EdgeConfig(scenarios=scenarios, quick=args.quick)
    if args.quick:
        config = replace(config, **QUICK)
    given: dict[str, Any] = {
        "sustained_trades": args.sustained_trades,
        "sustained_minutes": args.minutes,
        "cancels_per_min": args.cancels_per_min,
        "mass_trades": args.mass_trades,
        "idle_counts": tuple(int(n) for n in args.idle_counts.split(","))
        if args.idle_counts
        else None,
        "idle_check_interval": timedelta(seconds=args.idle_check_s) if args.idle_check_s else None,
        "idle_window_s": args.idle_window,
        "idle_probes": args.idle_probes,
        "crash_trades": args.crash_trades,
        "restart_delays": tuple(float(d) for d in args.restart_delays.split(","))
        if args.restart_delays
        else None,
        "outage_s": args.outage_seconds,
        "outage_cancels": args.outage_cancels,
        "adoptions": args.adoptions,
        "baseline_period_s": args.baseline_period,
        "baseline_idle_window_s": args.baseline_idle_window,
    }
    chosen: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    config = replace(config, **chosen)
    if args.no_baseline:
        config = replace(config, baseline=False)
    if max(config.idle_counts, default=0) > 8000:
        parser.error("at most 8,000 idle trades")
    return config, args.json


def main() -> None:
    """Parse arguments, run the scenarios, print the summary and the JSON."""
    config, json_path = parse()
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    command = " ".join(["python", *sys.argv])
    try:
        sections = asyncio.run(run(config))
    except KeyboardInterrupt:
        raise SystemExit("interrupted; servers stopped") from None
    figures = [f for s in sections for f in s.figures]
    print()
    print(table(figures, "== edge benchmark: every figure (system beside the baseline cron)"))
    result = summary(sections, config, command)
    missed = result["missed"]
    judged = [f for f in figures if f.met is not None]
    print(
        f"goals: {sum(1 for f in judged if f.met)} PASS, {len(missed)} MISS of {len(judged)} judged"
    )
    for name in missed:
        print(f"  MISS {name}")
    print(json.dumps(result, indent=2, default=str))
    if json_path is not None:
        json_path.write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
