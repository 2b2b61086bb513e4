"""The system's Prometheus metrics (dt_*): one catalog, and helpers that record them.

Every metric is declared once in CATALOG with its type, help, unit (in the name) and the
closed set of values each label may take - never a trade id, order id or symbol. A value
outside the set is recorded as "other", so a new broker event or skip reason cannot grow the
series count (and never fails the workflow that records it).

Where a value is recorded decides the meter (`meter()`): inside a workflow,
`workflow.metric_meter()` (replay-safe: nothing is recorded while a history replays, so
recording adds no command and needs no patch); inside an activity, `activity.metric_meter()`;
elsewhere in a worker process, the runtime's own meter (ops/telemetry.py sets it); in a CLI
process, a no-op. Workflow and activity meters add the bounded labels namespace, task_queue
and workflow_type / activity_type; every series also carries service_name.

Gauges are per process: with several worker replicas, each exposes the value it set last
(aggregate with max() over fresh series, or read the *_timestamp_seconds gauges).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Final

from temporalio import activity, workflow
from temporalio.common import MetricGaugeFloat, MetricMeter

from trading.broker_models import BrokerOrder, BrokerPosition
from trading.control import ControlMode
from trading.entry_gate import EntryReason
from trading.ledger_records import TradeStatus
from trading.options.exits import CondorExitRule
from trading.options.legs import CLOSED_OUTSIDE
from trading.options.trade_models import ENTRY_FAILED, FORCED_EXIT
from trading.risk import RiskReason
from trading.routing import covering_stop_of

OTHER: Final = "other"


class Kind(StrEnum):
    """Prometheus metric type."""

    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


@dataclass(frozen=True)
class MetricDef:
    """One metric: name (unit in it), type, help, unit and each label's allowed values."""

    name: str
    kind: Kind
    help: str
    unit: str = ""
    labels: Mapping[str, frozenset[str]] = field(default_factory=dict)
    signed: bool = False  # a gauge that may go below zero (see _set_signed)


# --- label value sets ---------------------------------------------------------------------

OPEN_STATUSES: Final = (
    TradeStatus.PENDING_ENTRY,
    TradeStatus.OPEN,
    TradeStatus.EXIT_PLANNED,
    TradeStatus.EXITING,
)


class RescueOutcome(StrEnum):
    """dt_stop_rescues_total{outcome}."""

    ATTEMPTED = "attempted"
    OK = "ok"
    FAILED = "failed"


class CallOutcome(StrEnum):
    """dt_broker_calls_total{outcome}: answered, failed, answered 429, refused by the budget."""

    OK = "ok"
    ERROR = "error"
    RATE_LIMITED = "rate_limited"
    BUDGET = "budget"


class EntryDecisionKind(StrEnum):
    """dt_entries_total{decision}."""

    ENTERED = "entered"
    ADDED = "added"
    SKIPPED = "skipped"


# The metered gateway's calls (broker/metered.py) and the Alpaca routes they send; a snapshot
# (broker_truth) is three requests and counts on each of its routes.
BROKER_ROUTES: Final[Mapping[str, tuple[str, ...]]] = {
    "get_account": ("GET /v2/account",),
    "get_clock": ("GET /v2/clock",),
    "get_calendar": ("GET /v2/calendar",),
    "get_asset": ("GET /v2/assets/{symbol}",),
    "get_positions": ("GET /v2/positions",),
    "get_open_orders": ("GET /v2/orders",),
    "broker_truth": ("GET /v2/account", "GET /v2/positions", "GET /v2/orders"),
    "get_order": ("GET /v2/orders/{id}",),
    "probe_order": ("GET /v2/orders/{id}",),
    "get_order_by_client_id": ("GET /v2/orders:by_client_order_id",),
    "probe_position": ("GET /v2/positions/{symbol}",),
    "latest_quotes": ("GET /v2/stocks/quotes/latest",),
    "get_bars": ("GET /v2/stocks/bars",),
    "submit_order": ("POST /v2/orders",),
    "cancel_order": ("DELETE /v2/orders/{id}",),
    "replace_order": ("PATCH /v2/orders/{id}",),
    "close_position": ("DELETE /v2/positions/{symbol}",),
    # broker/option_positions.py's OPTION_POSITIONS_CALL (reconcile's option legs, and
    # option_legs_held before each option close): the same positions route, options kept.
    "option_positions": ("GET /v2/positions",),
    # broker/options.py's chain reads (the CLI's options commands, condor open).
    "option_contracts": ("GET /v2/options/contracts",),
    "option_chain": ("GET /v1beta1/options/snapshots/{underlying}",),
    # activities/options.py's calls (OptionTradeWorkflow). option_marks is the shared poll's
    # read: an expiry's chain snapshot; the rare symbol outside its chain is one latest-quote
    # request, counted on the same route.
    "option_marks": ("GET /v1beta1/options/snapshots/{underlying}",),
    "probe_option_order": ("GET /v2/orders:by_client_order_id",),
    "submit_mleg_order": ("POST /v2/orders",),
    "get_option_order": ("GET /v2/orders/{id}",),
    "cancel_option_order": ("DELETE /v2/orders/{id}",),
    "open_option_orders": ("GET /v2/orders",),
}
# Alpaca's trade_updates event names (the stream's `event` field).
TRADE_UPDATE_EVENTS: Final = frozenset(
    {
        "new",
        "accepted",
        "pending_new",
        "partial_fill",
        "fill",
        "canceled",
        "expired",
        "done_for_day",
        "replaced",
        "rejected",
        "stopped",
        "pending_cancel",
        "pending_replace",
        "calculated",
        "suspended",
        "held",
        "order_replace_rejected",
        "order_cancel_rejected",
        "restated",
    }
)
ENTRY_REASONS: Final = frozenset(r.value for r in EntryReason) | frozenset(
    r.value for r in RiskReason
)
# An option trade's transitions: opened, and each way it ends (the workflow's exit reasons).
OPTION_OPENED: Final = "opened"
OPTION_TRADE_EVENTS: Final = frozenset(
    {OPTION_OPENED, ENTRY_FAILED, FORCED_EXIT, CLOSED_OUTSIDE}
) | frozenset(r.value for r in CondorExitRule)


def _values(*groups: Iterable[str]) -> frozenset[str]:
    return frozenset(v for group in groups for v in group) | {OTHER}


# --- the catalog --------------------------------------------------------------------------

STOP_RESCUE_LATENCY_MS: Final = "dt_stop_rescue_latency_ms"
UNPROTECTED_GAP_MS: Final = "dt_unprotected_gap_ms"
# Milliseconds: a rescue normally lands within a second; a gap past a minute is an incident.
MS_BUCKETS: Final = (10.0, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000)
HISTOGRAM_BUCKETS: Final[Mapping[str, list[float]]] = {
    STOP_RESCUE_LATENCY_MS: [float(b) for b in MS_BUCKETS],
    UNPROTECTED_GAP_MS: [float(b) for b in MS_BUCKETS],
}

_DEFS: Final = (
    MetricDef(
        "dt_trades_open",
        Kind.GAUGE,
        "Trades not yet closed in the ledger, by status (each BrokerSync poll)",
        labels={"status": _values(s.value for s in OPEN_STATUSES)},
    ),
    MetricDef(
        "dt_positions_covered",
        Kind.GAUGE,
        "Broker positions an active stop covers in full (each BrokerSync poll)",
    ),
    MetricDef(
        "dt_positions_uncovered",
        Kind.GAUGE,
        "Broker positions no active stop covers in full (each BrokerSync poll)",
    ),
    MetricDef(
        "dt_position_uncovered_max_seconds",
        Kind.GAUGE,
        "Longest time a current position has been seen uncovered, 0 if none",
        "seconds",
    ),
    MetricDef(
        "dt_stop_rescues_total",
        Kind.COUNTER,
        "Stop rescues by a trade workflow: attempted, ok (an active stop again), failed",
        labels={"outcome": _values(o.value for o in RescueOutcome)},
    ),
    MetricDef(
        STOP_RESCUE_LATENCY_MS,
        Kind.HISTOGRAM,
        "Rescue submit started to the rescue stop accepted as active",
        "ms",
    ),
    MetricDef(
        UNPROTECTED_GAP_MS,
        Kind.HISTOGRAM,
        "Stop first seen missing (or confirmed cancelled) to a rescue stop accepted",
        "ms",
    ),
    MetricDef(
        "dt_broker_calls_total",
        Kind.COUNTER,
        "Broker REST calls by route template and outcome",
        labels={
            "route": _values(r for routes in BROKER_ROUTES.values() for r in routes),
            "outcome": _values(o.value for o in CallOutcome),
        },
    ),
    MetricDef(
        "dt_broker_ratelimit_remaining",
        Kind.GAUGE,
        "The broker's X-RateLimit-Remaining on its latest answer",
    ),
    MetricDef("dt_broker_http_429_total", Kind.COUNTER, "Broker calls answered 429"),
    MetricDef(
        "dt_trade_updates_events_total",
        Kind.COUNTER,
        "trade_updates stream events received, by Alpaca event",
        labels={"event": _values(TRADE_UPDATE_EVENTS)},
    ),
    MetricDef(
        "dt_trade_updates_stream_age_seconds",
        Kind.GAUGE,
        "Age of the current trade_updates connection (0 while not connected)",
        "seconds",
    ),
    MetricDef(
        "dt_truth_poll_age_seconds",
        Kind.GAUGE,
        "Seconds since BrokerSync's last successful poll (set each poll loop)",
        "seconds",
    ),
    MetricDef(
        "dt_truth_poll_last_success_timestamp_seconds",
        Kind.GAUGE,
        "Unix time of BrokerSync's last successful poll's snapshot",
        "seconds",
    ),
    MetricDef(
        "dt_reconcile_runs_total",
        Kind.COUNTER,
        "Reconcile runs by outcome (failed: the snapshot could not be taken)",
        labels={"outcome": _values(("ok", "failed"))},
    ),
    MetricDef(
        "dt_reconcile_ghosts_closed_total",
        Kind.COUNTER,
        "Ghost trades reconcile closed in the ledger",
    ),
    MetricDef(
        "dt_reconcile_positions_adopted_total",
        Kind.COUNTER,
        "Broker-only positions reconcile adopted (protect-only guard started)",
    ),
    MetricDef(
        "dt_signals_total",
        Kind.COUNTER,
        "Signals created, and ended SCORED or ERROR (expired included)",
        labels={"status": _values(("created", "scored", "error"))},
    ),
    MetricDef("dt_signals_pending", Kind.GAUGE, "Signals still PENDING in the ledger"),
    MetricDef(
        "dt_signals_oldest_pending_age_seconds",
        Kind.GAUGE,
        "Age of the oldest PENDING signal, 0 if none",
        "seconds",
    ),
    MetricDef(
        "dt_entries_total",
        Kind.COUNTER,
        "Market-loop entry decisions by decision and reason",
        labels={
            "decision": _values(d.value for d in EntryDecisionKind),
            "reason": _values(ENTRY_REASONS),
        },
    ),
    MetricDef(
        "dt_trading_control_mode",
        Kind.GAUGE,
        "Trading control's mode: 1 for the current mode, 0 for the others",
        labels={"mode": _values(m.value for m in ControlMode)},
    ),
    MetricDef(
        "dt_daily_pnl_dollars",
        Kind.GAUGE,
        "Equity minus the last close's equity (each loss check; negative on a losing day)",
        "dollars",
        signed=True,
    ),
    MetricDef("dt_equity_dollars", Kind.GAUGE, "Account equity (each loss check)", "dollars"),
    MetricDef(
        "dt_option_trades_total",
        Kind.COUNTER,
        "Option trades opened, and ended by reason (entry_failed, an exit rule, forced, "
        "closed_outside)",
        labels={"event": _values(OPTION_TRADE_EVENTS)},
    ),
    # A counter, not a gauge of held-back trades: each trade's workflow records alone (no
    # process sees them all), and a gauge would keep a stale 1 on a worker the workflow left.
    # A held-back trade checks again every check_interval, so the count grows while it lasts.
    MetricDef(
        "dt_option_legs_mismatch_total",
        Kind.COUNTER,
        "Option trade checks that held a close back: the legs held do not match the trade "
        "(one per check while it lasts)",
    ),
)
CATALOG: Final[Mapping[str, MetricDef]] = {d.name: d for d in _DEFS}
# Labels the SDK's workflow and activity meters add (bounded: one namespace and task queue
# per deployment, registered workflow and activity names); service_name on every series.
SDK_LABELS: Final = frozenset(
    {"namespace", "task_queue", "workflow_type", "activity_type", "service_name"}
)


# --- where to record ----------------------------------------------------------------------

_process_meter: MetricMeter = MetricMeter.noop


def use_process_meter(meter: MetricMeter) -> None:
    """The meter for code outside workflows and activities (a worker's runtime meter)."""
    global _process_meter
    _process_meter = meter


def meter() -> MetricMeter:
    """The meter of the calling context: workflow (replay-safe), activity, process, or no-op."""
    if workflow.in_workflow():
        return workflow.metric_meter()
    if activity.in_activity():
        try:
            return activity.metric_meter()
        except RuntimeError:  # a sync activity in another process: no meter there
            return MetricMeter.noop
    return _process_meter


def bounded(name: str, labels: Mapping[str, str]) -> dict[str, str]:
    """The labels of `name` with each value inside its declared set (else "other").

    Raises KeyError for an undeclared metric and ValueError for a label it does not have:
    programming errors, caught by the unit tests, never a runtime value.
    """
    definition = CATALOG[name]
    if set(labels) != set(definition.labels):
        raise ValueError(f"{name} takes labels {sorted(definition.labels)}, got {sorted(labels)}")
    return {
        label: value if value in definition.labels[label] else OTHER
        for label, value in labels.items()
    }


def count(name: str, value: int = 1, **labels: str) -> None:
    """Add to a counter."""
    definition = CATALOG[name]
    assert definition.kind is Kind.COUNTER, name
    if value <= 0:
        return
    m = meter()
    m.create_counter(name, definition.help, definition.unit or None).add(
        value, bounded(name, labels)
    )


def gauge(name: str, value: float | Decimal | int, **labels: str) -> None:
    """Set a gauge."""
    definition = CATALOG[name]
    assert definition.kind is Kind.GAUGE, name
    m = meter()
    metric = m.create_gauge_float(name, definition.help, definition.unit or None)
    if definition.signed:
        _set_signed(metric, float(value), bounded(name, labels))
    else:
        metric.set(max(0.0, float(value)), bounded(name, labels))


def _set_signed(metric: MetricGaugeFloat, value: float, labels: dict[str, str]) -> None:
    """Set a gauge that may be negative.

    Prometheus gauges are signed, and so is the SDK core's; the SDK's Python wrappers refuse a
    negative value (the guard counters need, applied to gauges too). A negative value goes to
    the core gauge beneath them, keeping the workflow wrapper's rule (nothing while replaying).
    Should a later SDK move those internals, the value is dropped, never raised: recording
    must not fail a workflow task (tests/unit/test_ops_metrics.py notices the drop).
    """
    if value >= 0:
        metric.set(value, labels)
        return
    underlying: object = metric
    if hasattr(underlying, "_underlying"):  # the workflow meter's replay-safe wrapper
        if workflow.unsafe.is_replaying():
            return
        underlying = underlying._underlying
    core = getattr(underlying, "_core_metric", None)
    core_attrs = getattr(underlying, "_core_attrs", None)
    ref = getattr(core, "_ref", None)
    if ref is None or core_attrs is None:
        return  # the no-op meter
    ref.set(value, core_attrs.with_additional_attributes(labels)._ref)


def observe(name: str, value: int, **labels: str) -> None:
    """Record one histogram value (whole units: milliseconds here)."""
    definition = CATALOG[name]
    assert definition.kind is Kind.HISTOGRAM, name
    m = meter()
    m.create_histogram(name, definition.help, definition.unit or None).record(
        max(0, int(value)), bounded(name, labels)
    )


# --- the system's metrics, by where they happen ---------------------------------------------


def rescue(
    outcome: RescueOutcome, latency_ms: int | None = None, gap_ms: int | None = None
) -> None:
    """A trade's stop rescue: attempted, or how it ended (ok: with its latency and the gap)."""
    count("dt_stop_rescues_total", outcome=outcome.value)
    if latency_ms is not None:
        observe(STOP_RESCUE_LATENCY_MS, latency_ms)
    if gap_ms is not None:
        observe(UNPROTECTED_GAP_MS, gap_ms)


def broker_call(call: str, outcome: CallOutcome) -> None:
    """One metered gateway call, on each route it sends."""
    for route in BROKER_ROUTES.get(call, (OTHER,)):
        count("dt_broker_calls_total", route=route, outcome=outcome.value)
    if outcome is CallOutcome.RATE_LIMITED:
        count("dt_broker_http_429_total")


def ratelimit_remaining(remaining: int) -> None:
    """The broker's latest X-RateLimit-Remaining."""
    gauge("dt_broker_ratelimit_remaining", remaining)


def trade_update(event: str) -> None:
    """One trade_updates event received."""
    count("dt_trade_updates_events_total", event=event)


def stream_age(seconds: float) -> None:
    """Age of the trade_updates connection (0: not connected)."""
    gauge("dt_trade_updates_stream_age_seconds", max(0.0, seconds))


def truth_poll(age_s: float, last_success_unix_s: float | None) -> None:
    """BrokerSync's poll loop: seconds since the last good poll, and when that was."""
    gauge("dt_truth_poll_age_seconds", max(0.0, age_s))
    if last_success_unix_s is not None:
        gauge("dt_truth_poll_last_success_timestamp_seconds", last_success_unix_s)


def trades_open(statuses: Iterable[str]) -> None:
    """Open trades by status (each open status set, 0 when none)."""
    counted = {s.value: 0 for s in OPEN_STATUSES}
    for status in statuses:
        key = status if status in counted else OTHER
        counted[key] = counted.get(key, 0) + 1
    for status, n in counted.items():
        gauge("dt_trades_open", n, status=status)


@dataclass(frozen=True)
class Coverage:
    """Positions covered and not by an active stop; the uncovered symbols since when."""

    covered: int
    uncovered: int
    max_uncovered_s: float
    uncovered_since: Mapping[str, float]


def position_coverage(
    positions: Iterable[BrokerPosition],
    open_orders: Iterable[BrokerOrder],
    uncovered_since: Mapping[str, float],
    now_s: float,
) -> Coverage:
    """Count the positions an active sell stop covers in full (a short has none here).

    `uncovered_since` (symbol -> first seen uncovered, in now_s's clock) carries over polls;
    a symbol covered again, or gone, leaves it.
    """
    orders = list(open_orders)
    covered = 0
    since: dict[str, float] = {}
    for position in positions:
        if position.qty == 0:
            continue
        if position.qty > 0 and covering_stop_of(orders, position.symbol, position.qty):
            covered += 1
        else:
            since[position.symbol] = uncovered_since.get(position.symbol, now_s)
    longest = max((now_s - t for t in since.values()), default=0.0)
    return Coverage(covered, len(since), max(0.0, longest), since)


def coverage(result: Coverage) -> None:
    """Set the coverage gauges from one poll."""
    gauge("dt_positions_covered", result.covered)
    gauge("dt_positions_uncovered", result.uncovered)
    gauge("dt_position_uncovered_max_seconds", result.max_uncovered_s)


def reconcile_run(ok: bool, ghosts_closed: int, adopted: int) -> None:
    """One reconcile run's outcome and what it changed."""
    count("dt_reconcile_runs_total", outcome="ok" if ok else "failed")
    count("dt_reconcile_ghosts_closed_total", ghosts_closed)
    count("dt_reconcile_positions_adopted_total", adopted)


def signals(status: str, n: int) -> None:
    """n signals created, or ended scored / error."""
    count("dt_signals_total", n, status=status)


def signals_pending(pending: int, oldest_age_s: float | None) -> None:
    """PENDING signals now, and the oldest one's age (0 when none)."""
    gauge("dt_signals_pending", pending)
    gauge("dt_signals_oldest_pending_age_seconds", oldest_age_s or 0.0)


def entry(decision: EntryDecisionKind, reason: str) -> None:
    """One entry decision of the market loop."""
    count("dt_entries_total", decision=decision.value, reason=reason)


def control_mode(mode: ControlMode) -> None:
    """Trading control's mode as a one-hot gauge."""
    for each in ControlMode:
        gauge("dt_trading_control_mode", 1 if each is mode else 0, mode=each.value)


def account(daily_pnl: Decimal | None, equity: Decimal) -> None:
    """The loss check's daily P&L (when it has one) and equity."""
    if daily_pnl is not None:
        gauge("dt_daily_pnl_dollars", daily_pnl)
    gauge("dt_equity_dollars", equity)


def option_trade(event: str | None) -> None:
    """An option trade opened, or ended: entry_failed, or closed for its exit reason."""
    count("dt_option_trades_total", event=event or OTHER)


def option_legs_mismatch() -> None:
    """One check of an option trade that held its close back (the legs held do not match)."""
    count("dt_option_legs_mismatch_total")
