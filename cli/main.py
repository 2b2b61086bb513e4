"""Argument parsing and dispatch for starter.py."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from cli import (
    backtest,
    broker_cmd,
    codec_server,
    condor,
    control,
    dev,
    drain,
    market,
    options,
    prelive,
    reconcile,
    report,
    schedules,
    status,
    trade,
)
from cli.output import emit_json, fail, say, table
from devstack.stack import StackError
from ops.tracing import command_span, configure_tracing
from settings import ROOT, ConfigError, Settings, load_settings


def cmd_settings_show(args: argparse.Namespace, settings: Settings) -> int:
    """Print the effective configuration with secrets masked."""
    shown = settings.masked()
    if args.json:
        emit_json(shown)
        return 0
    say(table(sorted(shown.items()), header=("SETTING", "VALUE")))
    say("")
    say(
        "broker: "
        + (
            "local paper broker (ALPACA_API_KEY unset)"
            if settings.uses_paper_broker
            else f"Alpaca ({'paper' if settings.alpaca_paper else 'LIVE'})"
        )
    )
    say(
        "ledger: "
        + (
            "embedded PostgreSQL (DATABASE_URL unset)"
            if settings.uses_embedded_postgres
            else "DATABASE_URL"
        )
    )
    return 0


def cmd_test(args: argparse.Namespace, settings: Settings | None) -> int:
    """Run the test suite with pytest (extra arguments pass through)."""
    command = [sys.executable, "-m", "pytest", *args.pytest_args]
    os.chdir(ROOT)
    os.execv(sys.executable, command)


def build_parser() -> argparse.ArgumentParser:
    """The full command tree."""
    parser = argparse.ArgumentParser(
        description="durable-trader: automated US-equities trading on Alpaca, run by Temporal.",
        epilog="Configuration comes from the environment and .env; see `settings show`.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    settings_cmd = commands.add_parser("settings", help="show the effective configuration")
    settings_sub = settings_cmd.add_subparsers(
        dest="settings_command", required=True, metavar="COMMAND"
    )
    show = settings_sub.add_parser("show", help="print settings with secrets masked")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(handler=cmd_settings_show)

    dev.register(commands)
    trade.register(commands)
    drain.register(commands)
    reconcile.register(commands)
    control.register(commands)
    status.register(commands)
    schedules.register(commands)
    market.register(commands)
    options.register(commands)
    condor.register(commands)
    broker_cmd.register(commands)
    backtest.register(commands)
    report.register(commands)
    prelive.register(commands)
    codec_server.register(commands)

    test = commands.add_parser("test", help="run the test suite (arguments go to pytest)")
    test.add_argument("pytest_args", nargs=argparse.REMAINDER)
    test.set_defaults(handler=cmd_test, needs_settings=False)
    return parser


def command_name(parser: argparse.ArgumentParser, argv: Sequence[str]) -> str:
    """The command's words (`trade open`), without its arguments: a bounded span name."""
    words: list[str] = []
    current = parser
    for token in argv:
        if token.startswith("-"):
            continue
        choices = next(
            (a.choices for a in current._actions if isinstance(a, argparse._SubParsersAction)),
            None,
        )
        if not choices or token not in choices:
            break
        words.append(token)
        current = choices[token]
    return " ".join(words)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, load settings, dispatch; configuration errors exit 2 with one line."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    try:
        settings = load_settings() if getattr(args, "needs_settings", True) else None
        if settings is not None:
            configure_tracing(settings, "durable-trader-cli")
        # The trace's root: the workflow, activity and broker spans of this command join it.
        with command_span(command_name(parser, argv)) as span:
            code = int(args.handler(args, settings))
            span.set_attribute("cli.exit_code", code)
            return code
    except ConfigError as exc:
        return fail(str(exc), code=2)
    except StackError as exc:
        return fail(str(exc), code=1)
    except KeyboardInterrupt:
        return fail("interrupted", code=130)
