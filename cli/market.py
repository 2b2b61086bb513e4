"""`starter.py market-loop run` and `exit-review run`: one pass now, decisions printed."""

from __future__ import annotations

import argparse
from decimal import Decimal, InvalidOperation

from cli.output import emit_model, fail, say, say_table
from cli.run import run_workflow
from contracts import exit_review, market_loop
from settings import Settings
from trading.entry import MarketLoopInput
from trading.exits import ExitReviewInput
from workflows.exit_review import EodExitReviewWorkflow
from workflows.market_loop import MarketLoopWorkflow


def _decimal(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `market-loop run` and `exit-review run`."""
    loop = commands.add_parser(
        "market-loop", help="truth -> reconcile -> scan -> score -> gated entries, once"
    )
    loop_sub = loop.add_subparsers(dest="market_loop_command", required=True, metavar="COMMAND")
    run = loop_sub.add_parser("run", help="run the market loop once now and print its decisions")
    run.add_argument("--watchlist", default="", help="comma-separated symbols to scan")
    run.add_argument("--strategy", default="momentum", help="strategy name (default momentum)")
    run.add_argument("--max-open-positions", type=int, help="default: MAX_OPEN_POSITIONS")
    run.add_argument("--risk-per-trade", type=_decimal, default=Decimal(100), help="dollars")
    run.add_argument(
        "--stop-distance", type=_decimal, default=Decimal("0.05"), help="fraction below entry"
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
        request = MarketLoopInput(
            watchlist=[s.strip().upper() for s in args.watchlist.split(",") if s.strip()],
            strategy=args.strategy,
            max_open_positions=(
                args.max_open_positions
                if args.max_open_positions is not None
                else settings.max_open_positions
            ),
            risk_per_trade=args.risk_per_trade,
            stop_distance=args.stop_distance,
            score_threshold=args.score_threshold,
            max_entries_per_run=args.max_entries,
            reconcile=not args.no_reconcile,
            run_source="cli",
        )
    except ValueError as exc:
        return fail(f"invalid market-loop run: {str(exc).splitlines()[0]}", code=2)

    result = run_workflow(settings, MarketLoopWorkflow.run, request, market_loop.CLI_ID_PREFIX)
    if args.json:
        return emit_model(result)
    rows = [
        (
            o.signal_key,
            str(o.score) if o.score is not None else "-",
            "ENTER" if o.decision.enter else "skip",
            o.decision.reason,
            o.decision.detail,
            o.trade_id or "-",
        )
        for o in result.decisions
    ]
    say_table(rows, header=("SIGNAL", "SCORE", "DECISION", "REASON", "DETAIL", "TRADE"))
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
