"""The ops status view (`starter.py status --json`): its schema and the health verdict.

The JSON printed by `status --json` is `OpsStatus.model_dump(mode="json")`; its JSON Schema is
committed as docs/status.schema.json and a test keeps the two in step.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from pydantic import BaseModel, Field

from trading.control import ControlMode
from trading.entry_gate import ControlPresence, ControlView, EntryReason, GateAnswer, control_gate

STATUS_SCHEMA_VERSION = 2


class PositionView(BaseModel):
    """One broker position."""

    symbol: str
    qty: Decimal
    avg_entry_price: Decimal
    market_value: Decimal | None = None
    unrealized_pl: Decimal | None = None


class OrderView(BaseModel):
    """One open broker order."""

    id: str
    client_order_id: str
    symbol: str
    side: str
    type: str
    status: str
    qty: Decimal | None
    stop_price: Decimal | None = None
    limit_price: Decimal | None = None


class BrokerSection(BaseModel):
    """Broker truth, fetched now; `error` set (and lists empty) when it could not be read."""

    connected: bool
    fetched_at: datetime | None = None
    error: str | None = None
    equity: Decimal | None = None
    cash: Decimal | None = None
    buying_power: Decimal | None = None
    positions: list[PositionView] = Field(default_factory=list)
    open_orders: list[OrderView] = Field(default_factory=list)
    market_open: bool | None = None


class ControlSection(BaseModel):
    """TradingControl: whether it runs, its mode and reason, and what that means for entries."""

    presence: ControlPresence
    mode: ControlMode | None = None
    reason: str = ""
    since: datetime | None = None
    detail: str = ""
    entries_allowed: bool
    entries_reason: str = ""


def control_section(view: ControlView) -> ControlSection:
    """The status view of trading control, with the control part of the entry gate."""
    gate = control_gate(view)
    return ControlSection(
        presence=view.presence,
        mode=view.mode,
        reason=view.reason,
        since=view.since,
        detail=view.detail,
        entries_allowed=gate.allowed,
        entries_reason=gate.reason,
    )


class EntryRunView(BaseModel):
    """The last entry pass of the market loop."""

    run_id: str
    at: datetime
    entered: int
    skipped: int
    reason: str
    detail: str


class EntrySection(BaseModel):
    """Entry gating: what the gate (the market loop's own) says now, and the last run."""

    ready: bool
    skip_reason: EntryReason | None = None
    skip_detail: str | None = None
    note: str = ""
    broker_positions_count: int | None = None
    pending_entries: int | None = None
    max_open_positions: int
    last_run: EntryRunView | None = None


def entry_section(
    answer: GateAnswer, max_open_positions: int, last_run: EntryRunView | None
) -> EntrySection:
    """The status view of the entry gate's answer."""
    return EntrySection(
        ready=answer.open,
        skip_reason=answer.reason,
        skip_detail=answer.detail or None,
        note=answer.note,
        broker_positions_count=answer.broker_positions,
        pending_entries=answer.pending_entries,
        max_open_positions=max_open_positions,
        last_run=last_run,
    )


class SignalCountsView(BaseModel):
    """Signals created in a window and where they are now."""

    created: int
    scored: int
    error: int
    pending: int


class ScoringSection(BaseModel):
    """Scoring backlog: the last 6 hours and all time."""

    last_6h: SignalCountsView
    all_time: SignalCountsView
    oldest_pending_age_s: float | None = None


class ReconcileRunView(BaseModel):
    """One reconcile run."""

    run_id: str
    source: str
    started_at: datetime
    ok: bool | None
    checked: int
    closed: int
    adopted: int
    synced: int
    duration_ms: int | None
    error: str | None


class ReconcileSection(BaseModel):
    """Reconcile telemetry: summary and the last runs."""

    runs_total: int
    failed_total: int
    last_runs: list[ReconcileRunView] = Field(default_factory=list)


class RescueSection(BaseModel):
    """Stop-rescue telemetry from the risk events of the last 24 hours."""

    rescued_24h: int
    failed_24h: int
    alerts_24h: int
    last_event_at: datetime | None = None


class ScheduleView(BaseModel):
    """One installed Temporal schedule."""

    id: str
    workflow: str
    paused: bool
    next_run: datetime | None = None


class HealthSection(BaseModel):
    """The verdict: each flag with the reason when it is false."""

    broker_connected: bool
    scoring_healthy: bool
    entries_ready: bool
    problems: list[str] = Field(default_factory=list)


class OpsStatus(BaseModel):
    """Everything `starter.py status` shows, in one document."""

    schema_version: int = STATUS_SCHEMA_VERSION
    generated_at: datetime
    broker: BrokerSection
    control: ControlSection
    entries: EntrySection
    scoring: ScoringSection | None
    reconcile: ReconcileSection | None
    rescues: RescueSection | None
    schedules: list[ScheduleView] | None
    ledger_error: str | None = None
    temporal_error: str | None = None
    health: HealthSection


PENDING_TOO_OLD = timedelta(hours=1)


def health(
    broker: BrokerSection, scoring: ScoringSection | None, entries: EntrySection
) -> HealthSection:
    """Broker connected, scoring keeping up, entries ready - with the reason for each no."""
    problems: list[str] = []
    if not broker.connected:
        problems.append(f"broker: {broker.error}")
    scoring_ok = scoring is not None
    if scoring is None:
        problems.append("scoring: ledger unavailable")
    elif (
        scoring.oldest_pending_age_s is not None
        and scoring.oldest_pending_age_s > PENDING_TOO_OLD.total_seconds()
    ):
        scoring_ok = False
        problems.append(
            f"scoring: oldest PENDING signal is {scoring.oldest_pending_age_s / 60:.0f} min old"
        )
    if not entries.ready:
        reason = entries.skip_reason.value if entries.skip_reason else "closed"
        problems.append(f"entries: {reason} {entries.skip_detail or ''}".strip())
    return HealthSection(
        broker_connected=broker.connected,
        scoring_healthy=scoring_ok,
        entries_ready=entries.ready,
        problems=problems,
    )
