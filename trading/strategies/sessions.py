"""New York session days for bar timestamps, converted once per day (pure).

Bars are stamped in UTC; the regular session is 09:30-16:00 America/New_York. Converting each
of a year's minute bars to New York time would dominate a backtest, so `NewYorkDays` converts a
timestamp only when it leaves the day it last converted, and strategies compare UTC datetimes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

NEW_YORK = ZoneInfo("America/New_York")
REGULAR_OPEN = time(9, 30)
REGULAR_CLOSE = time(16, 0)
# The regular session's earliest close: half days (July 3, Black Friday, Christmas Eve) end here.
EARLY_CLOSE = time(13, 0)


@dataclass(frozen=True, slots=True)
class NewYorkDay:
    """One New York calendar day: its date and its bounds in UTC."""

    day: date
    start: datetime
    end: datetime

    def at(self, clock: time) -> datetime:
        """The UTC instant of New York wall-clock `clock` on this day."""
        return datetime.combine(self.day, clock, tzinfo=NEW_YORK).astimezone(UTC)

    def contains(self, moment: datetime) -> bool:
        """Whether `moment` falls on this New York day."""
        return self.start <= moment < self.end


def new_york_day(moment: datetime) -> NewYorkDay:
    """The New York calendar day `moment` (timezone-aware) falls on."""
    day = moment.astimezone(NEW_YORK).date()
    start = datetime.combine(day, time(0), tzinfo=NEW_YORK).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=NEW_YORK).astimezone(UTC)
    return NewYorkDay(day=day, start=start, end=end)


class NewYorkDays:
    """Maps timestamps, oldest first, to their New York day, converting once per day."""

    def __init__(self) -> None:
        self._current: NewYorkDay | None = None

    def day_of(self, moment: datetime) -> NewYorkDay:
        """The New York day of `moment`; cheap while `moment` stays on the last day asked."""
        current = self._current
        if current is None or not current.contains(moment):
            current = self._current = new_york_day(moment)
        return current
