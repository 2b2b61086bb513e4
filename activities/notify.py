"""NotifyActivities: alerts to people from the workflows, once per event key.

`notify` sends through ops/notifier.py (the ledger's send-once record, then the webhook);
a webhook that is down fails the attempt with a retryable error and Temporal retries with
backoff (workflows/policies.py NOTIFY), a refused one (4xx) fails for good. With no webhook
configured the notice is recorded and the activity succeeds: alerts never fail a workflow.

`watch_uncovered` keeps the uncovered-position episodes after each BrokerSync poll that may
have changed them and returns the notices now due.
"""

from __future__ import annotations

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from ledger.notifications import Notifications
from ops.notifier import AlertTarget, WebhookFailed, send_notice
from trading.notify import (
    UNCOVERED_ALERT_AFTER,
    Notice,
    NoticeReceipt,
    UncoveredCheck,
    UncoveredWatch,
    track_uncovered,
    uncovered_notice,
)


class NotifyActivities:
    """Notices to people; built with the ledger pool and the webhook (None: record only)."""

    def __init__(self, pool: asyncpg.Pool, target: AlertTarget | None) -> None:
        self._pool = pool
        self._target = target
        self._notifications = Notifications(pool)

    @activity.defn
    async def notify(self, notice: Notice) -> NoticeReceipt:
        """Send the notice unless its event key went out before (then: duplicate)."""
        try:
            return await send_notice(self._pool, self._target, notice)
        except WebhookFailed as exc:
            raise ApplicationError(
                str(exc), type=exc.kind, non_retryable=not exc.retryable
            ) from None

    @activity.defn
    async def watch_uncovered(self, check: UncoveredCheck) -> UncoveredWatch:
        """Update the uncovered episodes from the stored poll; the notices due and not yet sent.

        An episode starts at the first poll that shows a long position without an active stop
        covering it and ends at the first that shows it covered (or gone); its alert is due
        once it has lasted the target's `uncovered_after`, keyed by symbol and start minute.
        """
        stored_at, uncovered = await self._notifications.uncovered_now()
        if stored_at is None:
            return UncoveredWatch()  # no poll stored yet
        observed_at = max(stored_at, check.observed_at)
        alert_after = self._target.uncovered_after if self._target else UNCOVERED_ALERT_AFTER
        plan = track_uncovered(
            await self._notifications.episodes(), uncovered, observed_at, alert_after
        )
        await self._notifications.record_episodes(plan.open, plan.ended, observed_at)
        notices = [uncovered_notice(episode, observed_at) for episode in plan.due]
        sent = await self._notifications.sent_keys(n.event_key for n in notices)
        return UncoveredWatch(open=plan.open, due=[n for n in notices if n.event_key not in sent])
