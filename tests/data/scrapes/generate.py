"""Writes the recorded scrapes the alert-rule tests evaluate (run it to regenerate them).

Each file is a run of scrapes of one worker's /metrics, one a minute, in the Prometheus text
format the Rust core's exporter produces (label sets, bucket bounds and the absence of
`_total` on SDK counters copied from a real worker's endpoint on temporalio 1.35), each
preceded by a `# scrape at=... job=... instance=... up=...` header (see
tests/unit/promql_eval.py). `healthy*.prom` is a worker on a normal market-hours session;
each `<case>_firing.prom` is the same worker with one thing going wrong.

    .venv/bin/python tests/data/scrapes/generate.py
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).parent
START = 1772463600  # 2026-03-02 15:00:00 UTC (10:00 New York), a Monday session
STEP = 60
JOB = "durable-trader-worker"
INSTANCE = "10.0.0.7:9464"
SDK = {"namespace": "default", "service_name": "temporal-core-sdk", "task_queue": "durable-trader"}
HELP = {  # the core's help texts; dt_* metrics get their name, as the core does without one
    "temporal_workflow_task_schedule_to_start_latency": (
        "Histogram of workflow task schedule-to-start latencies"
    ),
    "temporal_activity_schedule_to_start_latency": (
        "Histogram of activity schedule-to-start latencies"
    ),
    "temporal_worker_task_slots_available": "Current number of available slots per task type",
    "temporal_num_pollers": "Current number of active pollers per queue type",
    "temporal_sticky_cache_size": "Current number of cached workflows",
    "temporal_workflow_completed": "Count of successfully completed workflows",
}
SCHED_BUCKETS = ("100", "500", "1000", "5000", "10000", "100000", "1000000", "+Inf")
MS_BUCKETS = ("50", "100", "500", "1000", "2500", "10000", "+Inf")


@dataclass
class Worker:
    """The state one scrape shows; scenarios change fields for the minutes they cover."""

    k: int
    up: bool = True
    uncovered: int = 0
    uncovered_max_s: float = 0.0
    rescues_failed: int | None = None  # None: the series was never created
    poll_age_s: float = 0.0
    last_success_at: float | None = None
    stream_age_s: float | None = 0.0
    broker_sync: bool = True
    http_429: int | None = 2  # two 429s earlier in the day, none since
    oldest_pending_s: float = 120.0
    reconcile_ok: int = 0
    reconcile_failed: int = 1
    mode: str = "ACTIVE"
    wf_slow: int = 0  # workflow tasks per minute that waited 1-5 s
    act_slow: int = 0
    activity_slots: int = 96
    legs_mismatch: int | None = None  # held-back option closes; None: the series was never created
    extra: list[str] = field(default_factory=list)


def healthy(k: int, at: int) -> Worker:
    """Market hours, two open trades with stops, polls every 15 s, the stream connected."""
    age = 3.0 + 5 * (k % 3)
    return Worker(
        k=k,
        poll_age_s=age,
        last_success_at=at - age,
        stream_age_s=240.0 + STEP * k,
        reconcile_ok=20 + k,
    )


def _series(name: str, labels: dict[str, str], value: float) -> str:
    # sorted names, `le` last: the order the core's exporter writes
    names = sorted(labels, key=lambda key: (key == "le", key))
    inner = ",".join(f'{key}="{labels[key]}"' for key in names)
    text = str(int(value)) if value == int(value) else repr(float(value))
    return f"{name}{{{inner}}} {text}"


def _histogram(
    name: str, labels: dict[str, str], bounds: tuple[str, ...], counts: list[int], total: float
) -> list[str]:
    lines = [f"# HELP {name} {HELP.get(name, name)}", f"# TYPE {name} histogram"]
    for le, count in zip(bounds, counts, strict=True):
        lines.append(_series(f"{name}_bucket", {**labels, "le": le}, count))
    lines.append(_series(f"{name}_sum", labels, total))
    lines.append(_series(f"{name}_count", labels, counts[-1]))
    return lines


def _typed(name: str, kind: str, rows: Sequence[tuple[dict[str, str], float]]) -> list[str]:
    lines = [f"# HELP {name} {HELP.get(name, name)}", f"# TYPE {name} {kind}"]
    return lines + [_series(name, labels, value) for labels, value in rows]


def render(w: Worker, at: int, history: list[Worker]) -> list[str]:
    """One scrape's lines."""
    header = f"# scrape at={at} job={JOB} instance={INSTANCE} up={1 if w.up else 0}"
    if not w.up:
        return [header]
    k = w.k
    wf = {**SDK, "workflow_type": "BrokerSyncWorkflow"}
    trade = {**SDK, "workflow_type": "TradeWorkflow"}
    reconcile = {**SDK, "workflow_type": "ReconcileWorkflow"}
    drain = {**SDK, "workflow_type": "ScoreDrainWorkflow"}
    control = {**SDK, "workflow_type": "TradingControlWorkflow"}
    option = {**SDK, "workflow_type": "OptionTradeWorkflow"}
    listener = {**SDK, "activity_type": "listen_trade_updates"}
    broker = {**SDK, "activity_type": "submit_order"}
    snapshot = {**SDK, "activity_type": "broker_snapshot"}
    lines = [header]
    lines += _typed(
        "dt_trades_open",
        "gauge",
        [
            ({**wf, "status": s}, 2 if s == "OPEN" else 0)
            for s in ("PENDING_ENTRY", "OPEN", "EXIT_PLANNED", "EXITING")
        ],
    )
    if w.broker_sync:
        lines += _typed("dt_positions_covered", "gauge", [(wf, 2 - min(w.uncovered, 2))])
        lines += _typed("dt_positions_uncovered", "gauge", [(wf, w.uncovered)])
        lines += _typed("dt_position_uncovered_max_seconds", "gauge", [(wf, w.uncovered_max_s)])
        lines += _typed("dt_truth_poll_age_seconds", "gauge", [(wf, w.poll_age_s)])
        if w.last_success_at is not None:
            lines += _typed(
                "dt_truth_poll_last_success_timestamp_seconds", "gauge", [(wf, w.last_success_at)]
            )
        lines += _typed("dt_daily_pnl_dollars", "gauge", [(wf, 412.5 + 3 * k)])
        lines += _typed("dt_equity_dollars", "gauge", [(wf, 100412.5 + 3 * k)])
    rescues = [
        ({**trade, "outcome": "attempted"}, 1 + (w.rescues_failed or 0)),
        ({**trade, "outcome": "ok"}, 1),
    ]
    if w.rescues_failed is not None:
        rescues.append(({**trade, "outcome": "failed"}, w.rescues_failed))
    lines += _typed("dt_stop_rescues_total", "counter", rescues)
    lines += _histogram("dt_stop_rescue_latency_ms", trade, MS_BUCKETS, [0, 0, 1, 1, 1, 1, 1], 412)
    lines += _histogram("dt_unprotected_gap_ms", trade, MS_BUCKETS, [0, 1, 1, 1, 1, 1, 1], 88)
    lines += _typed(
        "dt_broker_calls_total",
        "counter",
        [
            ({**snapshot, "route": "GET /v2/positions", "outcome": "ok"}, 600 + 4 * k),
            ({**snapshot, "route": "GET /v2/orders", "outcome": "ok"}, 600 + 4 * k),
            ({**broker, "route": "POST /v2/orders", "outcome": "ok"}, 6),
            ({**snapshot, "route": "GET /v2/orders", "outcome": "rate_limited"}, w.http_429 or 0),
        ],
    )
    lines += _typed("dt_broker_ratelimit_remaining", "gauge", [(snapshot, 188 - (k % 4))])
    if w.http_429 is not None:
        lines += _typed("dt_broker_http_429_total", "counter", [(snapshot, w.http_429)])
    if w.broker_sync and w.stream_age_s is not None:
        lines += _typed(
            "dt_trade_updates_events_total",
            "counter",
            [
                ({**listener, "event": "new"}, 4),
                ({**listener, "event": "fill"}, 4),
                ({**listener, "event": "canceled"}, 1),
            ],
        )
        lines += _typed(
            "dt_trade_updates_stream_age_seconds", "gauge", [(listener, w.stream_age_s)]
        )
    lines += _typed(
        "dt_reconcile_runs_total",
        "counter",
        [
            ({**reconcile, "outcome": "ok"}, w.reconcile_ok),
            ({**reconcile, "outcome": "failed"}, w.reconcile_failed),
        ],
    )
    lines += _typed("dt_reconcile_ghosts_closed_total", "counter", [(reconcile, 0)])
    lines += _typed("dt_reconcile_positions_adopted_total", "counter", [(reconcile, 1)])
    lines += _typed(
        "dt_signals_total",
        "counter",
        [
            ({**drain, "status": "created"}, 40),
            ({**drain, "status": "scored"}, 37),
            ({**drain, "status": "error"}, 0),
        ],
    )
    lines += _typed("dt_signals_pending", "gauge", [(drain, 3)])
    lines += _typed("dt_signals_oldest_pending_age_seconds", "gauge", [(drain, w.oldest_pending_s)])
    lines += _typed(
        "dt_entries_total",
        "counter",
        [
            ({**drain, "decision": "entered", "reason": "ok"}, 2),
            ({**drain, "decision": "skipped", "reason": "max_positions"}, 5),
        ],
    )
    lines += _typed(
        "dt_trading_control_mode",
        "gauge",
        [
            ({**control, "mode": m}, 1 if m == w.mode else 0)
            for m in ("ACTIVE", "REDUCING", "HALTED")
        ],
    )
    lines += _typed(
        "dt_option_trades_total",
        "counter",
        [({**option, "event": "opened"}, 2), ({**option, "event": "take_profit"}, 1)],
    )
    if w.legs_mismatch is not None:
        lines += _typed("dt_option_legs_mismatch_total", "counter", [(option, w.legs_mismatch)])
    # SDK metrics, as the core names them: cumulative counts over this process's life.
    wf_slow = sum(h.wf_slow for h in history)
    act_slow = sum(h.act_slow for h in history)
    wf_fast, act_fast = 900 + 30 * k, 400 + 12 * k
    lines += _histogram(
        "temporal_workflow_task_schedule_to_start_latency",
        SDK,
        SCHED_BUCKETS,
        [wf_fast, wf_fast, wf_fast] + [wf_fast + wf_slow] * 5,
        9 * wf_fast + 2400 * wf_slow,
    )
    lines += _histogram(
        "temporal_activity_schedule_to_start_latency",
        SDK,
        SCHED_BUCKETS,
        [act_fast, act_fast, act_fast] + [act_fast + act_slow] * 5,
        6 * act_fast + 1800 * act_slow,
    )
    lines += _typed(
        "temporal_worker_task_slots_available",
        "gauge",
        [
            ({**SDK, "worker_type": "ActivityWorker"}, w.activity_slots),
            ({**SDK, "worker_type": "LocalActivityWorker"}, 100),
            ({**SDK, "worker_type": "WorkflowWorker"}, 99),
        ],
    )
    lines += _typed(
        "temporal_num_pollers",
        "gauge",
        [
            ({**SDK, "poller_type": "activity_task"}, 5),
            ({**SDK, "poller_type": "sticky_workflow_task"}, 4),
            ({**SDK, "poller_type": "workflow_task"}, 1),
        ],
    )
    lines += _typed("temporal_sticky_cache_size", "gauge", [(SDK, 7)])
    lines += _typed(
        "temporal_workflow_completed",
        "counter",
        [
            ({**SDK, "workflow_type": "ReconcileWorkflow"}, 20 + k),
            ({**SDK, "workflow_type": "ScoreDrainWorkflow"}, 8 + k // 5),
        ],
    )
    return lines + w.extra


Scenario = Callable[[Worker, int, int], None]  # (state, minute, minutes in the file)


def write(name: str, minutes: int, scenario: Scenario | None = None, job: str = JOB) -> None:
    """Write `minutes` scrapes, the scenario applied to each."""
    history: list[Worker] = []
    lines: list[str] = []
    for k in range(minutes):
        at = START + STEP * k
        state = healthy(k, at)
        if scenario is not None:
            scenario(state, k, minutes)
        history.append(state)
        if job == JOB:
            lines += render(state, at, history)
        else:
            lines += [
                f"# scrape at={at} job={job} instance=10.0.0.9:9100 up=1",
                f"node_load1 {0.4 + k / 100:g}",
            ]
        lines.append("")
    (HERE / f"{name}.prom").write_text("\n".join(lines))


def last(n: int, change: Callable[[Worker, int], None]) -> Scenario:
    """Apply `change` (state, how many minutes into the trouble) to the last n scrapes."""

    def apply(state: Worker, k: int, minutes: int) -> None:
        into = k - (minutes - n)
        if into >= 0:
            change(state, into)

    return apply


def main() -> None:
    """Write every file."""

    def healthy_day(state: Worker, k: int, minutes: int) -> None:
        state.legs_mismatch = 3  # an option close held back this morning, its legs since fixed
        if k == 7:  # a fill seen one poll before its stop is acknowledged: not an alert
            state.uncovered, state.uncovered_max_s = 1, 4.0

    write("healthy", 17, healthy_day)

    def uncovered(state: Worker, into: int) -> None:
        # bare for 45 s, seen by the polls in between; this scrape is the first to show it
        state.uncovered, state.uncovered_max_s = 1, 45.0

    write("position_uncovered_firing", 6, last(1, uncovered))

    def uncovered_no_duration(state: Worker, into: int) -> None:
        state.uncovered = 1  # the duration gauge misreports 0: the backstop arm catches it

    write("position_uncovered_backstop_firing", 6, last(2, uncovered_no_duration))

    def rescue_fails(state: Worker, into: int) -> None:
        state.rescues_failed = 1 if into < 3 else 2

    write("stop_rescue_failed_firing", 6, last(4, rescue_fails))

    def first_rescue_failure(state: Worker, into: int) -> None:
        state.rescues_failed = 1

    write("stop_rescue_failed_first_firing", 6, last(1, first_rescue_failure))

    def legs_mismatch(state: Worker, k: int, minutes: int) -> None:
        # the morning's three held-back checks, then a new mismatch counting once a minute
        state.legs_mismatch = 3 + max(0, k - (minutes - 4))

    write("option_legs_mismatch_firing", 12, legs_mismatch)

    def first_legs_mismatch(state: Worker, into: int) -> None:
        state.legs_mismatch = 1

    write("option_legs_mismatch_first_firing", 6, last(1, first_legs_mismatch))

    def legs_mismatch_checks_failing(state: Worker, k: int, minutes: int) -> None:
        # held back from minute 2, then six minutes of checks that fail before the legs are
        # read (quotes not answered): nothing counts, and the close is still held back
        if k >= 2:
            state.legs_mismatch = min(k - 1, 6)

    write("option_legs_mismatch_stalled_firing", 14, legs_mismatch_checks_failing)

    def poll_failing(state: Worker, into: int) -> None:
        state.poll_age_s = 30.0 + STEP * into
        state.last_success_at = START + STEP * (state.k - into) - 30

    write("truth_poll_stale_firing", 7, last(4, poll_failing))

    def poll_loop_stuck(state: Worker, into: int) -> None:
        state.poll_age_s = 8.0  # frozen: the loop that sets it stopped
        state.last_success_at = START + STEP * (state.k - into) - 8

    write("truth_poll_stalled_firing", 12, last(10, poll_loop_stuck))

    def stream_frozen(state: Worker, into: int) -> None:
        state.stream_age_s = 900.0  # the listener is gone; the last value stays

    write("stream_frozen_firing", 12, last(11, stream_frozen))

    def stream_down(state: Worker, into: int) -> None:
        state.stream_age_s = 0.0

    write("stream_disconnected_firing", 12, last(11, stream_down))

    def stream_cycle_stuck(state: Worker, into: int) -> None:
        state.stream_age_s = 1900.0 + STEP * into  # live, but never recycled at 30 min

    write("stream_cycle_stuck_firing", 12, last(11, stream_cycle_stuck))

    def no_broker_sync(state: Worker, into: int) -> None:
        state.broker_sync = False

    write("broker_sync_not_reporting_firing", 12, last(12, no_broker_sync))

    def more_429(state: Worker, into: int) -> None:
        state.http_429 = 3

    write("rate_limited_firing", 6, last(1, more_429))

    def first_429(state: Worker, into: int) -> None:
        state.http_429 = 1

    def no_429_yet(state: Worker, k: int, minutes: int) -> None:
        state.http_429 = None
        last(1, first_429)(state, k, minutes)

    write("rate_limited_first_firing", 6, no_429_yet)

    def signals_old(state: Worker, into: int) -> None:
        state.oldest_pending_s = 21000.0 + STEP * into

    write("signals_pending_firing", 22, last(22, signals_old))

    def reconcile_failing(state: Worker, into: int) -> None:
        state.reconcile_ok = 20
        state.reconcile_failed = 1 + into

    write("reconcile_failing_firing", 17, last(17, reconcile_failing))

    def halted(state: Worker, into: int) -> None:
        state.mode = "HALTED"

    write("halted_firing", 6, last(1, halted))

    def wf_backlog(state: Worker, into: int) -> None:
        state.wf_slow = 10  # a third of the minute's workflow tasks waited 1-5 s

    write("workflow_task_backlog_firing", 12, last(11, wf_backlog))

    def act_backlog(state: Worker, into: int) -> None:
        state.act_slow = 6

    write("activity_task_backlog_firing", 12, last(11, act_backlog))

    def slots_gone(state: Worker, into: int) -> None:
        state.activity_slots = 0

    write("slots_exhausted_firing", 8, last(6, slots_gone))

    def endpoint_down(state: Worker, into: int) -> None:
        state.up = False

    write("metrics_endpoint_down_firing", 6, last(3, endpoint_down))
    write("metrics_endpoint_absent_firing", 3, job="node")


if __name__ == "__main__":
    main()
