"""The run's figures from its trades and equity curve: win rate, P&L, drawdown, exposure, Sharpe.

- Win rate: trades with P&L > 0 over all trades (0 without trades).
- Max drawdown: the largest fall of the equity curve from a running peak, in dollars and as
  a fraction of that peak.
- Exposure: the fraction of walked bar times with at least one position open, and the mean
  value of the open positions over those times (dollars and fraction of equity).
- Sharpe: the session-close equities' daily returns (the first against the starting equity),
  mean over sample standard deviation times sqrt(252); 0 with fewer than two returns or no
  variation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import ROUND_HALF_EVEN, Decimal

from trading.backtest.models import BacktestSummary, BacktestTrade, EquityPoint

TRADING_DAYS_PER_YEAR = 252
RATIO_PLACES = Decimal("0.0001")
MONEY_PLACES = Decimal("0.01")
_ZERO = Decimal(0)


def _ratio(value: Decimal) -> Decimal:
    return value.quantize(RATIO_PLACES, rounding=ROUND_HALF_EVEN)


def _money(value: Decimal) -> Decimal:
    return value.quantize(MONEY_PLACES, rounding=ROUND_HALF_EVEN)


def max_drawdown(curve: Sequence[EquityPoint]) -> tuple[Decimal, Decimal]:
    """The deepest peak-to-trough fall of `curve`: (dollars, fraction of the peak)."""
    peak: Decimal | None = None
    worst = worst_pct = _ZERO
    for point in curve:
        if peak is None or point.equity > peak:
            peak = point.equity
        fall = peak - point.equity
        if fall > worst:
            worst = fall
        if peak > 0 and fall / peak > worst_pct:
            worst_pct = fall / peak
    return worst, worst_pct


def daily_returns(start_equity: Decimal, closes: Sequence[Decimal]) -> list[float]:
    """Each session's return on the previous session's close (the first on `start_equity`)."""
    returns: list[float] = []
    previous = start_equity
    for close in closes:
        returns.append(float(close / previous - 1) if previous > 0 else 0.0)
        previous = close
    return returns


def sharpe(returns: Sequence[float]) -> Decimal:
    """Annualised Sharpe ratio of daily returns (risk-free 0); 0 when it is undefined."""
    if len(returns) < 2:
        return _ZERO
    mean = sum(returns) / len(returns)
    variance = sum((r - mean) ** 2 for r in returns) / (len(returns) - 1)
    if variance <= 0:
        return _ZERO
    return _ratio(Decimal(repr(mean / math.sqrt(variance) * math.sqrt(TRADING_DAYS_PER_YEAR))))


def summarize(
    trades: Sequence[BacktestTrade],
    start_equity: Decimal,
    curve: Sequence[EquityPoint],
    daily: Sequence[EquityPoint],
    steps: int,
    steps_invested: int,
    capital_used: Decimal,
    capital_used_pct: Decimal,
) -> BacktestSummary:
    """The summary; `capital_used*` are sums over the `steps` walked bar times."""
    wins = sum(1 for t in trades if t.pnl > 0)
    total = sum((t.pnl for t in trades), _ZERO)
    end_equity = curve[-1].equity if curve else start_equity
    fall, fall_pct = max_drawdown(curve)
    rs = [t.r_multiple for t in trades if t.r_multiple is not None]
    return BacktestSummary(
        trades=len(trades),
        wins=wins,
        losses=sum(1 for t in trades if t.pnl < 0),
        win_rate=_ratio(Decimal(wins) / len(trades)) if trades else _ZERO,
        total_pnl=_money(total),
        start_equity=_money(start_equity),
        end_equity=_money(end_equity),
        return_pct=_ratio(end_equity / start_equity - 1),
        max_drawdown=_money(fall),
        max_drawdown_pct=_ratio(fall_pct),
        exposure_time=_ratio(Decimal(steps_invested) / steps) if steps else _ZERO,
        avg_capital_used=_money(capital_used / steps) if steps else _ZERO,
        avg_capital_used_pct=_ratio(capital_used_pct / steps) if steps else _ZERO,
        sharpe=sharpe(daily_returns(start_equity, [p.equity for p in daily])),
        avg_r=_ratio(sum(rs, _ZERO) / len(rs)) if rs else None,
        sessions=len(daily),
    )
