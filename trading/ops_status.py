"""The ops status view (`starter.py status --json`): its schema and the health verdict.

The JSON printed by `status --json` is `OpsStatus.model_dump(mode="json")`; its JSON Schema is
committed as docs/status.schema.json and a test keeps the two in step.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from pydantic import BaseModel, Field

from trading.broker_budget import BudgetView
from trading.broker_models import BrokerAccount, BrokerOrder, BrokerPosition
from trading.entry_gate import ControlView, EntryReason, GateAnswer, control_gate
from trading.ledger_records import EntryRunRecord, ReconcileRunRecord, SignalCounts
from trading.ops_health import Readiness
from trading.options.records import OptionTradeRecord

STATUS_SCHEMA_VERSION = 2


class BrokerSection(BaseModel):
    """Broker truth, fetched now; `error` set (and lists empty) when it could not be read."""

    connected: bool
    fetched_at: datetime | None = None
    error: str | None = None
    account: BrokerAccount | None = None
    positions: list[BrokerPosition] = Field(default_factory=list)
    open_orders: list[BrokerOrder] = Field(default_factory=list)
    market_open: bool | None = None


class ControlSection(ControlView):
    """TradingControl as the entry gate sees it, and what that means for entries."""

    entries_allowed: bool
    entries_reason: str = ""


def control_section(view: ControlView) -> ControlSection:
    """The status view of trading control, with the control part of the entry gate."""
    gate = control_gate(view)
    return ControlSection(**dict(view), entries_allowed=gate.allowed, entries_reason=gate.reason)


class EntrySection(BaseModel):
    """Entry gating: what the gate (the market loop's own) says now, and the last run."""

    ready: bool
    skip_reason: EntryReason | None = None
    skip_detail: str | None = None
    note: str = ""
    broker_positions_count: int | None = None
    pending_entries: int | None = None
    max_open_positions: int
    last_run: EntryRunRecord | None = None


def entry_section(
    answer: GateAnswer, max_open_positions: int, last_run: EntryRunRecord | None
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


class ScoringSection(BaseModel):
    """Scoring backlog: the last 6 hours and all time."""

    last_6h: SignalCounts
    all_time: SignalCounts
    oldest_pending_age_s: float | None = None
    # What the market loop did with the signals it decided in the last 6 hours, by reason:
    # "entered", "added", "skipped:<reason>" (each signal counted once, its latest decision).
    decisions_6h: dict[str, int] = Field(default_factory=dict)


class ReconcileSection(BaseModel):
    """Reconcile telemetry: summary and the last runs."""

    runs_total: int
    failed_total: int
    last_runs: list[ReconcileRunRecord] = Field(default_factory=list)


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


class OptionsSection(BaseModel):
    """Open option trades from the ledger, and the most they can lose together."""

    open_trades: list[OptionTradeRecord] = Field(default_factory=list)
    max_loss_open: Decimal = Field(
        Decimal(0), description="dollars: the open structures' max losses summed (their heat)"
    )


def options_section(open_trades: list[OptionTradeRecord]) -> OptionsSection:
    """The section from the ledger's open option trades."""
    return OptionsSection(
        open_trades=open_trades, max_loss_open=sum((t.max_loss for t in open_trades), Decimal(0))
    )


class OpsStatus(BaseModel):
    """Everything `starter.py status` shows, in one document."""

    schema_version: int = STATUS_SCHEMA_VERSION
    generated_at: datetime
    broker: BrokerSection
    budget: BudgetView | None = Field(
        None, description="the broker-call budget of the last 60 s; null when it was not read"
    )
    control: ControlSection
    entries: EntrySection
    scoring: ScoringSection | None
    reconcile: ReconcileSection | None
    rescues: RescueSection | None
    options: OptionsSection | None = Field(
        None, description="open option trades (the ledger); null when the ledger was not read"
    )
    schedules: list[ScheduleView] | None
    ledger_error: str | None = None
    temporal_error: str | None = None
    health: HealthSection
    readiness: Readiness | None = Field(
        None,
        description="a worker's /readyz verdicts (Temporal, database, broker, BrokerSync poll) "
        "as seen from here; null when they were not probed",
    )


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
