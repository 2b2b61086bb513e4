"""Strategies: scan daily bars into signal candidates (pure; no I/O, safe in workflows).

A strategy looks at bars per symbol and proposes candidates; the market loop stores each as a
PENDING signal under `signal_key(strategy, symbol, session_date)`, so a second scan of the same
session adds nothing, and the score drain decides how good each one is.
"""

from __future__ import annotations

from trading.strategies.base import (
    SignalCandidate,
    Strategy,
    StrategyRegistry,
    UnknownStrategy,
    signal_key,
)
from trading.strategies.momentum import MomentumStrategy

DEFAULT_STRATEGY = MomentumStrategy.name

__all__ = [
    "DEFAULT_STRATEGY",
    "MomentumStrategy",
    "SignalCandidate",
    "Strategy",
    "StrategyRegistry",
    "UnknownStrategy",
    "builtin_strategies",
    "signal_key",
]


def builtin_strategies() -> StrategyRegistry:
    """A registry of the strategies that ship with the system (add new ones here)."""
    return StrategyRegistry([MomentumStrategy()])
