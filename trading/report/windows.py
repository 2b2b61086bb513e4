"""How a trade row counts in the day report's window (pure): one set of rules for stock trades
(TradeRecord, trading/report/day.py) and option trades (OptionTradeRecord,
trading/report/options.py), read from the row's timestamps.

When a trade opened is placed by the ledger's clock (created_at, stamped as the entry is
decided), not by opened_at: that is the broker's fill time, which a paper broker's simulated
clock may put on another day. The fill itself (opened_at set) says that it opened. A trade
closed on the day of its closed_at.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal


def inside(moment: datetime | None, start: datetime, end: datetime) -> bool:
    """`moment` is set and falls in [start, end)."""
    return moment is not None and start <= moment < end


def open_at(created_at: datetime, closed_at: datetime | None, moment: datetime) -> bool:
    """The row existed before `moment` and was not closed by then."""
    return created_at < moment and (closed_at is None or closed_at >= moment)


@dataclass(frozen=True)
class WindowCount:
    """How one trade row counts in the window: created, opened, closed in it, held at its end."""

    created_today: bool
    opened_today: bool
    closed_today: bool
    held_at_end: bool

    @property
    def listed(self) -> bool:
        """The row belongs in the day's list: created or closed in the window, held at its end."""
        return self.created_today or self.closed_today or self.held_at_end


def window_count(
    created_at: datetime,
    closed_at: datetime | None,
    *,
    filled: bool,
    held_before_fill: bool,
    start: datetime,
    end: datetime,
) -> WindowCount:
    """How a row counts in [start, end): `filled` says it got its fill; `held_before_fill` says
    an unfilled row still counts as held while open (an option trade's max_loss is at risk from
    its entry, as the risk engine's heat counts it; a stock trade holds nothing before its fill).
    """
    created_today = inside(created_at, start, end)
    return WindowCount(
        created_today=created_today,
        opened_today=filled and created_today,
        closed_today=inside(closed_at, start, end),
        held_at_end=(filled or held_before_fill) and open_at(created_at, closed_at, end),
    )


@dataclass
class WindowTally:
    """The counts a trades section reports, summed row by row over the listed rows."""

    opened: int = 0
    closed: int = 0
    entries_failed: int = 0
    adopted: int = 0
    open_at_end: int = 0
    winners: int = 0
    losers: int = 0
    realized_pnl: Decimal = Decimal(0)

    def add(
        self,
        window: WindowCount,
        *,
        entry_failed: bool,
        realized_pnl: Decimal | None,
        external: bool,
    ) -> bool:
        """Count one row; True when it is a close of the window (closed in it, not a failed
        entry), whose realized P&L (None as 0) counts."""
        counted_close = window.closed_today and not entry_failed
        if window.closed_today and entry_failed:
            self.entries_failed += 1
        elif counted_close:
            self.closed += 1
            realized = realized_pnl or Decimal(0)
            self.realized_pnl += realized
            self.winners += realized > 0
            self.losers += realized < 0
        self.opened += window.opened_today
        self.adopted += window.opened_today and external
        self.open_at_end += window.held_at_end
        return counted_close
