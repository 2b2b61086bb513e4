"""`starter.py reconcile` and `starter.py auto-manage`: converge the ledger on the broker now."""

from __future__ import annotations

import argparse

from cli.output import emit_model, fail, say, say_table
from cli.run import run_workflow
from contracts import auto_manage, reconcile
from settings import Settings
from trading.reconcile import ReconcilePlan
from trading.reconcile_models import (
    AutoManageInput,
    ReconcileInput,
)
from workflows.auto_manage import AutoManageWorkflow
from workflows.reconcile import ReconcileWorkflow


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `reconcile` and `auto-manage`."""
    reconcile = commands.add_parser(
        "reconcile",
        help=(
            "close ghost trades, adopt broker-only positions, sync quantities, restart "
            "orphaned option trades (broker truth)"
        ),
    )
    reconcile.add_argument(
        "--dry-run", action="store_true", help="print the plan and change nothing"
    )
    reconcile.add_argument("--max", type=int, help="apply at most N actions (the rest wait)")
    reconcile.add_argument("--json", action="store_true", help="print JSON")
    reconcile.set_defaults(handler=cmd_reconcile)

    sweep = commands.add_parser(
        "auto-manage", help="make sure every broker position has a running guard and a stop"
    )
    sweep.add_argument("--json", action="store_true", help="print JSON")
    sweep.set_defaults(handler=cmd_auto_manage)


def plan_rows(plan: ReconcilePlan) -> list[tuple[str, ...]]:
    """One line per planned action, in the order they are applied."""
    rows: list[tuple[str, ...]] = []
    for adoption in plan.adoptions:
        stop = adoption.existing_stop_order_id or f"new stop @ {adoption.stop_price}"
        rows.append(
            (
                "adopt",
                adoption.symbol,
                adoption.trade_id,
                f"{adoption.qty} @ {adoption.avg_entry_price}; {stop}",
            )
        )
    for ghost in plan.ghost_closes:
        rows.append(
            (
                "close",
                ghost.symbol,
                ghost.trade_id,
                f"{ghost.status.value}: no position, no open order -> {ghost.close_reason.value}",
            )
        )
    for sync in plan.quantity_syncs:
        rows.append(
            (
                "sync",
                sync.symbol,
                sync.trade_id,
                f"ledger qty {sync.ledger_qty}, broker {sync.broker_qty}",
            )
        )
    for skipped in plan.skipped:
        rows.append(("skip", skipped.symbol, "-", f"{skipped.qty}: {skipped.reason}"))
    if plan.options is not None:
        rows += plan.options.findings()
    return rows


def cmd_reconcile(args: argparse.Namespace, settings: Settings) -> int:
    """Run one reconcile and print its plan and outcome."""
    try:
        request = ReconcileInput(dry_run=args.dry_run, max=args.max, run_source="cli")
    except ValueError as exc:
        return fail(f"invalid reconcile: {exc}", code=2)

    result = run_workflow(settings, ReconcileWorkflow.run, request, reconcile.CLI_ID_PREFIX)
    if args.json:
        return emit_model(result, code=0 if result.ok else 1)
    if result.plan is not None:
        rows = plan_rows(result.plan)
        if result.plan.options is not None:
            rows += result.plan.options.restarted_findings(result.restarted_option_trades)
        say_table(
            rows,
            header=("ACTION", "SYMBOL", "TRADE", "DETAIL"),
            empty="nothing to do: the ledger matches the broker",
        )
        deferred = result.plan.deferred
        if result.plan.options is not None:
            deferred += result.plan.options.deferred
        if deferred:
            say(f"{deferred} more actions deferred by --max")
    if result.dry_run:
        say(f"dry run {result.run_id}: nothing changed")
    else:
        say(
            f"run {result.run_id}: checked {result.checked}, closed {result.closed}, "
            f"ghosts signalled {result.ghosts_signalled}, adopted {result.adopted}, "
            f"synced {result.synced} ({result.duration_ms} ms)"
        )
    if result.plan is not None and result.plan.options is not None:
        say(
            f"options: adopted {result.options_adopted}, closed {result.options_closed}, "
            f"ghosts left to their running workflow {result.options_ghosts_running}, "
            f"leg mismatches {result.option_mismatches}, "
            f"unmanaged legs {result.unmanaged_option_legs}, "
            f"restarted {result.options_restarted}"
        )
        for trade_id in result.adopted_option_trades:
            say(f"adopted option trade {trade_id} (workflow option-trade-{trade_id})")
        for trade_id in result.restarted_option_trades:
            say(
                f"restarted option trade {trade_id}: its workflow had ended with every leg "
                f"held (new run of option-trade-{trade_id})"
            )
    if not result.ok:
        return fail(result.error or "reconcile failed")
    return 0


def cmd_auto_manage(args: argparse.Namespace, settings: Settings) -> int:
    """Run one protection sweep and print what it did per position."""
    result = run_workflow(
        settings, AutoManageWorkflow.run, AutoManageInput(), auto_manage.CLI_ID_PREFIX
    )
    if args.json:
        return emit_model(result, code=0 if result.ok else 1)
    rows: list[tuple[str, ...]] = [
        (
            g.symbol,
            str(g.qty),
            "yes" if g.covered else "NO",
            g.action.value if g.action else f"error: {g.error}",
            g.trade_id or "-",
        )
        for g in result.guards
    ]
    say_table(rows, header=("SYMBOL", "QTY", "STOP SEEN", "GUARD", "TRADE"))
    say(
        f"{result.positions} positions: {result.signalled} guards signalled, "
        f"{result.started} started"
    )
    return 0 if result.ok else fail(result.error or "auto-manage failed")
