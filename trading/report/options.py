"""The day report's option trades (iron condors, the option_trades table), from the day's
rows (pure).

They are counted by the rules stock trades are counted by (trading/report/windows.py): a trade
opened on the day when its row was created that day and got a fill (opened_at set), closed on
the day of its closed_at. A row not closed at the end (entering, open or closing) is open then,
and its max_loss counts, as the risk engine's heat counts it.

The ledger keeps only a row's latest status and note, so "at the end" of a past day is read
from the row as it is now: a close held back then and finished since is no longer seen.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from trading.ledger_records import TradeOrigin
from trading.options.legs import CLOSE_HELD_BACK, CLOSED_OUTSIDE
from trading.options.records import OptionTradeRecord
from trading.options.trade_models import OptionTradeStatus
from trading.report.models import DayLedger, OptionTradeLine, OptionTradesSection
from trading.report.windows import WindowTally, inside, window_count

# How OptionTradeWorkflow's note starts when the legs held do not match the trade and it
# holds the close back (workflows/option_trade.py, _legs_held); the row stays CLOSING.


def close_held_back(trade: OptionTradeRecord) -> bool:
    """CLOSING with the close held back: some legs held, not as the trade opened them."""
    return trade.status is OptionTradeStatus.CLOSING and trade.note.startswith(CLOSE_HELD_BACK)


def option_closes(ledger: DayLedger, end: datetime) -> list[tuple[datetime, Decimal]]:
    """(closed_at, realized P&L) of the option trades closed in the window, to `end`."""
    return [
        (t.closed_at, t.realized_pnl or Decimal(0))
        for t in ledger.option_trades
        if t.closed_at is not None
        and inside(t.closed_at, ledger.window_start, end)
        and t.status is OptionTradeStatus.CLOSED
    ]


def option_trades_section(ledger: DayLedger, end: datetime) -> OptionTradesSection:
    """Option trades opened and closed in the window, P&L of the closes, rows open at `end`."""
    lines: list[OptionTradeLine] = []
    tally = WindowTally()
    outside = 0
    max_loss = Decimal(0)
    held_back: list[str] = []
    for trade in sorted(ledger.option_trades, key=lambda t: (t.created_at, t.id)):
        window = window_count(
            trade.created_at,
            trade.closed_at,
            filled=trade.opened_at is not None,
            held_before_fill=True,
            start=ledger.window_start,
            end=end,
        )
        if not window.listed:
            continue
        counted_close = tally.add(
            window,
            entry_failed=trade.status is OptionTradeStatus.ENTRY_FAILED,
            realized_pnl=trade.realized_pnl,
            external=trade.origin is TradeOrigin.EXTERNAL,
        )
        outside += counted_close and trade.exit_reason == CLOSED_OUTSIDE
        if window.held_at_end:
            max_loss += trade.max_loss
            if close_held_back(trade):
                held_back.append(f"{trade.id} ({trade.underlying}: {trade.note})")
        lines.append(
            OptionTradeLine(
                trade_id=trade.id,
                underlying=trade.underlying,
                strategy=trade.strategy,
                origin=trade.origin,
                status=trade.status,
                expiry=trade.expiry,
                qty=trade.qty,
                credit=trade.credit,
                exit_debit=trade.exit_debit,
                exit_reason=trade.exit_reason,
                realized_pnl=trade.realized_pnl,
                max_loss=trade.max_loss,
                opened_at=trade.opened_at,
                closed_at=trade.closed_at,
                opened_today=window.opened_today,
                closed_today=window.closed_today,
                note=trade.note,
            )
        )
    return OptionTradesSection(
        opened=tally.opened,
        closed=tally.closed,
        entries_failed=tally.entries_failed,
        adopted=tally.adopted,
        closed_outside=outside,
        open_at_end=tally.open_at_end,
        winners=tally.winners,
        losers=tally.losers,
        realized_pnl=tally.realized_pnl,
        max_loss_open_at_end=max_loss,
        held_back_at_end=held_back,
        trades=lines,
    )
