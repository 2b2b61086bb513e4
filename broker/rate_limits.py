"""What the broker says about our request count: X-RateLimit-* headers and requests sent.

DeadlineAdapter (broker/alpaca.py) reports every request it sends and the rate-limit headers
of every answer here - headers only, never anything of the request. The metered gateway reads
the broker's latest count after each call, and how many requests the call really made.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from trading.broker_budget import BrokerLimitSeen


@dataclass
class RequestTally:
    """Requests one gateway call sent (its retries, pages and follow-up lookups included)."""

    sent: int = 0


class RateLimitObserver:
    """The broker's latest X-RateLimit-* answer, and per-call request tallies; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: BrokerLimitSeen | None = None
        self._calls = threading.local()
        self._requests_sent = 0

    @contextmanager
    def tallying(self, tally: RequestTally) -> Iterator[RequestTally]:
        """Count into `tally` the requests this thread sends inside the block."""
        self._calls.tally = tally
        try:
            yield tally
        finally:
            self._calls.tally = None

    def sent(self) -> None:
        """One request is about to go out (counted even if it never gets an answer)."""
        tally: RequestTally | None = getattr(self._calls, "tally", None)
        if tally is not None:
            tally.sent += 1
        with self._lock:
            self._requests_sent += 1

    @property
    def requests_sent(self) -> int:
        """Every request sent so far, tallied or not."""
        with self._lock:
            return self._requests_sent

    def answered(self, headers: Mapping[str, str]) -> None:
        """Keep the rate-limit headers of an answer, if it has any."""
        seen = BrokerLimitSeen.from_headers(headers, datetime.now(UTC))
        if seen is None:
            return
        with self._lock:
            if self._latest is None or seen.observed_at >= self._latest.observed_at:
                self._latest = seen

    @property
    def latest(self) -> BrokerLimitSeen | None:
        """The broker's newest count, or None before its first answer with the headers."""
        with self._lock:
            return self._latest
