"""The day report's verdict from its figures (pure).

Verdict rules, checked in this order; the first broken one is the one-line reason:
1. a stop rescue failed (any `stop_rescue_failed` or `stop_rescue_alert` risk event);
2. an unprotected gap longer than `max_unprotected_gap_ms` (10 s): a rescue's gap, a two-phase
   exit's (stop cancel confirmed -> exit accepted) or a flatten close's;
3. a reconcile run failed;
4. the broker answered 429 (the budget's recorded block falls on the day);
5. broker calls over the limit: a clock minute, or any sliding 60 s, above the limit (200, or
   the broker's own X-RateLimit-Limit when it reported a lower one);
6. a heartbeat gap: two consecutive scheduled reconcile or market-loop runs further apart than
   `max_heartbeat_gap_s` (10 min), or, while the day is on, BrokerSync's last poll that old;
7. an open position without a stop at the day's end (a trade open then with no stop order, or,
   while the day is on, a long position in BrokerSync's last poll with no covering stop);
8. an option trade's close held back at the day's end (still CLOSING: the legs held do not
   match the trade, so no close is sent until a person or the legs settle it); a trade that
   ended `closed_outside` (no leg held) is counted, not failed, as a stock trade closed
   elsewhere is;
9. any other critical risk event (a daily loss limit, a failed flatten close);
10. a flatten that did not end flat.
None broken: PASS. A day with no ledger activity at all: NO_ACTIVITY (nothing to judge).
"""

from __future__ import annotations

from trading.report.models import DayReport, HeartbeatSection, RescueSection, Verdict, VerdictResult
from trading.strategies.sessions import NEW_YORK


def _seconds(ms: int) -> str:
    return f"{ms / 1000:.1f} s"


def _rescue_failures(rescues: RescueSection) -> list[str]:
    failed = [e for e in rescues.events if e.outcome in ("failed", "alert")]
    if not failed:
        return []
    first = failed[0]
    return [
        f"{rescues.failed} stop rescue(s) failed, {rescues.alerts} alert(s) "
        f"(first: trade {first.trade_id}: {first.error or first.outcome})"
    ]


def _heartbeat_failures(heartbeats: HeartbeatSection) -> list[str]:
    failures = []
    for series in heartbeats.series:
        if series.gaps_over_limit:
            worst = max(series.gaps_over_limit, key=lambda g: g.seconds)
            failures.append(
                f"heartbeat gap: {series.name} paused {worst.seconds / 60:.1f} min after "
                f"{worst.after.astimezone(NEW_YORK):%H:%M} ET "
                f"(limit {heartbeats.limit_s // 60} min)"
            )
    age = heartbeats.broker_sync_poll_age_s
    if age is not None and age > heartbeats.limit_s:
        failures.append(
            f"heartbeat gap: BrokerSync's last poll is {age / 60:.1f} min old "
            f"(limit {heartbeats.limit_s // 60} min)"
        )
    return failures


def verdict_of(report: DayReport) -> Verdict:
    """The day's verdict from its figures (rules in this module's docstring)."""
    failures = _rescue_failures(report.rescues)
    gaps = report.gaps
    worst_gap = max(gaps.gaps, key=lambda g: g.gap_ms, default=None)
    if gaps.over_limit and worst_gap is not None:
        failures.append(
            f"{gaps.over_limit} unprotected gap(s) over {_seconds(gaps.limit_ms)}: "
            f"{_seconds(worst_gap.gap_ms)} ({worst_gap.source}, trade {worst_gap.trade_id})"
        )
    if report.reconcile.failed:
        first = report.reconcile.failures[0]
        failures.append(f"{report.reconcile.failed} reconcile run(s) failed ({first.error})")
    calls = report.broker_calls
    if calls.rate_limited:
        failures.append(f"the broker answered 429 ({calls.rate_limited[0].reason})")
    if calls.minutes_over_limit or calls.peak_60s > calls.limit_per_min:
        failures.append(
            f"broker calls over the limit: {calls.max_per_min} in a minute, {calls.peak_60s} "
            f"in 60 s (limit {calls.limit_per_min})"
        )
    failures.extend(_heartbeat_failures(report.heartbeats))
    unprotected = report.trades.unprotected_at_end
    if unprotected:
        failures.append(f"{len(unprotected)} open position(s) without a stop: {unprotected[0]}")
    held_back = report.options.held_back_at_end
    if held_back:
        failures.append(f"{len(held_back)} option close(s) held back at the end: {held_back[0]}")
    critical = [
        i
        for i in report.incidents
        if i.source == "risk_event" and i.severity == "critical" and i.kind != "stop_rescue_alert"
    ]
    if critical:
        failures.append(f"{len(critical)} critical risk event(s): {critical[0].kind}")
    if any(i.kind == "flatten_incomplete" for i in report.incidents):
        failures.append("a flatten did not end flat")
    if failures:
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        return Verdict(result=VerdictResult.FAIL, reason=failures[0] + more, failures=failures)
    if not report.activity:
        return Verdict(
            result=VerdictResult.NO_ACTIVITY,
            reason=f"no activity on {report.day}: no trades, runs, events or broker calls",
        )
    worst = f", longest unprotected gap {_seconds(worst_gap.gap_ms)}" if worst_gap else ""
    options = report.options.closed
    closed_options = f", {options} option trade(s) closed" if options else ""
    return Verdict(
        result=VerdictResult.PASS,
        reason=(
            f"{report.trades.closed} trade(s) closed{closed_options}, realized P&L "
            f"{report.pnl.realized_pnl}, {report.rescues.rescued} rescue(s){worst}; "
            "no rule broken"
        ),
    )
