"""`starter.py market-loop run` and `exit-review run`: one pass now, decisions printed."""

from __future__ import annotations

import argparse
from decimal import Decimal, InvalidOperation

from pydantic import ValidationError

from cli.output import emit_model, fail, say, say_table
from cli.run import run_workflow
from contracts import exit_review, market_loop
from settings import Settings
from trading.entry import MarketLoopInput
from trading.exits import ExitReviewInput
from trading.models import evolve
from trading.strategies import builtin_strategies
from workflows.exit_review import EodExitReviewWorkflow
from workflows.market_loop import MarketLoopWorkflow


def _decimal(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def _first_problem(exc: ValueError) -> str:
    if isinstance(exc, ValidationError):
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"])
        return f"{where}: {str(error['msg']).removeprefix('Value error, ')}"
    return str(exc).splitlines()[0]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `market-loop run` and `exit-review run`."""
    loop = commands.add_parser(
        "market-loop", help="truth, reconcile, scan, score, rank, risk-gated entries: once"
    )
    loop_sub = loop.add_subparsers(dest="market_loop_command", required=True, metavar="COMMAND")
    run = loop_sub.add_parser("run", help="run the market loop once now and print its decisions")
    run.add_argument("--watchlist", default="", help="comma-separated symbols to scan")
    run.add_argument(
        "--strategy",
        "--strategies",
        dest="strategies",
        default="",
        help="strategies to scan, comma-separated (default: STRATEGIES)",
    )
    run.add_argument("--max-open-positions", type=int, help="default: MAX_OPEN_POSITIONS")
    run.add_argument(
        "--risk-per-trade",
        type=_decimal,
        help="dollars lost at the stop per trade (default: RISK_PER_TRADE_USD / _PCT)",
    )
    run.add_argument(
        "--stop-distance",
        type=_decimal,
        help="stop below entry for a signal without one (default: DEFAULT_STOP_DISTANCE)",
    )
    run.add_argument("--score-threshold", type=_decimal, default=Decimal("0.5"))
    run.add_argument("--max-entries", type=int, default=3, help="entries per run at most")
    run.add_argument("--no-reconcile", action="store_true", help="skip the reconcile step")
    run.add_argument("--json", action="store_true", help="print JSON")
    run.set_defaults(handler=cmd_market_loop_run)

    review = commands.add_parser(
        "exit-review", help="after the close: plan next-open exits for trades that break a rule"
    )
    review_sub = review.add_subparsers(dest="exit_review_command", required=True, metavar="COMMAND")
    review_run = review_sub.add_parser("run", help="run the EOD exit review once now")
    review_run.add_argument("--ma-days", type=int, default=20, help="moving-average days")
    review_run.add_argument("--max-holding-days", type=int, default=10, help="sessions")
    review_run.add_argument("--json", action="store_true", help="print JSON")
    review_run.set_defaults(handler=cmd_exit_review_run)


def cmd_market_loop_run(args: argparse.Namespace, settings: Settings) -> int:
    """Run the market loop once and print every decision."""
    try:
        risk = settings.risk_limits
        if args.risk_per_trade is not None:
            risk = evolve(risk, risk_per_trade_usd=args.risk_per_trade)
        if args.stop_distance is not None:
            risk = evolve(risk, default_stop_distance=args.stop_distance)
        chosen = [s.strip().lower() for s in args.strategies.split(",") if s.strip()]
        request = MarketLoopInput(
            watchlist=[s.strip().upper() for s in args.watchlist.split(",") if s.strip()],
            strategies=chosen or settings.strategy_names,
            strategy_configs=settings.strategy_configs,
            risk=risk,
            max_open_positions=(
                args.max_open_positions
                if args.max_open_positions is not None
                else settings.max_open_positions
            ),
            score_threshold=args.score_threshold,
            max_entries_per_run=args.max_entries,
            reconcile=not args.no_reconcile,
            run_source="cli",
        )
    except ValueError as exc:
        return fail(f"invalid market-loop run: {_first_problem(exc)}", code=2)
    unknown = sorted(set(request.strategies) - set(builtin_strategies().names()))
    if unknown:
        return fail(
            f"unknown strategy {', '.join(unknown)}; choose from "
            f"{', '.join(builtin_strategies().names())}",
            code=2,
        )

    result = run_workflow(settings, MarketLoopWorkflow.run, request, market_loop.CLI_ID_PREFIX)
    if args.json:
        return emit_model(result)
    rows = [
        (
            str(o.decision.rank or "-"),
            o.signal_key,
            str(o.score) if o.score is not None else "-",
            ("ADD" if o.decision.add_on else "ENTER") if o.decision.enter else "skip",
            o.decision.reason,
            o.decision.detail,
            ", ".join(o.trade_ids) or o.trade_id or "-",
        )
        for o in result.decisions
    ]
    say_table(rows, header=("RANK", "SIGNAL", "SCORE", "DECISION", "REASON", "DETAIL", "TRADE"))
    if result.ended_early:
        say(f"run {result.run_id} ended early: {result.reason} ({result.detail})")
        return 0
    positions = result.broker_positions if result.broker_positions is not None else "unknown"
    say(
        f"run {result.run_id}: broker positions {positions}, reconcile {result.reconcile or '-'}, "
        f"signals created {result.signals_created}, drain {result.drain or '-'}"
    )
    say(f"entered {result.entered}, skipped {result.skipped}: {result.reason} {result.detail}")
    for note in result.notes:
        say(f"note: {note}")
    return 0


def cmd_exit_review_run(args: argparse.Namespace, settings: Settings) -> int:
    """Run the EOD exit review once and print its decisions."""
    try:
        request = ExitReviewInput(
            ma_days=args.ma_days, max_holding_days=args.max_holding_days, run_source="cli"
        )
    except ValueError as exc:
        return fail(f"invalid exit-review run: {str(exc).splitlines()[0]}", code=2)

    result = run_workflow(settings, EodExitReviewWorkflow.run, request, exit_review.CLI_ID_PREFIX)
    if args.json:
        return emit_model(result)
    if result.ended_early:
        say(f"run {result.run_id} ended early: {result.reason}")
        return 0
    rows = [
        (d.trade_id, d.symbol, "EXIT next open" if d.exit else "keep", d.reason, d.detail)
        for d in result.decisions
    ]
    say_table(rows, header=("TRADE", "SYMBOL", "DECISION", "REASON", "DETAIL"))
    say(
        f"session {result.session_date}: reviewed {result.reviewed}, "
        f"signalled {result.signalled} ({result.reason})"
    )
    for note in result.notes:
        say(f"note: {note}")
    return 0
