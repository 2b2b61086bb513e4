"""Named activity timeouts and retry policies used by every workflow."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from broker.errors import NON_RETRYABLE_TYPES


@dataclass(frozen=True)
class ActivityPolicy:
    """A start-to-close deadline plus the retry policy (and heartbeat) that go with it."""

    start_to_close: timedelta
    retry: RetryPolicy
    heartbeat: timedelta | None = None


LEDGER_WRITE = ActivityPolicy(
    start_to_close=timedelta(seconds=10),
    retry=RetryPolicy(
        initial_interval=timedelta(milliseconds=200),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=10),
        maximum_attempts=10,
    ),
)
LEDGER_READ = LEDGER_WRITE

# Broker reads: short deadline (HTTP timeouts are 3 s connect + 7 s read), a handful of
# retries with backoff; non-retryable failures are the ones no retry can fix.
BROKER_READ = ActivityPolicy(
    start_to_close=timedelta(seconds=12),
    retry=RetryPolicy(
        initial_interval=timedelta(seconds=1),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=15),
        maximum_attempts=5,
        non_retryable_error_types=list(NON_RETRYABLE_TYPES),
    ),
)
# Submits may post, time out and then look the order up by client_order_id: two calls.
BROKER_SUBMIT = ActivityPolicy(
    start_to_close=timedelta(seconds=25),
    retry=RetryPolicy(
        initial_interval=timedelta(seconds=1),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=15),
        maximum_attempts=6,
        non_retryable_error_types=list(NON_RETRYABLE_TYPES),
    ),
)
# Cancels and replaces: idempotent at the gateway, same budget as reads.
BROKER_WRITE = ActivityPolicy(
    start_to_close=timedelta(seconds=25),
    retry=BROKER_READ.retry,
)
# The trade guard signals or starts a trade workflow: a little longer than a broker read.
GUARD_CALL = ActivityPolicy(start_to_close=timedelta(seconds=20), retry=BROKER_READ.retry)


def broker_snapshot(attempts: int) -> ActivityPolicy:
    """A whole broker-truth snapshot (account, positions, orders): three reads' deadline."""
    return ActivityPolicy(
        start_to_close=BROKER_READ.start_to_close * 3,
        retry=replace(BROKER_READ.retry, maximum_attempts=attempts),
    )
