"""`starter.py broker verify [--json]`: does the configured broker behave as the guard assumes?"""

from __future__ import annotations

import argparse
import asyncio
import sys
import textwrap

from broker.alpaca import AlpacaGateway
from broker.endpoint import broker_endpoint
from broker.errors import BrokerError
from broker.verify import (
    EXIT_BAD_INPUT,
    EXIT_INTERRUPTED,
    CheckResult,
    VerifyOptions,
    VerifyRefused,
    VerifyReport,
    exit_code,
    live_refusal,
    normalized_symbol,
    run_verify,
)
from broker.verify_session import READ_TIMEOUT_S, Verdict
from cli.broker_calls import broker_failed, cli_broker
from cli.output import emit_model, fail, market_state, say, table
from settings import Settings
from trading.broker_budget import Priority

# Column widths of the human table (assumption, expected, observed, verdict).
WIDTHS = (34, 40, 60, 7)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `broker verify`."""
    broker = commands.add_parser("broker", help="the broker account itself")
    sub = broker.add_subparsers(dest="broker_command", required=True, metavar="COMMAND")
    verify = sub.add_parser(
        "verify",
        help="check every broker behaviour the guard relies on (tiny far-priced orders, "
        "all cancelled)",
        description="Places one-share day orders priced far from the market on a symbol the "
        "account does not hold, compares the broker's answers with Alpaca's documented "
        "behaviour and cancels everything again (also on Ctrl-C). Exit 0: no FAIL; 1: a FAIL "
        "or an incomplete cleanup; 2: bad input or configuration; 130: interrupted.",
    )
    verify.add_argument(
        "--json", action="store_true", help="print JSON (schema: docs/broker_verify.schema.json)"
    )
    verify.add_argument(
        "--symbol", help="symbol to use (default: the first of SPY, QQQ, IWM, DIA not held)"
    )
    verify.add_argument(
        "--with-position",
        action="store_true",
        help="also check leg states after a fill, group cancel of the take-profit and share "
        "reservation: buys 1 share at market and sells it at the end (market hours only)",
    )
    verify.add_argument(
        "--allow-live",
        action="store_true",
        help="run against a live account (also needs TRADING_MODE=live and its confirmation)",
    )
    verify.set_defaults(handler=cmd_verify)


def cmd_verify(args: argparse.Namespace, settings: Settings) -> int:
    """Refuse what must not run, run the checks, print the table or JSON."""
    try:
        symbol = normalized_symbol(args.symbol) if args.symbol is not None else None
    except VerifyRefused as exc:
        return fail(str(exc), code=EXIT_BAD_INPUT)
    endpoint = broker_endpoint(settings)
    refusal = live_refusal(settings, endpoint, args.allow_live)
    if refusal is not None:
        return fail(refusal, code=EXIT_BAD_INPUT)
    options = VerifyOptions(symbol=symbol, with_position=args.with_position)
    try:
        asyncio.run(_wait_for_the_broker(settings))
    except BrokerError as exc:
        return broker_failed(exc, settings)
    gateway = AlpacaGateway(endpoint, read_timeout_s=READ_TIMEOUT_S)
    try:
        report = run_verify(
            endpoint, options, progress=None if args.json else _progress, gateway=gateway
        )
    except VerifyRefused as exc:
        return fail(str(exc), code=EXIT_BAD_INPUT)
    finally:
        asyncio.run(_count_the_run(settings, gateway))
    code = exit_code(report)
    if args.json:
        emit_model(report)
    else:
        _print(report)
    if code == EXIT_INTERRUPTED:
        cleaned = "cleanup complete" if report.cleanup.complete else "cleanup INCOMPLETE"
        return fail(f"interrupted after {len(report.checks)} checks; {cleaned}", code=code)
    return code


async def _wait_for_the_broker(settings: Settings) -> None:
    """Start only when the broker answers: a rate limit is waited out as by every CLI read."""
    async with cli_broker(settings) as broker:
        await broker.get_clock()


async def _count_the_run(settings: Settings, gateway: AlpacaGateway) -> None:
    """The run's calls (sent synchronously by its checks) go into the shared budget afterwards,
    with the broker's last count, so the workers see the minute as it was spent."""
    async with cli_broker(settings) as broker:
        await broker.budget.charge(
            Priority.TRADE, "broker verify", gateway.rate_limits.requests_sent
        )
        if gateway.rate_limits.latest is not None:
            await broker.budget.learn(gateway.rate_limits.latest)


def _progress(result: CheckResult) -> None:
    sys.stderr.write(f"  {result.verdict.value:4}  {result.name} ({result.seconds:.1f} s)\n")
    sys.stderr.flush()


def _print(report: VerifyReport) -> None:
    target = report.target
    say(
        f"broker verify: {target.kind} at {target.trading_url}, symbol {target.symbol} "
        f"(reference {target.reference_price:.2f}), {market_state(target.market_open)}"
    )
    say("")
    rows: list[tuple[str, ...]] = []
    for check in report.checks:
        if rows:
            rows.append(("",) * len(WIDTHS))  # a blank line between checks
        rows += _wrapped((check.assumption, check.expected, check.observed, check.verdict.value))
    say(table(rows, header=("ASSUMPTION", "EXPECTED", "OBSERVED", "VERDICT")))
    failed = [c for c in report.checks if c.verdict is Verdict.FAIL]
    noted = [c for c in report.checks if c.note and c.verdict is not Verdict.FAIL]
    if failed:
        say("")
        say("Where this broker differs, the guard behaviour affected:")
        for check in failed:
            say(f"  FAIL {check.name} -> affects: {check.affects}")
    for check in noted:
        say(f"  note {check.name}: {check.note}")
    say("")
    say(_cleanup_line(report))
    s = report.summary
    say(
        f"summary: {s.passed} PASS, {s.failed} FAIL, {s.skipped} SKIP"
        + ("" if s.ok else " - NOT OK")
    )


def _wrapped(cells: tuple[str, ...]) -> list[tuple[str, ...]]:
    """One check as table lines: long cells wrap onto continuation lines of their column."""
    columns = [
        textwrap.wrap(cell, width) or [""] for cell, width in zip(cells, WIDTHS, strict=True)
    ]
    height = max(len(lines) for lines in columns)
    return [tuple(lines[i] if i < len(lines) else "" for lines in columns) for i in range(height)]


def _cleanup_line(report: VerifyReport) -> str:
    c = report.cleanup
    position = ""
    if c.position_opened:
        position = (
            "; the test share was sold"
            if c.position_left is None
            else f"; {c.position_left} shares still held"
        )
    if c.complete:
        return (
            f"cleanup complete: {c.orders_placed} orders placed, {len(c.orders_cancelled)} "
            f"cancelled by the cleanup, none left open{position}"
        )
    left = ", ".join(c.orders_left_open) or "none"
    errors = f" ({'; '.join(c.errors[:3])})" if c.errors else ""
    return f"cleanup INCOMPLETE: orders left open: {left}{position}{errors}"
