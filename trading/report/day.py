"""The day report's figures, computed from the day's ledger rows (pure); the verdict is
trading/report/verdict.py's.
"""

from __future__ import annotations

import itertools
import math
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from trading.ledger_records import (
    ReconcileRunRecord,
    RiskEventRecord,
    RiskSeverity,
    TradeOrigin,
    TradeStatus,
)
from trading.models import AuditRow, JsonScalar
from trading.report.models import (
    BrokerCall,
    BrokerCallsSection,
    DayLedger,
    DayReport,
    EntriesSection,
    GapLine,
    GapSection,
    HeartbeatGap,
    HeartbeatSection,
    HeartbeatSeries,
    Incident,
    LatencyStats,
    MinuteCount,
    OptionTradesSection,
    PnlPoint,
    PnlSection,
    ReconcileFailure,
    ReconcileSection,
    ReportThresholds,
    RescueLine,
    RescueSection,
    TradeLine,
    TradesSection,
    Verdict,
    VerdictResult,
)
from trading.report.options import option_closes, option_trades_section
from trading.report.verdict import verdict_of
from trading.report.windows import WindowTally, inside, window_count
from trading.routing import covering_stop_of
from trading.strategies.sessions import NEW_YORK

RESCUE_OUTCOMES = {
    "stop_rescued": "rescued",
    "stop_rescue_failed": "failed",
    "stop_rescue_alert": "alert",
}
INCIDENT_ACTIONS = frozenset(
    {
        "control_halt",
        "control_auto_halt",
        "control_flatten",
        "flatten_done",
        "flatten_incomplete",
        "rescue_alert",
    }
)
FAILED_ENTRY = frozenset({TradeStatus.ENTRY_FAILED, TradeStatus.ENTRY_CANCELLED})
# Which reconcile runs are heartbeats: those the schedules started (trading/schedule_plan.py
# passes run_source "schedule"; the market loop's own reconcile is "market-loop:<source>").
HEARTBEATS = (
    ("reconcile schedule", "schedule"),
    ("market loop schedule", "market-loop:schedule"),
)
# A 429 block ends at the broker's reset (within a minute of the 429) or a short pause after it.
BLOCK_AFTER_429 = timedelta(minutes=2)
MINUTE = timedelta(minutes=1)
WINDOW_60S = timedelta(seconds=60)
PNL_NOTE_NO_EQUITY = (
    "cumulative realized P&L only (stock and option trades' closes): the ledger stores no "
    "broker account snapshots, so there is no equity curve"
)


def day_window(day: date) -> tuple[datetime, datetime]:
    """The New York calendar day's bounds, in UTC."""
    start = datetime.combine(day, time(0), tzinfo=NEW_YORK).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=NEW_YORK).astimezone(UTC)
    return start, end


def new_york_date(moment: datetime) -> date:
    """The New York calendar date of an aware moment."""
    return moment.astimezone(NEW_YORK).date()


def nearest_rank(values: Sequence[int], fraction: float) -> int:
    """The nearest-rank percentile (`fraction` in (0, 1]) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def latency_stats(values: Sequence[int]) -> LatencyStats:
    """p50, p95 and max of durations in ms."""
    if not values:
        return LatencyStats(count=0)
    return LatencyStats(
        count=len(values),
        p50_ms=nearest_rank(values, 0.5),
        p95_ms=nearest_rank(values, 0.95),
        max_ms=max(values),
    )


def _millis(value: JsonScalar) -> int | None:
    """A detail's duration in ms (stored as a number, or its text), None when absent."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(float(value))
    except ValueError:
        return None


# --- sections ------------------------------------------------------------------------------


def _uncovered_symbols(ledger: DayLedger) -> list[str]:
    """Long positions in BrokerSync's last poll that no active sell stop covers."""
    return [
        f"{view.symbol} (broker: {view.qty} shares, no covering stop in the last poll)"
        for view in ledger.broker_view
        if view.qty > 0 and covering_stop_of(view.open_orders, view.symbol, view.qty) is None
    ]


def trades_section(ledger: DayLedger, end: datetime, complete: bool) -> TradesSection:
    """Trades opened and closed in the window, P&L of the closes, positions open at `end`."""
    lines: list[TradeLine] = []
    tally = WindowTally()
    unprotected: list[str] = []
    for trade in sorted(ledger.trades, key=lambda t: (t.created_at, t.id)):
        # A stock trade holds a position only once filled.
        window = window_count(
            trade.created_at,
            trade.closed_at,
            filled=trade.opened_at is not None and trade.qty > 0,
            held_before_fill=False,
            start=ledger.window_start,
            end=end,
        )
        if not window.listed:
            continue
        tally.add(
            window,
            entry_failed=trade.status in FAILED_ENTRY,
            realized_pnl=trade.realized_pnl,
            external=trade.origin is TradeOrigin.EXTERNAL,
        )
        if window.held_at_end and trade.stop_order_id is None:
            unprotected.append(f"{trade.id} ({trade.symbol}: no stop order recorded)")
        lines.append(
            TradeLine(
                trade_id=trade.id,
                symbol=trade.symbol,
                origin=trade.origin,
                status=trade.status,
                qty=trade.qty,
                entry_price=trade.entry_price,
                exit_price=trade.exit_price,
                opened_at=trade.opened_at,
                closed_at=trade.closed_at,
                close_reason=trade.close_reason,
                realized_pnl=trade.realized_pnl,
                opened_today=window.opened_today,
                closed_today=window.closed_today,
                stop_order_id=trade.stop_order_id,
            )
        )
    if not complete:
        unprotected.extend(_uncovered_symbols(ledger))
    return TradesSection(
        opened=tally.opened,
        closed=tally.closed,
        entries_failed=tally.entries_failed,
        adopted=tally.adopted,
        open_at_end=tally.open_at_end,
        winners=tally.winners,
        losers=tally.losers,
        realized_pnl=tally.realized_pnl,
        unprotected_at_end=unprotected,
        trades=lines,
    )


def _minute(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


def pnl_section(ledger: DayLedger, end: datetime) -> PnlSection:
    """The day's realized P&L, and its running total at the end of each minute with a close
    (stock trades' and option trades' closes)."""
    closes = sorted(
        [
            (t.closed_at, t.realized_pnl or Decimal(0))
            for t in ledger.trades
            if t.closed_at is not None
            and inside(t.closed_at, ledger.window_start, end)
            and t.status not in FAILED_ENTRY
        ]
        + option_closes(ledger, end),
        key=lambda close: close[0],
    )
    by_minute: dict[datetime, Decimal] = {}
    running = Decimal(0)
    for closed_at, realized in closes:
        running += realized
        by_minute[_minute(closed_at)] = running
    points = [PnlPoint(minute=m, cumulative_realized=v) for m, v in by_minute.items()]
    return PnlSection(
        realized_pnl=running, points=points, equity_available=False, note=PNL_NOTE_NO_EQUITY
    )


def _rescue_events(ledger: DayLedger) -> list[RiskEventRecord]:
    return sorted(
        (e for e in ledger.risk_events if e.kind in RESCUE_OUTCOMES), key=lambda e: (e.at, e.id)
    )


def rescue_section(ledger: DayLedger) -> RescueSection:
    """Stop rescues of the day and their latencies (latency_ms where recorded, else gap_ms)."""
    lines: list[RescueLine] = []
    latencies: list[int] = []
    for event in _rescue_events(ledger):
        outcome = RESCUE_OUTCOMES[event.kind]
        gap = latency = None
        if outcome == "rescued":
            gap = _millis(event.detail.get("gap_ms"))
            latency = _millis(event.detail.get("latency_ms"))
            latency = gap if latency is None else latency
        if latency is not None:
            latencies.append(latency)
        error = event.detail.get("error")
        lines.append(
            RescueLine(
                at=event.at,
                trade_id=event.trade_id,
                symbol=event.symbol,
                outcome=outcome,
                latency_ms=latency,
                gap_ms=gap,
                error=None if error is None else str(error),
            )
        )
    counts = Counter(line.outcome for line in lines)
    return RescueSection(
        rescued=counts["rescued"],
        failed=counts["failed"],
        alerts=counts["alert"],
        latency=latency_stats(latencies),
        latencies_ms=latencies,
        events=lines,
    )


def _audit_gap(row: AuditRow) -> GapLine | None:
    if row.action == "exit_unprotected_gap":
        gap, source = _millis(row.detail.get("gap_ms")), "exit"
    elif row.action == "flatten_close_position" and row.detail.get("protected_before") is True:
        gap, source = _millis(row.detail.get("unprotected_gap_ms")), "flatten"
    else:
        return None
    if gap is None:
        return None
    symbol = row.detail.get("symbol")
    return GapLine(
        at=row.at,
        source=source,
        trade_id=row.trade_id,
        symbol=None if symbol is None else str(symbol),
        gap_ms=gap,
    )


def gap_section(ledger: DayLedger, rescues: RescueSection, limit_ms: int) -> GapSection:
    """Every measured unprotected gap of the day: rescues, two-phase exits, flatten closes."""
    gaps = [
        GapLine(at=r.at, source="rescue", trade_id=r.trade_id, symbol=r.symbol, gap_ms=r.gap_ms)
        for r in rescues.events
        if r.gap_ms is not None
    ]
    gaps.extend(g for g in (_audit_gap(row) for row in ledger.audit) if g is not None)
    gaps.sort(key=lambda g: g.at)
    return GapSection(
        stats=latency_stats([g.gap_ms for g in gaps]),
        over_limit=sum(g.gap_ms > limit_ms for g in gaps),
        limit_ms=limit_ms,
        gaps=gaps,
    )


def reconcile_section(runs: Iterable[ReconcileRunRecord]) -> ReconcileSection:
    """Reconcile runs started on the day: outcomes and what they changed."""
    listed = sorted(runs, key=lambda r: (r.started_at, r.id))
    failures = [
        ReconcileFailure(run_id=r.run_id, started_at=r.started_at, error=r.error)
        for r in listed
        if r.ok is False
    ]
    return ReconcileSection(
        runs=len(listed),
        ok=sum(r.ok is True for r in listed),
        failed=len(failures),
        unfinished=sum(r.ok is None for r in listed),
        ghosts_closed=sum(r.closed for r in listed),
        adopted=sum(r.adopted for r in listed),
        synced=sum(r.synced for r in listed),
        failures=failures,
    )


def entries_section(ledger: DayLedger) -> EntriesSection:
    """Signals entered, added or skipped (by reason) and the loop's runs."""
    by_decision: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    for row in ledger.signal_decisions:
        by_decision[row.decision] += row.count
        if row.decision == "skipped":
            skipped[row.reason] += row.count
    idle_runs = Counter(r.reason for r in ledger.entry_runs if r.entered == 0 and r.reason)
    return EntriesSection(
        runs=len(ledger.entry_runs),
        entered=by_decision["entered"],
        added=by_decision["added"],
        skipped=by_decision["skipped"],
        skipped_by_reason=dict(skipped.most_common()),
        runs_by_reason=dict(idle_runs.most_common()),
    )


def peak_in_window(calls: Sequence[BrokerCall], window: timedelta = WINDOW_60S) -> int:
    """The most call slots any sliding window of `window` holds (calls sorted by time)."""
    peak = held = first = 0
    for call in calls:
        held += call.slots
        while calls[first].at <= call.at - window:
            held -= calls[first].slots
            first += 1
        peak = max(peak, held)
    return peak


def _coverage_note(ledger: DayLedger, calls: Sequence[BrokerCall]) -> str:
    kept = ledger.broker_calls_kept_since
    if kept is not None and kept > ledger.window_start:
        if not calls:
            return (
                "no broker calls of the day are left: the shared budget keeps only its last "
                "few minutes of calls (older rows are pruned)"
            )
        return (
            f"partial: the ledger holds calls from {kept.astimezone(NEW_YORK):%H:%M:%S} ET on "
            "(the shared budget prunes calls older than a few minutes: earlier ones may be gone)"
        )
    if not calls:
        return "no broker calls recorded on the day"
    return "complete: every call of the day is in the ledger"


def broker_calls_section(ledger: DayLedger, thresholds: ReportThresholds) -> BrokerCallsSection:
    """Calls per clock minute and per sliding 60 s against the broker's limit; 429s."""
    limit = min(thresholds.broker_limit_per_min, ledger.broker_limit_seen or sys.maxsize)
    calls = sorted(
        (c for c in ledger.broker_calls if inside(c.at, ledger.window_start, ledger.window_end)),
        key=lambda c: c.at,
    )
    per_minute: Counter[datetime] = Counter()
    for call in calls:
        per_minute[_minute(call.at)] += call.slots
    counts = list(per_minute.values())
    busy_above = thresholds.busy_fraction * limit
    blocks = [
        b
        for b in ledger.rate_limit_blocks
        if ledger.window_start <= b.blocked_until < ledger.window_end + BLOCK_AFTER_429
    ]
    return BrokerCallsSection(
        limit_per_min=limit,
        budget_per_min=ledger.budget_per_min,
        total_calls=sum(counts),
        minutes_with_calls=len(counts),
        max_per_min=max(counts, default=0),
        avg_per_min=round(sum(counts) / len(counts), 2) if counts else 0.0,
        peak_60s=peak_in_window(calls),
        busy_minutes=sum(c > busy_above for c in counts),
        minutes_over_limit=sum(c > limit for c in counts),
        rate_limited=blocks,
        recorded_from=calls[0].at if calls else None,
        recorded_to=calls[-1].at if calls else None,
        coverage_note=_coverage_note(ledger, calls),
        per_minute=[MinuteCount(minute=m, calls=n) for m, n in sorted(per_minute.items())],
    )


def heartbeat_series(
    name: str, moments: Iterable[datetime], limit: timedelta, judged: bool = True
) -> HeartbeatSeries:
    """A periodic job's runs and the pauses between consecutive runs longer than `limit`."""
    ordered = sorted(moments)
    pairs = list(itertools.pairwise(ordered))
    gaps = [b - a for a, b in pairs]
    return HeartbeatSeries(
        name=name,
        runs=len(ordered),
        judged=judged,
        first_at=ordered[0] if ordered else None,
        last_at=ordered[-1] if ordered else None,
        max_gap_s=max(gaps).total_seconds() if gaps else None,
        gaps_over_limit=[
            HeartbeatGap(after=a, before=b, seconds=(b - a).total_seconds())
            for a, b in pairs
            if b - a > limit
        ]
        if judged
        else [],
    )


def heartbeat_section(
    ledger: DayLedger, thresholds: ReportThresholds, complete: bool
) -> HeartbeatSection:
    """Scheduled reconcile and market-loop runs, every loop run, and BrokerSync's last poll."""
    limit = timedelta(seconds=thresholds.max_heartbeat_gap_s)
    series = [
        heartbeat_series(
            name, (r.started_at for r in ledger.reconcile_runs if r.source == source), limit
        )
        for name, source in HEARTBEATS
    ]
    series.append(
        heartbeat_series(
            "market loop (every run)", (r.at for r in ledger.entry_runs), limit, judged=False
        )
    )
    age = None
    if not complete and ledger.last_poll_at is not None:
        age = round((ledger.generated_at - ledger.last_poll_at).total_seconds(), 1)
    return HeartbeatSection(
        series=series,
        broker_sync_last_poll=ledger.last_poll_at,
        broker_sync_poll_age_s=age,
        limit_s=thresholds.max_heartbeat_gap_s,
        note=(
            "gaps are judged between consecutive scheduled runs of the day; BrokerSync keeps "
            "only its last poll, judged by its age while the day is on"
        ),
    )


def _brief(detail: dict[str, JsonScalar], limit: int = 160) -> str:
    text = ", ".join(f"{k}={v}" for k, v in detail.items())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def incidents(ledger: DayLedger) -> list[Incident]:
    """Critical risk events and halts / flattens from the audit log, oldest first."""
    found = [
        Incident(
            at=e.at,
            source="risk_event",
            kind=e.kind,
            severity=e.severity.value,
            trade_id=e.trade_id,
            symbol=e.symbol,
            detail=_brief(e.detail),
        )
        for e in ledger.risk_events
        if e.severity is RiskSeverity.CRITICAL
    ]
    found.extend(
        Incident(
            at=row.at,
            source="audit",
            kind=row.action,
            severity="critical" if row.action == "flatten_incomplete" else "info",
            trade_id=row.trade_id,
            detail=(f"{row.reason}: " if row.reason else "") + _brief(row.detail),
        )
        for row in ledger.audit
        if row.action in INCIDENT_ACTIONS
    )
    return sorted(found, key=lambda i: i.at)


def _has_activity(ledger: DayLedger, trades: TradesSection, options: OptionTradesSection) -> bool:
    return bool(
        trades.trades
        or options.trades
        or ledger.risk_events
        or ledger.audit
        or ledger.reconcile_runs
        or ledger.entry_runs
        or ledger.signal_decisions
        or any(inside(c.at, ledger.window_start, ledger.window_end) for c in ledger.broker_calls)
    )


def build_report(ledger: DayLedger, thresholds: ReportThresholds | None = None) -> DayReport:
    """The whole day report, verdict included."""
    limits = thresholds or ReportThresholds()
    complete = ledger.generated_at >= ledger.window_end
    end = min(ledger.window_end, ledger.generated_at)
    trades = trades_section(ledger, end, complete)
    options = option_trades_section(ledger, end)
    rescues = rescue_section(ledger)
    draft = DayReport(
        day=ledger.day,
        window_start=ledger.window_start,
        window_end=ledger.window_end,
        generated_at=ledger.generated_at,
        complete=complete,
        activity=_has_activity(ledger, trades, options),
        thresholds=limits,
        trades=trades,
        options=options,
        pnl=pnl_section(ledger, end),
        rescues=rescues,
        gaps=gap_section(ledger, rescues, limits.max_unprotected_gap_ms),
        reconcile=reconcile_section(ledger.reconcile_runs),
        entries=entries_section(ledger),
        broker_calls=broker_calls_section(ledger, limits),
        heartbeats=heartbeat_section(ledger, limits, complete),
        incidents=incidents(ledger),
        verdict=Verdict(result=VerdictResult.NO_ACTIVITY, reason="pending"),
    )
    return draft.model_copy(update={"verdict": verdict_of(draft)})
