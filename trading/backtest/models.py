"""The backtest's values: what a run is asked (BacktestConfig) and what it reports."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from pydantic import Field

from trading.models import Frozen
from trading.risk import RiskLimits
from trading.scoring import DEFAULT_SCORER


class BacktestConfig(Frozen):
    """How to run: starting equity, slippage, risk limits, scorer and the window traded.

    Signals dated before `start` only warm the strategies up; bars at or after `end` are not
    walked. `min_score` (when set) drops signals the scorer rates at or below it.
    """

    equity: Decimal = Field(default=Decimal(100_000), gt=0)
    slippage_bps: Decimal = Field(default=Decimal(0), ge=0, lt=10_000)
    limits: RiskLimits = Field(default_factory=RiskLimits)
    scorer: str = Field(default=DEFAULT_SCORER, min_length=1)
    min_score: Decimal | None = Field(default=None, ge=-1, le=1)
    liquidity_bars: int = Field(default=20, ge=1)  # bars summed into the ranker's dollar volume
    start: datetime | None = None
    end: datetime | None = None


class ExitReason(StrEnum):
    """Why a backtest trade ended."""

    STOP = "stop"
    TARGET = "target"
    END_OF_DATA = "end_of_data"


class BacktestTrade(Frozen):
    """One round trip: a long entry at the next bar's open and its exit."""

    symbol: str
    strategy: str
    signal_at: datetime  # when the trigger bar closed
    score: Decimal
    rank: int  # its place among the signals of its bar (1 = best)
    entry_time: datetime
    entry_price: Decimal
    qty: Decimal
    stop: Decimal
    target: Decimal | None
    exit_time: datetime
    exit_price: Decimal
    exit_reason: ExitReason
    pnl: Decimal
    r_multiple: Decimal | None  # pnl / (qty * (entry_price - stop))


class EquityPoint(Frozen):
    """Account equity (cash plus positions at the last close) at one moment."""

    at: datetime
    equity: Decimal


class BacktestSummary(Frozen):
    """The run's figures."""

    trades: int
    wins: int
    losses: int
    win_rate: Decimal  # wins / trades; 0 without trades
    total_pnl: Decimal
    start_equity: Decimal
    end_equity: Decimal
    return_pct: Decimal
    max_drawdown: Decimal  # dollars, peak to trough of the equity curve
    max_drawdown_pct: Decimal  # of the peak it fell from
    exposure_time: Decimal  # fraction of the walked bar times with a position open
    avg_capital_used: Decimal  # mean position value over the walked bar times, dollars
    avg_capital_used_pct: Decimal  # the same as a fraction of equity
    sharpe: Decimal  # daily returns, annualised by sqrt(252); 0 when undefined
    avg_r: Decimal | None
    sessions: int


class BacktestResult(Frozen):
    """Everything a run produced: trades, summary, the curves and why signals were skipped."""

    config: BacktestConfig
    strategies: list[str]
    symbols: list[str]
    bars_walked: int  # execution bars inside the window and the regular session
    bars_read: int  # bars the strategies read, warm-up included
    signals: int  # signals dated inside the window
    skipped: dict[str, int]  # signals not entered, by reason
    trades: list[BacktestTrade]
    summary: BacktestSummary
    equity_curve: list[EquityPoint]  # at every change of equity, plus the first and last bar
    daily_equity: list[EquityPoint]  # at the last bar of each session
