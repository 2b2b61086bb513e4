"""`starter.py report day [--date D] [--json] [--html PATH]`: the burn-in report of one New
York trading day, read from the ledger (trades, option trades, orders' outcomes, risk events,
reconcile and entry runs, signal decisions, the broker-call budget, BrokerSync's last poll, the
audit log).

The figures and the verdict are trading/report/day.py's; the SQL that reads the day is here.
The HTML page (default .state/reports/<date>.html) embeds its PNG charts as data URIs.
Exit codes: 0 PASS or NO_ACTIVITY, 1 FAIL (or the HTML could not be written), 2 no ledger.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import asyncpg

from cli.output import emit_model, fail, say, say_table
from clients import make_pool
from ledger.codec import Connection, load_json, load_json_object
from ops.notifier import WebhookFailed, notify_now
from settings import ConfigError, Settings
from trading.broker_models import BrokerOrder
from trading.ledger_records import (
    EntryRunRecord,
    ExitIntent,
    ReconcileRunRecord,
    RiskEventRecord,
    TradeRecord,
)
from trading.models import AuditRow
from trading.notify import daily_report_notice
from trading.options.records import OptionTradeRecord
from trading.options.trade_models import OptionLeg
from trading.report.charts import render_charts
from trading.report.day import build_report, day_window, new_york_date
from trading.report.html import render_html
from trading.report.models import (
    BrokerCall,
    BrokerViewSymbol,
    DayLedger,
    DayReport,
    RateLimitBlock,
    ReportThresholds,
    SignalDecisionCount,
    VerdictResult,
)
from trading.strategies.sessions import NEW_YORK

_TRADES = """
SELECT id, symbol, side, origin, status, status_at, qty, entry_price, exit_price, stop_price,
       take_profit_price, stop_order_id, take_profit_order_id, protected_at, exit_intent,
       exit_intent_at, close_reason, realized_pnl, signal_id, workflow_id, opened_at, closed_at,
       created_at, updated_at
FROM trades
WHERE (created_at >= $1 AND created_at < $2)
   OR (closed_at >= $1 AND closed_at < $2)
   OR (created_at < $2 AND (closed_at IS NULL OR closed_at >= $2))
ORDER BY created_at, id
"""
# Option trades touching the window, by the same rule as _TRADES.
_OPTION_TRADES = """
SELECT id, underlying, strategy, origin, status, expiry, qty, legs, width, credit, max_loss,
       exit_debit, exit_reason, realized_pnl, note, workflow_id, opened_at, closed_at, status_at,
       created_at, updated_at
FROM option_trades
WHERE (created_at >= $1 AND created_at < $2)
   OR (closed_at >= $1 AND closed_at < $2)
   OR (created_at < $2 AND (closed_at IS NULL OR closed_at >= $2))
ORDER BY created_at, id
"""
_RISK_EVENTS = """
SELECT id, event_key, at, kind, severity, trade_id, symbol, detail
FROM risk_events WHERE at >= $1 AND at < $2 ORDER BY at, id
"""
_AUDIT = """
SELECT id, at, actor, action, reason, trade_id, detail, event_key
FROM audit_log WHERE at >= $1 AND at < $2 ORDER BY at, id
"""
_RECONCILE_RUNS = """
SELECT id, run_id, source, dry_run, started_at, finished_at, checked, closed, adopted, synced,
       ok, error, duration_ms
FROM reconcile_runs WHERE started_at >= $1 AND started_at < $2 ORDER BY started_at, id
"""
_ENTRY_RUNS = """
SELECT id, run_id, at, entered, skipped, reason, detail
FROM entry_runs WHERE at >= $1 AND at < $2 ORDER BY at, id
"""
_DECISIONS = """
SELECT decision, COALESCE(decision_reason, '') AS reason, count(*) AS n
FROM signals WHERE decided_at >= $1 AND decided_at < $2 AND decision IS NOT NULL
GROUP BY 1, 2 ORDER BY 3 DESC
"""
_CALLS = "SELECT at, slots FROM broker_calls WHERE at >= $1 AND at < $2 ORDER BY at"
_CALLS_KEPT_SINCE = "SELECT min(at) FROM broker_calls"
_BUDGET = """
SELECT account, blocked_until, blocked_reason, broker_limit FROM broker_budget
"""
_LAST_POLL = "SELECT observed_at FROM broker_view_poll WHERE id = 1"
_VIEW = "SELECT symbol, qty, open_orders FROM broker_view_symbols ORDER BY symbol"
# The newest moment anything happened in the ledger (the default day).
_LATEST = """
SELECT max(t) FROM (
    SELECT max(GREATEST(created_at, opened_at, closed_at)) AS t FROM trades
    UNION ALL SELECT max(GREATEST(created_at, opened_at, closed_at)) FROM option_trades
    UNION ALL SELECT max(at) FROM risk_events
    UNION ALL SELECT max(at) FROM audit_log
    UNION ALL SELECT max(started_at) FROM reconcile_runs
    UNION ALL SELECT max(at) FROM entry_runs
    UNION ALL SELECT max(decided_at) FROM signals
) AS latest
"""


class NoLedger(Exception):
    """The ledger cannot be read: not reachable, or not migrated."""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `report day`."""
    report = commands.add_parser("report", help="reports from the ledger (the day's burn-in)")
    sub = report.add_subparsers(dest="report_command", required=True, metavar="COMMAND")
    day = sub.add_parser(
        "day",
        help="one New York trading day: trades, P&L, rescues, gaps, reconcile, entries, "
        "broker calls, heartbeats, incidents and a PASS/FAIL verdict",
    )
    day.add_argument(
        "--date",
        type=_parse_date,
        help="YYYY-MM-DD (New York); default: the latest day with activity, or today",
    )
    day.add_argument(
        "--json", action="store_true", help="print JSON (schema: docs/report_day.schema.json)"
    )
    day.add_argument(
        "--html", type=Path, help="write the HTML page here (default .state/reports/<date>.html)"
    )
    day.add_argument("--no-html", action="store_true", help="do not write the HTML page")
    day.add_argument(
        "--notify",
        action="store_true",
        help="also send the verdict to ALERT_WEBHOOK_URL (once per day, however often run)",
    )
    day.add_argument(
        "--max-gap-s",
        type=float,
        default=10.0,
        help="an unprotected gap longer than this fails the day (default 10)",
    )
    day.add_argument(
        "--heartbeat-gap-min",
        type=float,
        default=10.0,
        help="a pause of a scheduled job longer than this fails the day (default 10)",
    )
    day.set_defaults(handler=cmd_report_day)


def _parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def cmd_report_day(args: argparse.Namespace, settings: Settings) -> int:
    """Read the day, print the report, write the HTML; the exit code follows the verdict."""
    thresholds = ReportThresholds(
        max_unprotected_gap_ms=int(args.max_gap_s * 1000),
        max_heartbeat_gap_s=max(1, int(args.heartbeat_gap_min * 60)),
    )
    try:
        ledger = asyncio.run(read_day(settings, args.date))
    except NoLedger as exc:
        return fail(str(exc), code=2)
    report = build_report(ledger, thresholds)
    html_path: Path | None = None
    html_error: str | None = None
    if not args.no_html:
        html_path = args.html or settings.state_dir / "reports" / f"{report.day}.html"
        try:
            write_html(report, html_path)
        except OSError as exc:
            html_error = f"cannot write the HTML report to {html_path}: {exc.strerror or exc}"
    code = 1 if report.verdict.result is VerdictResult.FAIL else 0
    if args.json:
        emit_model(report)
    else:
        show(report)
        if html_path is not None and html_error is None:
            say(f"HTML: {html_path}")
    if html_error is not None:
        return fail(html_error, code=1)
    if args.notify:
        sent = asyncio.run(_notify(settings, report))
        if not args.json:
            say(f"notify: {sent}")
    return code


async def _notify(settings: Settings, report: DayReport) -> str:
    """The day's verdict to the webhook (`daily_report:<date>`: one message a day)."""
    trades, options = report.trades, report.options
    figures = {
        "trades opened / closed": f"{trades.opened} / {trades.closed}",
        "realized P&L": f"{report.pnl.realized_pnl:.2f}",
        "winners / losers": f"{trades.winners} / {trades.losers}",
    }
    if options.trades:
        figures["option trades opened / closed"] = f"{options.opened} / {options.closed}"
    notice = daily_report_notice(
        report.day, report.verdict.result.value, report.verdict.reason, figures
    )
    pool = await make_pool(settings, max_size=2)
    try:
        receipt = await notify_now(settings, pool, notice)
    except WebhookFailed as exc:
        return f"not sent: {exc}"
    finally:
        await pool.close()
    return receipt.outcome.value


def write_html(report: DayReport, path: Path) -> None:
    """Render the charts and the page, and write it (folders made as needed)."""
    page = render_html(report, render_charts(report))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")


# --- reading the ledger --------------------------------------------------------------------


async def read_day(settings: Settings, day: date | None) -> DayLedger:
    """Everything the report needs for `day` (None: the latest day with activity, or today)."""
    try:
        pool = await make_pool(settings, min_size=1, max_size=2)
    except ConfigError as exc:
        raise NoLedger(f"no ledger: {exc}") from None
    try:
        async with pool.acquire() as conn:
            return await _read(conn, settings, day)
    except asyncpg.UndefinedTableError as exc:
        raise NoLedger(
            f"no ledger: the database has no {_table_of(exc)} table; apply the migrations "
            "(start a worker or `python starter.py dev up`)"
        ) from None
    finally:
        await pool.close()


def _table_of(exc: asyncpg.UndefinedTableError) -> str:
    text = str(exc)
    return text.split('"')[1] if text.count('"') >= 2 else "expected"


async def _read(conn: Connection, settings: Settings, day: date | None) -> DayLedger:
    generated_at = datetime.now(UTC)
    if day is None:
        latest: datetime | None = await conn.fetchval(_LATEST)
        day = new_york_date(latest or generated_at)
    start, end = day_window(day)
    window = (start, end)
    budget_rows = await conn.fetch(_BUDGET)
    limits = [r["broker_limit"] for r in budget_rows if r["broker_limit"]]
    view_rows = await conn.fetch(_VIEW)
    return DayLedger(
        day=day,
        window_start=start,
        window_end=end,
        generated_at=generated_at,
        trades=[_trade(r) for r in await conn.fetch(_TRADES, *window)],
        option_trades=[_option_trade(r) for r in await conn.fetch(_OPTION_TRADES, *window)],
        risk_events=[
            RiskEventRecord(**dict(r) | {"detail": load_json_object(r["detail"])})
            for r in await conn.fetch(_RISK_EVENTS, *window)
        ],
        audit=[
            AuditRow(**dict(r) | {"detail": load_json_object(r["detail"])})
            for r in await conn.fetch(_AUDIT, *window)
        ],
        reconcile_runs=[
            ReconcileRunRecord(**dict(r)) for r in await conn.fetch(_RECONCILE_RUNS, *window)
        ],
        entry_runs=[EntryRunRecord(**dict(r)) for r in await conn.fetch(_ENTRY_RUNS, *window)],
        signal_decisions=[
            SignalDecisionCount(decision=r["decision"], reason=r["reason"], count=r["n"])
            for r in await conn.fetch(_DECISIONS, *window)
        ],
        broker_calls=[
            BrokerCall(at=r["at"], slots=r["slots"]) for r in await conn.fetch(_CALLS, *window)
        ],
        broker_calls_kept_since=await conn.fetchval(_CALLS_KEPT_SINCE),
        broker_limit_seen=min(limits) if limits else None,
        budget_per_min=settings.broker_calls_per_min,
        rate_limit_blocks=[
            RateLimitBlock(
                account=r["account"],
                blocked_until=r["blocked_until"],
                reason=r["blocked_reason"] or "429",
            )
            for r in budget_rows
            if r["blocked_until"] is not None
        ],
        last_poll_at=await conn.fetchval(_LAST_POLL),
        broker_view=[
            BrokerViewSymbol(
                symbol=r["symbol"],
                qty=r["qty"],
                open_orders=[BrokerOrder.model_validate(o) for o in json.loads(r["open_orders"])],
            )
            for r in view_rows
        ],
    )


def _trade(record: asyncpg.Record) -> TradeRecord:
    values = dict(record)
    intent = load_json(values.pop("exit_intent"))
    return TradeRecord(
        **values, exit_intent=ExitIntent.model_validate(intent) if intent is not None else None
    )


def _option_trade(record: asyncpg.Record) -> OptionTradeRecord:
    values = dict(record)
    legs = [OptionLeg.model_validate(leg) for leg in load_json(values.pop("legs")) or []]
    return OptionTradeRecord(**values, legs=legs)


# --- the human view --------------------------------------------------------------------------


def _t(moment: datetime | None) -> str:
    return "-" if moment is None else f"{moment.astimezone(NEW_YORK):%H:%M:%S}"


def show(report: DayReport) -> None:
    """The report as text: a summary per section, then the verdict."""
    trades, rescues, gaps = report.trades, report.rescues, report.gaps
    calls, beats, reconcile = report.broker_calls, report.heartbeats, report.reconcile
    scope = "whole day" if report.complete else f"so far, to {_t(report.generated_at)} ET"
    say(f"day report {report.day} (New York, {scope})")
    say("")
    say(
        f"trades: {trades.opened} opened, {trades.closed} closed ({trades.winners} won, "
        f"{trades.losers} lost), {trades.entries_failed} entries failed, {trades.adopted} "
        f"adopted, {trades.open_at_end} open at the end; realized P&L {trades.realized_pnl}"
    )
    say_table(
        [
            (
                t.trade_id,
                t.symbol,
                t.status.value,
                str(t.qty),
                str(t.entry_price or "-"),
                str(t.exit_price or "-"),
                _t(t.opened_at),
                _t(t.closed_at),
                t.close_reason.value if t.close_reason else "-",
                str(t.realized_pnl if t.realized_pnl is not None else "-"),
            )
            for t in trades.trades
        ],
        header=(
            "TRADE",
            "SYMBOL",
            "STATUS",
            "QTY",
            "ENTRY",
            "EXIT",
            "OPENED",
            "CLOSED",
            "REASON",
            "P&L",
        ),
    )
    _show_options(report)
    latency = rescues.latency
    say(
        f"rescues: {rescues.rescued} ok, {rescues.failed} failed, {rescues.alerts} alerts; "
        f"latency p50 {latency.p50_ms} / p95 {latency.p95_ms} / max {latency.max_ms} ms"
    )
    say(
        f"unprotected gaps: {gaps.stats.count}, p50 {gaps.stats.p50_ms} / p95 "
        f"{gaps.stats.p95_ms} / max {gaps.stats.max_ms} ms; {gaps.over_limit} over "
        f"{gaps.limit_ms} ms"
    )
    say(
        f"reconcile: {reconcile.runs} runs, {reconcile.failed} failed, {reconcile.unfinished} "
        f"unfinished; {reconcile.ghosts_closed} ghosts closed, {reconcile.adopted} adopted"
    )
    skipped = ", ".join(f"{r} {n}" for r, n in report.entries.skipped_by_reason.items())
    say(
        f"entries: {report.entries.runs} loop runs; {report.entries.entered} entered, "
        f"{report.entries.added} added, {report.entries.skipped} skipped"
        + (f" ({skipped})" if skipped else "")
    )
    say(
        f"broker calls: {calls.total_calls} in {calls.minutes_with_calls} minutes; max "
        f"{calls.max_per_min}/min, avg {calls.avg_per_min}/min, peak {calls.peak_60s} in 60 s "
        f"(limit {calls.limit_per_min}); {calls.busy_minutes} minutes over "
        f"{report.thresholds.busy_fraction:.0%}; {len(calls.rate_limited)} 429s "
        f"[{calls.coverage_note}]"
    )
    for series in beats.series:
        say(
            f"heartbeat {series.name}: {series.runs} runs, longest pause "
            f"{series.max_gap_s if series.max_gap_s is not None else '-'} s"
            + (f", {len(series.gaps_over_limit)} over the limit" if series.gaps_over_limit else "")
        )
    say(
        f"heartbeat BrokerSync: last poll {_t(beats.broker_sync_last_poll)}"
        + (
            f" ({beats.broker_sync_poll_age_s} s ago)"
            if beats.broker_sync_poll_age_s is not None
            else ""
        )
    )
    say(f"incidents: {len(report.incidents)}")
    for incident in report.incidents:
        say(f"  {_t(incident.at)} {incident.kind} ({incident.severity}) {incident.detail}")
    say(f"realized P&L of the day (stocks and options): {report.pnl.realized_pnl}")
    say(f"P&L chart: {report.pnl.note}")
    say("")
    say(f"verdict: {report.verdict.result.value}: {report.verdict.reason}")
    sys.stdout.flush()


def _show_options(report: DayReport) -> None:
    """The options line, a table of the day's option trades, and any close held back."""
    options = report.options
    say(
        f"options: {options.opened} opened, {options.closed} closed ({options.winners} won, "
        f"{options.losers} lost, {options.closed_outside} closed outside), "
        f"{options.entries_failed} entries failed, {options.adopted} adopted, "
        f"{options.open_at_end} open at the end (max loss {options.max_loss_open_at_end}); "
        f"realized P&L {options.realized_pnl}"
    )
    say_table(
        [
            (
                t.trade_id,
                t.underlying,
                t.status.value,
                t.origin.value,
                str(t.qty),
                str(t.credit or "-"),
                str(t.exit_debit or "-"),
                _t(t.opened_at),
                _t(t.closed_at),
                t.exit_reason or "-",
                str(t.realized_pnl if t.realized_pnl is not None else "-"),
            )
            for t in options.trades
        ],
        header=(
            "OPTION TRADE",
            "UNDERLYING",
            "STATUS",
            "ORIGIN",
            "QTY",
            "CREDIT",
            "EXIT DEBIT",
            "OPENED",
            "CLOSED",
            "REASON",
            "P&L",
        ),
    )
    for held_back in options.held_back_at_end:
        say(f"  option close held back at the end: {held_back}")
