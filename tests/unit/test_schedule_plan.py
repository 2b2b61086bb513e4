"""The schedule plan (pure): market fire times stay inside the New York session; dev intervals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from contracts.schedules import (
    AUTO_MANAGE,
    DRAIN,
    EXIT_REVIEW,
    MARKET_LOOP,
    OPERATION_NAMES,
    RECONCILE,
)
from trading.schedule_plan import (
    IntervalCadence,
    MatchRange,
    outside_market_window,
    schedule_plan,
)

NEW_YORK = ZoneInfo("America/New_York")
MARKET = schedule_plan("market")
DEV = schedule_plan("dev")
# Friday 8 March 2024 15:50 New York; the following Sunday is the spring DST change.
FRIDAY_BEFORE_DST = datetime(2024, 3, 8, 20, 50, tzinfo=UTC)
instants = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2035, 12, 31), timezones=st.just(UTC)
)


def _ny(at: datetime) -> str:
    return at.astimezone(NEW_YORK).strftime("%a %H:%M")


def test_every_operation_is_planned_once_per_profile_with_skip_and_a_short_catchup() -> None:
    for plan in (MARKET, DEV):
        assert [op.name for op in plan.operations] == list(OPERATION_NAMES)
        assert len({op.schedule_id for op in plan.operations}) == len(OPERATION_NAMES)
        for op in plan.operations:
            assert op.schedule_id == f"dt-{op.name}"
            assert op.overlap == "skip"
            assert timedelta(0) < op.catchup_window <= timedelta(minutes=5)
            assert op.pause_on_failure is False
    assert {op.name: op.workflow_type for op in MARKET.operations} == {
        MARKET_LOOP: "MarketLoopWorkflow",
        DRAIN: "ScoreDrainWorkflow",
        RECONCILE: "ReconcileWorkflow",
        AUTO_MANAGE: "AutoManageWorkflow",
        EXIT_REVIEW: "EodExitReviewWorkflow",
    }


def test_market_cadences_over_one_trading_day() -> None:
    # Monday 11 March 2024, the first day of EDT; from the Friday close before.
    fires = {
        op.name: op.next_fire_times(FRIDAY_BEFORE_DST + timedelta(minutes=10), 400)
        for op in MARKET.operations
    }
    monday = {
        name: [t for t in times if t.astimezone(NEW_YORK).date().day == 11]
        for name, times in fires.items()
    }
    assert len(monday[MARKET_LOOP]) == 78  # 09:30, 09:35, ... 15:55
    assert _ny(monday[MARKET_LOOP][0]) == "Mon 09:30"
    assert _ny(monday[MARKET_LOOP][-1]) == "Mon 15:55"
    assert monday[DRAIN] == monday[MARKET_LOOP]
    assert len(monday[RECONCILE]) == 390  # every minute of the 6.5 hour session
    assert _ny(monday[RECONCILE][-1]) == "Mon 15:59"
    assert monday[AUTO_MANAGE] == monday[RECONCILE]
    assert monday[MARKET_LOOP][0] == datetime(2024, 3, 11, 13, 30, tzinfo=UTC)  # EDT: UTC-4
    assert [_ny(t) for t in fires[EXIT_REVIEW][:3]] == ["Fri 16:15", "Mon 16:15", "Tue 16:15"]


def test_a_friday_after_the_close_next_fires_monday_at_the_open() -> None:
    after_close = datetime(2024, 3, 8, 21, 1, tzinfo=UTC)  # 16:01 EST
    for op in MARKET.operations:
        first = op.next_fire_times(after_close, 1)[0]
        expected = "Fri 16:15" if op.name == EXIT_REVIEW else "Mon 09:30"
        assert _ny(first) == expected, op.name


@settings(max_examples=60, deadline=None)
@given(after=instants, count=st.integers(min_value=1, max_value=40))
def test_market_fire_times_fall_on_weekdays_inside_the_session(after: datetime, count: int) -> None:
    for op in MARKET.operations:
        fires = op.next_fire_times(after, count)
        assert len(fires) == count
        assert fires[0] > after
        assert fires == sorted(set(fires))
        assert outside_market_window(op, fires) == [], op.name


@settings(max_examples=60, deadline=None)
@given(after=instants)
def test_market_fire_times_skip_no_session_slot(after: datetime) -> None:
    # Within one New York day, consecutive fires are exactly one cadence step apart.
    steps = {MARKET_LOOP: 5, DRAIN: 5, RECONCILE: 1, AUTO_MANAGE: 1}
    for name, minutes in steps.items():
        op = MARKET.find(name)
        assert op is not None
        fires = op.next_fire_times(after, 100)
        for earlier, later in pairwise(fires):
            if earlier.astimezone(NEW_YORK).date() == later.astimezone(NEW_YORK).date():
                assert later - earlier == timedelta(minutes=minutes)
            else:
                assert later.astimezone(NEW_YORK).strftime("%H:%M") == "09:30"


def test_outside_market_window_names_the_wrong_instants() -> None:
    loop = MARKET.find(MARKET_LOOP)
    review = MARKET.find(EXIT_REVIEW)
    assert loop is not None and review is not None
    saturday = datetime(2024, 3, 9, 15, 0, tzinfo=UTC)
    early = datetime(2024, 3, 11, 13, 29, tzinfo=UTC)  # 09:29 EDT
    late = datetime(2024, 3, 11, 20, 1, tzinfo=UTC)  # 16:01 EDT
    problems = outside_market_window(loop, [saturday, early, late])
    assert [p.reason for p in problems] == [
        "Saturday is not a weekday",
        "09:29:00 is outside 09:30-16:00",
        "16:01:00 is outside 09:30-16:00",
    ]
    assert [p.reason for p in outside_market_window(review, [late])] == ["16:01:00 is not 16:15"]


@settings(max_examples=60, deadline=None)
@given(after=instants)
def test_dev_intervals_fire_on_epoch_aligned_multiples(after: datetime) -> None:
    for op in DEV.operations:
        assert isinstance(op.cadence, IntervalCadence)
        fires = op.next_fire_times(after, 5)
        assert fires[0] > after
        assert fires[0] - op.cadence.every <= after
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        for at in fires:
            assert (at - epoch - op.cadence.offset) % op.cadence.every == timedelta(0)
        assert {b - a for a, b in pairwise(fires)} == {op.cadence.every}


def test_dev_profile_runs_at_any_hour() -> None:
    saturday_night = datetime(2024, 3, 9, 3, 0, 30, tzinfo=UTC)
    loop = DEV.find("dt-market-loop")
    assert loop is not None
    assert loop.next_fire_times(saturday_night, 2) == [
        datetime(2024, 3, 9, 3, 2, tzinfo=UTC),
        datetime(2024, 3, 9, 3, 4, tzinfo=UTC),
    ]


def test_fingerprint_changes_with_the_definition_and_the_task_queue() -> None:
    market_loop = MARKET.operations[0]
    assert market_loop.fingerprint("q") == schedule_plan("market").operations[0].fingerprint("q")
    assert market_loop.fingerprint("q") != market_loop.fingerprint("other-q")
    assert market_loop.fingerprint("q") != DEV.operations[0].fingerprint("q")
    changed = market_loop.model_copy(update={"input": {"limit": 5}})
    assert changed.fingerprint("q") != market_loop.fingerprint("q")


def test_prefix_names_schedules_and_workflows() -> None:
    plan = schedule_plan("market", prefix="t1-")
    assert [op.schedule_id for op in plan.operations][:2] == ["t1-market-loop", "t1-drain"]
    assert plan.find("drain") is plan.operations[1]
    assert plan.find("t1-drain") is plan.operations[1]
    assert plan.find("dt-drain") is None


def test_invalid_ranges_and_intervals_are_refused() -> None:
    with pytest.raises(ValidationError, match="before start"):
        MatchRange(start=30, end=10)
    with pytest.raises(ValidationError, match="offset"):
        IntervalCadence(every=timedelta(minutes=1), offset=timedelta(minutes=1))
