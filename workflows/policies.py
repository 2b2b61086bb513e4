"""Every activity timeout and retry policy the workflows use, by name."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from broker.errors import NON_RETRYABLE_TYPES
    from trading.scoring import UnknownScorer


@dataclass(frozen=True)
class ActivityPolicy:
    """A start-to-close deadline plus the retry policy (and heartbeat) that go with it."""

    start_to_close: timedelta
    retry: RetryPolicy
    heartbeat: timedelta | None = None


def _backoff(
    initial: timedelta,
    maximum: timedelta,
    attempts: int | None,
    non_retryable: list[str] | None = None,
) -> RetryPolicy:
    """Exponential backoff (x2) from `initial` up to `maximum`; None attempts: no cap."""
    return RetryPolicy(
        initial_interval=initial,
        backoff_coefficient=2.0,
        maximum_interval=maximum,
        maximum_attempts=attempts or 0,
        non_retryable_error_types=non_retryable,
    )


_BROKER_RETRY = _backoff(timedelta(seconds=1), timedelta(seconds=15), 5, list(NON_RETRYABLE_TYPES))

LEDGER_WRITE = ActivityPolicy(
    start_to_close=timedelta(seconds=10),
    retry=_backoff(timedelta(milliseconds=200), timedelta(seconds=10), 10),
)
LEDGER_READ = LEDGER_WRITE

# Broker reads: short deadline (HTTP timeouts are 3 s connect + 7 s read), a handful of
# retries with backoff; non-retryable failures are the ones no retry can fix.
BROKER_READ = ActivityPolicy(start_to_close=timedelta(seconds=12), retry=_BROKER_RETRY)
# One try: for loops that ask again soon anyway (BrokerSync during an outage), where a retry
# backoff would only sleep past the broker's recovery.
BROKER_READ_ONCE = replace(BROKER_READ, retry=replace(_BROKER_RETRY, maximum_attempts=1))
# Submits may post, time out and then look the order up by client_order_id: two calls.
BROKER_SUBMIT = ActivityPolicy(
    start_to_close=timedelta(seconds=25), retry=replace(_BROKER_RETRY, maximum_attempts=6)
)
# Cancels and replaces: idempotent at the gateway, same budget as reads.
BROKER_WRITE = ActivityPolicy(start_to_close=timedelta(seconds=25), retry=_BROKER_RETRY)
# A rescue retries in the workflow (with telemetry and backoff between attempts), so each
# attempt's activity gives up sooner than a normal submit.
RESCUE_SUBMIT = replace(BROKER_SUBMIT, retry=replace(BROKER_SUBMIT.retry, maximum_attempts=2))
# A trade reading BrokerSync's stored snapshot (a local activity): quick, few tries; on
# failure the trade asks the broker itself, as it would with no snapshot.
STORED_VIEW = ActivityPolicy(
    start_to_close=timedelta(seconds=3),
    retry=_backoff(timedelta(milliseconds=100), timedelta(seconds=1), 2),
)
# Reaching a trade workflow through the Temporal client (signal, start, start-or-signal).
TRADE_LINK = ActivityPolicy(start_to_close=timedelta(seconds=20), retry=_BROKER_RETRY)
# An add-on update waits for its market buy to fill and its stop to be resized (the update id
# is the signal key, so a retry never buys twice).
TRADE_UPDATE = ActivityPolicy(
    start_to_close=timedelta(minutes=2), retry=replace(_BROKER_RETRY, maximum_attempts=3)
)
# Reading trading control for the entry gate: a few tries, then the gate holds entries.
CONTROL_READ = ActivityPolicy(
    start_to_close=timedelta(seconds=15), retry=replace(_BROKER_RETRY, maximum_attempts=3)
)
# A score batch is one claim, up to 1,000 scorer calls and as many single-row writes; it
# heartbeats per signal. The deadline stays well inside the default 120 s lease so a batch's
# signals are never handed to another drain while it still scores them.
SCORE_BATCH = ActivityPolicy(
    start_to_close=timedelta(seconds=60),
    heartbeat=timedelta(seconds=20),
    retry=_backoff(timedelta(milliseconds=500), timedelta(seconds=10), 5, [UnknownScorer.__name__]),
)


def broker_snapshot(attempts: int) -> ActivityPolicy:
    """A whole broker-truth snapshot (account, positions, orders): three reads' deadline."""
    return ActivityPolicy(
        start_to_close=BROKER_READ.start_to_close * 3,
        retry=replace(BROKER_READ.retry, maximum_attempts=attempts),
    )


def stream_listener(listen_for: timedelta) -> ActivityPolicy:
    """The trade_updates listener: holds the stream `listen_for`, heartbeats, retried forever.

    A worker that dies is noticed within the heartbeat timeout and the listener restarts on
    another (or the restarted) worker; the SDK sends heartbeats at most every 0.8 x timeout,
    so 10 s leaves room for a loaded worker. The events missed meanwhile are covered by the
    poll the new listener asks for, and by a starting worker's own look at the broker.
    """
    return ActivityPolicy(
        start_to_close=listen_for + timedelta(minutes=1),
        heartbeat=timedelta(seconds=10),
        retry=_backoff(timedelta(seconds=1), timedelta(seconds=30), None),
    )


# Notices to people (activities/notify.py): a webhook down for a while is retried for about ten
# minutes (2 s doubling to 2 min); the deadline covers the POST's own 10 s timeout plus the
# ledger claim. A webhook that refuses the message (4xx) is not asked again.
WEBHOOK_REJECTED = "WebhookRejected"
NOTIFY = ActivityPolicy(
    start_to_close=timedelta(seconds=30),
    retry=RetryPolicy(
        initial_interval=timedelta(seconds=2),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(minutes=2),
        maximum_attempts=10,
        non_retryable_error_types=[WEBHOOK_REJECTED],
    ),
)
# The uncovered-position episode bookkeeping is ledger work only.
WATCH_UNCOVERED = LEDGER_WRITE
