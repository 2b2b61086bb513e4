"""The ops status view (`starter.py status --json`): its schema and the health verdict.

The JSON printed by `status --json` is `OpsStatus.model_dump(mode="json")`; its JSON Schema is
committed as docs/status.schema.json and a test keeps the two in step.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from pydantic import BaseModel, Field

STATUS_SCHEMA_VERSION = 1


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
    """TradingControl: mode and reason (mode `NOT_STARTED` when the workflow never ran)."""

    mode: str
    reason: str = ""
    since: datetime | None = None
    entries_allowed: bool
    entries_reason: str = ""


class EntryRunView(BaseModel):
    """The last entry pass of the market loop."""

    run_id: str
    at: datetime
    entered: int
    skipped: int
    reason: str
    detail: str


class EntrySection(BaseModel):
    """Entry gating: what the gate says now and what the last run decided."""

    ready: bool
    skip_reason: str | None = None
    skip_detail: str | None = None
    broker_positions_count: int | None = None
    max_open_positions: int
    last_run: EntryRunView | None = None


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


def entry_gate(
    broker: BrokerSection, control: ControlSection, max_open_positions: int
) -> tuple[bool, str | None, str | None]:
    """(ready, skip reason, detail) for a new entry now, counting the broker's positions."""
    if not control.entries_allowed:
        return False, "control_" + control.mode.lower(), control.entries_reason or None
    if not broker.connected:
        return False, "broker_truth_unavailable", broker.error
    count = sum(1 for p in broker.positions if p.qty != 0)
    if count >= max_open_positions:
        return (
            False,
            "max_open_positions",
            f"brokerPositionsCount={count} maxOpenPositions={max_open_positions}",
        )
    return True, None, None


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
        problems.append(f"entries: {entries.skip_reason} {entries.skip_detail or ''}".strip())
    return HealthSection(
        broker_connected=broker.connected,
        scoring_healthy=scoring_ok,
        entries_ready=entries.ready,
        problems=problems,
    )
