"""ops/metrics.py and ops/telemetry.py: the catalog's conventions, bounded labels, coverage,
and what each helper records (read back through the SDK's metric buffer)."""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from temporalio.common import MetricMeter
from temporalio.runtime import (
    BUFFERED_METRIC_KIND_COUNTER,
    BUFFERED_METRIC_KIND_GAUGE,
    BUFFERED_METRIC_KIND_HISTOGRAM,
    MetricBuffer,
    Runtime,
    TelemetryConfig,
)

from devstack.config import DevConfig, WorkerDevConfig
from devstack.stack import DevStack
from ops import metrics
from ops.telemetry import metrics_url, replica_address, runtime_for
from settings import ConfigError, Settings
from trading.broker_models import (
    BrokerOrder,
    BrokerPosition,
    OrderClass,
    OrderSide,
    OrderStatus,
    OrderType,
    TimeInForce,
)
from trading.control import ControlMode
from trading.options.exits import CondorExitRule
from trading.options.legs import CLOSED_OUTSIDE
from trading.options.trade_models import ENTRY_FAILED, FORCED_EXIT

# The names the shared design fixes (alerts, prelive and the report read them).
DESIGN_NAMES = {
    "dt_trades_open",
    "dt_positions_covered",
    "dt_positions_uncovered",
    "dt_position_uncovered_max_seconds",
    "dt_stop_rescues_total",
    "dt_stop_rescue_latency_ms",
    "dt_unprotected_gap_ms",
    "dt_broker_calls_total",
    "dt_broker_ratelimit_remaining",
    "dt_trade_updates_events_total",
    "dt_trade_updates_stream_age_seconds",
    "dt_truth_poll_age_seconds",
    "dt_truth_poll_last_success_timestamp_seconds",
    "dt_reconcile_runs_total",
    "dt_reconcile_ghosts_closed_total",
    "dt_reconcile_positions_adopted_total",
    "dt_signals_total",
    "dt_signals_pending",
    "dt_signals_oldest_pending_age_seconds",
    "dt_entries_total",
    "dt_trading_control_mode",
    "dt_daily_pnl_dollars",
    "dt_equity_dollars",
    "dt_broker_http_429_total",
    "dt_option_trades_total",
    "dt_option_legs_mismatch_total",
}
KIND_CODES = {
    BUFFERED_METRIC_KIND_COUNTER: metrics.Kind.COUNTER,
    BUFFERED_METRIC_KIND_GAUGE: metrics.Kind.GAUGE,
    BUFFERED_METRIC_KIND_HISTOGRAM: metrics.Kind.HISTOGRAM,
}


@pytest.fixture
def recorded() -> Iterator[MetricBuffer]:
    """The process meter pointed at a metric buffer for the test (then back to no-op)."""
    buffer = MetricBuffer(10_000)
    runtime = Runtime(telemetry=TelemetryConfig(metrics=buffer))
    metrics.use_process_meter(runtime.metric_meter)
    try:
        yield buffer
    finally:
        metrics.use_process_meter(MetricMeter.noop)


def _updates(buffer: MetricBuffer) -> list[tuple[str, Any, dict[str, Any], Any]]:
    """(name, kind, labels without service_name, value) of each update since the last read."""
    return [
        (
            u.metric.name,
            KIND_CODES[u.metric.kind],
            {k: v for k, v in u.attributes.items() if k != "service_name"},
            u.value,
        )
        for u in buffer.retrieve_updates()
    ]


# --- catalog --------------------------------------------------------------------------------


def test_the_catalog_holds_exactly_the_designed_names() -> None:
    assert set(metrics.CATALOG) == DESIGN_NAMES


@pytest.mark.parametrize("definition", list(metrics.CATALOG.values()), ids=lambda d: d.name)
def test_each_metric_follows_prometheus_conventions(definition: metrics.MetricDef) -> None:
    assert definition.name.startswith("dt_") and definition.help
    if definition.kind is metrics.Kind.COUNTER:
        assert definition.name.endswith("_total")
    else:
        assert not definition.name.endswith("_total")
    if definition.unit:
        suffix = {"seconds": "_seconds", "ms": "_ms", "dollars": "_dollars"}[definition.unit]
        assert definition.name.endswith(suffix)
    for label, values in definition.labels.items():
        assert label not in metrics.SDK_LABELS
        assert metrics.OTHER in values and len(values) <= 64
        assert all(v and not v.startswith("trade-") for v in values), values


def test_histograms_have_bucket_overrides_in_milliseconds() -> None:
    histograms = {d.name for d in metrics.CATALOG.values() if d.kind is metrics.Kind.HISTOGRAM}
    assert histograms == set(metrics.HISTOGRAM_BUCKETS)
    for buckets in metrics.HISTOGRAM_BUCKETS.values():
        assert buckets == sorted(buckets) and buckets[0] > 0


def test_a_value_outside_its_set_is_recorded_as_other() -> None:
    assert metrics.bounded("dt_entries_total", {"decision": "skipped", "reason": "heat_cap"}) == {
        "decision": "skipped",
        "reason": "heat_cap",
    }
    odd = metrics.bounded("dt_entries_total", {"decision": "maybe", "reason": "trade-abc123"})
    assert odd == {"decision": "other", "reason": "other"}
    assert metrics.bounded("dt_trade_updates_events_total", {"event": "AAPL"}) == {"event": "other"}


def test_a_label_the_metric_does_not_declare_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="takes labels"):
        metrics.bounded("dt_stop_rescues_total", {"outcome": "ok", "trade_id": "t-1"})
    with pytest.raises(ValueError, match="takes labels"):
        metrics.bounded("dt_broker_calls_total", {"route": "GET /v2/clock"})
    with pytest.raises(KeyError):
        metrics.bounded("dt_unknown_total", {})


# --- recording --------------------------------------------------------------------------------


def test_outside_workflows_and_activities_the_process_meter_records(
    recorded: MetricBuffer,
) -> None:
    metrics.rescue(metrics.RescueOutcome.OK, latency_ms=420, gap_ms=900)
    metrics.rescue(metrics.RescueOutcome.FAILED)
    updates = _updates(recorded)
    assert ("dt_stop_rescues_total", metrics.Kind.COUNTER, {"outcome": "ok"}, 1) in updates
    assert ("dt_stop_rescues_total", metrics.Kind.COUNTER, {"outcome": "failed"}, 1) in updates
    assert ("dt_stop_rescue_latency_ms", metrics.Kind.HISTOGRAM, {}, 420) in updates
    assert ("dt_unprotected_gap_ms", metrics.Kind.HISTOGRAM, {}, 900) in updates


def test_without_a_runtime_nothing_is_recorded_and_nothing_fails() -> None:
    metrics.use_process_meter(MetricMeter.noop)
    metrics.broker_call("submit_order", metrics.CallOutcome.OK)
    metrics.control_mode(ControlMode.HALTED)
    assert metrics.meter() is MetricMeter.noop


def test_a_snapshot_counts_on_each_of_its_routes_and_a_429_twice(recorded: MetricBuffer) -> None:
    metrics.broker_call("broker_truth", metrics.CallOutcome.OK)
    metrics.broker_call("get_order", metrics.CallOutcome.RATE_LIMITED)
    metrics.broker_call("a_new_call", metrics.CallOutcome.ERROR)
    calls = [(a, v) for n, _, a, v in _updates(recorded) if n == "dt_broker_calls_total"]
    assert calls == [
        ({"route": "GET /v2/account", "outcome": "ok"}, 1),
        ({"route": "GET /v2/positions", "outcome": "ok"}, 1),
        ({"route": "GET /v2/orders", "outcome": "ok"}, 1),
        ({"route": "GET /v2/orders/{id}", "outcome": "rate_limited"}, 1),
        ({"route": "other", "outcome": "error"}, 1),
    ]
    metrics.broker_call("get_clock", metrics.CallOutcome.RATE_LIMITED)
    assert ("dt_broker_http_429_total", metrics.Kind.COUNTER, {}, 1) in _updates(recorded)


def test_gauges_set_every_value_of_their_enum(recorded: MetricBuffer) -> None:
    metrics.trades_open(["OPEN", "OPEN", "EXITING"])
    metrics.control_mode(ControlMode.REDUCING)
    metrics.account(None, Decimal("100250.50"))
    metrics.account(Decimal("-150.25"), Decimal("100100.25"))
    gauges = {
        (n, tuple(sorted(a.items()))): v
        for n, k, a, v in _updates(recorded)
        if k is metrics.Kind.GAUGE
    }
    assert gauges[("dt_trades_open", (("status", "OPEN"),))] == 2
    assert gauges[("dt_trades_open", (("status", "EXITING"),))] == 1
    assert gauges[("dt_trades_open", (("status", "PENDING_ENTRY"),))] == 0
    assert gauges[("dt_trades_open", (("status", "EXIT_PLANNED"),))] == 0
    modes = {a[0][1]: v for (n, a), v in gauges.items() if n == "dt_trading_control_mode"}
    assert modes == {"ACTIVE": 0, "REDUCING": 1, "HALTED": 0}
    assert gauges[("dt_daily_pnl_dollars", ())] == pytest.approx(-150.25)
    assert gauges[("dt_equity_dollars", ())] == pytest.approx(100100.25)


def test_a_losing_day_is_a_negative_pnl_on_the_scrape() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    runtime = runtime_for(Settings(metrics_address=f"127.0.0.1:{port}"), serve_metrics=True)
    assert runtime is not None
    try:
        metrics.account(Decimal("-150.25"), Decimal("99849.75"))
        metrics.truth_poll(-3.0, None)  # clock skew: an age is never below zero
        with urllib.request.urlopen(metrics_url(f"127.0.0.1:{port}"), timeout=5) as answer:
            lines = answer.read().decode().splitlines()
    finally:
        metrics.use_process_meter(MetricMeter.noop)
    assert 'dt_daily_pnl_dollars{service_name="temporal-core-sdk"} -150.25' in lines
    assert 'dt_equity_dollars{service_name="temporal-core-sdk"} 99849.75' in lines
    assert 'dt_truth_poll_age_seconds{service_name="temporal-core-sdk"} 0' in lines


def test_every_way_an_option_trade_ends_is_its_own_event() -> None:
    """Each exit reason OptionTradeWorkflow sets is a declared event, never folded into other."""
    reasons = {r.value for r in CondorExitRule} | {FORCED_EXIT, CLOSED_OUTSIDE, ENTRY_FAILED}
    assert reasons == {
        "take_profit",
        "stop_loss",
        "dte_threshold",
        "before_expiry",
        "forced",
        "closed_outside",
        "entry_failed",
    }
    for event in reasons | {metrics.OPTION_OPENED}:
        assert metrics.bounded("dt_option_trades_total", {"event": event}) == {"event": event}
    events = metrics.CATALOG["dt_option_trades_total"].labels["event"]
    assert events == reasons | {"opened", metrics.OTHER}


@pytest.mark.parametrize("odd", ["hold", "ic-3f9a2b7c01", "SPY240308C00530000", ""])
def test_an_option_event_outside_the_set_is_other(odd: str) -> None:
    assert metrics.bounded("dt_option_trades_total", {"event": odd}) == {"event": "other"}


def test_option_trade_transitions_and_held_back_closes_are_counted(
    recorded: MetricBuffer,
) -> None:
    metrics.option_trade(metrics.OPTION_OPENED)
    metrics.option_trade("take_profit")
    metrics.option_trade(None)  # a close without a reason: counted, as other
    metrics.option_trade("hold")
    metrics.option_legs_mismatch()
    metrics.option_legs_mismatch()
    updates = _updates(recorded)
    events = [(a["event"], v) for n, _, a, v in updates if n == "dt_option_trades_total"]
    assert events == [("opened", 1), ("take_profit", 1), ("other", 1), ("other", 1)]
    held_back = [(k, a, v) for n, k, a, v in updates if n == "dt_option_legs_mismatch_total"]
    assert held_back == [(metrics.Kind.COUNTER, {}, 1)] * 2
    with pytest.raises(ValueError, match="takes labels"):
        metrics.count("dt_option_legs_mismatch_total", trade_id="ic-1")


def test_counters_skip_zero(recorded: MetricBuffer) -> None:
    metrics.reconcile_run(True, 0, 0)
    metrics.signals("scored", 0)
    names = [n for n, *_ in _updates(recorded)]
    assert names == ["dt_reconcile_runs_total"]


# --- coverage ---------------------------------------------------------------------------------

NOW = datetime(2024, 3, 5, 15, 30, tzinfo=UTC)


def _position(symbol: str, qty: int) -> BrokerPosition:
    return BrokerPosition(
        symbol=symbol,
        qty=Decimal(qty),
        avg_entry_price=Decimal(100),
        current_price=Decimal(100),
        market_value=Decimal(100 * qty),
    )


def _stop(symbol: str, qty: int, status: OrderStatus = OrderStatus.NEW) -> BrokerOrder:
    return BrokerOrder(
        id=f"o-{symbol}-{qty}",
        client_order_id=f"t.{symbol}.st.0",
        symbol=symbol,
        qty=Decimal(qty),
        filled_qty=Decimal(0),
        side=OrderSide.SELL,
        type=OrderType.STOP,
        order_class=OrderClass.SIMPLE,
        time_in_force=TimeInForce.GTC,
        status=status,
        stop_price=Decimal(95),
        created_at=NOW,
        updated_at=NOW,
    )


def test_coverage_counts_a_full_active_stop_only_and_remembers_since_when() -> None:
    positions = [_position("AAPL", 10), _position("MSFT", 5), _position("NVDA", 3)]
    orders = [_stop("AAPL", 10), _stop("MSFT", 4), _stop("NVDA", 3, OrderStatus.CANCELED)]
    first = metrics.position_coverage(positions, orders, {}, now_s=1000.0)
    assert (first.covered, first.uncovered, first.max_uncovered_s) == (1, 2, 0.0)
    assert set(first.uncovered_since) == {"MSFT", "NVDA"}
    later = metrics.position_coverage(
        positions, [*orders, _stop("NVDA", 3)], first.uncovered_since, now_s=1012.5
    )
    assert (later.covered, later.uncovered, later.max_uncovered_s) == (2, 1, 12.5)
    assert set(later.uncovered_since) == {"MSFT"}  # NVDA covered again: forgotten


def test_a_flat_account_is_all_zero_and_a_short_is_uncovered() -> None:
    assert metrics.position_coverage([], [], {"AAPL": 1.0}, 5.0) == metrics.Coverage(0, 0, 0.0, {})
    short = metrics.position_coverage([_position("AAPL", -5)], [], {}, 5.0)
    assert (short.covered, short.uncovered) == (0, 1)


# --- telemetry --------------------------------------------------------------------------------


def test_replicas_take_the_base_port_plus_their_index() -> None:
    assert replica_address("127.0.0.1:9464", 0) == "127.0.0.1:9464"
    assert replica_address("0.0.0.0:9464", 2) == "0.0.0.0:9466"
    assert metrics_url("0.0.0.0:9466") == "http://127.0.0.1:9466/metrics"
    with pytest.raises(ConfigError):
        replica_address("localhost", 1)
    with pytest.raises(ConfigError):
        replica_address("127.0.0.1:65535", 1)


def test_a_cli_client_or_an_empty_address_gets_the_default_runtime() -> None:
    assert runtime_for(Settings(metrics_address="127.0.0.1:9"), serve_metrics=False) is None
    assert runtime_for(Settings(metrics_address=""), serve_metrics=True) is None


def test_a_worker_runtime_serves_prometheus_once_per_address() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = Settings(metrics_address=f"127.0.0.1:{port}")
    try:
        runtime = runtime_for(settings, serve_metrics=True)
        assert runtime is not None
        assert runtime_for(settings, serve_metrics=True) is runtime
        metrics.signals("created", 3)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            text = answer.read().decode()
        assert "# TYPE dt_signals_total counter" in text
        assert 'dt_signals_total{service_name="temporal-core-sdk",status="created"} 3' in text
    finally:
        metrics.use_process_meter(MetricMeter.noop)


def test_a_taken_port_leaves_the_worker_without_metrics_not_down(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        runtime = runtime_for(Settings(metrics_address=f"127.0.0.1:{port}"), serve_metrics=True)
    assert runtime is None
    assert "cannot serve metrics" in caplog.text and str(port) in caplog.text


@pytest.mark.parametrize(
    ("replicas", "metrics_address", "health_address", "expected"),
    [
        (1, "127.0.0.1:9464", "127.0.0.1:9465", ["127.0.0.1:9464"]),
        (2, "127.0.0.1:9464", "127.0.0.1:9465", ["127.0.0.1:9464", "127.0.0.1:9467"]),
        (2, "0.0.0.0:9000", "127.0.0.1:9465", ["0.0.0.0:9000", "0.0.0.0:9001"]),
        (2, "127.0.0.1:9464", "", ["127.0.0.1:9464", "127.0.0.1:9465"]),
        (2, "", "127.0.0.1:9465", ["", ""]),
    ],
)
def test_dev_up_gives_each_replica_its_own_metrics_port_clear_of_the_health_ports(
    replicas: int, metrics_address: str, health_address: str, expected: list[str]
) -> None:
    stack = DevStack(
        Settings(metrics_address=metrics_address, health_address=health_address),
        DevConfig(worker=WorkerDevConfig(replicas=replicas)),
        lambda _: None,
    )
    assert [stack._metrics_address(i) for i in range(replicas)] == expected
