"""Benchmark option marks: market-data requests per minute as open condors grow, shared poll
vs one latest-quote request per condor check.

Self-contained: an in-process paper broker (manual clock inside a regular session, no rate
limit). For each condor count N it builds N iron condors of distinct strikes from the broker's
listed SPY chain over a few weekly expiries; each condor asks its four legs' marks every check
interval (60 s, OptionTradeSpec's default) from a random phase, for a few simulated minutes.
Every ask goes both ways at once, each on a gateway of its own so each count is its own:
* poll: the production activity, OptionOrderActivities.option_marks (one OptionQuotePoll,
  max age OPTION_MARKS_MAX_AGE_S, the budget in process);
* baseline: OptionOrdersGateway.latest_quotes, one request per ask (what option_marks sent
  before the poll).
Time is compressed (--speedup: check interval and max age shrink alike) and figures are per
simulated minute. Requests are counted where alpaca-py sends them (the gateways'
RateLimitObserver): the paper broker's request log counts /v2 only, options data is /v1beta1.

Usage: python bench/option_marks_bench.py [--condors 10,100] [--expiries 3] [--minutes 3]
       [--max-age 10] [--interval 60] [--speedup 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import sys
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from itertools import combinations
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from activities.options import OptionOrderActivities
from bench.stack import SESSION_START, paper_endpoint
from broker.budget import BrokerBudget
from broker.endpoint import BrokerEndpoint
from broker.metered import BROKER_THREADS
from broker.option_marks import MARKS_MAX_AGE, ExpiryGroup
from broker.option_orders import OptionOrdersGateway
from broker.options import ListedContract
from paperbroker.testing import run_paper_broker
from trading.broker_budget import BudgetConfig
from trading.options.chain import OptionRight
from trading.options.trade_models import OptionQuotesRequest

UNDERLYING = "SPY"
CHECK_INTERVAL = timedelta(minutes=1)  # OptionTradeSpec.check_interval's default
# The budget's window is real time: compressed minutes would spend a real one many times over.
UNMETERED = BudgetConfig(calls_per_min=1_000_000, read_reserve=0, trade_reserve=0)


@dataclass
class RoundResult:
    """One condor count's figures, per simulated minute."""

    condors: int
    expiries: int
    max_age_s: float
    simulated_minutes: float
    asks: int
    poll_requests: int
    baseline_requests: int

    def as_json(self) -> dict[str, Any]:
        per_min = 1 / self.simulated_minutes
        return {
            "condors": self.condors,
            "expiries": self.expiries,
            "simulated_minutes": round(self.simulated_minutes, 2),
            "asks_per_min": round(self.asks * per_min, 1),
            "poll_requests_per_min": round(self.poll_requests * per_min, 1),
            "baseline_requests_per_min": round(self.baseline_requests * per_min, 1),
            "poll_bound_per_min": round(self.expiries * 60 / self.max_age_s, 1),
        }


def listed_condors(contracts: list[ListedContract], count: int, expiries: int) -> list[list[str]]:
    """`count` condors of distinct strikes, dealt over the first `expiries` listed expiries:
    two puts below the centre strike, two calls above it, the narrowest wings first."""
    by_expiry: dict[ExpiryGroup, dict[tuple[OptionRight, Decimal], str]] = {}
    for c in contracts:
        by_expiry.setdefault(ExpiryGroup(c.underlying, c.expiry), {})[(c.right, c.strike)] = (
            c.symbol
        )
    groups = sorted(by_expiry)[:expiries]
    per_group: list[list[list[str]]] = []
    for group in groups:
        legs = by_expiry[group]
        strikes = sorted({strike for _, strike in legs})
        centre = len(strikes) // 2
        put_pairs = sorted(combinations(strikes[:centre], 2), key=lambda p: (p[1] - p[0], p))
        call_pairs = sorted(combinations(strikes[centre + 1 :], 2), key=lambda p: (p[1] - p[0], p))
        per_group.append(
            [
                [
                    legs[(OptionRight.PUT, lp)],
                    legs[(OptionRight.PUT, sp)],
                    legs[(OptionRight.CALL, sc)],
                    legs[(OptionRight.CALL, lc)],
                ]
                for (lp, sp), (sc, lc) in zip(put_pairs, call_pairs, strict=False)
            ]
        )
    dealt = [condor for round_ in zip(*per_group, strict=False) for condor in round_]
    if len(dealt) < count:
        raise SystemExit(f"the listed chain gives only {len(dealt)} distinct condors")
    return dealt[:count]


async def run_round(
    endpoint: BrokerEndpoint,
    condors: list[list[str]],
    expiries: int,
    minutes: float,
    max_age_s: float,
    interval_s: float,
    speedup: float,
    rng: random.Random,
) -> RoundResult:
    """Every condor asks both ways every interval for `minutes` simulated minutes."""
    polled, baseline = OptionOrdersGateway(endpoint), OptionOrdersGateway(endpoint)
    budget = BrokerBudget.for_endpoint(None, endpoint, UNMETERED)
    activities = OptionOrderActivities(
        polled, budget, marks_max_age=timedelta(seconds=max_age_s / speedup)
    )
    loop = asyncio.get_running_loop()
    interval = interval_s / speedup
    window = minutes * 60 / speedup
    asks = 0

    async def condor_checks(legs: list[str]) -> None:
        nonlocal asks
        request = OptionQuotesRequest(symbols=legs)
        await asyncio.sleep(rng.uniform(0, interval))  # trades opened at different moments
        while loop.time() < end:
            tick = loop.time()
            await asyncio.gather(
                activities.option_marks(request),
                loop.run_in_executor(BROKER_THREADS, baseline.latest_quotes, legs),
            )
            asks += 1
            await asyncio.sleep(max(0.0, min(tick + interval, end) - loop.time()))

    end = loop.time() + window
    await asyncio.gather(*(condor_checks(legs) for legs in condors))
    return RoundResult(
        condors=len(condors),
        expiries=expiries,
        max_age_s=max_age_s,
        simulated_minutes=minutes,  # no ask starts after the window
        asks=asks,
        poll_requests=polled.rate_limits.requests_sent,
        baseline_requests=baseline.rate_limits.requests_sent,
    )


async def run(args: argparse.Namespace, counts: list[int]) -> list[RoundResult]:
    """Start the broker once, run every round."""
    rng = random.Random(11)
    results: list[RoundResult] = []
    with run_paper_broker(start=SESSION_START, rate_limit=0) as broker:
        endpoint = paper_endpoint(broker)
        session = SESSION_START.date()
        contracts = OptionOrdersGateway(endpoint).list_contracts(
            UNDERLYING, session, session + timedelta(days=45)
        )
        for count in counts:
            condors = listed_condors(contracts, count, args.expiries)
            print(
                f"... {count} condors over {args.expiries} expiries: {args.minutes:g} simulated "
                f"minutes in {args.minutes * 60 / args.speedup:.1f} s",
                flush=True,
            )
            results.append(
                await run_round(
                    endpoint,
                    condors,
                    args.expiries,
                    args.minutes,
                    args.max_age,
                    args.interval,
                    args.speedup,
                    rng,
                )
            )
    return results


def report(results: list[RoundResult], args: argparse.Namespace) -> None:
    """Print the table and the JSON."""
    rows = [r.as_json() for r in results]
    print(
        f"option marks benchmark: check every {args.interval:g} s, poll max age "
        f"{args.max_age:g} s, time x{args.speedup:g}; market-data requests per simulated minute"
    )
    header = (
        f"{'condors':>8}{'expiries':>9}{'asks/min':>10}{'baseline/min':>14}{'poll/min':>10}"
        f"{'poll bound':>12}{'saved':>8}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        base, poll = row["baseline_requests_per_min"], row["poll_requests_per_min"]
        saved = f"{1 - poll / base:.0%}" if base else "-"
        print(
            f"{row['condors']:>8}{row['expiries']:>9}{row['asks_per_min']:>10}{base:>14}"
            f"{poll:>10}{row['poll_bound_per_min']:>12}{saved:>8}"
        )
    growth: dict[str, float | None] = {"baseline": None, "poll": None}
    if len(rows) >= 2:
        first, last = rows[0], rows[-1]
        for kind in growth:
            key = f"{kind}_requests_per_min"
            growth[kind] = round(last[key] / first[key], 2) if first[key] else None
        print(
            f"condors x{last['condors'] / first['condors']:g}: baseline requests "
            f"x{growth['baseline']}, poll requests x{growth['poll']}"
        )
    summary = {
        "bench": "option_marks",
        "check_interval_s": args.interval,
        "max_age_s": args.max_age,
        "speedup": args.speedup,
        "growth": growth,
        "results": rows,
    }
    print(json.dumps(summary))


def main() -> None:
    """Parse arguments, run the rounds, print the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--condors", default="10,100", help="comma-separated condor counts")
    parser.add_argument("--expiries", type=int, default=3, help="weekly expiries to spread over")
    parser.add_argument("--minutes", type=float, default=3.0, help="simulated minutes per count")
    parser.add_argument(
        "--max-age", type=float, default=MARKS_MAX_AGE.total_seconds(), help="poll max age, s"
    )
    parser.add_argument(
        "--interval", type=float, default=CHECK_INTERVAL.total_seconds(), help="check every, s"
    )
    parser.add_argument("--speedup", type=float, default=30.0, help="simulated s per real s")
    args = parser.parse_args()
    counts = [int(n) for n in args.condors.split(",") if n.strip()]
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    try:
        results = asyncio.run(run(args, counts))
    except KeyboardInterrupt:
        raise SystemExit("interrupted; broker stopped") from None
    report(results, args)


if __name__ == "__main__":
    main()
