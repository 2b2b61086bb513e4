"""Seeded, reproducible price paths per symbol: a session-aware random walk or a CSV replay."""

from __future__ import annotations

import bisect
import hashlib
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
from pydantic import BaseModel

from paperbroker.calendar import MarketCalendar
from paperbroker.replay import ReplayPath
from paperbroker.ticks import CENT, ceil_price, floor_price, round_price, to_decimal

MINUTES_PER_DAY = 1440
SESSION_MINUTES_PER_YEAR = 252 * 390
EXTENDED_HOURS_FACTOR = 0.3
OVERNIGHT_FACTOR = 0.05
BASE_MINUTE_VOLUME = 3000


class SymbolParams(BaseModel):
    """Configuration of one symbol's price process."""

    symbol: str
    price: Decimal
    volatility: float = 0.3
    drift: float = 0.0
    spread_bps: float = 2.0


class Segment(BaseModel):
    """A piece of the path from `start` on: anchored log price and volatility scale."""

    start: datetime
    log_price: float
    vol_scale: float


@dataclass(frozen=True)
class Quote:
    """Best bid and offer at an instant."""

    time: datetime
    bid: Decimal
    ask: Decimal
    mid: Decimal


class SymbolPath:
    """Deterministic log-price path for one symbol, evaluated at any instant."""

    def __init__(
        self,
        params: SymbolParams,
        seed: int,
        origin: datetime,
        calendar: MarketCalendar,
        replay: ReplayPath | None = None,
    ) -> None:
        self.params = params
        self._calendar = calendar
        self._replay = replay
        digest = hashlib.sha256(f"{seed}:{params.symbol}".encode()).digest()
        self._key = int.from_bytes(digest[:8], "big")
        self._sigma = params.volatility / math.sqrt(SESSION_MINUTES_PER_YEAR)
        self._mu = params.drift / SESSION_MINUTES_PER_YEAR
        self._origin_block = int(origin.timestamp() // 60) // MINUTES_PER_DAY
        self._blocks: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._prefix: dict[int, float] = {self._origin_block: 0.0}
        # A random walk starts at the symbol's price; a replay is the recorded prices as they
        # are (never rescaled onto the seed price - a replayed 20.00 is 20.00).
        start = self.base_log(origin) if replay is not None else math.log(float(params.price))
        self.segments: list[Segment] = [Segment(start=origin, log_price=start, vol_scale=1.0)]
        self._starts = [origin.timestamp()]
        # The last quote and its instant: a manual clock asks for the same instant over and
        # over (every position valued at every submit). Cleared whenever the path changes.
        self._last_quote: Quote | None = None

    def restore_segments(self, segments: list[Segment]) -> None:
        """Replace the path's segments (used when restoring a snapshot)."""
        self.segments = sorted(segments, key=lambda s: s.start)
        self._starts = [s.start.timestamp() for s in self.segments]
        self._last_quote = None

    def set_price(self, when: datetime, price: Decimal) -> None:
        """Make the path pass through `price` at `when`, keeping the walk afterwards."""
        self._add_segment(
            when, math.log(float(price)), self._segment_at(when.timestamp()).vol_scale
        )

    def set_volatility(self, when: datetime, volatility: float) -> None:
        """Change the volatility from `when` on, continuing from the current price."""
        scale = volatility / self.params.volatility if self.params.volatility > 0 else 0.0
        self._add_segment(when, self.log_price(when), scale)

    def log_price(self, when: datetime) -> float:
        """Return the log mid price at `when`."""
        ts = when.timestamp()
        seg = self._segment_at(ts)
        return seg.log_price + seg.vol_scale * (
            self._base_at(ts) - self._base_at(seg.start.timestamp())
        )

    def mid(self, when: datetime) -> Decimal:
        """Return the mid price (which is also the trade price) at `when`, rounded to the tick."""
        value = Decimal(repr(math.exp(self.log_price(when))))
        return max(round_price(value), Decimal("0.0001"))

    def quote(self, when: datetime) -> Quote:
        """Return the bid/ask around the mid at `when`."""
        last = self._last_quote
        if last is not None and last.time == when:
            return last
        mid = self.mid(when)
        half = mid * Decimal(repr(self.params.spread_bps)) / Decimal(20000)
        bid = floor_price(mid - half)
        ask = ceil_price(mid + half)
        if ask - bid < CENT and mid >= 1:
            bid, ask = bid - CENT if bid == mid else bid, ask + CENT if ask == mid else ask
            if ask - bid < CENT:
                ask = bid + CENT
        self._last_quote = Quote(time=when, bid=max(bid, Decimal("0.0001")), ask=ask, mid=mid)
        return self._last_quote

    def minute_series(self, start: datetime, minutes: int) -> tuple[np.ndarray, np.ndarray]:
        """Return (prices at minute boundaries [minutes+1], volumes [minutes]) from `start`."""
        m0 = int(start.timestamp() // 60)
        boundary_ts = (np.arange(m0, m0 + minutes + 1, dtype=np.float64)) * 60.0
        base = np.array([self._base_minute(m0 + i) for i in range(minutes + 1)])
        seg_idx = np.searchsorted(np.array(self._starts), boundary_ts, side="right") - 1
        seg_idx = np.clip(seg_idx, 0, len(self.segments) - 1)
        logs = np.empty(minutes + 1)
        for idx in np.unique(seg_idx):
            seg = self.segments[int(idx)]
            mask = seg_idx == idx
            anchor = self._base_at(seg.start.timestamp())
            logs[mask] = seg.log_price + seg.vol_scale * (base[mask] - anchor)
        volumes = np.array([self._volume_minute(m0 + i) for i in range(minutes)])
        return np.exp(logs), volumes

    def anchors_between(self, start: datetime, end: datetime) -> list[datetime]:
        """Return segment start instants in (start, end): where the path may jump."""
        lo = bisect.bisect_right(self._starts, start.timestamp())
        hi = bisect.bisect_left(self._starts, end.timestamp())
        return [self.segments[i].start for i in range(lo, hi)]

    def base_log(self, when: datetime) -> float:
        """Return the unanchored base log path at `when` (walk or replay)."""
        return self._base_at(when.timestamp())

    def _add_segment(self, when: datetime, log_price: float, scale: float) -> None:
        ts = when.timestamp()
        i = bisect.bisect_right(self._starts, ts)
        del self.segments[i:]
        del self._starts[i:]
        if self._starts and self._starts[-1] == ts:
            self.segments.pop()
            self._starts.pop()
        self.segments.append(Segment(start=when, log_price=log_price, vol_scale=scale))
        self._starts.append(ts)
        self._last_quote = None

    def _segment_at(self, ts: float) -> Segment:
        i = bisect.bisect_right(self._starts, ts) - 1
        return self.segments[max(i, 0)]

    def _base_at(self, ts: float) -> float:
        if self._replay is not None:
            return self._replay.log_price_at(ts)
        m = math.floor(ts / 60)
        frac = ts / 60 - m
        lo = self._base_minute(m)
        if frac == 0:
            return lo
        return lo + frac * (self._base_minute(m + 1) - lo)

    def _base_minute(self, m: int) -> float:
        if self._replay is not None:
            return self._replay.log_price_at(m * 60.0)
        block, k = divmod(m, MINUTES_PER_DAY)
        return self._prefix_of(block) + float(self._block(block)[0][k])

    def _volume_minute(self, m: int) -> float:
        block, k = divmod(m, MINUTES_PER_DAY)
        if self._replay is not None:
            return self._replay.volume_at(m * 60.0)
        return float(self._block(block)[1][k])

    def _prefix_of(self, block: int) -> float:
        if block in self._prefix:
            return self._prefix[block]
        if block > self._origin_block:
            known = max(b for b in self._prefix if b < block)
            value = self._prefix[known]
            for b in range(known, block):
                value += float(self._block(b)[0][-1])
                self._prefix[b + 1] = value
        else:
            known = min(b for b in self._prefix if b > block)
            value = self._prefix[known]
            for b in range(known - 1, block - 1, -1):
                value -= float(self._block(b)[0][-1])
                self._prefix[b] = value
        return self._prefix[block]

    def _block(self, block: int) -> tuple[np.ndarray, np.ndarray]:
        cached = self._blocks.get(block)
        if cached is not None:
            return cached
        rng = np.random.default_rng([self._key, block + 10_000_000])
        shocks = rng.standard_normal(MINUTES_PER_DAY)
        noise = rng.random(MINUTES_PER_DAY)
        factors, regular = self._activity(block)
        steps = shocks * factors * self._sigma + regular * self._mu
        cumulative = np.concatenate(([0.0], np.cumsum(steps)))
        volumes = np.floor(BASE_MINUTE_VOLUME * factors * (0.4 + 1.2 * noise)) * (factors > 0.1)
        self._blocks[block] = (cumulative, volumes)
        return cumulative, volumes

    def _activity(self, block: int) -> tuple[np.ndarray, np.ndarray]:
        """Return per-minute volatility factors and the regular-session mask for a UTC day."""
        factors = np.full(MINUTES_PER_DAY, OVERNIGHT_FACTOR)
        regular = np.zeros(MINUTES_PER_DAY)
        day_start = datetime.fromtimestamp(block * MINUTES_PER_DAY * 60, UTC)
        first = (day_start - timedelta(days=1)).date()
        for session in self._calendar.sessions_between(first, day_start.date()):
            for lo, hi, value in (
                (session.pre_open, session.post_close, EXTENDED_HOURS_FACTOR),
                (session.open, session.close, 1.0),
            ):
                a = max(0, int((lo - day_start).total_seconds() // 60))
                b = min(MINUTES_PER_DAY, int((hi - day_start).total_seconds() // 60))
                if a < b:
                    factors[a:b] = value
                    if value == 1.0:
                        regular[a:b] = 1.0
        return factors, regular


class PriceEngine:
    """All symbols' paths; the single source of prices for fills and market data."""

    def __init__(
        self,
        symbols: list[SymbolParams],
        seed: int,
        origin: datetime,
        calendar: MarketCalendar,
        replays: dict[str, ReplayPath] | None = None,
    ) -> None:
        self.seed = seed
        self.origin = origin
        self.calendar = calendar
        self._replays = replays or {}
        self.paths: dict[str, SymbolPath] = {}
        for params in symbols:
            self.add_symbol(params)

    def add_symbol(self, params: SymbolParams) -> SymbolPath:
        """Start pricing a symbol."""
        path = SymbolPath(
            params, self.seed, self.origin, self.calendar, self._replays.get(params.symbol)
        )
        self.paths[params.symbol] = path
        return path

    def has(self, symbol: str) -> bool:
        """Return True if the symbol is priced."""
        return symbol in self.paths

    def path(self, symbol: str) -> SymbolPath:
        """Return the path of a priced symbol."""
        return self.paths[symbol]

    def quote(self, symbol: str, when: datetime) -> Quote:
        """Return the quote of `symbol` at `when`."""
        return self.paths[symbol].quote(when)

    def set_price(self, symbol: str, when: datetime, price: float | Decimal) -> None:
        """Force `symbol` to trade at `price` from `when` on."""
        self.paths[symbol].set_price(when, to_decimal(price))

    def segments(self) -> dict[str, list[Segment]]:
        """Return every symbol's segments for a snapshot."""
        return {symbol: list(path.segments) for symbol, path in self.paths.items()}
