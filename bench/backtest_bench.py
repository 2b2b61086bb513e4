"""Benchmark the backtest: engine bars per second over 50 symbols x 1 year of minute bars.

1. Engine. `--symbols` symbols x `--sessions` regular sessions (weekdays from 2024-01-02,
   09:30-16:00 New York, 390 one-minute bars each) are generated in-process from a seeded
   random walk (volume spikes included, so the opening-range breakout fires). Bars are built
   on access from shared arrays (a Sequence[Bar]); a year of 50 symbols held as Bar objects
   would take gigabytes. The figure is bars / second of `run_backtest` (strategy `--strategy`,
   the scorer registry's default, the ranker and the default risk limits): its strategy pass
   and its walk, including building each Bar object as it is read (both passes).
   Baseline - the naive backtest: the same engine with each strategy re-scanning its live
   lookback window (`lookback_bars`) at every bar, as a loop calling the live scan each
   minute would, keeping the signals that fire on that bar. It is O(bars x lookback), so it
   runs on a slice (`--baseline-symbols` x `--baseline-sessions`); bars/s compare directly.
   The slice's trades must be identical for both (the engine's signals are causal).
2. Fetch. The rate at which `starter.py backtest` reads bars through alpaca-py from an
   in-process paper broker (seeded walk, no rate limit): `--fetch-symbols` x
   `--fetch-sessions` of 1-minute bars (extended hours are served and dropped), chunked and
   paginated as the command does. Bars/s counts the regular-session bars kept.

The machine may be shared: compare a figure with its baseline from the same run.

Usage: python bench/backtest_bench.py [--symbols 50] [--sessions 252] [--strategy orb]
                                      [--baseline-symbols 2] [--baseline-sessions 5]
                                      [--fetch-symbols 5] [--fetch-sessions 20]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, overload

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from cli.backtest import Progress, fetch_bars, market_data
from settings import load_settings
from trading.backtest import BacktestConfig, BacktestResult, run_backtest
from trading.broker_models import Bar
from trading.scoring import DEFAULT_SCORER, builtin_scorers
from trading.strategies import SignalCandidate, Strategy, builtin_strategies, timeframe_delta
from trading.strategies.sessions import NEW_YORK, REGULAR_OPEN

SESSION_MINUTES = 390
FIRST_DAY = date(2024, 1, 2)
MINUTE = timedelta(minutes=1)


def session_days(count: int) -> list[date]:
    """`count` weekdays from FIRST_DAY (holidays are not skipped: data, not a calendar)."""
    days: list[date] = []
    day = FIRST_DAY
    while len(days) < count:
        if day.weekday() < 5:
            days.append(day)
        day += timedelta(days=1)
    return days


def minute_times(days: Sequence[date]) -> list[datetime]:
    """Every regular-session minute of `days`, UTC."""
    times: list[datetime] = []
    for day in days:
        open_ = datetime.combine(day, REGULAR_OPEN, tzinfo=NEW_YORK).astimezone(UTC)
        times.extend(open_ + i * MINUTE for i in range(SESSION_MINUTES))
    return times


class GeneratedBars(Sequence[Bar]):
    """One symbol's generated bars, each Bar built when it is read."""

    def __init__(self, symbol: str, times: list[datetime], columns: list[list[Decimal]]) -> None:
        self.symbol = symbol
        self.times = times
        self.o, self.h, self.l, self.c, self.v = columns

    def __len__(self) -> int:
        return len(self.times)

    def _bar(self, i: int) -> Bar:
        return Bar.model_construct(
            symbol=self.symbol,
            timestamp=self.times[i],
            open=self.o[i],
            high=self.h[i],
            low=self.l[i],
            close=self.c[i],
            volume=self.v[i],
        )

    @overload
    def __getitem__(self, index: int) -> Bar: ...
    @overload
    def __getitem__(self, index: slice) -> list[Bar]: ...
    def __getitem__(self, index: int | slice) -> Bar | list[Bar]:
        if isinstance(index, slice):
            return [self._bar(i) for i in range(*index.indices(len(self)))]
        return self._bar(index if index >= 0 else len(self) + index)

    def __iter__(self) -> Iterator[Bar]:
        for i in range(len(self.times)):
            yield self._bar(i)


def generate(symbols: int, days: Sequence[date], seed: int) -> dict[str, GeneratedBars]:
    """A seeded random walk per symbol: prices in cents, volumes with occasional spikes."""
    times = minute_times(days)
    n = len(times)
    rng = np.random.default_rng(seed)
    decimals: dict[int, Decimal] = {}

    def dec(values: np.ndarray, places: int) -> list[Decimal]:
        out = []
        for value in values.tolist():
            d = decimals.get(value * 10 + places)
            if d is None:
                d = decimals[value * 10 + places] = Decimal(value).scaleb(-places)
            out.append(d)
        return out

    series: dict[str, GeneratedBars] = {}
    for k in range(symbols):
        start = 20 + 280 * rng.random()
        steps = rng.normal(0, 0.0012, n)
        closes = start * np.exp(np.cumsum(steps))
        opens = np.concatenate(([start], closes[:-1]))
        wick = np.abs(rng.normal(0, 0.0006, n)) * closes
        highs = np.maximum(opens, closes) + wick
        lows = np.minimum(opens, closes) - wick
        volumes = (1000 * rng.lognormal(0, 0.5, n) * (1 + 3 * (rng.random(n) < 0.03))).astype(
            np.int64
        )
        cents = [np.round(x * 100).astype(np.int64) for x in (opens, highs, lows, closes)]
        symbol = f"S{k:03d}"
        series[symbol] = GeneratedBars(
            symbol, times, [*(dec(c, 2) for c in cents), dec(volumes + 1, 0)]
        )
    return series


class NaiveRescan:
    """The baseline: the wrapped strategy re-run over its lookback window at every bar."""

    def __init__(self, inner: Strategy) -> None:
        self.inner = inner
        self.name = inner.name
        self.timeframe = inner.timeframe
        self.lookback_bars = inner.lookback_bars
        self.max_signal_age = inner.max_signal_age
        self.same_day = inner.same_day

    def signals(self, symbol: str, bars: Sequence[Bar]) -> list[SignalCandidate]:
        """At each bar, the signals the window ending there fires on that bar."""
        step = timeframe_delta(self.timeframe)
        fired: list[SignalCandidate] = []
        for i in range(len(bars)):
            window = bars[max(0, i + 1 - self.lookback_bars) : i + 1]
            closed_at = window[-1].timestamp + step
            fired += [
                s
                for s in self.inner.signals(symbol, window)
                if s.at is not None and s.at == closed_at
            ]
        return fired

    def scan(self, bars_by_symbol: Any, now: datetime) -> list[SignalCandidate]:
        """Not used by the backtest."""
        return []


def timed_run(
    strategy: Strategy, bars: dict[str, GeneratedBars], days: Sequence[date]
) -> tuple[float, BacktestResult]:
    """Seconds and result of one engine run over `bars`."""
    config = BacktestConfig(
        start=datetime.combine(days[0], datetime.min.time(), tzinfo=NEW_YORK).astimezone(UTC),
        end=datetime.combine(
            days[-1] + timedelta(days=1), datetime.min.time(), tzinfo=NEW_YORK
        ).astimezone(UTC),
    )
    scorer = builtin_scorers().get(DEFAULT_SCORER)
    began = time.perf_counter()
    result = run_backtest([strategy], {strategy.timeframe: dict(bars)}, scorer, config)
    return time.perf_counter() - began, result


def _trades(result: BacktestResult) -> list[tuple[Any, ...]]:
    return [
        (t.symbol, t.entry_time, t.entry_price, t.exit_time, t.exit_price) for t in result.trades
    ]


def bench_engine(args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    """Engine bars/s on the full set, naive baseline bars/s on a slice, harness cost."""
    strategy = builtin_strategies().get(args.strategy)
    days = session_days(args.sessions)
    progress(f"generating {args.symbols} symbols x {len(days)} sessions of minute bars")
    bars = generate(args.symbols, days, args.seed)
    total = sum(len(b) for b in bars.values())
    progress(f"engine over {total:,} bars")
    seconds, result = timed_run(strategy, bars, days)
    slice_days = days[: args.baseline_sessions]
    small = generate(args.baseline_symbols, slice_days, args.seed)
    small_total = sum(len(b) for b in small.values())
    progress(f"baseline (naive rescan) over {small_total:,} bars, and the engine on the same")
    naive_seconds, naive = timed_run(NaiveRescan(strategy), small, slice_days)
    fast_seconds, fast = timed_run(strategy, small, slice_days)
    return {
        "bars": total,
        "seconds": round(seconds, 2),
        "bars_per_s": round(total / seconds),
        "trades": len(result.trades),
        "signals": result.signals,
        "summary": result.summary.model_dump(mode="json"),
        "baseline_bars": small_total,
        "baseline_seconds": round(naive_seconds, 2),
        "baseline_bars_per_s": round(small_total / naive_seconds),
        "engine_on_slice_bars_per_s": round(small_total / fast_seconds),
        "slice_trades_identical": _trades(naive) == _trades(fast),
        "slice_trades": len(fast.trades),
    }


def bench_fetch(args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    """Bars/s read through alpaca-py from an in-process paper broker, as the command reads."""
    days = session_days(args.fetch_sessions)
    start = datetime.combine(days[0], datetime.min.time(), tzinfo=NEW_YORK).astimezone(UTC)
    end = datetime.combine(
        days[-1] + timedelta(days=1), datetime.min.time(), tzinfo=NEW_YORK
    ).astimezone(UTC)
    symbols = ["AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA", "AMD", "JPM", "KO"]
    symbols = symbols[: args.fetch_symbols]
    settings = load_settings(alpaca_api_key=None, alpaca_secret_key=None)
    with market_data(settings, args.seed, None, symbols, end) as (gateway, _):
        began = time.perf_counter()
        bars = fetch_bars(gateway, symbols, "1Min", start, end, progress)
        seconds = time.perf_counter() - began
    kept = sum(len(b) for b in bars.values())
    return {
        "symbols": len(symbols),
        "sessions": len(days),
        "bars": kept,
        "seconds": round(seconds, 2),
        "bars_per_s": round(kept / seconds),
    }


def report(engine: dict[str, Any], fetch: dict[str, Any], args: argparse.Namespace) -> None:
    """The table and the JSON."""
    speedup = round(engine["engine_on_slice_bars_per_s"] / engine["baseline_bars_per_s"], 1)
    print(f"backtest benchmark ({args.strategy}; baseline: naive per-bar rescan, same run)")
    header = f"{'figure':<44}{'unit':>8}{'system':>12}{'baseline':>12}{'x base':>8}"
    print(header)
    print("-" * len(header))
    rows = [
        (f"engine, {engine['bars']:,} bars", engine["bars_per_s"], None, None),
        (
            f"engine vs naive, {engine['baseline_bars']:,}-bar slice",
            engine["engine_on_slice_bars_per_s"],
            engine["baseline_bars_per_s"],
            speedup,
        ),
        (f"fetch through alpaca-py, {fetch['bars']:,} bars", fetch["bars_per_s"], None, None),
    ]
    for name, system, baseline, x in rows:
        print(f"{name:<44}{'bars/s':>8}{system:>12,}{baseline or '-'!s:>12}{x or '-'!s:>8}")
    print(
        f"engine: {engine['seconds']} s; {engine['trades']} trades, "
        f"{engine['signals']} signals; slice trades identical: {engine['slice_trades_identical']}"
    )
    print(json.dumps({"engine": engine, "fetch": fetch, "args": vars(args)}, indent=2))


def main() -> None:
    """Parse arguments, run the benchmark, print the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--sessions", type=int, default=252)
    parser.add_argument("--strategy", default="orb")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--baseline-symbols", type=int, default=2)
    parser.add_argument("--baseline-sessions", type=int, default=5)
    parser.add_argument("--fetch-symbols", type=int, default=5)
    parser.add_argument("--fetch-sessions", type=int, default=20)
    args = parser.parse_args()
    if min(args.symbols, args.sessions, args.baseline_symbols, args.baseline_sessions) < 1:
        parser.error("counts must be positive")
    progress = Progress(quiet=False)
    engine = bench_engine(args, progress)
    fetch = bench_fetch(args, progress)
    report(engine, fetch, args)


if __name__ == "__main__":
    main()
