"""Simulated wall clock: real, offset, accelerated or manual time."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel


class ClockMode(StrEnum):
    """How simulated time relates to wall time."""

    REAL = "real"
    OFFSET = "offset"
    ACCELERATED = "accelerated"
    MANUAL = "manual"


class ClockState(BaseModel):
    """Serializable clock settings, kept in snapshots."""

    mode: ClockMode
    anchor_sim: datetime
    rate: float = 1.0


class SimClock:
    """A clock whose `now()` every part of the broker reads."""

    def __init__(self, mode: ClockMode, start: datetime | None = None, rate: float = 1.0) -> None:
        self._mode = mode
        self._rate = rate if mode is ClockMode.ACCELERATED else 1.0
        self._anchor_wall = time.time()
        self._anchor_sim = (start or datetime.now(UTC)).astimezone(UTC)
        if mode is ClockMode.REAL:
            self._anchor_sim = datetime.fromtimestamp(self._anchor_wall, UTC)

    @property
    def mode(self) -> ClockMode:
        """Return the clock mode."""
        return self._mode

    @property
    def rate(self) -> float:
        """Return how many simulated seconds pass per wall second."""
        return self._rate

    def now(self) -> datetime:
        """Return the current simulated time (UTC)."""
        if self._mode is ClockMode.MANUAL:
            return self._anchor_sim
        elapsed = (time.time() - self._anchor_wall) * self._rate
        return self._anchor_sim + timedelta(seconds=elapsed)

    def set(self, when: datetime) -> None:
        """Jump simulated time to `when` (time keeps running in non-manual modes)."""
        self._anchor_wall = time.time()
        self._anchor_sim = when.astimezone(UTC)
        if self._mode is ClockMode.REAL:
            self._mode = ClockMode.OFFSET

    def advance(self, seconds: float) -> datetime:
        """Move simulated time forward by `seconds` and return the new time."""
        self.set(self.now() + timedelta(seconds=seconds))
        return self.now()

    def set_mode(self, mode: ClockMode, rate: float | None = None) -> None:
        """Switch mode keeping the current simulated time."""
        current = self.now()
        self._mode = mode
        if rate is not None:
            self._rate = rate
        if mode is not ClockMode.ACCELERATED:
            self._rate = 1.0
        self._anchor_wall = time.time()
        self._anchor_sim = (
            datetime.fromtimestamp(self._anchor_wall, UTC) if mode is ClockMode.REAL else current
        )

    def state(self) -> ClockState:
        """Return the clock settings for a snapshot."""
        return ClockState(mode=self._mode, anchor_sim=self.now(), rate=self._rate)

    def restore(self, state: ClockState) -> None:
        """Adopt a snapshot's mode, rate and time in place."""
        self._mode = state.mode
        self._rate = state.rate
        self._anchor_wall = time.time()
        self._anchor_sim = state.anchor_sim.astimezone(UTC)

    @classmethod
    def from_state(cls, state: ClockState) -> SimClock:
        """Rebuild a clock from a snapshot, resuming at the saved time."""
        return cls(state.mode, state.anchor_sim, state.rate)
