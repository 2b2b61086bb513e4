"""Inputs, outputs and state of BrokerSyncWorkflow and its activities."""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, Field

from trading.models import Frozen

POLL_CALLS = 2  # a poll's broker calls for an account with under 500 open orders


class ListenRequest(Frozen):
    """How long one listener activity holds the stream before handing over."""

    listen_for: timedelta = timedelta(minutes=30)
    heartbeat_every: timedelta = timedelta(seconds=1)


class ListenSummary(Frozen):
    """What one listener run forwarded."""

    events: int
    forwarded: int
    missed: int
    last_event_at: datetime | None = None
    position_reads: int = 0  # positions reads attached to events that ended an order


class SyncRequest(Frozen):
    """One broker-truth poll."""

    reason: str = "poll"
    # A worker starting after a crash: the trades it wakes get their next task on the task
    # queue at once, not after their dead worker's sticky timeout.
    unstick: bool = False


class SyncSummary(Frozen):
    """What one poll saw and told the trades."""

    observed_at: datetime
    positions: int
    open_orders: int
    open_trades: int
    signalled: int
    unchanged: int = 0  # trades not signalled: nothing changed for them since they were told
    untracked_symbols: list[str] = Field(default_factory=list)
    broker_calls: int


class BrokerSyncInput(Frozen):
    """Settings of the singleton BrokerSync."""

    poll_interval: timedelta = timedelta(seconds=15)
    closed_poll_interval: timedelta = timedelta(minutes=5)
    # After a failed poll: poll again this soon, so a recovery is seen within about this long.
    outage_poll_interval: timedelta = timedelta(seconds=1)
    clock_check_interval: timedelta = timedelta(minutes=1)
    listen: bool = True
    listen_for: timedelta = timedelta(minutes=30)
    max_polls: int | None = None  # tests: stop after this many polls

    def open_interval(self, calls_per_poll: int) -> timedelta:
        """Between polls while the market is open: poll_interval for a poll of two calls
        (positions, one page of open orders), stretched in proportion for a costlier one -
        a large account (orders come 500 a page) spends no more calls a minute on polls;
        the stream still brings every change at once."""
        return self.poll_interval * max(1.0, calls_per_poll / POLL_CALLS)


class BrokerSyncState(BaseModel):
    """Everything BrokerSync carries across continue-as-new."""

    polls: int = 0
    failed_polls: int = 0
    last_poll: SyncSummary | None = None
    last_poll_error: str | None = None
    listener_runs: int = 0
    events_forwarded: int = 0
    listener_error: str | None = None
    market_open: bool | None = None
    clock_checked_at: datetime | None = None
    stop_requested: bool = False


class BrokerSyncRun(BaseModel):
    """Workflow input: settings plus the state carried over."""

    settings: BrokerSyncInput = BrokerSyncInput()
    state: BrokerSyncState | None = None
