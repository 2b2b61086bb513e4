"""The day report's option trades (iron condors, the option_trades table), from the day's
rows (pure).

They are counted as stock trades are (trading/report/day.py): a trade opened on the day when
its row was created that day and got a fill (opened_at set), closed on the day of its
closed_at. A row not closed at the end (entering, open or closing) is open then, and its
max_loss counts, as the risk engine's heat counts it.

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

# How OptionTradeWorkflow's note starts when the legs held do not match the trade and it
# holds the close back (workflows/option_trade.py, _legs_held); the row stays CLOSING.


def _inside(moment: datetime | None, start: datetime, end: datetime) -> bool:
    return moment is not None and start <= moment < end


def open_at(trade: OptionTradeRecord, moment: datetime) -> bool:
    """The row existed before `moment` and was not closed by then."""
    return trade.created_at < moment and (trade.closed_at is None or trade.closed_at >= moment)


def close_held_back(trade: OptionTradeRecord) -> bool:
    """CLOSING with the close held back: some legs held, not as the trade opened them."""
    return trade.status is OptionTradeStatus.CLOSING and trade.note.startswith(CLOSE_HELD_BACK)


def option_closes(ledger: DayLedger, end: datetime) -> list[tuple[datetime, Decimal]]:
    """(closed_at, realized P&L) of the option trades closed in the window, to `end`."""
    return [
        (t.closed_at, t.realized_pnl or Decimal(0))
        for t in ledger.option_trades
        if t.closed_at is not None
        and _inside(t.closed_at, ledger.window_start, end)
        and t.status is OptionTradeStatus.CLOSED
    ]


def option_trades_section(ledger: DayLedger, end: datetime) -> OptionTradesSection:
    """Option trades opened and closed in the window, P&L of the closes, rows open at `end`."""
    start = ledger.window_start
    lines: list[OptionTradeLine] = []
    opened = closed = failed = adopted = outside = winners = losers = open_at_end = 0
    pnl = max_loss = Decimal(0)
    held_back: list[str] = []
    for trade in sorted(ledger.option_trades, key=lambda t: (t.created_at, t.id)):
        created_today = _inside(trade.created_at, start, end)
        opened_today = created_today and trade.opened_at is not None
        closed_today = _inside(trade.closed_at, start, end)
        held_at_end = open_at(trade, end)
        if not (created_today or closed_today or held_at_end):
            continue
        if closed_today and trade.status is OptionTradeStatus.ENTRY_FAILED:
            failed += 1
        elif closed_today:
            closed += 1
            outside += trade.exit_reason == CLOSED_OUTSIDE
            realized = trade.realized_pnl or Decimal(0)
            pnl += realized
            winners += realized > 0
            losers += realized < 0
        opened += opened_today
        adopted += opened_today and trade.origin is TradeOrigin.EXTERNAL
        if held_at_end:
            open_at_end += 1
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
                opened_today=opened_today,
                closed_today=closed_today,
                note=trade.note,
            )
        )
    return OptionTradesSection(
        opened=opened,
        closed=closed,
        entries_failed=failed,
        adopted=adopted,
        closed_outside=outside,
        open_at_end=open_at_end,
        winners=winners,
        losers=losers,
        realized_pnl=pnl,
        max_loss_open_at_end=max_loss,
        held_back_at_end=held_back,
        trades=lines,
    )
