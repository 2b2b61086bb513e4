"""`starter.py backtest`: the live rules over history, with a trades table, a chart and a report.

Bars come from the configured broker's market-data API through alpaca-py (the project's
gateway), exactly as the market loop reads them. Without Alpaca keys an in-process paper
broker stands in: its seeded random walk (--seed), or a CSV replayed through it (--csv). The
engine is trading/backtest (pure); this module fetches, prints and writes the files.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path

from pydantic import SecretStr

from broker.alpaca import AlpacaGateway
from broker.endpoint import BrokerEndpoint, broker_endpoint
from broker.errors import BrokerError
from broker.gateway import BrokerGateway
from cli.output import emit_json, fail, say, say_table
from settings import Settings
from trading.backtest import BacktestConfig, BacktestResult, run_backtest
from trading.backtest.report import equity_png, report_html
from trading.broker_models import Bar
from trading.market_scan import bars_start
from trading.scoring import DEFAULT_SCORER, UnknownScorer, builtin_scorers
from trading.strategies import Strategy, UnknownStrategy, builtin_strategies, timeframe_delta
from trading.strategies.sessions import NEW_YORK, REGULAR_CLOSE, REGULAR_OPEN, NewYorkDays

CSV_COLUMNS = ("symbol", "timestamp", "open", "high", "low", "close")
# One request per symbol and chunk: about 10 calendar days of 1-minute bars (extended hours
# included) fit one 10,000-bar page; longer bars take proportionally longer chunks.
MINUTE_CHUNK_DAYS = 10
MAX_CHUNK_DAYS = 366


class BadInput(ValueError):
    """A backtest argument that cannot run; the message is the one line the user sees."""


def _decimal(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `backtest`."""
    run = commands.add_parser(
        "backtest",
        help="replay strategies over history: trades, P&L, drawdown, Sharpe, chart, report",
        description=(
            "Run strategies over historical bars with the live scorer, ranker and risk engine. "
            "Bars come from the broker's market-data API; without ALPACA_API_KEY an in-process "
            "paper broker serves them (seeded random walk, or --csv replayed)."
        ),
    )
    run.add_argument("--strategy", required=True, help="strategy name(s), comma-separated")
    run.add_argument("--symbols", required=True, help="comma-separated symbols")
    run.add_argument("--from", dest="date_from", required=True, help="first session (YYYY-MM-DD)")
    run.add_argument("--to", dest="date_to", required=True, help="last session (YYYY-MM-DD)")
    run.add_argument("--seed", type=int, default=7, help="paper broker seed (default 7)")
    run.add_argument(
        "--slippage-bps", type=_decimal, default=Decimal(0), help="on entries and stops"
    )
    run.add_argument("--equity", type=_decimal, default=Decimal(100_000), help="starting equity")
    run.add_argument("--scorer", default=DEFAULT_SCORER, help=f"default {DEFAULT_SCORER}")
    run.add_argument("--csv", type=Path, help="replay this bars CSV through the paper broker")
    run.add_argument("--out", type=Path, help="output folder (default .state/backtests/<run>)")
    run.add_argument("--json", action="store_true", help="print JSON (no progress on stderr)")
    run.set_defaults(handler=cmd_backtest)


def _day(text: str, flag: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadInput(f"{flag} {text!r} is not a date (YYYY-MM-DD)") from None


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=NEW_YORK).astimezone(UTC)


def _strategies(names: str, settings: Settings) -> list[Strategy]:
    registry = builtin_strategies(settings.strategy_configs)
    chosen = [n.strip().lower() for n in names.split(",") if n.strip()]
    if not chosen:
        raise BadInput("--strategy names no strategy")
    try:
        return [registry.get(name) for name in dict.fromkeys(chosen)]
    except UnknownStrategy as exc:
        raise BadInput(str(exc)) from None


def _csv_symbols(path: Path) -> set[str]:
    if not path.is_file():
        raise BadInput(f"--csv {path}: no such file")
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise BadInput(f"--csv {path}: missing column(s) {', '.join(missing)}")
        return {row["symbol"].upper() for row in reader}


class Progress:
    """Progress lines on stderr (silent with --json)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def __call__(self, message: str) -> None:
        """One line."""
        if not self.quiet:
            sys.stderr.write(message + "\n")
            sys.stderr.flush()


def chunk_days(timeframe: str) -> int:
    """Calendar days per request for `timeframe` (about one page of bars)."""
    minutes = timeframe_delta(timeframe) / timedelta(minutes=1)
    return int(min(MAX_CHUNK_DAYS, MINUTE_CHUNK_DAYS * minutes))


def regular_session(bars: list[Bar]) -> list[Bar]:
    """Intraday bars inside 09:30-16:00 New York (what the strategies and the walk read)."""
    days = NewYorkDays()
    kept: list[Bar] = []
    bounds: tuple[datetime, datetime] | None = None
    current = None
    for bar in bars:
        day = days.day_of(bar.timestamp)
        if day is not current or bounds is None:
            current, bounds = day, (day.at(REGULAR_OPEN), day.at(REGULAR_CLOSE))
        if bounds[0] <= bar.timestamp < bounds[1]:
            kept.append(bar)
    return kept


def fetch_bars(
    gateway: BrokerGateway,
    symbols: Sequence[str],
    timeframe: str,
    start: datetime,
    end: datetime,
    progress: Progress,
) -> dict[str, list[Bar]]:
    """Each symbol's bars in [start, end), oldest first, read in chunks (each one paginated)."""
    step = timedelta(days=chunk_days(timeframe))
    intraday = timeframe_delta(timeframe) < timedelta(days=1)
    out: dict[str, list[Bar]] = {}
    total = 0
    for symbol in symbols:
        bars: list[Bar] = []
        lo = start
        while lo < end:
            hi = min(lo + step, end)
            chunk = gateway.get_bars([symbol], timeframe, lo.isoformat(), hi.isoformat(), None)
            chunk = [b for b in chunk if lo <= b.timestamp < hi]
            bars.extend(regular_session(chunk) if intraday else chunk)
            progress(
                f"  {symbol} {timeframe} {lo.date()}..{(hi - timedelta(seconds=1)).date()}: "
                f"{len(chunk):,} bars"
            )
            lo = hi
        bars.sort(key=lambda b: b.timestamp)
        out[symbol] = bars
        total += len(bars)
        progress(f"{symbol} {timeframe}: {len(bars):,} bars (all symbols so far {total:,})")
    return out


@contextlib.contextmanager
def market_data(
    settings: Settings, seed: int, replay: Path | None, symbols: Sequence[str], end: datetime
) -> Iterator[tuple[BrokerGateway, str]]:
    """A gateway to read bars from, and what it is: Alpaca, or an in-process paper broker."""
    if not settings.uses_paper_broker:
        if replay is not None:
            raise BadInput("--csv replays through the local paper broker; unset ALPACA_API_KEY")
        endpoint = broker_endpoint(settings)
        yield AlpacaGateway(endpoint), f"Alpaca market data ({endpoint.data_url})"
        return
    from paperbroker.testing import run_paper_broker

    # The clock stands after the window, so every bar of it is in the broker's past.
    with run_paper_broker(
        seed=seed, start=end, rate_limit=0, symbols=tuple(symbols), replay_csv=replay
    ) as broker:
        endpoint = BrokerEndpoint.for_paper_broker(
            broker.data_url, SecretStr(broker.key_id), SecretStr(broker.secret_key)
        )
        source = f"in-process paper broker (seed {seed})"
        if replay is not None:
            source = f"in-process paper broker replaying {replay}"
        yield AlpacaGateway(endpoint), source


def _run_name(names: Sequence[str], first: date, last: date, seed: int, replay: Path | None) -> str:
    data = replay.stem if replay is not None else f"seed{seed}"
    return f"{'+'.join(names)}_{first}_{last}_{data}"


def _local(moment: datetime) -> str:
    return moment.astimezone(NEW_YORK).strftime("%Y-%m-%d %H:%M")


def _plain(value: Decimal | None) -> str:
    if value is None:
        return "-"
    return format(value.normalize(), "f") if value == value.to_integral() else str(value)


def cmd_backtest(args: argparse.Namespace, settings: Settings) -> int:
    """Fetch bars, run the backtest, print trades and summary, write chart and report."""
    try:
        strategies = _strategies(args.strategy, settings)
        symbols = list(dict.fromkeys(s.strip().upper() for s in args.symbols.split(",")))
        symbols = [s for s in symbols if s]
        if not symbols:
            raise BadInput("--symbols names no symbol")
        first, last = _day(args.date_from, "--from"), _day(args.date_to, "--to")
        if first > last:
            raise BadInput(f"--from {first} is after --to {last}")
        if args.csv is not None:
            _csv_symbols(args.csv)
        scorer = builtin_scorers().get(args.scorer)
        config = BacktestConfig(
            equity=args.equity,
            slippage_bps=args.slippage_bps,
            limits=settings.risk_limits,
            scorer=args.scorer,
            start=_midnight(first),
            end=_midnight(last + timedelta(days=1)),
        )
    except (BadInput, UnknownScorer) as exc:
        return fail(str(exc), code=2)
    except ValueError as exc:
        return fail(f"invalid backtest: {str(exc).splitlines()[0]}", code=2)

    assert config.start is not None and config.end is not None
    progress = Progress(quiet=args.json)
    names = [s.name for s in strategies]
    starts: dict[str, datetime] = {}
    for strategy in strategies:
        warm = bars_start(strategy.timeframe, strategy.lookback_bars, config.start)
        starts[strategy.timeframe] = min(warm, starts.get(strategy.timeframe, warm))
    try:
        with market_data(settings, args.seed, args.csv, symbols, config.end) as (gateway, source):
            progress(f"reading bars from {source}")
            bars = {
                timeframe: fetch_bars(gateway, symbols, timeframe, start, config.end, progress)
                for timeframe, start in sorted(starts.items())
            }
    except BadInput as exc:
        return fail(str(exc), code=2)
    except BrokerError as exc:
        return fail(f"reading bars failed: {type(exc).__name__}: {exc.message}")
    fetched = sum(len(b) for series in bars.values() for b in series.values())
    progress(f"running {', '.join(names)} over {fetched:,} bars")
    result = run_backtest(strategies, bars, scorer, config)

    run_name = _run_name(names, first, last, args.seed, args.csv)
    out = args.out if args.out is not None else settings.state_dir / "backtests" / run_name
    files = write_outputs(result, run_name, out)
    payload = {
        "run": run_name,
        "source": source,
        "bars_fetched": fetched,
        "files": {name: str(path) for name, path in files.items()},
        "result": result.model_dump(mode="json", exclude={"equity_curve"}),
    }
    if args.json:
        emit_json(payload)
        return 0
    show(result, files, source)
    return 0


def write_outputs(result: BacktestResult, run_name: str, out: Path) -> dict[str, Path]:
    """DIR/equity.png, DIR/report.html and DIR/result.json."""
    out.mkdir(parents=True, exist_ok=True)
    png = equity_png(result, f"backtest {run_name}")
    files = {
        "equity_png": out / "equity.png",
        "report_html": out / "report.html",
        "result_json": out / "result.json",
    }
    files["equity_png"].write_bytes(png)
    files["report_html"].write_text(report_html(result, f"backtest {run_name}", png))
    files["result_json"].write_text(
        json.dumps(result.model_dump(mode="json"), indent=2, default=str) + "\n"
    )
    return files


def show(result: BacktestResult, files: dict[str, Path], source: str) -> None:
    """The trades table, the summary and where the files are."""
    rows = [
        (
            t.symbol,
            t.strategy,
            _local(t.entry_time),
            _plain(t.entry_price),
            _plain(t.qty),
            _plain(t.stop),
            _plain(t.target),
            _local(t.exit_time),
            _plain(t.exit_price),
            t.exit_reason.value,
            _plain(t.pnl),
            _plain(t.r_multiple),
        )
        for t in result.trades
    ]
    say_table(
        rows,
        header=(
            "SYMBOL",
            "STRATEGY",
            "ENTRY (NY)",
            "PRICE",
            "QTY",
            "STOP",
            "TARGET",
            "EXIT (NY)",
            "PRICE",
            "REASON",
            "P&L",
            "R",
        ),
        empty="no trades",
    )
    s = result.summary
    say("")
    say(f"data: {source}; {result.bars_walked:,} bars walked, {result.signals} signals")
    say(
        f"trades {s.trades} (won {s.wins}, lost {s.losses}, win rate {s.win_rate}), "
        f"total P&L {s.total_pnl}, equity {s.start_equity} -> {s.end_equity} ({s.return_pct})"
    )
    say(
        f"max drawdown {s.max_drawdown} ({s.max_drawdown_pct}), sharpe {s.sharpe}, "
        f"exposure {s.exposure_time} of the time, avg capital used {s.avg_capital_used} "
        f"({s.avg_capital_used_pct}), avg R {_plain(s.avg_r)}, sessions {s.sessions}"
    )
    if result.skipped:
        say("not entered: " + ", ".join(f"{k} {v}" for k, v in result.skipped.items()))
    for name, path in files.items():
        say(f"{name}: {path}")
