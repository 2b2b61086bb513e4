"""Backtests: the live rules (strategies, scorer, ranker, risk engine) replayed over bars (pure).

`run_backtest(strategies, bars, scorer, config)` walks the bars and returns a BacktestResult;
the fill model is in `fills`, the figures in `metrics`, the chart and HTML report in `report`.
"""

from __future__ import annotations

from trading.backtest.engine import execution_timeframe, run_backtest
from trading.backtest.models import (
    BacktestConfig,
    BacktestResult,
    BacktestSummary,
    BacktestTrade,
    EquityPoint,
    ExitReason,
)

__all__ = [
    "BacktestConfig",
    "BacktestResult",
    "BacktestSummary",
    "BacktestTrade",
    "EquityPoint",
    "ExitReason",
    "execution_timeframe",
    "run_backtest",
]
