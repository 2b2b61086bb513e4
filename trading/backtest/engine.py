"""The backtest engine: walk time bar by bar across symbols, entering and exiting as live would.

1. The signal book (trading/backtest/signals.py): each strategy's `signals()` over each
   symbol's bars of its timeframe, once; each signal scored by the named scorer.
2. The walk: the execution bars (the finest timeframe among the strategies; intraday bars only
   inside the 09:30-16:00 New York session, and only inside the window) of every symbol,
   merged in time order (ties by symbol). At each new bar time, before its bars:
   - a new session: last_equity becomes the equity at the previous session's last bar, the
     one-entry-per-symbol-a-day set empties, and a system-guard pause ends (an operator would
     resume it; the guard counts closed trades from there);
   - the signals fired since the last step (`at` <= now) are ranked together
     (trading.ranker.rank) and taken best first: a symbol with a position or a waiting entry
     is skipped; `trading.risk.system_guard` may pause entries; `trading.risk.check_entry`
     (heat from the open positions and waiting entries, one signal per symbol a day, the daily
     loss from equity / last_equity) approves and sizes each, at the signal's entry price
     (the trigger bar's close; without one, the symbol's last close);
   then each bar fills its symbol's waiting entry at its open and checks the position's stop
   and target (the fill model: trading/backtest/fills.py).
3. After the last bar, open positions close at their last close; the figures
   (trading/backtest/metrics.py) come from the trades and the equity curve.

Deterministic: the same bars, strategies and config give the same result.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from trading.backtest.account import BacktestAccount, PlannedEntry
from trading.backtest.metrics import summarize
from trading.backtest.models import BacktestConfig, BacktestResult, EquityPoint
from trading.backtest.signals import BookedSignal, book_signals
from trading.broker_models import Bar
from trading.ranker import rank
from trading.risk import EntryProposal, GuardInput, check_entry, system_guard
from trading.scoring import Scorer
from trading.strategies.base import Strategy, timeframe_delta
from trading.strategies.sessions import REGULAR_CLOSE, REGULAR_OPEN, NewYorkDays

_ZERO = Decimal(0)
ONE_DAY = timedelta(days=1)


def execution_timeframe(strategies: Sequence[Strategy]) -> str:
    """The finest timeframe the strategies read: fills and exits are simulated on it."""
    if not strategies:
        raise ValueError("a backtest needs at least one strategy")
    return min((s.timeframe for s in strategies), key=timeframe_delta)


class _Walk:
    """The walk's state between bars: the account, the session and the entry decisions."""

    def __init__(self, config: BacktestConfig, signals: list[BookedSignal]) -> None:
        self.config = config
        self.account = BacktestAccount(config.equity, config.slippage_bps)
        self.signals = signals
        self.next_signal = 0
        self.skipped: Counter[str] = Counter()
        self.last_equity = config.equity
        self.entered_today: set[str] = set()
        self.closed_since_resume: list[Decimal] = []
        self.paused: str | None = None
        self.curve: list[EquityPoint] = []
        self.daily: list[EquityPoint] = []
        self.steps = 0
        self.steps_invested = 0
        self.capital_used = _ZERO
        self.capital_used_pct = _ZERO
        self.trades_seen = 0

    # --- time -------------------------------------------------------------------------------
    def new_session(self, previous_step: datetime | None) -> None:
        """The first bar of a session: roll last_equity, the day's entries and a guard pause."""
        if previous_step is not None:
            equity = self.account.equity()
            self.daily.append(EquityPoint(at=previous_step, equity=equity))
            self.last_equity = equity
        self.entered_today.clear()
        if self.paused is not None:
            self.paused = None
            self.closed_since_resume = []

    def end_step(self, at: datetime) -> None:
        """After every bar of one time: count exposure, record equity when it changed."""
        self.steps += 1
        account = self.account
        for trade in account.trades[self.trades_seen :]:
            self.closed_since_resume.append(trade.pnl)
        self.trades_seen = len(account.trades)
        invested = account.positions_value() if account.positions else _ZERO
        equity = account.cash + invested
        if account.positions:
            self.steps_invested += 1
            self.capital_used += invested
            if equity > 0:
                self.capital_used_pct += invested / equity
        if not self.curve or self.curve[-1].equity != equity:
            self.curve.append(EquityPoint(at=at, equity=equity))

    # --- entries ----------------------------------------------------------------------------
    def decide(self, now: datetime) -> None:
        """Rank the signals fired by `now` and plan the entries risk approves, best first."""
        first = self.next_signal
        last = first
        while last < len(self.signals) and self.signals[last].at <= now:
            last += 1
        if last == first:
            return
        group = {s.key: s for s in self.signals[first:last]}
        self.next_signal = last
        account = self.account
        if self.paused is None and self.closed_since_resume:
            self.paused = system_guard(
                GuardInput(
                    closed_pnls=list(self.closed_since_resume),
                    unrealized=account.unrealized(),
                    equity=account.equity(),
                ),
                self.config.limits,
            )
        for ranked in rank([s.rank_input for s in group.values()]):
            signal = group[ranked.item.signal_key]
            candidate = signal.candidate
            symbol = candidate.symbol
            if account.busy(symbol):
                self.skipped["position_open"] += 1
                continue
            if self.paused is not None:
                self.skipped["system_guard"] += 1
                continue
            bar = account.last_bar.get(symbol)
            reference = candidate.entry or (bar.close if bar is not None else None)
            if reference is None or reference <= 0:
                self.skipped["no_price"] += 1
                continue
            verdict = check_entry(
                EntryProposal(
                    symbol=symbol,
                    entry=reference,
                    stop=candidate.stop,
                    confidence=candidate.confidence,
                ),
                account.view(self.last_equity),
                account.open_risks(),
                self.config.limits,
                signalled_today=symbol in self.entered_today,
            )
            if not verdict.approved or verdict.stop is None:
                self.skipped[str(verdict.reason)] += 1
                continue
            account.plan(
                PlannedEntry(
                    symbol=symbol,
                    strategy=signal.strategy,
                    signal_at=signal.at,
                    score=signal.score,
                    rank=ranked.rank,
                    qty=verdict.qty,
                    reference=reference,
                    stop=verdict.stop,
                    target=candidate.target,
                )
            )
            self.entered_today.add(symbol)


def run_backtest(
    strategies: Sequence[Strategy],
    bars: Mapping[str, Mapping[str, Sequence[Bar]]],
    scorer: Scorer,
    config: BacktestConfig,
) -> BacktestResult:
    """Backtest `strategies` over `bars[timeframe][symbol]` (each oldest first)."""
    book = book_signals(
        strategies,
        bars,
        scorer,
        start=config.start,
        end=config.end,
        min_score=config.min_score,
        liquidity_bars=config.liquidity_bars,
    )
    timeframe = execution_timeframe(strategies)
    intraday = timeframe_delta(timeframe) < ONE_DAY
    series = bars.get(timeframe, {})
    walk = _Walk(config, book.signals)
    days = NewYorkDays()
    start, end = config.start, config.end
    session_day = bounds_day = None
    opens = closes = None
    current: datetime | None = None
    walked = 0
    merged = heapq.merge(*(series[s] for s in sorted(series)), key=lambda b: b.timestamp)
    for bar in merged:
        at = bar.timestamp
        if start is not None and at < start:
            continue
        if end is not None and at >= end:
            break
        if at != current:
            day = days.day_of(at)
            if intraday:
                if day is not bounds_day:
                    bounds_day = day
                    opens, closes = day.at(REGULAR_OPEN), day.at(REGULAR_CLOSE)
                if opens is None or closes is None or not opens <= at < closes:
                    continue  # outside the regular session: not walked
            if current is not None:
                walk.end_step(current)
            if day is not session_day:
                walk.new_session(current)
                session_day = day
            walk.decide(at)
            current = at
        walked += 1
        walk.account.on_bar(bar)
    if current is not None:
        walk.end_step(current)
        walk.daily.append(EquityPoint(at=current, equity=walk.account.equity()))
    walk.skipped["no_next_bar"] += sum(1 for _ in walk.account.planned)
    walk.account.planned.clear()
    walk.account.close_all()
    if current is not None and walk.account.trades[walk.trades_seen :]:
        final = walk.account.equity()
        walk.curve.append(EquityPoint(at=current, equity=final))
        walk.daily[-1] = EquityPoint(at=current, equity=final)
    walk.skipped["not_reached"] += len(book.signals) - walk.next_signal
    skipped = Counter(book.skipped)
    skipped.update(walk.skipped)
    trades = walk.account.trades
    return BacktestResult(
        config=config,
        strategies=[s.name for s in strategies],
        symbols=sorted({sym for timeframe_bars in bars.values() for sym in timeframe_bars}),
        bars_walked=walked,
        bars_read=book.bars_read,
        signals=len(book.signals) + sum(book.skipped.values()) - book.skipped["undated"],
        skipped={reason: count for reason, count in sorted(skipped.items()) if count},
        trades=trades,
        summary=summarize(
            trades,
            config.equity,
            walk.curve,
            walk.daily,
            walk.steps,
            walk.steps_invested,
            walk.capital_used,
            walk.capital_used_pct,
        ),
        equity_curve=walk.curve,
        daily_equity=walk.daily,
    )
