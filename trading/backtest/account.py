"""The simulated account of a backtest: cash, open positions, entries waiting for their bar.

Long only, cash only: an entry spends qty * fill price, an exit returns qty * exit price, and
equity is cash plus each position at its symbol's last close. Buying power is the cash not
already promised to entries waiting for their bar. The engine drives it bar by bar; this
module knows the fill model (trading/backtest/fills.py) and nothing about signals or risk.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal

from trading.backtest.fills import buy_fill, exit_on_bar, sell_fill
from trading.backtest.models import BacktestTrade, ExitReason
from trading.broker_models import Bar
from trading.risk import AccountView, OpenRisk

R_PLACES = Decimal("0.0001")
_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class PlannedEntry:
    """An approved entry waiting for its symbol's next bar (its fill bar)."""

    symbol: str
    strategy: str
    signal_at: datetime
    score: Decimal
    rank: int
    qty: Decimal
    reference: Decimal  # the price it was sized at (the trigger bar's close)
    stop: Decimal
    target: Decimal | None


@dataclass(slots=True)
class OpenPosition:
    """A filled entry: its plan, fill and the symbol's last close."""

    plan: PlannedEntry
    entry_time: datetime
    entry_price: Decimal
    mark: Decimal


class BacktestAccount:
    """Cash, positions and planned entries, with the fill model applied bar by bar."""

    def __init__(self, equity: Decimal, slippage_bps: Decimal) -> None:
        self.cash = equity
        self.slippage_bps = slippage_bps
        self.positions: dict[str, OpenPosition] = {}
        self.planned: dict[str, PlannedEntry] = {}
        self.trades: list[BacktestTrade] = []
        self.last_bar: dict[str, Bar] = {}

    def busy(self, symbol: str) -> bool:
        """Whether the symbol has a position or an entry waiting."""
        return symbol in self.positions or symbol in self.planned

    def positions_value(self) -> Decimal:
        """Open positions at their last close."""
        return sum((p.plan.qty * p.mark for p in self.positions.values()), _ZERO)

    def equity(self) -> Decimal:
        """Cash plus open positions at their last close."""
        return self.cash + self.positions_value()

    def unrealized(self) -> Decimal:
        """P&L of the open positions at their last close."""
        return sum(((p.mark - p.entry_price) * p.plan.qty for p in self.positions.values()), _ZERO)

    def view(self, last_equity: Decimal) -> AccountView:
        """What the risk engine sees: equity, the previous session's equity, buying power."""
        promised = sum((e.qty * e.reference for e in self.planned.values()), _ZERO)
        return AccountView(
            equity=self.equity(), last_equity=last_equity, buying_power=self.cash - promised
        )

    def open_risks(self) -> list[OpenRisk]:
        """Each position (at its last close) and each planned entry (at its reference price)."""
        risks = [
            OpenRisk(symbol=s, qty=p.plan.qty, price=p.mark, stop=p.plan.stop)
            for s, p in self.positions.items()
        ]
        risks += [
            OpenRisk(symbol=s, qty=e.qty, price=e.reference, stop=e.stop)
            for s, e in self.planned.items()
        ]
        return risks

    def plan(self, entry: PlannedEntry) -> None:
        """Queue an approved entry for its symbol's next bar."""
        self.planned[entry.symbol] = entry

    def on_bar(self, bar: Bar) -> None:
        """Fill a planned entry at this bar's open, then check the position's stop and target."""
        symbol = bar.symbol
        self.last_bar[symbol] = bar
        entry = self.planned.pop(symbol, None)
        if entry is not None:
            price = buy_fill(bar.open, self.slippage_bps)
            self.cash -= entry.qty * price
            self.positions[symbol] = OpenPosition(
                plan=entry, entry_time=bar.timestamp, entry_price=price, mark=bar.close
            )
        position = self.positions.get(symbol)
        if position is None:
            return
        exit_ = exit_on_bar(bar, position.plan.stop, position.plan.target, self.slippage_bps)
        if exit_ is None:
            position.mark = bar.close
        else:
            self._close(position, bar.timestamp, *exit_)

    def close_all(self) -> None:
        """End of data: close every position at its symbol's last close, minus slippage."""
        for symbol in sorted(self.positions):
            bar = self.last_bar[symbol]
            price = sell_fill(bar.close, self.slippage_bps)
            self._close(self.positions[symbol], bar.timestamp, price, ExitReason.END_OF_DATA)

    def _close(
        self, position: OpenPosition, when: datetime, price: Decimal, reason: ExitReason
    ) -> None:
        plan = position.plan
        self.cash += plan.qty * price
        pnl = (price - position.entry_price) * plan.qty
        at_risk = (position.entry_price - plan.stop) * plan.qty
        self.trades.append(
            BacktestTrade(
                symbol=plan.symbol,
                strategy=plan.strategy,
                signal_at=plan.signal_at,
                score=plan.score,
                rank=plan.rank,
                entry_time=position.entry_time,
                entry_price=position.entry_price,
                qty=plan.qty,
                stop=plan.stop,
                target=plan.target,
                exit_time=when,
                exit_price=price,
                exit_reason=reason,
                pnl=pnl,
                r_multiple=(pnl / at_risk).quantize(R_PLACES, ROUND_HALF_EVEN)
                if at_risk > 0
                else None,
            )
        )
        del self.positions[plan.symbol]
