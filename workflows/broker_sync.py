"""BrokerSyncWorkflow: the singleton that owns the trade_updates stream and the truth poll.

Its interface is contracts/broker_sync.py. One workflow id (`broker-sync`) makes it a singleton:
one stream connection per account, as Alpaca enforces, and broker calls per minute that do not
grow with the number of trades.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, CancelledError

with workflow.unsafe.imports_passed_through():
    from activities.broker import BrokerActivities
    from activities.broker_sync import BrokerSyncActivities
    from activities.notify import NotifyActivities
    from contracts import broker_sync
    from ops import metrics
    from trading.broker_sync_models import (
        BrokerSyncRun,
        BrokerSyncState,
        ListenRequest,
        SyncRequest,
        SyncSummary,
    )
    from trading.notify import Notice, UncoveredCheck
    from workflows.calls import call, failure
    from workflows.details import Details
    from workflows.policies import (
        BROKER_READ_ONCE,
        NOTIFY,
        WATCH_UNCOVERED,
        broker_snapshot,
        stream_listener,
    )

# Patch id: BrokerSyncs started before it sent no uncovered-position alerts.
NOTIFY_UNCOVERED = "notify-uncovered"


@workflow.defn(name=broker_sync.WORKFLOW.name)
class BrokerSyncWorkflow:
    """Runs the stream listener beside a periodic positions + open orders poll."""

    @workflow.init
    def __init__(self, run: BrokerSyncRun) -> None:
        self._settings = run.settings
        self._state = run.state or BrokerSyncState()
        self._poll_requested = False
        # Uncovered-position alerts: the first poll of a run looks (episodes left open by an
        # earlier run end there), later ones when a trade's view changed or a position is
        # untracked - every uncovered position is one of those.
        self._uncovered_open = True
        self._watching = False
        self._sending: set[str] = set()  # event keys of notices being sent
        self._background: set[asyncio.Task[None]] = set()

    @workflow.run
    async def run(self, run: BrokerSyncRun) -> BrokerSyncState:
        listener: asyncio.Task[None] | None = None
        if self._settings.listen:
            listener = asyncio.create_task(self._listen_forever())
        polls_this_run = 0
        while not self._state.stop_requested:
            self._poll_requested = False  # a request arriving during this poll asks for another
            await self._check_clock()
            await self._poll()
            self._poll_metrics()
            polls_this_run += 1
            self._describe()
            if (
                self._settings.max_polls is not None
                and self._state.polls >= self._settings.max_polls
            ):
                break
            if workflow.info().is_continue_as_new_suggested():
                break
            interval = self._interval()
            # wait_condition raises TimeoutError when the interval passes: that is the poll.
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: self._state.stop_requested or self._poll_requested,
                    timeout=interval,
                    timeout_summary="next broker-truth poll",
                )
        if listener is not None:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
        await workflow.wait_condition(workflow.all_handlers_finished)
        stop = self._state.stop_requested or (
            self._settings.max_polls is not None and self._state.polls >= self._settings.max_polls
        )
        if not stop:
            workflow.continue_as_new(BrokerSyncRun(settings=self._settings, state=self._state))
        self._describe()
        return self._state

    def _interval(self) -> timedelta:
        """Until the next poll: short while the broker fails (see its recovery at once)."""
        settings = self._settings
        if self._state.last_poll_error is not None:
            return settings.outage_poll_interval
        if self._state.market_open is False and self._state.listener_error is None:
            # Closed market: events carry the news; without the stream, poll at the open pace.
            return settings.closed_poll_interval
        calls = self._state.last_poll.broker_calls if self._state.last_poll else 2
        return settings.open_interval(calls)

    async def _listen_forever(self) -> None:
        while True:
            try:
                summary = await call(
                    BrokerSyncActivities.listen_trade_updates,
                    ListenRequest(listen_for=self._settings.listen_for),
                    stream_listener(self._settings.listen_for),
                    "hold the trade_updates stream and forward events to trades",
                )
            except ActivityError as err:
                if isinstance(err.cause, CancelledError):
                    raise asyncio.CancelledError() from None
                self._state.listener_error = failure(err)
                await workflow.sleep(timedelta(seconds=5), summary="pause before listening again")
                continue
            self._state.listener_runs += 1
            self._state.events_forwarded += summary.forwarded
            self._state.listener_error = None

    async def _check_clock(self) -> None:
        now = workflow.now()
        due = self._state.clock_checked_at is None or (
            now - self._state.clock_checked_at >= self._settings.clock_check_interval
        )
        if not due:
            return
        try:
            clock = await call(
                BrokerActivities.get_clock, None, BROKER_READ_ONCE, "broker clock: market open?"
            )
        except ActivityError as err:
            self._state.market_open = None  # unknown: keep polling at the market-hours pace
            self._state.last_poll_error = f"clock: {failure(err)}"
            return
        self._state.market_open = clock.is_open
        self._state.clock_checked_at = now

    async def _poll(self) -> None:
        try:
            summary = await call(
                BrokerSyncActivities.sync_positions,
                SyncRequest(),
                broker_snapshot(1),  # no retry backoff: the next poll comes in a second
                "poll positions and open orders; tell the trades whose view changed",
            )
        except ActivityError as err:
            # A failed snapshot tells nobody anything: unknown is never absent.
            self._state.failed_polls += 1
            self._state.last_poll_error = failure(err)
            return
        self._state.polls += 1
        self._state.last_poll = summary
        self._state.last_poll_error = None
        self._watch_uncovered(summary)

    def _poll_metrics(self) -> None:
        """Truth-poll age (replay-safe meter: recording adds no command)."""
        last = self._state.last_poll
        if last is not None:
            age = workflow.now() - last.observed_at
            metrics.truth_poll(age.total_seconds(), last.observed_at.timestamp())

    def _watch_uncovered(self, summary: SyncSummary) -> None:
        """After a poll that may have changed them, time the positions without a stop."""
        changed = summary.open_trades > summary.unchanged or bool(summary.untracked_symbols)
        if self._watching or not (changed or self._uncovered_open):
            return
        if not workflow.patched(NOTIFY_UNCOVERED):
            return
        self._watching = True
        self._spawn(self._watch(summary))

    async def _watch(self, summary: SyncSummary) -> None:
        try:
            watch = await call(
                NotifyActivities.watch_uncovered,
                UncoveredCheck(observed_at=summary.observed_at),
                WATCH_UNCOVERED,
                "positions without an active stop: time them, alert past the limit",
            )
        except ActivityError as err:
            workflow.logger.warning("uncovered positions not checked: %s", failure(err))
            return
        finally:
            self._watching = False
        self._uncovered_open = bool(watch.open)
        for notice in watch.due:
            if notice.event_key not in self._sending:
                self._sending.add(notice.event_key)
                self._spawn(self._send_notice(notice))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run beside the polls (held until done, as asyncio only keeps weak task refs)."""
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _send_notice(self, notice: Notice) -> None:
        """Send one notice (retried by its policy); a later poll finds it again if unsent."""
        try:
            await call(NotifyActivities.notify, notice, NOTIFY, f"notify people: {notice.title}")
        except ActivityError as err:
            workflow.logger.warning("notice %s not sent: %s", notice.event_key, failure(err))
        finally:
            self._sending.discard(notice.event_key)

    def _describe(self) -> None:
        state, last = self._state, self._state.last_poll
        lines = [
            f"market open: {state.market_open}",
            f"polls: {state.polls} ok, {state.failed_polls} failed",
            f"events forwarded: {state.events_forwarded} ({state.listener_runs} listener runs)",
        ]
        if last is not None:
            lines.append(
                f"last poll {last.observed_at:%H:%M:%S}: {last.positions} positions, "
                f"{last.open_orders} open orders, {last.open_trades} open trades, "
                f"{last.signalled} signalled, {last.unchanged} unchanged (not signalled)"
            )
            if last.untracked_symbols:
                lines.append(f"untracked positions: {', '.join(last.untracked_symbols)}")
        if state.last_poll_error:
            lines.append(f"last error: {state.last_poll_error}")
        if state.listener_error:
            lines.append(f"listener error: {state.listener_error}")
        Details("BrokerSync: trade_updates listener + broker-truth poll").bullets(lines).publish()

    @workflow.signal(name=broker_sync.POLL_NOW.name)
    def poll_now(self) -> None:
        """Poll at once instead of waiting for the interval."""
        self._poll_requested = True

    @workflow.signal(name=broker_sync.STOP.name)
    def stop(self) -> None:
        """Stop listening and polling; the workflow completes."""
        self._state.stop_requested = True

    @workflow.query(name=broker_sync.STATUS.name)
    def status(self) -> BrokerSyncState:
        """Counters, last poll and errors."""
        return self._state
