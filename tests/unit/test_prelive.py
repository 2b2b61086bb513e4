"""Prelive's pure judgements, the readiness verdicts and the live gate's decision."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from pydantic import SecretStr

from ops.live_gate import live_config, settings_digest
from settings import LIVE_CONFIRMATION, ConfigError, Settings
from trading.broker_models import (
    BrokerAccount,
    BrokerOrder,
    BrokerPosition,
    BrokerTruth,
    MarketClock,
    OrderClass,
    OrderSide,
    OrderStatus,
    OrderType,
    SessionDay,
    TimeInForce,
)
from trading.control import ControlMode
from trading.entry_gate import ControlPresence, ControlView
from trading.ledger_records import ReconcileRunRecord
from trading.ops_health import (
    Dependency,
    DependencyVerdict,
    readiness,
    truth_poll_max_age_s,
    truth_poll_verdict,
)
from trading.prelive import (
    NEW_YORK,
    SKIP_PRELIVE_CONFIRMATION,
    CheckOutcome,
    InstalledSchedule,
    PreliveCheck,
    PreliveRunRecord,
    SecretScan,
    clock_outcome,
    control_outcome,
    coverage_outcome,
    leaked_names,
    live_gate,
    metrics_outcome,
    pending_outcome,
    prelive_report,
    reconcile_outcome,
    schedules_outcome,
    secret_needles,
    secrets_outcome,
)

NOW = datetime(2024, 3, 5, 15, 30, tzinfo=UTC)  # 10:30 New York, a Tuesday session


def _session(day: date) -> SessionDay:
    return SessionDay(
        date=day,
        open=datetime(day.year, day.month, day.day, 9, 30, tzinfo=NEW_YORK),
        close=datetime(day.year, day.month, day.day, 16, 0, tzinfo=NEW_YORK),
    )


CALENDAR = [_session(date(2024, 3, d)) for d in (5, 6, 7, 8, 11)]


def _open_clock(at: datetime = NOW) -> MarketClock:
    return MarketClock(
        timestamp=at, is_open=True, next_open=CALENDAR[1].open, next_close=CALENDAR[0].close
    )


def test_clock_and_calendar_agree_in_a_session() -> None:
    outcome = clock_outcome(_open_clock(), CALENDAR, NOW + timedelta(seconds=2))
    assert outcome.passed, outcome.reason
    assert "skew -2.0 s" in outcome.reason and "2024-03-05" in outcome.reason


def test_a_skewed_broker_clock_fails_unless_the_clock_is_simulated() -> None:
    skewed = clock_outcome(_open_clock(), CALENDAR, NOW + timedelta(seconds=30))
    assert not skewed.passed and "-30.0 s off" in skewed.reason
    simulated = clock_outcome(
        _open_clock(), CALENDAR, NOW + timedelta(hours=9), compare_clock=False
    )
    assert simulated.passed and "simulated clock" in simulated.reason


def test_clock_edges_that_disagree_with_the_calendar_fail() -> None:
    wrong_close = _open_clock().model_copy(
        update={"next_close": CALENDAR[0].close.replace(hour=13)}
    )
    assert "not today's calendar close" in clock_outcome(wrong_close, CALENDAR, NOW).reason
    saturday = datetime(2024, 3, 9, 15, 0, tzinfo=UTC)
    open_on_saturday = _open_clock(saturday).model_copy(
        update={"next_close": saturday + timedelta(hours=1), "next_open": CALENDAR[-1].open}
    )
    assert "not a session" in clock_outcome(open_on_saturday, CALENDAR, saturday).reason
    closed = MarketClock(
        timestamp=saturday,
        is_open=False,
        next_open=datetime(2024, 3, 10, 9, 30, tzinfo=NEW_YORK),  # a Sunday: not in the calendar
        next_close=datetime(2024, 3, 10, 16, 0, tzinfo=NEW_YORK),
    )
    assert "not a session of the calendar" in clock_outcome(closed, CALENDAR, saturday).reason
    assert not clock_outcome(_open_clock(), [], NOW).passed


def _order(
    symbol: str, qty: str, kind: OrderType = OrderType.STOP, **fields: object
) -> BrokerOrder:
    return BrokerOrder(
        id=f"o-{symbol}-{qty}",
        client_order_id=f"c-{symbol}",
        symbol=symbol,
        side=OrderSide.SELL,
        type=kind,
        order_class=OrderClass.SIMPLE,
        time_in_force=TimeInForce.GTC,
        status=OrderStatus.NEW,
        qty=Decimal(qty),
        stop_price=Decimal(90),
        created_at=NOW,
        updated_at=NOW,
        **fields,
    )


def _truth(positions: dict[str, str], orders: list[BrokerOrder]) -> BrokerTruth:
    money = Decimal(100_000)
    account = BrokerAccount(
        status="ACTIVE", cash=money, buying_power=money, equity=money, last_equity=money
    )
    return BrokerTruth(
        account=account,
        positions=[
            BrokerPosition(symbol=s, qty=Decimal(q), avg_entry_price=Decimal(100))
            for s, q in positions.items()
        ],
        open_orders=orders,
        fetched_at=NOW,
    )


def test_every_position_needs_an_active_stop_covering_its_quantity() -> None:
    covered = _truth({"AAPL": "5"}, [_order("AAPL", "5")])
    assert coverage_outcome(covered).passed
    short_stop = _truth({"AAPL": "5", "MSFT": "2"}, [_order("AAPL", "3")])
    outcome = coverage_outcome(short_stop)
    assert not outcome.passed
    assert outcome.reason == "no active stop covers: AAPL 5 shares, MSFT 2 shares"
    limit_only = _truth({"NVDA": "1"}, [_order("NVDA", "1", OrderType.LIMIT)])
    assert "NVDA" in coverage_outcome(limit_only).reason
    assert coverage_outcome(_truth({}, [])).reason == "flat"


def test_schedules_must_be_installed_as_planned_and_running() -> None:
    planned = {"dt-a": "f1", "dt-b": "f2", "dt-c": "f3"}
    good = {k: InstalledSchedule(fingerprint=v, paused=False) for k, v in planned.items()}
    assert schedules_outcome("market", planned, good).passed
    bad = {
        "dt-a": InstalledSchedule(fingerprint="f1", paused=True),
        "dt-b": InstalledSchedule(fingerprint="dev", paused=False),
    }
    outcome = schedules_outcome("market", planned, bad)
    assert not outcome.passed
    assert "missing dt-c; not as planned dt-b; paused dt-a" in outcome.reason


def test_trading_control_must_run_and_be_active() -> None:
    active = ControlView(presence=ControlPresence.RUNNING, mode=ControlMode.ACTIVE)
    assert control_outcome(active).passed
    halted = ControlView(presence=ControlPresence.RUNNING, mode=ControlMode.HALTED, reason="loss")
    assert control_outcome(halted).reason == "trading control is HALTED: loss"
    missing = control_outcome(ControlView(presence=ControlPresence.NOT_STARTED))
    assert not missing.passed and "NOT_STARTED" in missing.reason


def _run(**fields: object) -> ReconcileRunRecord:
    base: dict[str, object] = {
        "id": 1,
        "run_id": "r1",
        "source": "schedule",
        "dry_run": False,
        "started_at": NOW - timedelta(minutes=5),
        "finished_at": NOW - timedelta(minutes=4),
        "checked": 3,
        "closed": 1,
        "adopted": 0,
        "synced": 0,
        "ok": True,
        "error": None,
        "duration_ms": 40,
    }
    return ReconcileRunRecord.model_validate(base | fields)


def test_the_last_finished_reconcile_must_be_recent_and_clean() -> None:
    assert reconcile_outcome([_run()], NOW).passed
    assert "no finished reconcile" in reconcile_outcome([], NOW).reason
    failed = _run(id=2, ok=False, error="broker down", finished_at=NOW - timedelta(minutes=1))
    assert "failed: broker down" in reconcile_outcome([_run(), failed], NOW).reason
    old = _run(finished_at=NOW - timedelta(days=2))
    assert "h old" in reconcile_outcome([old], NOW).reason
    dry = _run(dry_run=True, closed=2)
    assert "dry run that found 2 ghost(s)" in reconcile_outcome([dry], NOW).reason
    running = _run(id=3, finished_at=None, ok=None, started_at=NOW)
    assert reconcile_outcome([running, _run()], NOW).passed  # the newest finished one counts


def test_pending_signals_past_their_max_age_fail() -> None:
    assert pending_outcome(None, 3600).passed
    assert pending_outcome(60, 3600).passed
    stuck = pending_outcome(7200, 3600)
    assert not stuck.passed and "2.0 h old" in stuck.reason


def test_the_metrics_endpoint_must_answer_with_samples() -> None:
    body = "# HELP dt_x x\ndt_positions_covered 2\ntemporal_worker_task_slots_available 5\n"
    assert metrics_outcome("127.0.0.1:9464", 200, body).passed
    assert "METRICS_ADDRESS is empty" in metrics_outcome("", None, None).reason
    assert "HTTP 500" in metrics_outcome("h:1", 500, "").reason
    assert "without any metric sample" in metrics_outcome("h:1", 200, "# only help\n").reason
    assert "did not answer: ClientConnectorError" in (
        metrics_outcome("h:1", None, None, "ClientConnectorError").reason
    )


def test_the_secret_scan_names_the_setting_never_the_value() -> None:
    value = 'abc"def/ghi-0123456789'
    needles, short = secret_needles({"ALPACA_SECRET_KEY": value, "DATABASE_URL": "pw", "X": ""})
    assert short == ["DATABASE_URL"]
    assert leaked_names(b'{"input": "abc\\"def/ghi-0123456789"}', needles) == {"ALPACA_SECRET_KEY"}
    assert leaked_names(value.encode(), needles) == {"ALPACA_SECRET_KEY"}
    assert leaked_names(b"abc def ghi", needles) == set()
    outcome = secrets_outcome(
        SecretScan(histories=3, scanned=["ALPACA_SECRET_KEY"], leaks={"ALPACA_SECRET_KEY": ["w"]})
    )
    assert not outcome.passed and outcome.reason == "secret leaked: ALPACA_SECRET_KEY in w"
    assert value not in outcome.reason


def test_the_report_passes_only_with_every_check_passing() -> None:
    every = [CheckOutcome(name=n, passed=True, reason="ok") for n in reversed(PreliveCheck)]
    report = prelive_report(every, NOW, "digest", "paper")
    assert report.passed and [c.name for c in report.checks] == list(PreliveCheck)
    one_down = [*every[:-1], CheckOutcome(name=every[-1].name, passed=False, reason="x")]
    assert not prelive_report(one_down, NOW, "digest", "paper").passed
    assert not prelive_report(every[:-1], NOW, "digest", "paper").passed  # one missing


def test_readiness_is_every_dependency_ok() -> None:
    fresh = truth_poll_verdict(NOW - timedelta(seconds=10), NOW, 120)
    stale = truth_poll_verdict(NOW - timedelta(seconds=300), NOW, 120)
    never = truth_poll_verdict(None, NOW, 120)
    assert fresh.ok and not stale.ok and not never.ok
    assert "stale: last BrokerSync poll 300 s ago" in stale.detail
    others = [DependencyVerdict(name=d, ok=True) for d in (Dependency.BROKER, Dependency.TEMPORAL)]
    assert readiness([*others, fresh], NOW).ready
    verdict = readiness([*others, stale], NOW)
    assert not verdict.ready and [c.name for c in verdict.failed] == [Dependency.TRUTH_POLL]
    assert verdict.checks[0].name == Dependency.TEMPORAL
    assert not readiness([], NOW).ready


# --- the live gate ---------------------------------------------------------------------------
def _live_settings(**overrides: object) -> Settings:
    fields: dict[str, object] = {
        "trading_mode": "live",
        "trading_live_confirm": LIVE_CONFIRMATION,
        "alpaca_paper": False,
        "alpaca_api_key": SecretStr("AKLIVEKEYID0000000000"),
        "alpaca_secret_key": SecretStr("live-secret-value-not-real"),
    }
    return Settings(**(fields | overrides))  # type: ignore[arg-type]


def test_the_config_digest_covers_where_orders_go_but_not_the_secret() -> None:
    live = _live_settings()
    assert live_config(live).trading_url == "https://api.alpaca.markets"
    same_but_secret = _live_settings(alpaca_secret_key=SecretStr("another-secret-value"))
    assert settings_digest(live) == settings_digest(same_but_secret)
    assert settings_digest(live) != settings_digest(
        _live_settings(alpaca_api_key=SecretStr("AKOTHERKEY0000000000"))
    )
    assert settings_digest(live) != settings_digest(Settings())
    assert "AKLIVEKEYID" not in live_config(live).model_dump_json()


def _stored(passed: bool, at: datetime = NOW) -> PreliveRunRecord:
    checks = [CheckOutcome(name=PreliveCheck.TRADING_CONTROL, passed=passed, reason="r")]
    return PreliveRunRecord(id=1, at=at, config_digest="d", passed=passed, checks=checks)


@pytest.mark.parametrize(
    ("last", "override", "allowed", "reason"),
    [
        (None, None, False, "no prelive run for this configuration"),
        (_stored(False), None, False, "FAILED: trading_control"),
        (_stored(True, NOW - timedelta(hours=25)), None, False, "older than"),
        (_stored(True, NOW - timedelta(hours=1)), None, True, "prelive passed"),
        (None, "yes", False, "no prelive run"),
        (None, SKIP_PRELIVE_CONFIRMATION, True, "WITHOUT a passing prelive"),
    ],
)
def test_the_live_gate(
    last: PreliveRunRecord | None, override: str | None, allowed: bool, reason: str
) -> None:
    decision = live_gate("live", "d", last, NOW, override)
    assert decision.allowed is allowed and reason in decision.reason
    assert live_gate("paper", "d", None, NOW, None).allowed


def test_each_dev_stack_replica_gets_its_own_health_port() -> None:
    from ops.health import replica_health_address

    assert replica_health_address("127.0.0.1:9465", 0) == "127.0.0.1:9465"
    assert replica_health_address("127.0.0.1:9465", 2) == "127.0.0.1:9467"
    assert replica_health_address("", 3) == ""
    with pytest.raises(ConfigError, match="HEALTH_ADDRESS"):
        replica_health_address("nonsense", 0)


def test_a_closed_market_allows_its_five_minute_polls_before_the_poll_reads_stale() -> None:
    assert truth_poll_max_age_s(120, market_open=True) == 120
    assert truth_poll_max_age_s(120, market_open=False) == 420
    assert truth_poll_max_age_s(120, market_open=None) == 420  # unknown: not a false alarm
    night = NOW - timedelta(seconds=299)
    assert truth_poll_verdict(night, NOW, truth_poll_max_age_s(120, False)).ok
    assert not truth_poll_verdict(night, NOW, truth_poll_max_age_s(120, True)).ok
