"""Replay recorded bars from a CSV as a continuous price path."""

from __future__ import annotations

import bisect
import csv
import itertools
import math
from collections import defaultdict
from datetime import datetime
from pathlib import Path


class ReplayPath:
    """A symbol's bars turned into a piecewise-linear path: open, low/high, close per bar."""

    def __init__(
        self, bars: list[tuple[float, float, float, float, float, float]], bar_seconds: int
    ) -> None:
        self._times: list[float] = []
        self._logs: list[float] = []
        self._bar_starts = [b[0] for b in bars]
        self._volumes = [b[5] for b in bars]
        self._bar_seconds = bar_seconds
        for start, o, h, low, c, _v in bars:
            first, second = (low, h) if abs(o - low) <= abs(o - h) else (h, low)
            for offset, price in ((0.0, o), (1 / 3, first), (2 / 3, second), (0.999, c)):
                self._times.append(start + offset * bar_seconds)
                self._logs.append(math.log(price))

    def log_price_at(self, ts: float) -> float:
        """Return the interpolated log price at epoch second `ts` (flat outside the data)."""
        i = bisect.bisect_right(self._times, ts)
        if i == 0:
            return self._logs[0]
        if i >= len(self._times):
            return self._logs[-1]
        t0, t1 = self._times[i - 1], self._times[i]
        w = (ts - t0) / (t1 - t0) if t1 > t0 else 0.0
        return self._logs[i - 1] + w * (self._logs[i] - self._logs[i - 1])

    def volume_at(self, ts: float) -> float:
        """Return the volume of one minute inside the bar containing `ts`."""
        i = bisect.bisect_right(self._bar_starts, ts) - 1
        if i < 0 or ts >= self._bar_starts[i] + self._bar_seconds:
            return 0.0
        return self._volumes[i] * 60.0 / self._bar_seconds


def load_replay_csv(path: Path) -> dict[str, ReplayPath]:
    """Load `symbol,timestamp,open,high,low,close,volume` rows into one path per symbol."""
    rows: dict[str, list[tuple[float, float, float, float, float, float]]] = defaultdict(list)
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            ts = datetime.fromisoformat(row["timestamp"].replace("Z", "+00:00")).timestamp()
            rows[row["symbol"].upper()].append(
                (
                    ts,
                    float(row["open"]),
                    float(row["high"]),
                    float(row["low"]),
                    float(row["close"]),
                    float(row.get("volume") or 0),
                )
            )
    out: dict[str, ReplayPath] = {}
    for symbol, bars in rows.items():
        bars.sort()
        step = int(min((b[0] - a[0] for a, b in itertools.pairwise(bars)), default=60))
        out[symbol] = ReplayPath(bars, max(step, 60))
    return out
