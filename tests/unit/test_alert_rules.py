"""ops/alerts.yml: every rule is well formed, parses as PromQL, reads only known metrics, fires
on its recorded scrape and stays silent on a healthy worker (evaluated by promql_eval)."""

from __future__ import annotations

import contextlib
import math
import re
from pathlib import Path
from typing import Any

import promql_parser as pp
import pytest
import yaml

from settings import ROOT, Settings
from tests.unit.promql_eval import (
    BadScrape,
    Evaluator,
    Labels,
    Unsupported,
    parse_scrapes,
)
from trading.broker_sync_models import BrokerSyncInput
from trading.ledger_records import DEFAULT_SIGNAL_MAX_AGE_SECONDS
from trading.options.trade_models import OptionTradeSpec

RULES_FILE = ROOT / "ops" / "alerts.yml"
SCRAPES = ROOT / "tests" / "data" / "scrapes"

# The issue-13 design's metric list: the metrics helper emits exactly these.
DESIGN_METRICS = {
    "dt_trades_open",
    "dt_positions_covered",
    "dt_positions_uncovered",
    "dt_position_uncovered_max_seconds",
    "dt_stop_rescues_total",
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
DESIGN_HISTOGRAMS = {"dt_stop_rescue_latency_ms", "dt_unprotected_gap_ms"}
# SDK metrics as the Rust core names them (temporalio's PrometheusConfig defaults).
SDK_METRICS = {
    "temporal_workflow_task_schedule_to_start_latency_bucket",
    "temporal_activity_schedule_to_start_latency_bucket",
    "temporal_worker_task_slots_available",
}

# Each recorded trouble and the alerts it must fire - exactly these, among the rules whose
# `for:` window the file covers.
FIRES = {
    "position_uncovered_firing": {"DtPositionUncovered"},
    "position_uncovered_backstop_firing": {"DtPositionUncovered"},
    "stop_rescue_failed_firing": {"DtStopRescueFailed"},
    "stop_rescue_failed_first_firing": {"DtStopRescueFailed"},
    "option_legs_mismatch_firing": {"DtOptionLegsMismatch"},
    "option_legs_mismatch_first_firing": {"DtOptionLegsMismatch"},
    "option_legs_mismatch_stalled_firing": {"DtOptionLegsMismatch"},
    "truth_poll_stale_firing": {"DtTruthPollStale"},
    "truth_poll_stalled_firing": {"DtTruthPollStale"},
    "stream_frozen_firing": {"DtTradeUpdatesStreamStale"},
    "stream_disconnected_firing": {"DtTradeUpdatesStreamStale"},
    "stream_cycle_stuck_firing": {"DtTradeUpdatesStreamStale"},
    "broker_sync_not_reporting_firing": {"DtBrokerSyncNotReporting"},
    "rate_limited_firing": {"DtBrokerRateLimited"},
    "rate_limited_first_firing": {"DtBrokerRateLimited"},
    "signals_pending_firing": {"DtSignalsPendingPastMaxAge"},
    "reconcile_failing_firing": {"DtReconcileFailing"},
    "halted_firing": {"DtTradingHalted"},
    "workflow_task_backlog_firing": {"DtWorkflowTaskBacklog"},
    "activity_task_backlog_firing": {"DtActivityTaskBacklog"},
    "slots_exhausted_firing": {"DtWorkerSlotsExhausted"},
    "metrics_endpoint_down_firing": {"DtMetricsEndpointDown"},
    "metrics_endpoint_absent_firing": {"DtMetricsEndpointDown"},
}


def _rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES_FILE.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


RULES = _rules()
BY_NAME = {rule["alert"]: rule for rule in RULES}


def _for_seconds(rule: dict[str, Any]) -> float:
    text = str(rule["for"])
    return 0.0 if re.fullmatch(r"0+[smh]?", text) else pp.parse_duration(text).total_seconds()


def _evaluator(name: str) -> Evaluator:
    return Evaluator(parse_scrapes((SCRAPES / f"{name}.prom").read_text()))


def _selectors(expr: pp.Expr) -> list[pp.VectorSelector]:
    found: list[pp.VectorSelector] = []

    def visit(node: pp.Expr) -> None:
        if isinstance(node, pp.VectorSelector):
            found.append(node)
        elif isinstance(node, pp.MatrixSelector):
            found.append(node.vector_selector)

    pp.walk(expr, visit)
    return found


def _metric_name(selector: pp.VectorSelector) -> str | None:
    if selector.name is not None:
        return selector.name
    for matcher in selector.matchers.matchers:
        if matcher.name == "__name__" and matcher.op == pp.MatchOp.Equal:
            return matcher.value
    return None


# --- the file -------------------------------------------------------------------------------


def test_every_rule_is_complete() -> None:
    assert len(RULES) == len(BY_NAME), "alert names repeat"
    for rule in RULES:
        name = rule.get("alert")
        assert name and re.fullmatch(r"Dt[A-Za-z]+", name), rule
        assert rule.get("expr"), name
        assert "for" in rule and re.fullmatch(r"\d+[smh]", str(rule["for"])), name
        assert rule.get("labels", {}).get("severity") in {"page", "ticket"}, name
        annotations = rule.get("annotations", {})
        for key in ("summary", "description", "runbook"):
            assert annotations.get(key), f"{name}: annotations.{key}"


def test_the_issue_s_troubles_each_have_a_rule() -> None:
    """The issue's list: uncovered, rescue failed, stale poll / stream, 429, old PENDING,
    reconcile failing, HALTED, task backlog - plus the endpoint itself."""
    assert {
        "DtPositionUncovered",
        "DtStopRescueFailed",
        "DtTruthPollStale",
        "DtTradeUpdatesStreamStale",
        "DtBrokerRateLimited",
        "DtSignalsPendingPastMaxAge",
        "DtReconcileFailing",
        "DtTradingHalted",
        "DtWorkflowTaskBacklog",
        "DtActivityTaskBacklog",
        "DtMetricsEndpointDown",
    } <= set(BY_NAME)
    for name in (
        "DtPositionUncovered",
        "DtStopRescueFailed",
        "DtTradingHalted",
        "DtOptionLegsMismatch",
    ):
        assert BY_NAME[name]["labels"]["severity"] == "page"


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_expression_parses_and_reads_known_metrics(name: str) -> None:
    expr = pp.parse(BY_NAME[name]["expr"])
    names = [_metric_name(selector) for selector in _selectors(expr)]
    assert names and None not in names, f"{name}: every selector names its metric"
    allowed = (
        DESIGN_METRICS
        | {f"{h}_{part}" for h in DESIGN_HISTOGRAMS for part in ("bucket", "sum", "count")}
        | SDK_METRICS
        | {"up"}
    )
    unknown = {n for n in names if n not in allowed}
    assert not unknown, f"{name} reads metrics outside the design list: {unknown}"


def test_thresholds_follow_the_code() -> None:
    """The numbers in the rules are the code's: the drain's max age, /readyz's stale poll,
    the closed-market poll interval and the listener's cycle."""
    signals = BY_NAME["DtSignalsPendingPastMaxAge"]["expr"]
    assert re.search(rf">\s*{DEFAULT_SIGNAL_MAX_AGE_SECONDS}\b", signals)
    poll = BY_NAME["DtTruthPollStale"]["expr"]
    stale_s = Settings.model_fields["truth_poll_max_age_s"].default
    closed_s = BrokerSyncInput().closed_poll_interval.total_seconds()
    assert re.search(rf"dt_truth_poll_age_seconds\s*>\s*{stale_s:g}\b", poll)
    assert re.search(rf"\)\s*>\s*{closed_s + stale_s:g}\b", poll)
    stream = BY_NAME["DtTradeUpdatesStreamStale"]["expr"]
    cycle_s = BrokerSyncInput().listen_for.total_seconds() + 300
    assert re.search(rf"dt_trade_updates_stream_age_seconds\s*>\s*{cycle_s:g}\b", stream)


def test_the_legs_mismatch_window_spans_several_option_checks() -> None:
    """A held-back option trade counts once per check (check_interval): the rule's window
    holds several, so a few failed checks do not resolve the page while the legs are wrong."""
    expr = BY_NAME["DtOptionLegsMismatch"]["expr"]
    windows = set(re.findall(r"\[(\w+)\]|offset (\w+)", expr))
    durations = {pp.parse_duration(w).total_seconds() for pair in windows for w in pair if w}
    check_s = OptionTradeSpec.model_fields["check_interval"].default.total_seconds()
    assert len(durations) == 1 and min(durations) >= 5 * check_s, (durations, check_s)


def test_sdk_exporter_keeps_the_units_the_backlog_rules_assume() -> None:
    """The backlog thresholds are milliseconds on the core's bucket names: the runtime must
    not switch to seconds or add suffixes (that would rename or rescale the series)."""
    telemetry = (ROOT / "ops" / "telemetry.py").read_text()
    for flag in ("durations_as_seconds", "unit_suffix", "counters_total_suffix"):
        assert not re.search(rf"{flag}\s*=\s*True", telemetry), flag


# --- evaluation against recorded scrapes ---------------------------------------------------


def _verdicts(file: str) -> tuple[set[str], set[str]]:
    """(alerts firing, alerts whose `for:` window the file does not cover)."""
    evaluator = _evaluator(file)
    firing, uncovered = set(), set()
    for rule in RULES:
        try:
            if evaluator.firing(rule["expr"], _for_seconds(rule)):
                firing.add(rule["alert"])
        except BadScrape:
            uncovered.add(rule["alert"])
    return firing, uncovered


def test_every_rule_has_a_firing_scrape() -> None:
    covered = set().union(*FIRES.values())
    assert covered == set(BY_NAME)
    on_disk = {p.stem for p in SCRAPES.glob("*_firing.prom")}
    assert on_disk == set(FIRES)


@pytest.mark.parametrize("file", sorted(FIRES))
def test_rule_fires_on_its_recorded_scrape(file: str) -> None:
    firing, uncovered = _verdicts(file)
    assert FIRES[file] <= firing, f"{file}: expected {FIRES[file]}, fired {firing}"
    assert not FIRES[file] & uncovered
    assert firing == FIRES[file], f"{file} also fires {firing - FIRES[file]}"


def test_healthy_worker_fires_nothing() -> None:
    firing, uncovered = _verdicts("healthy")
    assert not uncovered, f"healthy.prom is too short for {uncovered}"
    assert not firing


# Recordings whose trouble lasts exactly as long as the rule needs (its `for:` and ranges).
JUST_LONG_ENOUGH = [
    "truth_poll_stale_firing",
    "slots_exhausted_firing",
    "metrics_endpoint_down_firing",
    "signals_pending_firing",
    "position_uncovered_backstop_firing",
    "halted_firing",
    "option_legs_mismatch_first_firing",
]


@pytest.mark.parametrize("file", JUST_LONG_ENOUGH)
def test_firing_needs_the_whole_for_window(file: str) -> None:
    """One scrape earlier, the condition has not held for its whole `for:` (or range), so
    nothing may fire yet."""
    text = (SCRAPES / f"{file}.prom").read_text()
    headers = [m.start() for m in re.finditer(r"^# scrape ", text, flags=re.M)]
    evaluator = Evaluator(parse_scrapes(text[: headers[-1]]))
    for name in FIRES[file]:
        rule = BY_NAME[name]
        # a shorter recording that no longer covers the window is not firing either
        with contextlib.suppress(BadScrape):
            assert not evaluator.firing(rule["expr"], _for_seconds(rule)), name


def test_a_stricter_threshold_silences_the_rule() -> None:
    """The verdicts depend on the numbers: the same scrape with a raised threshold is quiet."""
    evaluator = _evaluator("signals_pending_firing")
    rule = BY_NAME["DtSignalsPendingPastMaxAge"]
    assert evaluator.firing(rule["expr"], _for_seconds(rule))
    raised = rule["expr"].replace("21600", "23000")
    assert not evaluator.firing(raised, _for_seconds(rule))


def test_a_shorter_window_lets_a_held_back_close_go_quiet() -> None:
    """Six minutes of failed checks count nothing: a 5-minute window would resolve the page
    while the close is still held back; the rule's 10 minutes keep it firing."""
    evaluator = _evaluator("option_legs_mismatch_stalled_firing")
    rule = BY_NAME["DtOptionLegsMismatch"]
    assert evaluator.firing(rule["expr"], _for_seconds(rule))
    shorter = rule["expr"].replace("10m", "5m")
    assert shorter != rule["expr"]
    assert not evaluator.firing(shorter, _for_seconds(rule))


# --- the evaluator itself ------------------------------------------------------------------

_TWO_TARGETS = """
# scrape at=1000 job=w instance=a up=1
c_total{k="x"} 10
g 5
h_bucket{le="100"} 0
h_bucket{le="1000"} 0
h_bucket{le="+Inf"} 0
# scrape at=1000 job=w instance=b up=1
g 7
# scrape at=1060 job=w instance=a up=1
c_total{k="x"} 16
g 6
h_bucket{le="100"} 60
h_bucket{le="1000"} 90
h_bucket{le="+Inf"} 100
# scrape at=1060 job=w instance=b up=0
"""


def _values(result: object) -> dict[Labels, float]:
    assert isinstance(result, list)
    return {sample.labels: sample.value for sample in result}


def test_evaluator_follows_prometheus_semantics() -> None:
    evaluator = Evaluator(parse_scrapes(_TWO_TARGETS))
    # b's failed scrape makes its series stale; up is synthesized per target
    assert _values(evaluator.evaluate("g", 1060)) == {
        (("__name__", "g"), ("instance", "a"), ("job", "w")): 6.0
    }
    assert sorted(_values(evaluator.evaluate("up", 1060)).values()) == [0.0, 1.0]
    # increase over [2m] from samples at 1000 and 1060, extrapolated as Prometheus does:
    # 6 sampled over 60 s, the start extended by half the sample gap (30 s) -> 6 * 90/60,
    # capped where the counter would reach zero (10 / 6 * 60 = 100 s, not binding)
    (inc,) = _values(evaluator.evaluate("increase(c_total[2m])", 1090)).values()
    assert inc == pytest.approx(6 * (60 + 30 + 30) / 60)
    (rate,) = _values(evaluator.evaluate("rate(c_total[2m])", 1090)).values()
    assert rate == pytest.approx(inc / 120)
    # p95 of 100 observations, 90 at or below 1000: rank 95 in (1000, +Inf] -> the bound below
    (p95,) = _values(evaluator.evaluate("histogram_quantile(0.95, h_bucket)", 1060)).values()
    assert p95 == 1000
    (p75,) = _values(evaluator.evaluate("histogram_quantile(0.75, h_bucket)", 1060)).values()
    assert p75 == pytest.approx(100 + 900 * (75 - 60) / 30)
    (empty,) = _values(evaluator.evaluate("histogram_quantile(0.5, h_bucket)", 1000)).values()
    assert math.isnan(empty)
    assert _values(evaluator.evaluate("sum by (job) (g)", 1000)) == {(("job", "w"),): 12.0}
    assert _values(evaluator.evaluate('absent(nothing{job="w"})', 1000)) == {(("job", "w"),): 1.0}
    assert evaluator.evaluate("absent(g)", 1000) == []
    # the new-series idiom: c_total did not exist 5 minutes before 1060
    assert evaluator.evaluate("c_total > 0 unless c_total offset 5m", 1060)
    assert evaluator.evaluate("time() - 60", 1060) == 1000.0


@pytest.mark.parametrize(
    "expr",
    [
        "topk(1, g)",
        "g + g",
        "g > bool 1",
        "deriv(g[5m])",
        'label_replace(g, "a", "b", "c", "d")',
        "g @ 1000",
        "-g",
        "max_over_time(g[5m:1m])",
        "quantile(0.5, g)",
        "g[5m]",
    ],
)
def test_evaluator_refuses_what_it_does_not_implement(expr: str) -> None:
    evaluator = Evaluator(parse_scrapes(_TWO_TARGETS))
    with pytest.raises(Unsupported):
        evaluator.evaluate(expr, 1060)


def test_for_window_must_be_recorded() -> None:
    evaluator = Evaluator(parse_scrapes(_TWO_TARGETS))
    with pytest.raises(BadScrape, match="needs a scrape"):
        evaluator.firing("g > 0", 300.0)


def test_scrape_files_are_well_formed_exposition() -> None:
    for path in sorted(SCRAPES.glob("*.prom")):
        scrapes = parse_scrapes(path.read_text())
        assert scrapes, path.name
        times = [s.at for s in scrapes]
        assert times == sorted(times), path.name


def test_rules_file_path_is_the_documented_one() -> None:
    assert Path(ROOT, "ops", "alerts.yml") == RULES_FILE
    assert RULES_FILE.is_file()
