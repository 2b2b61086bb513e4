"""Per-key request budget per minute with Alpaca's X-RateLimit headers."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass


@dataclass
class Window:
    """Requests counted in the current one-minute window of one key."""

    started: float
    count: int = 0


class RateLimiter:
    """Fixed one-minute windows per API key; limit 0 disables limiting."""

    def __init__(self, limit: int, window_s: float = 60.0) -> None:
        self.limit = limit
        self.window_s = window_s  # Alpaca's is one minute; tests shorten it
        self._windows: dict[str, Window] = {}

    def hit(self, key: str) -> tuple[bool, dict[str, str]]:
        """Count a request; return (allowed, headers to send)."""
        now = time.time()
        window = self._windows.get(key)
        if window is None or now - window.started >= self.window_s:
            window = Window(started=now)
            self._windows[key] = window
        limit = self.limit if self.limit > 0 else 1_000_000_000
        window.count += 1
        allowed = window.count <= limit
        headers = {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(max(0, limit - window.count)),
            "X-RateLimit-Reset": str(math.ceil(window.started + self.window_s)),
        }
        return allowed, headers

    def reset(self) -> None:
        """Forget all windows."""
        self._windows.clear()
