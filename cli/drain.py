"""`starter.py drain` and `signals ...`: score PENDING signals, add one, see the funnel."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from cli.output import emit_json, emit_model, fail, say, table
from cli.run import with_client
from clients import make_pool
from contracts import drain
from ledger.runs import EntryRuns
from ledger.signal_paths import SignalPathsRepository
from ledger.signals import Signals
from settings import Settings
from trading.broker_models import OrderSide
from trading.ledger_records import SignalCounts, SignalCreate
from trading.models import JsonScalar
from trading.scoring import DEFAULT_SCORER, DrainInput, DrainProgress
from trading.signal_path import SignalPathQuery
from workflows.drain import ScoreDrainWorkflow

DrainHandle = WorkflowHandle[ScoreDrainWorkflow, Any]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `drain` and the `signals` command group."""
    drain = commands.add_parser(
        "drain", help="score PENDING signals now (joins a drain that is already running)"
    )
    drain.add_argument("--limit", type=int, default=10_000, help="at most this many signals")
    drain.add_argument("--batch", type=int, default=100, help="signals per activity call")
    drain.add_argument("--scorer", default=DEFAULT_SCORER, help=f"default {DEFAULT_SCORER}")
    drain.add_argument("--json", action="store_true", help="print JSON")
    drain.set_defaults(handler=cmd_drain)

    signals = commands.add_parser("signals", help="add signals and see the signal funnel")
    sub = signals.add_subparsers(dest="signals_command", required=True, metavar="COMMAND")
    add = sub.add_parser("add", help="add a PENDING signal")
    add.add_argument("symbol", help="ticker, e.g. AAPL")
    add.add_argument("--strategy", required=True, help="the strategy that produced it")
    add.add_argument("--side", choices=["buy", "sell"], default="buy")
    add.add_argument(
        "--feature",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a feature (repeatable); numbers, true/false and null are parsed",
    )
    add.add_argument("--key", help="idempotency key (default: a new one)")
    add.add_argument("--json", action="store_true", help="print JSON")
    add.set_defaults(handler=cmd_signals_add)
    funnel = sub.add_parser(
        "funnel",
        help="signals created, scored, errored; each one's path (rank, verdict, decision)",
    )
    funnel.add_argument("--window-hours", type=int, default=24, help="recent window (default 24)")
    funnel.add_argument(
        "--limit",
        type=int,
        choices=range(1, 501),
        metavar="1-500",
        default=20,
        help="newest signal paths shown (default 20)",
    )
    funnel.add_argument("--json", action="store_true", help="print JSON")
    funnel.set_defaults(handler=cmd_signals_funnel)


async def start_or_join_drain(
    client: Client,
    request: DrainInput,
    task_queue: str,
    workflow_id: str = drain.WORKFLOW_ID,
) -> tuple[DrainHandle, bool]:
    """Start the drain under its fixed id, or join the one running; True when this started it."""
    try:
        handle = await client.start_workflow(
            ScoreDrainWorkflow.run,
            request,
            id=workflow_id,
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        )
        return handle, True
    except WorkflowAlreadyStartedError as running:
        return (
            client.get_workflow_handle_for(
                ScoreDrainWorkflow.run, workflow_id, run_id=running.run_id
            ),
            False,
        )


def _progress_line(progress: DrainProgress) -> str:
    return (
        f"{progress.phase}: {progress.batches} batches, {progress.claimed} claimed, "
        f"{progress.scored} scored, {progress.error} error, {progress.expired} expired"
    )


async def _wait_with_progress(handle: DrainHandle) -> Any:
    result = asyncio.ensure_future(handle.result())
    last = ""
    while True:
        done, _ = await asyncio.wait({result}, timeout=1.0)
        if done:
            return result.result()
        try:
            progress = await handle.query(drain.PROGRESS.name, result_type=DrainProgress)
            line = _progress_line(progress)
        except Exception:  # a query racing the end of the run; the result follows shortly
            continue
        if line != last:
            # stderr, so `--json` output on stdout stays one document.
            sys.stderr.write(line + "\n")
            sys.stderr.flush()
            last = line


def cmd_drain(args: argparse.Namespace, settings: Settings) -> int:
    """Start (or join) the score drain and wait for its result."""
    try:
        request = DrainInput(limit=args.limit, batch=args.batch, scorer=args.scorer)
    except ValueError as exc:
        return fail(f"invalid drain: {exc}", code=2)

    async def go(client: Client) -> Any:
        handle, started = await start_or_join_drain(client, request, settings.temporal_task_queue)
        if not started:
            sys.stderr.write(
                f"a drain is already running ({drain.WORKFLOW_ID}); waiting for it "
                "(its own limit and batch apply)\n"
            )
        return await _wait_with_progress(handle)

    result = with_client(settings, go)
    if args.json:
        return emit_model(result)
    say(
        table(
            [
                ("claimed", str(result.claimed)),
                ("scored", str(result.scored)),
                ("error", str(result.error)),
                ("expired", str(result.expired)),
                ("still pending", str(result.remaining_pending)),
                ("batches", str(result.batches)),
                (
                    "errors by reason",
                    ", ".join(f"{c} {n}" for c, n in sorted(result.error_codes.items())) or "-",
                ),
            ]
        )
    )
    return 0


def parse_feature(text: str) -> tuple[str, JsonScalar]:
    """KEY=VALUE; VALUE is a JSON scalar when it parses as one, else the text itself."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"--feature must be KEY=VALUE, got {text!r}")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return key.strip(), raw
    if isinstance(value, dict | list):
        return key.strip(), raw
    return key.strip(), value


def cmd_signals_add(args: argparse.Namespace, settings: Settings) -> int:
    """Insert one PENDING signal."""
    try:
        features = dict(parse_feature(f) for f in args.feature)
    except ValueError as exc:
        return fail(str(exc), code=2)
    symbol = args.symbol.strip().upper()
    cmd = SignalCreate(
        signal_key=args.key or f"cli-{symbol}-{uuid.uuid4().hex[:12]}",
        symbol=symbol,
        strategy=args.strategy,
        side=OrderSide(args.side),
        features=features,
    )

    async def go() -> Any:
        pool = await make_pool(settings, max_size=1)
        try:
            return await Signals(pool).insert(cmd)
        finally:
            await pool.close()

    written = asyncio.run(go())
    if args.json:
        return emit_model(written)
    signal = written.signal
    verb = "added" if written.applied else "already stored"
    say(f"signal {signal.signal_key} {verb}: {signal.symbol} {signal.strategy} {signal.status}")
    return 0


def _counts_row(label: str, counts: SignalCounts) -> tuple[str, ...]:
    return (
        label,
        str(counts.created),
        str(counts.scored),
        str(counts.error),
        str(counts.pending),
    )


def cmd_signals_funnel(args: argparse.Namespace, settings: Settings) -> int:
    """Signals created / scored / error / pending, each recent signal's path (strategy ->
    score -> rank -> verdict -> decision), decisions by reason, and the last entry pass."""

    async def go() -> Any:
        pool = await make_pool(settings, max_size=2)
        try:
            query = SignalPathQuery(window_hours=args.window_hours, limit=args.limit)
            return (
                await Signals(pool).funnel(args.window_hours),
                await SignalPathsRepository(pool).paths(query),
                await EntryRuns(pool).last(),
            )
        finally:
            await pool.close()

    funnel, paths, entry = asyncio.run(go())
    if args.json:
        emit_json(
            {
                "signals": funnel.model_dump(mode="json"),
                "decisions": paths.reasons,
                "paths": [p.model_dump(mode="json") for p in paths.paths],
                "last_entry_run": entry.model_dump(mode="json") if entry else None,
            }
        )
        return 0
    say(
        table(
            [
                _counts_row(f"last {funnel.window_hours} h", funnel.recent),
                _counts_row("all time", funnel.all_time),
            ],
            header=("signals", "created", "scored", "error", "pending"),
        )
    )
    if paths.reasons:
        say("")
        say(
            table(
                [(reason, str(n)) for reason, n in paths.reasons.items()],
                header=(f"decisions (last {paths.window_hours} h)", "signals"),
            )
        )
    if paths.paths:
        say("")
        say(
            table(
                [
                    (
                        p.signal_key,
                        p.strategy,
                        p.status.value,
                        "-" if p.score is None else str(p.score),
                        "-" if p.rank is None else str(p.rank),
                        p.decision.value if p.decision else "-",
                        p.reason or "-",
                        (p.detail or "")[:80],
                        p.trade_id or "-",
                    )
                    for p in paths.paths
                ],
                header=(
                    "signal",
                    "strategy",
                    "status",
                    "score",
                    "rank",
                    "decision",
                    "reason",
                    "detail",
                    "trade",
                ),
            )
        )
    if entry is None:
        say("entry: no entry pass yet")
    else:
        say(
            f"last entry pass {entry.at.isoformat(timespec='seconds')}: entered {entry.entered}, "
            f"skipped {entry.skipped}" + (f" ({entry.reason})" if entry.reason else "")
        )
    return 0
