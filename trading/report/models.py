"""The day report's values: what is read from the ledger for one day, and the report itself.

`DayLedger` is everything `report day` reads for one New York day (cli/report.py fills it);
`DayReport` is what it prints with --json. Its JSON Schema is committed as
docs/report_day.schema.json and a unit test keeps the two in step.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

from pydantic import Field

from trading.broker_models import BrokerOrder
from trading.ledger_records import (
    CloseReason,
    EntryRunRecord,
    ReconcileRunRecord,
    RiskEventRecord,
    TradeOrigin,
    TradeRecord,
    TradeStatus,
)
from trading.models import AuditRow, Frozen
from trading.options.records import OptionTradeRecord
from trading.options.trade_models import OptionTradeStatus

REPORT_SCHEMA_VERSION = 1

# --- what is read --------------------------------------------------------------------------


class ReportThresholds(Frozen):
    """The verdict's limits (see trading/report/day.py for the rules)."""

    max_unprotected_gap_ms: int = Field(
        default=10_000, ge=0, description="an unprotected gap longer than this fails the day"
    )
    max_heartbeat_gap_s: int = Field(
        default=600,
        ge=1,
        description="a gap between two scheduled runs (or a BrokerSync poll this old while the "
        "day is on) longer than this fails the day",
    )
    broker_limit_per_min: int = Field(
        default=200,
        ge=1,
        description="the broker's calls-per-minute limit (Alpaca: 200; a lower limit the "
        "broker reported in X-RateLimit-Limit wins)",
    )
    busy_fraction: float = Field(
        default=0.8, gt=0, le=1, description="a minute above this share of the limit is busy"
    )


class BrokerCall(Frozen):
    """One broker call as the shared budget recorded it (migration 0003)."""

    at: datetime
    slots: int = Field(default=1, ge=1)


class RateLimitBlock(Frozen):
    """The latest 429 an account recorded: it blocks every process until `blocked_until`."""

    account: str
    blocked_until: datetime
    reason: str


class SignalDecisionCount(Frozen):
    """How many signals the market loop decided one way, for one reason, on the day."""

    decision: str
    reason: str
    count: int = Field(ge=0)


class BrokerViewSymbol(Frozen):
    """A symbol in BrokerSync's last stored poll: position and open orders."""

    symbol: str
    qty: Decimal
    open_orders: list[BrokerOrder] = Field(default_factory=list)


class DayLedger(Frozen):
    """Everything the report reads for one New York day, in UTC; rows fall inside the window
    (trades and option trades: those touching it, or still open at its start)."""

    day: date
    window_start: datetime
    window_end: datetime
    generated_at: datetime
    trades: list[TradeRecord] = Field(default_factory=list)
    option_trades: list[OptionTradeRecord] = Field(
        default_factory=list, description="option trades touching the window, as trades"
    )
    risk_events: list[RiskEventRecord] = Field(default_factory=list)
    audit: list[AuditRow] = Field(default_factory=list)
    reconcile_runs: list[ReconcileRunRecord] = Field(default_factory=list)
    entry_runs: list[EntryRunRecord] = Field(default_factory=list)
    signal_decisions: list[SignalDecisionCount] = Field(default_factory=list)
    broker_calls: list[BrokerCall] = Field(default_factory=list)
    broker_calls_kept_since: datetime | None = None  # the oldest call row the ledger still has
    broker_limit_seen: int | None = None  # X-RateLimit-Limit the broker last answered
    budget_per_min: int | None = None  # the budget all processes share (BROKER_CALLS_PER_MIN)
    rate_limit_blocks: list[RateLimitBlock] = Field(default_factory=list)
    last_poll_at: datetime | None = None  # BrokerSync's last successful poll (one row)
    broker_view: list[BrokerViewSymbol] = Field(default_factory=list)


# --- the report ----------------------------------------------------------------------------


class VerdictResult(StrEnum):
    """How the day went."""

    PASS = "PASS"
    FAIL = "FAIL"
    NO_ACTIVITY = "NO_ACTIVITY"


class Verdict(Frozen):
    """The day's verdict: one line of reason, and every failed rule."""

    result: VerdictResult
    reason: str
    failures: list[str] = Field(default_factory=list)


class TradeLine(Frozen):
    """One trade of the day."""

    trade_id: str
    symbol: str
    origin: TradeOrigin
    status: TradeStatus
    qty: Decimal
    entry_price: Decimal | None
    exit_price: Decimal | None
    opened_at: datetime | None
    closed_at: datetime | None
    close_reason: CloseReason | None
    realized_pnl: Decimal | None
    opened_today: bool
    closed_today: bool
    stop_order_id: str | None


class TradesSection(Frozen):
    """Trades opened and closed on the day, with realized P&L (closes of the day only).

    A trade opened on the day when it was entered (its ledger row created) that day and got a
    fill; opened_at is the broker's fill time, shown as the broker reported it.
    """

    opened: int
    closed: int
    entries_failed: int = Field(description="ENTRY_FAILED or ENTRY_CANCELLED on the day")
    adopted: int = Field(description="opened on the day by reconcile (origin external)")
    open_at_end: int
    winners: int
    losers: int
    realized_pnl: Decimal = Field(description="sum of realized_pnl of the trades closed that day")
    unprotected_at_end: list[str] = Field(
        default_factory=list, description="open positions without a stop at the day's end"
    )
    trades: list[TradeLine] = Field(default_factory=list)


class OptionTradeLine(Frozen):
    """One option trade (an iron condor) of the day: prices per share, money in dollars."""

    trade_id: str
    underlying: str
    strategy: str
    origin: TradeOrigin
    status: OptionTradeStatus
    expiry: date
    qty: int
    credit: Decimal | None = Field(description="per share, taken in at the open")
    exit_debit: Decimal | None = Field(description="per share, paid at the close")
    exit_reason: str | None
    realized_pnl: Decimal | None
    max_loss: Decimal
    opened_at: datetime | None
    closed_at: datetime | None
    opened_today: bool
    closed_today: bool
    note: str = ""


class OptionTradesSection(Frozen):
    """Option trades (the option_trades table) opened and closed on the day.

    Counted as stock trades are: opened on the day its row was created with a fill, closed on
    the day of closed_at. Their closes count in the day's total realized P&L
    (pnl.realized_pnl) and in the cumulative P&L chart; realized_pnl here is theirs alone.
    """

    opened: int = 0
    closed: int = Field(default=0, description="CLOSED on the day, whatever the exit reason")
    entries_failed: int = Field(default=0, description="ENTRY_FAILED on the day")
    adopted: int = Field(default=0, description="opened on the day by reconcile (external)")
    closed_outside: int = Field(
        default=0, description="closed on the day with no leg held (exit reason closed_outside)"
    )
    open_at_end: int = Field(
        default=0, description="rows not closed at the end: entering, open or closing"
    )
    winners: int = 0
    losers: int = 0
    realized_pnl: Decimal = Field(
        default=Decimal(0), description="sum of realized_pnl of the option trades closed that day"
    )
    max_loss_open_at_end: Decimal = Field(
        default=Decimal(0), description="the max_loss of the rows open at the end, summed"
    )
    held_back_at_end: list[str] = Field(
        default_factory=list,
        description="CLOSING at the end with the close held back (the legs held do not match)",
    )
    trades: list[OptionTradeLine] = Field(default_factory=list)


class PnlPoint(Frozen):
    """Cumulative realized P&L (stock and option closes) at the end of a minute with a close."""

    minute: datetime
    cumulative_realized: Decimal


class PnlSection(Frozen):
    """Realized P&L through the day (stock and option closes); equity only when account
    snapshots are stored."""

    realized_pnl: Decimal = Field(
        default=Decimal(0),
        description="the day's total realized P&L: stock trades' and option trades' closes",
    )
    points: list[PnlPoint] = Field(default_factory=list)
    equity_available: bool = False
    note: str


class LatencyStats(Frozen):
    """Nearest-rank percentiles of a set of durations, in milliseconds (None when empty)."""

    count: int
    p50_ms: int | None = None
    p95_ms: int | None = None
    max_ms: int | None = None


class RescueLine(Frozen):
    """One stop-rescue event."""

    at: datetime
    trade_id: str | None
    symbol: str | None
    outcome: str = Field(description="rescued | failed | alert")
    latency_ms: int | None = Field(
        default=None, description="the event's latency_ms when recorded, else its gap_ms"
    )
    gap_ms: int | None = None
    error: str | None = None


class RescueSection(Frozen):
    """Stop rescues: how many landed or failed, and how long each took."""

    rescued: int
    failed: int
    alerts: int
    latency: LatencyStats = Field(
        description="each rescue's latency_ms (rescue submitted -> accepted) where the event "
        "records it, else its gap_ms (missing stop first seen -> rescue accepted)"
    )
    latencies_ms: list[int] = Field(default_factory=list)
    events: list[RescueLine] = Field(default_factory=list)


class GapLine(Frozen):
    """One measured window in which a position had no working stop."""

    at: datetime
    source: str = Field(description="rescue | exit | flatten")
    trade_id: str | None
    symbol: str | None
    gap_ms: int


class GapSection(Frozen):
    """Unprotected gaps: rescues, two-phase exits and flatten closes."""

    stats: LatencyStats
    over_limit: int
    limit_ms: int
    gaps: list[GapLine] = Field(default_factory=list)


class ReconcileFailure(Frozen):
    """A reconcile run that failed."""

    run_id: str
    started_at: datetime
    error: str | None


class ReconcileSection(Frozen):
    """Reconcile runs started on the day and what they changed."""

    runs: int
    ok: int
    failed: int
    unfinished: int
    ghosts_closed: int
    adopted: int
    synced: int
    failures: list[ReconcileFailure] = Field(default_factory=list)


class EntriesSection(Frozen):
    """The market loop's entry decisions: runs, and signals entered, added or skipped."""

    runs: int
    entered: int
    added: int
    skipped: int
    skipped_by_reason: dict[str, int] = Field(default_factory=dict)
    runs_by_reason: dict[str, int] = Field(
        default_factory=dict, description="runs that entered nothing, by the run's reason"
    )


class MinuteCount(Frozen):
    """Broker calls (budget slots) in one clock minute."""

    minute: datetime
    calls: int


class BrokerCallsSection(Frozen):
    """Broker calls per minute against the limit, from the shared budget's records."""

    limit_per_min: int
    budget_per_min: int | None
    total_calls: int
    minutes_with_calls: int
    max_per_min: int
    avg_per_min: float = Field(description="over the minutes with calls")
    peak_60s: int = Field(description="the most calls in any sliding 60 s window")
    busy_minutes: int = Field(description="minutes above busy_fraction of the limit")
    minutes_over_limit: int
    rate_limited: list[RateLimitBlock] = Field(
        default_factory=list, description="429s recorded on the day (the latest per account)"
    )
    recorded_from: datetime | None = Field(
        default=None, description="the oldest call the ledger still holds for the day"
    )
    recorded_to: datetime | None = Field(default=None, description="the day's newest call")
    coverage_note: str
    per_minute: list[MinuteCount] = Field(default_factory=list)


class HeartbeatGap(Frozen):
    """Two consecutive runs further apart than the limit."""

    after: datetime
    before: datetime
    seconds: float


class HeartbeatSeries(Frozen):
    """Runs of one periodic job on the day, and its longest pause."""

    name: str
    runs: int
    judged: bool = Field(default=True, description="false: shown, not held to the limit")
    first_at: datetime | None = None
    last_at: datetime | None = None
    max_gap_s: float | None = None
    gaps_over_limit: list[HeartbeatGap] = Field(default_factory=list)


class HeartbeatSection(Frozen):
    """The scheduled jobs' and BrokerSync's signs of life."""

    series: list[HeartbeatSeries] = Field(default_factory=list)
    broker_sync_last_poll: datetime | None = None
    broker_sync_poll_age_s: float | None = Field(
        default=None, description="at the report's time, while the day is on"
    )
    limit_s: int
    note: str


class Incident(Frozen):
    """A critical risk event, or a halt / flatten from the audit log."""

    at: datetime
    source: str = Field(description="risk_event | audit")
    kind: str
    severity: str
    trade_id: str | None = None
    symbol: str | None = None
    detail: str = ""


class DayReport(Frozen):
    """`report day --json`: the burn-in report of one New York trading day."""

    schema_version: int = REPORT_SCHEMA_VERSION
    day: date
    window_start: datetime
    window_end: datetime
    generated_at: datetime
    complete: bool = Field(description="the day was over when the report was made")
    activity: bool
    thresholds: ReportThresholds
    trades: TradesSection
    options: OptionTradesSection = Field(
        default_factory=OptionTradesSection, description="option trades (iron condors)"
    )
    pnl: PnlSection
    rescues: RescueSection
    gaps: GapSection
    reconcile: ReconcileSection
    entries: EntriesSection
    broker_calls: BrokerCallsSection
    heartbeats: HeartbeatSection
    incidents: list[Incident] = Field(default_factory=list)
    verdict: Verdict
