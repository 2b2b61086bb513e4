"""The day report (pure): figures from hand-built ledger rows, each verdict rule at its
boundary, the committed schema, and the charts and page it draws."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from settings import ROOT
from trading.broker_models import (
    BrokerOrder,
    OrderClass,
    OrderSide,
    OrderStatus,
    OrderType,
    TimeInForce,
)
from trading.ledger_records import (
    CloseReason,
    EntryRunRecord,
    ReconcileRunRecord,
    RiskEventRecord,
    RiskSeverity,
    TradeOrigin,
    TradeRecord,
    TradeSide,
    TradeStatus,
)
from trading.models import AuditRow, JsonScalar
from trading.options.legs import CLOSED_OUTSIDE
from trading.options.records import OptionTradeRecord
from trading.options.trade_models import OptionLeg, OptionTradeStatus
from trading.report.charts import CHART_TITLES, render_charts
from trading.report.day import build_report, day_window, latency_stats, peak_in_window
from trading.report.html import render_html
from trading.report.models import (
    BrokerCall,
    BrokerViewSymbol,
    DayLedger,
    DayReport,
    RateLimitBlock,
    SignalDecisionCount,
    VerdictResult,
)

DAY = date(2025, 3, 12)  # a Wednesday, New York on daylight time (UTC-4)
START, END = day_window(DAY)
OPEN = datetime(2025, 3, 12, 13, 30, tzinfo=UTC)  # 09:30 New York
AFTER = END + timedelta(hours=3)  # the report is made once the day is over
PNG = b"\x89PNG\r\n\x1a\n"


def at(minutes: float) -> datetime:
    """`minutes` after the open."""
    return OPEN + timedelta(minutes=minutes)


def trade(
    trade_id: str,
    *,
    opened: datetime | None,
    closed: datetime | None = None,
    pnl: str | None = None,
    status: TradeStatus | None = None,
    stop: str | None = "stop-1",
    origin: TradeOrigin = TradeOrigin.INTERNAL,
    qty: str = "10",
) -> TradeRecord:
    if status is None:
        status = TradeStatus.CLOSED if closed is not None else TradeStatus.OPEN
    created = opened or closed or at(0)
    return TradeRecord(
        id=trade_id,
        symbol="AAPL",
        side=TradeSide.LONG,
        origin=origin,
        status=status,
        status_at=closed or opened,
        qty=Decimal(qty),
        entry_price=Decimal(100) if opened else None,
        exit_price=Decimal(101) if closed and pnl else None,
        stop_price=Decimal(95),
        take_profit_price=None,
        stop_order_id=stop,
        take_profit_order_id=None,
        protected_at=opened if stop else None,
        exit_intent=None,
        exit_intent_at=None,
        close_reason=CloseReason.TAKE_PROFIT if closed and pnl else None,
        realized_pnl=Decimal(pnl) if pnl is not None else None,
        signal_id=None,
        workflow_id=f"trade-{trade_id}",
        opened_at=opened,
        closed_at=closed,
        created_at=created,
        updated_at=closed or created,
    )


def condor(
    trade_id: str,
    *,
    created: datetime,
    status: OptionTradeStatus,
    closed: datetime | None = None,
    pnl: str | None = None,
    exit_reason: str | None = None,
    origin: TradeOrigin = TradeOrigin.INTERNAL,
    max_loss: str = "380",
    note: str = "",
) -> OptionTradeRecord:
    """An iron condor's row: filled at its creation unless it never opened."""
    filled = status not in (OptionTradeStatus.PENDING_ENTRY, OptionTradeStatus.ENTRY_FAILED)
    return OptionTradeRecord(
        id=trade_id,
        underlying="SPY",
        strategy="iron_condor",
        origin=origin,
        status=status,
        expiry=DAY + timedelta(days=30),
        qty=1,
        legs=[
            OptionLeg(symbol="SPY250411P00540000", side=OrderSide.BUY),
            OptionLeg(symbol="SPY250411P00545000", side=OrderSide.SELL),
            OptionLeg(symbol="SPY250411C00575000", side=OrderSide.SELL),
            OptionLeg(symbol="SPY250411C00580000", side=OrderSide.BUY),
        ],
        width=Decimal(5),
        credit=Decimal("1.20") if filled else None,
        max_loss=Decimal(max_loss),
        exit_debit=Decimal("0.60") if pnl is not None else None,
        exit_reason=exit_reason,
        realized_pnl=Decimal(pnl) if pnl is not None else None,
        note=note,
        workflow_id=f"option-trade-{trade_id}",
        opened_at=created if filled else None,
        closed_at=closed,
        status_at=closed or created,
        created_at=created,
        updated_at=closed or created,
    )


HELD_BACK = (
    "close held back, the legs held do not match the trade: SPY250411C00575000 held 0 expected -1"
)


def risk(
    kind: str,
    when: datetime,
    detail: dict[str, JsonScalar] | None = None,
    severity: RiskSeverity = RiskSeverity.WARNING,
    event_id: int = 1,
) -> RiskEventRecord:
    return RiskEventRecord(
        id=event_id,
        event_key=f"{kind}:{event_id}",
        at=when,
        kind=kind,
        severity=severity,
        trade_id="t1",
        symbol="AAPL",
        detail=detail or {},
    )


def audit(action: str, when: datetime, detail: dict[str, JsonScalar]) -> AuditRow:
    return AuditRow(
        id=1,
        at=when,
        actor="trade-t1",
        action=action,
        reason="test",
        trade_id="t1",
        detail=detail,
        event_key=None,
    )


def reconcile(
    when: datetime, source: str = "schedule", ok: bool | None = True, **counts: int
) -> ReconcileRunRecord:
    return ReconcileRunRecord(
        id=1,
        run_id=f"reconcile-{when.isoformat()}",
        source=source,
        dry_run=False,
        started_at=when,
        finished_at=when + timedelta(seconds=1) if ok is not None else None,
        checked=counts.get("checked", 0),
        closed=counts.get("closed", 0),
        adopted=counts.get("adopted", 0),
        synced=counts.get("synced", 0),
        ok=ok,
        error=None if ok is not False else "broker unavailable",
        duration_ms=1000,
    )


def entry_run(when: datetime, entered: int = 0, reason: str = "") -> EntryRunRecord:
    return EntryRunRecord(
        id=1, run_id=f"loop-{when.isoformat()}", at=when, entered=entered, skipped=0,
        reason=reason, detail="",
    )  # fmt: skip


def ledger(generated_at: datetime = AFTER, **rows: Any) -> DayLedger:
    return DayLedger(day=DAY, window_start=START, window_end=END, generated_at=generated_at, **rows)


def calls(when: datetime, count: int, spread_s: float = 0.0) -> list[BrokerCall]:
    step = spread_s / count if count else 0
    return [BrokerCall(at=when + timedelta(seconds=i * step)) for i in range(count)]


def quiet_day(**rows: Any) -> DayReport:
    """A healthy day with one closed trade, plus `rows`."""
    base: dict[str, Any] = {
        "trades": [trade("t0", opened=at(1), closed=at(30), pnl="5")],
    }
    return build_report(ledger(**(base | rows)))


def failures(report: DayReport) -> list[str]:
    return report.verdict.failures


# --- the schema --------------------------------------------------------------------------


def test_the_committed_schema_matches_the_model() -> None:
    committed = json.loads((ROOT / "docs" / "report_day.schema.json").read_text())
    assert committed == DayReport.model_json_schema(mode="serialization"), (
        "regenerate docs/report_day.schema.json from trading.report.models.DayReport"
    )


# --- figures -----------------------------------------------------------------------------


def test_trades_and_realized_pnl_count_the_closes_of_the_day_only() -> None:
    report = build_report(
        ledger(
            trades=[
                trade("win", opened=at(0), closed=at(10.5), pnl="50.25"),
                trade("loss", opened=at(2), closed=at(10.9), pnl="-20"),
                trade("later", opened=at(5), closed=at(60), pnl="-4.25"),
                trade("carried", opened=START - timedelta(days=1)),  # still open: at the end
                trade("yesterday", opened=START - timedelta(days=2), closed=START - timedelta(1)),
                trade("refused", opened=None, closed=at(3), status=TradeStatus.ENTRY_FAILED),
                trade("adopted", opened=at(7), origin=TradeOrigin.EXTERNAL),
            ]
        )
    )
    trades = report.trades
    assert (trades.opened, trades.closed, trades.entries_failed) == (4, 3, 1)
    assert (trades.adopted, trades.open_at_end, trades.winners, trades.losers) == (1, 2, 1, 2)
    assert trades.realized_pnl == Decimal("26.00")
    assert "yesterday" not in {t.trade_id for t in trades.trades}
    assert trades.trades[0].trade_id == "carried"  # in entry order
    # Two closes in the same minute make one point: the running total at that minute's end.
    assert [(p.minute, p.cumulative_realized) for p in report.pnl.points] == [
        (at(10), Decimal("30.25")),
        (at(60), Decimal("26.00")),
    ]
    assert not report.pnl.equity_available and "no equity" in report.pnl.note
    assert report.verdict.result is VerdictResult.PASS
    assert "3 trade(s) closed, realized P&L 26.00" in report.verdict.reason


def test_the_ledger_s_clock_places_an_entry_whose_fill_time_is_simulated() -> None:
    # A paper broker on a simulated clock stamps fills on another day: the trade was entered
    # (its row created) on this one, so it opened on this one.
    simulated = trade("sim", opened=at(0), closed=at(30), pnl="3").model_copy(
        update={"opened_at": START - timedelta(days=40)}
    )
    held = trade("held", opened=at(2)).model_copy(update={"opened_at": END + timedelta(days=3)})
    report = build_report(ledger(trades=[simulated, held]))
    assert (report.trades.opened, report.trades.closed, report.trades.open_at_end) == (2, 1, 1)


def test_option_trades_of_the_day_and_their_closes_in_the_day_s_realized_pnl() -> None:
    report = build_report(
        ledger(
            trades=[trade("stock", opened=at(0), closed=at(10.5), pnl="50.25")],
            option_trades=[
                condor("tp", created=at(1), status=OptionTradeStatus.CLOSED, closed=at(10.2),
                       pnl="60.00", exit_reason="take_profit"),
                condor("sl", created=at(2), status=OptionTradeStatus.CLOSED, closed=at(45),
                       pnl="-130.00", exit_reason="stop_loss"),
                condor("gone", created=at(3), status=OptionTradeStatus.CLOSED, closed=at(50),
                       exit_reason=CLOSED_OUTSIDE),
                condor("refused", created=at(4), status=OptionTradeStatus.ENTRY_FAILED,
                       closed=at(5), exit_reason="entry_failed"),
                condor("held", created=at(6), status=OptionTradeStatus.OPEN, max_loss="400"),
                condor("working", created=at(7), status=OptionTradeStatus.PENDING_ENTRY,
                       max_loss="450"),
                condor("adopted", created=at(8), status=OptionTradeStatus.OPEN,
                       origin=TradeOrigin.EXTERNAL, max_loss="250"),
                condor("carried", created=START - timedelta(days=1), status=OptionTradeStatus.OPEN,
                       closed=None, max_loss="300"),
                condor("last week", created=START - timedelta(days=7),
                       status=OptionTradeStatus.CLOSED, closed=START - timedelta(days=1),
                       pnl="99", exit_reason="dte_threshold"),
            ],
        )
    )  # fmt: skip
    options = report.options
    assert (options.opened, options.closed, options.entries_failed) == (5, 3, 1)
    assert (options.adopted, options.closed_outside, options.open_at_end) == (1, 1, 4)
    assert (options.winners, options.losers) == (1, 1)
    assert options.realized_pnl == Decimal("-70.00")
    assert options.max_loss_open_at_end == Decimal(1400)  # the entry still working counts too
    assert options.held_back_at_end == []
    assert [t.trade_id for t in options.trades][:2] == ["carried", "tp"]  # in entry order
    assert "last week" not in {t.trade_id for t in options.trades}
    lines = {t.trade_id: t for t in options.trades}
    assert lines["tp"].closed_today and lines["tp"].opened_today
    assert lines["tp"].credit == Decimal("1.20") and lines["tp"].exit_debit == Decimal("0.60")
    assert not lines["carried"].opened_today and not lines["carried"].closed_today
    assert not lines["working"].opened_today  # not filled yet
    # The stock trades' figures stay their own; the day's total and its chart count both.
    assert report.trades.realized_pnl == Decimal("50.25")
    assert report.pnl.realized_pnl == Decimal("-19.75")
    assert [(p.minute, p.cumulative_realized) for p in report.pnl.points] == [
        (at(10), Decimal("110.25")),
        (at(45), Decimal("-19.75")),
        (at(50), Decimal("-19.75")),
    ]
    assert "option" in report.pnl.note
    assert report.verdict.result is VerdictResult.PASS
    assert (
        "1 trade(s) closed, 3 option trade(s) closed, realized P&L -19.75" in report.verdict.reason
    )


def test_option_trades_alone_are_activity() -> None:
    report = build_report(
        ledger(option_trades=[condor("only", created=at(1), status=OptionTradeStatus.OPEN)])
    )
    assert report.activity and report.verdict.result is VerdictResult.PASS
    assert report.options.open_at_end == 1 and report.trades.trades == []


def test_older_report_json_without_options_still_reads() -> None:
    document = quiet_day().model_dump(mode="json")
    del document["options"]
    del document["pnl"]["realized_pnl"]
    older = DayReport.model_validate(document)
    assert older.options.trades == [] and older.options.realized_pnl == 0


def test_rescue_latencies_and_gaps_from_risk_events_and_the_audit() -> None:
    gaps = [120, 450, 800, 1200, 3000]
    events = [risk("stop_rescued", at(i), {"gap_ms": g}, event_id=i) for i, g in enumerate(gaps)]
    report = quiet_day(
        risk_events=[
            *events,
            risk("stop_rescued", at(9), {"gap_ms": 2000, "latency_ms": 150}, event_id=9),
        ],
        audit=[
            audit("exit_unprotected_gap", at(50), {"gap_ms": 900, "urgency": "IMMEDIATE"}),
            audit(
                "flatten_close_position",
                at(70),
                {"symbol": "MSFT", "protected_before": True, "unprotected_gap_ms": 2500},
            ),
            audit("flatten_close_position", at(71), {"protected_before": False}),
        ],
    )
    rescues = report.rescues
    assert (rescues.rescued, rescues.failed, rescues.alerts) == (6, 0, 0)
    # A rescue that records its own latency (submit -> accepted) is timed by it; its gap
    # (missing stop seen -> accepted) still counts as an unprotected gap.
    assert rescues.latencies_ms == [*gaps, 150]
    assert (rescues.latency.p50_ms, rescues.latency.p95_ms, rescues.latency.max_ms) == (
        450,
        3000,
        3000,
    )
    assert [g.source for g in report.gaps.gaps] == ["rescue"] * 6 + ["exit", "flatten"]
    assert 2000 in [g.gap_ms for g in report.gaps.gaps]
    assert report.gaps.stats.max_ms == 3000 and report.gaps.over_limit == 0
    assert report.verdict.result is VerdictResult.PASS


def test_latency_percentiles_are_nearest_rank() -> None:
    assert latency_stats([]).count == 0 and latency_stats([]).p50_ms is None
    stats = latency_stats(list(range(1, 101)))
    assert (stats.p50_ms, stats.p95_ms, stats.max_ms) == (50, 95, 100)
    assert latency_stats([7]).p95_ms == 7


def test_reconcile_entries_and_incidents() -> None:
    report = quiet_day(
        reconcile_runs=[
            reconcile(at(0), closed=2, adopted=1, synced=3),
            reconcile(at(1), ok=None),
            reconcile(at(2), source="cli", adopted=1),
        ],
        entry_runs=[entry_run(at(0), reason="market_closed"), entry_run(at(5), entered=1)],
        signal_decisions=[
            SignalDecisionCount(decision="skipped", reason="max_open_positions", count=4),
            SignalDecisionCount(decision="skipped", reason="stale_signal", count=1),
            SignalDecisionCount(decision="entered", reason="approved", count=2),
            SignalDecisionCount(decision="added", reason="approved", count=1),
        ],
        audit=[audit("control_halt", at(40), {"mode": "HALTED"})],
    )
    rec = report.reconcile
    assert (rec.runs, rec.ok, rec.failed, rec.unfinished) == (3, 2, 0, 1)
    assert (rec.ghosts_closed, rec.adopted, rec.synced) == (2, 2, 3)
    entries = report.entries
    assert (entries.runs, entries.entered, entries.added, entries.skipped) == (2, 2, 1, 5)
    assert entries.skipped_by_reason == {"max_open_positions": 4, "stale_signal": 1}
    assert entries.runs_by_reason == {"market_closed": 1}
    assert [i.kind for i in report.incidents] == ["control_halt"]
    assert report.verdict.result is VerdictResult.PASS  # an operator's halt is not a failure


def test_broker_calls_per_minute_and_the_busiest_sixty_seconds() -> None:
    report = quiet_day(
        broker_calls=[*calls(at(0.5), 170, 20), *calls(at(1), 30, 15), *calls(at(5), 10)],
        broker_calls_kept_since=START - timedelta(days=1),
        budget_per_min=190,
    )
    section = report.broker_calls
    assert (section.total_calls, section.minutes_with_calls) == (210, 3)
    assert (section.max_per_min, section.avg_per_min, section.peak_60s) == (170, 70.0, 200)
    assert (section.busy_minutes, section.minutes_over_limit) == (1, 0)  # 170 > 160
    assert section.limit_per_min == 200 and section.budget_per_min == 190
    assert [m.calls for m in section.per_minute] == [170, 30, 10]
    assert section.coverage_note.startswith("complete")
    assert report.verdict.result is VerdictResult.PASS


def test_pruned_broker_calls_are_reported_as_partial() -> None:
    kept = at(100)
    report = quiet_day(broker_calls=calls(kept, 3), broker_calls_kept_since=kept)
    assert report.broker_calls.coverage_note.startswith("partial")
    assert report.broker_calls.recorded_from == kept


def test_peak_in_window_slides() -> None:
    series = [BrokerCall(at=at(0) + timedelta(seconds=s)) for s in (0, 30, 59, 60, 61, 200)]
    assert peak_in_window(series) == 4  # 0/30/59 and 30/59/60/61 fall in one 60 s window
    assert peak_in_window([]) == 0


# --- the verdict, rule by rule -------------------------------------------------------------


def test_a_day_without_activity_says_so() -> None:
    report = build_report(ledger())
    assert not report.activity
    assert report.verdict.result is VerdictResult.NO_ACTIVITY
    assert "no activity on 2025-03-12" in report.verdict.reason
    assert report.trades.trades == [] and report.broker_calls.total_calls == 0


def test_a_failed_rescue_fails_the_day() -> None:
    report = quiet_day(
        risk_events=[
            risk("stop_rescue_failed", at(3), {"error": "insufficient qty"}),
            risk("stop_rescued", at(4), {"gap_ms": 500}, event_id=2),
        ]
    )
    assert report.verdict.result is VerdictResult.FAIL
    assert report.verdict.reason.startswith("1 stop rescue(s) failed")
    assert "insufficient qty" in report.verdict.reason


@pytest.mark.parametrize(("gap_ms", "fails"), [(10_000, False), (10_001, True)])
def test_an_unprotected_gap_over_ten_seconds_fails(gap_ms: int, fails: bool) -> None:
    report = quiet_day(risk_events=[risk("stop_rescued", at(3), {"gap_ms": gap_ms})])
    assert (report.verdict.result is VerdictResult.FAIL) is fails
    if fails:
        assert "unprotected gap(s) over 10.0 s: 10.0 s (rescue, trade t1)" in report.verdict.reason


def test_an_exit_gap_counts_too() -> None:
    report = quiet_day(audit=[audit("exit_unprotected_gap", at(9), {"gap_ms": 12_000})])
    assert "12.0 s (exit, trade t1)" in report.verdict.reason


def test_a_failed_reconcile_fails_the_day() -> None:
    report = quiet_day(reconcile_runs=[reconcile(at(0)), reconcile(at(1), ok=False)])
    assert report.verdict.reason == "1 reconcile run(s) failed (broker unavailable)"


@pytest.mark.parametrize(
    ("blocked_until", "fails"),
    [(at(20), True), (END + timedelta(minutes=1), True), (START - timedelta(minutes=1), False)],
)
def test_a_429_on_the_day_fails_it(blocked_until: datetime, fails: bool) -> None:
    block = RateLimitBlock(
        account="abc", blocked_until=blocked_until, reason="GET /v2/orders was answered 429"
    )
    report = quiet_day(rate_limit_blocks=[block])
    assert (report.verdict.result is VerdictResult.FAIL) is fails
    if fails:
        assert report.verdict.reason.startswith("the broker answered 429")


@pytest.mark.parametrize(("in_minute", "fails"), [(200, False), (201, True)])
def test_broker_calls_over_the_limit_in_a_minute(in_minute: int, fails: bool) -> None:
    report = quiet_day(broker_calls=calls(at(0), in_minute, 50))
    assert (report.verdict.result is VerdictResult.FAIL) is fails
    assert report.broker_calls.busy_minutes == 1
    if fails:
        assert report.verdict.reason.startswith("broker calls over the limit: 201 in a minute")


def test_broker_calls_over_the_limit_across_a_minute_boundary() -> None:
    # 150 late in one minute and 100 early in the next: each minute is under 200, 60 s is not.
    report = quiet_day(broker_calls=[*calls(at(0.6), 150, 20), *calls(at(1.1), 100, 5)])
    assert report.broker_calls.minutes_over_limit == 0
    assert report.broker_calls.peak_60s == 250
    assert "250 in 60 s (limit 200)" in report.verdict.reason


def test_the_broker_s_own_limit_wins_when_it_is_lower() -> None:
    report = quiet_day(broker_calls=calls(at(0), 120, 30), broker_limit_seen=100)
    assert report.broker_calls.limit_per_min == 100
    assert report.verdict.result is VerdictResult.FAIL
    unlimited = quiet_day(broker_calls=calls(at(0), 201, 30), broker_limit_seen=1_000_000_000)
    assert unlimited.broker_calls.limit_per_min == 200  # a paper broker that does not limit
    assert unlimited.verdict.result is VerdictResult.FAIL


@pytest.mark.parametrize(("pause_s", "fails"), [(600, False), (601, True)])
def test_a_heartbeat_gap_of_a_scheduled_job(pause_s: int, fails: bool) -> None:
    runs = [reconcile(at(0)), reconcile(at(0) + timedelta(seconds=pause_s))]
    report = quiet_day(reconcile_runs=runs)
    assert (report.verdict.result is VerdictResult.FAIL) is fails
    if fails:
        assert report.verdict.reason.startswith(
            "heartbeat gap: reconcile schedule paused 10.0 min after 09:30 ET"
        )


def test_runs_started_by_hand_are_not_heartbeats() -> None:
    report = quiet_day(
        reconcile_runs=[reconcile(at(0), source="cli"), reconcile(at(200), source="cli")],
        entry_runs=[entry_run(at(0)), entry_run(at(300))],
    )
    assert report.verdict.result is VerdictResult.PASS
    every_run = report.heartbeats.series[-1]
    assert every_run.max_gap_s == 300 * 60 and not every_run.judged


def test_a_stale_broker_sync_poll_fails_only_while_the_day_is_on() -> None:
    now = at(120)
    stale = {"last_poll_at": now - timedelta(seconds=601)}
    ongoing = build_report(ledger(generated_at=now, trades=[trade("t0", opened=at(1))], **stale))
    assert not ongoing.complete and ongoing.heartbeats.broker_sync_poll_age_s == 601
    assert ongoing.verdict.reason.startswith("heartbeat gap: BrokerSync's last poll is 10.0 min")
    fresh = build_report(
        ledger(
            generated_at=now,
            trades=[trade("t0", opened=at(1))],
            last_poll_at=now - timedelta(seconds=600),
        )
    )
    assert fresh.verdict.result is VerdictResult.PASS
    over = quiet_day(**stale)  # the day is over: its last poll's age says nothing of the day
    assert over.heartbeats.broker_sync_poll_age_s is None
    assert over.verdict.result is VerdictResult.PASS


def test_an_open_position_without_a_stop_at_the_end_fails() -> None:
    report = quiet_day(trades=[trade("bare", opened=at(2), stop=None)])
    assert report.verdict.reason.startswith("1 open position(s) without a stop: bare (AAPL")
    covered = quiet_day(trades=[trade("kept", opened=at(2))])
    assert covered.verdict.result is VerdictResult.PASS
    # Closed before the end: not open at the end, whatever its stop.
    closed = quiet_day(trades=[trade("done", opened=at(2), closed=at(9), pnl="1", stop=None)])
    assert closed.verdict.result is VerdictResult.PASS


def test_an_option_close_held_back_at_the_end_fails() -> None:
    held_back = condor("ic1", created=at(2), status=OptionTradeStatus.CLOSING, note=HELD_BACK)
    report = quiet_day(option_trades=[held_back])
    assert report.verdict.result is VerdictResult.FAIL
    assert report.verdict.reason.startswith(
        "1 option close(s) held back at the end: ic1 (SPY: close held back, the legs held"
    )
    assert report.options.held_back_at_end == [f"ic1 (SPY: {HELD_BACK})"]
    # A close still working (its order sent) is not held back; neither is one that ended.
    working = condor(
        "ic2", created=at(2), status=OptionTradeStatus.CLOSING, note="close ic2-x1 accepted"
    )
    outside = condor(
        "ic3",
        created=at(2),
        status=OptionTradeStatus.CLOSED,
        closed=at(80),
        exit_reason=CLOSED_OUTSIDE,
        note="no leg held any more, nothing to close",
    )
    passed = quiet_day(option_trades=[working, outside])
    assert passed.verdict.result is VerdictResult.PASS, passed.verdict
    assert passed.options.closed_outside == 1


def _stop(qty: str, status: OrderStatus = OrderStatus.NEW) -> BrokerOrder:
    return BrokerOrder(
        id="o1",
        client_order_id="t1.st.0",
        symbol="AAPL",
        side=OrderSide.SELL,
        type=OrderType.STOP,
        qty=Decimal(qty),
        stop_price=Decimal(95),
        status=status,
        order_class=OrderClass.SIMPLE,
        time_in_force=TimeInForce.GTC,
        created_at=at(0),
        updated_at=at(0),
    )


@pytest.mark.parametrize(
    ("orders", "fails"),
    [([], True), (["5"], True), (["10"], False)],
    ids=["no stop", "short stop", "covering stop"],
)
def test_while_the_day_is_on_the_broker_view_must_show_a_covering_stop(
    orders: list[str], fails: bool
) -> None:
    view = BrokerViewSymbol(symbol="AAPL", qty=Decimal(10), open_orders=[_stop(q) for q in orders])
    now = at(60)
    report = build_report(ledger(generated_at=now, broker_view=[view], last_poll_at=now, trades=[]))
    assert (report.verdict.result is VerdictResult.FAIL) is fails
    if fails:
        assert "AAPL (broker: 10 shares, no covering stop" in report.verdict.reason


def test_a_critical_risk_event_fails_and_several_failures_are_counted() -> None:
    report = quiet_day(
        risk_events=[
            risk("daily_loss_limit", at(90), {"daily_pnl": "-900"}, RiskSeverity.CRITICAL),
            risk("stop_rescue_alert", at(91), {"error": "x"}, RiskSeverity.CRITICAL, 2),
        ],
        audit=[audit("flatten_incomplete", at(95), {"positions_left": "AAPL"})],
    )
    assert report.verdict.failures == [
        "0 stop rescue(s) failed, 1 alert(s) (first: trade t1: x)",
        "1 critical risk event(s): daily_loss_limit",
        "a flatten did not end flat",
    ]
    assert report.verdict.reason.endswith("(and 2 more)")
    assert {i.kind for i in report.incidents} == {
        "daily_loss_limit",
        "stop_rescue_alert",
        "flatten_incomplete",
    }


# --- pictures and page ---------------------------------------------------------------------


def _images(page: str) -> dict[str, bytes]:
    found = re.findall(r"id='chart-(\w+)' src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    return {name: base64.b64decode(data) for name, data in found}


@pytest.mark.parametrize("busy", [True, False], ids=["busy day", "empty day"])
def test_the_page_embeds_every_chart_as_a_png(busy: bool) -> None:
    rows: dict[str, Any] = {}
    if busy:
        rows = {
            "trades": [
                trade("w", opened=at(0), closed=at(20), pnl="12"),
                trade("l", opened=at(1), closed=at(80), pnl="-7"),
            ],
            "risk_events": [risk("stop_rescued", at(5), {"gap_ms": 640})],
            "broker_calls": [*calls(at(0), 40, 50), *calls(at(3), 190, 50)],
            "budget_per_min": 190,
        }
    report = build_report(ledger(**rows))
    charts = render_charts(report)
    assert set(charts) == set(CHART_TITLES)
    assert all(png.startswith(PNG) for png in charts.values())
    page = render_html(report, charts)
    assert _images(page) == charts
    assert f"<b>{report.verdict.result.value}</b>" in page
    if busy:
        assert "<td>w</td>" in page and "-7" in page


def test_the_page_has_a_table_of_the_day_s_option_trades() -> None:
    report = quiet_day(
        option_trades=[
            condor("ic-won", created=at(1), status=OptionTradeStatus.CLOSED, closed=at(30),
                   pnl="60.00", exit_reason="take_profit"),
        ]
    )  # fmt: skip
    page = render_html(report, render_charts(report))
    assert "<h2>Option trades</h2>" in page
    assert "<td>ic-won</td><td>SPY</td>" in page and "<td>take_profit</td>" in page
    empty = render_html(quiet_day(), {})
    assert "no option trade on this day" in empty
