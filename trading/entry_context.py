"""What the market loop reads from the ledger to decide entries, in one call (values only).

The broker says what is held; the ledger says whose it is (a trade of ours, or an external
position a protect-only guard watches), which symbols were already entered today, the
P&L of the trades closed since entries last resumed (the system guard's input), and the open
option trades, whose max loss the heat counts (the stock view of the broker leaves options out).
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import AwareDatetime, Field

from trading.ledger_records import TradeOrigin
from trading.models import Frozen
from trading.risk import DefinedRisk


class EntryContextQuery(Frozen):
    """The ledger's side of one run's entry decisions."""

    symbols: list[str]
    since: AwareDatetime  # the session day's start: one entry per symbol a day
    closed_since: AwareDatetime  # the system guard counts trades closed since this


class LedgerTrade(Frozen):
    """An open trade the ledger knows, as the add-on rules see it."""

    trade_id: str
    symbol: str
    origin: TradeOrigin
    qty: Decimal
    stop_price: Decimal | None = None


class EntryContext(Frozen):
    """Symbols entered today, open trades by symbol, realized P&L of recent closes."""

    entered_symbols: list[str] = Field(default_factory=list)
    open_trades: list[LedgerTrade] = Field(default_factory=list)
    closed_pnls: list[Decimal] = Field(default_factory=list)  # oldest first
    # Open option trades (entering, open or closing) and their max loss. A default keeps the
    # results recorded before it decodable: a history without it replays with none.
    open_option_trades: list[DefinedRisk] = Field(default_factory=list)

    def trade_of(self, symbol: str) -> LedgerTrade | None:
        """The open trade holding `symbol` (an internal one first), or None."""
        trades = [t for t in self.open_trades if t.symbol == symbol]
        trades.sort(key=lambda t: (t.origin is not TradeOrigin.INTERNAL, t.trade_id))
        return trades[0] if trades else None


class ControlOrder(Frozen):
    """The market loop asks trading control to halt (daily loss) or pause entries (system guard)."""

    halt: bool
    reason: str = Field(min_length=1)
    actor: str = Field(min_length=1)
