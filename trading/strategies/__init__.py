"""Strategies: turn bars into signal candidates (pure; no I/O, safe in workflows).

A strategy walks bars per symbol and proposes candidates; the market loop stores each as a
PENDING signal under `signal_key(strategy, symbol, session_date)`, so a second scan of the same
session adds nothing, and the score drain decides how good each one is. The backtest calls the
same `signals` over history.
"""

from __future__ import annotations

from pydantic import Field

from trading.models import Frozen
from trading.strategies.base import (
    SignalCandidate,
    Strategy,
    StrategyRegistry,
    UnknownStrategy,
    closed_bars,
    scan_with_signals,
    signal_key,
    timeframe_delta,
)
from trading.strategies.momentum import MomentumConfig, MomentumStrategy
from trading.strategies.orb import OrbConfig, OrbStrategy
from trading.strategies.pullback import PullbackConfig, PullbackStrategy

DEFAULT_STRATEGY = MomentumStrategy.name

__all__ = [
    "DEFAULT_STRATEGY",
    "MomentumConfig",
    "MomentumStrategy",
    "OrbConfig",
    "OrbStrategy",
    "PullbackConfig",
    "PullbackStrategy",
    "SignalCandidate",
    "Strategy",
    "StrategyConfigs",
    "StrategyRegistry",
    "UnknownStrategy",
    "builtin_strategies",
    "closed_bars",
    "scan_with_signals",
    "signal_key",
    "timeframe_delta",
]


class StrategyConfigs(Frozen):
    """The parameters of every built-in strategy, by strategy name."""

    orb: OrbConfig = Field(default_factory=OrbConfig)
    trend_pullback: PullbackConfig = Field(default_factory=PullbackConfig)
    momentum: MomentumConfig = Field(default_factory=MomentumConfig)


def builtin_strategies(configs: StrategyConfigs | None = None) -> StrategyRegistry:
    """A registry of the strategies that ship with the system (add new ones here)."""
    chosen = configs if configs is not None else StrategyConfigs()
    return StrategyRegistry(
        [
            MomentumStrategy(chosen.momentum),
            OrbStrategy(chosen.orb),
            PullbackStrategy(chosen.trend_pullback),
        ]
    )
