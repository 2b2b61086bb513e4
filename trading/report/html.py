"""The day report as one self-contained HTML page: the charts are embedded as PNG data URIs,
so the file can be mailed or attached as it is."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from datetime import datetime
from html import escape

from trading.report.charts import CHART_TITLES
from trading.report.models import DayReport, VerdictResult
from trading.strategies.sessions import NEW_YORK

STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; max-width: 1100px; }
h1 { margin-bottom: 0.2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
.verdict { padding: 0.8em 1em; border-radius: 6px; font-size: 1.15em; }
.PASS { background: #e3f6e3; border: 1px solid #4a4; }
.FAIL { background: #fbe3e3; border: 1px solid #c44; }
.NO_ACTIVITY { background: #eee; border: 1px solid #999; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.92em; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: left; }
th { background: #f4f4f4; } .note { color: #666; font-size: 0.9em; }
img { display: block; margin: 0.5em 0; max-width: 100%; }
"""


def data_uri(png: bytes) -> str:
    """A PNG as a data URI for an <img src>."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _t(moment: datetime | None) -> str:
    return "" if moment is None else f"{moment.astimezone(NEW_YORK):%H:%M:%S}"


def _cell(value: object) -> str:
    return "" if value is None else escape(str(value))


def _table(header: Sequence[str], rows: Iterable[Sequence[object]], empty: str) -> str:
    body = [f"<tr>{''.join(f'<td>{_cell(v)}</td>' for v in row)}</tr>" for row in rows]
    if not body:
        return f"<p class='note'>{escape(empty)}</p>"
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _pairs(rows: Iterable[tuple[str, object]]) -> str:
    return (
        "<table>"
        + "".join(f"<tr><th>{escape(k)}</th><td>{_cell(v)}</td></tr>" for k, v in rows)
        + "</table>"
    )


def _summary(report: DayReport) -> str:
    trades, rescues, gaps = report.trades, report.rescues, report.gaps
    calls, reconcile, options = report.broker_calls, report.reconcile, report.options
    return _pairs(
        [
            ("trades opened / closed", f"{trades.opened} / {trades.closed}"),
            ("realized P&L", f"{trades.realized_pnl} ({trades.winners} won, {trades.losers} lost)"),
            ("open at the end", trades.open_at_end),
            (
                "option trades opened / closed",
                f"{options.opened} / {options.closed}; realized P&L {options.realized_pnl}, "
                f"{options.open_at_end} open at the end (max loss {options.max_loss_open_at_end})",
            ),
            ("day's realized P&L (stocks and options)", report.pnl.realized_pnl),
            (
                "stop rescues",
                f"{rescues.rescued} ok, {rescues.failed} failed, {rescues.alerts} alerts; "
                f"p50 {rescues.latency.p50_ms} / p95 {rescues.latency.p95_ms} / "
                f"max {rescues.latency.max_ms} ms",
            ),
            (
                "unprotected gaps",
                f"{gaps.stats.count}, max {gaps.stats.max_ms} ms, "
                f"{gaps.over_limit} over {gaps.limit_ms} ms",
            ),
            (
                "reconcile",
                f"{reconcile.runs} runs, {reconcile.failed} failed, {reconcile.ghosts_closed} "
                f"ghosts closed, {reconcile.adopted} adopted",
            ),
            (
                "broker calls / minute",
                f"max {calls.max_per_min}, avg {calls.avg_per_min}, peak 60 s {calls.peak_60s} "
                f"(limit {calls.limit_per_min}); {calls.busy_minutes} busy minutes, "
                f"{len(calls.rate_limited)} 429s",
            ),
            ("incidents", len(report.incidents)),
        ]
    )


def _options(report: DayReport) -> str:
    options = report.options
    held_back = _table(
        ("option close held back at the end",),
        ((h,) for h in options.held_back_at_end),
        "no option close held back at the end",
    )
    trades = _table(
        (
            "trade",
            "underlying",
            "origin",
            "status",
            "qty",
            "credit",
            "exit debit",
            "opened",
            "closed",
            "reason",
            "realized P&L",
            "max loss",
        ),
        (
            (
                t.trade_id,
                t.underlying,
                t.origin.value,
                t.status.value,
                t.qty,
                t.credit,
                t.exit_debit,
                _t(t.opened_at),
                _t(t.closed_at),
                t.exit_reason,
                t.realized_pnl,
                t.max_loss,
            )
            for t in options.trades
        ),
        "no option trade on this day",
    )
    return trades + held_back


def _charts(charts: dict[str, bytes]) -> str:
    return "".join(
        f"<h3>{escape(CHART_TITLES.get(name, name))}</h3>"
        f"<img alt='{escape(name)}' id='chart-{escape(name)}' src='{data_uri(png)}'>"
        for name, png in charts.items()
    )


def render_html(report: DayReport, charts: dict[str, bytes]) -> str:
    """The whole page."""
    verdict = report.verdict
    result = verdict.result.value
    failures = "".join(f"<li>{escape(f)}</li>" for f in verdict.failures)
    scope = "the whole day" if report.complete else f"up to {_t(report.generated_at)} ET"
    entries, calls, beats = report.entries, report.broker_calls, report.heartbeats
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>durable-trader day report {report.day}</title><style>{STYLE}</style></head>",
        f"<body><h1>Day report {report.day}</h1>",
        f"<p class='note'>New York day, {escape(scope)}; generated "
        f"{report.generated_at:%Y-%m-%d %H:%M:%S} UTC</p>",
        f"<div class='verdict {result}'><b>{result}</b>: {escape(verdict.reason)}</div>",
        f"<ul>{failures}</ul>" if verdict.result is VerdictResult.FAIL else "",
        "<h2>Summary</h2>",
        _summary(report),
        "<h2>Charts</h2>",
        f"<p class='note'>{escape(report.pnl.note)}</p>",
        _charts(charts),
        "<h2>Trades</h2>",
        _table(
            (
                "trade",
                "symbol",
                "origin",
                "status",
                "qty",
                "entry",
                "exit",
                "opened",
                "closed",
                "reason",
                "realized P&L",
            ),
            (
                (
                    t.trade_id,
                    t.symbol,
                    t.origin.value,
                    t.status.value,
                    t.qty,
                    t.entry_price,
                    t.exit_price,
                    _t(t.opened_at),
                    _t(t.closed_at),
                    t.close_reason.value if t.close_reason else None,
                    t.realized_pnl,
                )
                for t in report.trades.trades
            ),
            "no trade on this day",
        ),
        _table(
            ("open without a stop at the end",),
            ((u,) for u in report.trades.unprotected_at_end),
            "every open position had a stop at the end",
        ),
        "<h2>Option trades</h2>",
        _options(report),
        "<h2>Stop rescues</h2>",
        _table(
            ("at", "trade", "symbol", "outcome", "latency ms", "gap ms", "error"),
            (
                (_t(r.at), r.trade_id, r.symbol, r.outcome, r.latency_ms, r.gap_ms, r.error)
                for r in report.rescues.events
            ),
            "no stop rescue",
        ),
        "<h2>Unprotected gaps</h2>",
        _table(
            ("at", "source", "trade", "symbol", "gap ms"),
            ((_t(g.at), g.source, g.trade_id, g.symbol, g.gap_ms) for g in report.gaps.gaps),
            "no unprotected gap measured",
        ),
        "<h2>Reconcile</h2>",
        _pairs(
            [
                (k, getattr(report.reconcile, k))
                for k in (
                    "runs",
                    "ok",
                    "failed",
                    "unfinished",
                    "ghosts_closed",
                    "adopted",
                    "synced",
                )
            ]
        ),
        _table(
            ("run", "started", "error"),
            ((f.run_id, _t(f.started_at), f.error) for f in report.reconcile.failures),
            "no reconcile failure",
        ),
        "<h2>Entries</h2>",
        _pairs(
            [
                ("market-loop runs", entries.runs),
                ("entered", entries.entered),
                ("added", entries.added),
                ("skipped", entries.skipped),
            ]
        ),
        _table(("skip reason", "signals"), entries.skipped_by_reason.items(), "no signal skipped"),
        "<h2>Broker calls</h2>",
        f"<p class='note'>{escape(calls.coverage_note)}</p>",
        _pairs(
            [
                ("calls", calls.total_calls),
                ("minutes with calls", calls.minutes_with_calls),
                ("max / minute", calls.max_per_min),
                ("avg / minute", calls.avg_per_min),
                ("peak in 60 s", calls.peak_60s),
                ("limit / minute", calls.limit_per_min),
                ("shared budget / minute", calls.budget_per_min),
                ("busy minutes", calls.busy_minutes),
                ("minutes over the limit", calls.minutes_over_limit),
            ]
        ),
        _table(
            ("429 block until", "reason"),
            ((_t(b.blocked_until), b.reason) for b in calls.rate_limited),
            "no 429",
        ),
        "<h2>Heartbeats</h2>",
        f"<p class='note'>{escape(beats.note)}</p>",
        _table(
            ("job", "runs", "first", "last", "longest pause s", "pauses over the limit"),
            (
                (
                    s.name,
                    s.runs,
                    _t(s.first_at),
                    _t(s.last_at),
                    s.max_gap_s,
                    len(s.gaps_over_limit) if s.judged else "not judged",
                )
                for s in beats.series
            ),
            "no periodic run",
        ),
        _pairs(
            [
                ("BrokerSync last poll", _t(beats.broker_sync_last_poll) or "none recorded"),
                ("its age (s)", beats.broker_sync_poll_age_s),
            ]
        ),
        "<h2>Incidents</h2>",
        _table(
            ("at", "source", "kind", "severity", "trade", "detail"),
            (
                (_t(i.at), i.source, i.kind, i.severity, i.trade_id, i.detail)
                for i in report.incidents
            ),
            "no incident",
        ),
        "</body></html>",
    ]
    return "\n".join(parts)
