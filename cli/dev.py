"""`starter.py dev ...`: run the embedded stack (up, status, down, check)."""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import uuid
from typing import Any

from temporalio.client import WorkflowFailureError
from temporalio.exceptions import FailureError

from cli.output import emit_json, fail, say, table
from clients import make_client
from devstack.config import DevConfig, load_dev_config
from devstack.down import stop_recorded_stack
from devstack.processes import pid_alive, wait_until
from devstack.services import (
    apply_schedules,
    demo_flag,
    open_demo_trades,
    start_singletons,
)
from devstack.stack import DevStack, StackError
from devstack.state import StackState, read_state
from settings import ROOT, Settings

# Not handed to the background `dev up`: --detach itself, and argparse's own --help.
SKIPPED_UP_OPTIONS = frozenset({"detach", "help"})


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `dev` command group."""
    dev = commands.add_parser("dev", help="run the embedded development stack")
    sub = dev.add_subparsers(dest="dev_command", required=True, metavar="COMMAND")
    up = sub.add_parser("up", help="start Temporal, PostgreSQL, paper broker and worker")
    up.add_argument(
        "--detach",
        action="store_true",
        help="start in the background and return once the stack is ready",
    )
    demo_flag(up)
    up.set_defaults(handler=cmd_up, up_parser=up)
    status = sub.add_parser("status", help="what runs where (exit 1 when the stack is down)")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(handler=cmd_status)
    down = sub.add_parser("down", help="stop the stack (also cleans up after a crash)")
    down.set_defaults(handler=cmd_down)
    check = sub.add_parser("check", help="run a workflow that writes and reads the ledger")
    check.add_argument("--json", action="store_true", help="print JSON")
    check.set_defaults(handler=cmd_check)


def _describe(state: StackState, settings: Settings) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    temporal = state.component("temporal")
    if temporal is not None:
        rows.append(("Web UI", temporal.url, "up" if temporal.alive() else "DOWN"))
        rows.append(
            (
                "Temporal",
                f"{temporal.address} namespace={settings.temporal_namespace}",
                "up" if temporal.alive() else "DOWN",
            )
        )
    for component in state.components:
        if component.name == "temporal":
            continue
        where = component.url or component.address or f"pid {component.pid}"
        if component.name == "postgres":
            where = f"{component.address} (embedded; data {component.url.rsplit('/', 1)[-1]})"
        if component.name.startswith("worker"):
            where = f"pid {component.pid}, task queue {settings.temporal_task_queue}"
        rows.append((component.name, where, "up" if component.alive() else "DOWN"))
    return rows


def _print_stack(state: StackState, settings: Settings) -> None:
    say(table([*_describe(state, settings)], header=("component", "where", "state")))
    say(f"logs: {settings.state_dir / 'logs'}")


def cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    """Start the stack in the foreground (Ctrl-C stops it) or detached."""
    config = load_dev_config(settings.dev_config)
    if args.detach:
        return _up_detached(settings, foreground_argv(args.up_parser, args))
    stack = DevStack(settings, config, say)
    running = stack.preflight()
    if running is not None:
        say(f"the dev stack is already running (supervisor pid {running.supervisor_pid}):")
        _print_stack(running, settings)
        return 0

    def services() -> None:
        state = read_state(settings.state_dir)
        assert state is not None
        say("")
        say("durable-trader dev stack is running:")
        _print_stack(state, settings)
        _run_stack_check(settings)
        _run_services(settings, demo=not args.no_demo and settings.uses_paper_broker)
        say("Press Ctrl-C to stop everything.")

    try:
        return stack.run(services)
    except StackError as exc:
        return fail(str(exc))
    except KeyboardInterrupt:
        return fail("interrupted during start; the dev stack is stopped")


def foreground_argv(up: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    """The `dev up` options that reproduce `args` without --detach: the background run's argv.

    Read from the parser, so an option added to `dev up` later survives --detach too.
    """
    argv: list[str] = []
    for action in up._actions:
        if not action.option_strings or action.dest in SKIPPED_UP_OPTIONS:
            continue
        value = getattr(args, action.dest, action.default)
        if value == action.default:
            continue
        option = action.option_strings[-1]  # the long form
        if action.nargs == 0:  # a flag: store_true, store_false, store_const
            argv.append(option)
        else:
            values = value if isinstance(value, list) else [value]
            argv += [option, *map(str, values)]
    return argv


def _up_detached(settings: Settings, options: list[str]) -> int:
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    log = (settings.state_dir / "stack.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "starter.py"), "dev", "up", *options],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        cwd=ROOT,
        env=os.environ.copy(),
    )

    def settled() -> bool:
        state = read_state(settings.state_dir)
        return process.poll() is not None or (state is not None and state.ready)

    wait_until(settled, 180)
    state = read_state(settings.state_dir)
    if state is None or not state.ready or not pid_alive(state.supervisor_pid):
        tail = (settings.state_dir / "stack.log").read_text(errors="replace").strip()
        last = tail.splitlines()[-1] if tail else "no output"
        return fail(f"the stack did not start: {last} (see {settings.state_dir / 'stack.log'})")
    say(f"dev stack started in the background (supervisor pid {state.supervisor_pid}):")
    _print_stack(state, settings)
    say("stop it with: python starter.py dev down")
    return 0


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    """Show the running stack."""
    state = read_state(settings.state_dir)
    running = state is not None and pid_alive(state.supervisor_pid)
    if args.json:
        payload: dict[str, Any] = {"running": running, "supervisor_pid": None, "components": []}
        if state is not None:
            payload["supervisor_pid"] = state.supervisor_pid
            payload["started_at"] = state.started_at.isoformat()
            payload["ready"] = state.ready
            payload["components"] = [
                {
                    **c.model_dump(include={"name", "pid", "address", "url", "log"}),
                    "alive": c.alive(),
                }
                for c in state.components
            ]
        emit_json(payload)
        return 0 if running else 1
    if state is None:
        say("the dev stack is not running (start it with: python starter.py dev up)")
        return 1
    if not running:
        say(
            f"the dev stack record is stale: supervisor pid {state.supervisor_pid} is gone; "
            "run `python starter.py dev down` to clean up"
        )
        return 1
    say(
        f"dev stack running (supervisor pid {state.supervisor_pid}, since "
        f"{state.started_at:%Y-%m-%d %H:%M:%S} UTC):"
    )
    _print_stack(state, settings)
    return 0


def cmd_down(args: argparse.Namespace, settings: Settings) -> int:
    """Stop the stack or its leftovers."""
    config: DevConfig = load_dev_config(settings.dev_config)
    if not stop_recorded_stack(settings, config, say):
        say("the dev stack is not running; nothing to stop")
    else:
        say("dev stack stopped")
    return 0


def _run_services(settings: Settings, demo: bool) -> None:
    async def start() -> None:
        client = await make_client(settings)
        say("services:")
        await start_singletons(client, settings, say)
        await apply_schedules(client, settings, say)
        if demo:
            await open_demo_trades(client, settings, say)

    try:
        asyncio.run(start())
    except Exception as exc:  # the stack stays up; the user sees what did not start
        say(f"services FAILED to start: {type(exc).__name__}: {exc}")


def _run_stack_check(settings: Settings) -> None:
    try:
        result = asyncio.run(_stack_check(settings))
    except Exception as exc:  # the stack stays up; the user sees why the check failed
        say(f"stack check FAILED: {exc}")
        return
    say(
        f"stack check ok: workflow {result['workflow_id']} wrote and read back audit row "
        f"{result['audit_id']}; broker clock {result['broker_time']} "
        f"(market {'open' if result['market_open'] else 'closed'})"
    )


async def _stack_check(settings: Settings) -> dict[str, Any]:
    from contracts import stack_check
    from trading.models import StackCheckInput
    from workflows.stack_check import StackCheckWorkflow

    client = await make_client(settings)
    result = await asyncio.wait_for(
        client.execute_workflow(
            StackCheckWorkflow.run,
            StackCheckInput(requested_by="cli"),
            id=f"{stack_check.ID_PREFIX}-{uuid.uuid4().hex[:12]}",
            task_queue=settings.temporal_task_queue,
        ),
        timeout=60,
    )
    return result.model_dump(mode="json")


def cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    """Run the stack check workflow against a running stack."""
    try:
        result = asyncio.run(_stack_check(settings))
    except WorkflowFailureError as exc:
        cause: BaseException | None = exc.cause
        while isinstance(cause, FailureError) and cause.cause is not None:
            cause = cause.cause  # the innermost failure says what went wrong
        return fail(f"stack check failed: {cause}")
    except TimeoutError:
        return fail(
            "stack check did not finish in 60 s: is a worker running on task queue "
            f"{settings.temporal_task_queue}? (python starter.py dev status)"
        )
    if args.json:
        emit_json(result)
    else:
        say(
            f"stack check ok={result['round_trip_ok']}: workflow {result['workflow_id']} "
            f"wrote and read back audit row {result['audit_id']}; broker clock "
            f"{result['broker_time']} (market {'open' if result['market_open'] else 'closed'})"
        )
    return 0 if result["round_trip_ok"] else 1
