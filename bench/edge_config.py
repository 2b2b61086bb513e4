"""The edge benchmark's sizes and periods (from the command line), in one frozen model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from bench.stack import symbols_for
from trading.trade_models import TradeSpec

Say = Callable[[str], None]
SCENARIOS = ("sustained", "mass", "idle", "crash", "outage", "adoption")
DEFAULT_IDLE_CHECK = TradeSpec.model_fields["idle_check_interval"].default


@dataclass(frozen=True)
class EdgeConfig:
    """Everything a run varies."""

    scenarios: tuple[str, ...] = SCENARIOS
    sustained_trades: int = 15
    sustained_minutes: float = 2.0
    cancels_per_min: float = 40.0
    mass_trades: int = 100
    mass_within_s: float = 60.0
    idle_counts: tuple[int, ...] = (10, 100, 1000)
    idle_check_interval: timedelta = DEFAULT_IDLE_CHECK
    idle_window_s: float | None = None  # None: one idle_check_interval (+ jitter, + margin)
    idle_probes: int = 5
    crash_trades: int = 20
    restart_delays: tuple[float, ...] = (0.0, 1.6)
    outage_s: float = 45.0
    outage_cancels: int = 3
    adoptions: int = 3
    baseline: bool = True
    baseline_period_s: float = 300.0
    baseline_idle_window_s: float | None = None  # None: one period + 20 s
    settle_s: float = 5.0  # rest after a setup (after a setup worker: until its calls age out)
    rescue_wait_s: float = 30.0
    quick: bool = False

    @property
    def idle_window(self) -> float:
        """The idle window: long enough that every trade's jittered self-check falls in it."""
        if self.idle_window_s is not None:
            return self.idle_window_s
        return self.idle_check_interval.total_seconds() * 1.1 + 30.0

    @property
    def baseline_cap_s(self) -> float:
        """How long a baseline recovery is watched: one period and a minute."""
        return self.baseline_period_s + 60.0

    @property
    def baseline_idle_window(self) -> float:
        if self.baseline_idle_window_s is not None:
            return self.baseline_idle_window_s
        return self.baseline_period_s + 20.0

    @staticmethod
    def symbols(count: int) -> list[str]:
        """`count` symbols the paper broker prices."""
        return symbols_for(count)
