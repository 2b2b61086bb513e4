"""`starter.py halt|resume|pause-entries|flatten|control status`: the trading control switch."""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError

from activities.control_link import ensure_control
from broker.errors import BrokerError
from cli.broker_calls import broker_failed, cli_broker
from cli.output import confirm, emit_json, fail, say, table
from clients import make_client, make_pool
from contracts import control
from contracts.base import Signal
from ledger.option_trades import OptionTrades
from settings import ConfigError, Settings
from trading.broker_models import BrokerOrder, BrokerPosition
from trading.control import (
    ControlCommand,
    ControlRequest,
    ControlState,
    FlattenReport,
    FlattenRequest,
    decide,
    unchanged_note,
    working_orders,
)
from trading.entry_gate import control_gate, control_view_of
from trading.options.records import OptionTradesQuery

CLI_ACTOR = "cli"
CONFIRM_WORD = "flatten"
T = TypeVar("T")

_SIGNALS: dict[ControlCommand, Signal[ControlRequest]] = {
    ControlCommand.HALT: control.HALT,
    ControlCommand.RESUME: control.RESUME,
    ControlCommand.PAUSE_ENTRIES: control.PAUSE_ENTRIES,
}


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `halt`, `resume`, `pause-entries`, `flatten` and `control status`."""
    for name, command, text, default in (
        ("halt", ControlCommand.HALT, "stop new entries (stops stay in place)", "manual halt"),
        ("resume", ControlCommand.RESUME, "allow new entries again", "manual resume"),
        (
            "pause-entries",
            ControlCommand.PAUSE_ENTRIES,
            "no new entries; open trades run as usual (REDUCING)",
            "manual pause",
        ),
    ):
        parser = commands.add_parser(name, help=text)
        parser.add_argument("--reason", default=f"{default} from the CLI", help="why (audited)")
        parser.set_defaults(handler=cmd_change, control_command=command)

    flatten = commands.add_parser(
        "flatten",
        help="halt, cancel entries, exit every position at market and close every option trade",
    )
    flatten.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    flatten.add_argument("--reason", default="manual flatten from the CLI", help="why (audited)")
    flatten.add_argument(
        "--timeout", type=float, default=180.0, help="seconds to wait for flat (default 180)"
    )
    flatten.set_defaults(handler=cmd_flatten)

    control = commands.add_parser("control", help="the trading control state")
    sub = control.add_subparsers(dest="control_command", required=True, metavar="COMMAND")
    status = sub.add_parser("status", help="mode, reason, since, recent changes")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(handler=cmd_status)


def _with_control(
    settings: Settings, action: Callable[[WorkflowHandle[Any, Any]], Awaitable[T]]
) -> T:
    async def go() -> T:
        client = await make_client(settings)
        handle = await ensure_control(
            client,
            settings.temporal_task_queue,
            settings.daily_loss_limit,
            settings.daily_loss_limit_pct,
        )
        return await action(handle)

    return asyncio.run(go())


async def _state(handle: WorkflowHandle[Any, Any]) -> ControlState:
    state: ControlState = await handle.query(control.CONTROL_STATE.name, result_type=ControlState)
    return state


def _summary(state: ControlState) -> str:
    since = f"{state.since:%Y-%m-%d %H:%M:%S} UTC" if state.since else "-"
    return f"trading {state.mode.value} since {since} by {state.actor}: {state.reason}"


def cmd_change(args: argparse.Namespace, settings: Settings) -> int:
    """Signal halt, resume or pause_entries and wait until the workflow has applied it."""
    command: ControlCommand = args.control_command
    request = ControlRequest(reason=args.reason, actor=CLI_ACTOR)

    async def change(handle: WorkflowHandle[Any, Any]) -> tuple[ControlState, ControlState]:
        before = await _state(handle)
        await handle.signal(_SIGNALS[command].name, request)
        deadline = time.monotonic() + 15
        after = before
        while after.seq <= before.seq and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            after = await _state(handle)
        return before, after

    before, after = _with_control(settings, change)
    if after.seq <= before.seq:
        return fail("the control workflow did not apply the command within 15 s; is a worker up?")
    if decide(before.mode, command) is None:
        note = unchanged_note(before.mode, command)
        if after.mode is before.mode and command is ControlCommand.PAUSE_ENTRIES:
            return fail(f"not paused: {note}", code=1)
        say(f"unchanged ({note}); {_summary(after)}")
        return 0
    say(_summary(after))
    return 0


def cmd_flatten(args: argparse.Namespace, settings: Settings) -> int:
    """Confirm (unless --yes; exit 2 when refused), then run the flatten update and report."""
    try:
        positions, orders = asyncio.run(_flatten_scope(settings))
    except BrokerError as exc:
        return broker_failed(exc, settings)
    symbols = ", ".join(sorted(p.symbol for p in positions)) or "none"
    if not args.yes:
        option_trades = asyncio.run(_open_option_trades(settings))
        refusal = confirm(
            "flatten",
            f"Flatten will exit {len(positions)} positions ({symbols}) and cancel "
            f"{len(orders)} orders. {_option_scope(option_trades)}",
            CONFIRM_WORD,
        )
        if refusal is not None:
            return fail(refusal, code=2)
    request = FlattenRequest(
        reason=args.reason, actor=CLI_ACTOR, timeout=timedelta(seconds=args.timeout)
    )

    async def flatten(handle: WorkflowHandle[Any, Any]) -> FlattenReport:
        report: FlattenReport = await handle.execute_update(
            control.FLATTEN.name, request, result_type=FlattenReport
        )
        return report

    try:
        report = _with_control(settings, flatten)
    except WorkflowUpdateFailedError as exc:
        return fail(f"flatten failed: {exc.cause}")
    say(
        f"flatten {'done' if report.done else 'INCOMPLETE'} after {report.rounds} rounds: "
        f"{len(report.signalled_trades)} trades told to exit, "
        f"{len(report.cancelled_orders)} orders cancelled, "
        f"closed outside positions: {', '.join(report.closed_symbols) or 'none'}, "
        f"{len(report.signalled_option_trades)} option trades told to close"
    )
    say(report.note)
    for error in report.errors[-5:]:
        say(f"  error: {error}")
    say("trading is HALTED; `resume` allows new entries again")
    return 0 if report.done else 1


def _option_scope(trade_ids: list[str] | None) -> str:
    if trade_ids is None:
        return "It will close every open option trade (the ledger could not be read to count them)."
    if not trade_ids:
        return "No option trade is open."
    return f"It will close {len(trade_ids)} option trades ({', '.join(trade_ids)})."


async def _open_option_trades(settings: Settings) -> list[str] | None:
    """The ids of the option trades the ledger shows open, or None when it cannot be read
    (the flatten itself reads them again, round by round)."""
    try:
        pool = await make_pool(settings, min_size=1, max_size=1)
    except ConfigError:
        return None
    try:
        found = await OptionTrades(pool).list(OptionTradesQuery(open_only=True))
    finally:
        await pool.close()
    return [t.id for t in found.trades]


async def _flatten_scope(settings: Settings) -> tuple[list[BrokerPosition], list[BrokerOrder]]:
    """What flatten would act on: the positions held and the working orders."""
    async with cli_broker(settings) as broker:
        positions = [p for p in await broker.get_positions() if p.qty != 0]
        orders = list(working_orders(await broker.get_open_orders()))
    return positions, orders


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    """Query the control state."""
    state = _with_control(settings, _state)
    gate = control_gate(control_view_of(state))
    allowed = gate.allowed
    if args.json:
        payload = state.model_dump(mode="json")
        payload["entries_allowed"] = allowed
        payload["entries_blocked_reason"] = gate.reason or None
        payload["entries_blocked_code"] = gate.code.value if gate.code else None
        emit_json(payload)
        return 0
    check = state.last_loss_check
    rows = [
        ("mode", state.mode.value),
        ("reason", state.reason),
        ("since", f"{state.since:%Y-%m-%d %H:%M:%S} UTC" if state.since else "-"),
        ("actor", state.actor),
        ("entries", "allowed" if allowed else "blocked"),
        ("rescue alerts", str(len(state.rescue_alerts))),
        ("daily P&L", f"{check.daily_pnl} (limit {check.limit})" if check else "not checked"),
    ]
    if state.flatten is not None:
        flat = state.flatten
        rows.append(
            ("last flatten", f"{'done' if flat.done else 'running/incomplete'}: {flat.note}")
        )
    say(table(rows))
    if state.history:
        say("")
        say(
            table(
                [
                    (
                        f"{c.at:%Y-%m-%d %H:%M:%S}",
                        c.command.value,
                        f"{c.from_mode.value} -> {c.to_mode.value}",
                        c.actor,
                        c.reason,
                    )
                    for c in state.history[-10:]
                ],
                header=("at (UTC)", "command", "mode", "actor", "reason"),
            )
        )
    return 0
