"""The scheduled operations per profile, as data: what runs, when, and with which input.

`market` fires on New York session minutes (Mon-Fri, 09:30 up to but excluding 16:00; exit
review at 16:15) by calendar, so the server keeps firing on the exchange's wall clock across
DST changes. `dev` fires on plain intervals so the paper broker's virtual session can drive a
demo at any hour. Holidays and early closes are not encoded here: every run asks the broker's
clock and calendar first and ends early when the market is closed.

`next_fire_times` computes the same instants the Temporal server will (calendar minutes in
the time zone; intervals as epoch + n * every + offset), so the plan is testable without one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from pydantic import AwareDatetime, Field, JsonValue, model_validator

from contracts.schedules import (
    AUTO_MANAGE,
    DRAIN,
    EXIT_REVIEW,
    MARKET_LOOP,
    OPERATION_NAMES,
    RECONCILE,
    SCHEDULE_PREFIX,
    WORKFLOWS,
    schedule_id_for,
)
from trading.models import Frozen

ScheduleProfile = Literal["dev", "market"]
SCHEDULE_PROFILES: tuple[ScheduleProfile, ...] = ("dev", "market")
MARKET_TIME_ZONE = "America/New_York"
CATCHUP_WINDOW = timedelta(minutes=1)
# Give up when a calendar matches nothing within a year: a rule that can never fire.
_SEARCH_DAYS = 366
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class MatchRange(Frozen):
    """Inclusive start..end with a step, as Temporal's ScheduleRange."""

    start: int = Field(ge=0)
    end: int | None = None  # None: start only
    step: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> MatchRange:
        if self.end is not None and self.end < self.start:
            raise ValueError(f"range end {self.end} is before start {self.start}")
        return self

    @property
    def last(self) -> int:
        """The inclusive end."""
        return self.start if self.end is None else self.end

    def values(self) -> range:
        """Every matching value."""
        return range(self.start, self.last + 1, self.step)


WEEKDAYS = MatchRange(start=1, end=5)  # Temporal counts days of the week from Sunday = 0


class CalendarRule(Frozen):
    """Wall-clock minutes (second 0) of some hours on some days of the week that fire."""

    hour: MatchRange
    minute: MatchRange
    day_of_week: MatchRange = WEEKDAYS
    comment: str = ""

    def local_times(self, day: date) -> list[datetime]:
        """The naive wall-clock instants of `day` this rule matches."""
        if (day.weekday() + 1) % 7 not in self.day_of_week.values():
            return []
        return [
            datetime(day.year, day.month, day.day, hour, minute)
            for hour in self.hour.values()
            for minute in self.minute.values()
        ]


class CalendarCadence(Frozen):
    """Fire on the minutes the rules match, in a time zone."""

    kind: Literal["calendar"] = "calendar"
    time_zone: str = MARKET_TIME_ZONE
    rules: tuple[CalendarRule, ...] = Field(min_length=1)

    def next_fire_times(self, after: datetime, count: int) -> list[datetime]:
        """The first `count` fire instants strictly after `after`, in UTC."""
        zone = ZoneInfo(self.time_zone)
        day = after.astimezone(zone).date()
        fires: list[datetime] = []
        for _ in range(_SEARCH_DAYS + count):
            for local in sorted({t for rule in self.rules for t in rule.local_times(day)}):
                instant = local.replace(tzinfo=zone)
                # A wall-clock time skipped by a DST change does not exist; it cannot fire.
                if instant.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != local:
                    continue
                if instant > after:
                    fires.append(instant.astimezone(UTC))
                    if len(fires) == count:
                        return fires
            day += timedelta(days=1)
        raise ValueError(f"calendar matches fewer than {count} times in a year")


class IntervalCadence(Frozen):
    """Fire at epoch + n * every + offset (UTC), as Temporal's ScheduleIntervalSpec."""

    kind: Literal["interval"] = "interval"
    every: timedelta = Field(gt=timedelta(0))
    offset: timedelta = timedelta(0)

    @model_validator(mode="after")
    def _offset_within_period(self) -> IntervalCadence:
        if not timedelta(0) <= self.offset < self.every:
            raise ValueError("offset must be at least 0 and less than the interval")
        return self

    def next_fire_times(self, after: datetime, count: int) -> list[datetime]:
        """The first `count` fire instants strictly after `after`, in UTC."""
        periods = (after - _EPOCH - self.offset) // self.every + 1
        first = _EPOCH + self.offset + periods * self.every
        return [first + n * self.every for n in range(count)]


Cadence = Annotated[CalendarCadence | IntervalCadence, Field(discriminator="kind")]


class ScheduledOperation(Frozen):
    """One schedule: start `workflow_type` with `input` on `cadence`, skipping overlaps."""

    name: str = Field(pattern=r"^[a-z][a-z-]*$")
    schedule_id: str = Field(min_length=1)
    workflow_type: str = Field(min_length=1)
    workflow_id: str = Field(min_length=1)  # the server appends each run's scheduled time
    input: dict[str, JsonValue]
    cadence: Cadence
    summary: str
    overlap: Literal["skip"] = "skip"
    catchup_window: timedelta = CATCHUP_WINDOW
    pause_on_failure: bool = False
    execution_timeout: timedelta = Field(gt=timedelta(0))

    def next_fire_times(self, after: datetime, count: int) -> list[datetime]:
        """The first `count` instants after `after` at which this schedule starts a run."""
        return self.cadence.next_fire_times(after, count)

    def fingerprint(self, task_queue: str) -> str:
        """A digest of everything the server is told, to detect a changed definition."""
        definition = {"task_queue": task_queue, **self.model_dump(mode="json")}
        canonical = json.dumps(definition, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


class SchedulePlan(Frozen):
    """Every schedule of one profile, with ids under one prefix."""

    profile: ScheduleProfile
    prefix: str
    operations: tuple[ScheduledOperation, ...]

    def find(self, name_or_id: str) -> ScheduledOperation | None:
        """The operation named `name_or_id` (`drain`) or with that schedule id (`dt-drain`)."""
        for operation in self.operations:
            if name_or_id in (operation.name, operation.schedule_id):
                return operation
        return None


class PlanCheck(Frozen):
    """A fire time outside the allowed window, found by `fire_times_outside`."""

    schedule_id: str
    at: AwareDatetime
    reason: str


def _session_minutes(step: int) -> tuple[CalendarRule, ...]:
    """Every `step` minutes from 09:30 up to but excluding 16:00, Monday to Friday.

    16:00 itself is left out: the market is closed then, so a run would only end early.
    """
    return (
        CalendarRule(
            hour=MatchRange(start=9),
            minute=MatchRange(start=30, end=59, step=step),
            comment="opening half hour",
        ),
        CalendarRule(
            hour=MatchRange(start=10, end=15),
            minute=MatchRange(start=0, end=59, step=step),
            comment="10:00 to the close",
        ),
    )


def _cadences(profile: ScheduleProfile) -> dict[str, tuple[CalendarCadence | IntervalCadence, str]]:
    if profile == "market":
        every_5 = CalendarCadence(rules=_session_minutes(5))
        every_1 = CalendarCadence(rules=_session_minutes(1))
        after_close = CalendarCadence(
            rules=(
                CalendarRule(
                    hour=MatchRange(start=16), minute=MatchRange(start=15), comment="after close"
                ),
            )
        )
        session = "09:30-16:00 New York, Mon-Fri"
        return {
            MARKET_LOOP: (every_5, f"every 5 min, {session}"),
            DRAIN: (every_5, f"every 5 min, {session}"),
            RECONCILE: (every_1, f"every minute, {session}"),
            AUTO_MANAGE: (every_1, f"every minute, {session}"),
            EXIT_REVIEW: (after_close, "16:15 New York, Mon-Fri"),
        }
    minutes = timedelta(minutes=1)
    return {
        MARKET_LOOP: (IntervalCadence(every=2 * minutes), "every 2 min (dev)"),
        # Offset by a minute so a drain scores what the market loop just queued.
        DRAIN: (IntervalCadence(every=2 * minutes, offset=minutes), "every 2 min, +1 min (dev)"),
        RECONCILE: (IntervalCadence(every=minutes), "every minute (dev)"),
        AUTO_MANAGE: (IntervalCadence(every=minutes), "every minute (dev)"),
        EXIT_REVIEW: (IntervalCadence(every=30 * minutes), "every 30 min (dev)"),
    }


# Inputs as JSON: each workflow validates them into its own input model (defaults for the rest).
_INPUTS: dict[str, dict[str, JsonValue]] = {
    MARKET_LOOP: {"run_source": "schedule"},
    DRAIN: {},
    RECONCILE: {"run_source": "schedule"},
    AUTO_MANAGE: {},
    EXIT_REVIEW: {"run_source": "schedule"},
}
# A run still going after this is stuck; ending it lets the next (overlap SKIP) run start.
_EXECUTION_TIMEOUTS = {
    MARKET_LOOP: timedelta(minutes=15),
    DRAIN: timedelta(minutes=15),
    RECONCILE: timedelta(minutes=10),
    AUTO_MANAGE: timedelta(minutes=10),
    EXIT_REVIEW: timedelta(hours=1),
}


def schedule_plan(
    profile: ScheduleProfile,
    prefix: str = SCHEDULE_PREFIX,
    max_open_positions: int | None = None,
    watchlist: list[str] | None = None,
    market_loop: Mapping[str, JsonValue] | None = None,
) -> SchedulePlan:
    """The schedules `schedules apply` installs for `profile` (entry limit from the settings;
    `market_loop`: more of the market loop's input - strategies, their configs, risk limits)."""
    inputs = {name: dict(value) for name, value in _INPUTS.items()}
    if max_open_positions is not None:
        inputs[MARKET_LOOP]["max_open_positions"] = max_open_positions
    if watchlist:
        inputs[MARKET_LOOP]["watchlist"] = list(watchlist)
    if market_loop:
        inputs[MARKET_LOOP].update(market_loop)
    cadences = _cadences(profile)
    operations = tuple(
        ScheduledOperation(
            name=name,
            schedule_id=schedule_id_for(name, prefix),
            workflow_type=WORKFLOWS[name].name,
            workflow_id=schedule_id_for(name, prefix),
            input=inputs[name],
            cadence=cadences[name][0],
            summary=cadences[name][1],
            execution_timeout=_EXECUTION_TIMEOUTS[name],
        )
        for name in OPERATION_NAMES
    )
    return SchedulePlan(profile=profile, prefix=prefix, operations=operations)


def outside_market_window(
    operation: ScheduledOperation, fire_times: list[datetime]
) -> list[PlanCheck]:
    """Fire times of a market-profile operation that are not where the session says.

    Exit review must fire at exactly 16:15 New York on a weekday; the rest on a weekday
    between 09:30 and 16:00 New York.
    """
    zone = ZoneInfo(MARKET_TIME_ZONE)
    problems: list[PlanCheck] = []
    for at in fire_times:
        local = at.astimezone(zone)
        clock = (local.hour, local.minute, local.second, local.microsecond)
        if local.weekday() >= 5:
            reason = f"{local:%A} is not a weekday"
        elif operation.name == EXIT_REVIEW and clock != (16, 15, 0, 0):
            reason = f"{local:%H:%M:%S} is not 16:15"
        elif operation.name != EXIT_REVIEW and not (9, 30, 0, 0) <= clock <= (16, 0, 0, 0):
            reason = f"{local:%H:%M:%S} is outside 09:30-16:00"
        else:
            continue
        problems.append(PlanCheck(schedule_id=operation.schedule_id, at=at, reason=reason))
    return problems
