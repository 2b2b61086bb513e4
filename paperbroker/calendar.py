"""NYSE sessions (holidays, early closes) from exchange_calendars, with fast lookups."""

from __future__ import annotations

import bisect
import functools
import warnings
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import exchange_calendars

NEW_YORK = ZoneInfo("America/New_York")
PRE_MARKET_OPEN = time(4, 0)
POST_MARKET_CLOSE = time(20, 0)
EARLY_CLOSE_POST_MARKET = time(17, 0)


@dataclass(frozen=True)
class Session:
    """One NYSE trading day: regular and extended hours, all UTC."""

    day: date
    open: datetime
    close: datetime
    pre_open: datetime
    post_close: datetime

    @property
    def is_early_close(self) -> bool:
        """Return True when the regular session closes before 16:00 New York time."""
        return self.close.astimezone(NEW_YORK).time() < time(16, 0)


class MarketCalendar:
    """NYSE calendar with session lookups by time and by date."""

    def __init__(self) -> None:
        with warnings.catch_warnings():
            # exchange_calendars trips a pandas deprecation warning that is not ours to fix.
            warnings.simplefilter("ignore")
            schedule = exchange_calendars.get_calendar("XNYS").schedule
        self._sessions: list[Session] = []
        for label, row in schedule.iterrows():
            day = label.date()
            market_open = row["open"].to_pydatetime().astimezone(UTC)
            market_close = row["close"].to_pydatetime().astimezone(UTC)
            post = (
                EARLY_CLOSE_POST_MARKET
                if market_close.astimezone(NEW_YORK).hour < 16
                else (POST_MARKET_CLOSE)
            )
            self._sessions.append(
                Session(
                    day=day,
                    open=market_open,
                    close=market_close,
                    pre_open=datetime.combine(day, PRE_MARKET_OPEN, NEW_YORK).astimezone(UTC),
                    post_close=datetime.combine(day, post, NEW_YORK).astimezone(UTC),
                )
            )
        self._days = [s.day for s in self._sessions]
        self._opens = [s.open for s in self._sessions]
        self._closes = [s.close for s in self._sessions]

    @property
    def first_day(self) -> date:
        """Return the first session date known."""
        return self._days[0]

    @property
    def last_day(self) -> date:
        """Return the last session date known."""
        return self._days[-1]

    def session_on(self, day: date) -> Session | None:
        """Return the session on `day`, or None on weekends and holidays."""
        i = bisect.bisect_left(self._days, day)
        if i < len(self._days) and self._days[i] == day:
            return self._sessions[i]
        return None

    def sessions_between(self, start: date, end: date) -> list[Session]:
        """Return sessions with start <= day <= end."""
        lo = bisect.bisect_left(self._days, start)
        hi = bisect.bisect_right(self._days, end)
        return self._sessions[lo:hi]

    def is_open(self, when: datetime) -> bool:
        """Return True inside a regular session."""
        session = self.current_or_next(when)
        return session is not None and session.open <= when < session.close

    def current_or_next(self, when: datetime) -> Session | None:
        """Return the session whose regular close is after `when` (the live or the next one)."""
        i = bisect.bisect_right(self._closes, when)
        return self._sessions[i] if i < len(self._sessions) else None

    def trading_session_for(self, when: datetime) -> Session | None:
        """Return the session an order received at `when` belongs to (today's or the next)."""
        return self.current_or_next(when)

    def extended_session_for(self, when: datetime) -> Session | None:
        """Return the session whose 04:00-20:00 window contains `when`, if any."""
        session = self._by_day_at(when)
        if session is not None and session.pre_open <= when < session.post_close:
            return session
        return None

    def previous_session(self, when: datetime) -> Session | None:
        """Return the last session whose regular open is at or before `when`."""
        i = bisect.bisect_right(self._opens, when) - 1
        return self._sessions[i] if i >= 0 else None

    def next_open_after(self, when: datetime) -> datetime | None:
        """Return the first regular open strictly after `when`."""
        i = bisect.bisect_right(self._opens, when)
        return self._opens[i] if i < len(self._opens) else None

    def next_close_after(self, when: datetime) -> datetime | None:
        """Return the first regular close strictly after `when`."""
        i = bisect.bisect_right(self._closes, when)
        return self._closes[i] if i < len(self._closes) else None

    def next_session_day(self, day: date) -> date | None:
        """Return the first session date after `day`."""
        i = bisect.bisect_right(self._days, day)
        return self._days[i] if i < len(self._days) else None

    def boundaries_between(self, start: datetime, end: datetime) -> list[datetime]:
        """Return every pre-open, open, close and post-close instant in (start, end]."""
        lo = max(0, bisect.bisect_left(self._closes, start - timedelta(days=1)) - 1)
        out: list[datetime] = []
        for session in self._sessions[lo:]:
            if session.pre_open > end:
                break
            for instant in (session.pre_open, session.open, session.close, session.post_close):
                if start < instant <= end:
                    out.append(instant)
        return sorted(out)

    def _by_day_at(self, when: datetime) -> Session | None:
        return self.session_on(when.astimezone(NEW_YORK).date())


@functools.cache
def nyse_calendar() -> MarketCalendar:
    """Return the process-wide NYSE calendar (loading takes about a second)."""
    return MarketCalendar()


def demo_session_time(now: datetime, calendar: MarketCalendar) -> datetime:
    """Return `now` if the market is open, else one hour after the most recent session's open."""
    if calendar.is_open(now):
        return now
    session = calendar.previous_session(now)
    if session is None:
        raise ValueError("no NYSE session before the requested time")
    return session.open + timedelta(hours=1)
