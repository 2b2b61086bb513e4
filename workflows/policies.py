"""Named activity timeouts and retry policies used by every workflow."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from temporalio.common import RetryPolicy


@dataclass(frozen=True)
class ActivityPolicy:
    """A start-to-close deadline plus the retry policy that goes with it."""

    start_to_close: timedelta
    retry: RetryPolicy


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
